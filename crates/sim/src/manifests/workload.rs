//! Deployments and StatefulSets as simulated workloads, and PodDisruptionBudgets as the
//! `maxUnavailable` of the workloads they select.

use super::{ManifestError, Source, describe};
use crate::scenario::PodTemplate;
use ballast_scheduling::model::{
    LabelSelector, Resources, SelectorOperator, Toleration, TopologySpreadConstraint,
};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A Deployment or StatefulSet: what the simulator keeps of it.
#[derive(Debug, Clone)]
pub struct TakenWorkload {
    pub at: Source,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `spec.replicas` (1 when absent, as the API defaults it).
    pub replicas: i32,
    /// The pod template: its requests (containers summed, the larger init container taken when
    /// bigger), labels, node selector, tolerations, spread constraints and priority.
    pub pod: PodTemplate,
    /// Fields of the pod template the simulator does not model (`spec.template.spec.affinity`).
    pub unmapped: Vec<String>,
}

/// A PodDisruptionBudget.
#[derive(Debug, Clone)]
pub struct TakenBudget {
    pub at: Source,
    pub namespace: String,
    pub name: String,
    pub selector: LabelSelector,
    /// `None` when the budget sets neither field (it then limits nothing here).
    pub limit: Option<BudgetLimit>,
}

/// What a PodDisruptionBudget allows, as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetLimit {
    MaxUnavailable(Count),
    MinAvailable(Count),
}

/// A number of pods or a percentage of the workload's replicas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Count {
    Pods(i32),
    Percent(f64),
}

impl Count {
    /// The pods this stands for out of `replicas`; a percentage rounds up, as Kubernetes does.
    fn pods(self, replicas: i32) -> i32 {
        match self {
            Count::Pods(n) => n,
            Count::Percent(p) => (p / 100.0 * f64::from(replicas)).ceil() as i32,
        }
    }
}

impl TakenBudget {
    /// The workload's `maxUnavailable` at `replicas` (`None` when the budget sets no limit).
    pub fn max_unavailable(&self, replicas: i32) -> Option<i32> {
        match self.limit? {
            BudgetLimit::MaxUnavailable(c) => Some(c.pods(replicas).max(0)),
            BudgetLimit::MinAvailable(c) => Some((replicas - c.pods(replicas)).max(0)),
        }
    }

    /// Whether the budget selects pods with `labels` in `namespace`.
    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        namespace == self.namespace && selector_matches(&self.selector, labels)
    }
}

