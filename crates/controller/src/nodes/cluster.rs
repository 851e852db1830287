//! The observed cluster: one reflector per kind the node controllers read (pods, nodes,
//! NodePools, NodeClaims, PDBs, DaemonSets, namespaces, PVCs, PVs, storage classes), change
//! signals, and the `ClusterSnapshot` built from them for the cores.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_api::nodes::{NodeClaim, NodePool, labels};
use ballast_nodes::observe::{self, VolumeIndex};
use ballast_nodes::{BoundPod, ClusterSnapshot};
use ballast_scheduling::InstanceType;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::error::Error;
use crate::watch_backoff::WatchBackoff;

/// What changed, as counters (watch receivers see the latest value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Any pod event.
    pub pods: u64,
    /// NodePool or NodeClaim added, changed or deleted.
    pub pools_and_claims: u64,
    /// Any node event.
    pub nodes: u64,
}

/// Read-only caches of everything the node controllers look at.
#[derive(Clone)]
pub struct Stores {
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
    pub node_pools: Store<NodePool>,
    pub node_claims: Store<NodeClaim>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub daemon_sets: Store<DaemonSet>,
    pub namespaces: Store<Namespace>,
    pub pvcs: Store<PersistentVolumeClaim>,
    pub pvs: Store<PersistentVolume>,
    pub storage_classes: Store<StorageClass>,
    pub changes: watch::Receiver<Changes>,
    /// Names of every NodePool this process has seen in scope (NodeClaims of a pool deleted since
    /// stay in scope, so they are still terminated).
    seen_pools: Arc<Mutex<BTreeSet<String>>>,
    /// Label selector NodePools were filtered by (None: all).
    pool_selector: Option<String>,
}

#[derive(Clone, Copy)]
enum Topic {
    Pods,
    PoolsAndClaims,
    Nodes,
    None,
}

fn reflect<K>(
    tasks: &mut JoinSet<()>,
    api: Api<K>,
    cfg: watcher::Config,
    tx: Arc<watch::Sender<Changes>>,
    topic: Topic,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, cfg)
        .backoff(WatchBackoff::default())
        .reflect(writer);
    let kind = K::kind(&Default::default()).to_string();
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => tx.send_modify(|c| match topic {
                    Topic::Pods => c.pods += 1,
                    Topic::PoolsAndClaims => c.pools_and_claims += 1,
                    Topic::Nodes => c.nodes += 1,
                    Topic::None => {}
                }),
                Err(e) => tracing::warn!(kind = %kind, error = %e, "watch error (retrying)"),
            }
        }
    });
    reader
}

impl Stores {
    /// Starts the reflectors (as tasks in `tasks`) and waits until every cache is filled.
    pub async fn start(
        client: &Client,
        pool_selector: Option<&str>,
        tasks: &mut JoinSet<()>,
    ) -> Result<Stores, Error> {
        let (tx, rx) = watch::channel(Changes::default());
        let tx = Arc::new(tx);
        let all = watcher::Config::default;
        let mut pool_cfg = all();
        if let Some(s) = pool_selector {
            pool_cfg = pool_cfg.labels(s);
        }
        let c = client.clone();
        let stores = Stores {
            pods: reflect(tasks, Api::all(c.clone()), all(), tx.clone(), Topic::Pods),
            nodes: reflect(tasks, Api::all(c.clone()), all(), tx.clone(), Topic::Nodes),
            node_pools: reflect(
                tasks,
                Api::all(c.clone()),
                pool_cfg,
                tx.clone(),
                Topic::PoolsAndClaims,
            ),
            node_claims: reflect(
                tasks,
                Api::all(c.clone()),
                all(),
                tx.clone(),
                Topic::PoolsAndClaims,
            ),
            pdbs: reflect(tasks, Api::all(c.clone()), all(), tx.clone(), Topic::None),
            daemon_sets: reflect(tasks, Api::all(c.clone()), all(), tx.clone(), Topic::None),
            namespaces: reflect(tasks, Api::all(c.clone()), all(), tx.clone(), Topic::None),
            pvcs: reflect(tasks, Api::all(c.clone()), all(), tx.clone(), Topic::None),
            pvs: reflect(tasks, Api::all(c.clone()), all(), tx.clone(), Topic::None),
            storage_classes: reflect(tasks, Api::all(c), all(), tx.clone(), Topic::None),
            changes: rx,
            seen_pools: Arc::default(),
            pool_selector: pool_selector.map(str::to_string),
        };
        let ready = async {
            stores.pods.wait_until_ready().await?;
            stores.nodes.wait_until_ready().await?;
            stores.node_pools.wait_until_ready().await?;
            stores.node_claims.wait_until_ready().await?;
            stores.pdbs.wait_until_ready().await?;
            stores.daemon_sets.wait_until_ready().await?;
            stores.namespaces.wait_until_ready().await?;
            stores.pvcs.wait_until_ready().await?;
            stores.pvs.wait_until_ready().await?;
            stores.storage_classes.wait_until_ready().await?;
            Ok::<_, reflector::store::WriterDropped>(())
        };
        const FILL_SECONDS: u64 = 120;
        tokio::time::timeout(Duration::from_secs(FILL_SECONDS), ready)
            .await
            .map_err(|_| Error::CachesNotFilled {
                seconds: FILL_SECONDS,
            })?
            .map_err(|_| Error::ReflectorStopped)?;
        stores.note_pools();
        Ok(stores)
    }

