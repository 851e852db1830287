//! Values served by the bed's custom and external metrics adapter (`tests/testbed.sh up
//! custom-metrics`): `custom.metrics.k8s.io` (Pods and Object metrics) and
//! `external.metrics.k8s.io` (External metrics) through the API server's aggregator, as a
//! prometheus-adapter or KEDA serves them in a cluster.
//!
//! The adapter is upstream's adapter library with the test provider of its repository
//! (`tests/testbed/go/custom-metrics/main.go`): it serves what was written to it, over plain HTTP on
//! 127.0.0.1 ([`CustomMetrics`]), and nothing else. Values live in its memory: a restarted adapter
//! serves nothing until they are written again. A Pods metric is served only for the pods that
//! exist and have a value; a pod without one is missing, as a pod that was never scraped.
//!
//! [`PodLoad`] keeps a per-pod metric at a total spread over the pods that run (requests per
//! second shared by the replicas), following scale-ups and scale-downs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

use crate::{Service, TestBed};

/// Writes metric values into the bed's adapter.
#[derive(Clone)]
pub struct CustomMetrics {
    write_url: String,
    http: reqwest::Client,
}

impl TestBed {
    /// The bed's custom and external metrics adapter, or `None` when it is not running (a panic
    /// under `BALLAST_REQUIRE_TESTBED=1`, naming `tests/testbed.sh up custom-metrics`).
    pub fn custom_metrics(&self) -> Option<CustomMetrics> {
        self.service_url(Service::CustomMetrics)?;
        let write_url = self
            .env()
            .get("BALLAST_CUSTOM_METRICS_WRITE_URL")?
            .to_owned();
        Some(CustomMetrics {
            write_url,
            http: crate::http_client(),
        })
    }
}

impl CustomMetrics {
    /// Sets the Pods metric `metric` of pod `namespace/pod` to `value` (a quantity: `"75"`,
    /// `"500m"`).
    pub async fn set_pod(
        &self,
        namespace: &str,
        pod: &str,
        metric: &str,
        value: &str,
    ) -> Result<()> {
        self.set_object(namespace, "pods", pod, metric, value).await
    }

    /// Sets the Object metric `metric` of `namespace/name`, whose kind is the plural `resource`
    /// qualified by its group (`ingresses.networking.k8s.io`; `pods` for the core group), to
    /// `value`.
    pub async fn set_object(
        &self,
        namespace: &str,
        resource: &str,
        name: &str,
        metric: &str,
        value: &str,
    ) -> Result<()> {
        let url = format!(
            "{}/write-metrics/namespaces/{namespace}/{resource}/{name}/{metric}",
            self.write_url
        );
        self.post(&url, value)
            .await
            .with_context(|| format!("setting {metric} of {resource} {namespace}/{name}"))
    }

    /// Sets the series of External metric `metric` in `namespace` that has exactly `labels` to
    /// `value` (the other series of the metric are left as they are).
    pub async fn set_external(
        &self,
        namespace: &str,
        metric: &str,
        labels: &[(&str, &str)],
        value: &str,
    ) -> Result<()> {
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!(
            "{}/write-metrics/external/namespaces/{namespace}/{metric}",
            self.write_url
        );
        let request = self
            .http
            .post(&url)
            .query(&[("labels", selector.join(","))]);
        send(request, value)
            .await
            .with_context(|| format!("setting external metric {namespace}/{metric} {labels:?}"))
    }

    /// Sets `metric` of every pod matching `selector` in `namespace` to `value`; returns how many.
    pub async fn set_pods(
        &self,
        client: &Client,
        namespace: &str,
        selector: &str,
        metric: &str,
        value: &str,
    ) -> Result<usize> {
        let names = pod_names(client, namespace, selector).await?;
        for pod in &names {
            self.set_pod(namespace, pod, metric, value).await?;
        }
        Ok(names.len())
    }

    async fn post(&self, url: &str, value: &str) -> Result<()> {
        send(self.http.post(url), value).await
    }
}

