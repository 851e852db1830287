//! A cluster prepared once for many solves that each take some nodes away and place their pods
//! again (the disruption simulations of `ballast-nodes`).
//!
//! A full solve spends most of its time on what every such solve shares: the catalog, the
//! NodePools, the nodes' labels and the usage and labels of every bound pod. Here that is done
//! once; each solve starts from a borrowed copy, takes the removed nodes out (the pods bound to
//! them vanish with them), prepares only its pending pods and counts topology groups over the
//! bound pods of the namespaces concerned. The solver then runs unchanged, so the plan is the
//! one [`crate::solve`] gives on the reduced snapshot. Whenever that cannot be guaranteed
//! cheaply (a zone or capacity type known only from a removed node, extended resources that
//! would change meaning, pods that are invalid or duplicates), the full solve runs instead.

use super::*;

/// What a solve needs of a bound pod.
struct BoundInfo {
    slot: usize,
    labels: Labels,
}

/// The shared, prepared part.
struct Base {
    solver: Solver<'static>,
    /// Snapshot node index → slot.
    node_slot: Vec<usize>,
    /// Per slot: the NodePool whose usage counts the node, and the capacity counted.
    slot_pool: Vec<Option<(usize, ResourceVector)>>,
    /// Per slot: its zone and capacity type indices when no offering or in-flight claim names
    /// them (so removing every node that carries one changes the solve's zones).
    slot_zone: Vec<Option<usize>>,
    slot_ct: Vec<Option<usize>>,
    /// Bound pods on known slots, in snapshot order.
    bound: Vec<BoundInfo>,
    /// Bound pods by namespace id.
    by_ns: FxHashMap<u32, Vec<usize>>,
    /// Required anti-affinity terms of bound pods, in snapshot order: slot, key, namespaces,
    /// selector.
    anti: Vec<(usize, u32, NamespaceScope, Selector)>,
    /// Snapshot pods (pending or bound) by namespace and name → the node they are bound to, if
    /// it is one of the snapshot's nodes.
    names: FxHashMap<String, FxHashMap<String, Option<usize>>>,
    /// Per extended dimension: no NodePool DaemonSet overhead uses it (so when no pending pod
    /// requests it, tracking it changes nothing unless a node is overcommitted in it).
    inert: Vec<bool>,
    /// (slot, dimension) of nodes whose bound pods request more than they allocate.
    overcommitted: Vec<(usize, usize)>,
}

/// A cluster (nodes, in-flight claims, bound pods, NodePools, instance types) prepared for many
/// solves of the form "without these nodes, with these pending pods":
///
/// ```text
/// let prepared = PreparedCluster::new(snapshot, &options);
/// let plan = prepared.solve_without(&[3, 7], &evicted_pods)?; // evicted_pods: Vec<&Pod>
/// // == solve(&prepared.reduced(&[3, 7], &evicted_pods), &options)
/// ```
///
/// Pure and deterministic like [`crate::solve`], and always the same plan as a full solve of
/// [`PreparedCluster::reduced`] (with [`ClaimOrder::FewestPodsFirst`]); on invalid input it
/// returns the full solve's error.
pub struct PreparedCluster {
    snapshot: Snapshot,
    options: SolveOptions,
    base: Option<Base>,
}

impl PreparedCluster {
    /// Prepares the snapshot. Its pending pods (if any) are pending in every solve too. A
    /// snapshot the solver refuses is kept as it is: every solve is then a full one and
    /// returns the error.
    pub fn new(snapshot: Snapshot, options: &SolveOptions) -> PreparedCluster {
        PreparedCluster::with_resources(snapshot, options, &[])
    }