    /// Caches holding `objects` as they are (no watch, no change signals): what one list of each
    /// kind read ([`super::capture`]). `pool_selector` scopes like [`Stores::start`]'s, so set
    /// it (to the selector, or a description of how `objects.node_pools` were chosen) when the
    /// pools were filtered.
    pub fn from_objects(objects: Objects, pool_selector: Option<String>) -> Stores {
        let (_tx, rx) = watch::channel(Changes::default());
        let stores = Stores {
            pods: filled(objects.pods),
            nodes: filled(objects.nodes),
            node_pools: filled(objects.node_pools),
            node_claims: filled(objects.node_claims),
            pdbs: filled(objects.pdbs),
            daemon_sets: filled(objects.daemon_sets),
            namespaces: filled(objects.namespaces),
            pvcs: filled(objects.pvcs),
            pvs: filled(objects.pvs),
            storage_classes: filled(objects.storage_classes),
            changes: rx,
            seen_pools: Arc::default(),
            pool_selector,
        };
        stores.note_pools();
        stores
    }

    /// Pending pods the provisioner provisions for (those the kube-scheduler marked
    /// unschedulable, in `namespaces`, all when empty), by namespace and name.
    pub fn provisionable_pods(&self, namespaces: &[String]) -> Vec<Arc<Pod>> {
        let mut pods = self.pods.state_filter(|p| {
            observe::is_provisionable(p)
                && in_namespaces(namespaces, p.metadata.namespace.as_deref())
        });
        pods.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
        pods
    }

    /// Every pod of `namespaces` (all when empty) waiting for a node, also those the scheduler
    /// has not tried yet: the disruption pass counts them, so a node made for a pod the
    /// scheduler has not bound yet does not look empty.
    pub fn unbound_pods(&self, namespaces: &[String]) -> Vec<Arc<Pod>> {
        self.pods.state_filter(|p| {
            observe::is_unbound(p) && in_namespaces(namespaces, p.metadata.namespace.as_deref())
        })
    }

    /// NodePools in scope, by name.
    pub fn pools(&self) -> BTreeMap<String, Arc<NodePool>> {
        self.note_pools();
        self.node_pools
            .state()
            .into_iter()
            .filter_map(|p| Some((p.metadata.name.clone()?, p)))
            .collect()
    }

    fn note_pools(&self) {
        let names: Vec<String> = self
            .node_pools
            .state()
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        self.seen_pools.lock().expect("lock").extend(names);
    }

    /// Whether a NodeClaim (or node, or instance) of this NodePool is ours to manage.
    pub fn pool_in_scope(&self, pool: Option<&str>) -> bool {
        let Some(pool) = pool else {
            return false;
        };
        if self.pool_selector.is_none() {
            return true;
        }
        self.note_pools();
        self.seen_pools.lock().expect("lock").contains(pool)
    }

