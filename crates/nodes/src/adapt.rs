//! Adapters between the Ballast API objects (`NodePool`, `NodeClaim`) and the scheduling model,
//! in both directions: a NodePool becomes a scheduling `NodePool`, a NodeClaim in flight becomes
//! an `InFlightClaim`, and a planned new claim becomes a `NodeClaim` object to create.
//!
//! Label spelling: the API uses `nodes.ballast.dev/nodepool` and `nodes.ballast.dev/capacity-type`;
//! the scheduling model keys NodePool membership and capacity types by its own constants
//! (`ballast_scheduling::labels`). Keys are translated on the way in and back on the way out, so
//! either spelling in a pod's node selector or affinity works.

use std::collections::{BTreeMap, BTreeSet};

use ballast_api::common::parse_duration_seconds;
use ballast_api::nodes::{
    self as api, NodeClaim, NodeClaimSpec, NodePool, NodeSelectorRequirementWithMinValues,
    RequirementOperator, ResourceRequirements,
};
use ballast_scheduling::{
    self as sched, InFlightClaim, InstanceType, NewClaim, NodeSelectorTerm, Operator, Pod, PodRef,
    Requirement, Resources, Taint, TaintEffect,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ObjectKind};
use crate::limits::pool_limits;
use crate::resource_list::resources_to_list;
use crate::snapshot::DaemonSet;

/// The scheduling model's spelling of a label key: Ballast's, for Karpenter's spelling of one of
/// its keys (`ballast_scheduling::aliases`, the one table), else the key itself.
pub fn to_model_key(key: &str) -> &str {
    sched::aliases::canonical_key(key)
}

/// Node labels as the scheduling model reads them: every label kept, and Ballast's spelling of a
/// Karpenter key added beside it (an existing value under Ballast's key wins).
pub fn model_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    for (k, v) in labels {
        let m = to_model_key(k);
        if m != k {
            out.entry(m.to_string()).or_insert_with(|| v.clone());
        }
    }
    out
}

/// One label as [`model_labels`] would give it, without copying the map.
pub fn model_label<'l>(labels: &'l BTreeMap<String, String>, key: &str) -> Option<&'l String> {
    sched::aliases::get(labels, key)
}

/// Labels as the API writes them (hostname dropped).
pub fn api_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| k.as_str() != sched::labels::HOSTNAME)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The NodePool a node or NodeClaim belongs to, from either spelling of the label.
pub fn pool_label(labels: &BTreeMap<String, String>) -> Option<&str> {
    sched::aliases::get(labels, api::labels::NODEPOOL).map(String::as_str)
}

/// The labels decisions read on every node, found in one walk over the map. A node carries a
/// dozen labels or more whose keys share long prefixes, so one walk is cheaper than a lookup per
/// key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WellKnown<'l> {
    /// As [`pool_label`] reads it.
    pub pool: Option<&'l str>,
    pub instance_type: Option<&'l str>,
    pub zone: Option<&'l str>,
    /// As [`capacity_type_label`] reads it.
    pub capacity_type: Option<&'l str>,
}

impl<'l> WellKnown<'l> {
    pub fn of(labels: &'l BTreeMap<String, String>) -> WellKnown<'l> {
        // Ballast's spelling wins over Karpenter's, as in the lookups.
        let (mut pool_alias, mut capacity_alias) = (None, None);
        let mut w = WellKnown::default();
        for (k, v) in labels {
            // String equality compares lengths first: most keys are rejected without reading
            // them; Karpenter's keys are recognised by their prefix first.
            let (k, v) = (k.as_str(), Some(v.as_str()));
            if k == api::labels::NODEPOOL {
                w.pool = v;
            } else if k == api::labels::CAPACITY_TYPE {
                w.capacity_type = v;
            } else if k == api::labels::INSTANCE_TYPE {
                w.instance_type = v;
            } else if k == api::labels::ZONE {
                w.zone = v;
            } else if k.starts_with("karpenter.") {
                match sched::aliases::canonical_key(k) {
                    c if c == api::labels::NODEPOOL => pool_alias = v,
                    c if c == api::labels::CAPACITY_TYPE => capacity_alias = v,
                    _ => {}
                }
            }
        }
        w.pool = w.pool.or(pool_alias);
        w.capacity_type = w.capacity_type.or(capacity_alias);
        w
    }

    /// The value of label `key` as [`model_label`] reads it, when `key` is one of the labels
    /// read here (None: look it up).
    pub fn get(&self, key: &str) -> Option<Option<&'l str>> {
        // Karpenter's spelling of a key is left to the lookup.
        if sched::aliases::canonical_key(key) != key {
            return None;
        }
        if key == api::labels::INSTANCE_TYPE {
            Some(self.instance_type)
        } else if key == api::labels::ZONE {
            Some(self.zone)
        } else if key == api::labels::NODEPOOL {
            Some(self.pool)
        } else if key == api::labels::CAPACITY_TYPE {
            Some(self.capacity_type)
        } else {
            None
        }
    }

