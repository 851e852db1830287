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

async fn collect<P: CloudProvider>(ctx: &Ctx<P>) -> Result<(), Error> {
    let now = ctx.now();
    let grace =
        SignedDuration::try_from(ctx.opts.gc_grace).unwrap_or(SignedDuration::from_secs(30));
    release_orphaned_nodes(ctx, now, grace).await;
    let instances: Vec<Instance> = ctx
        .provider
        .list()
        .await?
        .into_iter()
        .filter(|i| ctx.stores.pool_in_scope(i.node_pool.as_deref()))
        .collect();
    let all_claims = ctx.stores.node_claims.state();
    let launched: BTreeSet<String> = ctx
        .launched
        .lock()
        .expect("lock")
        .values()
        .map(|i| i.provider_id.clone())
        .collect();
    for i in orphaned_instances(&instances, &all_claims, &launched, now, grace) {
        tracing::warn!(provider_id = %i.provider_id, instance_type = %i.instance_type, "deleting an instance no NodeClaim accounts for");
        match ctx.provider.delete(&i.provider_id).await {
            Ok(()) | Err(CloudError::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(provider_id = %i.provider_id, error = %e, "deleting orphaned instance failed")
            }
        }
    }
    let mine: Vec<Arc<NodeClaim>> = all_claims
        .iter()
        .filter(|c| ctx.stores.pool_in_scope(claim_pool(c)))
        .cloned()
        .collect();
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    for c in claims_without_instance(&mine, &instances, now, grace) {
        let pid = claim_provider_id(&c).unwrap_or_default().to_string();
        // The list may be stale; ask once more.
        if ctx.provider.get(&pid).await?.is_some() {
            continue;
        }
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
    Ok(())
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
