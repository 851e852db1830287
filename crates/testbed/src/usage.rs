//! Simulated resource usage of kwok pods, and the metrics pipeline that reports it.
//!
//! kwok runs with a `ClusterResourceUsage` (tests/testbed/kwok/usage-from-annotations.yaml) that
//! reads each container's CPU and memory from its pod's annotations [`USAGE_CPU_ANNOTATION`] and
//! [`USAGE_MEMORY_ANNOTATION`], and emulates every node's kubelet resource endpoint on 127.0.0.1.
//! metrics-server scrapes those endpoints every `BALLAST_METRIC_RESOLUTION_SECONDS` and serves
//! `metrics.k8s.io/v1beta1` through the aggregator; Prometheus scrapes them too (job
//! `kwok-resource`). So a test sets a pod's usage with [`set_pod_usage`] (or a Deployment's with
//! [`crate::TestDeployment::usage`]) and waits with [`wait_for_pod_metrics`] until metrics-server
//! reports it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, Result};
use ballast_api::common::parse_quantity;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};

use crate::wait::poll_until;

/// Pod annotation with the CPU every container of the pod uses, a quantity (`"250m"`).
pub const USAGE_CPU_ANNOTATION: &str = "ballast.dev/usage-cpu";
/// Pod annotation with the memory every container of the pod uses, a quantity (`"300Mi"`).
pub const USAGE_MEMORY_ANNOTATION: &str = "ballast.dev/usage-memory";
/// Node annotation telling metrics-server (≥ 0.7) where the node's resource endpoint is; kwok
/// serves it at `/metrics/nodes/<node>/metrics/resource`.
pub const RESOURCE_METRICS_PATH_ANNOTATION: &str = "metrics.k8s.io/resource-metrics-path";

/// The path of a kwok node's emulated kubelet resource endpoint.
pub fn resource_metrics_path(node: &str) -> String {
    format!("/metrics/nodes/{node}/metrics/resource")
}

/// The annotations that make a pod use `cpu` and `memory` (quantities) per container.
pub fn usage_annotations(cpu: &str, memory: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (USAGE_CPU_ANNOTATION.to_owned(), cpu.to_owned()),
        (USAGE_MEMORY_ANNOTATION.to_owned(), memory.to_owned()),
    ])
}

/// Sets the usage of every container of pod `namespace/pod` by annotating it (a merge patch;
/// other annotations stay). kwok reports the new values from its next read on.
pub async fn set_pod_usage(
    client: &Client,
    namespace: &str,
    pod: &str,
    cpu: &str,
    memory: &str,
) -> Result<()> {
    let patch =
        serde_json::json!({ "metadata": { "annotations": usage_annotations(cpu, memory) } });
    Api::<Pod>::namespaced(client.clone(), namespace)
        .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating pod {namespace}/{pod} with usage {cpu} / {memory}"))?;
    Ok(())
}

/// [`set_pod_usage`] for every pod matching a label selector; returns the pods' names.
pub async fn set_usage_of_pods(
    client: &Client,
    namespace: &str,
    selector: &str,
    cpu: &str,
    memory: &str,
) -> Result<Vec<String>> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing pods {selector:?} in {namespace}"))?;
    let mut names = Vec::new();
    for name in pods.items.into_iter().filter_map(|p| p.metadata.name) {
        set_pod_usage(client, namespace, &name, cpu, memory).await?;
        names.push(name);
    }
    Ok(names)
}

/// What metrics-server serves for one pod, summed over its containers.
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    /// CPU in cores (a rate over `window`).
    pub cpu_cores: f64,
    /// Memory working set in bytes.
    pub memory_bytes: f64,
    /// `timestamp` of the PodMetrics (RFC 3339), the end of the window.
    pub timestamp: String,
    /// `window` of the PodMetrics (a Go duration such as `10.002s`).
    pub window: String,
}

fn pod_metrics_resource() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    }
}