    /// Each label from `self`, or else from `other`.
    pub fn or(self, other: impl FnOnce() -> WellKnown<'l>) -> WellKnown<'l> {
        if self.pool.is_some()
            && self.instance_type.is_some()
            && self.zone.is_some()
            && self.capacity_type.is_some()
        {
            return self;
        }
        let o = other();
        WellKnown {
            pool: self.pool.or(o.pool),
            instance_type: self.instance_type.or(o.instance_type),
            zone: self.zone.or(o.zone),
            capacity_type: self.capacity_type.or(o.capacity_type),
        }
    }
}

/// The capacity type label, from either spelling.
pub fn capacity_type_label(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels
        .get(api::labels::CAPACITY_TYPE)
        .or_else(|| labels.get(sched::labels::CAPACITY_TYPE))
        .map(String::as_str)
}

fn model_term(t: &NodeSelectorTerm) -> NodeSelectorTerm {
    let mut t = t.clone();
    for r in &mut t.match_expressions {
        r.key = to_model_key(&r.key).to_string();
    }
    t
}

/// A pod with its node-label keys in the model's spelling.
pub fn model_pod(p: &Pod) -> Pod {
    model_pod_cow(p).into_owned()
}

/// As [`model_pod`], borrowing the pod when its keys are already spelled the model's way.
pub fn model_pod_cow(p: &Pod) -> std::borrow::Cow<'_, Pod> {
    let needs = |k: &str| to_model_key(k) != k;
    let na = &p.affinity.node_affinity;
    let touches = p.node_selector.keys().any(|k| needs(k))
        || na
            .required
            .iter()
            .chain(na.preferred.iter().map(|w| &w.preference))
            .any(|t| t.match_expressions.iter().any(|r| needs(&r.key)))
        || p.topology_spread_constraints
            .iter()
            .any(|c| needs(&c.topology_key))
        || p.affinity
            .pod_affinity
            .required
            .iter()
            .any(|t| needs(&t.topology_key))
        || p.affinity
            .pod_anti_affinity
            .required
            .iter()
            .any(|t| needs(&t.topology_key))
        || p.affinity
            .pod_affinity
            .preferred
            .iter()
            .any(|t| needs(&t.pod_affinity_term.topology_key))
        || p.affinity
            .pod_anti_affinity
            .preferred
            .iter()
            .any(|t| needs(&t.pod_affinity_term.topology_key));
    if !touches {
        return std::borrow::Cow::Borrowed(p);
    }
    let mut p = p.clone();
    p.node_selector = p
        .node_selector
        .iter()
        .map(|(k, v)| (to_model_key(k).to_string(), v.clone()))
        .collect();
    let na = &mut p.affinity.node_affinity;
    na.required = na.required.iter().map(model_term).collect();
    for w in &mut na.preferred {
        w.preference = model_term(&w.preference);
    }
    for c in &mut p.topology_spread_constraints {
        c.topology_key = to_model_key(&c.topology_key).to_string();
    }
    for pa in [
        &mut p.affinity.pod_affinity,
        &mut p.affinity.pod_anti_affinity,
    ] {
        for t in &mut pa.required {
            t.topology_key = to_model_key(&t.topology_key).to_string();
        }
        for w in &mut pa.preferred {
            w.pod_affinity_term.topology_key =
                to_model_key(&w.pod_affinity_term.topology_key).to_string();
        }
    }
    std::borrow::Cow::Owned(p)
}

/// An API taint as a model taint.
pub fn model_taint(t: &api::Taint) -> Taint {
    let effect = match t.effect {
        api::TaintEffect::NoSchedule => TaintEffect::NoSchedule,
        api::TaintEffect::PreferNoSchedule => TaintEffect::PreferNoSchedule,
        api::TaintEffect::NoExecute => TaintEffect::NoExecute,
    };
    Taint {
        key: t.key.clone(),
        value: t.value.clone().unwrap_or_default(),
        effect,
    }
}

/// A model taint as an API taint.
pub fn api_taint(t: &Taint) -> api::Taint {
    let effect = match t.effect {
        TaintEffect::NoSchedule => api::TaintEffect::NoSchedule,
        TaintEffect::PreferNoSchedule => api::TaintEffect::PreferNoSchedule,
        TaintEffect::NoExecute => api::TaintEffect::NoExecute,
    };
    api::Taint {
        key: t.key.clone(),
        value: (!t.value.is_empty()).then(|| t.value.clone()),
        effect,
    }
}

