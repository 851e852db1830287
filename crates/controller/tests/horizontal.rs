//! The horizontal reconciler against the REAL test bed (`tests/testbed.sh up kube metrics-server
//! prometheus`): kube-apiserver (with the aggregation layer), kube-controller-manager (without the
//! HPA controller), kube-scheduler, kwok, metrics-server, Prometheus. Everything listens on and dials 127.0.0.1.
//!
//! - `cpu_utilization_through_metrics_k8s_io`: the bed's metrics pipeline (`tests/testbed.sh up
//!   metrics-server`): kwok reports each pod's CPU from its usage annotation on the node's
//!   emulated kubelet endpoint, metrics-server scrapes it every 10 s and serves
//!   `metrics.k8s.io/v1beta1` through the aggregator. Scale up on high CPU, back down once the
//!   test annotates the pods with low CPU.
//! - `container_cpu_utilization_through_metrics_k8s_io`: a `ContainerResource` metric through the
//!   same pipeline, then a container the pods lack: `FailedGetContainerResourceMetric` and no
//!   scale-down on missing data.
//! - `prometheus_query_scales_up_and_down_with_conditions_and_events`: a series the test serves
//!   on 127.0.0.1 and the bed's Prometheus scrapes (file_sd); then the conditions and events as
//!   `kubectl describe` reads them.
//! - `restart_keeps_stabilization`: the controller is stopped and a new one started while a
//!   scale-down is held by the stabilization window; the history in the status makes the new one
//!   keep the window of the old one.
//! - `bad_input_gets_conditions_events_and_backoff`: missing target, empty selector (a custom
//!   resource's scale), failing query, empty query result; a healthy Deployment and a custom
//!   resource in the same namespace keep being scaled meanwhile.
//! - `two_autoscalers_on_one_target_never_rescale_it`: two autoscalers on one Deployment with a
//!   query that alone would scale it up: both report `AmbiguousSelector` and the Deployment keeps
//!   its replicas, over three controller starts.
//!
//! Each test runs its own reconciler restricted to its own namespace. Without a test bed every
//! test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1` (as `tests/run.sh`
//! sets).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use axum::Router;
use axum::routing::get;
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_controller::horizontal::{Config, HorizontalController};
use ballast_metrics::MetricsConfig;
use ballast_testbed::usage::{set_usage_of_pods, wait_for_pod_metrics};
use ballast_testbed::wait::{poll_until, wait_for};
use ballast_testbed::{
    KwokNode, TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event as EventsEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use serde::Deserialize as _;
use serde_json::json;

// ---- shared helpers ------------------------------------------------------------------------------

const MANAGER: &str = "ballast-horizontal-test";

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

async fn apply_crd(client: &Client, crd: &CustomResourceDefinition) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().context("CRD without a name")?;
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(crd),
    )
    .await
    .with_context(|| format!("applying CRD {name}"))?;
    wait_for(&api, &name, Duration::from_secs(30), established).await?;
    Ok(())
}

/// Installs the HorizontalAutoscaler CRD from crds/ (the generated YAML) and the test's `Widget`
/// CRD (a custom resource with a scale subresource and no controller).
async fn install_crds(client: &Client) -> Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../crds/horizontalautoscalers.autoscaling.ballast.dev.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let crd: CustomResourceDefinition = serde_yaml::from_value(value)?;
        apply_crd(client, &crd).await?;
    }
    let widget: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.test.ballast.dev" },
        "spec": {
            "group": "test.ballast.dev",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "properties": {
                    "spec": { "type": "object", "properties": { "replicas": { "type": "integer" } } },
                    "status": { "type": "object", "properties": {
                        "replicas": { "type": "integer" }, "selector": { "type": "string" } } }
                } } },
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector"
                    }
                }
            }]
        }
    }))?;
    apply_crd(client, &widget).await
}

fn widget_resource() -> ApiResource {
    ApiResource {
        group: "test.ballast.dev".into(),
        version: "v1".into(),
        api_version: "test.ballast.dev/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    }
}

/// Creates a Widget with `replicas` and, when given, `status.selector` (and `status.replicas`).
async fn create_widget(
    ns: &TestNamespace,
    name: &str,
    replicas: i64,
    selector: Option<&str>,
) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client(), ns.name(), &widget_resource());
    let obj = DynamicObject::new(name, &widget_resource())
        .data(json!({ "spec": { "replicas": replicas } }));
    api.create(&PostParams::default(), &obj)
        .await
        .with_context(|| format!("creating widget {name}"))?;
    if let Some(sel) = selector {
        let status = json!({ "status": { "replicas": replicas, "selector": sel } });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
    }
    Ok(())
}