/// Posts `value` as a JSON quantity and checks the answer.
async fn send(request: reqwest::RequestBuilder, value: &str) -> Result<()> {
    let response = request
        .header("Content-Type", "application/json")
        .body(Value::String(value.to_owned()).to_string())
        .send()
        .await
        .context(
            "the adapter's write endpoint did not answer (tests/testbed.sh up custom-metrics)",
        )?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("the adapter refused the value {value:?}: {status} {body}");
    }
    Ok(())
}

/// Names of the pods matching `selector` that are not being deleted.
async fn pod_names(client: &Client, namespace: &str, selector: &str) -> Result<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(selector)).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect())
}

/// A total of a per-pod metric (requests per second, say) shared evenly by the pods matching a
/// selector: every `period` each such pod's value is set to `total / pods` (in milli-units), so
/// that new pods take their share and the average falls as the Deployment grows. Stops when
/// dropped.
pub struct PodLoad {
    total_milli: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PodLoad {
    /// Starts spreading `total` (a whole number) of `metric` over the pods matching `selector`.
    pub fn start(
        metrics: CustomMetrics,
        client: Client,
        namespace: &str,
        selector: &str,
        metric: &str,
        total: u64,
    ) -> PodLoad {
        let total_milli = Arc::new(AtomicU64::new(total * 1000));
        let shared = Arc::clone(&total_milli);
        let (namespace, selector, metric) =
            (namespace.to_owned(), selector.to_owned(), metric.to_owned());
        let task = tokio::spawn(async move {
            // Each failure is printed once, not every half second while the adapter is down.
            let mut failing = false;
            loop {
                let total = shared.load(Ordering::Relaxed);
                match spread(&metrics, &client, &namespace, &selector, &metric, total).await {
                    Err(e) if !failing => {
                        eprintln!("PodLoad {namespace}/{metric}: {e:#} (retrying every 0.5 s)");
                        failing = true;
                    }
                    Err(_) => {}
                    Ok(()) if failing => {
                        eprintln!("PodLoad {namespace}/{metric}: written again");
                        failing = false;
                    }
                    Ok(()) => {}
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        PodLoad { total_milli, task }
    }

    /// Changes the total; the pods have their new share within half a second.
    pub fn set_total(&self, total: u64) {
        self.total_milli.store(total * 1000, Ordering::Relaxed);
    }
}

impl Drop for PodLoad {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn spread(
    metrics: &CustomMetrics,
    client: &Client,
    namespace: &str,
    selector: &str,
    metric: &str,
    total_milli: u64,
) -> Result<()> {
    let names = pod_names(client, namespace, selector).await?;
    let Some(count) = u64::try_from(names.len()).ok().filter(|n| *n > 0) else {
        return Ok(());
    };
    let share = format!("{}m", total_milli / count);
    for pod in &names {
        metrics.set_pod(namespace, pod, metric, &share).await?;
    }
    Ok(())
}

/// What the custom metrics API serves for `metric` of the pods matching `selector`, read through
/// the API server as an autoscaler reads it: `(pod, value)`.
pub async fn served_pod_values(
    client: &Client,
    namespace: &str,
    selector: &str,
    metric: &str,
) -> Result<Vec<(String, String)>> {
    let path = format!(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/pods/*/{metric}?labelSelector={}",
        encode(selector)
    );
    let list = get_json(client, &path).await?;
    Ok(items(&list)
        .iter()
        .map(|i| {
            (
                i["describedObject"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                i["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// What the external metrics API serves for `metric` in `namespace`: `(labels, value)` per series.
pub async fn served_external_values(
    client: &Client,
    namespace: &str,
    metric: &str,
) -> Result<Vec<(Value, String)>> {
    let path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}");
    let list = get_json(client, &path).await?;
    Ok(items(&list)
        .iter()
        .map(|i| {
            (
                i["metricLabels"].clone(),
                i["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

async fn get_json(client: &Client, path: &str) -> Result<Value> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .context("building the request")?;
    client
        .request::<Value>(request)
        .await
        .with_context(|| format!("GET {path}"))
}

/// Percent-encodes a label selector for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
