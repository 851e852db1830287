//! The provisioner: batches the pods the kube-scheduler marked unschedulable, runs `provision` on
//! a snapshot of the cluster, creates the NodeClaims it decides, and tells every pod that gets no
//! node why (a Warning event). Solves again while pods stay pending: at least every `resync`, and
//! soon after a NodePool or NodeClaim changes (a deleted NodeClaim's pods need a new home). Every
//! turn also keeps the static NodePools at their replicas ([`super::static_pools`]); pods never
//! get a NodeClaim in a static pool (the solver opens none there).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_api::nodes::NodeClaim;
use ballast_cloud::CloudProvider;
use ballast_nodes::{
    Destination, LaunchPlan, PendingCategory, PendingExplanation, PodPlacement, ProvisionOptions,
    batch_state, observe, provision,
};
use ballast_scheduling::PodRef;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::PostParams;
use kube::{Api, Resource, ResourceExt};

use super::cluster::{self, SnapshotInputs};
use super::error::Error;
use super::static_pools::{self, StaticState};
use super::{Ctx, FIELD_MANAGER, pools};

/// Event reason for a pod no NodePool can take (requirements, taints, no pool at all).
pub const NO_COMPATIBLE_NODEPOOL: &str = "NoCompatibleNodePool";
/// Event reason for a pod a NodePool could take but not now (limits, capacity, topology...).
pub const FAILED_PROVISIONING: &str = "FailedProvisioning";
/// Event reason on a pod a new NodeClaim is made for.
pub const NOMINATED: &str = "Nominated";

/// The event reason for a pending category.
pub fn reason_for(c: PendingCategory) -> &'static str {
    match c {
        PendingCategory::NoNodePools
        | PendingCategory::UnsatisfiableRequirements
        | PendingCategory::TaintsNotTolerated
        | PendingCategory::VolumeZone => NO_COMPATIBLE_NODEPOOL,
        _ => FAILED_PROVISIONING,
    }
}

fn pod_key(p: &Pod) -> PodRef {
    PodRef {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
    }
}

/// Pending pods this controller provisions for.
fn pending_pods<P: CloudProvider>(ctx: &Ctx<P>) -> Vec<Arc<Pod>> {
    ctx.stores.provisionable_pods(&ctx.opts.namespaces)
}

/// State kept between passes.
#[derive(Default)]
struct Batch {
    first_seen: BTreeMap<String, Timestamp>,
    solved: BTreeSet<String>,
    /// Last event per pod (message, when), so a pod is not told the same thing every pass.
    told: BTreeMap<String, (String, Instant)>,
    explanations: Vec<PendingExplanation>,
}

fn uid(p: &Pod) -> String {
    p.metadata
        .uid
        .clone()
        .unwrap_or_else(|| pod_key(p).to_string())
}

/// How much later than its longest wait a loop may turn before `/healthz` calls it stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(300);

