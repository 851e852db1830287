//! Pods, Object and External metrics through a REAL custom and external metrics adapter on the
//! test bed (`tests/testbed.sh up kube custom-metrics`): upstream's adapter library serves
//! `custom.metrics.k8s.io` and `external.metrics.k8s.io` behind the API server's aggregator (three
//! APIServices whose Service is `ExternalName: localhost`), and the test writes the values it
//! serves (`ballast_testbed::custom_metrics`).
//!
//! - `pods_metric_scales_up_and_down`: `http_rps` per pod, a total shared by the pods that run
//!   ([`PodLoad`]); 1 → 4 on 200 requests per second against 50 per pod, back to 1 on 40.
//! - `object_metric_of_an_ingress`: an Ingress's `requests_per_second` (AverageValue 100): 1 → 3
//!   on 300, back to 1 on 80.
//! - `external_metric_sums_the_selected_series`: `queue_messages_ready` with `queue=orders`: two
//!   matching series (20 + 25) are summed and a third queue's 1000 is left out: 1 → 5, back to 1.
//! - `adapter_down_holds_the_replicas`: a scale-down held by its window when the adapter is
//!   SIGKILLed (its APIServices stay registered, the aggregator answers 503):
//!   `ScalingActive=False/FailedGetPodsMetric` and no scale-down though the window passes; started
//!   again, it serves nothing until the values are written (still no scale-down), then the held
//!   scale-down happens.
//!
//! The first three run side by side; the last takes the adapter away, so it holds [`ADAPTER`]
//! for writing and the others for reading. Without a test bed every test prints a skip note and
//! passes, unless `BALLAST_REQUIRE_TESTBED=1` (as `tests/run.sh` sets).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_controller::horizontal::{Config, HorizontalController};
use ballast_testbed::custom_metrics::{
    CustomMetrics, PodLoad, served_external_values, served_pod_values,
};
use ballast_testbed::faults::{self, Heal, Part};
use ballast_testbed::wait::{poll_until, wait_for};
use ballast_testbed::{
    KwokNode, TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use prometheus_client::registry::Registry;
use serde::Deserialize as _;
use serde_json::json;
use tokio::sync::RwLock;

const MANAGER: &str = "ballast-custom-metrics-test";

/// Readers: tests that need the adapter up; the writer: the test that takes it away.
static ADAPTER: RwLock<()> = RwLock::const_new(());

type Running = ballast_testbed::running::Running<ballast_controller::horizontal::Error>;

/// A reconciler restricted to the test's namespace.
fn start_controller(bed: &TestBed, ns: &TestNamespace) -> Result<Running> {
    let config = Config {
        namespace: Some(ns.name().to_owned()),
        instance: format!("test-{}", ns.name()),
        ..Default::default()
    };
    let mut registry = Registry::default();
    let controller = HorizontalController::new(bed.client(), config, &mut registry)?;
    Ok(Running::spawn(|s| controller.run(s), registry))
}

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

/// The bed with the adapter, its CRD installed, and a namespace with a kwok node and Deployment
/// `web` of `replicas` running pods.
async fn setup(
    bed: &TestBed,
    prefix: &str,
    replicas: i32,
) -> Result<(CustomMetrics, TestNamespace)> {
    let metrics = bed
        .custom_metrics()
        .context("custom-metrics not running: tests/testbed.sh up custom-metrics")?;
    install_crd(bed).await?;
    let ns = bed.namespace(prefix).await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    ns.create_deployment(TestDeployment::new("web").replicas(replicas))
        .await?;
    ns.wait_deployment_ready("web", replicas, Duration::from_secs(90))
        .await?;
    Ok((metrics, ns))
}

/// A HorizontalAutoscaler `web` on Deployment `web`, decided every second, scaling down after
/// a window of `down_window` seconds (at once up), with `metric`.
async fn create_autoscaler(
    ns: &TestNamespace,
    max: i32,
    down_window: i32,
    metric: serde_json::Value,
) -> Result<HorizontalAutoscaler> {
    let obj: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "HorizontalAutoscaler",
        "metadata": { "name": "web", "namespace": ns.name() },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 1, "maxReplicas": max, "syncPeriodSeconds": 1,
            "behavior": { "scaleDown": { "stabilizationWindowSeconds": down_window } },
            "metrics": [metric],
        }
    }))?;
    Ok(ns
        .api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &obj)
        .await?)
}