    /// NodeClaims in scope.
    pub fn claims(&self) -> Vec<Arc<NodeClaim>> {
        self.node_claims
            .state()
            .into_iter()
            .filter(|c| self.pool_in_scope(claim_pool(c)))
            .collect()
    }

    /// The node with this provider ID.
    pub fn node_by_provider_id(&self, provider_id: &str) -> Option<Arc<Node>> {
        self.nodes
            .find(|n| observe::provider_id(n) == Some(provider_id))
    }

    /// Pods bound to the node.
    pub fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods
            .state_filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
    }

    pub fn volume_index(&self) -> VolumeIndex {
        VolumeIndex::new(
            &self.pvcs.state(),
            &self.pvs.state(),
            &self.storage_classes.state(),
        )
    }
}

/// One list of every kind [`Stores`] caches.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub pods: Vec<Pod>,
    pub nodes: Vec<Node>,
    pub node_pools: Vec<NodePool>,
    pub node_claims: Vec<NodeClaim>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub daemon_sets: Vec<DaemonSet>,
    pub namespaces: Vec<Namespace>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub pvs: Vec<PersistentVolume>,
    pub storage_classes: Vec<StorageClass>,
}

/// A cache holding `objects`.
fn filled<K>(objects: Vec<K>) -> Store<K>
where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, mut writer) = reflector::store();
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(o));
    }
    reader
}

/// Whether a pod of namespace `ns` is in the scope of `namespaces` (all when empty).
pub fn in_namespaces(namespaces: &[String], ns: Option<&str>) -> bool {
    namespaces.is_empty() || ns.is_some_and(|n| namespaces.iter().any(|x| x == n))
}

/// The NodePool label of a NodeClaim.
pub fn claim_pool(c: &NodeClaim) -> Option<&str> {
    c.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::NODEPOOL))
        .map(String::as_str)
}

/// The NodeClaim's provider ID, once launched.
pub fn claim_provider_id(c: &NodeClaim) -> Option<&str> {
    c.status.as_ref()?.provider_id.as_deref()
}

/// Inputs of a snapshot besides the caches.
pub struct SnapshotInputs<'a> {
    /// Pending pods to provision for, with when each was first seen.
    pub pending: &'a [(Arc<Pod>, Timestamp)],
    pub instance_types: Vec<InstanceType>,
    /// NodeClaims created but maybe not yet in the cache.
    pub extra_claims: &'a [NodeClaim],
    /// Last time a pod arrived on or left each node.
    pub last_pod_events: &'a BTreeMap<String, Timestamp>,
}

/// The snapshot the cores decide on: every node with its pods (linked to its NodeClaim by
/// provider ID), the NodePools and NodeClaims in scope, PDBs, DaemonSets, namespaces, the given
/// pending pods and instance types.
pub fn snapshot(stores: &Stores, input: SnapshotInputs<'_>) -> ClusterSnapshot {
    let vols = stores.volume_index();
    let mut claims: Vec<NodeClaim> = stores.claims().iter().map(|c| (**c).clone()).collect();
    let names: BTreeSet<String> = claims
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    for c in input.extra_claims {
        if c.metadata.name.as_ref().is_some_and(|n| !names.contains(n)) {
            claims.push(c.clone());
        }
    }
    claims.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let by_pid: BTreeMap<&str, &NodeClaim> = claims
        .iter()
        .filter_map(|c| Some((claim_provider_id(c)?, c)))
        .collect();
    let mut pods_by_node: BTreeMap<String, Vec<BoundPod>> = BTreeMap::new();
    for p in stores.pods.state() {
        if let Some(n) = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        {
            pods_by_node
                .entry(n)
                .or_default()
                .push(observe::bound_pod(&p, &vols));
        }
    }
    for v in pods_by_node.values_mut() {
        v.sort_by_key(|a| a.key());
    }
    let mut nodes: Vec<_> = stores
        .nodes
        .state()
        .iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let claim = observe::provider_id(n).and_then(|pid| by_pid.get(pid).copied());
            observe::cluster_node(
                n,
                claim,
                pods_by_node.remove(&name).unwrap_or_default(),
                input.last_pod_events.get(&name).copied(),
            )
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pools: Vec<NodePool> = stores.pools().into_values().map(|p| (*p).clone()).collect();
    pools.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut pdbs: Vec<_> = stores
        .pdbs
        .state()
        .iter()
        .map(|p| observe::pdb(p))
        .collect();
    pdbs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut daemon_sets: Vec<_> = stores
        .daemon_sets
        .state()
        .iter()
        .filter_map(|d| observe::daemon_set(d, &vols))
        .collect();
    daemon_sets.sort_by_key(|a| a.pod.key());
    let mut namespaces: Vec<_> = stores
        .namespaces
        .state()
        .iter()
        .map(|n| observe::namespace(n))
        .collect();
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pending: Vec<_> = input
        .pending
        .iter()
        .map(|(p, seen)| observe::pending_pod(p, &vols, *seen))
        .collect();
    pending.sort_by_key(|a| a.pod.key());
    ClusterSnapshot {
        nodes,
        pending_pods: pending,
        node_pools: pools,
        node_claims: claims,
        pdbs,
        instance_types: input.instance_types,
        catalog: None,
        daemon_sets,
        daemonset_overhead: Default::default(),
        namespaces,
    }
}

