//! Static NodePools (`spec.replicas`): one pass per provisioner turn keeps each static pool in
//! scope at its replicas. The pool's NodeClaims (with those just created that the cache does not
//! show yet, and those just deleted counted as deleting) go to `ballast_nodes::static_pool`;
//! missing NodeClaims are created as the provisioner creates its own, surplus ones deleted
//! (the termination path drains their nodes within the PDBs). The pool gets a Normal event for
//! every change and a Warning naming `limits.nodes` when that limit stops it short.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ballast_api::nodes::{NodeClaim, NodePool};
use ballast_cloud::CloudProvider;
use ballast_nodes::adapt::static_replicas;
use ballast_nodes::observe;
use ballast_nodes::static_pool::{StaticClaim, StaticDecision, decide_static, static_launch_plans};
use jiff::Timestamp;
use kube::api::DeleteParams;
use kube::{Api, Resource, ResourceExt};

use super::cluster::{claim_pool, claim_provider_id};
use super::{Ctx, provisioner};

/// Event reason on a static pool whose nodes were added or removed.
pub const SCALED: &str = "StaticScaled";
/// Event reason on a static pool `limits.nodes` keeps below its replicas.
pub const LIMITED: &str = "StaticLimitReached";
/// Metric reason of the NodeClaims a static pool creates and deletes.
pub const METRIC_REASON: &str = "static";

/// How long a NodeClaim this pass deleted counts as deleting even if the cache still shows it
/// without a deletion timestamp.
const DELETED_MEMORY: Duration = Duration::from_secs(60);

/// What the passes remember: NodeClaims they deleted, and the last limit warning per pool (so a
/// pool held by its limit is told once, not every pass).
#[derive(Default)]
pub struct StaticState {
    deleted: BTreeMap<String, Instant>,
    warned: BTreeMap<String, String>,
}

/// Keeps every static pool in scope at its replicas.
pub async fn reconcile<P: CloudProvider>(ctx: &Ctx<P>, state: &mut StaticState) {
    state.deleted.retain(|_, at| at.elapsed() < DELETED_MEMORY);
    let pools = ctx.stores.pools();
    if !pools.values().any(|p| p.spec.replicas.is_some()) {
        return;
    }
    let mut claims: Vec<NodeClaim> = ctx.stores.claims().iter().map(|c| (**c).clone()).collect();
    claims.extend(ctx.recent_claims());
    for (name, pool) in pools.iter() {
        let replicas = match static_replicas(pool) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(nodepool = %name, error = %e, "static NodePool left as it is");
                continue;
            }
        };
        let mine: Vec<&NodeClaim> = claims
            .iter()
            .filter(|c| claim_pool(c) == Some(name.as_str()))
            .collect();
        let seen = observe_claims(ctx, &mine, &state.deleted);
        let limit = limit_nodes(pool);
        let decision = decide_static(replicas, limit, &seen);
        let active = seen.iter().filter(|c| !c.deleting).count();
        carry_out(ctx, state, pool, replicas, active, limit, decision).await;
    }
}

/// The pool's `limits.nodes` as a count; one that does not parse is reported by the pool's
/// `Ready` condition and read here as no limit.
fn limit_nodes(pool: &NodePool) -> Option<u64> {
    let q = pool.spec.limits.as_ref()?.get("nodes")?;
    let v = ballast_nodes::resource_list::quantity_value("nodes", &q.0).ok()?;
    Some(u64::try_from(v).unwrap_or(0))
}

/// The pool's NodeClaims as the decision sees them: pods on each one's node (DaemonSet, static
/// and finished pods do not count), created, deleting.
fn observe_claims<P: CloudProvider>(
    ctx: &Ctx<P>,
    claims: &[&NodeClaim],
    deleted: &BTreeMap<String, Instant>,
) -> Vec<StaticClaim> {
    claims
        .iter()
        .map(|c| {
            let name = c.name_any();
            let pods = claim_provider_id(c)
                .and_then(|pid| ctx.stores.node_by_provider_id(pid))
                .map_or(0, |n| {
                    ctx.stores
                        .pods_on(&n.name_any())
                        .iter()
                        .filter(|p| {
                            !observe::is_terminal(p)
                                && !matches!(
                                    observe::owner_kind(p).as_deref(),
                                    Some("DaemonSet" | "Node")
                                )
                        })
                        .count()
                });
            StaticClaim {
                pods,
                created: c
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
                deleting: c.metadata.deletion_timestamp.is_some() || deleted.contains_key(&name),
                name,
            }
        })
        .collect()
}

