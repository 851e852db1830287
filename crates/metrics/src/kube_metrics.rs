//! Readers of the aggregated metrics APIs: `metrics.k8s.io/v1beta1` (Resource and
//! ContainerResource), `custom.metrics.k8s.io/v1beta2` (Pods and Object) and
//! `external.metrics.k8s.io/v1beta1` (External).
//!
//! Each API is used only when the cluster serves it: a discovery request (cached for
//! `discovery_ttl`) tells a missing APIService ("not served") from an unavailable backend, so
//! the condition message says what to install or fix.

use std::collections::BTreeMap;
use std::time::Duration;

use ballast_horizontal::snapshot::{MetricReading, PodSample};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::ListParams;
use kube::core::GroupVersionKind;
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::error::ReadError;

/// `metrics.k8s.io/v1beta1`.
pub const RESOURCE_METRICS_API: &str = "metrics.k8s.io/v1beta1";
/// `custom.metrics.k8s.io/v1beta2`.
pub const CUSTOM_METRICS_API: &str = "custom.metrics.k8s.io/v1beta2";
/// `external.metrics.k8s.io/v1beta1`.
pub const EXTERNAL_METRICS_API: &str = "external.metrics.k8s.io/v1beta1";

/// Window of a custom metric sample that states none (upstream's default).
const DEFAULT_CUSTOM_WINDOW_SECONDS: i64 = 60;

// ---- wire types (k8s-openapi has none for the metrics APIs) ------------------------------------

/// `metrics.k8s.io/v1beta1` `PodMetricsList`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsList {
    #[serde(default)]
    pub items: Vec<PodMetrics>,
}

/// `metrics.k8s.io/v1beta1` `PodMetrics`: the usage of each container of one pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// When the sample was taken (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The window the usage averages over (Go duration, e.g. `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

/// `metrics.k8s.io/v1beta1` `ContainerMetrics`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerMetrics {
    pub name: String,
    /// Usage per resource (`cpu: 12345678n`, `memory: 1024Ki`).
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

/// `custom.metrics.k8s.io/v1beta2` `MetricValueList`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueList {
    #[serde(default)]
    pub items: Vec<MetricValue>,
}

/// `custom.metrics.k8s.io/v1beta2` `MetricValue`: one metric of one object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricValue {
    pub described_object: DescribedObject,
    #[serde(default)]
    pub metric: MetricName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<i64>,
    pub value: Quantity,
}

/// The object a custom metric describes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DescribedObject {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub api_version: Option<String>,
}

/// `metric` of a `MetricValue`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricName {
    #[serde(default)]
    pub name: String,
}

/// `external.metrics.k8s.io/v1beta1` `ExternalMetricValueList`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricValueList {
    #[serde(default)]
    pub items: Vec<ExternalMetricValue>,
}

/// `external.metrics.k8s.io/v1beta1` `ExternalMetricValue`: one series.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricValue {
    #[serde(default)]
    pub metric_name: String,
    #[serde(default)]
    pub metric_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    pub value: Quantity,
}

// ---- pure conversions ---------------------------------------------------------------------------

fn parse_time(what: &str, text: Option<&str>) -> Result<Option<Timestamp>, ReadError> {
    text.map(|t| {
        t.parse::<Timestamp>().map_err(|e| ReadError::Parse {
            what: what.to_owned(),
            message: format!("timestamp {t:?}: {e}"),
        })
    })
    .transpose()
}

