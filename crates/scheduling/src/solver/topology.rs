//! Topology: groups of pods counted per domain of a key (zone, hostname, ...) for spread,
//! affinity and anti-affinity, and the choice of a domain for a pod that satisfies every term.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum GroupKind {
    Spread { skew: i32, min_domains: i32 },
    Affinity,
    AntiAffinity,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct GroupKey {
    pub(super) kind: GroupKind,
    pub(super) key: u32,
    pub(super) ns: NamespaceScope,
    pub(super) sel: Selector,
    pub(super) eligible: Vec<u32>,
}

#[derive(Clone)]
pub(super) struct Group {
    pub(super) kind: GroupKind,
    pub(super) key: u32,
    pub(super) ns: NamespaceScope,
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

pub(super) enum DomainOptions {
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
    pub(super) fn eligible_domains(
        &mut self,
        key: u32,
        alternatives: Option<&[usize]>,
    ) -> Vec<u32> {
        let ck = (
            key,
            alternatives
                .map(|a| a.to_vec())
                .unwrap_or_else(|| vec![usize::MAX]),
        );
        if let Some(d) = self.domain_cache.get(&ck) {
            return d.clone();
        }
        let mut out = BTreeSet::new();
        for &s in &self.live {
            let ok = match alternatives {
                None => true,
                Some(a) => a.iter().any(|&ai| {
                    self.alternatives[ai].rs.iter().all(|(k, v)| {
                        v.allows(label(&self.cluster.slots[s].labels, *k), &self.vals)
                    })
                }),
            };
            if ok && let Some(d) = self.slot_domain(s, key) {
                out.insert(d);
            }
        }
        if self.cluster.options.allow_new_nodes {
            for p in 0..self.pools.len() {
                let alt_list: Vec<Option<usize>> = match alternatives {
                    None => vec![None],
                    Some(a) => a.iter().map(|&x| Some(x)).collect(),
                };
                for ai in alt_list {
                    let pool = &self.pools[p];
                    let mut types = pool.types.clone();
                    let (mut zm, mut cm) = (pool.zone_mask, pool.capacity_mask);
                    let mut requirements = pool.requirements.clone();
                    if let Some(ai) = ai {
                        let a = &self.alternatives[ai];
                        types.and(&a.types);
                        zm &= a.zone_mask;
                        cm &= a.capacity_mask;
                        requirements = reqset_merge(&requirements, &a.other, &self.vals);
                        if requirements
                            .iter()
                            .any(|(k, v)| v.is_empty() && *k != self.cluster.hostname_key)
                        {
                            continue;
                        }
                    }
                    types.retain(|t| self.offer_ok(t, zm, cm));
                    if types.is_empty() {
                        continue;
                    }
                    if key == self.cluster.zone_key || key == self.cluster.capacity_type_key {
                        for t in types.iter() {
                            for c in mask_bits(cm) {
                                let zs = self.cluster.types[t].zones_by_capacity_type[c] & zm;
                                if key == self.cluster.zone_key {
                                    out.extend(mask_bits(zs).map(|z| z as u32));
                                } else if zs != 0 {
                                    out.insert(c as u32);
                                }
                            }
                        }
                    } else if self.is_type_key(key) {
                        for t in types.iter() {
                            if let Some(v) = label(&self.cluster.types[t].labels, key) {
                                out.insert(v);
                            }
                        }
                    } else if let Some(v) = reqset_get(&requirements, key).and_then(|v| v.single())
                    {
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
    pub(super) fn spread_minimum(&self, g: usize) -> u32 {
        let grp = &self.groups[g];
        let GroupKind::Spread { min_domains, .. } = grp.kind else {
            return 0;
        };
        if grp.key == self.cluster.hostname_key {
            if self.cluster.options.allow_new_nodes && !self.pools.is_empty() {
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
    pub(super) fn topology_keys(&self, pi: usize) -> Vec<u32> {
        let p = &self.pods[pi];
        let mut keys: Vec<u32> = vec![];
        let mut add = |k: u32| {
            if !keys.contains(&k) {
                keys.push(k);
            }
        };
        for t in p.spread.iter().chain(&p.affinity).chain(&p.anti) {
            if p.active(t) {
                add(self.groups[t.group].key);
            }
        }
        for &g in &p.counted_in {
            add(self.groups[g].key);
        }
        keys
    }

    /// Picks a domain per topology key that satisfies every constraint, given the options a
    /// candidate offers.
    pub(super) fn choose_domains(
        &self,
        pi: usize,
        options: &mut dyn FnMut(&Self, u32) -> Result<DomainOptions, Rejection>,
    ) -> Result<Vec<(u32, Option<u32>)>, Rejection> {
        let p = &self.pods[pi];
        let keys = self.topology_keys(pi);
        let mut chosen = Vec::with_capacity(keys.len());
        for key in keys {
            let o = options(self, key)?;
            let (mut cands, fixed_none) = match o {
                DomainOptions::Fixed(None) => (vec![], true),
                DomainOptions::Fixed(Some(d)) => (vec![(d, 0.0)], false),
                DomainOptions::Choice(v) => (v, false),
            };
            if fixed_none {
                // The node lacks the label: spread and affinity on it cannot hold, anti-affinity can.
                for t in p.spread.iter().chain(&p.affinity) {
                    if p.active(t) && self.groups[t.group].key == key {
                        return Err(match self.groups[t.group].kind {
                            GroupKind::Affinity => Rejection::Affinity(t.group),
                            _ => Rejection::Spread(t.group),
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
                let GroupKind::Spread { skew, .. } = g.kind else {
                    continue;
                };
                let min = self.spread_minimum(t.group);
                let before = cands.len();
                cands.retain(|&(d, _)| (g.count(d) + 1) as i64 - min as i64 <= skew as i64);
                if cands.is_empty() && before > 0 {
                    why = Some(Rejection::Spread(t.group));
                }
            }
            for t in &p.affinity {
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
                    why = Some(Rejection::Affinity(t.group));
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
                    why = Some(Rejection::AntiAffinity(t.group));
                }
            }
            for &gi in &p.counted_in {
                let g = &self.groups[gi];
                if g.kind != GroupKind::AntiAffinity || g.key != key || g.owners.is_empty() {
                    continue;
                }
                let before = cands.len();
                cands.retain(|&(d, _)| g.owners_in(d) == 0);
                if cands.is_empty() && before > 0 {
                    why = Some(Rejection::InverseAnti(gi));
                }
            }
            if cands.is_empty() {
                return Err(why.unwrap_or(Rejection::TopologyKey(key)));
            }
            let pick = self.pick_balanced(pi, key, &cands);
            chosen.push((key, Some(pick)));
        }
        Ok(chosen)
    }

    /// Of several allowed domains of `key` (with the cheapest price of each), the one that keeps
    /// things balanced: fewest pods of the pod's own spread groups, then of the spread groups it
    /// counts in; then the cheaper domain, then the one that sorts first. `cands` is not empty.
    fn pick_balanced(&self, pi: usize, key: u32, cands: &[(u32, f64)]) -> u32 {
        if cands.len() == 1 {
            return cands[0].0;
        }
        let p = &self.pods[pi];
        // Balance: the pod's own spread groups first, then the spread groups it counts in;
        // then the cheaper domain, then the lower index.
        let own: Vec<usize> = p
            .spread
            .iter()
            .filter(|t| p.active(t) && self.groups[t.group].key == key)
            .map(|t| t.group)
            .collect();
        let counted: Vec<usize> = p
            .counted_in
            .iter()
            .copied()
            .filter(|&g| {
                self.groups[g].key == key && matches!(self.groups[g].kind, GroupKind::Spread { .. })
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
                    && (c.1 < best.1 || (c.1 == best.1 && self.domain_before(key, c.0, best.0))))
            {
                best = c;
                best_score = sc;
            }
        }
        best.0
    }

    /// Cheap rejection on topology keys whose domain a NodeClaim already has fixed (its
    /// hostname, and zone or capacity type once pinned), before any set is cloned.
    pub(super) fn quick_topology_check(&self, pi: usize, c: &OpenClaim) -> Result<(), Rejection> {
        let p = &self.pods[pi];
        let fixed = |key: u32| -> Option<u32> {
            if key == self.cluster.hostname_key {
                Some(c.slot as u32)
            } else if key == self.cluster.zone_key && c.zone_mask.count_ones() == 1 {
                Some(c.zone_mask.trailing_zeros())
            } else if key == self.cluster.capacity_type_key && c.capacity_mask.count_ones() == 1 {
                Some(c.capacity_mask.trailing_zeros())
            } else {
                None
            }
        };
        for t in &p.anti {
            let g = &self.groups[t.group];
            if p.active(t) && fixed(g.key).is_some_and(|d| g.count(d) > 0) {
                return Err(Rejection::AntiAffinity(t.group));
            }
        }
        for &gi in &p.counted_in {
            let g = &self.groups[gi];
            if g.kind == GroupKind::AntiAffinity && fixed(g.key).is_some_and(|d| g.owners_in(d) > 0)
            {
                return Err(Rejection::InverseAnti(gi));
            }
        }
        for t in &p.spread {
            let g = &self.groups[t.group];
            let GroupKind::Spread { skew, .. } = g.kind else {
                continue;
            };
            if !p.active(t) {
                continue;
            }
            if let Some(d) = fixed(g.key)
                && (g.count(d) + 1) as i64 - self.spread_minimum(t.group) as i64 > skew as i64
            {
                return Err(Rejection::Spread(t.group));
            }
        }
        for t in &p.affinity {
            let g = &self.groups[t.group];
            if p.active(t)
                && !(g.total == 0 && t.self_match)
                && fixed(g.key).is_some_and(|d| g.count(d) == 0)
            {
                return Err(Rejection::Affinity(t.group));
            }
        }
        Ok(())
    }

    pub(super) fn record_placement(&mut self, pi: usize, doms: &[(u32, Option<u32>)]) {
        let dom = |k: u32| doms.iter().find(|(kk, _)| *kk == k).and_then(|(_, d)| *d);
        let counted_in = std::mem::take(&mut self.pods[pi].counted_in);
        for &g in &counted_in {
            if let Some(d) = dom(self.groups[g].key) {
                Group::bump(&mut self.groups[g].counts, d);
                self.groups[g].total += 1;
            }
        }
        self.pods[pi].counted_in = counted_in;
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

    pub(super) fn claim_domain_options(
        &self,
        c: &OpenClaim,
        tr: &Trial,
        key: u32,
    ) -> Result<DomainOptions, Rejection> {
        if key == self.cluster.hostname_key {
            return Ok(DomainOptions::Fixed(Some(c.slot as u32)));
        }
        if key == self.cluster.zone_key || key == self.cluster.capacity_type_key {
            let is_zone = key == self.cluster.zone_key;
            let mask = if is_zone {
                tr.zone_mask
            } else {
                tr.capacity_mask
            };
            if mask.count_ones() == 1 {
                return Ok(DomainOptions::Fixed(Some(mask.trailing_zeros())));
            }
            // Domains some remaining type can actually be launched in, with the cheapest price.
            let mut best: BTreeMap<u32, f64> = BTreeMap::new();
            for t in tr.types.iter() {
                for &(z, ci, price) in &self.cluster.types[t].offers {
                    if tr.zone_mask & (1 << z) == 0 || tr.capacity_mask & (1 << ci) == 0 {
                        continue;
                    }
                    let d = if is_zone { z as u32 } else { ci as u32 };
                    let e = best.entry(d).or_insert(f64::INFINITY);
                    if price < *e {
                        *e = price;
                    }
                }
            }
            return Ok(DomainOptions::Choice(best.into_iter().collect()));
        }
        if self.is_type_key(key) {
            let mut vals = BTreeSet::new();
            let mut missing = false;
            for t in tr.types.iter() {
                match label(&self.cluster.types[t].labels, key) {
                    Some(v) => {
                        vals.insert(v);
                    }
                    None => missing = true,
                }
            }
            if missing {
                return if vals.is_empty() {
                    Ok(DomainOptions::Fixed(None))
                } else {
                    Err(Rejection::TopologyKey(key))
                };
            }
            let v: Vec<u32> = vals.into_iter().collect();
            return Ok(if v.len() == 1 {
                DomainOptions::Fixed(Some(v[0]))
            } else {
                DomainOptions::Choice(v.into_iter().map(|d| (d, 0.0)).collect())
            });
        }
        match reqset_get(&tr.requirements, key) {
            None => Ok(DomainOptions::Fixed(None)),
            Some(v) if v.single().is_some() => Ok(DomainOptions::Fixed(v.single())),
            Some(v) if v.absent_ok && v.present_empty() => Ok(DomainOptions::Fixed(None)),
            Some(v) if !v.complement && !v.absent_ok => Ok(DomainOptions::Choice(
                v.vals.iter().map(|&d| (d, 0.0)).collect(),
            )),
            Some(_) => Err(Rejection::TopologyKey(key)),
        }
    }

    pub(super) fn pin(&self, tr: &mut Trial, key: u32, d: u32) {
        if key == self.cluster.hostname_key {
            return;
        }
        if key == self.cluster.zone_key {
            tr.zone_mask &= 1 << d;
        } else if key == self.cluster.capacity_type_key {
            tr.capacity_mask &= 1 << d;
        } else if self.is_type_key(key) {
            tr.types
                .retain(|t| label(&self.cluster.types[t].labels, key) == Some(d));
        } else {
            reqset_add(&mut tr.requirements, key, VSet::only(d), &self.vals);
        }
    }
}