/// Capacity of a NodeClaim: its status once launched, else its planned instance type's.
pub fn claim_capacity(c: &NodeClaim, types: &[InstanceType]) -> ballast_scheduling::Resources {
    if let Some(cap) = c.status.as_ref().and_then(|s| s.capacity.as_ref()) {
        return ballast_nodes::readable_resources(Some(cap));
    }
    let it = c
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::INSTANCE_TYPE))
        .cloned()
        .or_else(|| {
            c.spec
                .requirements
                .iter()
                .find(|r| r.key == labels::INSTANCE_TYPE)
                .and_then(|r| r.values.first().cloned())
        });
    it.and_then(|n| types.iter().find(|t| t.name == n))
        .map(|t| t.capacity.clone())
        .unwrap_or_default()
}

/// `adapt::pool_label` for a node.
pub fn node_pool_of(node: &Node) -> Option<String> {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| ballast_nodes::pool_label(l).map(str::to_string))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ballast_nodes::{ProvisionOptions, provision};
    use kube::ResourceExt;

    /// Caches holding the given objects (no API server).
    pub(crate) fn stores(
        pods: Vec<Pod>,
        nodes: Vec<Node>,
        pools: Vec<NodePool>,
        claims: Vec<NodeClaim>,
        pool_selector: Option<&str>,
    ) -> Stores {
        let objects = Objects {
            pods,
            nodes,
            node_pools: pools,
            node_claims: claims,
            ..Default::default()
        };
        Stores::from_objects(objects, pool_selector.map(str::to_string))
    }

    fn yaml<T: DeserializeOwned>(s: &str) -> T {
        serde_yaml::from_str(s).unwrap()
    }

    fn catalog() -> Vec<InstanceType> {
        let c: ballast_scheduling::catalog::CatalogFile = yaml(
            "zones: [a]\nlabelPrefix: nodes.ballast.dev\ntypes:\n  - {name: c.xlarge, vcpu: 4, memory: 8Gi, pods: 58, onDemand: 0.17}\n",
        );
        c.instance_types().unwrap()
    }

    const POOL: &str = "
metadata: {name: general, uid: p1}
spec:
  template:
    spec:
      nodeClassRef: {group: nodes.ballast.dev, kind: KwokNodeClass, name: default}
