//! The Node side of termination. A Node registered by one of our NodeClaims carries the
//! finalizer `nodes.ballast.dev/termination` (added once the node is registered, and on start-up
//! to nodes registered before), so deleting the Node (`kubectl delete node`) goes through the
//! same drain as deleting its NodeClaim:
//!
//! - the Node gets a deletion timestamp and stays;
//! - this controller deletes its NodeClaim (unless it is already being deleted), with a
//!   `DeletingNodeClaim` event on the Node and a `NodeDeleted` event on the NodeClaim;
//! - [`super::termination`] cordons, taints and drains the node (Eviction API, PDBs, critical and
//!   DaemonSet pods last), deletes the instance and, once the instance is gone, deletes the Node
//!   and removes this finalizer ([`release`]) before its own;
//! - a deleting Node whose NodeClaim no longer exists loses the finalizer at once; garbage
//!   collection releases Nodes whose NodeClaim is gone even when nobody deletes them.
//!
//! Nodes of NodePools outside this process's scope, and nodes no NodeClaim of ours registered,
//! are never touched. What to do with one Node is [`node_step`], a pure function.

use std::sync::Arc;
use std::time::Duration;

use ballast_api::nodes::{NodeClaim, labels};
use ballast_cloud::CloudProvider;
use ballast_nodes::observe;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use super::cluster::{Stores, claim_pool, claim_provider_id, node_pool_of};
use super::error::Error;
use super::metrics::terminated;
use super::{Ctx, patch_params};
use crate::watch_backoff::WatchBackoff;

/// What [`node_step`] looks at on a Node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFacts {
    /// Its NodePool is one this process manages.
    pub in_scope: bool,
    /// Its NodeClaim registered it (`nodes.ballast.dev/registered`).
    pub registered: bool,
    /// It carries `nodes.ballast.dev/termination`.
    pub has_finalizer: bool,
    /// It has a deletion timestamp.
    pub deleting: bool,
}

