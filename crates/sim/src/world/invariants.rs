//! The cluster's bookkeeping checked against its records at every sample; a broken invariant
//! is an error of the run.

use super::World;
use crate::state::*;
use ballast_scheduling::model::Resources;

impl World {
    /// Conservation: every pod is pending, bound or gone, exactly once; a node's bookkeeping
    /// equals its pods' requests and never exceeds what it can hold; gone nodes hold nothing;
    /// the indexes of live nodes, live batch pods and Ready counts agree with the records; a
    /// pod's counted requests are those of its spec (what the scheduler and the node controllers
    /// read), whatever a vertical recommendation set them to.
    ///
    /// Debug builds look at every pod and node the run ever made. Release builds look at the
    /// live ones (the workloads' pod lists, the live batch pods, the pending set, the live
    /// nodes), so that a sample costs what the cluster holds now and not the whole run so far.
    pub(crate) fn check_invariants(&mut self) {
        let mut errors = Vec::new();
        let everything = cfg!(debug_assertions);
        self.check_pods(everything, &mut errors);
        self.check_workloads(&mut errors);
        if self.live_batch.iter().any(|&p| self.pods[p].gone.is_some()) {
            errors.push("a gone batch pod is listed as live".to_string());
        }
        if everything {
            self.check_indexes(&mut errors);
            self.check_requests(&mut errors);
        }
        self.check_nodes(everything, &mut errors);
        for e in errors.into_iter().take(10) {
            self.rec.error(self.now, format!("invariant: {e}"));
        }
    }

    /// Every pending pod is in the pending set, which holds nothing else; a bound pod is listed
    /// by its node.
    fn check_pods(&self, everything: bool, errors: &mut Vec<String>) {
        let pods: Vec<PodId> = if everything {
            (0..self.pods.len()).collect()
        } else {
            // The lists are disjoint (a pod has one owner); pending pods missing from them are
            // caught by the loop over the pending set below.
            let lists = self.workloads.iter().flat_map(|w| w.pods.iter().copied());
            lists.chain(self.live_batch.iter().copied()).collect()
        };
        // The pending set holds no bound or gone pod (here), and every unbound live pod (below).
        for &p in &self.pending {
            let pod = &self.pods[p];
            if pod.node.is_some() || pod.gone.is_some() {
                errors.push(format!(
                    "pod {} is in the pending set but bound or gone",
                    pod.spec.name
                ));
            }
        }
        for p in pods {
            let pod = &self.pods[p];
            let pending = pod.node.is_none() && pod.gone.is_none();
            if pending && !self.pending.contains(&p) {
                errors.push(format!(
                    "pod {} is pending but not in the pending set",
                    pod.spec.name
                ));
            }
            if let (Some(n), None) = (pod.node, pod.gone)
                && !self.nodes[n].pods.contains(&p)
            {
                errors.push(format!(
                    "pod {} bound to {} which does not list it",
                    pod.spec.name, self.nodes[n].name
                ));
            }
        }
    }

    /// A workload lists only its own live pods, with their times, and counts its Ready pods.
    fn check_workloads(&self, errors: &mut Vec<String>) {
        for (w, state) in self.workloads.iter().enumerate() {
            if state
                .pods
                .iter()
                .any(|&p| self.pods[p].gone.is_some() || self.pods[p].owner != Owner::Workload(w))
            {
                errors.push(format!(
                    "workload {} lists a pod that is gone or not its own",
                    self.sc.workloads[w].name
                ));
            }
            let times = state.pods.iter().map(|&p| PodTimes {
                bound_at: self.pods[p].bound_at,
                ready_at: self.pods[p].ready_at,
            });
            if state.times.len() != state.pods.len() || !times.eq(state.times.iter().copied()) {
                errors.push(format!(
                    "workload {}: the kept pod times differ from the pods",
                    self.sc.workloads[w].name
                ));
            }
            let ready = state
                .live_pods(&self.pods)
                .filter(|&p| self.pods[p].is_ready(self.now))
                .count();
            if ready != state.ready {
                errors.push(format!(
                    "workload {}: {ready} pods Ready but counted {}",
                    self.sc.workloads[w].name, state.ready
                ));
            }
        }
    }

    /// Every live pod counts the requests its spec asks for (the requests are per pod: a
    /// vertical recommendation sizes new pods, and a pod keeps its requests for its life).
    fn check_requests(&self, errors: &mut Vec<String>) {
        for pod in self.pods.iter().filter(|p| p.gone.is_none()) {
            if pod.requests != pod.spec.effective_requests() {
                errors.push(format!(
                    "pod {}: counted requests {:?} differ from its spec's",
                    pod.spec.name, pod.requests
                ));
            }
        }
    }

    /// Every live pod is in its owner's list, and the index of live nodes is the live nodes.
    fn check_indexes(&self, errors: &mut Vec<String>) {
        // Lists hold only live pods of their owner (above) and list a pod once (it is pushed
        // when made), so equal lengths mean every live pod is listed.
        let mut per_workload = vec![0; self.workloads.len()];
        let mut batch = 0;
        for pod in self.pods.iter().filter(|p| p.gone.is_none()) {
            match pod.owner {
                Owner::Workload(w) => per_workload[w] += 1,
                Owner::Batch(_) => batch += 1,
            }
        }
        if per_workload
            .iter()
            .zip(&self.workloads)
            .any(|(&n, w)| n != w.pods.len())
            || batch != self.live_batch.len()
        {
            errors.push("the lists of live pods differ from the pods".to_string());
        }
        let live: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].is_live())
            .collect();
        let named = live.len() == self.node_ids.len()
            && live
                .iter()
                .all(|&n| self.node_ids.get(&self.nodes[n].name) == Some(&n));
        if live != self.live_nodes || !named {
            errors.push("the index of live nodes differs from the nodes".to_string());
        }
    }

    /// A node's bookkeeping equals its pods' requests and never exceeds what it can hold; a
    /// gone node holds nothing.
    fn check_nodes(&self, everything: bool, errors: &mut Vec<String>) {
        let nodes: Vec<NodeId> = if everything {
            (0..self.nodes.len()).collect()
        } else {
            self.live_nodes.clone()
        };
        for node in nodes.into_iter().map(|n| &self.nodes[n]) {
            let mut sum = Resources::default();
            for &p in &node.pods {
                let pod = &self.pods[p];
                if pod.gone.is_some() || pod.node.is_none() {
                    errors.push(format!(
                        "{} lists pod {} which is not bound there",
                        node.name, pod.spec.name
                    ));
                }
                let r = &pod.requests;
                sum.cpu_millis += r.cpu_millis;
                sum.memory_bytes += r.memory_bytes;
                sum.pods += r.pods;
                sum.ephemeral_storage_bytes += r.ephemeral_storage_bytes;
                for (k, v) in &r.extended {
                    *sum.extended.entry(k.clone()).or_insert(0) += v;
                }
            }
            let same = sum
                .iter()
                .chain(node.used.iter())
                .all(|(k, _)| sum.get(k) == node.used.get(k));
            if !same {
                errors.push(format!(
                    "{}: used {:?} is not the sum of its pods {:?}",
                    node.name, node.used, sum
                ));
            }
            if node.used.iter().any(|(k, v)| v > node.allocatable.get(k)) {
                errors.push(format!(
                    "{} is overcommitted: {:?} > {:?}",
                    node.name, node.used, node.allocatable
                ));
            }
            if node.terminated.is_some() && !node.pods.is_empty() {
                errors.push(format!("{} is terminated but holds pods", node.name));
            }
        }
    }
}