";

    #[test]
    fn snapshot_links_nodes_to_claims_and_counts_in_flight_capacity() {
        let registered: NodeClaim = yaml(
            "
metadata: {name: general-a, labels: {nodes.ballast.dev/nodepool: general, node.kubernetes.io/instance-type: c.xlarge, topology.kubernetes.io/zone: a, nodes.ballast.dev/capacity-type: on-demand}}
spec: {nodeClassRef: {group: nodes.ballast.dev, kind: KwokNodeClass, name: default}}
status:
  providerID: kwok://general-a
  conditions: [{type: Initialized, status: 'True', reason: x, message: x, lastTransitionTime: '2026-01-01T00:00:00Z'}]
",
        );
        let in_flight: NodeClaim = yaml(
            "
metadata: {name: general-b, labels: {nodes.ballast.dev/nodepool: general, node.kubernetes.io/instance-type: c.xlarge, topology.kubernetes.io/zone: a, nodes.ballast.dev/capacity-type: on-demand}}
spec: {nodeClassRef: {group: nodes.ballast.dev, kind: KwokNodeClass, name: default}}
",
        );
        let other_pool: NodeClaim = yaml(
            "
metadata: {name: other-c, labels: {nodes.ballast.dev/nodepool: other}}
spec: {nodeClassRef: {group: nodes.ballast.dev, kind: KwokNodeClass, name: default}}
",
        );
        let node: Node = yaml(
            "
metadata: {name: general-a, labels: {nodes.ballast.dev/nodepool: general, node.kubernetes.io/instance-type: c.xlarge, topology.kubernetes.io/zone: a, nodes.ballast.dev/capacity-type: on-demand}}
spec: {providerID: kwok://general-a}
status:
  allocatable: {cpu: 3920m, memory: 7Gi, pods: '58'}
  conditions: [{type: Ready, status: 'True'}]
",
        );
        let bound: Pod = yaml(
            "
metadata: {name: web-1, namespace: shop}
spec: {nodeName: general-a, containers: [{name: a, resources: {requests: {cpu: '3'}}}]}
status: {phase: Running}
",
        );
        let pending: Pod = yaml(
            "
metadata: {name: web-2, namespace: shop, uid: u2}
spec: {containers: [{name: a, resources: {requests: {cpu: '3'}}}]}
status: {phase: Pending, conditions: [{type: PodScheduled, status: 'False', reason: Unschedulable}]}
",
        );
        let s = stores(
            vec![bound, pending.clone()],
            vec![node],
            vec![yaml(POOL)],
            vec![registered, in_flight, other_pool],
            Some("team=a"),
        );
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let pending = vec![(Arc::new(pending), now)];
        let snap = snapshot(
            &s,
            SnapshotInputs {
                pending: &pending,
                instance_types: catalog(),
                extra_claims: &[],
                last_pod_events: &BTreeMap::new(),
            },
        );
        // Out-of-scope claims (pool "other" was never seen) are left out.
        let names: Vec<_> = snap.node_claims.iter().map(|c| c.name_any()).collect();
        assert_eq!(names, vec!["general-a", "general-b"]);
        assert_eq!(snap.nodes.len(), 1);
        let n = &snap.nodes[0];
        assert_eq!(n.node_claim.as_deref(), Some("general-a"));
        assert!(n.initialized && n.ready && !n.deleting);
        assert_eq!(n.pods.len(), 1);
        assert_eq!(snap.pending_pods.len(), 1);
        // The pending pod fits the in-flight claim: nothing new.
        let d = provision(&snap, now, &ProvisionOptions::default()).unwrap();
        assert!(d.node_claims.is_empty(), "{:?}", d.node_claims);
        assert_eq!(d.placements.len(), 1);
        assert_eq!(
            d.placements[0].to,
            ballast_nodes::Destination::InFlight("general-b".into())
        );
        // A claim just created and not in the cache yet counts too.
        let extra: NodeClaim = yaml(
            "
metadata: {name: general-z, labels: {nodes.ballast.dev/nodepool: general, node.kubernetes.io/instance-type: c.xlarge, topology.kubernetes.io/zone: a, nodes.ballast.dev/capacity-type: on-demand}}
spec: {nodeClassRef: {group: nodes.ballast.dev, kind: KwokNodeClass, name: default}}
",
        );
        let snap = snapshot(
            &s,
            SnapshotInputs {
                pending: &pending,
                instance_types: catalog(),
                extra_claims: &[extra],
                last_pod_events: &BTreeMap::new(),
            },
        );
        assert_eq!(snap.node_claims.len(), 3);
        assert!(s.pool_in_scope(Some("general")) && !s.pool_in_scope(Some("other")));
        assert_eq!(
            claim_capacity(&snap.node_claims[1], &catalog()).cpu_millis,
            4000
        );
    }
}
