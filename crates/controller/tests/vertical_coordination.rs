//! Horizontal and vertical autoscalers on one target, against the REAL test bed
//! (`tests/testbed.sh up kube metrics-server`): the horizontal reconciler and the vertical
//! recommender (with its mutating webhook, registered with `clientConfig.url:
//! https://127.0.0.1:PORT`) run in this process, restricted to the test's namespace.
//!
//! `a_conflict_is_reported_on_both_objects_and_coordinated_in_the_webhook`: a Deployment whose pods
//! request 2 CPUs and use 300m, a `HorizontalAutoscaler` on its CPU `Utilization`, a
//! `VerticalAutoscaler` (`Initial`) on it:
//!
//! 1. both objects get their conflict condition (`HorizontalConflict`, `VerticalConflict`, reason
//!    `Coordinated`) and a warning event;
//! 2. a new pod (the old one deleted, its ReplicaSet makes another through the webhook) keeps its
//!    2-CPU request (above the recommendation's lower bound: held) while its memory request is the
//!    recommendation;
//! 3. with `horizontalCoordination: Ignore` the reason is `NotCoordinated` and a new pod gets the
//!    recommended CPU too;
//! 4. the horizontal autoscaler changed to an `AverageValue` CPU target: both conditions are False
//!    (`NoConflict`) and a `ConflictResolved` event is published on each.
//!
//! Without a test bed the test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::common::{Condition, parse_quantity};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_api::vertical::VerticalAutoscaler;
use ballast_controller::{horizontal, vertical};
use ballast_testbed::usage::wait_for_pod_metrics;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{
    KwokNode, TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip,
};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use serde_json::json;

mod vertical_support;
use vertical_support::{install_crds, register_webhook, wait_event};

const CPU_REQUEST: f64 = 2.0;

/// Runs `run(shutdown)` on a task; dropping the guard stops it.
struct Task(
    Option<tokio::sync::oneshot::Sender<()>>,
    tokio::task::JoinHandle<()>,
);

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
        self.1.abort();
    }
}

type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>;

fn spawn<F, E>(run: impl FnOnce(Shutdown) -> F) -> Task
where
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown: Shutdown = Box::pin(async move {
        let _ = rx.await;
    });
    let future = run(shutdown);
    Task(
        Some(tx),
        tokio::spawn(async move {
            if let Err(e) = future.await {
                eprintln!("controller stopped: {e}");
            }
        }),
    )
}

async fn start_controllers(bed: &TestBed, ns: &TestNamespace) -> Result<(Task, Task, String)> {
    let mut registry = Registry::default();
    let config = horizontal::Config {
        namespace: Some(ns.name().to_owned()),
        instance: format!("test-{}", ns.name()),
        ..Default::default()
    };
    let controller = horizontal::HorizontalController::new(bed.client(), config, &mut registry)?;
    let horizontal = spawn(|stop| controller.run(stop));

    let certificate = vertical::webhook::Certificate::generate(&[])?;
    let listener =
        vertical::webhook::TlsListener::bind("127.0.0.1:0".parse()?, &certificate).await?;
    let addr = vertical::webhook::local_addr(&listener)?;
    let config = vertical::Config {
        namespace: Some(ns.name().to_owned()),
        interval: Duration::from_secs(2),
        instance: format!("test-{}", ns.name()),
        ..Default::default()
    };
    let recommender = vertical::VerticalRecommender::new(bed.client(), config, &mut registry)
        .with_webhook(listener);
    let vertical = spawn(|stop| recommender.run(stop));
    let hook = register_webhook(bed, ns, addr, &certificate.ca_pem).await?;
    Ok((horizontal, vertical, hook))
}

fn target() -> serde_json::Value {
    json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" })
}

fn cpu_metric(target: serde_json::Value) -> serde_json::Value {
    json!([{ "type": "Resource", "resource": { "name": "cpu", "target": target } }])
}

async fn create_objects(ns: &TestNamespace) -> Result<()> {
    let ha: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "HorizontalAutoscaler",
        "metadata": { "name": "web-h" },
        "spec": {
            "scaleTargetRef": target(),
            "minReplicas": 1,
            "maxReplicas": 1,
            "metrics": cpu_metric(json!({ "type": "Utilization", "averageUtilization": 60 })),
        },
    }))?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &ha)
        .await
        .context("creating HorizontalAutoscaler web-h")?;
    let va: VerticalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "VerticalAutoscaler",
        "metadata": { "name": "web-v" },
        "spec": { "targetRef": target(), "updatePolicy": { "updateMode": "Initial" } },
    }))?;
    ns.api::<VerticalAutoscaler>()
        .create(&PostParams::default(), &va)
        .await
        .context("creating VerticalAutoscaler web-v")?;
    Ok(())
}

fn has(conditions: &[Condition], type_: &str, status: &str, reason: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == status && c.reason == reason)
}

/// Waits until the vertical object's `HorizontalConflict` and the horizontal object's
/// `VerticalConflict` both have `status` and `reason`; returns the vertical object.
async fn wait_conditions(
    ns: &TestNamespace,
    status: &str,
    reason: &str,
) -> Result<VerticalAutoscaler> {
    poll_until(
        &format!("HorizontalConflict and VerticalConflict {status}/{reason}"),
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async {
            let va = ns.api::<VerticalAutoscaler>().get("web-v").await?;
            let ha = ns.api::<HorizontalAutoscaler>().get("web-h").await?;
            let v = va.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]);
            let h = ha.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]);
            let provided = has(
                v,
                "RecommendationProvided",
                "True",
                "RecommendationProvided",
            );
            let both = has(v, "HorizontalConflict", status, reason)
                && has(h, "VerticalConflict", status, reason);
            Ok((provided && both).then_some(va))
        },
    )
    .await
}

