//! The solver: first-fit-decreasing over existing nodes, NodeClaims opened in this solve, then new
//! NodeClaims from NodePools by weight; each open NodeClaim keeps the set of instance types that
//! still fit. Pure: same input, same output.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use crate::error::{Kind, ModelError};
use crate::model::{
    HostPort, NodeInclusionPolicy, Pod, PodAffinityTerm, Resources, Snapshot, Taint, TaintEffect,
    Toleration, WhenUnsatisfiable, labels as wk,
};
use crate::req::{
    Interner, Labels, ReqSet, Selector, VSet, intern_labels, label, reqset_add, reqset_get,
    reqset_merge,
};
use crate::solution::{
    ClaimOrder, NewClaim, Placement, Reason, Relaxed, Solution, SolveOptions, Target, Unschedulable,
};

pub(crate) mod prepared;

pub(crate) const DIMS: usize = 12;
const BUILTIN: [&str; 4] = ["cpu", "memory", "pods", "ephemeral-storage"];
const EPHEMERAL_TAINTS: [&str; 4] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.cloudprovider.kubernetes.io/uninitialized",
    "karpenter.sh/unregistered",
];

/// A fixed resource vector: cpu, memory, pods, ephemeral-storage, then up to 8 extended resources.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct RV(pub [i64; DIMS]);

impl RV {
    fn add(&self, o: &RV) -> RV {
        let mut r = *self;
        for i in 0..DIMS {
            r.0[i] = r.0[i].saturating_add(o.0[i]);
        }
        r
    }
    fn sub(&self, o: &RV) -> RV {
        let mut r = *self;
        for i in 0..DIMS {
            r.0[i] = r.0[i].saturating_sub(o.0[i]);
        }
        r
    }
    fn le(&self, o: &RV) -> bool {
        (0..DIMS).all(|i| self.0[i] <= o.0[i])
    }
    fn first_over(&self, o: &RV) -> Option<usize> {
        (0..DIMS).find(|&i| self.0[i] > o.0[i])
    }
    fn max(&self, o: &RV) -> RV {
        let mut r = *self;
        for i in 0..DIMS {
            r.0[i] = r.0[i].max(o.0[i]);
        }
        r
    }
    fn min(&self, o: &RV) -> RV {
        let mut r = *self;
        for i in 0..DIMS {
            r.0[i] = r.0[i].min(o.0[i]);
        }
        r
    }
}

/// A set of instance types as a bitset.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize, all: bool) -> Bits {
        let mut v = vec![if all { u64::MAX } else { 0 }; n.div_ceil(64)];
        if all
            && !n.is_multiple_of(64)
            && let Some(last) = v.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        Bits(v)
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn and(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a &= b;
        }
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
    fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        for wi in 0..self.0.len() {
            let mut w = self.0[wi];
            let mut out = w;
            while w != 0 {
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                if !keep(wi * 64 + b) {
                    out &= !(1u64 << b);
                }
            }
            self.0[wi] = out;
        }
    }
}

fn bits_of(mask: u64) -> impl Iterator<Item = usize> {
    let mut w = mask;
    std::iter::from_fn(move || {
        if w == 0 {
            return None;
        }
        let b = w.trailing_zeros() as usize;
        w &= w - 1;
        Some(b)
    })
}

#[derive(Clone)]
struct PType {
    name: String,
    alloc: RV,
    cap: RV,
    labels: Labels,
    /// Per capacity type, the zones with an available offering.
    zc: Vec<u64>,
    /// Available offerings: (zone, capacity type, price).
    offers: Vec<(usize, usize, f64)>,
}

#[derive(Clone)]
struct PPool {
    src: usize,
    name: String,
    weight: i32,
    reqs: ReqSet,
    types: Bits,
    zmask: u64,
    cmask: u64,
    taints: Vec<Taint>,
    overhead: RV,
    max_alloc: RV,
    min_values: Vec<(u32, u32)>,
    limits: Option<RV>,
    limit_nodes: Option<i64>,
    usage: RV,
    usage_nodes: i64,
    reserved: RV,
    claims: i64,
}

/// One requirement alternative compiled against the catalog.
#[derive(Clone)]
struct AltInfo {
    rs: ReqSet,
    types: Bits,
    has_type_keys: bool,
    zmask: u64,
    cmask: u64,
    host_fresh_ok: bool,
    other: ReqSet,
}

/// An existing node or in-flight claim; what changes during a solve (requests used, host ports)
/// is kept beside it in the solver.
#[derive(Clone)]
struct Slot {
    name: String,
    labels: Labels,
    taints: Vec<Taint>,
    alloc: RV,
    cordoned: bool,
}