/// The provisioner loop.
pub async fn run<P: CloudProvider>(ctx: Arc<Ctx<P>>) {
    let mut changes = ctx.stores.changes.clone();
    let mut seen = *changes.borrow();
    let mut b = Batch::default();
    let mut statics = StaticState::default();
    let mut last_solve: Option<Instant> = None;
    let mut last_status: Option<Instant> = None;
    let mut dirty = false;
    loop {
        ctx.opts
            .heartbeats
            .beat("provisioner", ctx.opts.status_interval + STUCK_AFTER);
        let now = ctx.now();
        let pending = pending_pods(&ctx);
        ctx.opts
            .metrics
            .pending_pods
            .set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
        let live: BTreeSet<String> = pending.iter().map(|p| uid(p)).collect();
        b.first_seen.retain(|k, _| live.contains(k));
        b.solved.retain(|k| live.contains(k));
        b.told.retain(|k, _| live.contains(k));
        for p in &pending {
            b.first_seen.entry(uid(p)).or_insert(now);
        }
        let unsolved: Vec<Timestamp> = pending
            .iter()
            .filter(|p| !b.solved.contains(&uid(p)))
            .map(|p| b.first_seen[&uid(p)])
            .collect();
        let bs = batch_state(&unsolved, now, &ctx.opts.batch);
        let since_solve = last_solve.map(|t| t.elapsed());
        let leaving = leaving_pods(&ctx);
        let waiting = !pending.is_empty() || leaving > 0;
        let resync_due = waiting && since_solve.is_none_or(|s| s >= ctx.opts.resync);
        let dirty_due = dirty && waiting && since_solve.is_none_or(|s| s >= Duration::from_secs(2));
        let mut wake = Instant::now() + ctx.opts.status_interval;
        if bs.solve_now || resync_due || dirty_due {
            let with_seen: Vec<(Arc<Pod>, Timestamp)> = pending
                .iter()
                .map(|p| (p.clone(), b.first_seen[&uid(p)]))
                .collect();
            match solve(&ctx, &with_seen, now, &mut b).await {
                Ok(()) => {}
                Err(e) => {
                    ctx.opts.metrics.provisioning_failed();
                    tracing::warn!(error = %format!("{e:#}"), "provisioning pass failed")
                }
            }
            b.solved.extend(live.iter().cloned());
            last_solve = Some(Instant::now());
            dirty = false;
            last_status = None;
        } else if let Some(w) = bs.wake_at {
            let secs = w.duration_since(now).as_secs_f64().max(0.0);
            wake = wake.min(Instant::now() + Duration::from_secs_f64(secs));
        }
        if waiting && let Some(t) = last_solve {
            wake = wake.min(t + ctx.opts.resync);
        }
        static_pools::reconcile(&ctx, &mut statics).await;
        if last_status.is_none_or(|t| t.elapsed() >= ctx.opts.status_interval) {
            pools::update_statuses(&ctx, &b.explanations).await;
            last_status = Some(Instant::now());
        }
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    return;
                }
                let c = *changes.borrow_and_update();
                if c.pools_and_claims != seen.pools_and_claims {
                    dirty = true;
                }
                seen = c;
                // Let a burst of events settle.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// The NodeClaim to create, owned by its NodePool (deleting the pool deletes its claims).
fn claim_to_create<P: CloudProvider>(ctx: &Ctx<P>, claim: &NodeClaim, pool: &str) -> NodeClaim {
    let mut claim = claim.clone();
    if let Some(p) = ctx.stores.pools().get(pool)
        && let Some(uid) = p.metadata.uid.clone()
    {
        claim.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "nodes.ballast.dev/v1".into(),
            kind: "NodePool".into(),
            name: pool.into(),
            uid,
            block_owner_deletion: None,
            controller: None,
        }]);
    }
    claim
}

async fn solve<P: CloudProvider>(
    ctx: &Ctx<P>,
    pending: &[(Arc<Pod>, Timestamp)],
    now: Timestamp,
    b: &mut Batch,
) -> Result<(), Error> {
    let types = ctx.instance_types(now).await?;
    let recent = ctx.recent_claims();
    let snap = cluster::snapshot(
        &ctx.stores,
        SnapshotInputs {
            pending,
            instance_types: types,
            extra_claims: &recent,
            last_pod_events: &BTreeMap::new(),
        },
    );
    let opts = ProvisionOptions {
        solve: ctx.opts.solve.clone(),
        batch: ctx.opts.batch,
    };
    let started = Instant::now();
    let decision = provision(&snap, now, &opts)?;
    let result = if decision.node_claims.is_empty() {
        "no_launch"
    } else {
        "launch"
    };
    ctx.opts.metrics.provisioned(
        result,
        started.elapsed().as_secs_f64(),
        &decision.unschedulable,
    );
    for e in &decision.skipped {
        tracing::warn!(error = %e, "left out of the provisioning decision");
    }
    let by_key: BTreeMap<PodRef, &Arc<Pod>> =
        pending.iter().map(|(p, _)| (pod_key(p), p)).collect();
    for plan in &decision.node_claims {
        if create_planned(ctx, plan, "provisioning").await.is_some() {
            for pod in plan.pods.iter().filter_map(|k| by_key.get(k)) {
                ctx.events
                    .normal(
                        &pod.object_ref(&()),
                        NOMINATED,
                        "Provisioning",
                        format!(
                            "Pod should schedule on NodeClaim {} ({} {} {}, ${:.4}/h)",
                            plan.name,
                            plan.instance_type,
                            plan.zone,
                            plan.capacity_type,
                            plan.price
                        ),
                    )
                    .await;
            }
        }
    }
    log_placements(&decision.placements);
    for u in &decision.unschedulable {
        let Some(pod) = by_key.get(&u.pod) else {
            continue;
        };
        let key = uid(pod);
        let note = format!("[{:?}] {}", u.category, u.message);
        let fresh = b
            .told
            .get(&key)
            .is_none_or(|(m, at)| *m != note || at.elapsed() >= ctx.opts.resync);
        if fresh {
            tracing::info!(pod = %u.pod, category = ?u.category, "{}", u.message);
            ctx.events
                .warning(
                    &pod.object_ref(&()),
                    reason_for(u.category),
                    "Provisioning",
                    note.clone(),
                )
                .await;
            b.told.insert(key, (note, Instant::now()));
        }
    }
    b.explanations = decision.unschedulable;
    Ok(())
}

