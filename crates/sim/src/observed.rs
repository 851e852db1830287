//! The cluster as the node controllers observe it, in their snapshot types, kept up to date from
//! the cluster's changes rather than rebuilt for every decision (copying every pod for every
//! disruption pass was most of a pass).

use crate::state::{Millis, NodeId, Owner, PodId, SimNode, SimPod};
use ballast_api::{NodeClaim, NodePool};
use ballast_nodes::snapshot::{BoundPod, ClusterNode, ClusterSnapshot};
use ballast_scheduling::model::InstanceType;
use std::collections::BTreeMap;

/// The records the snapshot types are made from: every node and pod of the run, the live
/// nodes, and the run's start (virtual time 0).
pub(crate) struct Records<'a> {
    pub start: jiff::Timestamp,
    pub nodes: &'a [SimNode],
    pub pods: &'a [SimPod],
    /// Ascending ids of the nodes not terminated.
    pub live_nodes: &'a [NodeId],
}

impl Records<'_> {
    /// The wall-clock time of virtual time `at`.
    pub(crate) fn timestamp(&self, at: Millis) -> jiff::Timestamp {
        timestamp(self.start, at)
    }

    /// Pod `p` as a node's bound pod.
    pub(crate) fn bound_pod(&self, p: PodId) -> BoundPod {
        let pod = &self.pods[p];
        BoundPod {
            pod: pod.spec.clone(),
            annotations: BTreeMap::new(),
            owner_kind: match pod.owner {
                Owner::Workload(_) => Some("ReplicaSet".into()),
                Owner::Batch(_) => None,
            },
            started: pod.bound_at.map(|b| self.timestamp(b)),
            local_storage: false,
            terminal: false,
        }
    }

    /// Node `n` with its pods, as registered.
    pub(crate) fn cluster_node(&self, n: NodeId) -> ClusterNode {
        let node = &self.nodes[n];
        ClusterNode {
            name: node.name.clone(),
            node_claim: node.claim.as_ref().and_then(|c| c.metadata.name.clone()),
            labels: node.labels.clone(),
            annotations: BTreeMap::new(),
            taints: node.taints.clone(),
            allocatable: node.allocatable.clone(),
            capacity: None,
            price: Some(node.price),
            created: Some(self.timestamp(node.created)),
            ready: true,
            initialized: true,
            unschedulable: node.cordoned,
            deleting: node.cordoned,
            last_pod_event: Some(self.timestamp(node.last_pod_event)),
            pods: node.pods.iter().map(|&p| self.bound_pod(p)).collect(),
            pods_revision: None,
        }
    }

    /// The registered nodes with their pods, the NodeClaims (in flight or not), the pools and
    /// the catalog: a snapshot without pending pods or PDBs, built from scratch.
    pub(crate) fn snapshot(&self, pools: &[NodePool], types: &[InstanceType]) -> ClusterSnapshot {
        let mut snap = ClusterSnapshot {
            node_pools: pools.to_vec(),
            instance_types: types.to_vec(),
            ..Default::default()
        };
        for (n, node) in self.live_nodes.iter().map(|&n| (n, &self.nodes[n])) {
            if let Some(c) = &node.claim {
                snap.node_claims.push(c.clone());
            }
            if node.ready_at.is_some() {
                snap.nodes.push(self.cluster_node(n)); // else in flight: only its NodeClaim exists
            }
        }
        snap
    }
}

/// The wall-clock time of virtual time `at` in a run that started at `start`.
pub(crate) fn timestamp(start: jiff::Timestamp, at: Millis) -> jiff::Timestamp {
    start
        .checked_add(jiff::SignedDuration::from_millis(at))
        .unwrap_or(start)
}

/// `Records::snapshot` kept up to date from the cluster's changes (a bind, a pod leaving, a node
/// launched, ready, cordoned or gone), with what the node decisions keep between calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub snap: ClusterSnapshot,
    /// The node of each `snap.nodes` entry (ascending, as in the run's nodes).
    nodes: Vec<NodeId>,
    /// The node of each `snap.node_claims` entry (ascending).
    claims: Vec<NodeId>,
    /// The last `pods_revision` given to a node: a node gets a new one whenever its pods change,
    /// so the disruption memo can keep what it read from the others.
    revisions: u64,
    /// What disruption passes read from nodes' pods, kept between passes.
    pub memo: ballast_nodes::disrupt::DisruptionMemo,
    /// What provisioning worked out about nodes' bound pods, kept between calls.
    pub provision_memo: ballast_nodes::ProvisionMemo,
}

