//! Termination of a NodeClaim being deleted: cordon its node and taint it
//! `nodes.ballast.dev/disrupted:NoSchedule`, drain it through the Eviction API (a 429 from a PDB
//! means "not now": retried with backoff; do-not-disrupt pods wait; once the NodeClaim's
//! terminationGracePeriod has passed, remaining pods are deleted instead), daemon pods last, then
//! delete the instance through the provider and remove the finalizer only once it is gone.
//! The Node's own termination finalizer ([`super::node_termination`]) is removed here too, once
//! the instance is gone and the Node deleted, before the NodeClaim's.

use std::sync::Arc;
use std::time::Duration;

use ballast_api::common::parse_duration_seconds;
use ballast_api::nodes::{NodeClaim, labels};
use ballast_cloud::{CloudError, CloudProvider};
use ballast_nodes::observe;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{DeleteParams, EvictParams, Patch};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::cluster::claim_provider_id;
use super::error::Error;
use super::{Ctx, node_termination, patch_params};

/// Priority classes whose pods are evicted after the others.
const CRITICAL: [&str; 2] = ["system-cluster-critical", "system-node-critical"];

/// Eviction order: 0 ordinary pods, 1 critical pods, 2 DaemonSet pods; None: not evicted at all
/// (finished pods, mirror pods).
pub fn drain_group(p: &Pod) -> Option<usize> {
    if observe::is_terminal(p) {
        return None;
    }
    match observe::owner_kind(p).as_deref() {
        Some("Node") => None,
        Some("DaemonSet") => Some(2),
        _ if p
            .spec
            .as_ref()
            .and_then(|s| s.priority_class_name.as_deref())
            .is_some_and(|c| CRITICAL.contains(&c)) =>
        {
            Some(1)
        }
        _ => Some(0),
    }
}

fn do_not_disrupt(p: &Pod) -> bool {
    ballast_scheduling::aliases::get(p.annotations(), labels::DO_NOT_DISRUPT)
        .is_some_and(|v| v.trim() == "true")
}

