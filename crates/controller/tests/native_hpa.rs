//! Native `autoscaling/v2` HorizontalPodAutoscalers (`controller horizontal --native-hpa`)
//! against the REAL test bed (`tests/testbed.sh up kube metrics-server`): kube-controller-manager
//! runs without its HPA controller, so only Ballast writes these HPAs. CPU through metrics-server
//! (kwok reports each pod's usage annotation), as `horizontal.rs` does.
//!
//! - `hpa_scales_up_and_down_with_upstreams_status`: up to maxReplicas and back to minReplicas;
//!   the status (currentReplicas, desiredReplicas, currentMetrics, lastScaleTime,
//!   observedGeneration, the three conditions) compared field by field with what upstream
//!   writes, the events on the HPA, and `kubectl describe hpa` printed.
//! - `restart_keeps_stabilization_in_the_annotation`: the controller is stopped while a
//!   scale-down is held by the window and a new one started: the history in the annotation makes
//!   it end the old window, not start one of its own.
//! - `hpa_and_horizontal_autoscaler_on_one_target_conflict`: both report `AmbiguousSelector`,
//!   each naming the other by kind, and the Deployment keeps its replicas.
//!
//! Without a test bed every test prints a skip note and passes, unless
//! `BALLAST_REQUIRE_TESTBED=1` (as `tests/run.sh` sets).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_controller::horizontal::native::status::HISTORY_ANNOTATION;
use ballast_controller::horizontal::{Config, HorizontalController};
use ballast_testbed::usage::{set_usage_of_pods, wait_for_pod_metrics};
use ballast_testbed::wait::{poll_until, wait_for};
use ballast_testbed::{
    KwokNode, TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use prometheus_client::registry::Registry;
use serde::Deserialize as _;
use serde_json::json;

const MANAGER: &str = "ballast-native-hpa-test";
/// CPU per pod just under the 100m request (metrics-server reads it as 100%), and low.
const HIGH_CPU: &str = "99500u";
const LOW_CPU: &str = "5m";
const MEMORY: &str = "10Mi";

type Running = ballast_testbed::running::Running<ballast_controller::horizontal::Error>;

/// A reconciler of this namespace's HPAs (and HorizontalAutoscalers), each decided every second.
fn start_controller(bed: &TestBed, ns: &TestNamespace) -> Result<Running> {
    let config = Config {
        namespace: Some(ns.name().to_owned()),
        instance: format!("test-{}", ns.name()),
        native_hpa: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let mut registry = Registry::default();
    let controller = HorizontalController::new(bed.client(), config, &mut registry)?;
    Ok(Running::spawn(|s| controller.run(s), registry))
}

/// The HorizontalAutoscaler CRD from crds/ (the controller needs it even for HPAs alone).
async fn install_crd(bed: &TestBed) -> Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../crds/horizontalautoscalers.autoscaling.ballast.dev.yaml");
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

/// An HPA on Deployment `web`: CPU at 50% utilization, with `behavior`.
async fn create_hpa(
    ns: &TestNamespace,
    min: i32,
    max: i32,
    behavior: serde_json::Value,
) -> Result<HorizontalPodAutoscaler> {
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": "web", "namespace": ns.name() },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": min, "maxReplicas": max,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu",
                "target": { "type": "Utilization", "averageUtilization": 50 } } }],
            "behavior": behavior,
        }
    }))?;
    Ok(ns
        .api::<HorizontalPodAutoscaler>()
        .create(&PostParams::default(), &hpa)
        .await?)
}

/// A kwok node and Deployment `web` of `replicas` pods at `cpu`, served by metrics-server.
async fn deployment(bed: &TestBed, ns: &TestNamespace, replicas: i32, cpu: &str) -> Result<()> {
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    ns.create_deployment(
        TestDeployment::new("web")
            .replicas(replicas)
            .usage(cpu, MEMORY),
    )
    .await?;
    ns.wait_deployment_ready("web", replicas, Duration::from_secs(90))
        .await?;
    let timeout = bed.metric_resolution() * 6;
    for pod in ns.pods("app=web").await? {
        let pod = pod.metadata.name.context("pod without a name")?;
        wait_for_pod_metrics(&bed.client(), ns.name(), &pod, cpu, MEMORY, timeout).await?;
    }
    Ok(())
}

