//! Usage of the pods a `VerticalAutoscaler` targets: one `metrics.k8s.io/v1beta1` list per
//! namespace per pass (served by metrics-server), turned into the core's samples; and OOM kills
//! read from the pods' container statuses.

use std::collections::HashMap;

use ballast_api::common::parse_quantity;
use ballast_metrics::kube_metrics::{PodMetrics, PodMetricsList, RESOURCE_METRICS_API};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Client;

use crate::scale::error_text;

/// The usage of one container of one pod, owned (the core's `UsageSample` borrows it).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub pod_uid: String,
    pub container: String,
    pub at: i64,
    pub cpu_cores: Option<f64>,
    pub memory_bytes: Option<f64>,
    pub cpu_request: f64,
}

/// An OOM kill, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Oom {
    pub pod_uid: String,
    pub container: String,
    pub at: i64,
    pub memory_request: f64,
}

impl Sample {
    pub fn borrow(&self) -> ballast_vertical::UsageSample<'_> {
        ballast_vertical::UsageSample {
            pod_uid: &self.pod_uid,
            container: &self.container,
            at: self.at,
            cpu_cores: self.cpu_cores,
            memory_bytes: self.memory_bytes,
            cpu_request: self.cpu_request,
        }
    }
}

impl Oom {
    pub fn borrow(&self) -> ballast_vertical::OomKill<'_> {
        ballast_vertical::OomKill {
            pod_uid: &self.pod_uid,
            container: &self.container,
            at: self.at,
            memory_request: self.memory_request,
        }
    }
}

/// Pod name → its metrics, for one namespace.
pub type NamespaceUsage = HashMap<String, PodMetrics>;

/// Lists the `PodMetrics` of `namespace`. The error says what failed (metrics API not served,
/// unavailable backend, forbidden) in the API server's words.
pub async fn read_namespace(client: &Client, namespace: &str) -> Result<NamespaceUsage, String> {
    let path = format!("/apis/{RESOURCE_METRICS_API}/namespaces/{namespace}/pods");
    let request = kube::core::Request::new(&path)
        .list(&kube::api::ListParams::default())
        .map_err(|e| format!("building GET {path}: {e}"))?;
    let list: PodMetricsList = client.request(request).await.map_err(|e| {
        format!(
            "reading {RESOURCE_METRICS_API} pods in {namespace}: {}",
            error_text(&e)
        )
    })?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name.clone().map(|n| (n, m)))
        .collect())
}

/// The samples of `pod` in `usage` (none when metrics-server has no window for it yet). A
/// container absent from the pod's spec is skipped; a quantity that does not parse is dropped.
pub fn samples(pod: &Pod, usage: &NamespaceUsage, out: &mut Vec<Sample>) {
    let (Some(name), Some(uid), Some(spec)) = (
        pod.metadata.name.as_deref(),
        pod.metadata.uid.as_deref(),
        pod.spec.as_ref(),
    ) else {
        return;
    };
    let Some(metrics) = usage.get(name) else {
        return;
    };
    let Some(at) = metrics
        .timestamp
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return;
    };
    for c in &metrics.containers {
        let Some(container) = spec.containers.iter().find(|s| s.name == c.name) else {
            continue;
        };
        let read = |r: &str| c.usage.get(r).and_then(|q| parse_quantity(&q.0).ok());
        out.push(Sample {
            pod_uid: uid.to_owned(),
            container: c.name.clone(),
            at: at.as_second(),
            cpu_cores: read("cpu"),
            memory_bytes: read("memory"),
            cpu_request: request(container, "cpu"),
        });
    }
}

/// The OOM kills `pod`'s status reports (last or current termination with reason `OOMKilled`).
pub fn oom_kills(pod: &Pod, out: &mut Vec<Oom>) {
    let (Some(uid), Some(spec), Some(status)) = (
        pod.metadata.uid.as_deref(),
        pod.spec.as_ref(),
        pod.status.as_ref(),
    ) else {
        return;
    };
    for cs in status.container_statuses.iter().flatten() {
        let terminations = [
            cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()),
            cs.state.as_ref().and_then(|s| s.terminated.as_ref()),
        ];
        for t in terminations.into_iter().flatten() {
            if t.reason.as_deref() != Some("OOMKilled") {
                continue;
            }
            let Some(at) = t.finished_at.as_ref().or(t.started_at.as_ref()) else {
                continue;
            };
            let memory_request = spec
                .containers
                .iter()
                .find(|c| c.name == cs.name)
                .map_or(0.0, |c| request(c, "memory"));
            out.push(Oom {
                pod_uid: uid.to_owned(),
                container: cs.name.clone(),
                at: at.0.as_second(),
                memory_request,
            });
        }
    }
}

/// A container's request of `resource` in base units (0 when absent or unreadable).
fn request(container: &Container, resource: &str) -> f64 {
    container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get(resource))
        .and_then(|q| parse_quantity(&q.0).ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "uid": "u1"},
            "spec": {"containers": [
                {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
                {"name": "sidecar"}
            ]},
            "status": {"containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 1, "image": "x", "imageID": "",
                 "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                    "finishedAt": "2026-12-07T01:00:00Z"}}},
                {"name": "sidecar", "ready": true, "restartCount": 0, "image": "x", "imageID": "",
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "finishedAt": "2026-12-07T01:00:00Z"}}}
            ]}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn samples_come_from_the_containers_of_the_spec() {
        let metrics: PodMetrics = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1"},
            "timestamp": "2026-12-07T01:00:10Z",
            "window": "10s",
            "containers": [
                {"name": "app", "usage": {"cpu": "250000000n", "memory": "100Mi"}},
                {"name": "sidecar", "usage": {"cpu": "bad", "memory": "1Mi"}},
                {"name": "gone", "usage": {"cpu": "1"}}
            ]
        }))
        .unwrap_or_default();
        let usage: NamespaceUsage = [("web-1".to_owned(), metrics)].into();
        let mut out = Vec::new();
        samples(&pod(), &usage, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|s| {
                (
                    s.container.as_str(),
                    s.cpu_cores,
                    s.memory_bytes,
                    s.cpu_request,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("app", Some(0.25), Some(100.0 * 1024.0 * 1024.0), 0.5),
                ("sidecar", None, Some(1024.0 * 1024.0), 0.0),
            ]
        );
    }

    #[test]
    fn only_oom_kills_count() {
        let mut out = Vec::new();
        oom_kills(&pod(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].container, "app");
        assert_eq!(out[0].memory_request, 256.0 * 1024.0 * 1024.0);
    }
}