async fn widget_replicas(ns: &TestNamespace, name: &str) -> Result<i64> {
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client(), ns.name(), &widget_resource());
    let w = api.get(name).await?;
    Ok(w.data["spec"]["replicas"].as_i64().unwrap_or(-1))
}

/// A HorizontalAutoscaler from the JSON of its spec.
async fn create_hza(
    ns: &TestNamespace,
    name: &str,
    spec: serde_json::Value,
) -> Result<HorizontalAutoscaler> {
    let obj: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "HorizontalAutoscaler",
        "metadata": { "name": name, "namespace": ns.name() },
        "spec": spec,
    }))
    .context("building the HorizontalAutoscaler")?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &obj)
        .await
        .with_context(|| format!("creating HorizontalAutoscaler {name}"))
}

fn deployment_target(name: &str) -> serde_json::Value {
    json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": name })
}

fn prometheus_metric(query: &str, average_value: &str) -> serde_json::Value {
    json!({
        "type": "Prometheus",
        "prometheus": { "query": query, "target": { "type": "AverageValue", "averageValue": average_value } }
    })
}

/// A reconciler running in this test's runtime, restricted to one namespace.
type Running = ballast_testbed::running::Running<ballast_controller::horizontal::Error>;

fn start_controller(
    bed: &TestBed,
    ns: &TestNamespace,
    prometheus_url: Option<String>,
) -> Result<Running> {
    let config = Config {
        namespace: Some(ns.name().to_owned()),
        metrics: MetricsConfig {
            prometheus_url,
            read_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        instance: format!("test-{}", ns.name()),
        ..Default::default()
    };
    let mut registry = Registry::default();
    let controller = HorizontalController::new(bed.client(), config, &mut registry)?;
    Ok(Running::spawn(|s| controller.run(s), registry))
}

async fn deployment_replicas(ns: &TestNamespace, name: &str) -> Result<i32> {
    let d = ns.api::<Deployment>().get(name).await?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(-1))
}

async fn wait_replicas(ns: &TestNamespace, name: &str, want: i32, timeout: Duration) -> Result<()> {
    let hza_api = ns.api::<HorizontalAutoscaler>();
    let r = poll_until(
        &format!("deployment {name} at {want} replicas"),
        timeout,
        Duration::from_millis(500),
        || async {
            let got = deployment_replicas(ns, name).await?;
            Ok((got == want).then_some(()))
        },
    )
    .await;
    if r.is_err() {
        for h in hza_api.list(&ListParams::default()).await?.items {
            eprintln!(
                "{}: {}",
                h.metadata.name.unwrap_or_default(),
                serde_json::to_string(&h.status).unwrap_or_default()
            );
        }
    }
    r
}

fn condition<'a>(
    h: &'a HorizontalAutoscaler,
    type_: &str,
) -> Option<&'a ballast_api::common::Condition> {
    h.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Waits until the condition `type_` has `status` and `reason`.
async fn wait_condition(
    ns: &TestNamespace,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Result<HorizontalAutoscaler> {
    wait_for(
        &ns.api::<HorizontalAutoscaler>(),
        name,
        Duration::from_secs(60),
        |h: &HorizontalAutoscaler| {
            condition(h, type_).is_some_and(|c| c.status == status && c.reason == reason)
        },
    )
    .await
}

/// The events of an autoscaler as `kubectl describe` lists them (core/v1 Events with an
/// involvedObject field selector): (type, reason, message, count).
async fn events_of(
    ns: &TestNamespace,
    h: &HorizontalAutoscaler,
) -> Result<Vec<(String, String, String, i32)>> {
    let name = h.metadata.name.clone().unwrap_or_default();
    let uid = h.metadata.uid.clone().unwrap_or_default();
    let selector = format!(
        "involvedObject.name={name},involvedObject.namespace={},involvedObject.kind=HorizontalAutoscaler,involvedObject.uid={uid}",
        ns.name()
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
                e.count.unwrap_or(1),
            )
        })
        .collect())
}

