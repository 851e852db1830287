//! Pending pods first: while provisioning would place pending pods, the graceful methods wait
//! (removing capacity now would race the provisioner). Only pods that can really get a node
//! count: a pod whose place is a new or in-flight NodeClaim of a NodePool that cannot launch
//! (its `Ready` condition is False, or one of its NodeClaims failed to launch and has no
//! instance yet) waits for that pool to be fixed, not for provisioning, so it does not hold back
//! disruption in the other pools. Pods no pool can serve were never placed, so never counted.

use std::collections::{BTreeMap, BTreeSet};

use ballast_api::nodes::{NodeClaim, NodePool, labels};
use jiff::Timestamp;

use crate::error::Error;
use crate::provision::{Destination, ProvisionOptions, provision};
use crate::snapshot::ClusterSnapshot;

/// How many pending pods provisioning would place on a node that can come: an existing node,
/// or a new or in-flight NodeClaim of a pool that can launch.
pub(super) fn pending_placeable(snap: &ClusterSnapshot, now: Timestamp) -> Result<usize, Error> {
    if snap.pending_pods.is_empty() {
        return Ok(0);
    }
    let d = provision(snap, now, &ProvisionOptions::default())?;
    let stuck = pools_that_cannot_launch(snap);
    if stuck.is_empty() {
        return Ok(d.placements.len());
    }
    let mut pool_of: BTreeMap<&str, &str> = snap
        .node_claims
        .iter()
        .filter_map(|c| Some((c.metadata.name.as_deref()?, claim_pool(c)?)))
        .collect();
    for plan in &d.node_claims {
        pool_of.insert(&plan.name, &plan.node_pool);
    }
    let counts = |claim: &str| pool_of.get(claim).is_none_or(|p| !stuck.contains(*p));
    Ok(d.placements
        .iter()
        .filter(|p| match &p.to {
            Destination::Node(_) => true,
            Destination::InFlight(c) | Destination::NewNodeClaim(c) => counts(c),
        })
        .count())
}

/// The NodePools that cannot launch a node now: `Ready=False`, or with a NodeClaim that has no
/// instance and whose `Launched` condition is False.
pub(super) fn pools_that_cannot_launch(snap: &ClusterSnapshot) -> BTreeSet<&str> {
    let mut stuck: BTreeSet<&str> = snap
        .node_pools
        .iter()
        .filter(|p| pool_not_ready(p))
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    for c in &snap.node_claims {
        if launch_failed(c)
            && let Some(p) = claim_pool(c)
        {
            stuck.insert(p);
        }
    }
    stuck
}

fn pool_not_ready(p: &NodePool) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False")
    })
}

fn launch_failed(c: &NodeClaim) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.provider_id.is_none()
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Launched" && c.status == "False")
    })
}

fn claim_pool(c: &NodeClaim) -> Option<&str> {
    c.metadata
        .labels
        .as_ref()?
        .get(labels::NODEPOOL)
        .map(String::as_str)
}