fn milli(what: &str, q: &Quantity) -> Result<i64, ReadError> {
    ballast_api::common::quantity_milli(q).map_err(|e| ReadError::Parse {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

/// Per-pod samples of `resource` from a `PodMetricsList`, as upstream's resource metrics client
/// builds them: the sum over the pod's containers (a pod missing the resource in any container
/// is left out), or with `container` that container's usage (a pod whose metrics do not list
/// the container is an error). An empty list is an error.
pub fn pod_samples(
    list: &PodMetricsList,
    resource: &str,
    container: Option<&str>,
) -> Result<Vec<PodSample>, ReadError> {
    if list.items.is_empty() {
        return Err(ReadError::NoMetrics {
            api: "resource metrics API".into(),
        });
    }
    let mut out = Vec::with_capacity(list.items.len());
    for m in &list.items {
        let pod = m.metadata.name.clone().unwrap_or_default();
        let what = format!("PodMetrics {pod}");
        let value = match container {
            Some(name) => {
                let c = m
                    .containers
                    .iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| ReadError::ContainerNotPresent {
                        container: name.to_owned(),
                        pod: pod.clone(),
                    })?;
                match c.usage.get(resource) {
                    Some(q) => Some(milli(&what, q)?),
                    None => None,
                }
            }
            None => {
                let mut sum: Option<i64> = (!m.containers.is_empty()).then_some(0);
                for c in &m.containers {
                    let Some(q) = c.usage.get(resource) else {
                        sum = None;
                        break;
                    };
                    let v = milli(&what, q)?;
                    sum = sum.map(|s| s.saturating_add(v));
                }
                sum
            }
        };
        let Some(value) = value else { continue };
        out.push(PodSample {
            pod,
            value: crate::convert::milli_quantity(value),
            timestamp: parse_time(&what, m.timestamp.as_deref())?,
            window: m.window.clone(),
        });
    }
    Ok(out)
}

/// Per-pod samples of a Pods metric from a custom metrics `MetricValueList`.
pub fn custom_pod_samples(list: &MetricValueList) -> Result<Vec<PodSample>, ReadError> {
    if list.items.is_empty() {
        return Err(ReadError::NoMetrics {
            api: "custom metrics API".into(),
        });
    }
    list.items
        .iter()
        .map(|m| {
            let what = format!(
                "custom metric {} of pod {}",
                m.metric.name, m.described_object.name
            );
            milli(&what, &m.value)?;
            Ok(PodSample {
                pod: m.described_object.name.clone(),
                value: m.value.clone(),
                timestamp: parse_time(&what, m.timestamp.as_deref())?,
                window: Some(format!(
                    "{}s",
                    m.window_seconds.unwrap_or(DEFAULT_CUSTOM_WINDOW_SECONDS)
                )),
            })
        })
        .collect()
}

/// The value of an Object metric: the list must hold exactly one item.
pub fn object_value(list: &MetricValueList) -> Result<Quantity, ReadError> {
    match list.items.as_slice() {
        [one] => {
            milli("custom metric", &one.value)?;
            Ok(one.value.clone())
        }
        items => Err(ReadError::NotExactlyOne { count: items.len() }),
    }
}

/// The series of an External metric (the core sums them). An empty list is an error.
pub fn external_values(list: &ExternalMetricValueList) -> Result<Vec<Quantity>, ReadError> {
    if list.items.is_empty() {
        return Err(ReadError::NoMetrics {
            api: "external metrics API".into(),
        });
    }
    list.items
        .iter()
        .map(|m| {
            milli(&format!("external metric {}", m.metric_name), &m.value)?;
            Ok(m.value.clone())
        })
        .collect()
}

// ---- I/O ----------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Availability {
    Served,
    NotServed,
    Unavailable(String),
}

pub(crate) struct KubeMetrics {
    client: Client,
    discovery: Cache<Availability>,
    /// `group/version/kind` → plural resource (Object metrics).
    plurals: Cache<String>,
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters stay).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(params: &[(&str, &str)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn get(path: String) -> Result<http::Request<Vec<u8>>, ReadError> {
    http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| ReadError::InvalidSpec(format!("cannot build request: {e}")))
}

impl KubeMetrics {
    pub(crate) fn new(client: Client, discovery_ttl: Duration) -> KubeMetrics {
        KubeMetrics {
            client,
            discovery: Cache::new(64, discovery_ttl),
            plurals: Cache::new(256, Duration::from_secs(600)),
        }
    }

    /// Ok when the cluster serves `group_version`; a cached discovery answer otherwise.
    pub(crate) async fn ensure_served(&self, group_version: &str) -> Result<(), ReadError> {
        let availability = match self.discovery.get_fresh(group_version) {
            Some(a) => a,
            None => {
                let a = match self.client.list_api_group_resources(group_version).await {
                    Ok(_) => Availability::Served,
                    Err(kube::Error::Api(s)) if s.code == 404 => Availability::NotServed,
                    Err(kube::Error::Api(s)) if s.code == 503 => {
                        Availability::Unavailable(s.message.clone())
                    }
                    Err(e) => {
                        return Err(ReadError::Kube {
                            what: format!("discovery of {group_version}"),
                            source: e,
                        });
                    }
                };
                self.discovery.replace(group_version, a.clone());
                a
            }
        };
        match availability {
            Availability::Served => Ok(()),
            Availability::NotServed => Err(ReadError::NotServed {
                group_version: group_version.to_owned(),
            }),
            Availability::Unavailable(message) => Err(ReadError::Unavailable {
                group_version: group_version.to_owned(),
                message,
            }),
        }
    }

    async fn request<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        req: http::Request<Vec<u8>>,
    ) -> Result<T, ReadError> {
        self.client.request::<T>(req).await.map_err(|e| match e {
            kube::Error::SerdeError(e) => ReadError::Parse {
                what: what.to_owned(),
                message: e.to_string(),
            },
            e => ReadError::Kube {
                what: what.to_owned(),
                source: e,
            },
        })
    }

    /// Resource / ContainerResource: PodMetrics of the pods matching `selector`.
    pub(crate) async fn resource(
        &self,
        namespace: &str,
        selector: &str,
        resource: &str,
        container: Option<&str>,
    ) -> Result<MetricReading, ReadError> {
        self.ensure_served(RESOURCE_METRICS_API).await?;
        let path = format!(
            "/apis/{RESOURCE_METRICS_API}/namespaces/{}/pods",
            encode(namespace)
        );
        let req = kube::core::Request::new(path)
            .list(&ListParams::default().labels(selector))
            .map_err(|e| ReadError::InvalidSpec(format!("cannot build request: {e}")))?;
        let list: PodMetricsList = self
            .request("unable to fetch metrics from resource metrics API", req)
            .await?;
        Ok(MetricReading {
            pods: Some(pod_samples(&list, resource, container)?),
            ..Default::default()
        })
    }

    /// Pods: a custom metric of every pod matching `selector`.
    pub(crate) async fn pods(
        &self,
        namespace: &str,
        selector: &str,
        metric: &str,
        metric_selector: &str,
    ) -> Result<MetricReading, ReadError> {
        self.ensure_served(CUSTOM_METRICS_API).await?;
        let path = format!(
            "/apis/{CUSTOM_METRICS_API}/namespaces/{}/pods/*/{}{}",
            encode(namespace),
            encode(metric),
            query(&[
                ("labelSelector", selector),
                ("metricLabelSelector", metric_selector)
            ])
        );
        let list: MetricValueList = self
            .request(
                "unable to fetch metrics from custom metrics API",
                get(path)?,
            )
            .await?;
        Ok(MetricReading {
            pods: Some(custom_pod_samples(&list)?),
            ..Default::default()
        })
    }

    /// Object: a custom metric describing one object.
    pub(crate) async fn object(
        &self,
        namespace: &str,
        object: &ballast_api::common::CrossVersionObjectReference,
        metric: &str,
        metric_selector: &str,
    ) -> Result<MetricReading, ReadError> {
        self.ensure_served(CUSTOM_METRICS_API).await?;
        let api_version = object
            .api_version
            .as_deref()
            .filter(|v| !v.is_empty())
            .unwrap_or("v1");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let params = query(&[("metricLabelSelector", metric_selector)]);
        let path = if group.is_empty() && object.kind == "Namespace" {
            // Metrics of a namespace itself live under /namespaces/{name}/metrics/{metric}.
            format!(
                "/apis/{CUSTOM_METRICS_API}/namespaces/{}/metrics/{}{params}",
                encode(&object.name),
                encode(metric)
            )
        } else {
            let resource = self.plural(group, version, &object.kind).await?;
            let qualified = if group.is_empty() {
                resource
            } else {
                format!("{resource}.{group}")
            };
            format!(
                "/apis/{CUSTOM_METRICS_API}/namespaces/{}/{}/{}/{}{params}",
                encode(namespace),
                encode(&qualified),
                encode(&object.name),
                encode(metric)
            )
        };
        let list: MetricValueList = self
            .request(
                "unable to fetch metrics from custom metrics API",
                get(path)?,
            )
            .await?;
        Ok(MetricReading {
            value: Some(object_value(&list)?),
            ..Default::default()
        })
    }

    /// External: the series of an external metric (summed by the core).
    pub(crate) async fn external(
        &self,
        namespace: &str,
        metric: &str,
        metric_selector: &str,
    ) -> Result<MetricReading, ReadError> {
        self.ensure_served(EXTERNAL_METRICS_API).await?;
        let path = format!(
            "/apis/{EXTERNAL_METRICS_API}/namespaces/{}/{}{}",
            encode(namespace),
            encode(metric),
            query(&[("labelSelector", metric_selector)])
        );
        let list: ExternalMetricValueList = self
            .request(
                "unable to fetch metrics from external metrics API",
                get(path)?,
            )
            .await?;
        Ok(MetricReading {
            values: Some(external_values(&list)?),
            ..Default::default()
        })
    }

    /// The plural resource of `group/version/kind` (discovery, cached).
    async fn plural(&self, group: &str, version: &str, kind: &str) -> Result<String, ReadError> {
        let key = format!("{group}/{version}/{kind}");
        if let Some(p) = self.plurals.get_fresh(&key) {
            return Ok(p);
        }
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, _) = kube::discovery::oneshot::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| ReadError::Kube {
                what: format!("unable to map kind {kind} of {group}/{version} to a resource"),
                source: e,
            })?;
        self.plurals.replace(&key, resource.plural.clone());
        Ok(resource.plural)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(name: &str, containers: &[(&str, &[(&str, &str)])]) -> PodMetrics {
        PodMetrics {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            timestamp: Some("2026-01-02T03:04:05Z".into()),
            window: Some("30s".into()),
            containers: containers
                .iter()
                .map(|(c, usage)| ContainerMetrics {
                    name: (*c).into(),
                    usage: usage
                        .iter()
                        .map(|(r, q)| ((*r).into(), Quantity((*q).into())))
                        .collect(),
                })
                .collect(),
        }
    }

    /// (pod, milli value) pairs of a result.
    fn values(samples: &[PodSample]) -> Vec<(String, i64)> {
        samples
            .iter()
            .map(|s| {
                (
                    s.pod.clone(),
                    ballast_api::common::quantity_milli(&s.value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn pod_metrics_become_samples() {
        type Case<'a> = (
            &'a str,
            Vec<PodMetrics>,
            &'a str,
            Option<&'a str>,
            Result<Vec<(&'a str, i64)>, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "sum over containers, nanocores rounded up to millicores",
                vec![pm(
                    "a",
                    &[
                        ("app", &[("cpu", "250m")]),
                        ("side", &[("cpu", "12345678n")]),
                    ],
                )],
                "cpu",
                None,
                Ok(vec![("a", 263)]),
            ),
            (
                "memory in bytes",
                vec![pm(
                    "a",
                    &[
                        ("app", &[("memory", "1Ki")]),
                        ("side", &[("memory", "1Mi")]),
                    ],
                )],
                "memory",
                None,
                Ok(vec![("a", (1024 + 1024 * 1024) * 1000)]),
            ),
            (
                "a pod missing the resource in one container is left out",
                vec![
                    pm(
                        "a",
                        &[("app", &[("cpu", "1")]), ("side", &[("memory", "1Mi")])],
                    ),
                    pm("b", &[("app", &[("cpu", "700m")])]),
                ],
                "cpu",
                None,
                Ok(vec![("b", 700)]),
            ),
            (
                "a pod without containers is left out",
                vec![pm("a", &[]), pm("b", &[("x", &[("cpu", "2")])])],
                "cpu",
                None,
                Ok(vec![("b", 2000)]),
            ),
            (
                "the named container only",
                vec![pm(
                    "a",
                    &[("app", &[("cpu", "100m")]), ("side", &[("cpu", "900m")])],
                )],
                "cpu",
                Some("side"),
                Ok(vec![("a", 900)]),
            ),
            (
                "the named container without the resource: pod left out",
                vec![
                    pm("a", &[("app", &[("memory", "1")])]),
                    pm("b", &[("app", &[("cpu", "1")])]),
                ],
                "cpu",
                Some("app"),
                Ok(vec![("b", 1000)]),
            ),
            (
                "the named container absent: error",
                vec![
                    pm("a", &[("app", &[("cpu", "1")])]),
                    pm("b", &[("other", &[("cpu", "1")])]),
                ],
                "cpu",
                Some("app"),
                Err("container app not present in metrics for pod b"),
            ),
            (
                "empty list: error",
                vec![],
                "cpu",
                None,
                Err("no metrics returned from resource metrics API"),
            ),
        ];
        for (name, items, resource, container, want) in cases {
            let got = pod_samples(&PodMetricsList { items }, resource, container);
            match want {
                Ok(w) => {
                    let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                    let w: Vec<(String, i64)> =
                        w.into_iter().map(|(p, v)| (p.to_owned(), v)).collect();
                    assert_eq!(values(&got), w, "{name}");
                    for s in &got {
                        assert_eq!(
                            s.timestamp,
                            Some("2026-01-02T03:04:05Z".parse().unwrap()),
                            "{name}"
                        );
                        assert_eq!(s.window.as_deref(), Some("30s"), "{name}");
                    }
                }
                Err(w) => assert_eq!(got.unwrap_err().to_string(), w, "{name}"),
            }
        }
    }

    #[test]
    fn pod_metrics_parse_from_the_wire() {
        let json = r#"{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},
            "items":[{"metadata":{"name":"web-1","namespace":"ns","labels":{"app":"web"}},
            "timestamp":"2026-03-01T10:00:00Z","window":"1m0.5s",
            "containers":[{"name":"app","usage":{"cpu":"5020203n","memory":"20512Ki"}}]}]}"#;
        let list: PodMetricsList = serde_json::from_str(json).unwrap();
        let s = pod_samples(&list, "cpu", None).unwrap();
        assert_eq!(values(&s), vec![("web-1".to_owned(), 6)]);
        assert_eq!(s[0].window.as_deref(), Some("1m0.5s"));
        let bad = r#"{"items":[{"metadata":{"name":"a"},"timestamp":"yesterday","containers":[{"name":"c","usage":{"cpu":"1"}}]}]}"#;
        let list: PodMetricsList = serde_json::from_str(bad).unwrap();
        assert!(
            pod_samples(&list, "cpu", None)
                .unwrap_err()
                .to_string()
                .contains("timestamp")
        );
    }

    #[test]
    fn custom_and_external_lists() {
        let json = r#"{"items":[
            {"describedObject":{"kind":"Pod","namespace":"ns","name":"p1","apiVersion":"/v1"},
             "metric":{"name":"rps"},"timestamp":"2026-03-01T10:00:00Z","windowSeconds":30,"value":"1500m"},
            {"describedObject":{"kind":"Pod","namespace":"ns","name":"p2","apiVersion":"/v1"},
             "metric":{"name":"rps"},"timestamp":"2026-03-01T10:00:00Z","value":"2"}]}"#;
        let list: MetricValueList = serde_json::from_str(json).unwrap();
        let s = custom_pod_samples(&list).unwrap();
        assert_eq!(
            values(&s),
            vec![("p1".to_owned(), 1500), ("p2".to_owned(), 2000)]
        );
        assert_eq!(s[0].window.as_deref(), Some("30s"));
        assert_eq!(s[1].window.as_deref(), Some("60s"));
        assert_eq!(
            object_value(&list).unwrap_err().to_string(),
            "the custom metrics API returned 2 results when asked for exactly one"
        );
        let one = MetricValueList {
            items: list.items[..1].to_vec(),
        };
        assert_eq!(object_value(&one).unwrap().0, "1500m");
        assert!(custom_pod_samples(&MetricValueList::default()).is_err());
        assert!(object_value(&MetricValueList::default()).is_err());

        let json = r#"{"items":[{"metricName":"queue","metricLabels":{"q":"a"},"timestamp":"2026-03-01T10:00:00Z","value":"3"},
            {"metricName":"queue","metricLabels":{"q":"b"},"timestamp":"2026-03-01T10:00:00Z","value":"4500m"}]}"#;
        let list: ExternalMetricValueList = serde_json::from_str(json).unwrap();
        let v: Vec<String> = external_values(&list)
            .unwrap()
            .into_iter()
            .map(|q| q.0)
            .collect();
        assert_eq!(v, vec!["3", "4500m"]);
        assert_eq!(
            external_values(&ExternalMetricValueList::default())
                .unwrap_err()
                .to_string(),
            "no metrics returned from external metrics API"
        );
        let bad = ExternalMetricValueList {
            items: vec![ExternalMetricValue {
                value: Quantity("lots".into()),
                ..Default::default()
            }],
        };
        assert!(external_values(&bad).is_err());
    }

    #[test]
    fn paths_are_encoded() {
        assert_eq!(
            encode("app=web,tier in (a,b)"),
            "app%3Dweb%2Ctier%20in%20%28a%2Cb%29"
        );
        assert_eq!(encode("s0-rabbitmq-queue_1.x~"), "s0-rabbitmq-queue_1.x~");
        assert_eq!(
            query(&[("labelSelector", "a=b"), ("metricLabelSelector", "")]),
            "?labelSelector=a%3Db"
        );
        assert_eq!(query(&[("labelSelector", "")]), "");
    }
}