/// An API requirement as a model requirement (`Gte n` → `Gt n-1`, `Lte n` → `Lt n+1`).
pub fn model_requirement(
    r: &NodeSelectorRequirementWithMinValues,
    kind: ObjectKind,
    name: &str,
    field: &str,
) -> Result<Requirement, Error> {
    let e = |why: String| Error::new(kind, name, field, why);
    let int = || -> Result<i64, Error> {
        match r.values.as_slice() {
            [v] => v
                .trim()
                .parse::<i64>()
                .map_err(|_| e(format!("{v:?} is not an integer"))),
            _ => Err(e(format!(
                "{:?} takes exactly one integer value",
                r.operator
            ))),
        }
    };
    let (operator, values) = match r.operator {
        RequirementOperator::In => (Operator::In, r.values.clone()),
        RequirementOperator::NotIn => (Operator::NotIn, r.values.clone()),
        RequirementOperator::Exists => (Operator::Exists, vec![]),
        RequirementOperator::DoesNotExist => (Operator::DoesNotExist, vec![]),
        RequirementOperator::Gt => (Operator::Gt, vec![int()?.to_string()]),
        RequirementOperator::Lt => (Operator::Lt, vec![int()?.to_string()]),
        RequirementOperator::Gte => (Operator::Gt, vec![int()?.saturating_sub(1).to_string()]),
        RequirementOperator::Lte => (Operator::Lt, vec![int()?.saturating_add(1).to_string()]),
    };
    if matches!(operator, Operator::In | Operator::NotIn) && values.is_empty() {
        return Err(e(format!("{:?} needs at least one value", r.operator)));
    }
    let min_values = match r.min_values {
        None => None,
        Some(m) if m >= 1 => Some(m as u32),
        Some(m) => {
            return Err(Error::new(
                kind,
                name,
                format!("{field}.minValues"),
                format!("{m} is not at least 1"),
            ));
        }
    };
    Ok(Requirement {
        key: to_model_key(&r.key).to_string(),
        operator,
        values,
        min_values,
    })
}

/// Whether a label set satisfies a requirement (absent labels satisfy only NotIn/DoesNotExist).
pub fn requirement_holds(r: &Requirement, labels: &BTreeMap<String, String>) -> bool {
    requirement_holds_for(r, model_label(labels, &r.key).map(String::as_str))
}

/// [`requirement_holds`] given the value of the requirement's key (None: absent).
pub fn requirement_holds_for(r: &Requirement, v: Option<&str>) -> bool {
    let int = |s: &str| s.trim().parse::<i64>().ok();
    match r.operator {
        Operator::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
        Operator::NotIn => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
        Operator::Exists => v.is_some(),
        Operator::DoesNotExist => v.is_none(),
        Operator::Gt => {
            matches!((v.and_then(int), r.values.first().and_then(|x| int(x))), (Some(a), Some(b)) if a > b)
        }
        Operator::Lt => {
            matches!((v.and_then(int), r.values.first().and_then(|x| int(x))), (Some(a), Some(b)) if a < b)
        }
    }
}

/// Name of an API object, or an error naming the field.
pub fn object_name(meta: &ObjectMeta, kind: ObjectKind) -> Result<String, Error> {
    object_name_ref(meta, kind).map(str::to_string)
}

/// [`object_name`] without copying it.
pub fn object_name_ref(meta: &ObjectMeta, kind: ObjectKind) -> Result<&str, Error> {
    match meta.name.as_deref() {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(Error::new(kind, "", "metadata.name", "missing")),
    }
}

/// A Go duration or `Never` (None). Negative or unreadable durations are errors.
pub fn duration_or_never(
    text: Option<&str>,
    kind: ObjectKind,
    name: &str,
    field: &str,
) -> Result<Option<f64>, Error> {
    match text {
        None => Ok(None),
        Some("Never") => Ok(None),
        Some(t) => parse_duration_seconds(t)
            .map(Some)
            .map_err(|e| Error::new(kind, name, field, e.to_string())),
    }
}

/// A NodePool with its template compiled into the scheduling model.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolModel {
    pub name: String,
    pub model: sched::NodePool,
    /// Hash of the template (drift detection), see [`template_hash`].
    pub hash: String,
}

