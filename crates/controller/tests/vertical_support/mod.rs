//! Helpers shared by the vertical bed tests (`vertical.rs`, `vertical_update.rs`): the CRDs, a
//! running recommender and its metrics, objects, conditions, events, a workload with usage served
//! by metrics-server, the webhook's registration.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use ballast_api::common::parse_quantity;
use ballast_api::vertical::VerticalAutoscaler;
use ballast_controller::vertical::webhook;
use ballast_testbed::usage::wait_for_pod_metrics;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestDeployment, TestNamespace};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use serde::Deserialize as _;
use serde_json::json;

pub const MANAGER: &str = "ballast-vertical-test";
pub const CPU: &str = "300m";
pub const MEMORY: &str = "400Mi";
pub const MIB: f64 = 1024.0 * 1024.0;

pub async fn install_crds(bed: &TestBed) -> Result<()> {
    let mut crds = Vec::new();
    for file in [
        // The coordination tests put a HorizontalAutoscaler beside the VerticalAutoscaler.
        "horizontalautoscalers.autoscaling.ballast.dev.yaml",
        "verticalautoscalers.autoscaling.ballast.dev.yaml",
        "verticalautoscalercheckpoints.autoscaling.ballast.dev.yaml",
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../crds")
            .join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)?;
            if !value.is_null() {
                crds.push(serde_yaml::from_value::<CustomResourceDefinition>(value)?);
            }
        }
    }
    ballast_testbed::crds::apply(&bed.client(), crds, MANAGER, Duration::from_secs(30)).await
}

/// A recommender running in a task of the test.
pub type Running = ballast_testbed::running::Running<ballast_controller::vertical::Error>;

pub async fn create_va(ns: &TestNamespace, name: &str, spec: serde_json::Value) -> Result<()> {
    let va: VerticalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "VerticalAutoscaler",
        "metadata": { "name": name },
        "spec": spec,
    }))?;
    ns.api::<VerticalAutoscaler>()
        .create(&PostParams::default(), &va)
        .await
        .with_context(|| format!("creating VerticalAutoscaler {name}"))?;
    Ok(())
}

pub fn deployment(name: &str) -> serde_json::Value {
    json!({ "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name } })
}

/// Waits until the object's condition `type_` has `status` (and `reason`, when given).
pub async fn wait_condition(
    ns: &TestNamespace,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> Result<VerticalAutoscaler> {
    poll_until(
        &format!("{name}: condition {type_}={status} {reason:?}"),
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async {
            let va = ns.api::<VerticalAutoscaler>().get(name).await?;
            let hit = va.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == type_ && c.status == status && reason.is_none_or(|r| c.reason == r)
                })
            });
            Ok(hit.then_some(va))
        },
    )
    .await
}

/// The recommended target of container `app` for `resource`, base units.
pub fn target(va: &VerticalAutoscaler, resource: &str) -> Option<f64> {
    let rec = va.status.as_ref()?.recommendation.as_ref()?;
    let c = rec
        .container_recommendations
        .iter()
        .find(|c| c.container_name == "app")?;
    parse_quantity(&c.target.get(resource)?.0).ok()
}

pub async fn wait_event(ns: &TestNamespace, name: &str, reason: &str) -> Result<Event> {
    poll_until(
        &format!("event {reason} on {name}"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let list = ns.api::<Event>().list(&ListParams::default()).await?;
            Ok(list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            }))
        },
    )
    .await
}

/// A node, and a Deployment `name` whose pods use `CPU` and `MEMORY`, served by metrics-server.
pub async fn workload(bed: &TestBed, ns: &TestNamespace, name: &str, replicas: i32) -> Result<()> {
    ns.create_deployment(
        TestDeployment::new(name)
            .replicas(replicas)
            .usage(CPU, MEMORY),
    )
    .await?;
    ns.wait_deployment_ready(name, replicas, Duration::from_secs(90))
        .await?;
    let timeout = bed.metric_resolution() * 6;
    for pod in ns.pods(&format!("app={name}")).await? {
        let pod = pod.metadata.name.context("pod without a name")?;
        wait_for_pod_metrics(&bed.client(), ns.name(), &pod, CPU, MEMORY, timeout).await?;
    }
    Ok(())
}

/// Registers the webhook at `addr` for pods of `ns` (cluster-scoped: the caller deletes it).
pub async fn register_webhook(
    bed: &TestBed,
    ns: &TestNamespace,
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> Result<String> {
    let name = format!("ballast-vertical-{}", ns.name());
    let config = ballast_testbed::webhook::pods_configuration(&name)?;
    let (port, path) = (addr.port(), webhook::PATH);
    ballast_testbed::webhook::register(&bed.client(), config, port, path, ca_pem, ns.name()).await
}

/// The CPU request of container `app` of `pod`.
pub fn cpu_request(pod: &Pod) -> Option<f64> {
    let c = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "app")?;
    parse_quantity(&c.resources.as_ref()?.requests.as_ref()?.get("cpu")?.0).ok()
}
