//! Compiling the cluster once: resource dimensions, zones and capacity types numbered, each
//! instance type with its available offerings, each NodePool with the types it may launch, and
//! each existing node or in-flight claim as a slot. Errors name the object and field at fault.

use super::*;

/// The cluster compiled once from a snapshot: options, resource dimensions, zones and capacity
/// types numbered (bit positions in the 64-bit masks), instance types with their available
/// offerings, and the existing nodes and in-flight claims (slots). Built by
/// [`Solver::prepare_cluster`]; nothing changes it afterwards, so a prepared cluster lends it to
/// many solves ([`Compiled::borrowed`]).
#[derive(Clone)]
pub(super) struct Compiled<'a> {
    pub(super) options: SolveOptions,
    /// Interned ids of the well-known label keys.
    pub(super) zone_key: u32,
    pub(super) capacity_type_key: u32,
    pub(super) hostname_key: u32,
    pub(super) nodepool_key: u32,
    /// Resource names of the vector positions: the built-ins, then the extended resources.
    pub(super) dimensions: Vec<String>,
    /// Zone value ids by zone index (sorted by name), and the way back.
    pub(super) zones: Vec<u32>,
    pub(super) zone_index: FxHashMap<u32, usize>,
    /// Capacity-type value ids by index (sorted by name), and the way back.
    pub(super) capacity_types: Vec<u32>,
    pub(super) capacity_type_index: FxHashMap<u32, usize>,
    /// Per label key id: whether some instance type carries it (such keys narrow the type set
    /// of a NodeClaim rather than its requirements).
    pub(super) type_label_key: Vec<bool>,
    /// The instance types, in snapshot order.
    pub(super) types: Cow<'a, [CompiledType]>,
    /// Existing nodes (by name) then in-flight claims (by name).
    pub(super) slots: Cow<'a, [Slot]>,
    /// `slots.len()`: slot indices from here on are NodeClaims opened in the solve.
    pub(super) existing_count: usize,
    /// Interned labels of each namespace, for namespace selectors.
    pub(super) namespace_labels: FxHashMap<String, Labels>,
}

impl Compiled<'_> {
    /// The same cluster, lending its instance types and slots instead of copying them.
    pub(super) fn borrowed(&self) -> Compiled<'_> {
        Compiled {
            options: self.options.clone(),
            zone_key: self.zone_key,
            capacity_type_key: self.capacity_type_key,
            hostname_key: self.hostname_key,
            nodepool_key: self.nodepool_key,
            dimensions: self.dimensions.clone(),
            zones: self.zones.clone(),
            zone_index: self.zone_index.clone(),
            capacity_types: self.capacity_types.clone(),
            capacity_type_index: self.capacity_type_index.clone(),
            type_label_key: self.type_label_key.clone(),
            types: Cow::Borrowed(&self.types),
            slots: Cow::Borrowed(&self.slots),
            existing_count: self.existing_count,
            namespace_labels: self.namespace_labels.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct CompiledType {
    pub(super) name: String,
    pub(super) alloc: ResourceVector,
    pub(super) cap: ResourceVector,
    pub(super) labels: Labels,
    /// Per capacity type, the zones with an available offering.
    pub(super) zones_by_capacity_type: Vec<u64>,
    /// Available offerings: (zone, capacity type, price).
    pub(super) offers: Vec<(usize, usize, f64)>,
}

#[derive(Clone)]
pub(super) struct CompiledPool {
    pub(super) source: usize,
    pub(super) name: String,
    pub(super) weight: i32,
    pub(super) requirements: ReqSet,
    pub(super) types: TypeSet,
    pub(super) zone_mask: u64,
    pub(super) capacity_mask: u64,
    pub(super) taints: Vec<Taint>,
    pub(super) overhead: ResourceVector,
    pub(super) max_alloc: ResourceVector,
    pub(super) min_values: Vec<(u32, u32)>,
    pub(super) limits: Option<ResourceVector>,
    pub(super) limit_nodes: Option<i64>,
    /// A static pool: no claim is opened in it.
    pub(super) fixed_size: bool,
    pub(super) usage: ResourceVector,
    pub(super) usage_nodes: i64,
    pub(super) reserved: ResourceVector,
    pub(super) claims: i64,
}

/// is kept beside it in the solver.
#[derive(Clone)]
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) labels: Labels,
    pub(super) taints: Vec<Taint>,
    pub(super) alloc: ResourceVector,
    pub(super) cordoned: bool,
}

