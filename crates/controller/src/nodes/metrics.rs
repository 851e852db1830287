//! The node controllers' own Prometheus metrics (served on `/metrics`), prefixed
//! `ballast_nodes_`. Each is recorded where the controller already does the thing it counts (the
//! provisioner's solve, a NodeClaim's launch and registration, a deletion, a disruption action, a
//! provider call); labels are bounded words (NodePool, reason, method, capacity type, error
//! code), never a pod or node name. The interruption loop's counters are
//! [`super::interruption::InterruptionMetrics`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};

use ballast_nodes::{DisruptionDecision, Method, PendingCategory, PendingExplanation, Why};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::metric_labels::{Labels, label, labels};

/// Why the controller deleted a NodeClaim (the `reason` of `nodeclaims_terminated_total`), besides
/// the disruption methods ([`method_label`]).
pub mod terminated {
    /// No offering could be launched (every one out of capacity).
    pub const LAUNCH_FAILED: &str = "launch_failed";
    /// Not launched within the launch timeout.
    pub const LAUNCH_TIMEOUT: &str = "launch_timeout";
    /// Launched, but no node registered within the registration timeout.
    pub const REGISTRATION_TIMEOUT: &str = "registration_timeout";
    /// An interruption message (spot interruption, instance stopping, scheduled change).
    pub const INTERRUPTION: &str = "interruption";
    /// Its node was deleted.
    pub const NODE_DELETED: &str = "node_deleted";
    /// Garbage collection: its instance is gone.
    pub const INSTANCE_GONE: &str = "instance_gone";
}

/// Counters, gauges and the solve histogram of the node controllers (cheap to clone; every
/// clone counts into the same series). They count whether registered or not.
#[derive(Clone, Debug)]
pub struct NodesMetrics {
    /// Pending pods the provisioner provisions for, at its last turn.
    pub pending_pods: Gauge<i64, AtomicI64>,
    /// Provisioning decisions by `result`: `launch` (NodeClaims to create), `no_launch`,
    /// `failed` (the snapshot or the decision failed).
    pub provisioning_decisions: Family<Labels, Counter>,
    /// Seconds one provisioning decision (`ballast_nodes::provision`) took.
    pub solve_seconds: Histogram,
    /// Pods the last provisioning decision could not place, by `reason` (the pending category).
    pub unschedulable_pods: Family<Labels, Gauge<i64, AtomicI64>>,
    /// NodeClaims created, by `nodepool` and `reason` (`provisioning`, or the disruption method a
    /// replacement is for).
    pub nodeclaims_created: Family<Labels, Counter>,
    /// Instances launched for NodeClaims, by `nodepool` and `capacity_type`.
    pub nodeclaims_launched: Family<Labels, Counter>,
    /// NodeClaims whose node registered, by `nodepool`.
    pub nodeclaims_registered: Family<Labels, Counter>,
    /// NodeClaims the controller deleted, by `nodepool` and `reason` ([`terminated`], or a
    /// disruption method).
    pub nodeclaims_terminated: Family<Labels, Counter>,
    /// Disruption actions by `method`, `decision` (`delete`, `replace`) and `result`
    /// (`disrupted`, `invalidated` by the second decision after the validation delay, `failed`).
    pub disruption_decisions: Family<Labels, Counter>,
    /// Nodes a disruption budget held back, by `nodepool` and `reason` (budget reason), summed
    /// over disruption passes.
    pub budget_blocks: Family<Labels, Counter>,
    /// Nodes each pool's budget lets be disrupted now, by `nodepool` and `reason`.
    pub allowed_disruptions: Family<Labels, Gauge<i64, AtomicI64>>,
    /// Failed cloud-provider calls by `operation` and `code` ([`ballast_cloud::CloudError::code`]).
    pub cloud_errors: Family<Labels, Counter>,
    /// Hourly price of each pool's launched NodeClaims (not being deleted), from the offerings.
    pub price: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Launched NodeClaims (not being deleted) per pool.
    pub managed_nodes: Family<Labels, Gauge<i64, AtomicI64>>,
    /// The pools `price` and `managed_nodes` were last set for (to drop pools that went away).
    priced: Arc<Mutex<BTreeSet<String>>>,
}