/// Compiles a NodePool CRD into the scheduling model. `overhead` is the DaemonSet overhead of its
/// nodes (see [`daemonset_overhead`]).
pub fn node_pool_to_model(pool: &NodePool, overhead: Resources) -> Result<PoolModel, Error> {
    let k = ObjectKind::NodePool;
    let name = object_name(&pool.metadata, k)?;
    let spec = &pool.spec;
    let t = &spec.template.spec;
    let mut requirements = vec![];
    for (i, r) in t.requirements.iter().enumerate() {
        let field = format!("spec.template.spec.requirements[{i}]");
        let key = to_model_key(&r.key);
        if api::labels::RESTRICTED.contains(&key) || key == sched::labels::NODEPOOL {
            return Err(Error::new(
                k,
                &name,
                format!("{field}.key"),
                format!("{} is set by Ballast and cannot be required", r.key),
            ));
        }
        requirements.push(model_requirement(r, k, &name, &field)?);
    }
    // A pool that says nothing about capacity type launches on-demand nodes, as Karpenter's
    // NodeClaim templates do: spot must be asked for.
    if !requirements
        .iter()
        .any(|r| r.key == sched::labels::CAPACITY_TYPE)
    {
        requirements.push(Requirement {
            key: sched::labels::CAPACITY_TYPE.to_string(),
            operator: Operator::In,
            values: vec!["on-demand".to_string()],
            min_values: None,
        });
    }
    let mut labels = BTreeMap::new();
    if let Some(m) = &spec.template.metadata {
        for (lk, lv) in &m.labels {
            if api::labels::RESTRICTED.contains(&to_model_key(lk)) {
                return Err(Error::new(
                    k,
                    &name,
                    format!("spec.template.metadata.labels.{lk}"),
                    "set by Ballast",
                ));
            }
            labels.insert(to_model_key(lk).to_string(), lv.clone());
        }
    }
    let limits = match &spec.limits {
        None => None,
        Some(l) => Some(pool_limits(l, &name)?),
    };
    let weight = spec.weight.unwrap_or(0);
    if !(0..=100).contains(&weight) {
        return Err(Error::new(
            k,
            &name,
            "spec.weight",
            format!("{weight} is outside 1..=100"),
        ));
    }
    if let Some(d) = &spec.disruption {
        duration_or_never(
            d.consolidate_after.as_deref(),
            k,
            &name,
            "spec.disruption.consolidateAfter",
        )?;
    }
    duration_or_never(
        t.expire_after.as_deref(),
        k,
        &name,
        "spec.template.spec.expireAfter",
    )?;
    if let Some(g) = &t.termination_grace_period {
        parse_duration_seconds(g).map_err(|e| {
            Error::new(
                k,
                &name,
                "spec.template.spec.terminationGracePeriod",
                e.to_string(),
            )
        })?;
    }
    let model = sched::NodePool {
        name: name.clone(),
        weight,
        requirements,
        labels,
        taints: t.taints.iter().map(model_taint).collect(),
        startup_taints: t.startup_taints.iter().map(model_taint).collect(),
        limits,
        daemonset_overhead: overhead,
        fixed_size: static_replicas(pool)?.is_some(),
    };
    Ok(PoolModel {
        hash: template_hash(pool),
        name,
        model,
    })
}

/// The `spec.replicas` of a static NodePool (None for a pool that follows its pods); a negative
/// count is an error naming the field.
pub fn static_replicas(pool: &NodePool) -> Result<Option<u32>, Error> {
    match pool.spec.replicas {
        None => Ok(None),
        Some(r) => u32::try_from(r).map(Some).map_err(|_| {
            Error::new(
                ObjectKind::NodePool,
                pool.metadata.name.as_deref().unwrap_or_default(),
                "spec.replicas",
                format!("{r} is not a node count (0 or more)"),
            )
        }),
    }
}

/// Labels every node of the pool is known to carry (template labels and single-valued `In`
/// requirements).
fn pool_known_labels(pool: &sched::NodePool) -> BTreeMap<String, String> {
    let mut l = pool.labels.clone();
    for r in &pool.requirements {
        if r.operator == Operator::In && r.values.len() == 1 {
            l.entry(r.key.clone())
                .or_insert_with(|| r.values[0].clone());
        }
    }
    l.insert(sched::labels::NODEPOOL.into(), pool.name.clone());
    l
}

/// Keys a DaemonSet may select on without the NodePool pinning them (they vary per node).
const WELL_KNOWN: [&str; 7] = [
    sched::labels::ZONE,
    sched::labels::REGION,
    sched::labels::ARCH,
    sched::labels::OS,
    sched::labels::INSTANCE_TYPE,
    sched::labels::CAPACITY_TYPE,
    sched::labels::HOSTNAME,
];

