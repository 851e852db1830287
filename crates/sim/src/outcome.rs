//! Whether a run's figures can be trusted: pods the provisioner could not place (grouped by
//! reason, with counts and the first pods), objects that conflict (two of one kind with one
//! name) and NodePools no catalog type satisfies. The CLI ends a run with any of these with a
//! summary and a non-zero exit; the HTML page shows the same summary in a banner.

use ballast_nodes::adapt::node_pool_to_model;
use ballast_nodes::provision::PendingExplanation;
use ballast_scheduling::model::{InstanceType, Resources};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::report::VariantResult;
use crate::scenario::Scenario;

/// How many pods a reason names at most (the report's size stays bounded).
pub const FIRST_PODS: usize = 5;

/// One reason the provisioner gave for leaving pods pending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingReason {
    /// Distinct pods it was given for.
    pub pods: u64,
    /// Provisioning passes × pods that said it.
    pub times: u64,
    /// The first pods it was given for (at most [`FIRST_PODS`]).
    pub first_pods: Vec<String>,
}

/// The pending reasons of a run, grouped: reason (without the pod's name) → counts.
#[derive(Debug, Clone, Default)]
pub struct PendingReasons {
    pub by_reason: BTreeMap<String, PendingReason>,
    /// (reason, pod) pairs counted already.
    seen: BTreeSet<(String, String)>,
}

impl PendingReasons {
    /// Counts one provisioning pass's explanation of one pod.
    pub(crate) fn note(&mut self, e: &PendingExplanation) {
        let reason = reason_of(e);
        let pod = e.pod.to_string();
        let entry = self.by_reason.entry(reason.clone()).or_default();
        entry.times += 1;
        if self.seen.insert((reason, pod.clone())) {
            entry.pods += 1;
            if entry.first_pods.len() < FIRST_PODS {
                entry.first_pods.push(pod);
            }
        }
    }
}

/// The reason of an explanation, the same for every pod it applies to: each NodePool's answer, or
/// the existing nodes' reasons (without their counts, which change from pass to pass).
fn reason_of(e: &PendingExplanation) -> String {
    if !e.node_pools.is_empty() {
        let pools: Vec<String> = e
            .node_pools
            .iter()
            .map(|(pool, why)| format!("NodePool {pool}: {why}"))
            .collect();
        return pools.join("; ");
    }
    if e.nodes.is_empty() {
        return "no NodePool and no node to try".to_string();
    }
    let nodes: Vec<&str> = e.nodes.iter().map(|(why, _)| why.as_str()).collect();
    format!("no NodePool; existing nodes: {}", nodes.join("; "))
}

/// What is wrong with a scenario's objects before it runs: two objects of one kind with one name,
/// a NodePool no instance type of `types` satisfies. Each line names the object and the field.
pub fn scenario_problems(sc: &Scenario, types: &[InstanceType]) -> Vec<String> {
    let mut out = Vec::new();
    let mut twice = |kind: &str, names: Vec<String>| {
        let mut seen = BTreeSet::new();
        for n in names {
            if !seen.insert(n.clone()) {
                out.push(format!(
                    "{kind} {n}: metadata.name: two objects have this name"
                ));
            }
        }
    };
    let meta = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        format!(
            "{}/{}",
            m.namespace.as_deref().unwrap_or("default"),
            m.name.as_deref().unwrap_or("")
        )
    };
    twice(
        "NodePool",
        sc.node_pools
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect(),
    );
    twice(
        "HorizontalAutoscaler",
        sc.autoscalers.iter().map(|a| meta(&a.metadata)).collect(),
    );
    twice(
        "VerticalAutoscaler",
        sc.verticals.iter().map(|v| meta(&v.metadata)).collect(),
    );
    twice(
        "Workload",
        sc.workloads
            .iter()
            .map(|w| format!("{}/{}", w.namespace, w.name))
            .collect(),
    );
    for p in &sc.node_pools {
        let name = p.metadata.name.as_deref().unwrap_or("");
        match node_pool_to_model(p, Resources::default()) {
            Err(e) => out.push(format!("NodePool {name}: {e}")),
            Ok(m) => {
                if let Some(why) = ballast_nodes::no_instance_type(&m.model, types) {
                    out.push(format!(
                        "NodePool {name}: spec.template.spec.requirements: {why} in the catalog"
                    ));
                }
            }
        }
    }
    out
}

/// The summary of what went wrong in `results`, or None when every variant placed its pods and
/// its objects are sound.
pub fn trouble(results: &[VariantResult]) -> Option<String> {
    let mut out = String::new();
    for v in results {
        let s = &v.summary;
        if s.problems.is_empty() && s.pending_reasons.is_empty() {
            continue;
        }
        let _ = writeln!(out, "variant {}:", s.variant);
        for p in &s.problems {
            let _ = writeln!(out, "  {p}");
        }
        let pods: u64 = s.pending_reasons.values().map(|r| r.pods).sum();
        if pods > 0 {
            let _ = writeln!(out, "  {pods} pod(s) could not be placed:");
        }
        let mut reasons: Vec<(&String, &PendingReason)> = s.pending_reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.pods.cmp(&a.1.pods).then_with(|| a.0.cmp(b.0)));
        for (why, r) in reasons {
            let more = if r.pods as usize > r.first_pods.len() {
                ", ..."
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {} pod(s): {why} (first: {}{more})",
                r.pods,
                r.first_pods.join(", ")
            );
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_nodes::provision::PendingCategory;
    use ballast_scheduling::model::PodRef;

    fn explanation(pod: &str, pool_why: &str) -> PendingExplanation {
        PendingExplanation {
            pod: PodRef {
                namespace: "default".into(),
                name: pod.into(),
            },
            category: PendingCategory::Other,
            node_pools: vec![("general".into(), pool_why.into())],
            nodes: vec![("too small".into(), 3)],
            message: format!("default/{pod} cannot be placed"),
        }
    }

    #[test]
    fn reasons_are_grouped_with_counts_and_the_first_pods() {
        let mut r = PendingReasons::default();
        for pass in 0..3 {
            for i in 0..8 {
                r.note(&explanation(&format!("api-{i}"), "no type"));
            }
            if pass == 0 {
                r.note(&explanation("big-0", "too large"));
            }
        }
        assert_eq!(r.by_reason.len(), 2);
        let no_type = &r.by_reason["NodePool general: no type"];
        assert_eq!((no_type.pods, no_type.times), (8, 24));
        assert_eq!(no_type.first_pods.len(), FIRST_PODS);
        assert_eq!(no_type.first_pods[0], "default/api-0");
        let large = &r.by_reason["NodePool general: too large"];
        assert_eq!((large.pods, large.times), (1, 1));
    }
}
