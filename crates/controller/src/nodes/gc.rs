//! Garbage collection: instances the provider lists that no NodeClaim accounts for are deleted
//! (a second instance launched for a NodeClaim that records another one included);
//! launched NodeClaims whose instance is gone are deleted (their pods get provisioned again);
//! Nodes holding our termination finalizer whose NodeClaim is gone are released (the finalizer
//! removed), so no Node waits for a termination that will never run.
//! Anything younger than `gc_grace` is left alone (a launch may not be recorded yet).

use std::collections::BTreeSet;
use std::sync::Arc;

use ballast_api::nodes::NodeClaim;
use ballast_cloud::{CloudError, CloudProvider, Instance};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Node;
use kube::api::DeleteParams;
use kube::{Api, Resource, ResourceExt};

use super::cluster::{claim_pool, claim_provider_id, node_pool_of};
use super::error::Error;
use super::metrics::terminated;
use super::{Ctx, node_termination};

fn older_than(t: Option<Timestamp>, now: Timestamp, grace: SignedDuration) -> bool {
    t.is_some_and(|t| now.duration_since(t) >= grace)
}

/// Instances no NodeClaim accounts for: neither a NodeClaim's provider ID (or a launch not yet
/// recorded) nor launched for a NodeClaim that is still launching (no provider ID yet). An
/// instance launched for a NodeClaim that records another instance is a duplicate (a launch
/// whose answer was lost, then retried) and is collected too.
pub fn orphaned_instances<'a>(
    instances: &'a [Instance],
    claims: &[Arc<NodeClaim>],
    launched: &BTreeSet<String>,
    now: Timestamp,
    grace: SignedDuration,
) -> Vec<&'a Instance> {
    let pids: BTreeSet<&str> = claims.iter().filter_map(|c| claim_provider_id(c)).collect();
    let launching: BTreeSet<String> = claims
        .iter()
        .filter(|c| claim_provider_id(c).is_none())
        .map(|c| c.name_any())
        .collect();
    instances
        .iter()
        .filter(|i| !pids.contains(i.provider_id.as_str()) && !launched.contains(&i.provider_id))
        .filter(|i| !i.node_claim.as_ref().is_some_and(|n| launching.contains(n)))
        .filter(|i| older_than(i.created, now, grace))
        .collect()
}

/// Launched NodeClaims (not being deleted) whose instance is not listed.
pub fn claims_without_instance(
    claims: &[Arc<NodeClaim>],
    instances: &[Instance],
    now: Timestamp,
    grace: SignedDuration,
) -> Vec<Arc<NodeClaim>> {
    let live: BTreeSet<&str> = instances.iter().map(|i| i.provider_id.as_str()).collect();
    claims
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter(|c| claim_provider_id(c).is_some_and(|p| !live.contains(p)))
        .filter(|c| {
            let launched = c
                .status
                .as_ref()
                .and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|x| x.type_ == "Launched" && x.status == "True")
                })
                .map(|x| x.last_transition_time.0)
                .or_else(|| c.metadata.creation_timestamp.as_ref().map(|t| t.0));
            older_than(launched, now, grace)
        })
        .cloned()
        .collect()
}

/// Nodes (of the given ones: the caller keeps those in scope) that hold our termination
/// finalizer although no NodeClaim has them (by provider ID or recorded node name), older than
/// `grace`: their finalizer is to be removed.
pub fn nodes_to_release(
    nodes: &[Arc<Node>],
    claims: &[Arc<NodeClaim>],
    now: Timestamp,
    grace: SignedDuration,
) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| node_termination::has_finalizer(n))
        .filter(|n| !claims.iter().any(|c| node_termination::claim_owns(c, n)))
        .filter(|n| {
            older_than(
                n.metadata.creation_timestamp.as_ref().map(|t| t.0),
                now,
                grace,
            )
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect()
}

/// Releases Nodes whose NodeClaim is gone (see [`nodes_to_release`]).
async fn release_orphaned_nodes<P: CloudProvider>(
    ctx: &Ctx<P>,
    now: Timestamp,
    grace: SignedDuration,
) {
    let nodes: Vec<Arc<Node>> = ctx
        .stores
        .nodes
        .state()
        .into_iter()
        .filter(|n| ctx.stores.pool_in_scope(node_pool_of(n).as_deref()))
        .collect();
    // Every NodeClaim the cache holds, in scope or not: a Node some NodeClaim has is not an orphan.
    let claims = ctx.stores.node_claims.state();
    for name in nodes_to_release(&nodes, &claims, now, grace) {
        match node_termination::release(&ctx.client, &name).await {
            Ok(true) => {
                tracing::warn!(node = %name, "no NodeClaim has this node: termination finalizer removed");
                let on = nodes
                    .iter()
                    .find(|n| n.metadata.name.as_deref() == Some(name.as_str()))
                    .map(|n| n.object_ref(&()));
                if let Some(on) = on {
                    ctx.events
                        .normal(
                            &on,
                            "TerminationFinalizerRemoved",
                            "GarbageCollection",
                            "no NodeClaim has this node any more: termination finalizer removed"
                                .into(),
                        )
                        .await;
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "removing the termination finalizer failed")
            }
        }
    }
}

/// What one collection sees in the cloud, and what it has done there.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Orphaned instances deleted (or found already gone).
    pub deleted: Vec<Instance>,
    /// Orphaned instances whose deletion failed (tried again next time).
    pub failed: Vec<(Instance, CloudError)>,
    /// NodeClaims in scope whose instance is gone, asked once more: to be deleted.
    pub claims_gone: Vec<Arc<NodeClaim>>,
    /// The error that cut the second look short (the claims before it are in `claims_gone`).
    pub error: Option<CloudError>,
}

