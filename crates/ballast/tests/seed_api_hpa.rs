//! The seed's `api-hpa` (`crates/api/tests/fixtures/seed-api-hpa.yaml`, an `autoscaling/v2`
//! HorizontalPodAutoscaler) end to end on the REAL test bed (`tests/testbed.sh up kube
//! metrics-server custom-metrics`): converted by `ballast convert`, applied as it came out, and
//! reconciled by a `ballast controller horizontal` process. Its two metrics come through the real
//! aggregated APIs: CPU utilization through metrics-server (kwok reports each pod's usage
//! annotation), `http_rps` as a Pods metric through the bed's custom metrics adapter.
//!
//! `seed_api_hpa_scales_up_and_down`: the converted object keeps the seed's windows (60 s up,
//! 300 s down); the test shortens them (and the sync period) by patching the applied object, as a
//! user would, never through a test-only code path. Deployment `api` of kwok pods at 60 m of their
//! 100 m CPU request (60%, the target) and 50 requests per second each (the target):
//!
//! 1. 300 requests per second over 3 pods: 6 replicas, not before the scale-up window passed;
//! 2. 30 requests per second: `http_rps` asks for 3, CPU still for 6, so 6 stay past the
//!    scale-down window (the largest proposal wins);
//! 3. CPU at 10 m: both ask for fewer, and the Deployment goes back to `minReplicas` 3, not before
//!    the scale-down window passed.
//!
//! Without a test bed the test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

mod bed_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_testbed::custom_metrics::PodLoad;
use ballast_testbed::usage::{set_usage_of_pods, wait_for_pod_metrics};
use ballast_testbed::wait::{poll_until, wait_for};
use ballast_testbed::{
    KwokNode, TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip,
};
use bed_support::{Process, root};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use serde::Deserialize as _;
use serde_json::json;

const MANAGER: &str = "ballast-seed-test";
const SEED: &str = "crates/api/tests/fixtures/seed-api-hpa.yaml";
/// The windows the test patches in, for the seed's 60 s and 300 s.
const UP_WINDOW: u64 = 10;
const DOWN_WINDOW: u64 = 15;
const CPU_AT_TARGET: &str = "60m";
const CPU_LOW: &str = "10m";
const MEMORY: &str = "10Mi";

async fn install_crd(bed: &TestBed) -> Result<()> {
    let path = root().join("crds/horizontalautoscalers.autoscaling.ballast.dev.yaml");
    let text = std::fs::read_to_string(&path)?;
    let mut crds = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if !value.is_null() {
            crds.push(serde_yaml::from_value::<CustomResourceDefinition>(value)?);
        }
    }
    ballast_testbed::crds::apply(&bed.client(), crds, MANAGER, Duration::from_secs(30)).await
}

/// `ballast convert -f SEED`: the converted object, its namespace set to `namespace`.
fn convert_seed(namespace: &str) -> Result<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["convert", "-f", SEED])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .context("running ballast convert")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("ballast convert -f {SEED}: {}\n{stderr}", out.status);
    ensure!(out.status.success(), "ballast convert failed: {stderr}");
    let mut object: serde_json::Value = serde_yaml::from_slice(&out.stdout).with_context(|| {
        format!(
            "the output of ballast convert: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    ensure!(
        object["kind"] == "HorizontalAutoscaler" && object["metadata"]["name"] == "api-hpa",
        "converted: {object}"
    );
    object["metadata"]["namespace"] = json!(namespace);
    Ok(object)
}

/// Deployment `api` of 3 kwok pods at the CPU target, their usage served by metrics-server.
async fn deployment(bed: &TestBed, ns: &TestNamespace) -> Result<()> {
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    ns.create_deployment(
        TestDeployment::new("api")
            .replicas(3)
            .usage(CPU_AT_TARGET, MEMORY),
    )
    .await?;
    ns.wait_deployment_ready("api", 3, Duration::from_secs(90))
        .await?;
    wait_all_pods_cpu(bed, ns, CPU_AT_TARGET).await
}

async fn wait_all_pods_cpu(bed: &TestBed, ns: &TestNamespace, cpu: &str) -> Result<()> {
    let timeout = bed.metric_resolution() * 6;
    for pod in ns.pods("app=api").await? {
        let pod = pod.metadata.name.context("pod without a name")?;
        wait_for_pod_metrics(&bed.client(), ns.name(), &pod, cpu, MEMORY, timeout).await?;
    }
    Ok(())
}

async fn replicas(ns: &TestNamespace) -> Result<i32> {
    let d = ns.api::<Deployment>().get("api").await?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(-1))
}