impl Default for NodesMetrics {
    fn default() -> Self {
        NodesMetrics {
            pending_pods: Gauge::default(),
            provisioning_decisions: Family::default(),
            solve_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            unschedulable_pods: Family::default(),
            nodeclaims_created: Family::default(),
            nodeclaims_launched: Family::default(),
            nodeclaims_registered: Family::default(),
            nodeclaims_terminated: Family::default(),
            disruption_decisions: Family::default(),
            budget_blocks: Family::default(),
            allowed_disruptions: Family::default(),
            cloud_errors: Family::default(),
            price: Family::default(),
            managed_nodes: Family::default(),
            priced: Arc::default(),
        }
    }
}

/// The `method` label of a disruption method (snake_case).
pub fn method_label(m: Method) -> &'static str {
    match m {
        Method::Emptiness => "emptiness",
        Method::Drift => "drift",
        Method::Expiration => "expiration",
        Method::MultiNodeConsolidation => "multi_node_consolidation",
        Method::SingleNodeConsolidation => "single_node_consolidation",
    }
}

impl NodesMetrics {
    /// Registers every metric in `registry` under `ballast_nodes_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("ballast_nodes");
        r.register(
            "pending_pods",
            "Pending pods the provisioner provisions for, at its last turn",
            self.pending_pods.clone(),
        );
        r.register(
            "provisioning_decisions",
            "Provisioning decisions by result (launch, no_launch, failed)",
            self.provisioning_decisions.clone(),
        );
        r.register(
            "provisioning_solve_duration_seconds",
            "Seconds one provisioning decision took",
            self.solve_seconds.clone(),
        );
        r.register(
            "unschedulable_pods",
            "Pods the last provisioning decision could not place, by reason",
            self.unschedulable_pods.clone(),
        );
        r.register(
            "nodeclaims_created",
            "NodeClaims created, by NodePool and reason (provisioning or a disruption method)",
            self.nodeclaims_created.clone(),
        );
        r.register(
            "nodeclaims_launched",
            "Instances launched for NodeClaims, by NodePool and capacity type",
            self.nodeclaims_launched.clone(),
        );
        r.register(
            "nodeclaims_registered",
            "NodeClaims whose node registered, by NodePool",
            self.nodeclaims_registered.clone(),
        );
        r.register(
            "nodeclaims_terminated",
            "NodeClaims deleted by the controller, by NodePool and reason",
            self.nodeclaims_terminated.clone(),
        );
        self.register_disruption(r);
        r.register(
            "cloud_errors",
            "Failed cloud provider calls by operation and error code",
            self.cloud_errors.clone(),
        );
        r.register(
            "managed_nodes_price_dollars_per_hour",
            "Hourly price of the launched NodeClaims of each NodePool, from the offerings",
            self.price.clone(),
        );
        r.register(
            "managed_nodes",
            "Launched NodeClaims (not being deleted) of each NodePool",
            self.managed_nodes.clone(),
        );
    }

    fn register_disruption(&self, r: &mut Registry) {
        r.register(
            "disruption_decisions",
            "Disruption actions by method, decision (delete, replace) and result",
            self.disruption_decisions.clone(),
        );
        r.register(
            "disruption_budget_blocks",
            "Nodes a disruption budget held back in a pass, by NodePool and budget reason",
            self.budget_blocks.clone(),
        );
        r.register(
            "nodepool_allowed_disruptions",
            "Nodes the NodePool's disruption budget lets be disrupted now, by budget reason",
            self.allowed_disruptions.clone(),
        );
    }

    /// One provisioning decision: its result, how long it took, and the pods it left pending.
    pub fn provisioned(&self, result: &str, seconds: f64, unplaced: &[PendingExplanation]) {
        self.provisioning_decisions
            .get_or_create(&label("result", result))
            .inc();
        self.solve_seconds.observe(seconds);
        let mut by_reason: BTreeMap<String, i64> = BTreeMap::new();
        for u in unplaced {
            *by_reason.entry(category_label(u.category)).or_default() += 1;
        }
        for c in CATEGORIES {
            let reason = category_label(c);
            let n = by_reason.get(&reason).copied().unwrap_or(0);
            self.unschedulable_pods
                .get_or_create(&label("reason", reason))
                .set(n);
        }
    }

    /// A provisioning pass that failed before deciding.
    pub fn provisioning_failed(&self) {
        self.provisioning_decisions
            .get_or_create(&label("result", "failed"))
            .inc();
    }

    /// A NodeClaim created for `pool`.
    pub fn created(&self, pool: &str, reason: &str) {
        self.nodeclaims_created
            .get_or_create(&labels([("nodepool", pool), ("reason", reason)]))
            .inc();
    }

    /// An instance launched for a NodeClaim of `pool`.
    pub fn launched(&self, pool: &str, capacity_type: &str) {
        self.nodeclaims_launched
            .get_or_create(&labels([
                ("nodepool", pool),
                ("capacity_type", capacity_type),
            ]))
            .inc();
    }

    /// A NodeClaim of `pool` whose node registered.
    pub fn registered(&self, pool: &str) {
        self.nodeclaims_registered
            .get_or_create(&label("nodepool", pool))
            .inc();
    }

    /// A NodeClaim of `pool` the controller deleted, and why.
    pub fn terminated(&self, pool: &str, reason: &str) {
        self.nodeclaims_terminated
            .get_or_create(&labels([("nodepool", pool), ("reason", reason)]))
            .inc();
    }

    /// A disruption action and what became of it.
    pub fn disruption(&self, action: &ballast_nodes::Action, result: &str) {
        let decision = if action.replacements.is_empty() {
            "delete"
        } else {
            "replace"
        };
        self.disruption_decisions
            .get_or_create(&labels([
                ("method", method_label(action.method)),
                ("decision", decision),
                ("result", result),
            ]))
            .inc();
    }

    /// What a disruption pass's decision says of the budgets: the nodes each budget held back and
    /// what every budget allows now.
    pub fn budgets(&self, d: &DisruptionDecision) {
        for b in &d.budgets {
            let reason = format!("{:?}", b.reason);
            self.allowed_disruptions
                .get_or_create(&labels([("nodepool", &b.node_pool), ("reason", &reason)]))
                .set(i64::try_from(b.available).unwrap_or(i64::MAX));
        }
        for n in &d.nodes {
            let Some(pool) = n.node_pool.as_deref() else {
                continue;
            };
            let reasons: BTreeSet<String> = n
                .notes
                .iter()
                .filter_map(|note| match &note.why {
                    Why::Budget { reason, .. } => Some(format!("{reason:?}")),
                    _ => None,
                })
                .collect();
            for reason in reasons {
                self.budget_blocks
                    .get_or_create(&labels([("nodepool", pool), ("reason", &reason)]))
                    .inc();
            }
        }
    }

    /// A failed provider call.
    pub fn cloud_error(&self, operation: &str, e: &ballast_cloud::CloudError) {
        self.cloud_errors
            .get_or_create(&labels([("operation", operation), ("code", e.code())]))
            .inc();
    }

    /// Sets each pool's hourly price and launched NodeClaims; pools no longer given are dropped.
    pub fn managed(&self, pools: &BTreeMap<String, (f64, i64)>) {
        let mut priced = self.priced.lock().unwrap_or_else(|e| e.into_inner());
        for gone in priced.iter().filter(|p| !pools.contains_key(*p)) {
            self.price.remove(&label("nodepool", gone.as_str()));
            self.managed_nodes.remove(&label("nodepool", gone.as_str()));
        }
        for (pool, (price, nodes)) in pools {
            self.price
                .get_or_create(&label("nodepool", pool.as_str()))
                .set(*price);
            self.managed_nodes
                .get_or_create(&label("nodepool", pool.as_str()))
                .set(*nodes);
        }
        *priced = pools.keys().cloned().collect();
    }
}