/// Cordons the node and puts the disrupted taint on it (no-op when both are there).
pub async fn cordon_and_taint<P: CloudProvider>(
    ctx: &Ctx<P>,
    node: &Node,
) -> Result<(), kube::Error> {
    let spec = node.spec.clone().unwrap_or_default();
    let mut taints: Vec<Taint> = spec.taints.clone().unwrap_or_default();
    let tainted = taints
        .iter()
        .any(|t| t.key == labels::DISRUPTED_TAINT && t.effect == "NoSchedule");
    if tainted && spec.unschedulable == Some(true) {
        return Ok(());
    }
    if !tainted {
        taints.push(Taint {
            key: labels::DISRUPTED_TAINT.into(),
            value: None,
            effect: "NoSchedule".into(),
            time_added: None,
        });
    }
    let patch = serde_json::json!({ "spec": { "unschedulable": true, "taints": taints } });
    Api::<Node>::all(ctx.client.clone())
        .patch(&node.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// What a drain step found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DrainState {
    /// Pods still to go.
    pub remaining: usize,
    /// Evictions refused (PDB) or pods waiting for do-not-disrupt.
    pub blocked: usize,
}

/// One drain step: evicts the pods of the first non-empty group; reports what is left.
pub async fn drain<P: CloudProvider>(
    ctx: &Ctx<P>,
    node: &str,
    on_behalf: &NodeClaim,
    force: bool,
) -> Result<DrainState, kube::Error> {
    let pods = ctx.stores.pods_on(node);
    let mut groups: [Vec<Arc<Pod>>; 3] = Default::default();
    let mut st = DrainState::default();
    for p in pods {
        let Some(g) = drain_group(&p) else { continue };
        st.remaining += 1;
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if !force && do_not_disrupt(&p) {
            st.blocked += 1;
            continue;
        }
        groups[g].push(p);
    }
    let Some(group) = groups.iter().find(|g| !g.is_empty()) else {
        return Ok(st);
    };
    for p in group {
        let api: Api<Pod> =
            Api::namespaced(ctx.evictions.clone(), &p.namespace().unwrap_or_default());
        let name = p.name_any();
        let res = if force {
            api.delete(&name, &DeleteParams::default())
                .await
                .map(|_| ())
        } else {
            api.evict(&name, &EvictParams::default()).await.map(|_| ())
        };
        match res {
            Ok(()) => {
                tracing::info!(pod = %format!("{}/{name}", p.namespace().unwrap_or_default()), node, forced = force, "evicted")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Api(s))
                if s.code == 429 || (s.code == 500 && s.message.contains("isruption")) =>
            {
                st.blocked += 1;
                ctx.events
                    .warning(
                        &p.object_ref(&()),
                        "EvictionBlocked",
                        "Draining",
                        format!(
                            "eviction from node {node} (NodeClaim {}) refused, will retry: {}",
                            on_behalf.name_any(),
                            s.message
                        ),
                    )
                    .await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(st)
}

/// When the drain stops honouring PDBs and do-not-disrupt (deletion + terminationGracePeriod).
fn force_at(claim: &NodeClaim) -> Option<Timestamp> {
    let deleted = claim.metadata.deletion_timestamp.as_ref()?.0;
    let grace = parse_duration_seconds(claim.spec.termination_grace_period.as_deref()?).ok()?;
    deleted
        .checked_add(SignedDuration::from_secs_f64(grace))
        .ok()
}

/// Terminates a NodeClaim that is being deleted.
pub async fn terminate<P: CloudProvider>(claim: &NodeClaim, ctx: &Ctx<P>) -> Result<Action, Error> {
    if !claim
        .finalizers()
        .iter()
        .any(|f| f == labels::TERMINATION_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    let name = claim.name_any();
    let provider_id = claim_provider_id(claim).map(str::to_string).or_else(|| {
        ctx.launched
            .lock()
            .expect("lock")
            .get(&name)
            .map(|i| i.provider_id.clone())
    });
    let node = provider_id
        .as_deref()
        .and_then(|pid| ctx.stores.node_by_provider_id(pid))
        .or_else(|| {
            let n = claim.status.as_ref()?.node_name.clone()?;
            ctx.stores
                .nodes
                .find(|x| x.metadata.name.as_deref() == Some(n.as_str()))
        });
    if let Some(node) = &node {
        cordon_and_taint(ctx, node).await?;
        let force = force_at(claim).is_some_and(|t| ctx.now() >= t);
        let st = drain(ctx, &node.name_any(), claim, force).await?;
        if st.remaining > 0 {
            tracing::debug!(nodeclaim = %name, node = %node.name_any(), remaining = st.remaining, blocked = st.blocked, "draining");
            let wait = if st.blocked > 0 { 5 } else { 1 };
            return Ok(Action::requeue(Duration::from_secs(wait)));
        }
    }
    if let Some(pid) = &provider_id {
        match ctx.provider.delete(pid).await {
            Ok(()) | Err(CloudError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if ctx.provider.get(pid).await?.is_some() {
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
    }
    // Clouds whose Node object outlives the instance: remove it too, then let it go (our Node
    // finalizer is removed here, before the NodeClaim's, so nothing waits on the other).
    if let Some(node) = &node {
        match Api::<Node>::all(ctx.client.clone())
            .delete(&node.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        if node_termination::release(&ctx.client, &node.name_any()).await? {
            ctx.events
                .normal(
                    &node.object_ref(&()),
                    "Terminated",
                    "Terminating",
                    format!(
                        "drained, instance {} gone, NodeClaim {name} finishing: termination \
                         finalizer removed",
                        provider_id.as_deref().unwrap_or("(never launched)")
                    ),
                )
                .await;
        }
    }
    let rest: Vec<String> = claim
        .finalizers()
        .iter()
        .filter(|f| *f != labels::TERMINATION_FINALIZER)
        .cloned()
        .collect();
    let patch = serde_json::json!({ "metadata": { "finalizers": rest, "resourceVersion": claim.resource_version() } });
    match Api::<NodeClaim>::all(ctx.client.clone())
        .patch(&name, &patch_params(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    ctx.launched.lock().expect("lock").remove(&name);
    tracing::info!(nodeclaim = %name, node = ?node.as_ref().map(|n| n.name_any()), "terminated");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn drain_order() {
        let plain = pod("metadata: {name: a}\nspec: {containers: []}");
        let critical = pod(
            "metadata: {name: b}\nspec: {containers: [], priorityClassName: system-node-critical}",
        );
        let ds = pod(
            "metadata: {name: c, ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: d, uid: u, controller: true}]}\nspec: {containers: []}",
        );
        let mirror = pod(
            "metadata: {name: d, annotations: {kubernetes.io/config.mirror: x}}\nspec: {containers: []}",
        );
        let done = pod("metadata: {name: e}\nspec: {containers: []}\nstatus: {phase: Succeeded}");
        assert_eq!(drain_group(&plain), Some(0));
        assert_eq!(drain_group(&critical), Some(1));
        assert_eq!(drain_group(&ds), Some(2));
        assert_eq!(drain_group(&mirror), None);
        assert_eq!(drain_group(&done), None);
    }

    #[test]
    fn grace_period_forces_the_drain() {
        let mut c = NodeClaim::new("c", Default::default());
        assert_eq!(force_at(&c), None);
        c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
        c.spec.termination_grace_period = Some("1h".into());
        assert_eq!(force_at(&c), Some("2026-01-01T01:00:00Z".parse().unwrap()));
    }
}