async fn print_status(ns: &TestNamespace) {
    if let Ok(h) = ns.api::<HorizontalAutoscaler>().get("api-hpa").await {
        eprintln!(
            "status: {}",
            serde_json::to_string(&h.status).unwrap_or_default()
        );
    }
}

/// Waits until the Deployment's replicas satisfy `check`; returns when.
async fn wait_replicas(
    ns: &TestNamespace,
    what: &str,
    check: impl Fn(i32) -> bool,
) -> Result<Instant> {
    let r = poll_until(
        what,
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async { Ok(check(replicas(ns).await?).then(Instant::now)) },
    )
    .await;
    if r.is_err() {
        print_status(ns).await;
    }
    r
}

/// `status.currentMetrics` as JSON: (cpu averageUtilization, http_rps averageValue).
fn readings(h: &HorizontalAutoscaler) -> (serde_json::Value, serde_json::Value) {
    let m = serde_json::to_value(h.status.as_ref().map(|s| &s.current_metrics)).unwrap_or_default();
    let find = |type_: &str| {
        m.as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == type_))
            .cloned()
            .unwrap_or_default()
    };
    (
        find("Resource")["resource"]["current"]["averageUtilization"].clone(),
        find("Pods")["pods"]["current"]["averageValue"].clone(),
    )
}

async fn wait_readings(
    ns: &TestNamespace,
    cpu: i64,
    rps: &'static str,
) -> Result<HorizontalAutoscaler> {
    let r = wait_for(
        &ns.api::<HorizontalAutoscaler>(),
        "api-hpa",
        Duration::from_secs(60),
        move |h: &HorizontalAutoscaler| {
            let (c, r) = readings(h);
            c.as_i64().is_some_and(|c| (cpu - 1..=cpu + 1).contains(&c)) && r == rps
        },
    )
    .await;
    if r.is_err() {
        eprintln!("waiting for cpu {cpu}% and http_rps {rps}");
        print_status(ns).await;
    }
    r
}