fn ds_requirement_compatible(
    r: &Requirement,
    pool: &sched::NodePool,
    known: &BTreeMap<String, String>,
) -> bool {
    if let Some(v) = known.get(&r.key) {
        return requirement_holds(r, &BTreeMap::from([(r.key.clone(), v.clone())]));
    }
    // The pool may still restrict the key to several values: the DaemonSet lands on some nodes.
    if let Some(pr) = pool.requirements.iter().find(|p| p.key == r.key) {
        return match (pr.operator, r.operator) {
            (Operator::In, Operator::In) => pr.values.iter().any(|v| r.values.contains(v)),
            (Operator::In, Operator::NotIn) => pr.values.iter().any(|v| !r.values.contains(v)),
            (Operator::DoesNotExist, Operator::In | Operator::Exists) => false,
            _ => true,
        };
    }
    WELL_KNOWN.contains(&r.key.as_str())
        || matches!(r.operator, Operator::NotIn | Operator::DoesNotExist)
}

/// Whether a DaemonSet's pods would run on nodes of this pool: it tolerates the pool's taints
/// (startup taints excluded) and its node selector / required node affinity can hold there.
pub fn daemonset_runs_on(ds: &DaemonSet, pool: &sched::NodePool) -> bool {
    let p = model_pod(&ds.pod);
    let hard = |t: &&Taint| t.effect != TaintEffect::PreferNoSchedule;
    if pool
        .taints
        .iter()
        .filter(hard)
        .any(|t| !sched::tolerated(&p.tolerations, t))
    {
        return false;
    }
    let known = pool_known_labels(pool);
    let sel_ok = p.node_selector.iter().all(|(k, v)| {
        let r = Requirement {
            key: k.clone(),
            operator: Operator::In,
            values: vec![v.clone()],
            min_values: None,
        };
        ds_requirement_compatible(&r, pool, &known)
    });
    let terms = &p.affinity.node_affinity.required;
    let aff_ok = terms.is_empty()
        || terms.iter().any(|t| {
            t.match_expressions
                .iter()
                .all(|r| ds_requirement_compatible(r, pool, &known))
        });
    sel_ok && aff_ok
}

/// Sum of the requests of the DaemonSets that run on the pool's nodes.
pub fn daemonset_overhead(daemon_sets: &[DaemonSet], pool: &sched::NodePool) -> Resources {
    let mut total = Resources::default();
    for ds in daemon_sets.iter().filter(|d| daemonset_runs_on(d, pool)) {
        for (k, v) in ds.pod.effective_requests().iter() {
            let cur = total.get(k);
            total.set(k, cur.saturating_add(v));
        }
    }
    total
}

/// Deterministic hash of a NodePool's template, requirements left out (requirement drift is
/// checked label by label): FNV-1a 64 over the canonical JSON, taints treated as sets.
pub fn template_hash(pool: &NodePool) -> String {
    let mut v = serde_json::to_value(&pool.spec.template).unwrap_or(serde_json::Value::Null);
    if let Some(spec) = v.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.remove("requirements");
        for key in ["taints", "startupTaints"] {
            if let Some(serde_json::Value::Array(a)) = spec.get_mut(key) {
                a.sort_by_key(|x| x.to_string());
            }
        }
    }
    let text = canonical_json(&v);
    format!("{:016x}", fnv1a(text.as_bytes()))
}

fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, String> = m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, canonical_json(v)))
                .collect();
            let parts: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.clone())))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn first_in_value(claim: &NodeClaimSpec, key: &str) -> Option<String> {
    claim
        .requirements
        .iter()
        .find(|r| {
            to_model_key(&r.key) == to_model_key(key) && r.operator == RequirementOperator::In
        })
        .and_then(|r| r.values.first().cloned())
}

/// A NodeClaim whose node has not registered, as the scheduling model's in-flight claim: the
/// instance type, zone and capacity type come from its labels once launched, or else from the
/// first (cheapest) value of its requirements.
pub fn node_claim_to_in_flight(claim: &NodeClaim) -> Result<InFlightClaim, Error> {
    let k = ObjectKind::NodeClaim;
    let name = object_name(&claim.metadata, k)?;
    let labels = claim.metadata.labels.clone().unwrap_or_default();
    let pick = |key: &str, field: &str| -> Result<String, Error> {
        labels
            .get(key)
            .or_else(|| labels.get(to_model_key(key)))
            .cloned()
            .or_else(|| first_in_value(&claim.spec, key))
            .ok_or_else(|| {
                Error::new(
                    k,
                    &name,
                    field,
                    format!("no {key} label and no In requirement on it"),
                )
            })
    };
    let node_pool = pool_label(&labels).map(str::to_string).ok_or_else(|| {
        Error::new(
            k,
            &name,
            format!("metadata.labels.{}", api::labels::NODEPOOL),
            "missing",
        )
    })?;
    Ok(InFlightClaim {
        instance_type: pick(
            api::labels::INSTANCE_TYPE,
            "spec.requirements[node.kubernetes.io/instance-type]",
        )?,
        zone: pick(
            api::labels::ZONE,
            "spec.requirements[topology.kubernetes.io/zone]",
        )?,
        capacity_type: pick(
            api::labels::CAPACITY_TYPE,
            "spec.requirements[nodes.ballast.dev/capacity-type]",
        )?,
        node_pool,
        name,
    })
}