/// Every pending category, for a gauge per reason that drops to zero.
const CATEGORIES: [PendingCategory; 10] = [
    PendingCategory::LimitsReached,
    PendingCategory::NoAvailableOffering,
    PendingCategory::Topology,
    PendingCategory::HostPort,
    PendingCategory::TooLarge,
    PendingCategory::VolumeZone,
    PendingCategory::UnsatisfiableRequirements,
    PendingCategory::TaintsNotTolerated,
    PendingCategory::NoNodePools,
    PendingCategory::Other,
];

/// The `reason` label of a pending category (its name, as events show it).
fn category_label(c: PendingCategory) -> String {
    format!("{c:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn text(m: &NodesMetrics) -> String {
        let mut r = Registry::default();
        m.register(&mut r);
        let mut out = String::new();
        encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn every_metric_has_help_and_bounded_labels() {
        let m = NodesMetrics::default();
        m.provisioned("launch", 0.02, &[]);
        m.created("general", "provisioning");
        m.launched("general", "spot");
        m.registered("general");
        m.terminated("general", terminated::LAUNCH_TIMEOUT);
        m.cloud_error(
            "create",
            &ballast_cloud::CloudError::Transient("reset".into()),
        );
        m.managed(&[("general".to_string(), (0.17, 2))].into());
        let out = text(&m);
        for line in [
            "# HELP ballast_nodes_pending_pods ",
            "ballast_nodes_provisioning_decisions_total{result=\"launch\"} 1",
            "ballast_nodes_provisioning_solve_duration_seconds_count 1",
            "ballast_nodes_unschedulable_pods{reason=\"LimitsReached\"} 0",
            "ballast_nodes_nodeclaims_created_total{nodepool=\"general\",reason=\"provisioning\"} 1",
            "ballast_nodes_nodeclaims_launched_total{nodepool=\"general\",capacity_type=\"spot\"} 1",
            "ballast_nodes_nodeclaims_registered_total{nodepool=\"general\"} 1",
            "ballast_nodes_nodeclaims_terminated_total{nodepool=\"general\",reason=\"launch_timeout\"} 1",
            "ballast_nodes_cloud_errors_total{operation=\"create\",code=\"transient\"} 1",
            "ballast_nodes_managed_nodes_price_dollars_per_hour{nodepool=\"general\"} 0.17",
            "ballast_nodes_managed_nodes{nodepool=\"general\"} 2",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
        // A family shows once it has a series; every one shown has its HELP line.
        let families = out.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = out.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(families, helps);
    }

    #[test]
    fn pools_that_went_away_are_dropped() {
        let m = NodesMetrics::default();
        m.managed(&[("a".to_string(), (1.0, 1)), ("b".to_string(), (2.0, 1))].into());
        m.managed(&[("b".to_string(), (0.5, 1))].into());
        let out = text(&m);
        assert!(!out.contains("nodepool=\"a\""), "{out}");
        assert!(
            out.contains("ballast_nodes_managed_nodes_price_dollars_per_hour{nodepool=\"b\"} 0.5"),
            "{out}"
        );
    }

    #[test]
    fn budgets_count_the_nodes_they_held_back() {
        let note = |why: serde_json::Value| serde_json::json!({ "method": "Drift", "verdict": "Rejected", "why": why });
        let node = |name: &str, notes: Vec<serde_json::Value>| {
            serde_json::json!({ "node": name, "nodePool": "general", "price": 0.1,
                "disruptionCost": 1.0, "notes": notes })
        };
        let decision: DisruptionDecision = serde_json::from_value(serde_json::json!({
            "action": null,
            "nodes": [
                node("a", vec![note(serde_json::json!({ "kind": "budget", "reason": "Drifted", "budget": "1" }))]),
                node("b", vec![note(serde_json::json!({ "kind": "notDrifted" }))]),
            ],
            "budgets": [{ "nodePool": "general", "reason": "Drifted", "nodes": 2, "allowed": 1,
                "disrupting": 1, "available": 0, "budget": "1" }],
            "methods": [], "summary": "", "skipped": [], "simulations": [0, 0]
        }))
        .unwrap();
        let m = NodesMetrics::default();
        m.budgets(&decision);
        m.budgets(&decision);
        let out = text(&m);
        for line in [
            "ballast_nodes_disruption_budget_blocks_total{nodepool=\"general\",reason=\"Drifted\"} 2",
            "ballast_nodes_nodepool_allowed_disruptions{nodepool=\"general\",reason=\"Drifted\"} 0",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn methods_are_snake_case() {
        assert_eq!(
            method_label(Method::MultiNodeConsolidation),
            "multi_node_consolidation"
        );
    }
}