/// Creates a planned NodeClaim (owned by its pool), counts it under `reason`, and remembers it
/// until the cache shows it. None (logged) when the API server refused it.
pub(super) async fn create_planned<P: CloudProvider>(
    ctx: &Ctx<P>,
    plan: &LaunchPlan,
    reason: &str,
) -> Option<NodeClaim> {
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let claim = claim_to_create(ctx, &plan.node_claim, &plan.node_pool);
    match api.create(&pp, &claim).await {
        Ok(created) => {
            ctx.opts.metrics.created(&plan.node_pool, reason);
            tracing::info!(
                nodeclaim = %plan.name,
                nodepool = %plan.node_pool,
                instance_type = %plan.instance_type,
                zone = %plan.zone,
                capacity_type = %plan.capacity_type,
                price = plan.price,
                pods = plan.pods.len(),
                reason,
                "created NodeClaim"
            );
            ctx.recent_claims
                .lock()
                .expect("lock")
                .push((created.clone(), Instant::now()));
            Some(created)
        }
        Err(e) => {
            tracing::warn!(nodeclaim = %plan.name, error = %e, "creating NodeClaim failed");
            None
        }
    }
}

fn log_placements(placements: &[PodPlacement]) {
    for p in placements {
        match &p.to {
            Destination::Node(n) => {
                tracing::debug!(pod = %p.pod, node = %n, "fits an existing node")
            }
            Destination::InFlight(n) => {
                tracing::debug!(pod = %p.pod, nodeclaim = %n, "fits an in-flight NodeClaim")
            }
            Destination::NewNodeClaim(_) => {}
        }
    }
}

/// Pods that must move off nodes whose NodeClaim (or the node itself) is being deleted: the
/// provisioner finds them a home before the drain evicts them.
fn leaving_pods<P: CloudProvider>(ctx: &Ctx<P>) -> usize {
    let claims = ctx.stores.claims();
    let deleting: BTreeSet<String> = ctx
        .stores
        .nodes
        .state()
        .iter()
        .filter(|n| {
            let claim_deleting = observe::provider_id(n).is_some_and(|pid| {
                claims.iter().any(|c| {
                    cluster::claim_provider_id(c) == Some(pid)
                        && c.metadata.deletion_timestamp.is_some()
                })
            });
            claim_deleting
                || (n.metadata.deletion_timestamp.is_some()
                    && ctx
                        .stores
                        .pool_in_scope(cluster::node_pool_of(n).as_deref()))
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    if deleting.is_empty() {
        return 0;
    }
    ctx.stores
        .pods
        .state()
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| deleting.contains(n))
                && p.metadata.deletion_timestamp.is_none()
                && !observe::is_terminal(p)
                && !matches!(
                    observe::owner_kind(p).as_deref(),
                    Some("DaemonSet" | "Node")
                )
        })
        .count()
}