impl NodeFacts {
    /// The facts of a Node, `in_scope` as the caller's scope says.
    pub fn of(node: &Node, in_scope: bool) -> NodeFacts {
        NodeFacts {
            in_scope,
            registered: node.labels().contains_key(labels::REGISTERED),
            has_finalizer: has_finalizer(node),
            deleting: node.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// The Node's NodeClaim, as the cache shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// No NodeClaim of ours has this node.
    Missing,
    Live,
    Deleting,
}

impl ClaimState {
    pub fn of(claim: Option<&NodeClaim>) -> ClaimState {
        match claim {
            None => ClaimState::Missing,
            Some(c) if c.metadata.deletion_timestamp.is_some() => ClaimState::Deleting,
            Some(_) => ClaimState::Live,
        }
    }
}

/// What to do with a Node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStep {
    /// Nothing: not ours, nothing to change, or garbage collection's business.
    Leave,
    /// Registered by a live NodeClaim and without the finalizer: add it.
    AddFinalizer,
    /// Deleted while its NodeClaim lives: delete the NodeClaim, whose termination drains it.
    DeleteClaim,
    /// Deleted, its NodeClaim is terminating: the termination removes the finalizer at its end.
    AwaitTermination,
    /// Deleted and no NodeClaim left to drain it: remove the finalizer.
    RemoveFinalizer,
}

/// The one decision of this controller.
///
/// A Node outside the scope is never touched. A Node that is not being deleted gets the
/// finalizer when a live NodeClaim registered it (a Node whose NodeClaim is already terminating
/// does not: the termination deletes it anyway). A deleted Node holding the finalizer has its
/// NodeClaim deleted, waits for that NodeClaim's termination, or is released when no NodeClaim
/// is left. A Node holding the finalizer without NodeClaim and not being deleted is left to
/// garbage collection (which waits a grace period, so a lagging cache never strips it).
pub fn node_step(node: NodeFacts, claim: ClaimState) -> NodeStep {
    if !node.in_scope {
        return NodeStep::Leave;
    }
    if !node.deleting {
        return if claim == ClaimState::Live && node.registered && !node.has_finalizer {
            NodeStep::AddFinalizer
        } else {
            NodeStep::Leave
        };
    }
    if !node.has_finalizer {
        return NodeStep::Leave;
    }
    match claim {
        ClaimState::Live => NodeStep::DeleteClaim,
        ClaimState::Deleting => NodeStep::AwaitTermination,
        ClaimState::Missing => NodeStep::RemoveFinalizer,
    }
}

/// Whether the Node carries our termination finalizer.
pub fn has_finalizer(node: &Node) -> bool {
    node.finalizers()
        .iter()
        .any(|f| f == labels::TERMINATION_FINALIZER)
}

/// Whether a NodeClaim is the one of this Node: same provider ID, else the node name its status
/// recorded.
pub fn claim_owns(claim: &NodeClaim, node: &Node) -> bool {
    match (claim_provider_id(claim), observe::provider_id(node)) {
        (Some(c), Some(n)) => c == n,
        _ => {
            claim.status.as_ref().and_then(|s| s.node_name.as_deref())
                == node.metadata.name.as_deref()
                && node.metadata.name.is_some()
        }
    }
}

/// The NodeClaim (in scope) of this Node.
pub fn claim_of_node(stores: &Stores, node: &Node) -> Option<Arc<NodeClaim>> {
    stores.claims().into_iter().find(|c| claim_owns(c, node))
}

/// Removes our finalizer from the Node (read fresh; a conflicting write is retried). Whether it
/// was there; a Node that is gone is not an error.
pub async fn release(client: &Client, node: &str) -> Result<bool, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let mut attempt = 0;
    loop {
        let Some(n) = api.get_opt(node).await? else {
            return Ok(false);
        };
        if !has_finalizer(&n) {
            return Ok(false);
        }
        let rest: Vec<&String> = n
            .finalizers()
            .iter()
            .filter(|f| *f != labels::TERMINATION_FINALIZER)
            .collect();
        let patch = serde_json::json!({ "metadata": {
            "finalizers": rest, "resourceVersion": n.resource_version() } });
        match api
            .patch(node, &patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 5 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Adds our finalizer to the Node (optimistic: a conflict is retried by the next reconcile).
async fn add_finalizer(client: &Client, node: &Node) -> Result<(), kube::Error> {
    let mut f = node.finalizers().to_vec();
    f.push(labels::TERMINATION_FINALIZER.into());
    let patch = serde_json::json!({ "metadata": {
        "finalizers": f, "resourceVersion": node.resource_version() } });
    Api::<Node>::all(client.clone())
        .patch(&node.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn reconcile<P: CloudProvider>(node: Arc<Node>, ctx: Arc<Ctx<P>>) -> Result<Action, Error> {
    let name = node.name_any();
    let in_scope = ctx.stores.pool_in_scope(node_pool_of(&node).as_deref());
    let claim = if in_scope {
        claim_of_node(&ctx.stores, &node)
    } else {
        None
    };
    let step = node_step(
        NodeFacts::of(&node, in_scope),
        ClaimState::of(claim.as_deref()),
    );
    match step {
        // A node of ours not being deleted is looked at again every 30 s (its NodeClaim may not
        // have been in the cache yet); anything else waits for a change.
        NodeStep::Leave if in_scope && node.metadata.deletion_timestamp.is_none() => {
            Ok(Action::requeue(Duration::from_secs(30)))
        }
        NodeStep::Leave => Ok(Action::await_change()),
        NodeStep::AddFinalizer => {
            match add_finalizer(&ctx.client, &node).await {
                Ok(()) => {
                    tracing::debug!(node = %name, "termination finalizer added");
                }
                // Changed meanwhile (or gone): the watch brings the new version.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Err(e) => return Err(e.into()),
            }
            Ok(Action::await_change())
        }
        NodeStep::DeleteClaim => {
            let claim = claim.expect("DeleteClaim has a NodeClaim");
            let cname = claim.name_any();
            tracing::info!(node = %name, nodeclaim = %cname, "node deleted: deleting its NodeClaim so the node is drained first");
            ctx.events
                .normal(
                    &node.object_ref(&()),
                    "DeletingNodeClaim",
                    "Terminating",
                    format!(
                        "node deleted: deleting NodeClaim {cname}, which cordons and drains the \
                         node (PDBs respected) and deletes its instance; the node goes after that"
                    ),
                )
                .await;
            ctx.events
                .normal(
                    &claim.object_ref(&()),
                    "NodeDeleted",
                    "Terminating",
                    format!("its node {name} was deleted: terminating the NodeClaim"),
                )
                .await;
            match Api::<NodeClaim>::all(ctx.client.clone())
                .delete(&cname, &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    let pool = claim_pool(&claim).unwrap_or_default();
                    ctx.opts.metrics.terminated(pool, terminated::NODE_DELETED);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            Ok(Action::requeue(Duration::from_secs(2)))
        }
        // The termination releases the node; looked at again in case its NodeClaim vanishes
        // without it (finalizer removed by hand).
        NodeStep::AwaitTermination => Ok(Action::requeue(Duration::from_secs(5))),
        NodeStep::RemoveFinalizer => {
            if release(&ctx.client, &name).await? {
                tracing::info!(node = %name, "deleted node without NodeClaim: termination finalizer removed");
                ctx.events
                    .normal(
                        &node.object_ref(&()),
                        "TerminationFinalizerRemoved",
                        "Terminating",
                        "no NodeClaim left to drain the node: termination finalizer removed".into(),
                    )
                    .await;
            }
            Ok(Action::await_change())
        }
    }
}

fn error_policy<P: CloudProvider>(node: Arc<Node>, e: &Error, _ctx: Arc<Ctx<P>>) -> Action {
    tracing::warn!(node = %node.name_any(), error = %e, "node termination reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The Node controller (nodes with a NodePool label).
pub async fn run<P: CloudProvider>(ctx: Arc<Ctx<P>>) {
    let cfg = watcher::Config::default().labels(labels::NODEPOOL);
    Controller::new(Api::<Node>::all(ctx.client.clone()), cfg)
        .trigger_backoff(WatchBackoff::default())
        .run(reconcile::<P>, error_policy::<P>, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "node termination controller");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(in_scope: bool, registered: bool, has_finalizer: bool, deleting: bool) -> NodeFacts {
        NodeFacts {
            in_scope,
            registered,
            has_finalizer,
            deleting,
        }
    }

    #[test]
    fn steps() {
        use ClaimState::*;
        use NodeStep::*;
        // (in scope, registered, finalizer, deleting), claim → step
        let table = [
            // Not ours: never touched, whatever it looks like.
            ((false, true, true, true), Live, Leave),
            ((false, true, false, false), Live, Leave),
            ((false, true, true, true), Missing, Leave),
            // Registered by a live NodeClaim: the finalizer goes on, once.
            ((true, true, false, false), Live, AddFinalizer),
            ((true, true, true, false), Live, Leave),
            // Not registered yet, or its NodeClaim is terminating or gone: no finalizer added.
            ((true, false, false, false), Live, Leave),
            ((true, true, false, false), Deleting, Leave),
            ((true, true, false, false), Missing, Leave),
            // Holding the finalizer without a NodeClaim, not deleted: garbage collection's.
            ((true, true, true, false), Missing, Leave),
            // Deleted: the NodeClaim is deleted, then its termination releases the node.
            ((true, true, true, true), Live, DeleteClaim),
            ((true, true, true, true), Deleting, AwaitTermination),
            ((true, true, true, true), Missing, RemoveFinalizer),
            // Deleted without our finalizer: nothing holds it, nothing to do.
            ((true, true, false, true), Live, Leave),
            ((true, false, false, true), Missing, Leave),
        ];
        for ((s, r, f, d), claim, want) in table {
            assert_eq!(
                node_step(facts(s, r, f, d), claim),
                want,
                "in_scope={s} registered={r} finalizer={f} deleting={d} claim={claim:?}"
            );
        }
    }

    #[test]
    fn claims_find_their_node() {
        let node: Node = serde_yaml::from_str(
            "metadata: {name: n1, finalizers: [other, nodes.ballast.dev/termination], \
             labels: {nodes.ballast.dev/registered: 'true'}}\nspec: {providerID: kwok://n1}",
        )
        .unwrap();
        let claim = |yaml: &str| -> NodeClaim {
            serde_yaml::from_str(&format!(
                "metadata: {{name: c}}\nspec: {{nodeClassRef: {{group: g, kind: k, name: n}}}}\n{yaml}"
            ))
            .unwrap()
        };
        assert!(claim_owns(&claim("status: {providerID: kwok://n1}"), &node));
        assert!(!claim_owns(
            &claim("status: {providerID: kwok://n2}"),
            &node
        ));
        // Launched, status not written yet: the node name it recorded.
        assert!(claim_owns(&claim("status: {nodeName: n1}"), &node));
        assert!(!claim_owns(&claim("status: {}"), &node));
        assert_eq!(NodeFacts::of(&node, true), facts(true, true, true, false));
        assert_eq!(ClaimState::of(None), ClaimState::Missing);
    }
}