/// One instance type a NodeClaim may launch as, with its cheapest allowed offering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeOption {
    pub name: String,
    /// $ per hour of its cheapest allowed offering.
    pub price: f64,
}

/// A NodeClaim to create, with what was decided about it in plain fields (the object itself is
/// in `node_claim`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchPlan {
    pub name: String,
    pub node_pool: String,
    /// Instance types it may launch as, cheapest first.
    pub instance_types: Vec<TypeOption>,
    pub zones: Vec<String>,
    pub capacity_types: Vec<String>,
    /// The cheapest offering (what the price assumes).
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    pub price: f64,
    /// Pods it is made for.
    pub pods: Vec<PodRef>,
    /// Pod requests plus DaemonSet overhead.
    pub requests: Resources,
    pub node_claim: NodeClaim,
}

/// Zone and capacity-type constraints that pin a pod to the values the solver chose for its node.
fn pod_allows(p: &Pod, key: &str, value: &str, chosen: &str) -> bool {
    if value == chosen {
        return true;
    }
    let pinned_by_topology = p
        .topology_spread_constraints
        .iter()
        .any(|c| c.topology_key == key)
        || p.affinity
            .pod_affinity
            .required
            .iter()
            .any(|t| t.topology_key == key)
        || p.affinity
            .pod_anti_affinity
            .required
            .iter()
            .any(|t| t.topology_key == key)
        || p.affinity
            .pod_affinity
            .preferred
            .iter()
            .any(|t| t.pod_affinity_term.topology_key == key)
        || p.affinity
            .pod_anti_affinity
            .preferred
            .iter()
            .any(|t| t.pod_affinity_term.topology_key == key);
    if pinned_by_topology {
        return false;
    }
    if let Some(v) = p.node_selector.get(key)
        && v != value
    {
        return false;
    }
    if key == sched::labels::ZONE
        && p.volumes
            .iter()
            .any(|v| !v.zones.is_empty() && !v.zones.iter().any(|z| z == value))
    {
        return false;
    }
    let probe = BTreeMap::from([(key.to_string(), value.to_string())]);
    let terms = &p.affinity.node_affinity.required;
    let mentions = |t: &NodeSelectorTerm| t.match_expressions.iter().any(|r| r.key == key);
    match terms.as_slice() {
        [] => true,
        [t] => t
            .match_expressions
            .iter()
            .filter(|r| r.key == key)
            .all(|r| requirement_holds(r, &probe)),
        many => !many.iter().any(mentions),
    }
}

/// Turns a planned claim into a launch plan and the `NodeClaim` object to create.
///
/// Requirements are the pool's, with instance type, zone and capacity type narrowed to what the
/// plan allows (`type_filter` may drop options, e.g. those not cheaper than the nodes a
/// consolidation removes; `offer_filter` drops offerings). Labels: the pool's template labels,
/// the NodePool, and the planned instance type, zone and capacity type. The template hash goes in
/// the `nodes.ballast.dev/nodepool-hash` annotation.
/// Whether the NodePool's requirements allow value `v` of label `key` (zone, capacity type).
pub fn pool_allows(pool_model: &PoolModel, key: &str, v: &str) -> bool {
    pool_model
        .model
        .requirements
        .iter()
        .filter(|r| r.key == key)
        .all(|r| requirement_holds(r, &BTreeMap::from([(key.to_string(), v.to_string())])))
}