impl Observed {
    /// Builds it from the cluster as it is.
    pub(crate) fn build(
        records: &Records<'_>,
        pools: &[NodePool],
        types: &[InstanceType],
    ) -> Observed {
        let ids = |f: &dyn Fn(&SimNode) -> bool| -> Vec<NodeId> {
            records
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.is_live() && f(n))
                .map(|(i, _)| i)
                .collect()
        };
        let mut o = Observed {
            nodes: ids(&|n| n.ready_at.is_some()),
            claims: ids(&|n| n.claim.is_some()),
            snap: records.snapshot(pools, types),
            revisions: 0,
            memo: Default::default(),
            provision_memo: Default::default(),
        };
        for i in 0..o.snap.nodes.len() {
            o.renew(i);
        }
        o
    }

    /// Gives `snap.nodes[i]` a new pods revision.
    fn renew(&mut self, i: usize) {
        self.revisions += 1;
        self.snap.nodes[i].pods_revision = Some(self.revisions);
    }

    /// Pod `p` was bound to node `n` (and is its last pod).
    pub(crate) fn bound(&mut self, records: &Records<'_>, p: PodId, n: NodeId) {
        let Ok(i) = self.nodes.binary_search(&n) else {
            return;
        };
        let node = &mut self.snap.nodes[i];
        node.pods.push(records.bound_pod(p));
        node.last_pod_event = Some(records.timestamp(records.nodes[n].last_pod_event));
        self.renew(i);
    }

    /// The pod at position `k` of node `n`'s pods left it.
    pub(crate) fn left(&mut self, records: &Records<'_>, n: NodeId, k: usize) {
        let Ok(i) = self.nodes.binary_search(&n) else {
            return;
        };
        let node = &mut self.snap.nodes[i];
        node.pods.remove(k);
        node.last_pod_event = Some(records.timestamp(records.nodes[n].last_pod_event));
        self.renew(i);
    }

    /// Node `n` was launched from NodeClaim `claim`.
    pub(crate) fn launched(&mut self, n: NodeId, claim: Option<&NodeClaim>) {
        let Some(c) = claim else {
            return;
        };
        if let Err(i) = self.claims.binary_search(&n) {
            self.claims.insert(i, n);
            self.snap.node_claims.insert(i, c.clone());
        }
    }

    /// Node `n` became ready.
    pub(crate) fn ready(&mut self, records: &Records<'_>, n: NodeId) {
        if let Err(i) = self.nodes.binary_search(&n) {
            self.nodes.insert(i, n);
            self.snap.nodes.insert(i, records.cluster_node(n));
            self.renew(i);
        }
    }

    /// Node `n` was cordoned (`cordoned`) or uncordoned.
    pub(crate) fn cordoned(&mut self, n: NodeId, cordoned: bool) {
        if let Ok(i) = self.nodes.binary_search(&n) {
            let node = &mut self.snap.nodes[i];
            node.unschedulable = cordoned;
            node.deleting = cordoned;
        }
    }

    /// Node `n` is gone.
    pub(crate) fn gone(&mut self, n: NodeId) {
        if let Ok(i) = self.nodes.binary_search(&n) {
            self.nodes.remove(i);
            self.snap.nodes.remove(i);
        }
        if let Ok(i) = self.claims.binary_search(&n) {
            self.claims.remove(i);
            self.snap.node_claims.remove(i);
        }
    }

    /// Whether the kept snapshot differs from `rebuilt` (pending pods, PDBs and pods revisions
    /// aside, which are set per decision or are the kept snapshot's own).
    pub(crate) fn differs_from(&self, rebuilt: &ClusterSnapshot) -> bool {
        let mut kept = serde_json::to_value(&self.snap).unwrap_or_default();
        let built = serde_json::to_value(rebuilt).unwrap_or_default();
        if let (Some(k), Some(b)) = (kept.as_object_mut(), built.as_object()) {
            k.insert("pdbs".into(), b.get("pdbs").cloned().unwrap_or_default());
            if let Some(nodes) = k.get_mut("nodes").and_then(|n| n.as_array_mut()) {
                for n in nodes.iter_mut().filter_map(|n| n.as_object_mut()) {
                    n.remove("podsRevision");
                }
            }
        }
        kept != built
    }
}
