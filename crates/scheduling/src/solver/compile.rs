//! Compiling the cluster: instance types, NodePools and existing nodes.

use super::*;

#[derive(Clone)]
pub(super) struct PType {
    pub(super) name: String,
    pub(super) alloc: RV,
    pub(super) cap: RV,
    pub(super) labels: Labels,
    /// Per capacity type, the zones with an available offering.
    pub(super) zc: Vec<u64>,
    /// Available offerings: (zone, capacity type, price).
    pub(super) offers: Vec<(usize, usize, f64)>,
}

#[derive(Clone)]
pub(super) struct PPool {
    pub(super) src: usize,
    pub(super) name: String,
    pub(super) weight: i32,
    pub(super) reqs: ReqSet,
    pub(super) types: Bits,
    pub(super) zmask: u64,
    pub(super) cmask: u64,
    pub(super) taints: Vec<Taint>,
    pub(super) overhead: RV,
    pub(super) max_alloc: RV,
    pub(super) min_values: Vec<(u32, u32)>,
    pub(super) limits: Option<RV>,
    pub(super) limit_nodes: Option<i64>,
    pub(super) usage: RV,
    pub(super) usage_nodes: i64,
    pub(super) reserved: RV,
    pub(super) claims: i64,
}

/// is kept beside it in the solver.
#[derive(Clone)]
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) labels: Labels,
    pub(super) taints: Vec<Taint>,
    pub(super) alloc: RV,
    pub(super) cordoned: bool,
}

