//! Topology groups.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum GKind {
    Spread { skew: i32, min_domains: i32 },
    Affinity,
    Anti,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct GroupKey {
    pub(super) kind: GKind,
    pub(super) key: u32,
    pub(super) ns: NsScope,
    pub(super) sel: Selector,
    pub(super) eligible: Vec<u32>,
}

#[derive(Clone)]
pub(super) struct Group {
    pub(super) kind: GKind,
    pub(super) key: u32,
    pub(super) ns: NsScope,
    pub(super) sel: Selector,
    /// Domains that count toward the minimum (spread on keys other than hostname).
    pub(super) eligible: Vec<u32>,
    pub(super) counts: Vec<u32>,
    pub(super) owners: Vec<u32>,
    pub(super) total: u32,
}

impl Group {
    pub(super) fn count(&self, d: u32) -> u32 {
        self.counts.get(d as usize).copied().unwrap_or(0)
    }
    pub(super) fn owners_in(&self, d: u32) -> u32 {
        self.owners.get(d as usize).copied().unwrap_or(0)
    }
    pub(super) fn bump(v: &mut Vec<u32>, d: u32) {
        let d = d as usize;
        if v.len() <= d {
            v.resize(d + 1, 0);
        }
        v[d] += 1;
    }
}

pub(super) enum DomOpts {
    Fixed(Option<u32>),
    Choice(Vec<(u32, f64)>),
}

impl<'a> Solver<'a> {
    pub(super) fn group(&mut self, key: GroupKey) -> usize {
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
    pub(super) fn eligible_domains(&mut self, key: u32, alts: Option<&[usize]>) -> Vec<u32> {
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

    /// Minimum count over the domains a spread group counts.
    pub(super) fn spread_min(&self, g: usize) -> u32 {
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
    pub(super) fn topo_keys(&self, pi: usize) -> Vec<u32> {
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
    pub(super) fn topo_choose(
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
    pub(super) fn quick_topo(&self, pi: usize, c: &Claim) -> Result<(), Why> {
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

    pub(super) fn record(&mut self, pi: usize, doms: &[(u32, Option<u32>)]) {
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

    pub(super) fn claim_dom_opts(&self, c: &Claim, tr: &Trial, key: u32) -> Result<DomOpts, Why> {
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

    pub(super) fn pin(&self, tr: &mut Trial, key: u32, d: u32) {
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
}