/// The pod's metrics from `metrics.k8s.io/v1beta1`, or `None` while metrics-server has none
/// (it needs two scrapes of the pod's node after the pod started).
pub async fn pod_metrics(client: &Client, namespace: &str, pod: &str) -> Result<Option<PodUsage>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &pod_metrics_resource());
    let Some(obj) = api
        .get_opt(pod)
        .await
        .with_context(|| format!("reading metrics.k8s.io PodMetrics {namespace}/{pod}"))?
    else {
        return Ok(None);
    };
    let text = |key: &str| obj.data[key].as_str().unwrap_or_default().to_owned();
    let mut usage = PodUsage {
        cpu_cores: 0.0,
        memory_bytes: 0.0,
        timestamp: text("timestamp"),
        window: text("window"),
    };
    let containers = obj.data["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &containers {
        let quantity = |resource: &str| -> Result<f64> {
            let q = c["usage"][resource].as_str().unwrap_or("0");
            parse_quantity(q).with_context(|| format!("PodMetrics {namespace}/{pod} {resource}"))
        };
        usage.cpu_cores += quantity("cpu")?;
        usage.memory_bytes += quantity("memory")?;
    }
    Ok(Some(usage))
}

/// Whether served usage matches what was set: memory exactly, CPU within 2% or 0.5m (it is a
/// rate metrics-server derives from kwok's cumulative counter and its own scrape times).
pub fn usage_matches(got: &PodUsage, cpu_cores: f64, memory_bytes: f64) -> bool {
    let cpu_tolerance = (cpu_cores * 0.02).max(0.0005);
    (got.cpu_cores - cpu_cores).abs() <= cpu_tolerance
        && (got.memory_bytes - memory_bytes).abs() < 1.0
}

/// Waits until metrics-server serves `cpu` and `memory` (quantities, the pod's total) for the
/// pod, and returns what it served. Expect one to three metric resolutions (10 s each on the bed)
/// after a pod starts or its usage changes.
pub async fn wait_for_pod_metrics(
    client: &Client,
    namespace: &str,
    pod: &str,
    cpu: &str,
    memory: &str,
    timeout: Duration,
) -> Result<PodUsage> {
    let want_cpu = parse_quantity(cpu).with_context(|| format!("cpu {cpu:?}"))?;
    let want_memory = parse_quantity(memory).with_context(|| format!("memory {memory:?}"))?;
    let last: Mutex<Option<PodUsage>> = Mutex::new(None);
    let found = poll_until(
        &format!("metrics.k8s.io to serve {cpu} / {memory} for pod {namespace}/{pod}"),
        timeout,
        Duration::from_millis(500),
        || async {
            let got = pod_metrics(client, namespace, pod).await?;
            let matched = got
                .as_ref()
                .filter(|u| usage_matches(u, want_cpu, want_memory))
                .cloned();
            *last.lock().unwrap_or_else(|e| e.into_inner()) = got;
            Ok(matched)
        },
    )
    .await;
    found.with_context(|| {
        let seen = last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        format!("last served: {seen:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(cpu: f64, memory: f64) -> PodUsage {
        PodUsage {
            cpu_cores: cpu,
            memory_bytes: memory,
            timestamp: String::new(),
            window: String::new(),
        }
    }

    #[test]
    fn cpu_is_a_rate_with_tolerance_memory_is_exact() {
        let mi = 1024.0 * 1024.0;
        assert!(usage_matches(&usage(0.2497, 300.0 * mi), 0.25, 300.0 * mi));
        assert!(usage_matches(&usage(0.0052, mi), 0.005, mi));
        assert!(!usage_matches(&usage(0.24, 300.0 * mi), 0.25, 300.0 * mi));
        assert!(!usage_matches(&usage(0.25, 299.0 * mi), 0.25, 300.0 * mi));
    }

    #[test]
    fn annotations_and_paths() {
        let a = usage_annotations("250m", "300Mi");
        assert_eq!(a[USAGE_CPU_ANNOTATION], "250m");
        assert_eq!(a[USAGE_MEMORY_ANNOTATION], "300Mi");
        assert_eq!(
            resource_metrics_path("n1"),
            "/metrics/nodes/n1/metrics/resource"
        );
    }
}