impl<'a> Solver<'a> {
    /// Everything but the pods: instance types, NodePools, existing nodes and in-flight claims,
    /// with `dims` as the resource dimensions.
    pub(crate) fn prepare_cluster(
        snap: &Snapshot,
        options: &SolveOptions,
        dimensions: Vec<String>,
    ) -> Result<Solver<'static>, ModelError> {
        let mut keys = Interner::label_keys();
        let vals = Interner::default();
        let zone_key = keys.id(wk::ZONE);
        let capacity_type_key = keys.id(wk::CAPACITY_TYPE);
        let hostname_key = keys.id(wk::HOSTNAME);
        let nodepool_key = keys.id(wk::NODEPOOL);
        let instance_type_key = keys.id(wk::INSTANCE_TYPE);
        let mut s = Solver::start(Start {
            cluster: Compiled {
                options: options.clone(),
                zone_key,
                capacity_type_key,
                hostname_key,
                nodepool_key,
                dimensions,
                zones: vec![],
                zone_index: FxHashMap::default(),
                capacity_types: vec![],
                capacity_type_index: FxHashMap::default(),
                type_label_key: vec![],
                types: Cow::Owned(vec![]),
                slots: Cow::Owned(vec![]),
                existing_count: 0,
                namespace_labels: FxHashMap::default(),
            },
            keys,
            vals,
            pools: vec![],
            slot_used: Cow::Owned(vec![]),
            slot_ports: Cow::Owned(vec![]),
            live: vec![],
            placeable: vec![],
        });
        s.prepare_types(snap, instance_type_key)?;
        s.prepare_pools(snap)?;
        s.prepare_slots(snap)?;
        for ns in &snap.namespaces {
            let l = intern_labels(&mut s.keys, &mut s.vals, &ns.labels);
            s.cluster.namespace_labels.insert(ns.name.clone(), l);
        }
        Ok(s)
    }

    pub(super) fn vector(&self, r: &Resources) -> ResourceVector {
        let mut v = ResourceVector::default();
        v.0[0] = r.cpu_millis;
        v.0[1] = r.memory_bytes;
        v.0[2] = r.pods;
        v.0[3] = r.ephemeral_storage_bytes;
        for (i, name) in self.cluster.dimensions.iter().enumerate().skip(4) {
            v.0[i] = r.extended.get(name).copied().unwrap_or(0);
        }
        v
    }

    pub(super) fn resources(&self, v: &ResourceVector) -> Resources {
        let mut r = Resources::default();
        for (i, name) in self.cluster.dimensions.iter().enumerate() {
            if v.0[i] != 0 {
                r.set(name, v.0[i]);
            }
        }
        r
    }

    pub(super) fn check_nonneg(
        &self,
        kind: Kind,
        name: &str,
        field: &str,
        r: &Resources,
    ) -> Result<(), ModelError> {
        for (k, v) in r.iter() {
            if v < 0 {
                return Err(dimension_error(
                    kind,
                    name,
                    &format!("{field}.{k}"),
                    format!("negative quantity {v}"),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn zone_id(&mut self, z: &str) -> Result<usize, ModelError> {
        let v = self.vals.id(z);
        if let Some(&i) = self.cluster.zone_index.get(&v) {
            return Ok(i);
        }
        if self.cluster.zones.len() == 64 {
            return Err(ModelError::new(
                Kind::Snapshot,
                "",
                "zones",
                "more than 64 zones",
            ));
        }
        self.cluster.zone_index.insert(v, self.cluster.zones.len());
        self.cluster.zones.push(v);
        Ok(self.cluster.zones.len() - 1)
    }

    pub(super) fn capacity_type_id(&mut self, c: &str) -> Result<usize, ModelError> {
        let v = self.vals.id(c);
        if let Some(&i) = self.cluster.capacity_type_index.get(&v) {
            return Ok(i);
        }
        if self.cluster.capacity_types.len() == 64 {
            return Err(ModelError::new(
                Kind::Snapshot,
                "",
                "capacityTypes",
                "more than 64 capacity types",
            ));
        }
        self.cluster
            .capacity_type_index
            .insert(v, self.cluster.capacity_types.len());
        self.cluster.capacity_types.push(v);
        Ok(self.cluster.capacity_types.len() - 1)
    }

    pub(super) fn prepare_types(
        &mut self,
        snap: &Snapshot,
        instance_type_key: u32,
    ) -> Result<(), ModelError> {
        // Sorted zone and capacity-type ids keep masks independent of input order.
        let mut zones = BTreeSet::new();
        let mut capacity_types = BTreeSet::new();
        for t in &snap.instance_types {
            for o in &t.offerings {
                zones.insert(o.zone.clone());
                capacity_types.insert(o.capacity_type.clone());
            }
        }
        for n in &snap.nodes {
            if let Some(z) = n.labels.get(wk::ZONE) {
                zones.insert(z.clone());
            }
            if let Some(c) = aliases::get(&n.labels, wk::CAPACITY_TYPE) {
                capacity_types.insert(c.clone());
            }
        }
        for c in &snap.in_flight {
            zones.insert(c.zone.clone());
            capacity_types.insert(c.capacity_type.clone());
        }
        for z in &zones {
            self.zone_id(z)?;
        }
        for c in &capacity_types {
            self.capacity_type_id(c)?;
        }
        let mut seen = BTreeSet::new();
        for t in &snap.instance_types {
            let e =
                |field: &str, why: String| ModelError::new(Kind::InstanceType, &t.name, field, why);
            if t.name.is_empty() {
                return Err(e("name", "empty".into()));
            }
            if !seen.insert(t.name.clone()) {
                return Err(e("name", "duplicate instance type".into()));
            }
            self.check_nonneg(Kind::InstanceType, &t.name, "capacity", &t.capacity)?;
            self.check_nonneg(Kind::InstanceType, &t.name, "overhead", &t.overhead)?;
            let mut zones_by_capacity_type = vec![0u64; self.cluster.capacity_types.len()];
            let mut offers = vec![];
            for (i, o) in t.offerings.iter().enumerate() {
                if !o.price.is_finite() || o.price < 0.0 {
                    return Err(e(
                        &format!("offerings[{i}].price"),
                        format!("{} is not a price", o.price),
                    ));
                }
                if o.zone.is_empty() {
                    return Err(e(&format!("offerings[{i}].zone"), "empty".into()));
                }
                if o.available {
                    let zi = self.zone_id(&o.zone)?;
                    let ci = self.capacity_type_id(&o.capacity_type)?;
                    zones_by_capacity_type[ci] |= 1 << zi;
                    offers.push((zi, ci, o.price));
                }
            }
            let mut labels = intern_labels(&mut self.keys, &mut self.vals, &t.labels);
            let itv = self.vals.id(&t.name);
            labels.retain(|(k, _)| {
                *k != instance_type_key
                    && *k != self.cluster.zone_key
                    && *k != self.cluster.capacity_type_key
            });
            labels.push((instance_type_key, itv));
            labels.sort_unstable();
            let alloc = self.vector(&t.allocatable());
            let cap = self.vector(&t.capacity);
            self.cluster.types.to_mut().push(CompiledType {
                name: t.name.clone(),
                alloc,
                cap,
                labels,
                zones_by_capacity_type,
                offers,
            });
        }
        self.cluster.type_label_key = vec![false; self.keys.len()];
        for t in self.cluster.types.iter() {
            for (k, _) in &t.labels {
                self.cluster.type_label_key[*k as usize] = true;
            }
        }
        Ok(())
    }

    pub(super) fn is_type_key(&self, k: u32) -> bool {
        self.cluster
            .type_label_key
            .get(k as usize)
            .copied()
            .unwrap_or(false)
    }

    /// Types whose labels satisfy the type-key part of a requirement set.
    pub(super) fn type_mask(&self, rs: &ReqSet) -> (TypeSet, bool) {
        let mut b = TypeSet::new(self.cluster.types.len(), true);
        let tk: Vec<&(u32, VSet)> = rs.iter().filter(|(k, _)| self.is_type_key(*k)).collect();
        if !tk.is_empty() {
            b.retain(|t| {
                tk.iter()
                    .all(|(k, v)| v.allows(label(&self.cluster.types[t].labels, *k), &self.vals))
            });
        }
        (b, !tk.is_empty())
    }

    pub(super) fn zones_allowed(&self, v: Option<&VSet>) -> u64 {
        let mut m = 0;
        for (i, &z) in self.cluster.zones.iter().enumerate() {
            if v.is_none_or(|v| v.allows(Some(z), &self.vals)) {
                m |= 1 << i;
            }
        }
        m
    }

    pub(super) fn capacity_types_allowed(&self, v: Option<&VSet>) -> u64 {
        let mut m = 0;
        for (i, &c) in self.cluster.capacity_types.iter().enumerate() {
            if v.is_none_or(|v| v.allows(Some(c), &self.vals)) {
                m |= 1 << i;
            }
        }
        m
    }

    pub(super) fn offer_ok(&self, t: usize, zone_mask: u64, capacity_mask: u64) -> bool {
        mask_bits(capacity_mask)
            .any(|c| self.cluster.types[t].zones_by_capacity_type[c] & zone_mask != 0)
    }

    /// One NodePool compiled: its requirements split into type, zone, capacity-type and other
    /// keys; the instance types it may launch (requirements, an available offering, room for its
    /// DaemonSet overhead); limits as a vector. `index` is its position in the snapshot.
    fn compile_pool(
        &mut self,
        index: usize,
        np: &crate::model::NodePool,
    ) -> Result<CompiledPool, ModelError> {
        let pi = index;
        let e = |field: &str, why: String| ModelError::new(Kind::NodePool, &np.name, field, why);
        if !(0..=100).contains(&np.weight) {
            return Err(e("weight", format!("{} is outside 0..=100", np.weight)));
        }
        self.check_nonneg(
            Kind::NodePool,
            &np.name,
            "daemonsetOverhead",
            &np.daemonset_overhead,
        )?;
        let mut rs: ReqSet = vec![];
        let mut min_values = vec![];
        for (i, r) in np.requirements.iter().enumerate() {
            let v = VSet::from_req(r, &mut self.vals)
                .map_err(|w| e(&format!("requirements[{i}]"), w))?;
            let k = self.keys.id(&r.key);
            if k == self.cluster.hostname_key {
                return Err(e(
                    &format!("requirements[{i}].key"),
                    "a NodePool cannot require a hostname".into(),
                ));
            }
            if let Some(m) = r.min_values {
                if m == 0 {
                    return Err(e(
                        &format!("requirements[{i}].minValues"),
                        "must be at least 1".into(),
                    ));
                }
                min_values.push((k, m));
            }
            reqset_add(&mut rs, k, v, &self.vals);
        }
        for (k, v) in &np.labels {
            let (k, v) = (self.keys.id(k), self.vals.id(v));
            reqset_add(&mut rs, k, VSet::only(v), &self.vals);
        }
        let pv = self.vals.id(&np.name);
        reqset_add(
            &mut rs,
            self.cluster.nodepool_key,
            VSet::only(pv),
            &self.vals,
        );
        if self.cluster.type_label_key.len() < self.keys.len() {
            self.cluster.type_label_key.resize(self.keys.len(), false);
        }
        let (mut types, _) = self.type_mask(&rs);
        let zone_mask = self.zones_allowed(reqset_get(&rs, self.cluster.zone_key));
        let capacity_mask =
            self.capacity_types_allowed(reqset_get(&rs, self.cluster.capacity_type_key));
        let overhead = self.vector(&np.daemonset_overhead);
        types.retain(|t| {
            self.offer_ok(t, zone_mask, capacity_mask) && overhead.le(&self.cluster.types[t].alloc)
        });
        let other: ReqSet = rs
            .into_iter()
            .filter(|(k, _)| {
                !self.is_type_key(*k)
                    && *k != self.cluster.zone_key
                    && *k != self.cluster.capacity_type_key
            })
            .collect();
        let mut max_alloc = ResourceVector::default();
        for t in types.iter() {
            max_alloc = max_alloc.max(&self.cluster.types[t].alloc);
        }
        let (limits, limit_nodes) = match &np.limits {
            None => (None, None),
            Some(l) => {
                self.check_nonneg(Kind::NodePool, &np.name, "limits", l)?;
                let mut v = ResourceVector([i64::MAX; DIMS]);
                for (k, amount) in l.iter() {
                    if let Some(d) = self.cluster.dimensions.iter().position(|n| n == k) {
                        v.0[d] = amount;
                    }
                }
                (Some(v), l.extended.get("nodes").copied())
            }
        };
        let taints: Vec<Taint> = np.taints.clone();
        Ok(CompiledPool {
            source: pi,
            name: np.name.clone(),
            weight: np.weight,
            requirements: other,
            types,
            zone_mask,
            capacity_mask,
            taints,
            overhead,
            max_alloc,
            min_values,
            limits,
            limit_nodes,
            fixed_size: np.fixed_size,
            usage: ResourceVector::default(),
            usage_nodes: 0,
            reserved: ResourceVector::default(),
            claims: 0,
        })
    }

    pub(super) fn prepare_pools(&mut self, snap: &Snapshot) -> Result<(), ModelError> {
        let mut names = BTreeSet::new();
        for (pi, np) in snap.node_pools.iter().enumerate() {
            let e =
                |field: &str, why: String| ModelError::new(Kind::NodePool, &np.name, field, why);
            if np.name.is_empty() {
                return Err(e("name", "empty".into()));
            }
            if !names.insert(np.name.clone()) {
                return Err(e("name", "duplicate NodePool".into()));
            }
            let pool = self.compile_pool(pi, np)?;
            self.pools.push(pool);
        }
        // Weight first, then name.
        self.pools
            .sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.name.cmp(&b.name)));
        if self.cluster.type_label_key.len() < self.keys.len() {
            self.cluster.type_label_key.resize(self.keys.len(), false);
        }
        Ok(())
    }

    pub(super) fn pool_by_name(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    /// Existing nodes as slots, by name: labels (with a hostname), taints (ephemeral and startup
    /// taints dropped while initializing), allocatable; capacity counted into the NodePool.
    fn prepare_nodes(
        &mut self,
        snap: &Snapshot,
        names: &mut BTreeSet<String>,
    ) -> Result<(), ModelError> {
        let mut order: Vec<usize> = (0..snap.nodes.len()).collect();
        order.sort_by(|&a, &b| snap.nodes[a].name.cmp(&snap.nodes[b].name));
        for &ni in &order {
            let n = &snap.nodes[ni];
            if n.name.is_empty() || !names.insert(n.name.clone()) {
                return Err(ModelError::new(
                    Kind::Node,
                    &n.name,
                    "name",
                    "empty or duplicate",
                ));
            }
            self.check_nonneg(Kind::Node, &n.name, "allocatable", &n.allocatable)?;
            let mut labels = intern_labels(&mut self.keys, &mut self.vals, &n.labels);
            if label(&labels, self.cluster.hostname_key).is_none() {
                let hv = self.vals.id(&n.name);
                labels.push((self.cluster.hostname_key, hv));
                labels.sort_unstable();
            }
            let pool = aliases::get(&n.labels, wk::NODEPOOL).and_then(|p| self.pool_by_name(p));
            let mut taints = n.taints.clone();
            if n.initializing {
                let startup: &[Taint] = pool
                    .map(|p| &snap.node_pools[self.pools[p].source].startup_taints[..])
                    .unwrap_or(&[]);
                taints.retain(|t| {
                    !EPHEMERAL_TAINTS.contains(&t.key.as_str()) && !startup.contains(t)
                });
            }
            let capacity = n.capacity.clone().unwrap_or_else(|| n.allocatable.clone());
            if let Some(p) = pool {
                let c = self.vector(&capacity);
                self.pools[p].usage = self.pools[p].usage.add(&c);
                self.pools[p].usage_nodes += 1;
            }
            let alloc = self.vector(&n.allocatable);
            self.cluster.slots.to_mut().push(Slot {
                name: n.name.clone(),
                labels,
                taints,
                alloc,
                cordoned: n.unschedulable,
            });
        }
        Ok(())
    }

    /// In-flight claims as slots, by name: labels from the NodePool, the claim and its instance
    /// type; allocatable of the type less the NodePool's DaemonSet overhead.
    fn prepare_in_flight(
        &mut self,
        snap: &Snapshot,
        names: &mut BTreeSet<String>,
    ) -> Result<(), ModelError> {
        let mut inflight: Vec<usize> = (0..snap.in_flight.len()).collect();
        inflight.sort_by(|&a, &b| snap.in_flight[a].name.cmp(&snap.in_flight[b].name));
        for ci in inflight {
            let c = &snap.in_flight[ci];
            let e = |field: &str, why: String| {
                ModelError::new(Kind::InFlightClaim, &c.name, field, why)
            };
            if c.name.is_empty() || !names.insert(c.name.clone()) {
                return Err(e("name", "empty or duplicate (also among nodes)".into()));
            }
            let p = self
                .pool_by_name(&c.node_pool)
                .ok_or_else(|| e("nodePool", format!("unknown NodePool {:?}", c.node_pool)))?;
            let t = self
                .cluster
                .types
                .iter()
                .position(|t| t.name == c.instance_type)
                .ok_or_else(|| {
                    e(
                        "instanceType",
                        format!("unknown instance type {:?}", c.instance_type),
                    )
                })?;
            let np = &snap.node_pools[self.pools[p].source];
            let mut lm: BTreeMap<String, String> = np.labels.clone();
            lm.insert(wk::ZONE.into(), c.zone.clone());
            lm.insert(wk::CAPACITY_TYPE.into(), c.capacity_type.clone());
            lm.insert(wk::NODEPOOL.into(), np.name.clone());
            lm.insert(wk::HOSTNAME.into(), c.name.clone());
            for r in &np.requirements {
                if r.operator == crate::model::Operator::In
                    && r.values.len() == 1
                    && !lm.contains_key(&r.key)
                {
                    lm.insert(r.key.clone(), r.values[0].clone());
                }
            }
            let mut labels = intern_labels(&mut self.keys, &mut self.vals, &lm);
            for &(k, v) in &self.cluster.types[t].labels {
                if label(&labels, k).is_none() {
                    labels.push((k, v));
                }
            }
            labels.sort_unstable();
            let cap = self.cluster.types[t].cap;
            self.pools[p].usage = self.pools[p].usage.add(&cap);
            self.pools[p].usage_nodes += 1;
            let alloc = self.cluster.types[t].alloc.sub(&self.pools[p].overhead);
            self.cluster.slots.to_mut().push(Slot {
                name: c.name.clone(),
                labels,
                taints: np.taints.clone(),
                alloc,
                cordoned: false,
            });
        }
        Ok(())
    }

    /// The existing nodes (by name) and then the in-flight claims (by name) as slots, counted
    /// into their NodePools' usage; names must be unique across both.
    pub(super) fn prepare_slots(&mut self, snap: &Snapshot) -> Result<(), ModelError> {
        let mut names = BTreeSet::new();
        self.prepare_nodes(snap, &mut names)?;
        self.prepare_in_flight(snap, &mut names)?;
        self.cluster.existing_count = self.cluster.slots.len();
        self.slot_used = Cow::Owned(vec![ResourceVector::default(); self.cluster.existing_count]);
        self.slot_ports = Cow::Owned(vec![vec![]; self.cluster.existing_count]);
        self.live = (0..self.cluster.existing_count).collect();
        self.placeable = (0..self.cluster.existing_count)
            .filter(|&s| !self.cluster.slots[s].cordoned)
            .collect();
        if self.cluster.type_label_key.len() < self.keys.len() {
            self.cluster.type_label_key.resize(self.keys.len(), false);
        }
        Ok(())
    }

    pub(super) fn slot_domain(&self, slot: usize, key: u32) -> Option<u32> {
        if key == self.cluster.hostname_key {
            return Some(slot as u32);
        }
        let v = label(&self.cluster.slots[slot].labels, key)?;
        self.domain_of_value(key, v)
    }

    pub(super) fn domain_of_value(&self, key: u32, v: u32) -> Option<u32> {
        if key == self.cluster.zone_key {
            self.cluster.zone_index.get(&v).map(|&i| i as u32)
        } else if key == self.cluster.capacity_type_key {
            self.cluster.capacity_type_index.get(&v).map(|&i| i as u32)
        } else {
            Some(v)
        }
    }

    /// Whether domain `a` of `key` sorts before `b`: zones and capacity types are numbered in
    /// name order, hostnames never compete; other values compare by name, so no choice depends
    /// on the order strings were interned in.
    pub(super) fn domain_before(&self, key: u32, a: u32, b: u32) -> bool {
        if key == self.cluster.zone_key
            || key == self.cluster.capacity_type_key
            || key == self.cluster.hostname_key
        {
            a < b
        } else {
            self.vals.name(a) < self.vals.name(b)
        }
    }

    /// The key with the smallest name (reports name one of several unmet keys the same way
    /// whatever the interning order).
    pub(super) fn first_key(&self, keys: impl Iterator<Item = u32>) -> Option<u32> {
        keys.min_by(|&a, &b| self.keys.name(a).cmp(self.keys.name(b)))
    }
}