/// Waits for an event with `reason` whose message contains `message`.
async fn wait_event(
    ns: &TestNamespace,
    name: &str,
    reason: &str,
    message: &str,
) -> Result<(String, String, String, i32)> {
    poll_until(
        &format!("event {reason} ({message}) on {name}"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let h = ns.api::<HorizontalAutoscaler>().get(name).await?;
            Ok(events_of(ns, &h)
                .await?
                .into_iter()
                .find(|e| e.1 == reason && e.2.contains(message)))
        },
    )
    .await
}

/// `kubectl describe` of the autoscaler, when the bed has a kubectl.
async fn kubectl_describe(bed: &TestBed, ns: &TestNamespace, name: &str) -> Option<String> {
    let kubectl = bed.env().get("BALLAST_KUBECTL")?.to_owned();
    let kubeconfig = bed.env().get("BALLAST_KUBECONFIG")?.to_owned();
    let (ns, name) = (ns.name().to_owned(), name.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(kubectl)
            .args([
                "--kubeconfig",
                &kubeconfig,
                "describe",
                "horizontalautoscalers.autoscaling.ballast.dev",
                &name,
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

// ---- a series for Prometheus to scrape -------------------------------------------------------------

/// `ballast_test_queue{test_ns="<namespace>"}`, served on 127.0.0.1 and scraped by the bed's
/// Prometheus through a file_sd target file (removed on drop).
struct Series {
    value: Arc<Mutex<f64>>,
    file: PathBuf,
    query: String,
    task: tokio::task::JoinHandle<()>,
}

impl Series {
    async fn start(bed: &TestBed, ns: &TestNamespace, initial: f64) -> Result<Option<Series>> {
        let Some(dir) = bed.prometheus_targets_dir() else {
            return Ok(None);
        };
        let value = Arc::new(Mutex::new(initial));
        let v = value.clone();
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let v = *v.lock().unwrap();
                async move { format!("# TYPE ballast_test_queue gauge\nballast_test_queue {v}\n") }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let file = PathBuf::from(dir).join(format!("{}.json", ns.name()));
        let targets =
            json!([{ "targets": [addr.to_string()], "labels": { "test_ns": ns.name() } }]);
        // Write then rename, so Prometheus never reads half a file.
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&targets)?)?;
        std::fs::rename(&tmp, &file)?;
        let series = Series {
            value,
            file,
            query: format!("ballast_test_queue{{test_ns=\"{}\"}}", ns.name()),
            task,
        };
        series.wait_scraped(bed, initial).await?;
        Ok(Some(series))
    }

    fn set(&self, v: f64) {
        *self.value.lock().unwrap() = v;
    }

    /// Waits until Prometheus answers the query with `want`.
    async fn wait_scraped(&self, bed: &TestBed, want: f64) -> Result<()> {
        let client = bed.prometheus().context("no Prometheus")?;
        poll_until(
            &format!("Prometheus to scrape {} = {want}", self.query),
            Duration::from_secs(60),
            Duration::from_millis(500),
            || async {
                let r = client.query(self.query.as_str()).get().await?;
                let got = r
                    .data()
                    .as_vector()
                    .and_then(|v| v.first())
                    .map(|s| s.sample().value());
                Ok((got == Some(want)).then_some(()))
            },
        )
        .await
    }
}

impl Drop for Series {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        self.task.abort();
    }
}

async fn node_and_deployment(ns: &TestNamespace, name: &str, replicas: i32) -> Result<()> {
    ns.create_deployment(TestDeployment::new(name).replicas(replicas))
        .await?;
    ns.wait_deployment_ready(name, replicas, Duration::from_secs(90))
        .await?;
    Ok(())
}

// ---- (a) CPU utilization through metrics.k8s.io ---------------------------------------------------

/// CPU per pod, just under the 100m request: metrics-server's rate is within a fraction of a
/// millicore of it and quantities round up, so each pod reads as 100m, i.e. 100%.
const HIGH_CPU: &str = "99500u";
const LOW_CPU: &str = "5m";
const MEMORY: &str = "10Mi";

/// Waits until metrics-server serves `cpu` for every pod of `app=<name>`.
async fn wait_usage_served(bed: &TestBed, ns: &TestNamespace, name: &str, cpu: &str) -> Result<()> {
    // A pod's first value needs two scrapes after it started; a changed one up to two more.
    let timeout = bed.metric_resolution() * 6;
    for pod in ns.pods(&format!("app={name}")).await? {
        let pod = pod.metadata.name.context("pod without a name")?;
        let got =
            wait_for_pod_metrics(&bed.client(), ns.name(), &pod, cpu, MEMORY, timeout).await?;
        eprintln!("{pod}: {got:?}");
    }
    Ok(())
}

/// A namespace with a kwok node and Deployment `web` of 2 pods whose every pod, also each one a
/// scale-up adds, uses 100% of its 100m CPU request (above a 50% target), once metrics-server
/// serves it (kwok reports the pods' usage annotations).
async fn web_at_high_cpu(bed: &TestBed, prefix: &str) -> Result<TestNamespace> {
    install_crds(&bed.client()).await?;
    let ns = bed.namespace(prefix).await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    ns.create_deployment(
        TestDeployment::new("web")
            .replicas(2)
            .usage(HIGH_CPU, MEMORY),
    )
    .await?;
    ns.wait_deployment_ready("web", 2, Duration::from_secs(90))
        .await?;
    wait_usage_served(bed, &ns, "web", HIGH_CPU).await?;
    Ok(ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_utilization_through_metrics_k8s_io() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    let ns = web_at_high_cpu(&bed, "hza-cpu").await?;

    create_hza(&ns, "web", json!({
        "scaleTargetRef": deployment_target("web"),
        "minReplicas": 2,
        "maxReplicas": 6,
        "syncPeriodSeconds": 1,
        "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 50 } } }],
        "behavior": { "scaleDown": { "stabilizationWindowSeconds": 5, "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 1 }] } }
    }))
    .await?;
    let ctl = start_controller(&bed, &ns, None)?;

    // 100% / 50% → ratio 2 → 4 replicas; once metrics-server reports the new pods (also 100%),
    // 6 (maxReplicas).
    wait_replicas(&ns, "web", 6, Duration::from_secs(180)).await?;
    let h = wait_condition(&ns, "web", "ScalingActive", "True", "ValidMetricFound").await?;
    let current = &h.status.as_ref().unwrap().current_metrics;
    ensure!(
        current.iter().any(|m| m
            .resource
            .as_ref()
            .is_some_and(|r| r.name == "cpu" && r.current.average_utilization == Some(100))),
        "currentMetrics should show cpu at 100%: {current:?}"
    );
    wait_event(
        &ns,
        "web",
        "SuccessfulRescale",
        "cpu resource utilization (percentage of request) above target",
    )
    .await?;

    // Low CPU on every pod: back to minReplicas once metrics-server reports it and the 5 s
    // window has passed.
    let annotated = set_usage_of_pods(&bed.client(), ns.name(), "app=web", LOW_CPU, MEMORY).await?;
    ensure!(annotated.len() == 6, "annotated {annotated:?}");
    wait_replicas(&ns, "web", 2, Duration::from_secs(120)).await?;
    wait_event(
        &ns,
        "web",
        "SuccessfulRescale",
        "New size: 2; reason: All metrics below target",
    )
    .await?;

    ctl.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

/// A `ContainerResource` metric (the CPU of container `app` only) through metrics-server: up to
/// `maxReplicas` on 100% of the request, `currentMetrics` naming the container; then the object
/// patched to a container the pods do not have: `ScalingActive=False` with
/// `FailedGetContainerResourceMetric`, and no scale-down on the missing data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_cpu_utilization_through_metrics_k8s_io() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    let ns = web_at_high_cpu(&bed, "hza-container").await?;

    let container_metric = |container: &str| {
        json!([{ "type": "ContainerResource", "containerResource": {
            "name": "cpu", "container": container,
            "target": { "type": "Utilization", "averageUtilization": 50 } } }])
    };
    create_hza(&ns, "web", json!({
        "scaleTargetRef": deployment_target("web"),
        "minReplicas": 2,
        "maxReplicas": 4,
        "syncPeriodSeconds": 1,
        "metrics": container_metric("app"),
        "behavior": { "scaleDown": { "stabilizationWindowSeconds": 0, "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 1 }] } }
    }))
    .await?;
    let ctl = start_controller(&bed, &ns, None)?;

    // 100% / 50% → ratio 2 → 4 replicas (maxReplicas).
    wait_replicas(&ns, "web", 4, Duration::from_secs(180)).await?;
    let h = wait_condition(&ns, "web", "ScalingActive", "True", "ValidMetricFound").await?;
    let current = &h.status.as_ref().context("no status")?.current_metrics;
    ensure!(
        current.iter().any(|m| m
            .container_resource
            .as_ref()
            .is_some_and(|c| c.name == "cpu"
                && c.container == "app"
                && c.current.average_utilization == Some(100))),
        "currentMetrics should show container app's cpu at 100%: {current:?}"
    );

    // A container the pods do not have: no metric, so no decision and no scale-down.
    ns.api::<HorizontalAutoscaler>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "metrics": container_metric("sidecar") } })),
        )
        .await?;
    let h = wait_condition(
        &ns,
        "web",
        "ScalingActive",
        "False",
        "FailedGetContainerResourceMetric",
    )
    .await?;
    let message = h
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "ScalingActive"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    eprintln!("ScalingActive=False: {message}");
    ensure!(message.contains("sidecar"), "{message}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        deployment_replicas(&ns, "web").await? == 4,
        "scaled on missing data"
    );

    ctl.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

// ---- (b) + (c) a real Prometheus query; conditions and events --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_query_scales_up_and_down_with_conditions_and_events() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prometheus = service_or_skip!(bed.prometheus_url(), Ok(()));
    install_crds(&bed.client()).await?;
    let ns = bed.namespace("hza-prom").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    let series = service_or_skip!(Series::start(&bed, &ns, 5.0).await?, Ok(()));
    node_and_deployment(&ns, "web", 1).await?;

    create_hza(
        &ns,
        "web",
        json!({
            "scaleTargetRef": deployment_target("web"),
            "minReplicas": 1,
            "maxReplicas": 5,
            "syncPeriodSeconds": 1,
            "metrics": [prometheus_metric(&series.query, "10")],
            "behavior": { "scaleDown": { "stabilizationWindowSeconds": 5 } }
        }),
    )
    .await?;
    let ctl = start_controller(&bed, &ns, Some(prometheus))?;

    // 5 over 1 replica, target 10 per replica: stay at 1.
    wait_condition(&ns, "web", "ScalingActive", "True", "ValidMetricFound").await?;
    ensure!(deployment_replicas(&ns, "web").await? == 1);

    // 45 → ceil(45 / 10) = 5.
    series.set(45.0);
    wait_replicas(&ns, "web", 5, Duration::from_secs(60)).await?;
    // 12 over 5 replicas → ceil(12 / 10) = 2, after the 5 s scale-down window.
    series.set(12.0);
    wait_replicas(&ns, "web", 2, Duration::from_secs(60)).await?;

    // (c) Conditions and events, as kubectl describe reads them.
    let h = wait_for(
        &ns.api::<HorizontalAutoscaler>(),
        "web",
        Duration::from_secs(30),
        |h: &HorizontalAutoscaler| {
            h.status
                .as_ref()
                .is_some_and(|s| s.current_replicas == 2 && s.desired_replicas == 2)
        },
    )
    .await?;
    let st = h.status.as_ref().unwrap();
    eprintln!("status: {}", serde_json::to_string_pretty(st)?);
    for (type_, status) in [
        ("AbleToScale", "True"),
        ("ScalingActive", "True"),
        ("ScalingLimited", "False"),
    ] {
        let c = condition(&h, type_).with_context(|| format!("no {type_} condition"))?;
        ensure!(c.status == status, "{type_}: {c:?}");
    }
    ensure!(condition(&h, "ScalingActive").unwrap().reason == "ValidMetricFound");
    ensure!(st.last_scale_time.is_some(), "lastScaleTime not set");
    ensure!(st.reference.as_deref() == Some("Deployment/web"));
    ensure!(
        st.current_metrics.iter().any(|m| m
            .prometheus
            .as_ref()
            .is_some_and(|p| p.current.average_value.is_some())),
        "currentMetrics: {:?}",
        st.current_metrics
    );
    let history = st.history.as_ref().context("no history in status")?;
    ensure!(
        !history.recommendations.is_empty()
            && !history.scale_up_events.is_empty()
            && !history.scale_down_events.is_empty(),
        "{history:?}"
    );

    let events = events_of(&ns, &h).await?;
    eprintln!("events: {events:#?}");
    let up = events
        .iter()
        .find(|e| e.1 == "SuccessfulRescale" && e.2.starts_with("New size: 5;"));
    let down = events
        .iter()
        .find(|e| e.1 == "SuccessfulRescale" && e.2.starts_with("New size: 2;"));
    ensure!(
        up.is_some_and(|e| e.0 == "Normal"),
        "no scale-up event: {events:?}"
    );
    ensure!(
        down.is_some(),
        "no scale-down event (each message is its own event): {events:?}"
    );
    ensure!(up.unwrap().2.contains("above target"), "{up:?}");

    if let Some(text) = kubectl_describe(&bed, &ns, "web").await {
        eprintln!("kubectl describe:\n{text}");
        for needle in [
            "AbleToScale",
            "ScalingActive",
            "ValidMetricFound",
            "SuccessfulRescale",
            "New size: 2",
        ] {
            ensure!(text.contains(needle), "kubectl describe lacks {needle:?}");
        }
    }

    ctl.stop().await?;
    drop(series);
    ns.cleanup().await?;
    Ok(())
}

// ---- (d) restart mid-way: stabilization survives ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_stabilization() -> Result<()> {
    const WINDOW: f64 = 30.0;
    let bed = testbed_or_skip!(Ok(()));
    let prometheus = service_or_skip!(bed.prometheus_url(), Ok(()));
    install_crds(&bed.client()).await?;
    let ns = bed.namespace("hza-restart").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    let series = service_or_skip!(Series::start(&bed, &ns, 40.0).await?, Ok(()));
    node_and_deployment(&ns, "web", 1).await?;
    create_hza(
        &ns,
        "web",
        json!({
            "scaleTargetRef": deployment_target("web"),
            "minReplicas": 1,
            "maxReplicas": 4,
            "syncPeriodSeconds": 1,
            "metrics": [prometheus_metric(&series.query, "10")],
            "behavior": { "scaleDown": { "stabilizationWindowSeconds": WINDOW as i32 } }
        }),
    )
    .await?;
    let first = start_controller(&bed, &ns, Some(prometheus.clone()))?;
    wait_replicas(&ns, "web", 4, Duration::from_secs(60)).await?;

    // The metric drops: every recommendation from now on is 1, but the window holds 4 for 30 s
    // after the last recommendation of 4.
    series.set(5.0);
    series.wait_scraped(&bed, 5.0).await?;
    let low_since = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Steady state (every decision repeats recommendation 1): the status is not rewritten.
    let rv = |h: HorizontalAutoscaler| h.metadata.resource_version.unwrap_or_default();
    let steady = rv(ns.api::<HorizontalAutoscaler>().get("web").await?);
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        rv(ns.api::<HorizontalAutoscaler>().get("web").await?) == steady,
        "the status was rewritten while only time moved"
    );
    ensure!(
        deployment_replicas(&ns, "web").await? == 4,
        "scaled down inside the window"
    );
    first.stop().await?;
    let h = ns.api::<HorizontalAutoscaler>().get("web").await?;
    let history = h
        .status
        .as_ref()
        .and_then(|s| s.history.clone())
        .context("no history stored")?;
    ensure!(
        history.recommendations.iter().any(|r| r.replicas == 4),
        "{history:?}"
    );
    ensure!(
        history.recommendations.iter().any(|r| r.replicas == 1),
        "{history:?}"
    );

    // A new controller: it must keep holding until the old window ends, not scale down at once
    // and not start a new window of its own.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restart = Instant::now();
    let second = start_controller(&bed, &ns, Some(prometheus))?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let h = ns.api::<HorizontalAutoscaler>().get("web").await?;
    let able = condition(&h, "AbleToScale").context("no AbleToScale")?;
    ensure!(
        able.reason == "ScaleDownStabilized",
        "after the restart: {able:?}"
    );
    ensure!(
        deployment_replicas(&ns, "web").await? == 4,
        "scaled down right after the restart"
    );

    let down = poll_until(
        "the scale-down",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async { Ok((deployment_replicas(&ns, "web").await? != 4).then(Instant::now)) },
    )
    .await?;
    let since_low = (down - low_since).as_secs_f64();
    let since_restart = (down - restart).as_secs_f64();
    eprintln!(
        "scale-down {since_low:.1}s after the metric dropped, {since_restart:.1}s after the restart"
    );
    ensure!(deployment_replicas(&ns, "web").await? == 1);
    // The window of the first controller: about WINDOW after the last recommendation of 4
    // (which was at most a scrape before `low_since`).
    ensure!(
        since_low >= WINDOW - 4.0,
        "scaled down {since_low:.1}s after the drop: the window was not respected"
    );
    ensure!(
        since_low <= WINDOW + 6.0,
        "scaled down {since_low:.1}s after the drop: the window restarted"
    );
    // Without the stored history, the new controller would have waited a whole window.
    ensure!(
        since_restart < WINDOW - 4.0,
        "the new controller started a window of its own ({since_restart:.1}s)"
    );

    second.stop().await?;
    drop(series);
    ns.cleanup().await?;
    Ok(())
}