pub fn launch_plan(
    claim: &NewClaim,
    pool: &NodePool,
    pool_model: &PoolModel,
    types: &[InstanceType],
    pods: &[&Pod],
    name: &str,
    offer_filter: &dyn Fn(&str, &sched::Offering) -> bool,
) -> Result<LaunchPlan, Error> {
    let k = ObjectKind::NodeClaim;
    let by_name: BTreeMap<&str, &InstanceType> =
        types.iter().map(|t| (t.name.as_str(), t)).collect();
    let allowed_by_pool = |key: &str, v: &str| pool_allows(pool_model, key, v);
    // A value topology fixed stays (other pods' spread may count these pods there).
    let keeps =
        |key: &str, v: &str, chosen: &str| v == chosen || !claim.pinned.iter().any(|k| k == key);
    let zone_ok = |z: &str| {
        keeps(sched::labels::ZONE, z, &claim.zone)
            && allowed_by_pool(sched::labels::ZONE, z)
            && pods
                .iter()
                .all(|p| pod_allows(p, sched::labels::ZONE, z, &claim.zone))
    };
    let ct_ok = |c: &str| {
        keeps(sched::labels::CAPACITY_TYPE, c, &claim.capacity_type)
            && allowed_by_pool(sched::labels::CAPACITY_TYPE, c)
            && pods
                .iter()
                .all(|p| pod_allows(p, sched::labels::CAPACITY_TYPE, c, &claim.capacity_type))
    };
    let mut options = vec![];
    let mut zones = BTreeSet::new();
    let mut cts = BTreeSet::new();
    for tn in &claim.instance_type_options {
        let Some(t) = by_name.get(tn.as_str()) else {
            return Err(Error::new(
                k,
                name,
                "spec.requirements[instance-type]",
                format!("unknown instance type {tn}"),
            ));
        };
        let offers: Vec<&sched::Offering> = t
            .offerings
            .iter()
            .filter(|o| {
                o.available && zone_ok(&o.zone) && ct_ok(&o.capacity_type) && offer_filter(tn, o)
            })
            .collect();
        let Some(price) = offers.iter().map(|o| o.price).min_by(|a, b| a.total_cmp(b)) else {
            continue;
        };
        for o in &offers {
            zones.insert(o.zone.clone());
            cts.insert(o.capacity_type.clone());
        }
        options.push(TypeOption {
            name: tn.clone(),
            price,
        });
    }
    options.sort_by(|a, b| {
        a.price
            .total_cmp(&b.price)
            .then_with(|| a.name.cmp(&b.name))
    });
    let Some(cheapest) = options.first().cloned() else {
        return Err(Error::new(
            k,
            name,
            "spec.requirements",
            "no instance type offering is left",
        ));
    };
    // The cheapest offering of the cheapest type fixes the planned zone and capacity type.
    let (zone, capacity_type) = by_name[cheapest.name.as_str()]
        .offerings
        .iter()
        .filter(|o| {
            o.available
                && zones.contains(&o.zone)
                && cts.contains(&o.capacity_type)
                && offer_filter(&cheapest.name, o)
        })
        .filter(|o| zone_ok(&o.zone) && ct_ok(&o.capacity_type))
        .min_by(|a, b| {
            a.price
                .total_cmp(&b.price)
                .then_with(|| (&a.zone, &a.capacity_type).cmp(&(&b.zone, &b.capacity_type)))
        })
        .map(|o| (o.zone.clone(), o.capacity_type.clone()))
        .unwrap_or_else(|| (claim.zone.clone(), claim.capacity_type.clone()));

    let narrowed = [
        (
            api::labels::INSTANCE_TYPE,
            options.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
        ),
        (api::labels::ZONE, zones.iter().cloned().collect()),
        (api::labels::CAPACITY_TYPE, cts.iter().cloned().collect()),
    ];
    let t = &pool.spec.template.spec;
    let mut requirements: Vec<NodeSelectorRequirementWithMinValues> = vec![];
    for r in &t.requirements {
        if narrowed
            .iter()
            .any(|(key, _)| to_model_key(&r.key) == to_model_key(key))
        {
            continue;
        }
        let mut r = r.clone();
        r.key = to_model_key(&r.key).to_string();
        requirements.push(r);
    }
    for (key, values) in narrowed {
        let min_values = t
            .requirements
            .iter()
            .find(|r| to_model_key(&r.key) == to_model_key(key))
            .and_then(|r| r.min_values);
        requirements.push(NodeSelectorRequirementWithMinValues {
            key: key.to_string(),
            operator: RequirementOperator::In,
            values,
            min_values,
        });
    }
    let mut labels: BTreeMap<String, String> = api_labels(&claim.labels);
    if let Some(m) = &pool.spec.template.metadata {
        labels.extend(m.labels.clone());
    }
    labels.insert(api::labels::NODEPOOL.into(), pool_model.name.clone());
    labels.insert(api::labels::INSTANCE_TYPE.into(), cheapest.name.clone());
    labels.insert(api::labels::ZONE.into(), zone.clone());
    labels.insert(api::labels::CAPACITY_TYPE.into(), capacity_type.clone());
    let mut annotations = pool
        .spec
        .template
        .metadata
        .as_ref()
        .map(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert(api::labels::NODEPOOL_HASH.into(), pool_model.hash.clone());
    let node_claim = NodeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            finalizers: Some(vec![api::labels::TERMINATION_FINALIZER.to_string()]),
            ..Default::default()
        },
        spec: NodeClaimSpec {
            requirements,
            resources: Some(ResourceRequirements {
                requests: Some(resources_to_list(&claim.requests)),
            }),
            taints: t.taints.clone(),
            startup_taints: t.startup_taints.clone(),
            node_class_ref: t.node_class_ref.clone(),
            expire_after: t.expire_after.clone(),
            termination_grace_period: t.termination_grace_period.clone(),
        },
        status: None,
    };
    Ok(LaunchPlan {
        name: name.to_string(),
        node_pool: pool_model.name.clone(),
        instance_type: cheapest.name.clone(),
        price: cheapest.price,
        instance_types: options,
        zones: zones.into_iter().collect(),
        capacity_types: cts.into_iter().collect(),
        zone,
        capacity_type,
        pods: claim.pods.clone(),
        requests: claim.requests.clone(),
        node_claim,
    })
}

