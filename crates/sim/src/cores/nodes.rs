//! The node decisions: provisioning for unschedulable pods and disruption passes, asked of
//! the nodes core on the cluster as the node controllers observe it.

use crate::observed::timestamp;
use crate::scenario::Scenario;
use crate::state::*;
use crate::world::{DisruptionPlan, Launch, World};
use std::collections::BTreeMap;

/// The node a launch plan of the nodes core asks for.
fn launch(plan: ballast_nodes::adapt::LaunchPlan) -> Launch {
    let claim = plan.node_claim;
    let labels = claim.metadata.labels.clone().unwrap_or_default();
    let taints = claim
        .spec
        .taints
        .iter()
        .map(ballast_nodes::adapt::model_taint)
        .collect();
    Launch {
        node_pool: plan.node_pool,
        instance_type: plan.instance_type,
        zone: plan.zone,
        capacity_type: plan.capacity_type,
        labels,
        taints,
        claim,
    }
}

fn pdbs(world: &World) -> Vec<ballast_nodes::snapshot::PodDisruptionBudget> {
    let mut out = vec![];
    for (w, spec) in world.sc.workloads.iter().enumerate() {
        if let Some(max) = spec.max_unavailable {
            let unavailable = world.workloads[w].desired - world.ready_pods(w) as i32;
            out.push(ballast_nodes::snapshot::PodDisruptionBudget {
                namespace: spec.namespace.clone(),
                name: spec.name.clone(),
                selector: ballast_scheduling::LabelSelector::labels(&[("app", spec.name.as_str())]),
                disruptions_allowed: (max - unavailable).max(0),
            });
        }
    }
    out
}

fn pending_pods(world: &World, pending: &[PodId]) -> Vec<ballast_nodes::snapshot::PendingPod> {
    pending
        .iter()
        .map(|&p| {
            let pod = &world.pods[p];
            ballast_nodes::snapshot::PendingPod {
                pod: pod.spec.clone(),
                first_seen: pod
                    .unschedulable_since
                    .map(|t| timestamp(world.sc.start, t)),
            }
        })
        .collect()
}

/// Runs the provisioning decision for the unschedulable pods; returns the nodes to launch.
pub(crate) fn provision(world: &mut World, unschedulable: &[PodId]) -> Vec<Launch> {
    check_observed(world);
    world.observed.snap.pending_pods = pending_pods(world, unschedulable);
    world.observed.snap.pdbs = pdbs(world);
    let masked = world.mask_unavailable();
    let now = timestamp(world.sc.start, world.now);
    let opts = ballast_nodes::provision::ProvisionOptions::default();
    let observed = &mut world.observed;
    let result = ballast_nodes::provision_with_memo(
        &observed.snap,
        now,
        &opts,
        &mut observed.provision_memo,
    );
    world.observed.snap.pending_pods.clear();
    if masked {
        world.unmask();
    }
    match result {
        Ok(decision) => {
            for e in &decision.skipped {
                world
                    .rec
                    .error(world.now, format!("provisioning skipped: {e}"));
            }
            for u in &decision.unschedulable {
                world.rec.pending_reasons.note(u);
            }
            decision.node_claims.into_iter().map(launch).collect()
        }
        Err(e) => {
            world.rec.error(world.now, format!("provisioning: {e}"));
            vec![]
        }
    }
}

/// The nodes that bring each static NodePool (`spec.replicas`) up to its replicas, decided by
/// `ballast_nodes::static_pool` as the live controller decides: live nodes of the pool count,
/// cordoned ones as being deleted, `limits.nodes` caps the launch. Nothing is removed here: a
/// scenario's replicas do not change and nothing else launches into a static pool.
pub(crate) fn static_pools(world: &mut World) -> Vec<Launch> {
    use ballast_nodes::static_pool::{
        StaticClaim, StaticDecision, decide_static, static_launch_plans,
    };
    let pools: Vec<_> = world
        .sc
        .node_pools
        .iter()
        .filter(|p| p.spec.replicas.is_some())
        .cloned()
        .collect();
    let mut out = vec![];
    for pool in &pools {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let replicas = match ballast_nodes::adapt::static_replicas(pool) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                world.rec.error(world.now, format!("static NodePool: {e}"));
                continue;
            }
        };
        let claims: Vec<StaticClaim> = world
            .live_nodes
            .iter()
            .map(|&n| &world.nodes[n])
            .filter(|n| n.node_pool.as_deref() == Some(name.as_str()))
            .map(|n| StaticClaim {
                name: n.name.clone(),
                pods: n.pods.len(),
                created: timestamp(world.sc.start, n.created),
                deleting: n.cordoned,
            })
            .collect();
        let limit = pool
            .spec
            .limits
            .as_ref()
            .and_then(|l| l.get("nodes"))
            .and_then(|q| ballast_nodes::resource_list::quantity_value("nodes", &q.0).ok())
            .map(|v| u64::try_from(v).unwrap_or(0));
        let StaticDecision::Launch { count, .. } = decide_static(replicas, limit, &claims) else {
            continue;
        };
        let now = timestamp(world.sc.start, world.now);
        match static_launch_plans(pool, &world.types, count, now.as_nanosecond()) {
            Ok(plans) => out.extend(plans.into_iter().map(launch)),
            Err(e) => world.rec.error(world.now, format!("static NodePool: {e}")),
        }
    }
    out
}

