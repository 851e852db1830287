//! Usage history from Prometheus, for an autoscaler seen for the first time without a
//! checkpoint: two range queries over the kubelet resource-metrics series
//! (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`, labelled
//! `namespace`, `pod`, `container`), as the VPA's history provider reads cAdvisor's.
//!
//! Past pods are found by name, since their labels are not in these series: a Deployment's pods
//! are `<name>-<hash>-<suffix>`, a StatefulSet's `<name>-<ordinal>`, other kinds' `<name>-...`.
//! The pod uid of a past sample is unknown; the pod name stands in for it (its samples are all
//! older than any live one).

use std::time::Duration;

use ballast_api::common::CrossVersionObjectReference;
use jiff::Timestamp;

use super::usage::Sample;

/// Where and how far back history is read.
#[derive(Clone, Debug)]
pub struct HistoryConfig {
    /// Prometheus base URL (None: no history is read).
    pub prometheus_url: Option<String>,
    /// How far back (the VPA's default is 8 days).
    pub length: Duration,
    /// Step of the range queries, and the `rate()` window of CPU.
    pub resolution: Duration,
    /// Timeout of one query.
    pub timeout: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            prometheus_url: None,
            length: Duration::from_secs(8 * 86_400),
            resolution: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The pod-name pattern of a target's pods.
pub fn pod_pattern(target: &CrossVersionObjectReference) -> String {
    let name = regex_escape(&target.name);
    match target.kind.as_str() {
        "Deployment" => format!("{name}-[a-z0-9]+-[a-z0-9]+"),
        "StatefulSet" => format!("{name}-[0-9]+"),
        _ => format!("{name}-.+"),
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() && c != '-' && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The two queries (CPU cores, memory bytes) for the pods of `target` in `namespace`.
pub fn queries(
    namespace: &str,
    target: &CrossVersionObjectReference,
    resolution: Duration,
) -> (String, String) {
    let matcher = format!(
        r#"namespace="{namespace}",pod=~"{}",container!="",container!="POD""#,
        pod_pattern(target)
    );
    let window = resolution.as_secs().max(60);
    (
        format!(
            "sum by (pod, container) (rate(container_cpu_usage_seconds_total{{{matcher}}}[{window}s]))"
        ),
        format!("max by (pod, container) (container_memory_working_set_bytes{{{matcher}}})"),
    )
}

/// Reads the history of `target`'s pods up to `now`: CPU and memory samples per pod and
/// container, ordered by time. CPU samples carry no request (the request of past pods is unknown:
/// the minimum weight applies).
pub async fn read(
    config: &HistoryConfig,
    http: &reqwest::Client,
    namespace: &str,
    target: &CrossVersionObjectReference,
    now: Timestamp,
) -> Result<Vec<Sample>, String> {
    let Some(url) = config.prometheus_url.as_deref() else {
        return Ok(Vec::new());
    };
    let client = prometheus_http_query::Client::from(http.clone(), url)
        .map_err(|e| format!("prometheus address {url:?}: {e}"))?;
    let (cpu, memory) = queries(namespace, target, config.resolution);
    let end = now.as_second();
    let start = end - config.length.as_secs() as i64;
    let step = config.resolution.as_secs_f64().max(1.0);
    let timeout = config.timeout.as_millis() as i64;
    let mut samples = Vec::new();
    for (query, is_cpu) in [(cpu, true), (memory, false)] {
        let result = client
            .query_range(&query, start, end, step)
            .timeout(timeout)
            .get()
            .await
            .map_err(|e| format!("prometheus {url}: {e}"))?;
        let Some(matrix) = result.data().as_matrix() else {
            return Err(format!(
                "prometheus {url}: {query} did not return a range vector"
            ));
        };
        for series in matrix {
            let labels = series.metric();
            let (Some(pod), Some(container)) = (labels.get("pod"), labels.get("container")) else {
                continue;
            };
            for s in series.samples() {
                let value = s.value();
                if !value.is_finite() || value < 0.0 {
                    continue;
                }
                samples.push(Sample {
                    pod_uid: format!("history/{pod}"),
                    container: container.clone(),
                    at: s.timestamp() as i64,
                    cpu_cores: is_cpu.then_some(value),
                    memory_bytes: (!is_cpu).then_some(value),
                    cpu_request: 0.0,
                });
            }
        }
    }
    samples.sort_by_key(|s| s.at);
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: &str, name: &str) -> CrossVersionObjectReference {
        CrossVersionObjectReference {
            kind: kind.into(),
            name: name.into(),
            api_version: Some("apps/v1".into()),
        }
    }

    #[test]
    fn pod_patterns_follow_the_kind() {
        let cases = [
            ("Deployment", "web", "web-[a-z0-9]+-[a-z0-9]+"),
            ("StatefulSet", "db", "db-[0-9]+"),
            ("Rollout", "a.b", "a\\.b-.+"),
        ];
        for (kind, name, want) in cases {
            assert_eq!(pod_pattern(&target(kind, name)), want, "{kind}");
        }
    }

    #[test]
    fn queries_name_the_namespace_and_window() {
        let (cpu, memory) = queries(
            "shop",
            &target("Deployment", "web"),
            Duration::from_secs(300),
        );
        assert!(
            cpu.contains(r#"namespace="shop""#) && cpu.contains("[300s]"),
            "{cpu}"
        );
        assert!(memory.starts_with("max by (pod, container) (container_memory_working_set_bytes{"));
    }
}