async fn replicas(ns: &TestNamespace) -> Result<i32> {
    let d = ns.api::<Deployment>().get("web").await?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(-1))
}

async fn print_status(ns: &TestNamespace) {
    if let Ok(h) = ns.api::<HorizontalAutoscaler>().get("web").await {
        eprintln!(
            "status: {}",
            serde_json::to_string(&h.status).unwrap_or_default()
        );
    }
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
        print_status(ns).await;
    }
    r
}

/// `(status, reason, message)` of condition `type_`.
fn condition(h: &HorizontalAutoscaler, type_: &str) -> Option<(String, String, String)> {
    h.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn wait_autoscaler(
    ns: &TestNamespace,
    what: &str,
    check: impl Fn(&HorizontalAutoscaler) -> bool + Send + Clone + 'static,
) -> Result<HorizontalAutoscaler> {
    let r = wait_for(
        &ns.api::<HorizontalAutoscaler>(),
        "web",
        Duration::from_secs(60),
        check,
    )
    .await;
    if r.is_err() {
        eprintln!("waiting for {what}");
        print_status(ns).await;
    }
    r
}

/// The first entry of `status.currentMetrics`, as JSON.
fn current_metric(h: &HorizontalAutoscaler) -> serde_json::Value {
    serde_json::to_value(h.status.as_ref().map(|s| &s.current_metrics))
        .map(|m| m[0].clone())
        .unwrap_or_default()
}

/// Waits until the autoscaler decided on the metric with the status `ValidMetricFound`.
async fn wait_valid_metric(ns: &TestNamespace) -> Result<HorizontalAutoscaler> {
    wait_autoscaler(ns, "ScalingActive=True/ValidMetricFound", |h| {
        condition(h, "ScalingActive").is_some_and(|c| c.0 == "True" && c.1 == "ValidMetricFound")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_metric_scales_up_and_down() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.custom_metrics(), Ok(()));
    let _adapter = ADAPTER.read().await;
    let (metrics, ns) = setup(&bed, "cm-pods", 1).await?;
    let load = PodLoad::start(
        metrics.clone(),
        bed.client(),
        ns.name(),
        "app=web",
        "http_rps",
        40,
    );
    let served = poll_until(
        "http_rps served for the pod",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async {
            let v = served_pod_values(&bed.client(), ns.name(), "app=web", "http_rps").await?;
            Ok((v.len() == 1 && v[0].1 == "40").then_some(v))
        },
    )
    .await?;
    eprintln!("served through the aggregator: {served:?}");
    create_autoscaler(
        &ns,
        6,
        3,
        json!({ "type": "Pods", "pods": { "metric": { "name": "http_rps" },
            "target": { "type": "AverageValue", "averageValue": "50" } } }),
    )
    .await?;
    let ctl = start_controller(&bed, &ns)?;
    let h = wait_valid_metric(&ns).await?;
    ensure!(replicas(&ns).await? == 1, "scaled at 40 against 50");
    let m = current_metric(&h);
    ensure!(
        m["type"] == "Pods" && m["pods"]["current"]["averageValue"] == "40",
        "currentMetrics: {m}"
    );

    // 200 over one pod: 4 pods, then 50 each, at the target.
    load.set_total(200);
    wait_replicas(&ns, 4, Duration::from_secs(60)).await?;
    ns.wait_deployment_ready("web", 4, Duration::from_secs(90))
        .await?;
    let h = wait_autoscaler(&ns, "50 per pod over 4", |h| {
        current_metric(h)["pods"]["current"]["averageValue"] == "50"
    })
    .await?;
    ensure!(replicas(&ns).await? == 4, "status: {:?}", h.status);

    // 40 over four pods: 10 each, one pod is enough once the 3 s window passed.
    load.set_total(40);
    wait_replicas(&ns, 1, Duration::from_secs(60)).await?;
    ctl.stop().await?;
    drop(load);
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_metric_of_an_ingress() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.custom_metrics(), Ok(()));
    let _adapter = ADAPTER.read().await;
    let (metrics, ns) = setup(&bed, "cm-object", 1).await?;
    let ingress: Ingress = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": { "name": "front" },
        "spec": { "defaultBackend": { "service": { "name": "web", "port": { "number": 80 } } } }
    }))?;
    ns.api::<Ingress>()
        .create(&PostParams::default(), &ingress)
        .await?;
    let ingresses = "ingresses.networking.k8s.io";
    let rps = "requests_per_second";
    metrics
        .set_object(ns.name(), ingresses, "front", rps, "300")
        .await?;
    create_autoscaler(
        &ns,
        6,
        3,
        json!({ "type": "Object", "object": {
            "describedObject": { "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "front" },
            "metric": { "name": rps },
            "target": { "type": "AverageValue", "averageValue": "100" } } }),
    )
    .await?;
    let ctl = start_controller(&bed, &ns)?;
    wait_replicas(&ns, 3, Duration::from_secs(60)).await?;
    let h = wait_autoscaler(&ns, "300 over 3 replicas", |h| {
        let m = current_metric(h);
        m["object"]["current"]["averageValue"] == "100"
            && condition(h, "ScalingActive").is_some_and(|c| c.1 == "ValidMetricFound")
    })
    .await?;
    let m = current_metric(&h);
    ensure!(
        m["type"] == "Object" && m["object"]["describedObject"]["name"] == "front",
        "currentMetrics: {m}"
    );

    metrics
        .set_object(ns.name(), ingresses, "front", rps, "80")
        .await?;
    wait_replicas(&ns, 1, Duration::from_secs(60)).await?;
    ctl.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_metric_sums_the_selected_series() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.custom_metrics(), Ok(()));
    let _adapter = ADAPTER.read().await;
    let (metrics, ns) = setup(&bed, "cm-external", 1).await?;
    let metric = "queue_messages_ready";
    let set = |labels: [(&'static str, &'static str); 2], value: &'static str| {
        let (metrics, ns) = (metrics.clone(), ns.name().to_owned());
        async move { metrics.set_external(&ns, metric, &labels, value).await }
    };
    set([("queue", "orders"), ("shard", "a")], "20").await?;
    set([("queue", "orders"), ("shard", "b")], "25").await?;
    set([("queue", "billing"), ("shard", "a")], "1000").await?;
    let served = served_external_values(&bed.client(), ns.name(), metric).await?;
    ensure!(served.len() == 3, "served: {served:?}");
    create_autoscaler(
        &ns,
        6,
        3,
        json!({ "type": "External", "external": {
            "metric": { "name": metric, "selector": { "matchLabels": { "queue": "orders" } } },
            "target": { "type": "AverageValue", "averageValue": "10" } } }),
    )
    .await?;
    let ctl = start_controller(&bed, &ns)?;
    // 45 messages at 10 per replica: 5 (with billing's 1000 it would be maxReplicas).
    wait_replicas(&ns, 5, Duration::from_secs(60)).await?;
    let h = wait_autoscaler(&ns, "45 over 5 replicas", |h| {
        current_metric(h)["external"]["current"]["averageValue"] == "9"
    })
    .await?;
    ensure!(
        condition(&h, "ScalingActive").is_some_and(|c| c.1 == "ValidMetricFound"),
        "status: {:?}",
        h.status
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(replicas(&ns).await? == 5, "left 5 at 45 messages");

    set([("queue", "orders"), ("shard", "a")], "0").await?;
    set([("queue", "orders"), ("shard", "b")], "4").await?;
    wait_replicas(&ns, 1, Duration::from_secs(60)).await?;
    ctl.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_down_holds_the_replicas() -> Result<()> {
    const WINDOW: u64 = 10;
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.custom_metrics(), Ok(()));
    let _adapter = ADAPTER.write().await;
    let (metrics, ns) = setup(&bed, "cm-down", 3).await?;
    let load = PodLoad::start(
        metrics.clone(),
        bed.client(),
        ns.name(),
        "app=web",
        "http_rps",
        150,
    );
    create_autoscaler(
        &ns,
        6,
        WINDOW as i32,
        json!({ "type": "Pods", "pods": { "metric": { "name": "http_rps" },
            "target": { "type": "AverageValue", "averageValue": "50" } } }),
    )
    .await?;
    let ctl = start_controller(&bed, &ns)?;
    wait_valid_metric(&ns).await?;
    ensure!(replicas(&ns).await? == 3, "moved at the target");

    // 30 over three pods: the recommendation is 1, held by the window.
    load.set_total(30);
    wait_autoscaler(&ns, "a held scale-down", |h| {
        condition(h, "AbleToScale").is_some_and(|c| c.1 == "ScaleDownStabilized")
    })
    .await?;
    let heal = Heal::new(&bed, Part::CustomMetrics);
    faults::crash(&bed, Part::CustomMetrics)?;
    let down_at = Instant::now();
    let h = wait_autoscaler(&ns, "ScalingActive=False/FailedGetPodsMetric", |h| {
        condition(h, "ScalingActive")
            .is_some_and(|c| c.0 == "False" && c.1 == "FailedGetPodsMetric")
    })
    .await?;
    let message = condition(&h, "ScalingActive")
        .map(|c| c.2)
        .unwrap_or_default();
    eprintln!(
        "adapter down: ScalingActive=False/FailedGetPodsMetric {:.1}s after the crash: {message}",
        down_at.elapsed().as_secs_f64()
    );
    ensure!(
        message.contains("http_rps"),
        "the message names no metric: {message}"
    );
    // The window passes while the adapter is down: still no scale-down.
    hold_replicas(&ns, 3, Duration::from_secs(WINDOW + 5)).await?;

    // Back, but serving nothing for these pods until they are written again: still held.
    drop(load);
    faults::start(&bed, Part::CustomMetrics)?;
    let served = served_pod_values(&bed.client(), ns.name(), "app=web", "http_rps").await?;
    ensure!(served.is_empty(), "a restarted adapter served {served:?}");
    let h = wait_autoscaler(
        &ns,
        "FailedGetPodsMetric with the adapter back and empty",
        |h| {
            condition(h, "ScalingActive").is_some_and(|c| {
                c.1 == "FailedGetPodsMetric" && c.2.contains("no metrics returned")
            })
        },
    )
    .await?;
    eprintln!(
        "adapter back, no values: {:?}",
        condition(&h, "ScalingActive")
    );
    hold_replicas(&ns, 3, Duration::from_secs(5)).await?;

    // The values again: the held scale-down happens.
    let _load = PodLoad::start(metrics, bed.client(), ns.name(), "app=web", "http_rps", 30);
    let back = Instant::now();
    wait_replicas(&ns, 1, Duration::from_secs(60)).await?;
    eprintln!(
        "scaled down {:.1}s after the values were written again",
        back.elapsed().as_secs_f64()
    );
    drop(heal);
    ctl.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

/// Fails if Deployment `web` leaves `want` replicas within `period` (on missing data), printing the
/// autoscaler's status.
async fn hold_replicas(ns: &TestNamespace, want: i32, period: Duration) -> Result<()> {
    let held = ns.hold_deployment_replicas("web", want, period).await;
    if held.is_err() {
        print_status(ns).await;
    }
    held
}