/// Whether `selector` matches `labels` (an empty selector matches everything).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_match
        && selector.match_expressions.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.operator {
                SelectorOperator::In => value.is_some_and(|v| r.values.contains(v)),
                SelectorOperator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                SelectorOperator::Exists => value.is_some(),
                SelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadManifest {
    metadata: Meta,
    spec: WorkloadSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadSpec {
    #[serde(default)]
    replicas: Option<i32>,
    template: TemplateManifest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateManifest {
    #[serde(default)]
    metadata: Option<TemplateMeta>,
    spec: PodSpecManifest,
}

#[derive(Deserialize, Default)]
struct TemplateMeta {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpecManifest {
    containers: Vec<ContainerManifest>,
    #[serde(default)]
    init_containers: Vec<ContainerManifest>,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    #[serde(default)]
    tolerations: Vec<Toleration>,
    #[serde(default)]
    topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    priority_class_name: Option<String>,
    #[serde(default)]
    affinity: Option<Value>,
}

#[derive(Deserialize)]
struct ContainerManifest {
    #[serde(default)]
    resources: ResourcesManifest,
}

#[derive(Deserialize, Default)]
struct ResourcesManifest {
    #[serde(default)]
    requests: Option<Resources>,
    #[serde(default)]
    limits: Option<Resources>,
}

impl ResourcesManifest {
    /// The container's requests: each resource's request, or its limit when it has no request
    /// (the API server's default).
    fn effective(&self) -> Resources {
        let mut out = self.requests.clone().unwrap_or_default();
        if let Some(limits) = &self.limits {
            for (name, amount) in limits.iter() {
                if out.get(name) == 0 {
                    out.set(name, amount);
                }
            }
        }
        out
    }
}

/// Reads `doc` as `T`, an error naming the field that does not fit.
fn read<T: serde::de::DeserializeOwned>(at: &Source, doc: &Value) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
        ManifestError::invalid(
            at,
            &describe(doc),
            e.path().to_string(),
            e.inner().to_string(),
        )
    })
}

/// A Deployment or StatefulSet as a workload.
pub fn take_workload(at: &Source, doc: &Value) -> Result<TakenWorkload, ManifestError> {
    let manifest: WorkloadManifest = read(at, doc)?;
    let label = describe(doc);
    if manifest.metadata.name.is_empty() {
        return Err(ManifestError::invalid(
            at,
            &label,
            "metadata.name",
            "missing",
        ));
    }
    let replicas = manifest.spec.replicas.unwrap_or(1);
    if replicas < 0 {
        return Err(ManifestError::invalid(
            at,
            &label,
            "spec.replicas",
            format!("{replicas} is negative"),
        ));
    }
    let spec = manifest.spec.template.spec;
    let mut unmapped = Vec::new();
    if spec.affinity.as_ref().is_some_and(|a| !a.is_null()) {
        unmapped.push("spec.template.spec.affinity (not simulated: the pods go wherever their node selector, tolerations and spread allow)".to_string());
    }
    if spec.priority.is_none()
        && let Some(class) = &spec.priority_class_name
    {
        unmapped.push(format!(
            "spec.template.spec.priorityClassName {class:?} (not resolved: priority 0)"
        ));
    }
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(TakenWorkload {
        at: at.clone(),
        kind,
        namespace: manifest
            .metadata
            .namespace
            .unwrap_or_else(|| "default".into()),
        name: manifest.metadata.name,
        replicas,
        pod: PodTemplate {
            requests: pod_requests(&spec.containers, &spec.init_containers),
            labels: manifest.spec.template.metadata.unwrap_or_default().labels,
            node_selector: spec.node_selector,
            tolerations: spec.tolerations,
            topology_spread_constraints: spec.topology_spread_constraints,
            priority: spec.priority.unwrap_or(0),
            startup_seconds: crate::scenario::default_startup(),
        },
        unmapped,
    })
}

/// A pod's requests: the sum of its containers', or an init container's when larger, resource
/// by resource (as the scheduler counts them).
fn pod_requests(containers: &[ContainerManifest], init: &[ContainerManifest]) -> Resources {
    let mut sum = Resources::default();
    for c in containers {
        for (name, amount) in c.resources.effective().iter() {
            sum.set(name, sum.get(name) + amount);
        }
    }
    for c in init {
        for (name, amount) in c.resources.effective().iter() {
            if amount > sum.get(name) {
                sum.set(name, amount);
            }
        }
    }
    sum
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BudgetManifest {
    metadata: Meta,
    spec: BudgetSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BudgetSpec {
    #[serde(default)]
    selector: Option<LabelSelector>,
    #[serde(default)]
    min_available: Option<Value>,
    #[serde(default)]
    max_unavailable: Option<Value>,
}

/// A PodDisruptionBudget.
pub fn take_budget(at: &Source, doc: &Value) -> Result<TakenBudget, ManifestError> {
    let manifest: BudgetManifest = read(at, doc)?;
    let label = describe(doc);
    let count = |field: &str, v: &Value| {
        count_of(v).ok_or_else(|| {
            ManifestError::invalid(
                at,
                &label,
                format!("spec.{field}"),
                format!("{v}: neither a number of pods nor a percentage such as \"25%\""),
            )
        })
    };
    let limit = match (&manifest.spec.max_unavailable, &manifest.spec.min_available) {
        (Some(m), None) => Some(BudgetLimit::MaxUnavailable(count("maxUnavailable", m)?)),
        (None, Some(m)) => Some(BudgetLimit::MinAvailable(count("minAvailable", m)?)),
        (Some(_), Some(_)) => {
            return Err(ManifestError::invalid(
                at,
                &label,
                "spec",
                "sets both minAvailable and maxUnavailable; the API allows one",
            ));
        }
        (None, None) => None,
    };
    Ok(TakenBudget {
        at: at.clone(),
        namespace: manifest
            .metadata
            .namespace
            .unwrap_or_else(|| "default".into()),
        name: manifest.metadata.name,
        selector: manifest.spec.selector.unwrap_or_default(),
        limit,
    })
}

/// `3` or `"3"` as pods, `"25%"` as a percentage.
fn count_of(v: &Value) -> Option<Count> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .filter(|n| *n >= 0)
            .map(Count::Pods),
        Value::String(s) => match s.strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .map(Count::Percent),
            None => s
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Count::Pods),
        },
        _ => None,
    }
}