impl<'a> Solver<'a> {
    /// Everything but the pods: instance types, NodePools, existing nodes and in-flight claims,
    /// with `dims` as the resource dimensions.
    pub(crate) fn prepare_cluster(
        snap: &Snapshot,
        opts: &SolveOptions,
        dims: Vec<String>,
    ) -> Result<Solver<'static>, ModelError> {
        let mut keys = Interner::default();
        let vals = Interner::default();
        let k_zone = keys.id(wk::ZONE);
        let k_ct = keys.id(wk::CAPACITY_TYPE);
        let k_host = keys.id(wk::HOSTNAME);
        let k_pool = keys.id(wk::NODEPOOL);
        let k_itype = keys.id(wk::INSTANCE_TYPE);
        let mut s = Solver {
            pod_src: vec![],
            opts: opts.clone(),
            keys,
            vals,
            k_zone,
            k_ct,
            k_host,
            k_pool,
            dims,
            zones: vec![],
            zone_idx: FxHashMap::default(),
            cts: vec![],
            ct_idx: FxHashMap::default(),
            type_key: vec![],
            types: Cow::Owned(vec![]),
            pools: vec![],
            slots: Cow::Owned(vec![]),
            slot_used: Cow::Owned(vec![]),
            slot_ports: Cow::Owned(vec![]),
            n_existing: 0,
            live: vec![],
            placeable: vec![],
            claims: vec![],
            open: BTreeSet::new(),
            alts: vec![],
            alt_ids: FxHashMap::default(),
            groups: vec![],
            group_ids: FxHashMap::default(),
            pods: vec![],
            domain_cache: FxHashMap::default(),
            placements: vec![],
            ns_labels: FxHashMap::default(),
            claim_order: ClaimOrder::default(),
        };
        s.prepare_types(snap, k_itype)?;
        s.prepare_pools(snap)?;
        s.prepare_slots(snap)?;
        for ns in &snap.namespaces {
            let l = intern_labels(&mut s.keys, &mut s.vals, &ns.labels);
            s.ns_labels.insert(ns.name.clone(), l);
        }
        Ok(s)
    }

    pub(super) fn rv(&self, r: &Resources) -> RV {
        let mut v = RV::default();
        v.0[0] = r.cpu_millis;
        v.0[1] = r.memory_bytes;
        v.0[2] = r.pods;
        v.0[3] = r.ephemeral_storage_bytes;
        for (i, name) in self.dims.iter().enumerate().skip(4) {
            v.0[i] = r.extended.get(name).copied().unwrap_or(0);
        }
        v
    }

    pub(super) fn resources(&self, v: &RV) -> Resources {
        let mut r = Resources::default();
        for (i, name) in self.dims.iter().enumerate() {
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
                return Err(dims_err(
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
        if let Some(&i) = self.zone_idx.get(&v) {
            return Ok(i);
        }
        if self.zones.len() == 64 {
            return Err(ModelError::new(
                Kind::Snapshot,
                "",
                "zones",
                "more than 64 zones",
            ));
        }
        self.zone_idx.insert(v, self.zones.len());
        self.zones.push(v);
        Ok(self.zones.len() - 1)
    }

    pub(super) fn ct_id(&mut self, c: &str) -> Result<usize, ModelError> {
        let v = self.vals.id(c);
        if let Some(&i) = self.ct_idx.get(&v) {
            return Ok(i);
        }
        if self.cts.len() == 64 {
            return Err(ModelError::new(
                Kind::Snapshot,
                "",
                "capacityTypes",
                "more than 64 capacity types",
            ));
        }
        self.ct_idx.insert(v, self.cts.len());
        self.cts.push(v);
        Ok(self.cts.len() - 1)
    }

    pub(super) fn prepare_types(
        &mut self,
        snap: &Snapshot,
        k_itype: u32,
    ) -> Result<(), ModelError> {
        // Sorted zone and capacity-type ids keep masks independent of input order.
        let mut zones = BTreeSet::new();
        let mut cts = BTreeSet::new();
        for t in &snap.instance_types {
            for o in &t.offerings {
                zones.insert(o.zone.clone());
                cts.insert(o.capacity_type.clone());
            }
        }
        for n in &snap.nodes {
            if let Some(z) = n.labels.get(wk::ZONE) {
                zones.insert(z.clone());
            }
            if let Some(c) = n.labels.get(wk::CAPACITY_TYPE) {
                cts.insert(c.clone());
            }
        }
        for c in &snap.in_flight {
            zones.insert(c.zone.clone());
            cts.insert(c.capacity_type.clone());
        }
        for z in &zones {
            self.zone_id(z)?;
        }
        for c in &cts {
            self.ct_id(c)?;
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
            let mut zc = vec![0u64; self.cts.len()];
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
                    let ci = self.ct_id(&o.capacity_type)?;
                    zc[ci] |= 1 << zi;
                    offers.push((zi, ci, o.price));
                }
            }
            let mut labels = intern_labels(&mut self.keys, &mut self.vals, &t.labels);
            let itv = self.vals.id(&t.name);
            labels.retain(|(k, _)| *k != k_itype && *k != self.k_zone && *k != self.k_ct);
            labels.push((k_itype, itv));
            labels.sort_unstable();
            let alloc = self.rv(&t.allocatable());
            let cap = self.rv(&t.capacity);
            self.types.to_mut().push(PType {
                name: t.name.clone(),
                alloc,
                cap,
                labels,
                zc,
                offers,
            });
        }
        self.type_key = vec![false; self.keys.len()];
        for t in self.types.iter() {
            for (k, _) in &t.labels {
                self.type_key[*k as usize] = true;
            }
        }
        Ok(())
    }

    pub(super) fn is_type_key(&self, k: u32) -> bool {
        self.type_key.get(k as usize).copied().unwrap_or(false)
    }

    /// Types whose labels satisfy the type-key part of a requirement set.
    pub(super) fn type_mask(&self, rs: &ReqSet) -> (Bits, bool) {
        let mut b = Bits::new(self.types.len(), true);
        let tk: Vec<&(u32, VSet)> = rs.iter().filter(|(k, _)| self.is_type_key(*k)).collect();
        if !tk.is_empty() {
            b.retain(|t| {
                tk.iter()
                    .all(|(k, v)| v.allows(label(&self.types[t].labels, *k), &self.vals))
            });
        }
        (b, !tk.is_empty())
    }

    pub(super) fn zone_mask(&self, v: Option<&VSet>) -> u64 {
        let mut m = 0;
        for (i, &z) in self.zones.iter().enumerate() {
            if v.is_none_or(|v| v.allows(Some(z), &self.vals)) {
                m |= 1 << i;
            }
        }
        m
    }

    pub(super) fn ct_mask(&self, v: Option<&VSet>) -> u64 {
        let mut m = 0;
        for (i, &c) in self.cts.iter().enumerate() {
            if v.is_none_or(|v| v.allows(Some(c), &self.vals)) {
                m |= 1 << i;
            }
        }
        m
    }

    pub(super) fn offer_ok(&self, t: usize, zmask: u64, cmask: u64) -> bool {
        bits_of(cmask).any(|c| self.types[t].zc[c] & zmask != 0)
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
                if k == self.k_host {
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
            reqset_add(&mut rs, self.k_pool, VSet::only(pv), &self.vals);
            if self.type_key.len() < self.keys.len() {
                self.type_key.resize(self.keys.len(), false);
            }
            let (mut types, _) = self.type_mask(&rs);
            let zmask = self.zone_mask(reqset_get(&rs, self.k_zone));
            let cmask = self.ct_mask(reqset_get(&rs, self.k_ct));
            let overhead = self.rv(&np.daemonset_overhead);
            types.retain(|t| self.offer_ok(t, zmask, cmask) && overhead.le(&self.types[t].alloc));
            let other: ReqSet = rs
                .into_iter()
                .filter(|(k, _)| !self.is_type_key(*k) && *k != self.k_zone && *k != self.k_ct)
                .collect();
            let mut max_alloc = RV::default();
            for t in types.iter() {
                max_alloc = max_alloc.max(&self.types[t].alloc);
            }
            let (limits, limit_nodes) = match &np.limits {
                None => (None, None),
                Some(l) => {
                    self.check_nonneg(Kind::NodePool, &np.name, "limits", l)?;
                    let mut v = RV([i64::MAX; DIMS]);
                    for (k, amount) in l.iter() {
                        if let Some(d) = self.dims.iter().position(|n| n == k) {
                            v.0[d] = amount;
                        }
                    }
                    (Some(v), l.extended.get("nodes").copied())
                }
            };
            let taints: Vec<Taint> = np.taints.clone();
            self.pools.push(PPool {
                src: pi,
                name: np.name.clone(),
                weight: np.weight,
                reqs: other,
                types,
                zmask,
                cmask,
                taints,
                overhead,
                max_alloc,
                min_values,
                limits,
                limit_nodes,
                usage: RV::default(),
                usage_nodes: 0,
                reserved: RV::default(),
                claims: 0,
            });
        }
        // Weight first, then name.
        self.pools
            .sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.name.cmp(&b.name)));
        if self.type_key.len() < self.keys.len() {
            self.type_key.resize(self.keys.len(), false);
        }
        Ok(())
    }

    pub(super) fn pool_by_name(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    pub(super) fn prepare_slots(&mut self, snap: &Snapshot) -> Result<(), ModelError> {
        let mut order: Vec<usize> = (0..snap.nodes.len()).collect();
        order.sort_by(|&a, &b| snap.nodes[a].name.cmp(&snap.nodes[b].name));
        let mut names = BTreeSet::new();
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
            if label(&labels, self.k_host).is_none() {
                let hv = self.vals.id(&n.name);
                labels.push((self.k_host, hv));
                labels.sort_unstable();
            }
            let pool = n
                .labels
                .get(wk::NODEPOOL)
                .and_then(|p| self.pool_by_name(p));
            let mut taints = n.taints.clone();
            if n.initializing {
                let startup: &[Taint] = pool
                    .map(|p| &snap.node_pools[self.pools[p].src].startup_taints[..])
                    .unwrap_or(&[]);
                taints.retain(|t| {
                    !EPHEMERAL_TAINTS.contains(&t.key.as_str()) && !startup.contains(t)
                });
            }
            let capacity = n.capacity.clone().unwrap_or_else(|| n.allocatable.clone());
            if let Some(p) = pool {
                let c = self.rv(&capacity);
                self.pools[p].usage = self.pools[p].usage.add(&c);
                self.pools[p].usage_nodes += 1;
            }
            let alloc = self.rv(&n.allocatable);
            self.slots.to_mut().push(Slot {
                name: n.name.clone(),
                labels,
                taints,
                alloc,
                cordoned: n.unschedulable,
            });
        }
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
                .types
                .iter()
                .position(|t| t.name == c.instance_type)
                .ok_or_else(|| {
                    e(
                        "instanceType",
                        format!("unknown instance type {:?}", c.instance_type),
                    )
                })?;
            let np = &snap.node_pools[self.pools[p].src];
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
            for &(k, v) in &self.types[t].labels {
                if label(&labels, k).is_none() {
                    labels.push((k, v));
                }
            }
            labels.sort_unstable();
            let cap = self.types[t].cap;
            self.pools[p].usage = self.pools[p].usage.add(&cap);
            self.pools[p].usage_nodes += 1;
            let alloc = self.types[t].alloc.sub(&self.pools[p].overhead);
            self.slots.to_mut().push(Slot {
                name: c.name.clone(),
                labels,
                taints: np.taints.clone(),
                alloc,
                cordoned: false,
            });
        }
        self.n_existing = self.slots.len();
        self.slot_used = Cow::Owned(vec![RV::default(); self.n_existing]);
        self.slot_ports = Cow::Owned(vec![vec![]; self.n_existing]);
        self.live = (0..self.n_existing).collect();
        self.placeable = (0..self.n_existing)
            .filter(|&s| !self.slots[s].cordoned)
            .collect();
        if self.type_key.len() < self.keys.len() {
            self.type_key.resize(self.keys.len(), false);
        }
        Ok(())
    }

    pub(super) fn slot_dom(&self, slot: usize, key: u32) -> Option<u32> {
        if key == self.k_host {
            return Some(slot as u32);
        }
        let v = label(&self.slots[slot].labels, key)?;
        self.dom_of_value(key, v)
    }

    pub(super) fn dom_of_value(&self, key: u32, v: u32) -> Option<u32> {
        if key == self.k_zone {
            self.zone_idx.get(&v).map(|&i| i as u32)
        } else if key == self.k_ct {
            self.ct_idx.get(&v).map(|&i| i as u32)
        } else {
            Some(v)
        }
    }

    /// Whether domain `a` of `key` sorts before `b`: zones and capacity types are numbered in
    /// name order, hostnames never compete; other values compare by name, so no choice depends
    /// on the order strings were interned in.
    pub(super) fn dom_before(&self, key: u32, a: u32, b: u32) -> bool {
        if key == self.k_zone || key == self.k_ct || key == self.k_host {
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