/// Seconds of each pool's `consolidateAfter` and `expireAfter` (None: never).
pub(crate) fn pool_timers(sc: &Scenario) -> BTreeMap<String, (Option<f64>, Option<f64>)> {
    let read = |v: Option<&str>, default: Option<f64>| match v {
        None => default,
        Some("Never") => None,
        Some(t) => ballast_api::common::parse_duration_seconds(t).ok(),
    };
    sc.node_pools
        .iter()
        .map(|p| {
            let after = read(
                p.spec
                    .disruption
                    .as_ref()
                    .and_then(|d| d.consolidate_after.as_deref()),
                Some(0.0),
            );
            let expire = read(
                p.spec.template.spec.expire_after.as_deref(),
                Some(720.0 * 3600.0),
            );
            (p.metadata.name.clone().unwrap_or_default(), (after, expire))
        })
        .collect()
}

/// Timers of a node: when it becomes consolidatable and when it expires.
fn node_timers(node: &SimNode) -> [Option<Millis>; 2] {
    let (after, expire) = node.pool_timers;
    [
        after.map(|a| node.last_pod_event + a),
        expire.map(|e| node.created + e),
    ]
}

/// Whether some node's consolidateAfter or expireAfter has run out: otherwise every graceful
/// method of the disruption core would refuse every node, and a pass can wait.
pub(crate) fn disruption_due(world: &World) -> bool {
    world
        .live_nodes
        .iter()
        .map(|&n| &world.nodes[n])
        .filter(|n| n.ready_at.is_some() && !n.cordoned)
        .any(|n| node_timers(n).into_iter().flatten().any(|t| t <= world.now))
}

/// Longest wait between two disruption passes when nothing prompts one.
const PERIODIC_DISRUPTION_MS: Millis = 300_000;

/// Runs one disruption pass. Returns the action to carry out, or when a timer (consolidateAfter,
/// expireAfter) next makes a new pass worth it if nothing else changes.
pub(crate) fn disrupt(world: &mut World) -> (Option<DisruptionPlan>, Millis) {
    check_observed(world);
    world.observed.snap.pdbs = pdbs(world);
    let masked = world.mask_unavailable();
    let now = timestamp(world.sc.start, world.now);
    let opts = ballast_nodes::disrupt::DisruptionOptions::default();
    let observed = &mut world.observed;
    let decided =
        ballast_nodes::disrupt::disrupt_with_memo(&observed.snap, now, &opts, &mut observed.memo);
    if masked {
        world.unmask();
    }
    let decision = match decided {
        Ok(d) => d,
        Err(e) => {
            world.rec.error(world.now, format!("disruption: {e}"));
            return (None, world.now + 3_600_000);
        }
    };
    if let Some(action) = decision.action {
        let nodes: Vec<NodeId> = action
            .nodes
            .iter()
            .filter_map(|name| world.node_ids.get(name).copied())
            .collect();
        if !nodes.is_empty() {
            return (
                Some(DisruptionPlan {
                    method: format!("{:?}", action.method),
                    nodes,
                    replacement: action
                        .replacements
                        .into_iter()
                        .next()
                        .map(|r| launch(r.plan)),
                    savings_per_hour: action.savings,
                }),
                world.now,
            );
        }
    }
    // Look again when a timer runs out, and at least every five minutes (budget windows).
    let mut wake = world.now + PERIODIC_DISRUPTION_MS;
    for node in world
        .live_nodes
        .iter()
        .map(|&n| &world.nodes[n])
        .filter(|n| n.ready_at.is_some())
    {
        for t in node_timers(node).into_iter().flatten() {
            if t > world.now {
                wake = wake.min(t);
            }
        }
    }
    (None, wake)
}

/// In debug builds: the kept snapshot must be the one built from scratch.
fn check_observed(world: &mut World) {
    if cfg!(debug_assertions) {
        let rebuilt = world.records().snapshot(&world.sc.node_pools, &world.types);
        if world.observed.differs_from(&rebuilt) {
            world.rec.error(
                world.now,
                "the kept cluster snapshot differs from a rebuilt one",
            );
        }
    }
}