#[derive(Clone)]
struct Claim {
    pool: usize,
    slot: usize,
    types: Bits,
    zmask: u64,
    cmask: u64,
    reqs: ReqSet,
    used: RV,
    max_alloc: RV,
    min_alloc: RV,
    reserved: RV,
    pods: Vec<usize>,
    ports: Vec<HostPort>,
    /// Topology keys a placed pod fixed the domain of (hostname aside).
    pinned: Vec<u32>,
    alive: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum NsScope {
    All,
    Set(Vec<u32>),
}

impl NsScope {
    fn has(&self, ns: u32) -> bool {
        match self {
            NsScope::All => true,
            NsScope::Set(v) => v.binary_search(&ns).is_ok(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum GKind {
    Spread { skew: i32, min_domains: i32 },
    Affinity,
    Anti,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    kind: GKind,
    key: u32,
    ns: NsScope,
    sel: Selector,
    eligible: Vec<u32>,
}

#[derive(Clone)]
struct Group {
    kind: GKind,
    key: u32,
    ns: NsScope,
    sel: Selector,
    /// Domains that count toward the minimum (spread on keys other than hostname).
    eligible: Vec<u32>,
    counts: Vec<u32>,
    owners: Vec<u32>,
    total: u32,
}

impl Group {
    fn count(&self, d: u32) -> u32 {
        self.counts.get(d as usize).copied().unwrap_or(0)
    }
    fn owners_in(&self, d: u32) -> u32 {
        self.owners.get(d as usize).copied().unwrap_or(0)
    }
    fn bump(v: &mut Vec<u32>, d: u32) {
        let d = d as usize;
        if v.len() <= d {
            v.resize(d + 1, 0);
        }
        v[d] += 1;
    }
}

#[derive(Clone, Copy, Debug)]
enum Soft {
    NodePref(usize),
    Spread(usize),
    Affinity(usize),
    Anti(usize),
    PreferNoSchedule,
}

#[derive(Clone)]
struct Term {
    group: usize,
    /// Position in the relaxation order, None for a hard term.
    soft: Option<usize>,
    self_match: bool,
}

#[derive(Clone)]
struct PPod {
    src: usize,
    ns: u32,
    labels: Labels,
    req: RV,
    hard_alts: Vec<ReqSet>,
    hard_problem: Option<Why>,
    pref_node: Vec<(i32, ReqSet)>,
    spread: Vec<Term>,
    aff: Vec<Term>,
    anti: Vec<Term>,
    member: Vec<usize>,
    ports: Vec<HostPort>,
    soft: Vec<Soft>,
    pns_soft: Option<usize>,
    relaxed: usize,
    eff_alts: Vec<usize>,
}

impl PPod {
    fn active(&self, t: &Term) -> bool {
        t.soft.is_none_or(|p| p >= self.relaxed)
    }
    fn pns_active(&self) -> bool {
        self.pns_soft.is_some_and(|p| p >= self.relaxed)
    }
}

/// Why one candidate was rejected (cheap to build; turned into a `Reason` only for reports).
#[derive(Clone, Debug, PartialEq)]
enum Why {
    Cordoned,
    Taint(Taint),
    Req(u32),
    Volume,
    Exceeds { dim: usize, need: i64, largest: i64 },
    NoFit(RV),
    NoOffering,
    Resource { dim: usize, need: i64, free: i64 },
    Limits(usize),
    MinValues { key: u32, min: u32, left: u32 },
    Spread(usize),
    Affinity(usize),
    Anti(usize),
    InverseAnti(usize),
    TopoKey(u32),
    Port(u16),
    Conflict,
}

enum DomOpts {
    Fixed(Option<u32>),
    Choice(Vec<(u32, f64)>),
}

/// A tentative change to a NodeClaim.
struct Trial {
    types: Bits,
    zmask: u64,
    cmask: u64,
    reqs: ReqSet,
    used: RV,
    reserved: RV,
    doms: Vec<(u32, Option<u32>)>,
}

const LIMIT_NODES: usize = usize::MAX;

#[derive(Clone)]
pub(crate) struct Solver<'a> {
    /// The pods of this solve; `PPod::src` indexes it.
    pod_src: Vec<&'a Pod>,
    opts: SolveOptions,
    keys: Interner<'a>,
    vals: Interner<'a>,
    k_zone: u32,
    k_ct: u32,
    k_host: u32,
    k_pool: u32,
    dims: Vec<String>,
    zones: Vec<u32>,
    zone_idx: FxHashMap<u32, usize>,
    cts: Vec<u32>,
    ct_idx: FxHashMap<u32, usize>,
    type_key: Vec<bool>,
    types: Cow<'a, [PType]>,
    pools: Vec<PPool>,
    slots: Cow<'a, [Slot]>,
    slot_used: Cow<'a, [RV]>,
    slot_ports: Cow<'a, [Vec<HostPort>]>,
    n_existing: usize,
    /// The existing slots pods may go to in this solve, in order (all of them unless a prepared
    /// cluster took some nodes away).
    live: Vec<usize>,
    /// The live slots that are not cordoned: where `place` looks.
    placeable: Vec<usize>,
    claims: Vec<Claim>,
    open: BTreeSet<(usize, usize)>,
    alts: Vec<AltInfo>,
    alt_ids: FxHashMap<ReqSet, usize>,
    groups: Vec<Group>,
    group_ids: FxHashMap<GroupKey, usize>,
    pods: Vec<PPod>,
    domain_cache: FxHashMap<(u32, Vec<usize>), Vec<u32>>,
    placements: Vec<(usize, usize)>,
    ns_labels: FxHashMap<String, Labels>,
    pub(crate) claim_order: ClaimOrder,
}

fn dims_err(kind: Kind, name: &str, field: &str, why: String) -> ModelError {
    ModelError::new(kind, name, field, why)
}

/// Resource dimensions of a solve: the built-ins plus the extended resources that the given
/// (pending) pods request or that NodePool limits name, sorted.
pub(crate) fn solve_dims<'p>(
    pods: impl Iterator<Item = &'p Pod>,
    node_pools: &[crate::model::NodePool],
) -> Result<Vec<String>, ModelError> {
    let mut dims: Vec<String> = BUILTIN.iter().map(|s| s.to_string()).collect();
    let mut ext = BTreeSet::new();
    for p in pods {
        for (k, v) in p.effective_requests().iter() {
            if v > 0 && !BUILTIN.contains(&k) {
                ext.insert(k.to_string());
            }
        }
    }
    for np in node_pools {
        if let Some(l) = &np.limits {
            for (k, _) in l.iter() {
                if !BUILTIN.contains(&k) && k != "nodes" {
                    ext.insert(k.to_string());
                }
            }
        }
    }
    if ext.len() > DIMS - BUILTIN.len() {
        return Err(ModelError::new(
            Kind::Snapshot,
            "",
            "pods[].requests",
            format!(
                "{} distinct extended resources requested; at most {} per solve",
                ext.len(),
                DIMS - 4
            ),
        ));
    }
    dims.extend(ext);
    Ok(dims)
}

impl<'a> Solver<'a> {
    pub(crate) fn new(snap: &'a Snapshot, opts: &SolveOptions) -> Result<Self, ModelError> {
        // Resource dimensions: the built-ins plus extended resources that pending pods request or
        // that NodePool limits name.
        let dims = solve_dims(
            snap.pods.iter().filter(|p| p.node_name.is_none()),
            &snap.node_pools,
        )?;
        let mut s = Solver::prepare_cluster(snap, opts, dims)?;
        s.prepare_pods(snap)?;
        Ok(s)
    }

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

    fn rv(&self, r: &Resources) -> RV {
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

    fn resources(&self, v: &RV) -> Resources {
        let mut r = Resources::default();
        for (i, name) in self.dims.iter().enumerate() {
            if v.0[i] != 0 {
                r.set(name, v.0[i]);
            }
        }
        r
    }

    fn check_nonneg(
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

    fn zone_id(&mut self, z: &str) -> Result<usize, ModelError> {
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

    fn ct_id(&mut self, c: &str) -> Result<usize, ModelError> {
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

    fn prepare_types(&mut self, snap: &Snapshot, k_itype: u32) -> Result<(), ModelError> {
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

    fn is_type_key(&self, k: u32) -> bool {
        self.type_key.get(k as usize).copied().unwrap_or(false)
    }

    /// Types whose labels satisfy the type-key part of a requirement set.
    fn type_mask(&self, rs: &ReqSet) -> (Bits, bool) {
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

    fn zone_mask(&self, v: Option<&VSet>) -> u64 {
        let mut m = 0;
        for (i, &z) in self.zones.iter().enumerate() {
            if v.is_none_or(|v| v.allows(Some(z), &self.vals)) {
                m |= 1 << i;
            }
        }
        m
    }

    fn ct_mask(&self, v: Option<&VSet>) -> u64 {
        let mut m = 0;
        for (i, &c) in self.cts.iter().enumerate() {
            if v.is_none_or(|v| v.allows(Some(c), &self.vals)) {
                m |= 1 << i;
            }
        }
        m
    }

    fn offer_ok(&self, t: usize, zmask: u64, cmask: u64) -> bool {
        bits_of(cmask).any(|c| self.types[t].zc[c] & zmask != 0)
    }

    fn prepare_pools(&mut self, snap: &Snapshot) -> Result<(), ModelError> {
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

    fn pool_by_name(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    fn prepare_slots(&mut self, snap: &Snapshot) -> Result<(), ModelError> {
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

    fn slot_dom(&self, slot: usize, key: u32) -> Option<u32> {
        if key == self.k_host {
            return Some(slot as u32);
        }
        let v = label(&self.slots[slot].labels, key)?;
        self.dom_of_value(key, v)
    }

    fn dom_of_value(&self, key: u32, v: u32) -> Option<u32> {
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
    fn dom_before(&self, key: u32, a: u32, b: u32) -> bool {
        if key == self.k_zone || key == self.k_ct || key == self.k_host {
            a < b
        } else {
            self.vals.name(a) < self.vals.name(b)
        }
    }

    /// The key with the smallest name (reports name one of several unmet keys the same way
    /// whatever the interning order).
    fn first_key(&self, keys: impl Iterator<Item = u32>) -> Option<u32> {
        keys.min_by(|&a, &b| self.keys.name(a).cmp(self.keys.name(b)))
    }

    fn alt_id(&mut self, rs: &ReqSet) -> usize {
        if let Some(&i) = self.alt_ids.get(rs) {
            return i;
        }
        let (types, has_type_keys) = self.type_mask(rs);
        let zmask = self.zone_mask(reqset_get(rs, self.k_zone));
        let cmask = self.ct_mask(reqset_get(rs, self.k_ct));
        let host_fresh_ok = reqset_get(rs, self.k_host).is_none_or(|v| v.allows_fresh_value());
        let other: ReqSet = rs
            .iter()
            .filter(|(k, _)| {
                !self.is_type_key(*k) && *k != self.k_zone && *k != self.k_ct && *k != self.k_host
            })
            .cloned()
            .collect();
        let id = self.alts.len();
        self.alts.push(AltInfo {
            rs: rs.clone(),
            types,
            has_type_keys,
            zmask,
            cmask,
            host_fresh_ok,
            other,
        });
        self.alt_ids.insert(rs.clone(), id);
        id
    }

    fn ns_scope(&mut self, term: &PodAffinityTerm, own: &str) -> NsScope {
        let mut set: Vec<u32> = term.namespaces.iter().map(|n| self.vals.id(n)).collect();
        match &term.namespace_selector {
            Some(sel) if sel.match_labels.is_empty() && sel.match_expressions.is_empty() => {
                return NsScope::All;
            }
            Some(sel) => {
                let compiled = Selector::compile(Some(sel), &mut self.keys, &mut self.vals);
                let mut names: Vec<&String> = self.ns_labels.keys().collect();
                names.sort();
                let picked: Vec<String> = names
                    .into_iter()
                    .filter(|n| compiled.matches(&self.ns_labels[*n]))
                    .cloned()
                    .collect();
                for n in picked {
                    set.push(self.vals.id(&n));
                }
            }
            None if set.is_empty() => set.push(self.vals.id(own)),
            None => {}
        }
        set.sort_unstable();
        set.dedup();
        NsScope::Set(set)
    }

    fn group(&mut self, key: GroupKey) -> usize {
        if let Some(&g) = self.group_ids.get(&key) {
            return g;
        }
        let g = self.groups.len();
        self.groups.push(Group {
            kind: key.kind,
            key: key.key,
            ns: key.ns.clone(),
            sel: key.sel.clone(),
            eligible: key.eligible.clone(),
            counts: vec![],
            owners: vec![],
            total: 0,
        });
        self.group_ids.insert(key, g);
        g
    }

    /// Domains of `key` a pod with these alternatives could reach (None: no node-affinity filter).
    fn eligible_domains(&mut self, key: u32, alts: Option<&[usize]>) -> Vec<u32> {
        let ck = (
            key,
            alts.map(|a| a.to_vec()).unwrap_or_else(|| vec![usize::MAX]),
        );
        if let Some(d) = self.domain_cache.get(&ck) {
            return d.clone();
        }
        let mut out = BTreeSet::new();
        for &s in &self.live {
            let ok = match alts {
                None => true,
                Some(a) => a.iter().any(|&ai| {
                    self.alts[ai]
                        .rs
                        .iter()
                        .all(|(k, v)| v.allows(label(&self.slots[s].labels, *k), &self.vals))
                }),
            };
            if ok && let Some(d) = self.slot_dom(s, key) {
                out.insert(d);
            }
        }
        if self.opts.allow_new_nodes {
            for p in 0..self.pools.len() {
                let alt_list: Vec<Option<usize>> = match alts {
                    None => vec![None],
                    Some(a) => a.iter().map(|&x| Some(x)).collect(),
                };
                for ai in alt_list {
                    let pool = &self.pools[p];
                    let mut types = pool.types.clone();
                    let (mut zm, mut cm) = (pool.zmask, pool.cmask);
                    let mut reqs = pool.reqs.clone();
                    if let Some(ai) = ai {
                        let a = &self.alts[ai];
                        types.and(&a.types);
                        zm &= a.zmask;
                        cm &= a.cmask;
                        reqs = reqset_merge(&reqs, &a.other, &self.vals);
                        if reqs.iter().any(|(k, v)| v.is_empty() && *k != self.k_host) {
                            continue;
                        }
                    }
                    types.retain(|t| self.offer_ok(t, zm, cm));
                    if types.is_empty() {
                        continue;
                    }
                    if key == self.k_zone || key == self.k_ct {
                        for t in types.iter() {
                            for c in bits_of(cm) {
                                let zs = self.types[t].zc[c] & zm;
                                if key == self.k_zone {
                                    out.extend(bits_of(zs).map(|z| z as u32));
                                } else if zs != 0 {
                                    out.insert(c as u32);
                                }
                            }
                        }
                    } else if self.is_type_key(key) {
                        for t in types.iter() {
                            if let Some(v) = label(&self.types[t].labels, key) {
                                out.insert(v);
                            }
                        }
                    } else if let Some(v) = reqset_get(&reqs, key).and_then(|v| v.single()) {
                        out.insert(v);
                    }
                }
            }
        }
        let v: Vec<u32> = out.into_iter().collect();
        self.domain_cache.insert(ck, v.clone());
        v
    }

    /// Rejects pods without a name, duplicates and negative quantities.
    fn check_pods<'p>(&self, pods: impl Iterator<Item = &'p Pod>) -> Result<(), ModelError> {
        let mut seen = std::collections::HashSet::new();
        for p in pods {
            if p.name.is_empty() {
                return Err(ModelError::new(
                    Kind::Pod,
                    format!("{}/", p.namespace),
                    "name",
                    "empty",
                ));
            }
            if !seen.insert((p.namespace.as_str(), p.name.as_str())) {
                return Err(ModelError::new(
                    Kind::Pod,
                    p.key().to_string(),
                    "name",
                    "duplicate pod",
                ));
            }
            self.check_pod_quantities(p)?;
        }
        Ok(())
    }

    fn check_pod_quantities(&self, p: &Pod) -> Result<(), ModelError> {
        let negative = |r: &Resources| r.iter().any(|(_, v)| v < 0);
        if !negative(&p.requests)
            && !negative(&p.overhead)
            && !p.init_containers.iter().any(negative)
        {
            return Ok(()); // the common case, without naming the pod
        }
        for (f, r) in [("requests", &p.requests), ("overhead", &p.overhead)] {
            self.check_nonneg(Kind::Pod, &p.key().to_string(), f, r)?;
        }
        for r in &p.init_containers {
            self.check_nonneg(Kind::Pod, &p.key().to_string(), "initContainers", r)?;
        }
        Ok(())
    }

    fn prepare_pods(&mut self, snap: &'a Snapshot) -> Result<(), ModelError> {
        self.check_pods(snap.pods.iter())?;
        let slot_of: FxHashMap<String, usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        // Pending pods first (groups come from them), then bound pods fill counts.
        self.prepare_pending(snap.pods.iter().filter(|p| p.node_name.is_none()).collect())?;
        // Bound pods: usage, ports, topology counts and anti-affinity owners.
        for p in &snap.pods {
            let Some(slot) = p.node_name.as_deref().and_then(|n| slot_of.get(n).copied()) else {
                continue;
            };
            let r = self.rv(&p.effective_requests());
            self.slot_used.to_mut()[slot] = self.slot_used[slot].add(&r);
            self.slot_ports.to_mut()[slot].extend(p.host_ports.iter().cloned());
            if self.groups.is_empty() && p.affinity.pod_anti_affinity.required.is_empty() {
                continue; // no topology group to count it in, none of its own to record
            }
            let ns = self.vals.id(&p.namespace);
            let labels = intern_labels(&mut self.keys, &mut self.vals, &p.labels);
            for g in 0..self.groups.len() {
                let grp = &self.groups[g];
                if grp.ns.has(ns)
                    && grp.sel.matches(&labels)
                    && let Some(d) = self.slot_dom(slot, grp.key)
                {
                    Group::bump(&mut self.groups[g].counts, d);
                    self.groups[g].total += 1;
                }
            }
            for term in &p.affinity.pod_anti_affinity.required {
                let (key, ns_scope, sel) = self.anti_term(term, &p.namespace);
                self.own_anti(slot, key, ns_scope, sel);
            }
        }
        self.set_members();
        Ok(())
    }

    /// A bound pod's required anti-affinity term, compiled: topology key, namespaces, selector.
    fn anti_term(&mut self, term: &PodAffinityTerm, ns: &str) -> (u32, NsScope, Selector) {
        let key = self.keys.id(&term.topology_key);
        let ns_scope = self.ns_scope(term, ns);
        let sel = Selector::compile(term.label_selector.as_ref(), &mut self.keys, &mut self.vals);
        (key, ns_scope, sel)
    }

    /// Records that a pod bound to `slot` keeps the pods its anti-affinity term selects out of
    /// its domain.
    fn own_anti(&mut self, slot: usize, key: u32, ns: NsScope, sel: Selector) {
        let g = self.group(GroupKey {
            kind: GKind::Anti,
            key,
            ns,
            sel,
            eligible: vec![],
        });
        if let Some(d) = self.slot_dom(slot, key) {
            Group::bump(&mut self.groups[g].owners, d);
        }
    }

    /// Prepares the pending pods in placement order: priority first, then CPU and memory
    /// descending, then namespace/name.
    fn prepare_pending(&mut self, pending: Vec<&'a Pod>) -> Result<(), ModelError> {
        let mut keyed: Vec<(Resources, &'a Pod)> = pending
            .into_iter()
            .map(|p| (p.effective_requests(), p))
            .collect();
        keyed.sort_by(|(ra, pa), (rb, pb)| {
            pb.priority
                .cmp(&pa.priority)
                .then(rb.cpu_millis.cmp(&ra.cpu_millis))
                .then(rb.memory_bytes.cmp(&ra.memory_bytes))
                .then(pa.namespace.cmp(&pb.namespace))
                .then(pa.name.cmp(&pb.name))
        });
        self.pod_src = keyed.iter().map(|(_, p)| *p).collect();
        for (i, (eff, _)) in keyed.iter().enumerate() {
            let pp = self.prepare_pod(i, eff)?;
            self.pods.push(pp);
        }
        // Untolerated PreferNoSchedule taints anywhere make "tolerate them" a relaxable step.
        let pns: Vec<Taint> = self
            .live
            .iter()
            .flat_map(|&s| self.slots[s].taints.iter())
            .chain(self.pools.iter().flat_map(|p| p.taints.iter()))
            .filter(|t| t.effect == TaintEffect::PreferNoSchedule)
            .cloned()
            .collect();
        for pi in 0..self.pods.len() {
            let tol = &self.pod_src[self.pods[pi].src].tolerations;
            if pns.iter().any(|t| !crate::model::tolerated(tol, t)) {
                let pos = self.pods[pi].soft.len();
                self.pods[pi].soft.push(Soft::PreferNoSchedule);
                self.pods[pi].pns_soft = Some(pos);
            }
            self.refresh_alts(pi);
        }
        Ok(())
    }

    /// Which groups count each pending pod.
    fn set_members(&mut self) {
        for pi in 0..self.pods.len() {
            let p = &self.pods[pi];
            let member: Vec<usize> = (0..self.groups.len())
                .filter(|&g| self.groups[g].ns.has(p.ns) && self.groups[g].sel.matches(&p.labels))
                .collect();
            self.pods[pi].member = member;
        }
    }

    fn prepare_pod(&mut self, src: usize, eff: &Resources) -> Result<PPod, ModelError> {
        let p: &'a Pod = self.pod_src[src];
        let name = p.key().to_string();
        let e = |field: &str, why: String| ModelError::new(Kind::Pod, &name, field, why);
        let ns = self.vals.id(&p.namespace);
        let labels = intern_labels(&mut self.keys, &mut self.vals, &p.labels);
        let req = self.rv(eff);
        let mut base: ReqSet = vec![];
        for (k, v) in &p.node_selector {
            let (k, v) = (self.keys.id(k), self.vals.id(v));
            reqset_add(&mut base, k, VSet::only(v), &self.vals);
        }
        let mut hard_problem = None;
        for (vi, vol) in p.volumes.iter().enumerate() {
            if vol.zones.is_empty() {
                continue;
            }
            let r = crate::model::Requirement {
                key: wk::ZONE.into(),
                operator: crate::model::Operator::In,
                values: vol.zones.clone(),
                min_values: None,
            };
            let v = VSet::from_req(&r, &mut self.vals)
                .map_err(|w| e(&format!("volumes[{vi}].zones"), w))?;
            reqset_add(&mut base, self.k_zone, v, &self.vals);
            if reqset_get(&base, self.k_zone).is_some_and(|v| v.is_empty()) {
                hard_problem = Some(Why::Volume);
            }
        }
        let compile_term = |s: &mut Self,
                            field: &str,
                            t: &crate::model::NodeSelectorTerm|
         -> Result<ReqSet, ModelError> {
            let mut rs = vec![];
            for (i, r) in t.match_expressions.iter().enumerate() {
                let v = VSet::from_req(r, &mut s.vals)
                    .map_err(|w| e(&format!("{field}.matchExpressions[{i}]"), w))?;
                let k = s.keys.id(&r.key);
                reqset_add(&mut rs, k, v, &s.vals);
            }
            Ok(rs)
        };
        let na = &p.affinity.node_affinity;
        let mut hard_alts = vec![];
        if na.required.is_empty() {
            hard_alts.push(base.clone());
        } else {
            for (ti, t) in na.required.iter().enumerate() {
                let rs = compile_term(self, &format!("affinity.nodeAffinity.required[{ti}]"), t)?;
                hard_alts.push(reqset_merge(&base, &rs, &self.vals));
            }
        }
        let before = hard_alts.len();
        hard_alts.retain(|rs| rs.iter().all(|(_, v)| !v.is_empty()));
        if hard_alts.is_empty() && hard_problem.is_none() && before > 0 {
            let k = self
                .first_key(base.iter().map(|(k, _)| *k))
                .unwrap_or(self.k_zone);
            hard_problem = Some(Why::Req(k));
        }
        let mut pref_node = vec![];
        for (ti, t) in na.preferred.iter().enumerate() {
            let rs = compile_term(
                self,
                &format!("affinity.nodeAffinity.preferred[{ti}]"),
                &t.preference,
            )?;
            pref_node.push((t.weight, rs));
        }
        let mut soft = vec![];
        let mut order: Vec<usize> = (0..pref_node.len()).collect();
        order.sort_by_key(|&i| (pref_node[i].0, i));
        soft.extend(order.into_iter().map(Soft::NodePref));

        // Domains a spread constraint counts come from the pod's required node constraints.
        let hard_alt_ids: Vec<usize> = hard_alts.iter().map(|rs| self.alt_id(rs)).collect();
        let mut spread = vec![];
        for (ci, c) in p.topology_spread_constraints.iter().enumerate() {
            if c.max_skew < 1 {
                return Err(e(
                    &format!("topologySpreadConstraints[{ci}].maxSkew"),
                    format!("{} < 1", c.max_skew),
                ));
            }
            if c.topology_key.is_empty() {
                return Err(e(
                    &format!("topologySpreadConstraints[{ci}].topologyKey"),
                    "empty".into(),
                ));
            }
            let key = self.keys.id(&c.topology_key);
            let mut sel = c.label_selector.clone();
            if let Some(s) = sel.as_mut() {
                for k in &c.match_label_keys {
                    if let Some(v) = p.labels.get(k) {
                        s.match_labels.insert(k.clone(), v.clone());
                    }
                }
            }
            let sel = Selector::compile(sel.as_ref(), &mut self.keys, &mut self.vals);
            let eligible = if key == self.k_host {
                vec![]
            } else {
                let alts = match c.node_affinity_policy {
                    NodeInclusionPolicy::Honor => Some(hard_alt_ids.as_slice()),
                    NodeInclusionPolicy::Ignore => None,
                };
                self.eligible_domains(key, alts)
            };
            let kind = GKind::Spread {
                skew: c.max_skew,
                min_domains: c.min_domains.unwrap_or(1).max(1),
            };
            let g = self.group(GroupKey {
                kind,
                key,
                ns: NsScope::Set(vec![ns]),
                sel,
                eligible,
            });
            let soft_pos = match c.when_unsatisfiable {
                WhenUnsatisfiable::DoNotSchedule => None,
                WhenUnsatisfiable::ScheduleAnyway => {
                    soft.push(Soft::Spread(spread.len()));
                    Some(soft.len() - 1)
                }
            };
            spread.push(Term {
                group: g,
                soft: soft_pos,
                self_match: false,
            });
        }
        let terms = |s: &mut Self,
                     kind: GKind,
                     pa: &crate::model::PodAffinity,
                     field: &str,
                     soft: &mut Vec<Soft>|
         -> Result<Vec<Term>, ModelError> {
            let mut out = vec![];
            let mut prefs: Vec<(i32, usize, &PodAffinityTerm)> = pa
                .preferred
                .iter()
                .enumerate()
                .map(|(i, w)| (w.weight, i, &w.pod_affinity_term))
                .collect();
            prefs.sort_by_key(|(w, i, _)| (*w, *i));
            let all = pa
                .required
                .iter()
                .map(|t| (None, t))
                .chain(prefs.iter().map(|(_, i, t)| (Some(*i), *t)));
            for (pref, t) in all {
                if t.topology_key.is_empty() {
                    return Err(e(&format!("{field}.topologyKey"), "empty".into()));
                }
                let key = s.keys.id(&t.topology_key);
                let nss = s.ns_scope(t, &p.namespace);
                let sel = Selector::compile(t.label_selector.as_ref(), &mut s.keys, &mut s.vals);
                let self_match = nss.has(ns) && sel.matches(&labels);
                let g = s.group(GroupKey {
                    kind,
                    key,
                    ns: nss,
                    sel,
                    eligible: vec![],
                });
                let soft_pos = pref.map(|_| {
                    soft.push(match kind {
                        GKind::Affinity => Soft::Affinity(out.len()),
                        _ => Soft::Anti(out.len()),
                    });
                    soft.len() - 1
                });
                out.push(Term {
                    group: g,
                    soft: soft_pos,
                    self_match,
                });
            }
            Ok(out)
        };
        let aff = terms(
            self,
            GKind::Affinity,
            &p.affinity.pod_affinity,
            "affinity.podAffinity",
            &mut soft,
        )?;
        let anti = terms(
            self,
            GKind::Anti,
            &p.affinity.pod_anti_affinity,
            "affinity.podAntiAffinity",
            &mut soft,
        )?;
        Ok(PPod {
            src,
            ns,
            labels,
            req,
            hard_alts,
            hard_problem,
            pref_node,
            spread,
            aff,
            anti,
            member: vec![],
            ports: p.host_ports.clone(),
            soft,
            pns_soft: None,
            relaxed: 0,
            eff_alts: vec![],
        })
    }

    /// Recomputes the pod's effective alternatives: each required term ANDed with the preferred
    /// node terms still in force.
    fn refresh_alts(&mut self, pi: usize) {
        let p = &self.pods[pi];
        let mut active_prefs: ReqSet = vec![];
        for (pos, s) in p.soft.iter().enumerate() {
            if let Soft::NodePref(i) = s
                && pos >= p.relaxed
            {
                active_prefs = reqset_merge(&active_prefs, &p.pref_node[*i].1, &self.vals);
            }
        }
        let merged: Vec<ReqSet> = p
            .hard_alts
            .iter()
            .map(|a| reqset_merge(a, &active_prefs, &self.vals))
            .filter(|rs| rs.iter().all(|(_, v)| !v.is_empty()))
            .collect();
        let ids: Vec<usize> = merged.iter().map(|rs| self.alt_id(rs)).collect();
        self.pods[pi].eff_alts = ids;
    }

    // ---------------------------------------------------------------------------------------
    // Checks shared by every kind of candidate.

    fn taint_block(&self, pi: usize, taints: &[Taint]) -> Option<Taint> {
        let p = &self.pods[pi];
        let tol: &[Toleration] = &self.pod_src[p.src].tolerations;
        taints
            .iter()
            .find(|t| {
                (t.effect != TaintEffect::PreferNoSchedule || p.pns_active())
                    && !crate::model::tolerated(tol, t)
            })
            .cloned()
    }

    fn port_block(&self, pi: usize, used: &[HostPort]) -> Option<u16> {
        self.pods[pi]
            .ports
            .iter()
            .find(|hp| used.iter().any(|u| u.conflicts(hp)))
            .map(|hp| hp.port)
    }

    /// Minimum count over the domains a spread group counts.
    fn spread_min(&self, g: usize) -> u32 {
        let grp = &self.groups[g];
        let GKind::Spread { min_domains, .. } = grp.kind else {
            return 0;
        };
        if grp.key == self.k_host {
            if self.opts.allow_new_nodes && !self.pools.is_empty() {
                return 0;
            }
            return self
                .live
                .iter()
                .map(|&s| grp.count(s as u32))
                .min()
                .unwrap_or(0);
        }
        if (grp.eligible.len() as i32) < min_domains {
            return 0;
        }
        grp.eligible
            .iter()
            .map(|&d| grp.count(d))
            .min()
            .unwrap_or(0)
    }

    /// Keys the pod's placement must pin down, with the groups that care.
    fn topo_keys(&self, pi: usize) -> Vec<u32> {
        let p = &self.pods[pi];
        let mut keys: Vec<u32> = vec![];
        let mut add = |k: u32| {
            if !keys.contains(&k) {
                keys.push(k);
            }
        };
        for t in p.spread.iter().chain(&p.aff).chain(&p.anti) {
            if p.active(t) {
                add(self.groups[t.group].key);
            }
        }
        for &g in &p.member {
            add(self.groups[g].key);
        }
        keys
    }

    /// Picks a domain per topology key that satisfies every constraint, given the options a
    /// candidate offers.
    fn topo_choose(
        &self,
        pi: usize,
        opts: &mut dyn FnMut(&Self, u32) -> Result<DomOpts, Why>,
    ) -> Result<Vec<(u32, Option<u32>)>, Why> {
        let p = &self.pods[pi];
        let keys = self.topo_keys(pi);
        let mut chosen = Vec::with_capacity(keys.len());
        for key in keys {
            let o = opts(self, key)?;
            let (mut cands, fixed_none) = match o {
                DomOpts::Fixed(None) => (vec![], true),
                DomOpts::Fixed(Some(d)) => (vec![(d, 0.0)], false),
                DomOpts::Choice(v) => (v, false),
            };
            if fixed_none {
                // The node lacks the label: spread and affinity on it cannot hold, anti-affinity can.
                for t in p.spread.iter().chain(&p.aff) {
                    if p.active(t) && self.groups[t.group].key == key {
                        return Err(match self.groups[t.group].kind {
                            GKind::Affinity => Why::Affinity(t.group),
                            _ => Why::Spread(t.group),
                        });
                    }
                }
                chosen.push((key, None));
                continue;
            }
            let mut why = None;
            for t in &p.spread {
                let g = &self.groups[t.group];
                if !p.active(t) || g.key != key {
                    continue;
                }
                let GKind::Spread { skew, .. } = g.kind else {
                    continue;
                };
                let min = self.spread_min(t.group);
                let before = cands.len();
                cands.retain(|&(d, _)| (g.count(d) + 1) as i64 - min as i64 <= skew as i64);
                if cands.is_empty() && before > 0 {
                    why = Some(Why::Spread(t.group));
                }
            }
            for t in &p.aff {
                let g = &self.groups[t.group];
                if !p.active(t) || g.key != key {
                    continue;
                }
                if g.total == 0 && t.self_match {
                    continue;
                }
                let before = cands.len();
                cands.retain(|&(d, _)| g.count(d) > 0);
                if cands.is_empty() && before > 0 {
                    why = Some(Why::Affinity(t.group));
                }
            }
            for t in &p.anti {
                let g = &self.groups[t.group];
                if !p.active(t) || g.key != key {
                    continue;
                }
                let before = cands.len();
                cands.retain(|&(d, _)| g.count(d) == 0);
                if cands.is_empty() && before > 0 {
                    why = Some(Why::Anti(t.group));
                }
            }
            for &gi in &p.member {
                let g = &self.groups[gi];
                if g.kind != GKind::Anti || g.key != key || g.owners.is_empty() {
                    continue;
                }
                let before = cands.len();
                cands.retain(|&(d, _)| g.owners_in(d) == 0);
                if cands.is_empty() && before > 0 {
                    why = Some(Why::InverseAnti(gi));
                }
            }
            if cands.is_empty() {
                return Err(why.unwrap_or(Why::TopoKey(key)));
            }
            let pick = if cands.len() == 1 {
                cands[0].0
            } else {
                // Balance: the pod's own spread groups first, then the spread groups it counts in;
                // then the cheaper domain, then the lower index.
                let own: Vec<usize> = p
                    .spread
                    .iter()
                    .filter(|t| p.active(t) && self.groups[t.group].key == key)
                    .map(|t| t.group)
                    .collect();
                let counted: Vec<usize> = p
                    .member
                    .iter()
                    .copied()
                    .filter(|&g| {
                        self.groups[g].key == key
                            && matches!(self.groups[g].kind, GKind::Spread { .. })
                    })
                    .collect();
                let score = |d: u32| -> (u64, u64) {
                    let a: u64 = own.iter().map(|&g| self.groups[g].count(d) as u64).sum();
                    let b: u64 = counted
                        .iter()
                        .map(|&g| self.groups[g].count(d) as u64)
                        .sum();
                    (a, b)
                };
                let mut best = cands[0];
                let mut best_score = score(best.0);
                for &c in &cands[1..] {
                    let sc = score(c.0);
                    if sc < best_score
                        || (sc == best_score
                            && (c.1 < best.1
                                || (c.1 == best.1 && self.dom_before(key, c.0, best.0))))
                    {
                        best = c;
                        best_score = sc;
                    }
                }
                best.0
            };
            chosen.push((key, Some(pick)));
        }
        Ok(chosen)
    }

    /// Cheap rejection on topology keys whose domain a NodeClaim already has fixed (its
    /// hostname, and zone or capacity type once pinned), before any set is cloned.
    fn quick_topo(&self, pi: usize, c: &Claim) -> Result<(), Why> {
        let p = &self.pods[pi];
        let fixed = |key: u32| -> Option<u32> {
            if key == self.k_host {
                Some(c.slot as u32)
            } else if key == self.k_zone && c.zmask.count_ones() == 1 {
                Some(c.zmask.trailing_zeros())
            } else if key == self.k_ct && c.cmask.count_ones() == 1 {
                Some(c.cmask.trailing_zeros())
            } else {
                None
            }
        };
        for t in &p.anti {
            let g = &self.groups[t.group];
            if p.active(t) && fixed(g.key).is_some_and(|d| g.count(d) > 0) {
                return Err(Why::Anti(t.group));
            }
        }
        for &gi in &p.member {
            let g = &self.groups[gi];
            if g.kind == GKind::Anti && fixed(g.key).is_some_and(|d| g.owners_in(d) > 0) {
                return Err(Why::InverseAnti(gi));
            }
        }
        for t in &p.spread {
            let g = &self.groups[t.group];
            let GKind::Spread { skew, .. } = g.kind else {
                continue;
            };
            if !p.active(t) {
                continue;
            }
            if let Some(d) = fixed(g.key)
                && (g.count(d) + 1) as i64 - self.spread_min(t.group) as i64 > skew as i64
            {
                return Err(Why::Spread(t.group));
            }
        }
        for t in &p.aff {
            let g = &self.groups[t.group];
            if p.active(t)
                && !(g.total == 0 && t.self_match)
                && fixed(g.key).is_some_and(|d| g.count(d) == 0)
            {
                return Err(Why::Affinity(t.group));
            }
        }
        Ok(())
    }

    fn record(&mut self, pi: usize, doms: &[(u32, Option<u32>)]) {
        let dom = |k: u32| doms.iter().find(|(kk, _)| *kk == k).and_then(|(_, d)| *d);
        let member = std::mem::take(&mut self.pods[pi].member);
        for &g in &member {
            if let Some(d) = dom(self.groups[g].key) {
                Group::bump(&mut self.groups[g].counts, d);
                self.groups[g].total += 1;
            }
        }
        self.pods[pi].member = member;
        let owned: Vec<usize> = self.pods[pi]
            .anti
            .iter()
            .filter(|t| t.soft.is_none())
            .map(|t| t.group)
            .collect();
        for g in owned {
            if let Some(d) = dom(self.groups[g].key) {
                Group::bump(&mut self.groups[g].owners, d);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Existing nodes.

    fn try_slot(&self, pi: usize, s: usize) -> Result<Vec<(u32, Option<u32>)>, Why> {
        let slot = &self.slots[s];
        let p = &self.pods[pi];
        if slot.cordoned {
            return Err(Why::Cordoned);
        }
        let used = &self.slot_used[s];
        let need = used.add(&p.req);
        if let Some(d) = need.first_over(&slot.alloc) {
            return Err(Why::Resource {
                dim: d,
                need: p.req.0[d],
                free: slot.alloc.0[d] - used.0[d],
            });
        }
        if let Some(t) = self.taint_block(pi, &slot.taints) {
            return Err(Why::Taint(t));
        }
        if let Some(w) = &p.hard_problem {
            return Err(w.clone());
        }
        if p.eff_alts.is_empty() {
            return Err(Why::Conflict);
        }
        let holds = |ai: usize| {
            self.alts[ai]
                .rs
                .iter()
                .all(|(k, v)| v.allows(label(&slot.labels, *k), &self.vals))
        };
        if !p.eff_alts.iter().any(|&ai| holds(ai)) {
            // Reported: the first alternative's unmet key with the smallest name.
            let bad = self.alts[p.eff_alts[0]]
                .rs
                .iter()
                .filter(|(k, v)| !v.allows(label(&slot.labels, *k), &self.vals))
                .map(|(k, _)| *k);
            return Err(Why::Req(self.first_key(bad).unwrap_or(self.k_zone)));
        }
        if let Some(port) = self.port_block(pi, &self.slot_ports[s]) {
            return Err(Why::Port(port));
        }
        self.topo_choose(pi, &mut |s2: &Self, key| {
            Ok(DomOpts::Fixed(s2.slot_dom(s, key)))
        })
    }

    fn commit_slot(&mut self, pi: usize, s: usize, doms: Vec<(u32, Option<u32>)>) {
        let req = self.pods[pi].req;
        self.slot_used.to_mut()[s] = self.slot_used[s].add(&req);
        if !self.pods[pi].ports.is_empty() {
            let ports = self.pods[pi].ports.clone();
            self.slot_ports.to_mut()[s].extend(ports);
        }
        self.record(pi, &doms);
        self.placements.push((pi, s));
    }

    // ---------------------------------------------------------------------------------------
    // NodeClaims.

    fn fresh_claim(&self, pool: usize) -> Claim {
        let pp = &self.pools[pool];
        let mut min_alloc = RV([i64::MAX; DIMS]);
        for t in pp.types.iter() {
            min_alloc = min_alloc.min(&self.types[t].alloc);
        }
        Claim {
            pool,
            slot: self.slots.len() + self.claims.len(),
            types: pp.types.clone(),
            zmask: pp.zmask,
            cmask: pp.cmask,
            reqs: pp.reqs.clone(),
            used: pp.overhead,
            max_alloc: pp.max_alloc,
            min_alloc,
            reserved: RV::default(),
            pods: vec![],
            ports: vec![],
            pinned: vec![],
            alive: true,
        }
    }

    /// Cheapest (type, zone, capacity type, price) among the set, ties broken by name.
    fn cheapest(&self, types: &Bits, zmask: u64, cmask: u64) -> Option<(usize, usize, usize, f64)> {
        let mut best: Option<(usize, usize, usize, f64)> = None;
        for t in types.iter() {
            for &(z, c, price) in &self.types[t].offers {
                if zmask & (1 << z) == 0 || cmask & (1 << c) == 0 {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((bt, bz, bc, bp)) => {
                        price < bp
                            || (price == bp
                                && (self.types[t].name.as_str(), z, c)
                                    < (self.types[bt].name.as_str(), bz, bc))
                    }
                };
                if better {
                    best = Some((t, z, c, price));
                }
            }
        }
        best
    }

    fn claim_dom_opts(&self, c: &Claim, tr: &Trial, key: u32) -> Result<DomOpts, Why> {
        if key == self.k_host {
            return Ok(DomOpts::Fixed(Some(c.slot as u32)));
        }
        if key == self.k_zone || key == self.k_ct {
            let is_zone = key == self.k_zone;
            let mask = if is_zone { tr.zmask } else { tr.cmask };
            if mask.count_ones() == 1 {
                return Ok(DomOpts::Fixed(Some(mask.trailing_zeros())));
            }
            // Domains some remaining type can actually be launched in, with the cheapest price.
            let mut best: BTreeMap<u32, f64> = BTreeMap::new();
            for t in tr.types.iter() {
                for &(z, ci, price) in &self.types[t].offers {
                    if tr.zmask & (1 << z) == 0 || tr.cmask & (1 << ci) == 0 {
                        continue;
                    }
                    let d = if is_zone { z as u32 } else { ci as u32 };
                    let e = best.entry(d).or_insert(f64::INFINITY);
                    if price < *e {
                        *e = price;
                    }
                }
            }
            return Ok(DomOpts::Choice(best.into_iter().collect()));
        }
        if self.is_type_key(key) {
            let mut vals = BTreeSet::new();
            let mut missing = false;
            for t in tr.types.iter() {
                match label(&self.types[t].labels, key) {
                    Some(v) => {
                        vals.insert(v);
                    }
                    None => missing = true,
                }
            }
            if missing {
                return if vals.is_empty() {
                    Ok(DomOpts::Fixed(None))
                } else {
                    Err(Why::TopoKey(key))
                };
            }
            let v: Vec<u32> = vals.into_iter().collect();
            return Ok(if v.len() == 1 {
                DomOpts::Fixed(Some(v[0]))
            } else {
                DomOpts::Choice(v.into_iter().map(|d| (d, 0.0)).collect())
            });
        }
        match reqset_get(&tr.reqs, key) {
            None => Ok(DomOpts::Fixed(None)),
            Some(v) if v.single().is_some() => Ok(DomOpts::Fixed(v.single())),
            Some(v) if v.absent_ok && v.present_empty() => Ok(DomOpts::Fixed(None)),
            Some(v) if !v.complement && !v.absent_ok => {
                Ok(DomOpts::Choice(v.vals.iter().map(|&d| (d, 0.0)).collect()))
            }
            Some(_) => Err(Why::TopoKey(key)),
        }
    }

    fn pin(&self, tr: &mut Trial, key: u32, d: u32) {
        if key == self.k_host {
            return;
        }
        if key == self.k_zone {
            tr.zmask &= 1 << d;
        } else if key == self.k_ct {
            tr.cmask &= 1 << d;
        } else if self.is_type_key(key) {
            tr.types
                .retain(|t| label(&self.types[t].labels, key) == Some(d));
        } else {
            reqset_add(&mut tr.reqs, key, VSet::only(d), &self.vals);
        }
    }

    /// Tries to add pod `pi` to claim `c`; returns the narrowed claim state.
    fn try_claim(&self, pi: usize, c: &Claim) -> Result<Trial, Why> {
        let p = &self.pods[pi];
        let pool = &self.pools[c.pool];
        let used = c.used.add(&p.req);
        if let Some(d) = used.first_over(&c.max_alloc) {
            return Err(Why::Resource {
                dim: d,
                need: p.req.0[d],
                free: c.max_alloc.0[d] - c.used.0[d],
            });
        }
        if let Some(t) = self.taint_block(pi, &pool.taints) {
            return Err(Why::Taint(t));
        }
        if let Some(w) = &p.hard_problem {
            return Err(w.clone());
        }
        if p.eff_alts.is_empty() {
            return Err(Why::Conflict);
        }
        if let Some(port) = self.port_block(pi, &c.ports) {
            return Err(Why::Port(port));
        }
        self.quick_topo(pi, c)?;
        let mut last = Why::Conflict;
        for &ai in &p.eff_alts {
            match self.try_claim_alt(pi, c, ai, used) {
                Ok(t) => return Ok(t),
                Err(w) => last = w,
            }
        }
        Err(last)
    }

    fn try_claim_alt(&self, pi: usize, c: &Claim, ai: usize, used: RV) -> Result<Trial, Why> {
        let a = &self.alts[ai];
        let pool = &self.pools[c.pool];
        if !a.host_fresh_ok {
            return Err(Why::Req(self.k_host));
        }
        let zmask = c.zmask & a.zmask;
        if zmask == 0 {
            return Err(Why::Req(self.k_zone));
        }
        let cmask = c.cmask & a.cmask;
        if cmask == 0 {
            return Err(Why::Req(self.k_ct));
        }
        let mut reqs = c.reqs.clone();
        let mut bad = None;
        for (k, v) in &a.other {
            let cur = reqset_get(&reqs, *k).cloned().unwrap_or_else(VSet::absent);
            let x = cur.intersect(v, &self.vals);
            if x.is_empty() {
                bad = self.first_key(bad.into_iter().chain([*k]));
                continue;
            }
            reqset_add(&mut reqs, *k, x, &self.vals);
        }
        if let Some(k) = bad {
            return Err(Why::Req(k));
        }
        let mut types = c.types.clone();
        if a.has_type_keys {
            types.and(&a.types);
            if types.is_empty() {
                let k = self
                    .first_key(
                        a.rs.iter()
                            .map(|(k, _)| *k)
                            .filter(|k| self.is_type_key(*k)),
                    )
                    .unwrap_or(self.k_zone);
                return Err(Why::Req(k));
            }
        }
        let mut tr = Trial {
            types,
            zmask,
            cmask,
            reqs,
            used,
            reserved: c.reserved,
            doms: vec![],
        };
        if zmask != c.zmask || cmask != c.cmask {
            tr.types.retain(|t| self.offer_ok(t, zmask, cmask));
            if tr.types.is_empty() {
                return Err(Why::NoOffering);
            }
        }
        // Topology: choose domains, then pin the claim to them.
        let doms = self.topo_choose(pi, &mut |s: &Self, key| s.claim_dom_opts(c, &tr, key))?;
        for &(k, d) in &doms {
            if let Some(d) = d {
                self.pin(&mut tr, k, d);
            }
        }
        if tr.zmask != zmask || tr.cmask != cmask {
            let (zm, cm) = (tr.zmask, tr.cmask);
            tr.types.retain(|t| self.offer_ok(t, zm, cm));
        }
        tr.doms = doms;
        // Resources: drop types the new total no longer fits.
        if !used.le(&c.min_alloc) {
            tr.types.retain(|t| used.le(&self.types[t].alloc));
        }
        if tr.types.is_empty() {
            return Err(self.no_type_why(&used, c));
        }
        for &(k, min) in &pool.min_values {
            let mut vals = BTreeSet::new();
            for t in tr.types.iter() {
                if k == self.k_zone || k == self.k_ct {
                    for &(z, c, _) in &self.types[t].offers {
                        if tr.zmask & (1 << z) != 0 && tr.cmask & (1 << c) != 0 {
                            vals.insert(if k == self.k_zone { z as u32 } else { c as u32 });
                        }
                    }
                } else if let Some(v) = label(&self.types[t].labels, k) {
                    vals.insert(v);
                }
            }
            if (vals.len() as u32) < min {
                return Err(Why::MinValues {
                    key: k,
                    min,
                    left: vals.len() as u32,
                });
            }
        }
        if pool.limits.is_some() || pool.limit_nodes.is_some() {
            self.apply_limits(c, &mut tr)?;
        }
        Ok(tr)
    }

    fn no_type_why(&self, used: &RV, c: &Claim) -> Why {
        match used.first_over(&self.pools[c.pool].max_alloc) {
            Some(d) => Why::Exceeds {
                dim: d,
                need: used.0[d],
                largest: self.pools[c.pool].max_alloc.0[d],
            },
            None => Why::NoFit(*used),
        }
    }

    /// Keeps the pool under its limits, counting each NodeClaim at the capacity of the type it
    /// would get now (the cheapest left); narrows the types when that would overshoot.
    fn apply_limits(&self, c: &Claim, tr: &mut Trial) -> Result<(), Why> {
        let pool = &self.pools[c.pool];
        let is_new = c.pods.is_empty();
        if let Some(n) = pool.limit_nodes
            && is_new
            && pool.usage_nodes + pool.claims + 1 > n
        {
            return Err(Why::Limits(LIMIT_NODES));
        }
        let Some(limit) = pool.limits else {
            return Ok(());
        };
        let others = pool.usage.add(&pool.reserved).sub(&c.reserved);
        let headroom = limit.sub(&others);
        let (t, _, _, _) = self
            .cheapest(&tr.types, tr.zmask, tr.cmask)
            .ok_or(Why::NoOffering)?;
        if !self.types[t].cap.le(&headroom) {
            let over = self.types[t].cap.first_over(&headroom).unwrap_or(0);
            tr.types.retain(|t| self.types[t].cap.le(&headroom));
            if tr.types.is_empty() {
                return Err(Why::Limits(over));
            }
        }
        let (t, _, _, _) = self
            .cheapest(&tr.types, tr.zmask, tr.cmask)
            .ok_or(Why::NoOffering)?;
        tr.reserved = self.types[t].cap;
        Ok(())
    }

    fn commit_claim(&mut self, pi: usize, ci: usize, tr: Trial) {
        let old_count = self.claims[ci].pods.len();
        if self.claims[ci].alive && old_count > 0 {
            self.open.remove(&(old_count, ci));
        }
        let pool = self.claims[ci].pool;
        let old_reserved = self.claims[ci].reserved;
        for &(k, d) in &tr.doms {
            if d.is_some() && k != self.k_host && !self.claims[ci].pinned.contains(&k) {
                self.claims[ci].pinned.push(k);
            }
        }
        {
            let c = &mut self.claims[ci];
            c.types = tr.types;
            c.zmask = tr.zmask;
            c.cmask = tr.cmask;
            c.reqs = tr.reqs;
            c.used = tr.used;
            c.reserved = tr.reserved;
            c.pods.push(pi);
        }
        let mut max_alloc = RV::default();
        let mut min_alloc = RV([i64::MAX; DIMS]);
        for t in self.claims[ci].types.iter() {
            max_alloc = max_alloc.max(&self.types[t].alloc);
            min_alloc = min_alloc.min(&self.types[t].alloc);
        }
        let ports = self.pods[pi].ports.clone();
        {
            let c = &mut self.claims[ci];
            c.max_alloc = max_alloc;
            c.min_alloc = min_alloc;
            c.ports.extend(ports);
        }
        let pp = &mut self.pools[pool];
        pp.reserved = pp.reserved.add(&tr.reserved).sub(&old_reserved);
        if old_count == 0 {
            pp.claims += 1;
        }
        self.open.insert((old_count + 1, ci));
        self.record(pi, &tr.doms);
        let slot = self.claims[ci].slot;
        self.placements.push((pi, slot));
    }

    fn try_new(&self, pi: usize, pool: usize) -> Result<(Claim, Trial), Why> {
        let pp = &self.pools[pool];
        if let Some(t) = self.taint_block(pi, &pp.taints) {
            return Err(Why::Taint(t));
        }
        let need = pp.overhead.add(&self.pods[pi].req);
        if let Some(d) = need.first_over(&pp.max_alloc) {
            return Err(Why::Exceeds {
                dim: d,
                need: need.0[d],
                largest: pp.max_alloc.0[d],
            });
        }
        let c = self.fresh_claim(pool);
        let tr = self.try_claim(pi, &c)?;
        Ok((c, tr))
    }

    /// One placement attempt; Ok when placed.
    fn place(&mut self, pi: usize) -> bool {
        // Cordoned slots never take a pod: only the others are tried.
        for i in 0..self.placeable.len() {
            let s = self.placeable[i];
            if let Ok(doms) = self.try_slot(pi, s) {
                self.commit_slot(pi, s, doms);
                return true;
            }
        }
        if !self.opts.allow_new_nodes {
            return false;
        }
        let mut found = None;
        let order: Box<dyn Iterator<Item = &(usize, usize)>> = match self.claim_order {
            ClaimOrder::FewestPodsFirst => Box::new(self.open.iter()),
            ClaimOrder::MostPodsFirst => Box::new(self.open.iter().rev()),
        };
        for &(_, ci) in order {
            if let Ok(tr) = self.try_claim(pi, &self.claims[ci]) {
                found = Some((ci, tr));
                break;
            }
        }
        if let Some((ci, tr)) = found {
            self.commit_claim(pi, ci, tr);
            return true;
        }
        for pool in 0..self.pools.len() {
            if let Ok((c, tr)) = self.try_new(pi, pool) {
                self.claims.push(c);
                let ci = self.claims.len() - 1;
                self.commit_claim(pi, ci, tr);
                return true;
            }
        }
        false
    }

    fn relax(&mut self, pi: usize) -> bool {
        if !self.opts.relax_preferences || self.pods[pi].relaxed >= self.pods[pi].soft.len() {
            return false;
        }
        let dropped = self.pods[pi].soft[self.pods[pi].relaxed];
        self.pods[pi].relaxed += 1;
        if matches!(dropped, Soft::NodePref(_)) {
            self.refresh_alts(pi);
        }
        true
    }

    pub(crate) fn run(mut self) -> Solution {
        let mut pending: Vec<usize> = (0..self.pods.len()).collect();
        loop {
            let mut failed = vec![];
            let mut progress = false;
            for &pi in &pending {
                if self.place(pi) {
                    progress = true;
                } else {
                    failed.push(pi);
                }
            }
            if failed.is_empty() {
                break;
            }
            if !progress {
                let mut relaxed_any = false;
                for &pi in &failed {
                    relaxed_any |= self.relax(pi);
                }
                if !relaxed_any {
                    break;
                }
            }
            pending = failed;
        }
        let mut placed = vec![false; self.pods.len()];
        for &(pi, _) in &self.placements {
            placed[pi] = true;
        }
        let failed: BTreeSet<usize> = (0..self.pods.len()).filter(|&pi| !placed[pi]).collect();
        if self.opts.improve {
            self.repack_free();
            self.improve();
        }
        self.finish(&failed)
    }

    fn dropped_names(&self, pi: usize) -> Vec<String> {
        let p = &self.pods[pi];
        let pod = &self.pod_src[p.src];
        p.soft[..p.relaxed]
            .iter()
            .map(|s| match s {
                Soft::NodePref(i) => format!(
                    "preferred node affinity term (weight {})",
                    p.pref_node[*i].0
                ),
                Soft::Spread(i) => format!(
                    "ScheduleAnyway topology spread on {}",
                    self.keys.name(self.groups[p.spread[*i].group].key)
                ),
                Soft::Affinity(i) => format!(
                    "preferred pod affinity on {}",
                    self.keys.name(self.groups[p.aff[*i].group].key)
                ),
                Soft::Anti(i) => format!(
                    "preferred pod anti-affinity on {}",
                    self.keys.name(self.groups[p.anti[*i].group].key)
                ),
                Soft::PreferNoSchedule => {
                    let _ = pod;
                    "PreferNoSchedule taints".to_string()
                }
            })
            .collect()
    }

    fn reason(&self, w: &Why) -> Reason {
        let dim = |d: usize| {
            if d == LIMIT_NODES {
                "nodes".to_string()
            } else {
                self.dims[d].clone()
            }
        };
        match w {
            Why::Cordoned => Reason::Cordoned,
            Why::Taint(t) => Reason::TaintNotTolerated { taint: t.clone() },
            Why::Req(k) => Reason::Requirement {
                key: self.keys.name(*k).to_string(),
                wanted: String::new(),
                offered: String::new(),
            },
            Why::Volume => Reason::VolumeZone {
                volumes: vec![],
                zones: vec![],
            },
            Why::Exceeds {
                dim: d,
                need,
                largest,
            } => Reason::ExceedsLargestInstanceType {
                resource: dim(*d),
                needed: *need,
                largest: *largest,
            },
            Why::NoFit(rv) => Reason::NoInstanceTypeFits {
                needed: self.resources(rv),
            },
            Why::NoOffering => Reason::NoAvailableOffering,
            Why::Resource { dim: d, need, free } => Reason::InsufficientResource {
                resource: dim(*d),
                needed: *need,
                free: *free,
            },
            Why::Limits(d) => Reason::LimitsReached { resource: dim(*d) },
            Why::MinValues { key, min, left } => Reason::MinValues {
                key: self.keys.name(*key).to_string(),
                min: *min,
                left: *left,
            },
            Why::Spread(g) => {
                let skew = match self.groups[*g].kind {
                    GKind::Spread { skew, .. } => skew,
                    _ => 0,
                };
                Reason::TopologySpread {
                    key: self.keys.name(self.groups[*g].key).to_string(),
                    max_skew: skew,
                }
            }
            Why::Affinity(g) => Reason::PodAffinity {
                key: self.keys.name(self.groups[*g].key).to_string(),
            },
            Why::Anti(g) => Reason::PodAntiAffinity {
                key: self.keys.name(self.groups[*g].key).to_string(),
            },
            Why::InverseAnti(g) => Reason::ExistingPodAntiAffinity {
                key: self.keys.name(self.groups[*g].key).to_string(),
            },
            Why::TopoKey(k) => Reason::TopologyKeyUndetermined {
                key: self.keys.name(*k).to_string(),
            },
            Why::Port(p) => Reason::HostPortConflict { port: *p },
            Why::Conflict => Reason::ConflictingPreferences,
        }
    }

    /// Fills in what the pod wanted and what the candidate offered for requirement reasons.
    fn detail(&self, pi: usize, r: Reason, offered: Option<&dyn Fn(u32) -> String>) -> Reason {
        match r {
            Reason::Requirement { key, .. } => {
                let p = &self.pods[pi];
                let k = self.keys.get(&key);
                let wanted = k
                    .and_then(|k| {
                        p.eff_alts
                            .iter()
                            .find_map(|&a| reqset_get(&self.alts[a].rs, k))
                    })
                    .or_else(|| k.and_then(|k| p.hard_alts.iter().find_map(|a| reqset_get(a, k))))
                    .map(|v| v.describe(&self.vals))
                    .unwrap_or_default();
                let offered = match (k, offered) {
                    (Some(k), Some(f)) => f(k),
                    _ => String::new(),
                };
                Reason::Requirement {
                    key,
                    wanted,
                    offered,
                }
            }
            Reason::VolumeZone { .. } => {
                let pod = &self.pod_src[self.pods[pi].src];
                let vols: Vec<&crate::model::VolumeTopology> =
                    pod.volumes.iter().filter(|v| !v.zones.is_empty()).collect();
                let mut zones: Vec<String> =
                    vols.iter().flat_map(|v| v.zones.iter().cloned()).collect();
                zones.sort();
                zones.dedup();
                Reason::VolumeZone {
                    volumes: vols.iter().map(|v| v.name.clone()).collect(),
                    zones,
                }
            }
            other => other,
        }
    }

    fn pool_offers(&self, pool: usize, key: u32) -> String {
        let pp = &self.pools[pool];
        let mut vals = BTreeSet::new();
        if key == self.k_zone {
            for t in pp.types.iter() {
                for c in bits_of(pp.cmask) {
                    for z in bits_of(self.types[t].zc[c] & pp.zmask) {
                        vals.insert(self.vals.name(self.zones[z]).to_string());
                    }
                }
            }
        } else if key == self.k_ct {
            for t in pp.types.iter() {
                for c in bits_of(pp.cmask) {
                    if self.types[t].zc[c] & pp.zmask != 0 {
                        vals.insert(self.vals.name(self.cts[c]).to_string());
                    }
                }
            }
        } else if self.is_type_key(key) {
            for t in pp.types.iter() {
                if let Some(v) = label(&self.types[t].labels, key) {
                    vals.insert(self.vals.name(v).to_string());
                }
            }
            if vals.len() > 12 {
                let n = vals.len();
                let first: Vec<String> = vals.into_iter().take(12).collect();
                return format!("{} values: {} ...", n, first.join(","));
            }
        } else if key == self.k_host {
            return "a new hostname".into();
        } else {
            return reqset_get(&pp.reqs, key)
                .map(|v| v.describe(&self.vals))
                .unwrap_or_else(|| "no such label".into());
        }
        if vals.is_empty() {
            "nothing".into()
        } else {
            vals.into_iter().collect::<Vec<_>>().join(",")
        }
    }

    fn explain(&self, pi: usize) -> Unschedulable {
        let pod = self.pod_src[self.pods[pi].src].key();
        let mut node_pools = vec![];
        if self.opts.allow_new_nodes {
            for pool in 0..self.pools.len() {
                if let Err(w) = self.try_new(pi, pool) {
                    let f = |k: u32| self.pool_offers(pool, k);
                    let r = self.detail(pi, self.reason(&w), Some(&f));
                    node_pools.push((self.pools[pool].name.clone(), r));
                }
            }
        }
        let mut tally: Vec<(Reason, usize)> = vec![];
        // Same shortage on many nodes is one line, showing the most any of them has free.
        let mut add = |r: Reason| {
            let same = |x: &Reason| match (x, &r) {
                (
                    Reason::InsufficientResource {
                        resource: a,
                        needed: na,
                        ..
                    },
                    Reason::InsufficientResource {
                        resource: b,
                        needed: nb,
                        ..
                    },
                ) => a == b && na == nb,
                (x, r) => x == r,
            };
            match tally.iter_mut().find(|(x, _)| same(x)) {
                Some((x, n)) => {
                    *n += 1;
                    if let (
                        Reason::InsufficientResource { free: fx, .. },
                        Reason::InsufficientResource { free: fr, .. },
                    ) = (x, &r)
                    {
                        *fx = (*fx).max(*fr);
                    }
                }
                None => tally.push((r, 1)),
            }
        };
        for &s in &self.live {
            if let Err(w) = self.try_slot(pi, s) {
                let f = |k: u32| match label(&self.slots[s].labels, k) {
                    Some(v) => self.vals.name(v).to_string(),
                    None => "no such label".to_string(),
                };
                add(self.detail(pi, self.reason(&w), Some(&f)));
            }
        }
        for c in self.claims.iter().filter(|c| c.alive) {
            if let Err(w) = self.try_claim(pi, c) {
                let r = match w {
                    // On a NodeClaim of this solve, "largest type" means what is left of it.
                    Why::Exceeds { dim, .. } | Why::Resource { dim, .. } => {
                        Reason::InsufficientResource {
                            resource: self.dims[dim].clone(),
                            needed: self.pods[pi].req.0[dim],
                            free: c.max_alloc.0[dim] - c.used.0[dim],
                        }
                    }
                    other => self.reason(&other),
                };
                add(self.detail(pi, r, None));
            }
        }
        tally.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| a.0.to_string().cmp(&b.0.to_string()))
        });
        if node_pools.is_empty() && self.opts.allow_new_nodes && self.pools.is_empty() {
            node_pools.push(("-".into(), Reason::NoNodePools));
        }
        Unschedulable {
            pod,
            node_pools,
            nodes: tally,
            relaxed: self.dropped_names(pi),
        }
    }

    fn finish(self, failed: &BTreeSet<usize>) -> Solution {
        let mut sol = Solution::default();
        // Claims in creation order; renumber the living ones.
        let mut index = vec![usize::MAX; self.claims.len()];
        for (ci, c) in self.claims.iter().enumerate() {
            if !c.alive || c.pods.is_empty() {
                continue;
            }
            index[ci] = sol.new_claims.len();
            sol.new_claims.push(self.resolve_claim(ci));
        }
        for &(pi, slot) in &self.placements {
            let pod = self.pod_src[self.pods[pi].src].key();
            let target = if slot < self.n_existing {
                Target::Node(self.slots[slot].name.clone())
            } else {
                Target::NewClaim(index[slot - self.n_existing])
            };
            sol.placements.push(Placement { pod, target });
        }
        for pi in 0..self.pods.len() {
            if self.pods[pi].relaxed > 0 && !failed.contains(&pi) {
                sol.relaxed.push(Relaxed {
                    pod: self.pod_src[self.pods[pi].src].key(),
                    dropped: self.dropped_names(pi),
                });
            }
        }
        for &pi in failed {
            sol.unschedulable.push(self.explain(pi));
        }
        sol
    }

    fn resolve_claim(&self, ci: usize) -> NewClaim {
        let c = &self.claims[ci];
        let pool = &self.pools[c.pool];
        let (t, z, ct, price) =
            self.cheapest(&c.types, c.zmask, c.cmask)
                .unwrap_or((0, 0, 0, f64::NAN));
        if self.types.is_empty() || self.zones.is_empty() || self.cts.is_empty() || price.is_nan() {
            // Every living claim keeps a type with an offering, so this is never taken; it only
            // keeps bad data from panicking.
            return NewClaim {
                name: claim_name(&pool.name, ci),
                node_pool: pool.name.clone(),
                instance_type: String::new(),
                zone: String::new(),
                capacity_type: String::new(),
                price: 0.0,
                labels: BTreeMap::new(),
                taints: pool.taints.clone(),
                requests: self.resources(&c.used),
                pods: c
                    .pods
                    .iter()
                    .map(|&pi| self.pod_src[self.pods[pi].src].key())
                    .collect(),
                instance_type_options: vec![],
                pinned: self.pinned_names(ci),
            };
        }
        let name = claim_name(&pool.name, ci);
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &c.reqs {
            if let Some(val) = self.label_value(v) {
                labels.insert(self.keys.name(*k).to_string(), val);
            }
        }
        for &(k, v) in &self.types[t].labels {
            labels.insert(self.keys.name(k).to_string(), self.vals.name(v).to_string());
        }
        labels.insert(wk::ZONE.into(), self.vals.name(self.zones[z]).to_string());
        labels.insert(
            wk::CAPACITY_TYPE.into(),
            self.vals.name(self.cts[ct]).to_string(),
        );
        labels.insert(wk::HOSTNAME.into(), name.clone());
        labels.insert(wk::NODEPOOL.into(), pool.name.clone());
        let mut opts: Vec<(f64, &str)> = c
            .types
            .iter()
            .filter_map(|t| {
                let one = Bits::new(self.types.len(), false);
                let mut one = one;
                one.set(t);
                self.cheapest(&one, c.zmask, c.cmask)
                    .map(|(_, _, _, p)| (p, self.types[t].name.as_str()))
            })
            .collect();
        opts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        NewClaim {
            name,
            node_pool: pool.name.clone(),
            instance_type: self.types[t].name.clone(),
            zone: self.vals.name(self.zones[z]).to_string(),
            capacity_type: self.vals.name(self.cts[ct]).to_string(),
            price,
            labels,
            taints: pool.taints.clone(),
            requests: self.resources(&c.used),
            pods: c
                .pods
                .iter()
                .map(|&pi| self.pod_src[self.pods[pi].src].key())
                .collect(),
            instance_type_options: opts
                .into_iter()
                .take(self.opts.max_instance_type_options.max(1))
                .map(|(_, n)| n.to_string())
                .collect(),
            pinned: self.pinned_names(ci),
        }
    }

    fn pinned_names(&self, ci: usize) -> Vec<String> {
        let mut v: Vec<String> = self.claims[ci]
            .pinned
            .iter()
            .map(|&k| self.keys.name(k).to_string())
            .collect();
        v.sort();
        v
    }

    /// A concrete label value that satisfies the set, or None when the label should be absent.
    fn label_value(&self, v: &VSet) -> Option<String> {
        if v.absent_ok {
            return None;
        }
        if !v.complement {
            // The smallest name, whatever the interning order.
            return v
                .vals
                .iter()
                .map(|&x| self.vals.name(x))
                .min()
                .map(str::to_string);
        }
        if v.gt.is_some() || v.lt.is_some() {
            let mut n = match (v.gt, v.lt) {
                (Some(g), _) => g.saturating_add(1),
                (None, Some(l)) => l.saturating_sub(1).min(0),
                (None, None) => 0,
            };
            while v.vals.iter().any(|&x| self.vals.num(x) == Some(n)) && n < i64::MAX {
                n += 1;
            }
            return Some(n.to_string());
        }
        let mut i = 0;
        loop {
            let cand = format!("ballast-{i}");
            if self
                .vals
                .get(&cand)
                .is_none_or(|id| v.vals.binary_search(&id).is_err())
            {
                return Some(cand);
            }
            i += 1;
        }
    }
}

pub(crate) fn claim_name(pool: &str, i: usize) -> String {
    format!("{pool}-{i:05}")
}

/// Access for the cost pass.
pub(crate) mod access {
    use super::*;

    impl Solver<'_> {
        pub(crate) fn claim_price(&self, ci: usize) -> f64 {
            let c = &self.claims[ci];
            self.cheapest(&c.types, c.zmask, c.cmask)
                .map(|x| x.3)
                .unwrap_or(0.0)
        }
        pub(crate) fn claim_alive(&self, ci: usize) -> bool {
            self.claims[ci].alive && !self.claims[ci].pods.is_empty()
        }
        /// A pod that nothing topological or port-related ties to its node can be moved freely.
        pub(crate) fn pod_is_free(&self, pi: usize) -> bool {
            let p = &self.pods[pi];
            p.member.is_empty()
                && p.spread.is_empty()
                && p.aff.is_empty()
                && p.anti.is_empty()
                && p.ports.is_empty()
        }
        pub(crate) fn pool_limited(&self, ci: usize) -> bool {
            let p = &self.pools[self.claims[ci].pool];
            p.limits.is_some() || p.limit_nodes.is_some()
        }
        /// Moves a free pod from one claim onto another if the other's current cheapest offering
        /// still fits (so its price does not rise). Returns true when moved.
        pub(crate) fn move_free_pod(&mut self, pi: usize, from: usize, to: usize) -> bool {
            let before = self.claim_price(to);
            let Ok(tr) = self.try_claim(pi, &self.claims[to]) else {
                return false;
            };
            let after = self
                .cheapest(&tr.types, tr.zmask, tr.cmask)
                .map(|x| x.3)
                .unwrap_or(f64::INFINITY);
            if after > before + 1e-12 {
                return false;
            }
            // Take the pod off `from`.
            let req = self.pods[pi].req;
            let c = &mut self.claims[from];
            let n = c.pods.len();
            self.open.remove(&(n, from));
            c.pods.retain(|&x| x != pi);
            c.used = c.used.sub(&req);
            self.placements.retain(|(p, _)| *p != pi);
            if self.claims[from].pods.is_empty() {
                self.claims[from].alive = false;
                let pool = self.claims[from].pool;
                let r = self.claims[from].reserved;
                self.pools[pool].reserved = self.pools[pool].reserved.sub(&r);
                self.pools[pool].claims -= 1;
            } else {
                self.recompute_claim(from);
                self.open.insert((n - 1, from));
            }
            self.commit_claim(pi, to, tr);
            true
        }
        /// The cost pass: visit NodeClaims from the emptiest (by their fullest resource on the
        /// chosen type) and move their free pods into room other NodeClaims already pay for. A
        /// move never raises the receiver's price, so the total only falls: emptied claims
        /// disappear, thinned ones may drop to a cheaper type.
        pub(crate) fn improve(&mut self) {
            let n = self.claims.len();
            let chosen_alloc = |s: &Self, ci: usize| -> Option<RV> {
                let c = &s.claims[ci];
                s.cheapest(&c.types, c.zmask, c.cmask)
                    .map(|(t, ..)| s.types[t].alloc)
            };
            let fill = |s: &Self, ci: usize| -> f64 {
                let Some(a) = chosen_alloc(s, ci) else {
                    return 1.0;
                };
                let u = s.claims[ci].used;
                (0..DIMS)
                    .filter(|&d| a.0[d] > 0)
                    .map(|d| u.0[d] as f64 / a.0[d] as f64)
                    .fold(0.0, f64::max)
            };
            let mut order: Vec<(u64, usize)> = (0..n)
                .filter(|&ci| self.claim_alive(ci) && !self.pool_limited(ci))
                .filter(|&ci| self.claims[ci].pods.iter().all(|&pi| self.pod_is_free(pi)))
                .map(|ci| ((fill(self, ci) * 1e9) as u64, ci))
                .collect();
            order.sort();
            // Room each claim already pays for; refreshed for the two claims a move touches.
            let mut room: Vec<Option<RV>> = (0..n)
                .map(|ci| {
                    if self.claim_alive(ci) && !self.pool_limited(ci) {
                        chosen_alloc(self, ci).map(|a| a.sub(&self.claims[ci].used))
                    } else {
                        None
                    }
                })
                .collect();
            for &(_, from) in &order {
                if !self.claim_alive(from) {
                    continue;
                }
                let mut pods = self.claims[from].pods.clone();
                pods.sort_by(|&a, &b| self.pods[b].req.0.cmp(&self.pods[a].req.0).then(a.cmp(&b)));
                for pi in pods {
                    let req = self.pods[pi].req;
                    for to in 0..n {
                        if to == from || !room[to].is_some_and(|r| req.le(&r)) {
                            continue;
                        }
                        if self.move_free_pod(pi, from, to) {
                            for ci in [from, to] {
                                room[ci] = if self.claim_alive(ci) {
                                    chosen_alloc(self, ci).map(|a| a.sub(&self.claims[ci].used))
                                } else {
                                    None
                                };
                            }
                            break;
                        }
                    }
                }
            }
        }

        fn total_price(&self) -> f64 {
            (0..self.claims.len())
                .filter(|&ci| self.claim_alive(ci))
                .map(|ci| self.claim_price(ci))
                .sum()
        }

        /// The cost pass for pods nothing ties to a node (no topology, no host ports, one
        /// requirement alternative): take every NodeClaim holding only such pods, and rebuild
        /// them bin by bin, each time opening the (NodePool, instance type) whose bin, filled
        /// greedily, buys the most pod value per dollar. A pod's value is the cheapest price
        /// share it could ever cost (price × its dominant share of a type it fits). Kept only
        /// when the total price falls.
        pub(crate) fn repack_free(&mut self) {
            let eligible: Vec<usize> = (0..self.claims.len())
                .filter(|&ci| self.claim_alive(ci) && !self.pool_limited(ci))
                .filter(|&ci| {
                    self.claims[ci]
                        .pods
                        .iter()
                        .all(|&pi| self.pod_is_free(pi) && self.pods[pi].eff_alts.len() == 1)
                })
                .collect();
            if eligible.is_empty() {
                return;
            }
            let before = self.total_price();
            let mut trial = self.clone();
            trial.repack_into_bins(&eligible);
            if trial.total_price() < before - 1e-9
                && trial.placements.len() == self.placements.len()
            {
                *self = trial;
            }
        }

        fn repack_into_bins(&mut self, eligible: &[usize]) {
            let mut loose: Vec<usize> = vec![];
            for &ci in eligible {
                let n = self.claims[ci].pods.len();
                self.open.remove(&(n, ci));
                loose.append(&mut self.claims[ci].pods);
                self.claims[ci].alive = false;
                let pool = self.claims[ci].pool;
                self.pools[pool].claims -= 1;
            }
            let moving: BTreeSet<usize> = loose.iter().copied().collect();
            self.placements.retain(|(p, _)| !moving.contains(p));
            // Pool compatibility (taints and requirements) per pod, via a trial on a fresh claim.
            let np = self.pools.len();
            type Key = (Vec<i64>, usize, Vec<bool>);
            let mut classes: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
            let mut compat_cache: FxHashMap<(usize, Vec<bool>), Vec<bool>> = FxHashMap::default();
            for &pi in &loose {
                let tol: Vec<bool> = (0..np)
                    .map(|p| self.taint_block(pi, &self.pools[p].taints).is_none())
                    .collect();
                let alt = self.pods[pi].eff_alts[0];
                let ok = compat_cache
                    .entry((alt, tol.clone()))
                    .or_insert_with(|| {
                        (0..np)
                            .map(|p| tol[p] && self.try_new(pi, p).is_ok())
                            .collect()
                    })
                    .clone();
                classes
                    .entry((self.pods[pi].req.0.to_vec(), alt, ok))
                    .or_default()
                    .push(pi);
            }
            // Value of one pod of a class: the cheapest dominant-share price over what it fits.
            let mut list: Vec<(f64, Key, Vec<usize>)> = vec![];
            for (key, pods) in classes {
                let req = self.pods[pods[0]].req;
                let mut v = f64::INFINITY;
                for (p, pool) in self.pools.iter().enumerate() {
                    if !key.2[p] {
                        continue;
                    }
                    for t in pool.types.iter() {
                        if !self.alts[key.1].types.0[t / 64] & (1 << (t % 64)) != 0 {
                            continue;
                        }
                        let cap = self.types[t].alloc.sub(&pool.overhead);
                        if !req.le(&cap) {
                            continue;
                        }
                        let Some(price) = self.type_price(
                            t,
                            pool.zmask & self.alts[key.1].zmask,
                            pool.cmask & self.alts[key.1].cmask,
                        ) else {
                            continue;
                        };
                        let share = (0..DIMS)
                            .filter(|&d| cap.0[d] > 0)
                            .map(|d| req.0[d] as f64 / cap.0[d] as f64)
                            .fold(0.0, f64::max);
                        v = v.min(price * share);
                    }
                }
                if v.is_finite() {
                    list.push((v, key, pods));
                } else {
                    // Fits nowhere on its own any more: give it back to first-fit below.
                    list.push((0.0, key, pods));
                }
            }
            list.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let mut left: Vec<usize> = list.iter().map(|x| x.2.len()).collect();
            let reqs: Vec<RV> = list.iter().map(|x| self.pods[x.2[0]].req).collect();
            let dims: Vec<Vec<usize>> = reqs
                .iter()
                .map(|r| (0..DIMS).filter(|&d| r.0[d] > 0).collect())
                .collect();
            let mut active: Vec<usize> = (0..list.len()).collect();
            let mut leftovers = vec![];
            loop {
                active.retain(|&c| left[c] > 0);
                let Some(&seed_class) = active.first() else {
                    break;
                };
                let seed = list[seed_class].2[list[seed_class].2.len() - left[seed_class]];
                // Best (efficiency, -price, pool, type) over candidate bins.
                let mut best: Option<(f64, f64, usize, usize)> = None;
                // NodePool weights still rule: only the heaviest pools that can take the seed.
                let weight = |p: usize| self.pools[p].weight;
                let top = (0..np).find(|&p| list[seed_class].1.2[p]).map(weight);
                for p in 0..np {
                    if !list[seed_class].1.2[p] || Some(weight(p)) != top {
                        continue;
                    }
                    let Ok((_, tr0)) = self.try_new(seed, p) else {
                        continue;
                    };
                    let overhead = self.pools[p].overhead;
                    for t in tr0.types.iter() {
                        let Some(price) = self.type_price(t, tr0.zmask, tr0.cmask) else {
                            continue;
                        };
                        let cap = self.types[t].alloc.sub(&overhead);
                        let mut used = self.pods[seed].req;
                        let mut value = list[seed_class].0;
                        for &c in &active {
                            let avail = left[c] - usize::from(c == seed_class);
                            let item = &list[c];
                            if avail == 0
                                || !item.1.2[p]
                                || self.alts[item.1.1].types.0[t / 64] & (1 << (t % 64)) == 0
                            {
                                continue;
                            }
                            let req = &reqs[c];
                            let mut k = avail as i64;
                            for &d in &dims[c] {
                                k = k.min((cap.0[d] - used.0[d]).max(0) / req.0[d]);
                                if k == 0 {
                                    break;
                                }
                            }
                            if k > 0 {
                                for &d in &dims[c] {
                                    used.0[d] += req.0[d] * k;
                                }
                                value += item.0 * k as f64;
                            }
                        }
                        let eff = value / price.max(1e-12);
                        let better = match best {
                            None => true,
                            Some((be, bp, ..)) => {
                                eff > be + 1e-12 || ((eff - be).abs() <= 1e-12 && price < bp)
                            }
                        };
                        if better {
                            best = Some((eff, price, p, t));
                        }
                    }
                }
                let Some((_, _, p, t)) = best else {
                    leftovers.push(seed);
                    left[seed_class] -= 1;
                    continue;
                };
                // Build the bin for real: a fresh claim of pool p narrowed to the types that
                // offer at least type t's room, filled in the same order.
                let (mut c, tr) = match self.try_new(seed, p) {
                    Ok(x) => x,
                    Err(_) => {
                        leftovers.push(seed);
                        left[seed_class] -= 1;
                        continue;
                    }
                };
                let _ = &mut c;
                self.claims.push(c);
                let ci = self.claims.len() - 1;
                self.commit_claim(seed, ci, tr);
                left[seed_class] -= 1;
                let cap = self.types[t].alloc;
                for &c2 in &active {
                    while left[c2] > 0 {
                        let pi = list[c2].2[list[c2].2.len() - left[c2]];
                        if !self.claims[ci].used.add(&self.pods[pi].req).le(&cap) {
                            break;
                        }
                        match self.try_claim(pi, &self.claims[ci]) {
                            Ok(tr) => {
                                self.commit_claim(pi, ci, tr);
                                left[c2] -= 1;
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
            for pi in leftovers {
                self.place(pi);
            }
        }

        fn type_price(&self, t: usize, zmask: u64, cmask: u64) -> Option<f64> {
            self.types[t]
                .offers
                .iter()
                .filter(|(z, c, _)| zmask & (1 << z) != 0 && cmask & (1 << c) != 0)
                .map(|x| x.2)
                .min_by(|a, b| a.total_cmp(b))
        }

        /// Rebuilds a claim's instance-type set from its pool and remaining pods (free pods only
        /// ever leave, so every remaining constraint still holds on the wider set).
        fn recompute_claim(&mut self, ci: usize) {
            let pool = self.claims[ci].pool;
            let pods = self.claims[ci].pods.clone();
            let mut c = self.fresh_claim(pool);
            c.slot = self.claims[ci].slot;
            // Keep pins and requirement narrowing made by the pods that stay.
            c.zmask = self.claims[ci].zmask;
            c.cmask = self.claims[ci].cmask;
            c.reqs = self.claims[ci].reqs.clone();
            let mut used = self.pools[pool].overhead;
            for &pi in &pods {
                used = used.add(&self.pods[pi].req);
            }
            let mut types = self.pools[pool].types.clone();
            for &pi in &pods {
                // The alternative each pod used is not stored: intersect with the union of its
                // alternatives' type masks, a superset that the old set is inside of.
                let mut any = Bits::new(self.types.len(), false);
                for &ai in &self.pods[pi].eff_alts {
                    for w in 0..any.0.len() {
                        any.0[w] |= self.alts[ai].types.0[w];
                    }
                }
                types.and(&any);
            }
            // Never widen past what the claim allowed before for type-keyed reasons: keep only
            // types the old set had or that differ from it only by resource fit.
            let old = self.claims[ci].types.clone();
            let (zm, cm) = (c.zmask, c.cmask);
            types.retain(|t| self.offer_ok(t, zm, cm) && used.le(&self.types[t].alloc));
            let keep_old_keys = self.claims[ci]
                .pods
                .iter()
                .any(|&pi| !self.pod_is_free(pi) || self.pods[pi].eff_alts.len() != 1);
            if keep_old_keys {
                types = old.clone();
                types.retain(|t| used.le(&self.types[t].alloc));
            }
            let mut max_alloc = RV::default();
            let mut min_alloc = RV([i64::MAX; DIMS]);
            for t in types.iter() {
                max_alloc = max_alloc.max(&self.types[t].alloc);
                min_alloc = min_alloc.min(&self.types[t].alloc);
            }
            let cl = &mut self.claims[ci];
            cl.types = types;
            cl.used = used;
            cl.max_alloc = max_alloc;
            cl.min_alloc = min_alloc;
        }
    }
}