async fn replicas(ns: &TestNamespace) -> Result<i32> {
    let d = ns.api::<Deployment>().get("web").await?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(-1))
}

async fn wait_replicas(ns: &TestNamespace, want: i32, timeout: Duration) -> Result<()> {
    let r = poll_until(
        &format!("deployment web at {want} replicas"),
        timeout,
        Duration::from_millis(500),
        || async { Ok((replicas(ns).await? == want).then_some(())) },
    )
    .await;
    if r.is_err() {
        let h = ns.api::<HorizontalPodAutoscaler>().get("web").await?;
        eprintln!("{}", serde_json::to_string(&h.status).unwrap_or_default());
    }
    r
}

/// `(status, reason)` of the HPA's condition `type_`.
fn condition(h: &HorizontalPodAutoscaler, type_: &str) -> Option<(String, String)> {
    h.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

/// Waits until the HPA satisfies `check`.
async fn wait_hpa(
    ns: &TestNamespace,
    what: &str,
    check: impl Fn(&HorizontalPodAutoscaler) -> bool + Send + Clone + 'static,
) -> Result<HorizontalPodAutoscaler> {
    let r = wait_for(
        &ns.api::<HorizontalPodAutoscaler>(),
        "web",
        Duration::from_secs(90),
        check,
    )
    .await;
    if r.is_err() {
        let h = ns.api::<HorizontalPodAutoscaler>().get("web").await?;
        eprintln!("waiting for {what}: {}", serde_json::to_string(&h.status)?);
    }
    r
}

/// (type, reason, message) of the core/v1 events on the HPA, as `kubectl describe` lists them.
async fn events(
    ns: &TestNamespace,
    h: &HorizontalPodAutoscaler,
) -> Result<Vec<(String, String, String)>> {
    let selector = format!(
        "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=web,involvedObject.uid={}",
        h.metadata.uid.clone().unwrap_or_default()
    );
    let list = ns
        .api::<CoreEvent>()
        .list(&ListParams::default().fields(&selector))
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect())
}

async fn wait_event(ns: &TestNamespace, reason: &str, message: &str) -> Result<()> {
    poll_until(
        &format!("event {reason} ({message})"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let h = ns.api::<HorizontalPodAutoscaler>().get("web").await?;
            Ok(events(ns, &h)
                .await?
                .into_iter()
                .find(|e| e.1 == reason && e.2.contains(message))
                .map(|_| ()))
        },
    )
    .await
}

/// `kubectl describe hpa web`, when the bed has a kubectl.
async fn describe(bed: &TestBed, ns: &TestNamespace) -> Option<String> {
    let kubectl = bed.env().get("BALLAST_KUBECTL")?.to_owned();
    let kubeconfig = bed.env().get("BALLAST_KUBECONFIG")?.to_owned();
    let ns = ns.name().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(kubectl)
            .args([
                "--kubeconfig",
                &kubeconfig,
                "describe",
                "hpa",
                "web",
                "-n",
                &ns,
            ])
            .output()
    })
    .await
    .ok()?
    .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// What upstream writes at rest after a scale: both replica counts, the CPU reading, the