/// Fails if Deployment `api` leaves `want` replicas within `period` (while a metric asked for
/// it), printing the autoscaler's status.
async fn hold_replicas(ns: &TestNamespace, want: i32, period: Duration) -> Result<()> {
    let held = ns.hold_deployment_replicas("api", want, period).await;
    if held.is_err() {
        print_status(ns).await;
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_api_hpa_scales_up_and_down() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    let metrics = service_or_skip!(bed.custom_metrics(), Ok(()));
    install_crd(&bed).await?;
    let ns = bed.namespace("seed").await?;
    deployment(&bed, &ns).await?;
    let load = PodLoad::start(metrics, bed.client(), ns.name(), "app=api", "http_rps", 150);

    // Converted and applied as it came out: the seed's windows are there.
    let object = convert_seed(ns.name())?;
    let api = ns.api::<HorizontalAutoscaler>();
    let applied = api
        .patch(
            "api-hpa",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&object),
        )
        .await
        .context("applying the converted api-hpa")?;
    let spec = serde_json::to_value(&applied.spec)?;
    ensure!(
        spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 60
            && spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
            && spec["minReplicas"] == 3
            && spec["maxReplicas"] == 20,
        "applied spec: {spec}"
    );
    // Shorter windows and a 1 s sync, by a patch of the object.
    let patch = json!({ "spec": { "syncPeriodSeconds": 1, "behavior": {
        "scaleUp": { "stabilizationWindowSeconds": UP_WINDOW },
        "scaleDown": { "stabilizationWindowSeconds": DOWN_WINDOW } } } });
    api.patch("api-hpa", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;

    let logs = std::env::temp_dir().join(format!("ballast-{}", ns.name()));
    std::fs::create_dir_all(&logs)?;
    let kubeconfig = bed
        .env()
        .get("BALLAST_KUBECONFIG")
        .context("BALLAST_KUBECONFIG")?;
    let args = [
        "controller",
        "horizontal",
        "--namespace",
        ns.name(),
        "--metrics-addr",
    ];
    let mut controller = Process::start("horizontal", &args, kubeconfig.as_ref(), "info", &logs)?;
    controller.wait_ready().await?;

    let h = wait_readings(&ns, 60, "50").await?;
    ensure!(
        replicas(&ns).await? == 3,
        "moved at both targets: {:?}",
        h.status
    );

    // 1. 100 requests per second per pod: 6, once the scale-up window passed.
    load.set_total(300);
    let raised = Instant::now();
    let up = wait_replicas(&ns, "the scale-up to 6", |n| n != 3).await?;
    let after = (up - raised).as_secs_f64();
    ensure!(
        replicas(&ns).await? == 6,
        "scaled up to {} instead of 6",
        replicas(&ns).await?
    );
    eprintln!("scale-up 3 → 6 {after:.1}s after the load rose (window {UP_WINDOW}s)");
    ensure!(
        after >= UP_WINDOW as f64 - 1.0,
        "the scale-up window was not kept ({after:.1}s)"
    );
    ns.wait_deployment_ready("api", 6, Duration::from_secs(90))
        .await?;
    wait_readings(&ns, 60, "50").await?;

    // 2. 5 requests per second per pod: CPU at its target still asks for 6.
    load.set_total(30);
    wait_readings(&ns, 60, "5").await?;
    hold_replicas(&ns, 6, Duration::from_secs(DOWN_WINDOW + 5)).await?;

    // 3. CPU low too: back to minReplicas once the scale-down window passed. The window counts
    // from the controller's first low reading, which cannot come before the usage is set; when
    // the test itself sees metrics-server serve it is later (it polls one pod), so the window is
    // checked from the moment of the change.
    let lowered = Instant::now();
    set_usage_of_pods(&bed.client(), ns.name(), "app=api", CPU_LOW, MEMORY).await?;
    let first = ns
        .pods("app=api")
        .await?
        .into_iter()
        .next()
        .context("no pod")?;
    let first = first.metadata.name.context("pod without a name")?;
    let timeout = bed.metric_resolution() * 4;
    wait_for_pod_metrics(&bed.client(), ns.name(), &first, CPU_LOW, MEMORY, timeout).await?;
    let served = lowered.elapsed().as_secs_f64();
    let down = wait_replicas(&ns, "the scale-down", |n| n != 6).await?;
    let after = (down - lowered).as_secs_f64();
    eprintln!(
        "scale-down from 6 {after:.1}s after the CPU usage was lowered (window {DOWN_WINDOW}s; \
         the test saw metrics-server serve it after {served:.1}s)"
    );
    ensure!(
        after >= DOWN_WINDOW as f64 - 1.0,
        "the scale-down window was not kept ({after:.1}s)"
    );
    wait_replicas(&ns, "minReplicas 3", |n| n == 3).await?;
    let h = api.get("api-hpa").await?;
    ensure!(
        h.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "ScalingLimited"
                && c.status == "True"
                && c.reason == "TooFewReplicas")),
        "status at minReplicas: {:?}",
        h.status
    );
    let output = controller.output();
    ensure!(!output.contains("panicked"), "{}", controller.tail(40));
    controller.stop();
    drop(load);
    ns.cleanup().await?;
    Ok(())
}