// ---- (e) bad input --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_conditions_events_and_backoff() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prometheus = service_or_skip!(bed.prometheus_url(), Ok(()));
    install_crds(&bed.client()).await?;
    let ns = bed.namespace("hza-bad").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    let series = service_or_skip!(Series::start(&bed, &ns, 5.0).await?, Ok(()));
    for d in ["web", "other", "third"] {
        ns.create_deployment(TestDeployment::new(d).replicas(1))
            .await?;
    }
    for d in ["web", "other", "third"] {
        ns.wait_deployment_ready(d, 1, Duration::from_secs(90))
            .await?;
    }
    create_widget(&ns, "no-selector", 1, None).await?;
    create_widget(&ns, "widget", 1, Some("app=widget")).await?;

    let base = |target: serde_json::Value, metric: serde_json::Value| json!({ "scaleTargetRef": target, "minReplicas": 1, "maxReplicas": 4, "syncPeriodSeconds": 1, "metrics": [metric] });
    let good = prometheus_metric(&series.query, "10");
    create_hza(
        &ns,
        "missing-target",
        base(deployment_target("does-not-exist"), good.clone()),
    )
    .await?;
    create_hza(
        &ns,
        "broken-query",
        base(
            deployment_target("other"),
            prometheus_metric("sum(rate(", "10"),
        ),
    )
    .await?;
    create_hza(
        &ns,
        "empty-result",
        base(
            deployment_target("third"),
            prometheus_metric("ballast_test_queue{test_ns=\"nobody\"}", "10"),
        ),
    )
    .await?;
    create_hza(
        &ns,
        "no-selector",
        base(
            json!({ "apiVersion": "test.ballast.dev/v1", "kind": "Widget", "name": "no-selector" }),
            good.clone(),
        ),
    )
    .await?;
    create_hza(
        &ns,
        "widget",
        base(
            json!({ "apiVersion": "test.ballast.dev/v1", "kind": "Widget", "name": "widget" }),
            good.clone(),
        ),
    )
    .await?;
    create_hza(&ns, "healthy", base(deployment_target("web"), good)).await?;
    let started = Instant::now();
    let ctl = start_controller(&bed, &ns, Some(prometheus))?;

    // Each broken object: its condition and its event.
    let h = wait_condition(
        &ns,
        "missing-target",
        "AbleToScale",
        "False",
        "FailedGetScale",
    )
    .await?;
    eprintln!("missing-target: {:?}", condition(&h, "AbleToScale"));
    wait_event(
        &ns,
        "missing-target",
        "FailedGetScale",
        "\"does-not-exist\" not found",
    )
    .await?;

    let h = wait_condition(
        &ns,
        "broken-query",
        "ScalingActive",
        "False",
        "FailedGetPrometheusMetric",
    )
    .await?;
    eprintln!("broken-query: {:?}", condition(&h, "ScalingActive"));
    wait_event(
        &ns,
        "broken-query",
        "FailedGetPrometheusMetric",
        "query failed",
    )
    .await?;
    wait_event(
        &ns,
        "broken-query",
        "FailedComputeMetricsReplicas",
        "invalid metrics",
    )
    .await?;

    let h = wait_condition(
        &ns,
        "empty-result",
        "ScalingActive",
        "False",
        "FailedGetPrometheusMetric",
    )
    .await?;
    eprintln!("empty-result: {:?}", condition(&h, "ScalingActive"));
    wait_event(&ns, "empty-result", "FailedGetPrometheusMetric", "no data").await?;

    let h = wait_condition(
        &ns,
        "no-selector",
        "ScalingActive",
        "False",
        "InvalidSelector",
    )
    .await?;
    eprintln!("no-selector: {:?}", condition(&h, "ScalingActive"));
    wait_event(
        &ns,
        "no-selector",
        "SelectorRequired",
        "selector is required",
    )
    .await?;

    // Meanwhile the healthy objects are scaled: a Deployment and a custom resource.
    series.set(35.0);
    wait_replicas(&ns, "web", 4, Duration::from_secs(60)).await?;
    poll_until(
        "widget at 4 replicas",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async { Ok((widget_replicas(&ns, "widget").await? == 4).then_some(())) },
    )
    .await?;
    // Backoff: over the same 30 s, the broken objects were tried far less often than the
    // healthy ones (1 s period): 1, 2, 4 s apart, then every 4 s (four periods, the cap).
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(started.elapsed())).await;
    let elapsed = started.elapsed().as_secs_f64();
    let failed = ctl.counter("ballast_horizontal_reconciles", "outcome=\"failed\"");
    let ok = ctl.counter("ballast_horizontal_reconciles", "outcome=\"ok\"");
    eprintln!(
        "{elapsed:.0}s: {ok} ok reconciles (2 healthy objects), {failed} failed (4 broken objects)"
    );
    ensure!(
        ok >= elapsed * 2.0 * 0.5,
        "healthy objects were not kept on their 1 s period: {ok} in {elapsed:.0}s"
    );
    ensure!(
        failed <= 4.0 * (elapsed / 4.0 + 4.0),
        "broken objects were retried without backoff: {failed} in {elapsed:.0}s"
    );
    ensure!(failed >= 4.0, "broken objects were not retried: {failed}");
    // The repeated failure is one event with a count, not one event per attempt.
    let h = ns
        .api::<HorizontalAutoscaler>()
        .get("missing-target")
        .await?;
    let events: Vec<EventsEvent> = ns
        .api::<EventsEvent>()
        .list(&ListParams::default())
        .await?
        .items;
    let mine: Vec<&EventsEvent> = events
        .iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == h.metadata.uid.as_deref()
                && e.reason.as_deref() == Some("FailedGetScale")
        })
        .collect();
    ensure!(
        mine.len() == 1,
        "FailedGetScale should be one event (a series): {mine:?}"
    );

    ctl.stop().await?;
    drop(series);
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_autoscalers_on_one_target_never_rescale_it() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prometheus = service_or_skip!(bed.prometheus_url(), Ok(()));
    install_crds(&bed.client()).await?;
    let ns = bed.namespace("hza-ambiguous").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    ns.create_deployment(TestDeployment::new("web").replicas(1))
        .await?;
    ns.wait_deployment_ready("web", 1, Duration::from_secs(90))
        .await?;
    // A constant query that alone would take the Deployment to maxReplicas.
    let spec = json!({
        "scaleTargetRef": deployment_target("web"), "minReplicas": 1, "maxReplicas": 4,
        "syncPeriodSeconds": 1, "metrics": [prometheus_metric("vector(100)", "10")],
    });
    for name in ["first", "second"] {
        create_hza(&ns, name, spec.clone()).await?;
    }
    // Every start of a controller is a new chance to decide before knowing the other.
    for round in 0..3 {
        let ctl = start_controller(&bed, &ns, Some(prometheus.clone()))?;
        for name in ["first", "second"] {
            wait_condition(&ns, name, "ScalingActive", "False", "AmbiguousSelector").await?;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let replicas = deployment_replicas(&ns, "web").await?;
        ensure!(
            replicas == 1,
            "start {round}: two autoscalers on one target rescaled it to {replicas}"
        );
        ctl.stop().await?;
    }
    Ok(())
}