/// generation decided and a last scale time.
/// `utilization` is the range the CPU reading may show (metrics-server's rate of a constant usage
/// is within a millicore of it, and upstream rounds the percentage up).
fn check_status(
    h: &HorizontalPodAutoscaler,
    want: i32,
    utilization: std::ops::RangeInclusive<i64>,
) -> Result<()> {
    let s = h.status.as_ref().context("no status")?;
    ensure!(s.current_replicas == Some(want), "currentReplicas: {s:?}");
    ensure!(s.desired_replicas == want, "desiredReplicas: {s:?}");
    ensure!(
        s.observed_generation == h.metadata.generation,
        "observedGeneration: {s:?}"
    );
    ensure!(s.last_scale_time.is_some(), "lastScaleTime: {s:?}");
    let metrics = serde_json::to_value(&s.current_metrics)?;
    ensure!(
        metrics[0]["type"] == "Resource"
            && metrics[0]["resource"]["name"] == "cpu"
            && metrics[0]["resource"]["current"]["averageUtilization"]
                .as_i64()
                .is_some_and(|u| utilization.contains(&u)),
        "currentMetrics: {metrics}"
    );
    ensure!(
        metrics[0]["resource"]["current"]["averageValue"].is_string(),
        "currentMetrics (upstream writes averageValue beside the utilization): {metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_scales_up_and_down_with_upstreams_status() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crd(&bed).await?;
    let ns = bed.namespace("hpa-native").await?;
    deployment(&bed, &ns, 2, HIGH_CPU).await?;
    create_hpa(
        &ns,
        2,
        6,
        json!({ "scaleDown": { "stabilizationWindowSeconds": 5,
        "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 1 }] } }),
    )
    .await?;
    let ctl = start_controller(&bed, &ns)?;

    // 100% against 50%: 4, then (the new pods at 100% too) 6 = maxReplicas; the metric asks 12.
    wait_replicas(&ns, 6, Duration::from_secs(180)).await?;
    let h = wait_hpa(&ns, "at rest at 6", |h| {
        h.status
            .as_ref()
            .is_some_and(|s| s.current_replicas == Some(6))
            && condition(h, "ScalingLimited").is_some_and(|c| c.1 == "TooManyReplicas")
            && condition(h, "AbleToScale").is_some_and(|c| c.1 == "ReadyForNewScale")
    })
    .await?;
    check_status(&h, 6, 100..=100)?;
    ensure!(condition(&h, "AbleToScale") == Some(("True".into(), "ReadyForNewScale".into())));
    ensure!(condition(&h, "ScalingActive") == Some(("True".into(), "ValidMetricFound".into())));
    ensure!(condition(&h, "ScalingLimited") == Some(("True".into(), "TooManyReplicas".into())));
    wait_event(
        &ns,
        "SuccessfulRescale",
        "cpu resource utilization (percentage of request) above target",
    )
    .await?;
    if let Some(text) = describe(&bed, &ns).await {
        eprintln!("---- kubectl describe hpa (at maxReplicas)\n{text}");
    }

    ns.wait_deployment_ready("web", 6, Duration::from_secs(90))
        .await?;
    // Low CPU: back to minReplicas once metrics-server reports it and the 5 s window passed.
    set_usage_of_pods(&bed.client(), ns.name(), "app=web", LOW_CPU, MEMORY).await?;
    wait_replicas(&ns, 2, Duration::from_secs(120)).await?;
    let h = wait_hpa(&ns, "at rest at 2", |h| {
        h.status
            .as_ref()
            .is_some_and(|s| s.current_replicas == Some(2))
            && condition(h, "ScalingLimited").is_some_and(|c| c.1 == "TooFewReplicas")
    })
    .await?;
    check_status(&h, 2, 5..=7)?;
    ensure!(condition(&h, "ScalingActive") == Some(("True".into(), "ValidMetricFound".into())));
    ensure!(condition(&h, "ScalingLimited") == Some(("True".into(), "TooFewReplicas".into())));
    wait_event(
        &ns,
        "SuccessfulRescale",
        "New size: 2; reason: All metrics below target",
    )
    .await?;
    let history = h
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HISTORY_ANNOTATION));
    ensure!(
        history.is_some(),
        "no history annotation: {:?}",
        h.metadata.annotations
    );
    if let Some(text) = describe(&bed, &ns).await {
        eprintln!("---- kubectl describe hpa (back at minReplicas)\n{text}");
    }
    ctl.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_stabilization_in_the_annotation() -> Result<()> {
    const WINDOW: f64 = 30.0;
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crd(&bed).await?;
    let ns = bed.namespace("hpa-restart").await?;
    deployment(&bed, &ns, 2, HIGH_CPU).await?;
    create_hpa(
        &ns,
        1,
        4,
        json!({ "scaleDown": { "stabilizationWindowSeconds": WINDOW as i32 } }),
    )
    .await?;
    let first = start_controller(&bed, &ns)?;
    wait_replicas(&ns, 4, Duration::from_secs(180)).await?;
    // Every pod exists before the usage is lowered (a pod created after starts high).
    ns.wait_deployment_ready("web", 4, Duration::from_secs(90))
        .await?;

    // Low CPU: every recommendation from the first low reading on is 1, held by the window.
    set_usage_of_pods(&bed.client(), ns.name(), "app=web", LOW_CPU, MEMORY).await?;
    wait_hpa(&ns, "a held scale-down", |h| {
        condition(h, "AbleToScale").is_some_and(|c| c.1 == "ScaleDownStabilized")
    })
    .await?;
    let low_since = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.stop().await?;
    let h = ns.api::<HorizontalPodAutoscaler>().get("web").await?;
    let text = h
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HISTORY_ANNOTATION))
        .context("no history annotation")?;
    let history: serde_json::Value = serde_json::from_str(text)?;
    let recommended = |n: i64| {
        history["recommendations"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["replicas"] == n))
    };
    ensure!(recommended(4) && recommended(1), "history: {history}");
    ensure!(replicas(&ns).await? == 4, "scaled down inside the window");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let restart = Instant::now();
    let second = start_controller(&bed, &ns)?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let h = ns.api::<HorizontalPodAutoscaler>().get("web").await?;
    ensure!(
        condition(&h, "AbleToScale").is_some_and(|c| c.1 == "ScaleDownStabilized"),
        "after the restart: {:?}",
        h.status
    );
    ensure!(
        replicas(&ns).await? == 4,
        "scaled down right after the restart"
    );
    let down = poll_until(
        "the scale-down",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async { Ok((replicas(&ns).await? != 4).then(Instant::now)) },
    )
    .await?;
    let since_low = (down - low_since).as_secs_f64();
    let since_restart = (down - restart).as_secs_f64();
    eprintln!(
        "scale-down {since_low:.1}s after the first held decision, {since_restart:.1}s after the restart"
    );
    ensure!(replicas(&ns).await? == 1);
    ensure!(
        since_low >= WINDOW - 6.0,
        "the window was not respected ({since_low:.1}s)"
    );
    // A controller without the stored history would start a whole window at the restart.
    ensure!(
        since_restart < WINDOW - 2.0,
        "the new controller started a window of its own ({since_restart:.1}s)"
    );
    second.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_and_horizontal_autoscaler_on_one_target_conflict() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crd(&bed).await?;
    let ns = bed.namespace("hpa-conflict").await?;
    // 100% CPU against 50%: either autoscaler alone would double the Deployment.
    deployment(&bed, &ns, 1, HIGH_CPU).await?;
    create_hpa(&ns, 1, 4, serde_json::Value::Null).await?;
    let hza: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1", "kind": "HorizontalAutoscaler",
        "metadata": { "name": "web", "namespace": ns.name() },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 1, "maxReplicas": 4, "syncPeriodSeconds": 1,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu",
                "target": { "type": "Utilization", "averageUtilization": 50 } } }],
        }
    }))?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &hza)
        .await?;
    // Each start is a new chance to decide one before knowing the other.
    for round in 0..2 {
        let ctl = start_controller(&bed, &ns)?;
        let h = wait_hpa(&ns, "AmbiguousSelector on the HPA", |h| {
            condition(h, "ScalingActive").is_some_and(|c| c.1 == "AmbiguousSelector")
        })
        .await?;
        let message = h
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .find(|c| c.type_ == "ScalingActive")
            .and_then(|c| c.message.clone())
            .unwrap_or_default();
        ensure!(
            message.contains("web (HorizontalAutoscaler)"),
            "HPA: {message}"
        );
        let ours = wait_for(
            &ns.api::<HorizontalAutoscaler>(),
            "web",
            Duration::from_secs(60),
            |h: &HorizontalAutoscaler| {
                h.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "ScalingActive" && c.reason == "AmbiguousSelector")
                })
            },
        )
        .await?;
        let message = ours
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == "ScalingActive")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ensure!(
            message.contains("web (HorizontalPodAutoscaler)"),
            "HorizontalAutoscaler: {message}"
        );
        wait_event(&ns, "AmbiguousSelector", "controlled by multiple HPAs").await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let n = replicas(&ns).await?;
        ensure!(
            n == 1,
            "start {round}: an HPA and a HorizontalAutoscaler rescaled to {n}"
        );
        ctl.stop().await?;
    }
    ns.cleanup().await?;
    Ok(())
}