/// Deletes the pod of `web` and returns the one its ReplicaSet creates instead.
async fn replace_pod(ns: &TestNamespace) -> Result<Pod> {
    let old: Vec<String> = ns
        .pods("app=web")
        .await?
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    for name in &old {
        ns.api::<Pod>()
            .delete(name, &DeleteParams::default().grace_period(0))
            .await?;
    }
    poll_until(
        "a new pod of web",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || async {
            let pods = ns.pods("app=web").await?;
            Ok(pods
                .into_iter()
                .find(|p| !old.contains(&p.metadata.name.clone().unwrap_or_default())))
        },
    )
    .await
}

/// The request of `resource` of container `app`.
fn request(pod: &Pod, resource: &str) -> Option<f64> {
    let c = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "app")?;
    parse_quantity(&c.resources.as_ref()?.requests.as_ref()?.get(resource)?.0).ok()
}

/// The recommended target of container `app` for `resource`.
fn recommended(va: &VerticalAutoscaler, resource: &str) -> Option<f64> {
    let rec = va.status.as_ref()?.recommendation.as_ref()?;
    let c = rec
        .container_recommendations
        .iter()
        .find(|c| c.container_name == "app")?;
    parse_quantity(&c.target.get(resource)?.0).ok()
}

fn near(got: Option<f64>, want: f64, tolerance: f64) -> bool {
    got.is_some_and(|g| (g - want).abs() <= want * tolerance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_reported_on_both_objects_and_coordinated_in_the_webhook() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("coordination").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    ns.create_deployment(
        TestDeployment::new("web")
            .request("cpu", "2")
            .usage("300m", "400Mi"),
    )
    .await?;
    ns.wait_deployment_ready("web", 1, Duration::from_secs(90))
        .await?;
    for pod in ns.pods("app=web").await? {
        let pod = pod.metadata.name.context("pod without a name")?;
        let timeout = bed.metric_resolution() * 6;
        wait_for_pod_metrics(&bed.client(), ns.name(), &pod, "300m", "400Mi", timeout).await?;
    }
    create_objects(&ns).await?;
    let (horizontal, vertical, hook) = start_controllers(&bed, &ns).await?;

    // 1. The conflict on both objects, with a warning event on each.
    wait_conditions(&ns, "True", "Coordinated").await?;
    let event = wait_event(&ns, "web-v", "HorizontalConflict").await?;
    ensure!(event.type_.as_deref() == Some("Warning"), "{event:?}");
    let note = event.note.unwrap_or_default();
    ensure!(
        note.contains("HorizontalAutoscaler web-h scales on spec.metrics[0] (cpu utilization)"),
        "{note}"
    );
    wait_event(&ns, "web-h", "VerticalConflict").await?;

    // 2. Coordinated: a new pod keeps its CPU request (above the lower bound), memory is set.
    let pod = replace_pod(&ns).await?;
    let va = ns.api::<VerticalAutoscaler>().get("web-v").await?;
    let memory = recommended(&va, "memory").context("no memory target")?;
    let annotation = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(vertical::webhook::ANNOTATION))
        .cloned()
        .unwrap_or_default();
    eprintln!("coordinated pod: {annotation}");
    ensure!(
        request(&pod, "cpu") == Some(CPU_REQUEST),
        "held cpu request: {:?} ({annotation})",
        request(&pod, "cpu")
    );
    ensure!(
        near(request(&pod, "memory"), memory, 0.05),
        "memory request {:?}, target {memory} ({annotation})",
        request(&pod, "memory")
    );

    // 3. Ignore: the CPU recommendation is applied too.
    ns.api::<VerticalAutoscaler>()
        .patch(
            "web-v",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "horizontalCoordination": "Ignore" } })),
        )
        .await?;
    wait_conditions(&ns, "True", "NotCoordinated").await?;
    let pod = replace_pod(&ns).await?;
    let va = ns.api::<VerticalAutoscaler>().get("web-v").await?;
    let cpu = recommended(&va, "cpu").context("no cpu target")?;
    eprintln!(
        "cpu target {cpu}, new pod's request {:?}",
        request(&pod, "cpu")
    );
    ensure!(
        cpu < CPU_REQUEST / 2.0 && near(request(&pod, "cpu"), cpu, 0.1),
        "cpu request {:?}, target {cpu}",
        request(&pod, "cpu")
    );

    // 4. An AverageValue target does not depend on requests: the conflict is over.
    ns.api::<HorizontalAutoscaler>()
        .patch(
            "web-h",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "metrics": cpu_metric(
                json!({ "type": "AverageValue", "averageValue": "500m" })) } })),
        )
        .await?;
    wait_conditions(&ns, "False", "NoConflict").await?;
    wait_event(&ns, "web-v", "ConflictResolved").await?;
    wait_event(&ns, "web-h", "ConflictResolved").await?;

    drop((horizontal, vertical));
    kube::Api::<MutatingWebhookConfiguration>::all(bed.client())
        .delete(&hook, &Default::default())
        .await?;
    ns.cleanup().await?;
    Ok(())
}