/// The cloud side of a collection: lists the provider's instances of the pools in scope,
/// deletes the orphans among them ([`orphaned_instances`], over every NodeClaim `all_claims`
/// holds, in scope or not), and finds the NodeClaims of `mine` whose instance is gone
/// ([`claims_without_instance`], each asked about once more since the list may be stale).
/// Fails only when the list does.
pub async fn sweep<P: CloudProvider>(
    provider: &P,
    pool_in_scope: impl Fn(Option<&str>) -> bool,
    all_claims: &[Arc<NodeClaim>],
    mine: &[Arc<NodeClaim>],
    launched: &BTreeSet<String>,
    now: Timestamp,
    grace: SignedDuration,
) -> Result<Sweep, CloudError> {
    let instances: Vec<Instance> = provider
        .list()
        .await?
        .into_iter()
        .filter(|i| pool_in_scope(i.node_pool.as_deref()))
        .collect();
    let mut out = Sweep::default();
    for i in orphaned_instances(&instances, all_claims, launched, now, grace) {
        tracing::warn!(provider_id = %i.provider_id, instance_type = %i.instance_type, "deleting an instance no NodeClaim accounts for");
        match provider.delete(&i.provider_id).await {
            Ok(()) | Err(CloudError::NotFound { .. }) => out.deleted.push(i.clone()),
            Err(e) => {
                tracing::warn!(provider_id = %i.provider_id, error = %e, "deleting orphaned instance failed");
                out.failed.push((i.clone(), e));
            }
        }
    }
    for c in claims_without_instance(mine, &instances, now, grace) {
        let pid = claim_provider_id(&c).unwrap_or_default();
        match provider.get(pid).await {
            Ok(Some(_)) => {}
            Ok(None) => out.claims_gone.push(c),
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    Ok(out)
}

async fn collect<P: CloudProvider>(ctx: &Ctx<P>) -> Result<(), Error> {
    let now = ctx.now();
    let grace =
        SignedDuration::try_from(ctx.opts.gc_grace).unwrap_or(SignedDuration::from_secs(30));
    release_orphaned_nodes(ctx, now, grace).await;
    let all_claims = ctx.stores.node_claims.state();
    let launched: BTreeSet<String> = ctx
        .launched
        .lock()
        .expect("lock")
        .values()
        .map(|i| i.provider_id.clone())
        .collect();
    let mine: Vec<Arc<NodeClaim>> = all_claims
        .iter()
        .filter(|c| ctx.stores.pool_in_scope(claim_pool(c)))
        .cloned()
        .collect();
    let sweep = sweep(
        &*ctx.provider,
        |pool| ctx.stores.pool_in_scope(pool),
        &all_claims,
        &mine,
        &launched,
        now,
        grace,
    )
    .await?;
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    for c in sweep.claims_gone {
        let pid = claim_provider_id(&c).unwrap_or_default().to_string();
        let why = format!("instance {pid} is gone: deleting the NodeClaim");
        tracing::warn!(nodeclaim = %c.name_any(), "{why}");
        ctx.events
            .warning(&c.object_ref(&()), "InstanceGone", "GarbageCollection", why)
            .await;
        match api.delete(&c.name_any(), &DeleteParams::background()).await {
            Ok(_) => {
                let pool = claim_pool(&c).unwrap_or_default();
                ctx.opts.metrics.terminated(pool, terminated::INSTANCE_GONE);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(nodeclaim = %c.name_any(), error = %e, "deleting NodeClaim failed")
            }
        }
    }
    match sweep.error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The garbage-collection loop.
pub async fn run<P: CloudProvider>(ctx: Arc<Ctx<P>>) {
    loop {
        tokio::time::sleep(ctx.opts.gc_interval).await;
        if let Err(e) = collect(&ctx).await {
            tracing::warn!(error = %format!("{e:#}"), "garbage collection failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_api::nodes::NodeClaimStatus;
    use ballast_cloud::fake::{FakeCloud, Operation, ready};

    fn inst(pid: &str, claim: Option<&str>, created: &str) -> Instance {
        Instance {
            provider_id: pid.into(),
            node_name: None,
            node_claim: claim.map(str::to_string),
            node_pool: Some("p".into()),
            instance_type: "t".into(),
            zone: "z".into(),
            capacity_type: "spot".into(),
            image_id: None,
            capacity: Default::default(),
            allocatable: Default::default(),
            created: Some(created.parse().unwrap()),
        }
    }

    fn claim(name: &str, pid: Option<&str>, created: &str) -> Arc<NodeClaim> {
        let mut c = NodeClaim::new(name, Default::default());
        c.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            created.parse().unwrap(),
        ));
        c.status = Some(NodeClaimStatus {
            provider_id: pid.map(str::to_string),
            ..Default::default()
        });
        Arc::new(c)
    }

    #[test]
    fn orphans_both_ways() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let grace = SignedDuration::from_secs(30);
        let instances = vec![
            inst("kwok://a", Some("a"), "2026-01-01T00:00:00Z"),
            inst("kwok://b", Some("b"), "2026-01-01T00:00:00Z"),
            inst("kwok://c", Some("c"), "2026-01-01T00:09:50Z"),
            inst("kwok://d", Some("d"), "2026-01-01T00:00:00Z"),
        ];
        let claims = vec![
            claim("a", Some("kwok://a"), "2026-01-01T00:00:00Z"),
            claim("d", None, "2026-01-01T00:00:00Z"),
            claim("e", Some("kwok://e"), "2026-01-01T00:00:00Z"),
            claim("f", Some("kwok://f"), "2026-01-01T00:09:59Z"),
        ];
        let o: Vec<&str> = orphaned_instances(&instances, &claims, &BTreeSet::new(), now, grace)
            .iter()
            .map(|i| i.provider_id.as_str())
            .collect();
        // b: no claim; c: too young; d: its claim exists but has not recorded it yet.
        assert_eq!(o, vec!["kwok://b"]);
        // A second instance launched for a, which records kwok://a: a duplicate, collected; one
        // whose launch is known but not yet recorded is kept.
        let mut more = instances.clone();
        more.push(inst("kwok://a2", Some("a"), "2026-01-01T00:00:00Z"));
        more.push(inst("kwok://a3", Some("a"), "2026-01-01T00:00:00Z"));
        let launched = BTreeSet::from(["kwok://a3".to_string()]);
        let o: Vec<&str> = orphaned_instances(&more, &claims, &launched, now, grace)
            .iter()
            .map(|i| i.provider_id.as_str())
            .collect();
        assert_eq!(o, vec!["kwok://b", "kwok://a2"]);
        let gone: Vec<String> = claims_without_instance(&claims, &instances, now, grace)
            .iter()
            .map(|c| c.name_any())
            .collect();
        assert_eq!(gone, vec!["e".to_string()]);
    }

    fn pids(instances: &[Instance]) -> Vec<&str> {
        instances.iter().map(|i| i.provider_id.as_str()).collect()
    }

    /// A cloud of pool `p` (in scope) and pool `other` (not), at ten past midnight.
    fn swept(cloud: &FakeCloud, claims: &[Arc<NodeClaim>]) -> Result<Sweep, CloudError> {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let mine: Vec<Arc<NodeClaim>> = claims.to_vec();
        ready(sweep(
            cloud,
            |pool| pool == Some("p"),
            claims,
            &mine,
            &BTreeSet::new(),
            now,
            SignedDuration::from_secs(30),
        ))
    }

    #[test]
    fn a_sweep_deletes_orphans_in_scope_and_finds_claims_gone() {
        let cloud = FakeCloud::new(vec![]);
        let old = "2026-01-01T00:00:00Z";
        cloud.insert(inst("fake://a", Some("a"), old));
        cloud.insert(inst("fake://b", None, old));
        cloud.insert(inst("fake://young", None, "2026-01-01T00:09:50Z"));
        let mut elsewhere = inst("fake://other-pool", None, old);
        elsewhere.node_pool = Some("other".into());
        cloud.insert(elsewhere.clone());
        cloud.insert_foreign(inst("fake://other-cluster", None, old));
        // f's instance is of a pool out of scope: not listed, but there when asked.
        let mut f_instance = inst("fake://f", Some("f"), old);
        f_instance.node_pool = Some("other".into());
        cloud.insert(f_instance);
        let claims = vec![
            claim("a", Some("fake://a"), old),
            claim("e", Some("fake://e"), old),
            claim("f", Some("fake://f"), old),
        ];
        let sweep = swept(&cloud, &claims).unwrap();
        assert_eq!(pids(&sweep.deleted), vec!["fake://b"]);
        assert!(sweep.failed.is_empty());
        let gone: Vec<String> = sweep.claims_gone.iter().map(|c| c.name_any()).collect();
        assert_eq!(gone, vec!["e".to_string()]);
        assert_eq!(sweep.error, None);
        assert_eq!(
            pids(&cloud.running()),
            vec![
                "fake://a",
                "fake://f",
                "fake://other-cluster",
                "fake://other-pool",
                "fake://young"
            ]
        );
    }

    #[test]
    fn a_sweep_goes_on_past_failed_deletions_and_stops_at_a_failed_look() {
        let cloud = FakeCloud::new(vec![]);
        let old = "2026-01-01T00:00:00Z";
        cloud.insert(inst("fake://b", None, old));
        cloud.insert(inst("fake://c", None, old));
        cloud.fail_next(Operation::Delete, 1, CloudError::Transient("reset".into()));
        cloud.fail_next(Operation::Get, 1, CloudError::Transient("timeout".into()));
        let claims = vec![
            claim("e", Some("fake://e"), old),
            claim("g", Some("fake://g"), old),
        ];
        let sweep = swept(&cloud, &claims).unwrap();
        assert_eq!(pids(&sweep.deleted), vec!["fake://c"]);
        let failed: Vec<&str> = sweep
            .failed
            .iter()
            .map(|(i, _)| i.provider_id.as_str())
            .collect();
        assert_eq!(failed, vec!["fake://b"]);
        assert!(sweep.claims_gone.is_empty());
        assert_eq!(sweep.error, Some(CloudError::Transient("timeout".into())));
        // The next sweep finishes the job.
        let sweep = swept(&cloud, &claims).unwrap();
        assert_eq!(pids(&sweep.deleted), vec!["fake://b"]);
        assert_eq!(sweep.claims_gone.len(), 2);
        // A failed list is the collection's failure.
        cloud.fail_next(Operation::List, 1, CloudError::Other("denied".into()));
        assert_eq!(
            swept(&cloud, &claims).err(),
            Some(CloudError::Other("denied".into()))
        );
    }

    fn node(name: &str, pid: &str, finalizer: bool, created: &str) -> Arc<Node> {
        let mut n: Node = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "creationTimestamp": created },
            "spec": { "providerID": pid },
        }))
        .unwrap();
        if finalizer {
            n.metadata.finalizers = Some(vec![
                "other/keep".into(),
                ballast_api::nodes::labels::TERMINATION_FINALIZER.into(),
            ]);
        }
        Arc::new(n)
    }

    #[test]
    fn nodes_without_claim_are_released() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let grace = SignedDuration::from_secs(30);
        let nodes = vec![
            node("a", "kwok://a", true, "2026-01-01T00:00:00Z"),
            node("b", "kwok://b", true, "2026-01-01T00:00:00Z"),
            node("c", "kwok://c", true, "2026-01-01T00:09:50Z"),
            node("d", "kwok://d", false, "2026-01-01T00:00:00Z"),
            node("e", "kwok://e", true, "2026-01-01T00:00:00Z"),
        ];
        let mut by_name = (*claim("e-claim", None, "2026-01-01T00:00:00Z")).clone();
        by_name.status.as_mut().unwrap().node_name = Some("e".into());
        let claims = vec![
            claim("a", Some("kwok://a"), "2026-01-01T00:00:00Z"),
            Arc::new(by_name),
        ];
        // a: its claim has it; b: released; c: too young; d: no finalizer; e: its claim
        // recorded the node name before its provider ID.
        assert_eq!(
            nodes_to_release(&nodes, &claims, now, grace),
            vec!["b".to_string()]
        );
    }
}