/// A deterministic, practically unique NodeClaim name: `<pool>-<10 hex digits>` from a hash of
/// the decision time, the pool, the plan's index and its pods.
pub fn claim_name(pool: &str, seed: i128, index: usize, pods: &[PodRef]) -> String {
    let mut text = format!("{seed}/{pool}/{index}");
    for p in pods {
        text.push('/');
        text.push_str(&p.namespace);
        text.push('/');
        text.push_str(&p.name);
    }
    format!("{pool}-{:010x}", fnv1a(text.as_bytes()) & 0xff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_reads_what_the_lookups_give() {
        let cases: [&[(&str, &str)]; 5] = [
            &[],
            &[(api::labels::NODEPOOL, "a"), ("x", "y")],
            &[(sched::labels::NODEPOOL, "b"), (api::labels::NODEPOOL, "a")],
            &[
                (api::labels::INSTANCE_TYPE, "m5.large"),
                (api::labels::ZONE, "z1"),
                (sched::labels::CAPACITY_TYPE, "on-demand"),
                (api::labels::CAPACITY_TYPE, "spot"),
                ("nodes.ballast.dev/instance-size", "large"),
            ],
            &[
                (api::labels::ZONE, "z2"),
                ("topology.kubernetes.io/zon", "no"),
            ],
        ];
        for case in cases {
            let labels: BTreeMap<String, String> = case
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let w = WellKnown::of(&labels);
            assert_eq!(w.pool, pool_label(&labels), "{case:?}");
            assert_eq!(w.capacity_type, capacity_type_label(&labels), "{case:?}");
            let get = |k: &str| labels.get(k).map(String::as_str);
            assert_eq!(w.instance_type, get(api::labels::INSTANCE_TYPE), "{case:?}");
            assert_eq!(w.zone, get(api::labels::ZONE), "{case:?}");
            for k in [
                api::labels::INSTANCE_TYPE,
                api::labels::ZONE,
                api::labels::NODEPOOL,
                sched::labels::NODEPOOL,
                api::labels::CAPACITY_TYPE,
                sched::labels::CAPACITY_TYPE,
                "x",
            ] {
                let looked_up = model_label(&labels, k).map(String::as_str);
                assert!(w.get(k).is_none_or(|v| v == looked_up), "{case:?} {k}");
            }
            assert_eq!(w.get("x"), None);
            assert!(w.get(api::labels::ZONE).is_some());
        }
        // A node's own labels win; its NodeClaim's fill the gaps, field by field.
        let node = BTreeMap::from([(api::labels::ZONE.to_string(), "z1".to_string())]);
        let claim = BTreeMap::from([
            (api::labels::ZONE.to_string(), "z9".to_string()),
            (api::labels::NODEPOOL.to_string(), "p".to_string()),
        ]);
        let w = WellKnown::of(&node).or(|| WellKnown::of(&claim));
        assert_eq!(
            (w.zone, w.pool, w.instance_type),
            (Some("z1"), Some("p"), None)
        );
    }

    #[test]
    fn model_label_reads_what_model_labels_gives() {
        let cases: [&[(&str, &str)]; 4] = [
            &[(api::labels::NODEPOOL, "a")],
            &[(sched::labels::NODEPOOL, "b")],
            &[(api::labels::NODEPOOL, "a"), (sched::labels::NODEPOOL, "b")],
            &[("zone", "z"), (api::labels::CAPACITY_TYPE, "spot")],
        ];
        let keys = [
            api::labels::NODEPOOL,
            sched::labels::NODEPOOL,
            api::labels::CAPACITY_TYPE,
            sched::labels::CAPACITY_TYPE,
            "zone",
            "other",
        ];
        for case in cases {
            let labels: BTreeMap<String, String> = case
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let all = model_labels(&labels);
            for k in keys {
                assert_eq!(model_label(&labels, k), all.get(k), "{case:?} {k}");
            }
        }
    }
}