    /// As [`PreparedCluster::new`], also preparing for pending pods that request the extended
    /// resources `extended` (those the snapshot's pods request are always prepared for; a solve
    /// whose pending pods request another one is a full solve).
    pub fn with_resources(
        snapshot: Snapshot,
        options: &SolveOptions,
        extended: &[String],
    ) -> PreparedCluster {
        let base = Base::new(&snapshot, options, extended).ok();
        PreparedCluster {
            snapshot,
            options: options.clone(),
            base,
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Whether solves take the prepared path (false: the snapshot could not be prepared, every
    /// solve is a full one).
    pub fn is_prepared(&self) -> bool {
        self.base.is_some()
    }

    /// The snapshot without the nodes `removed` (indices into `snapshot().nodes`) and the pods
    /// bound to them, with `pending` added as pending pods.
    pub fn reduced(&self, removed: &[usize], pending: &[&Pod]) -> Snapshot {
        let s = &self.snapshot;
        let gone: BTreeSet<&str> = removed
            .iter()
            .filter_map(|&i| s.nodes.get(i))
            .map(|n| n.name.as_str())
            .collect();
        let mut pods: Vec<Pod> = s
            .pods
            .iter()
            .filter(|p| p.node_name.as_deref().is_none_or(|n| !gone.contains(n)))
            .cloned()
            .collect();
        pods.extend(pending.iter().map(|&p| Pod {
            node_name: None,
            ..p.clone()
        }));
        Snapshot {
            nodes: s
                .nodes
                .iter()
                .filter(|n| !gone.contains(n.name.as_str()))
                .cloned()
                .collect(),
            in_flight: s.in_flight.clone(),
            pods,
            node_pools: s.node_pools.clone(),
            instance_types: s.instance_types.clone(),
            namespaces: s.namespaces.clone(),
        }
    }

    /// [`crate::solve`] of [`PreparedCluster::reduced`]`(removed, pending)`, without redoing
    /// what the solves share. `pending` pods are treated as unbound whatever their `nodeName`.
    pub fn solve_without(
        &self,
        removed: &[usize],
        pending: &[&Pod],
    ) -> Result<Solution, ModelError> {
        if let Some(base) = &self.base
            && let Some(sol) = base.solve(self, removed, pending)
        {
            return Ok(sol);
        }
        crate::solve(&self.reduced(removed, pending), &self.options)
    }

    /// The prepared path alone: None where `solve_without` falls back to a full solve. For
    /// tests that check both paths agree.
    #[doc(hidden)]
    pub fn solve_prepared_only(&self, removed: &[usize], pending: &[&Pod]) -> Option<Solution> {
        self.base.as_ref()?.solve(self, removed, pending)
    }
}

impl Base {
    fn new(
        snap: &Snapshot,
        options: &SolveOptions,
        extended: &[String],
    ) -> Result<Base, ModelError> {
        // Every pod's extended resources get a dimension, so any of them may become pending.
        let mut probe = Pod::default();
        for r in extended {
            probe.requests.set(r, 1);
        }
        let dimensions = solve_dims(
            snap.pods.iter().chain(std::iter::once(&probe)),
            &snap.node_pools,
        )?;
        let mut s = Solver::prepare_cluster(snap, options, dimensions)?;
        s.check_pods(snap.pods.iter())?;
        let mut order: Vec<usize> = (0..snap.nodes.len()).collect();
        order.sort_by(|&a, &b| snap.nodes[a].name.cmp(&snap.nodes[b].name));
        let mut node_slot = vec![0; snap.nodes.len()];
        for (slot, &ni) in order.iter().enumerate() {
            node_slot[ni] = slot;
        }
        // Zones and capacity types that only nodes name.
        let mut zone_pinned = vec![false; s.cluster.zones.len()];
        let mut ct_pinned = vec![false; s.cluster.capacity_types.len()];
        for t in &snap.instance_types {
            for o in &t.offerings {
                if let Some(v) = s.vals.get(&o.zone)
                    && let Some(&z) = s.cluster.zone_index.get(&v)
                {
                    zone_pinned[z] = true;
                }
                if let Some(v) = s.vals.get(&o.capacity_type)
                    && let Some(&c) = s.cluster.capacity_type_index.get(&v)
                {
                    ct_pinned[c] = true;
                }
            }
        }
        for c in &snap.in_flight {
            if let Some(&z) = s
                .vals
                .get(&c.zone)
                .and_then(|v| s.cluster.zone_index.get(&v))
            {
                zone_pinned[z] = true;
            }
            if let Some(&ct) = s
                .vals
                .get(&c.capacity_type)
                .and_then(|v| s.cluster.capacity_type_index.get(&v))
            {
                ct_pinned[ct] = true;
            }
        }
        let mut slot_pool = vec![None; s.cluster.existing_count];
        let mut slot_zone = vec![None; s.cluster.existing_count];
        let mut slot_ct = vec![None; s.cluster.existing_count];
        for (ni, n) in snap.nodes.iter().enumerate() {
            let slot = node_slot[ni];
            if let Some(p) = aliases::get(&n.labels, wk::NODEPOOL).and_then(|p| s.pool_by_name(p)) {
                let cap = n.capacity.as_ref().unwrap_or(&n.allocatable);
                slot_pool[slot] = Some((p, s.vector(cap)));
            }
            if let Some(z) = n.labels.get(wk::ZONE)
                && let Some(&z) = s.vals.get(z).and_then(|v| s.cluster.zone_index.get(&v))
                && !zone_pinned[z]
            {
                slot_zone[slot] = Some(z);
            }
            if let Some(c) = aliases::get(&n.labels, wk::CAPACITY_TYPE)
                && let Some(&c) = s
                    .vals
                    .get(c)
                    .and_then(|v| s.cluster.capacity_type_index.get(&v))
                && !ct_pinned[c]
            {
                slot_ct[slot] = Some(c);
            }
        }
        let slot_of: FxHashMap<String, usize> = s
            .cluster
            .slots
            .iter()
            .enumerate()
            .map(|(i, sl)| (sl.name.clone(), i))
            .collect();
        let node_of: FxHashMap<&str, usize> = snap
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let mut bound = vec![];
        let mut by_ns: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
        let mut anti = vec![];
        let mut names: FxHashMap<String, FxHashMap<String, Option<usize>>> = FxHashMap::default();
        for p in &snap.pods {
            names.entry(p.namespace.clone()).or_default().insert(
                p.name.clone(),
                p.node_name.as_deref().and_then(|n| node_of.get(n).copied()),
            );
            let Some(slot) = p.node_name.as_deref().and_then(|n| slot_of.get(n).copied()) else {
                continue;
            };
            let r = s.vector(&p.effective_requests());
            s.slot_used.to_mut()[slot] = s.slot_used[slot].add(&r);
            s.slot_ports.to_mut()[slot].extend(p.host_ports.iter().cloned());
            let ns = s.vals.id(&p.namespace);
            let labels = intern_labels(&mut s.keys, &mut s.vals, &p.labels);
            for term in &p.affinity.pod_anti_affinity.required {
                let (key, ns_scope, sel) = s.compile_anti_term(term, &p.namespace);
                anti.push((slot, key, ns_scope, sel));
            }
            by_ns.entry(ns).or_default().push(bound.len());
            bound.push(BoundInfo { slot, labels });
        }
        if s.cluster.type_label_key.len() < s.keys.len() {
            s.cluster.type_label_key.resize(s.keys.len(), false);
        }
        let inert = (0..DIMS)
            .map(|d| s.pools.iter().all(|p| p.overhead.0[d] == 0))
            .collect();
        let mut overcommitted = vec![];
        for slot in 0..s.cluster.existing_count {
            for d in 0..DIMS {
                if s.slot_used[slot].0[d] > s.cluster.slots[slot].alloc.0[d] {
                    overcommitted.push((slot, d));
                }
            }
        }
        Ok(Base {
            solver: s,
            node_slot,
            slot_pool,
            slot_zone,
            slot_ct,
            bound,
            by_ns,
            anti,
            names,
            inert,
            overcommitted,
        })
    }

    /// The prepared solve, or None when only a full solve gives the right answer.
    fn solve<'b>(
        &'b self,
        owner: &'b PreparedCluster,
        removed: &[usize],
        pending: &[&'b Pod],
    ) -> Option<Solution> {
        let b = &self.solver;
        let mut gone = vec![false; b.cluster.existing_count];
        let mut zone_left: BTreeMap<usize, usize> = BTreeMap::new();
        let mut ct_left: BTreeMap<usize, usize> = BTreeMap::new();
        for &i in removed {
            let slot = *self.node_slot.get(i)?;
            if std::mem::replace(&mut gone[slot], true) {
                continue;
            }
            if let Some(z) = self.slot_zone[slot] {
                *zone_left.entry(z).or_insert(0) += 1;
            }
            if let Some(c) = self.slot_ct[slot] {
                *ct_left.entry(c).or_insert(0) += 1;
            }
        }
        // A zone or capacity type only removed nodes carry would leave the reduced solve's
        // zone (capacity type) numbering.
        for (z, n) in zone_left {
            let carried = (0..b.cluster.existing_count)
                .filter(|&s| self.slot_zone[s] == Some(z))
                .count();
            if carried == n {
                return None;
            }
        }
        for (c, n) in ct_left {
            let carried = (0..b.cluster.existing_count)
                .filter(|&s| self.slot_ct[s] == Some(c))
                .count();
            if carried == n {
                return None;
            }
        }
        let snap = &owner.snapshot;
        let pend: Vec<&'b Pod> = snap
            .pods
            .iter()
            .filter(|p| p.node_name.is_none())
            .chain(pending.iter().copied())
            .collect();
        // Pending pods: valid, no duplicates among themselves or with the pods that stay.
        let mut seen = BTreeSet::new();
        for (i, p) in pend.iter().enumerate() {
            if p.name.is_empty() || !seen.insert((p.namespace.as_str(), p.name.as_str())) {
                return None;
            }
            let given = i >= pend.len() - pending.len();
            if given
                && let Some(node) = self.names.get(&p.namespace).and_then(|m| m.get(&p.name))
                && node.is_none_or(|n| !gone[self.node_slot[n]])
            {
                return None;
            }
            b.check_pod_quantities(p).ok()?;
        }
        // Resource dimensions: the reduced solve's must be ours, and ours beyond them must not
        // matter.
        let dimensions = solve_dims(pend.iter().copied(), &snap.node_pools).ok()?;
        if dimensions != b.cluster.dimensions {
            if dimensions.iter().any(|d| !b.cluster.dimensions.contains(d)) {
                return None;
            }
            for (d, name) in b.cluster.dimensions.iter().enumerate().skip(BUILTIN.len()) {
                if dimensions.contains(name) {
                    continue;
                }
                if !self.inert[d]
                    || self
                        .overcommitted
                        .iter()
                        .any(|&(s, dd)| dd == d && !gone[s])
                {
                    return None;
                }
            }
        }
        let mut s = Solver::start(Start {
            cluster: b.cluster.borrowed(),
            keys: Interner::layered(&b.keys),
            vals: Interner::layered(&b.vals),
            pools: b.pools.clone(),
            slot_used: Cow::Borrowed(&b.slot_used),
            slot_ports: Cow::Borrowed(&b.slot_ports),
            live: (0..b.cluster.existing_count)
                .filter(|&s| !gone[s])
                .collect(),
            placeable: b.placeable.iter().copied().filter(|&s| !gone[s]).collect(),
        });
        for slot in (0..b.cluster.existing_count).filter(|&s| gone[s]) {
            if let Some((p, cap)) = &self.slot_pool[slot] {
                let pool = &mut s.pools[*p];
                if pool.usage.0.contains(&i64::MAX) {
                    return None; // saturated: the sum cannot be taken apart
                }
                pool.usage = pool.usage.sub(cap);
                pool.usage_nodes -= 1;
            }
        }
        s.prepare_pending(pend).ok()?;
        // The bound pods that stay: counts of the groups the pending pods brought, then the
        // owners of required anti-affinity (as the full solve meets them, in snapshot order).
        for g in 0..s.groups.len() {
            let (key, ns) = (s.groups[g].key, s.groups[g].ns.clone());
            let count = |bi: usize, s: &mut Solver| {
                let bp = &self.bound[bi];
                if !gone[bp.slot]
                    && s.groups[g].sel.matches(&bp.labels)
                    && let Some(d) = s.slot_domain(bp.slot, key)
                {
                    Group::bump(&mut s.groups[g].counts, d);
                    s.groups[g].total += 1;
                }
            };
            match &ns {
                NamespaceScope::All => (0..self.bound.len()).for_each(|bi| count(bi, &mut s)),
                NamespaceScope::Set(v) => {
                    for n in v {
                        for &bi in self.by_ns.get(n).map(|v| &v[..]).unwrap_or(&[]) {
                            count(bi, &mut s);
                        }
                    }
                }
            }
        }
        for (slot, key, ns, sel) in &self.anti {
            if !gone[*slot] {
                s.record_anti_affinity_owner(*slot, *key, ns.clone(), sel.clone());
            }
        }
        s.set_members();
        Some(s.run())
    }
}