async fn carry_out<P: CloudProvider>(
    ctx: &Ctx<P>,
    state: &mut StaticState,
    pool: &NodePool,
    replicas: u32,
    active: usize,
    limit: Option<u64>,
    decision: StaticDecision,
) {
    let name = pool.name_any();
    let room = match &decision {
        StaticDecision::Launch {
            count,
            limited: true,
        } => Some(*count),
        StaticDecision::Limited { .. } => Some(0),
        _ => None,
    };
    match room {
        Some(room) => {
            let note = format!(
                "spec.replicas is {replicas} and {active} nodes are active, but limits.nodes {} leaves room for {room} more",
                limit.unwrap_or_default(),
            );
            if state.warned.get(&name) != Some(&note) {
                tracing::info!(nodepool = %name, "{note}");
                ctx.events
                    .warning(&pool.object_ref(&()), LIMITED, "Provisioning", note.clone())
                    .await;
                state.warned.insert(name.clone(), note);
            }
        }
        None => {
            state.warned.remove(&name);
        }
    }
    match decision {
        StaticDecision::Launch { count, .. } => launch(ctx, pool, replicas, count).await,
        StaticDecision::Remove { claims } => remove(ctx, state, pool, replicas, &claims).await,
        StaticDecision::Hold | StaticDecision::Limited { .. } => {}
    }
}

async fn launch<P: CloudProvider>(ctx: &Ctx<P>, pool: &NodePool, replicas: u32, count: usize) {
    let name = pool.name_any();
    let now = ctx.now();
    let types = match ctx.instance_types(now).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(nodepool = %name, error = %e, "instance types unavailable for a static NodePool");
            return;
        }
    };
    let plans = match static_launch_plans(pool, &types, count, now.as_nanosecond()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(nodepool = %name, error = %e, "static NodePool cannot launch");
            ctx.events
                .warning(
                    &pool.object_ref(&()),
                    "StaticLaunchFailed",
                    "Provisioning",
                    e.to_string(),
                )
                .await;
            return;
        }
    };
    let mut made = vec![];
    for plan in &plans {
        if provisioner::create_planned(ctx, plan, METRIC_REASON)
            .await
            .is_some()
        {
            made.push(plan.name.clone());
        }
    }
    if !made.is_empty() {
        ctx.events
            .normal(
                &pool.object_ref(&()),
                SCALED,
                "Provisioning",
                format!(
                    "created NodeClaims {} to keep spec.replicas {replicas}",
                    made.join(", ")
                ),
            )
            .await;
    }
}

async fn remove<P: CloudProvider>(
    ctx: &Ctx<P>,
    state: &mut StaticState,
    pool: &NodePool,
    replicas: u32,
    claims: &[String],
) {
    let name = pool.name_any();
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    let mut gone = vec![];
    for claim in claims {
        match api.delete(claim, &DeleteParams::background()).await {
            Ok(_) => {
                ctx.opts.metrics.terminated(&name, METRIC_REASON);
                gone.push(claim.clone());
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(nodeclaim = %claim, error = %e, "deleting a static pool's NodeClaim failed");
                continue;
            }
        }
        state.deleted.insert(claim.clone(), Instant::now());
    }
    if !gone.is_empty() {
        tracing::info!(nodepool = %name, nodeclaims = %gone.join(", "), replicas, "static NodePool scaled down");
        ctx.events
            .normal(
                &pool.object_ref(&()),
                SCALED,
                "Disrupting",
                format!(
                    "deleting NodeClaims {} (fewest pods first) to keep spec.replicas {replicas}",
                    gone.join(", ")
                ),
            )
            .await;
    }
}
