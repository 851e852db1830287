//! Nodes: launched, Ready, cordoned, drained within the workloads' disruption budgets, and
//! terminated; and the disruption a pass decided, carried out.

use super::{World, WorldError};
use crate::event::Event;
use crate::state::*;
use ballast_scheduling::model::{Resources, Taint};
use std::collections::BTreeMap;

/// A disruption being carried out: its nodes are cordoned; once the replacement (if any) is
/// ready they are drained, then terminated.
#[derive(Debug, Clone)]
pub(crate) struct Disrupting {
    pub nodes: Vec<NodeId>,
    pub replacement: Option<NodeId>,
    /// The replacement (if any) is Ready and the nodes are being drained.
    pub draining: bool,
}

/// A node to launch, as a provisioning or replacement decision says.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub node_pool: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    /// Labels the node registers with (the NodeClaim's), in the API's keys.
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub claim: ballast_api::NodeClaim,
}

/// A disruption to carry out.
#[derive(Debug, Clone)]
pub(crate) struct DisruptionPlan {
    pub method: String,
    pub nodes: Vec<NodeId>,
    pub replacement: Option<Launch>,
    pub savings_per_hour: f64,
}

impl World {
    /// Adds a node of `instance_type` in `zone` (not Ready yet), labelled as the kubelet and
    /// the provisioner would label it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_node(
        &mut self,
        instance_type: &str,
        zone: &str,
        capacity_type: &str,
        node_pool: Option<String>,
        extra_labels: &BTreeMap<String, String>,
        taints: &[Taint],
        claim: Option<ballast_api::NodeClaim>,
    ) -> Result<NodeId, WorldError> {
        let ti = *self
            .type_idx
            .get(instance_type)
            .ok_or_else(|| WorldError::UnknownType(instance_type.to_string()))?;
        let t = &self.types[ti];
        let offering = t
            .offerings
            .iter()
            .find(|o| o.zone == zone && o.capacity_type == capacity_type)
            .ok_or_else(|| WorldError::NoOffering {
                instance_type: instance_type.to_string(),
                capacity_type: capacity_type.to_string(),
                zone: zone.to_string(),
            })?;
        let id = self.nodes.len();
        let name = format!("node-{id:05}");
        let mut labels = ballast_nodes::adapt::api_labels(&t.labels);
        labels.insert(
            ballast_api::nodes::labels::INSTANCE_TYPE.into(),
            t.name.clone(),
        );
        labels.insert(ballast_api::nodes::labels::ZONE.into(), zone.into());
        labels.insert(
            ballast_api::nodes::labels::CAPACITY_TYPE.into(),
            capacity_type.into(),
        );
        labels.insert(ballast_api::nodes::labels::HOSTNAME.into(), name.clone());
        if let Some(pool) = &node_pool {
            labels.insert(ballast_api::nodes::labels::NODEPOOL.into(), pool.clone());
        }
        labels.extend(extra_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let pool_timers = match node_pool.as_ref().and_then(|p| self.pool_timers.get(p)) {
            Some(&(after, expire)) => (after.map(millis), expire.map(millis)),
            None => (None, None),
        };
        let node = SimNode {
            name,
            instance_type: t.name.clone(),
            node_pool,
            price: offering.price,
            labels,
            taints: taints.to_vec(),
            allocatable: t.allocatable(),
            used: Resources::default(),
            pods: vec![],
            created: self.now,
            ready_at: None,
            cordoned: false,
            terminated: None,
            last_pod_event: self.now,
            claim,
            pool_timers,
        };
        self.node_ids.insert(node.name.clone(), id);
        self.nodes.push(node);
        self.live_nodes.push(id); // ids only grow: the list stays ascending
        self.rec.nodes_launched += 1;
        self.changed_since_disruption = true;
        self.observe(|o, r| o.launched(id, r.nodes[id].claim.as_ref()));
        self.draw_interruption(id);
        Ok(id)
    }

    /// Launches a node: it becomes Ready after the instance type's start-up time.
    pub(crate) fn launch(&mut self, plan: Launch) -> Result<NodeId, WorldError> {
        let id = self.add_node(
            &plan.instance_type,
            &plan.zone,
            &plan.capacity_type,
            Some(plan.node_pool),
            &plan.labels,
            &plan.taints,
            Some(plan.claim),
        )?;
        self.claims_made += 1;
        let base = self
            .sc
            .settings
            .node_startup_by_type
            .get(&self.nodes[id].instance_type)
            .copied()
            .unwrap_or(self.sc.settings.node_startup_seconds);
        let at = self.now + millis(self.jitter(base));
        self.wake(at, Event::NodeReady(id));
        Ok(id)
    }

    /// Terminates node `n`: its pods are gone (evicted) and their workloads make new ones.
    pub(super) fn terminate(&mut self, n: NodeId) {
        if self.nodes[n].terminated.is_some() {
            return;
        }
        let pods = self.nodes[n].pods.clone();
        for p in pods {
            self.remove_pod(p, true);
        }
        self.nodes[n].terminated = Some(self.now);
        if let Ok(i) = self.live_nodes.binary_search(&n) {
            self.live_nodes.remove(i);
        }
        self.node_ids.remove(&self.nodes[n].name);
        self.observe(|o, _| o.gone(n));
        self.rec.nodes_terminated += 1;
        self.changed_since_disruption = true;
        for w in 0..self.workloads.len() {
            self.reconcile_workload(w);
        }
    }

    /// Launches the nodes the provisioner asked for; a node that cannot be launched is an
    /// error of the run.
    pub(crate) fn launch_all(&mut self, plans: Vec<Launch>) {
        for plan in plans {
            if let Err(e) = self.launch(plan) {
                self.rec.error(self.now, format!("launch: {e}"));
            }
        }
    }

    /// Node `n`'s boot is over: it takes pods, and a disruption waiting for it as a replacement
    /// starts draining.
    pub(crate) fn node_booted(&mut self, n: NodeId) {
        if self.nodes[n].terminated.is_some() {
            return;
        }
        self.nodes[n].ready_at = Some(self.now);
        self.observe(|o, r| o.ready(r, n));
        self.changed_since_disruption = true;
        self.queue_schedule();
        if let Some(d) = &self.disrupting
            && d.replacement == Some(n)
            && !d.draining
        {
            self.start_drain();
        }
    }

    /// Marks `nodes` cordoned (or not) for disruption.
    pub(super) fn cordon(&mut self, nodes: &[NodeId], cordoned: bool) {
        for &n in nodes {
            self.nodes[n].cordoned = cordoned;
            self.observed.cordoned(n, cordoned);
        }
    }

    /// Starts the disruption a pass decided: cordons its nodes and launches the replacement (the
    /// nodes drain once it is Ready), or drains them now when there is none.
    pub(crate) fn begin_disruption(&mut self, plan: DisruptionPlan) {
        self.cordon(&plan.nodes, true);
        self.rec.disruptions.push((
            secs(self.now),
            plan.method.clone(),
            plan.nodes.len(),
            plan.savings_per_hour,
        ));
        let replacement = match plan.replacement {
            Some(r) => match self.launch(r) {
                Ok(id) => Some(id),
                Err(e) => {
                    self.rec.error(self.now, format!("replacement: {e}"));
                    self.cordon(&plan.nodes, false);
                    return;
                }
            },
            None => None,
        };
        self.disrupting = Some(Disrupting {
            nodes: plan.nodes,
            replacement,
            draining: false,
        });
        if replacement.is_none() {
            self.start_drain();
        }
    }

    /// Asks for every node of the current disruption to be drained now.
    fn start_drain(&mut self) {
        let Some(d) = self.disrupting.as_mut() else {
            return;
        };
        d.draining = true;
        let nodes = d.nodes.clone();
        for n in nodes {
            self.wake(self.now, Event::Drain(n));
        }
    }

    /// Evicts what PDBs allow, retries the rest every 5 s, terminates the node once empty.
    pub(crate) fn drain(&mut self, n: NodeId) {
        if self.nodes[n].terminated.is_some() {
            return;
        }
        let pods = self.nodes[n].pods.clone();
        let mut blocked = false;
        for p in pods {
            let allowed = match self.pods[p].owner {
                Owner::Workload(w) => match self.sc.workloads[w].max_unavailable {
                    Some(max) => {
                        let desired = self.workloads[w].desired;
                        let ready = self.ready_pods(w) as i32;
                        desired - ready < max
                    }
                    None => true,
                },
                Owner::Batch(_) => true,
            };
            if allowed {
                self.remove_pod(p, true);
                self.rec.evictions += 1;
                if let Owner::Workload(w) = self.pods[p].owner {
                    self.reconcile_workload(w);
                }
            } else {
                blocked = true;
            }
        }
        if blocked || !self.nodes[n].pods.is_empty() {
            self.wake(self.now + 5_000, Event::Drain(n));
            return;
        }
        self.terminate(n);
        if let Some(d) = &self.disrupting
            && d.nodes.iter().all(|&x| self.nodes[x].terminated.is_some())
        {
            self.disrupting = None;
        }
    }
}
