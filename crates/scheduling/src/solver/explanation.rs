//! Explanations: why a candidate was rejected ([`Rejection`], cheap, built on every try) and
//! why a pod could not be placed anywhere ([`Unschedulable`], built once per failed pod).

use super::*;

/// Why one candidate was rejected (cheap to build; turned into a `Reason` only for reports).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Rejection {
    Cordoned,
    Taint(Taint),
    Requirement(u32),
    Volume,
    Exceeds { dim: usize, need: i64, largest: i64 },
    NoFit(ResourceVector),
    NoOffering,
    Resource { dim: usize, need: i64, free: i64 },
    Limits(usize),
    MinValues { key: u32, min: u32, left: u32 },
    Spread(usize),
    Affinity(usize),
    AntiAffinity(usize),
    InverseAnti(usize),
    TopologyKey(u32),
    Port(u16),
    Conflict,
    StaticPool,
}

impl<'a> Solver<'a> {
    pub(super) fn dropped_names(&self, pi: usize) -> Vec<String> {
        let p = &self.pods[pi];
        let pod = &self.pod_sources[p.source];
        p.soft[..p.relaxed]
            .iter()
            .map(|s| match s {
                Preference::NodeAffinity(i) => format!(
                    "preferred node affinity term (weight {})",
                    p.preferred_node_terms[*i].0
                ),
                Preference::Spread(i) => format!(
                    "ScheduleAnyway topology spread on {}",
                    self.keys.name(self.groups[p.spread[*i].group].key)
                ),
                Preference::Affinity(i) => format!(
                    "preferred pod affinity on {}",
                    self.keys.name(self.groups[p.affinity[*i].group].key)
                ),
                Preference::AntiAffinity(i) => format!(
                    "preferred pod anti-affinity on {}",
                    self.keys.name(self.groups[p.anti[*i].group].key)
                ),
                Preference::PreferNoSchedule => {
                    let _ = pod;
                    "PreferNoSchedule taints".to_string()
                }
            })
            .collect()
    }

    pub(super) fn reason(&self, w: &Rejection) -> Reason {
        let dim = |d: usize| {
            if d == LIMIT_NODES {
                "nodes".to_string()
            } else {
                self.cluster.dimensions[d].clone()
            }
        };
        match w {
            Rejection::Cordoned => Reason::Cordoned,
            Rejection::Taint(t) => Reason::TaintNotTolerated { taint: t.clone() },
            Rejection::Requirement(k) => Reason::Requirement {
                key: self.keys.name(*k).to_string(),
                wanted: String::new(),
                offered: String::new(),
            },
            Rejection::Volume => Reason::VolumeZone {
                volumes: vec![],
                zones: vec![],
            },
            Rejection::Exceeds {
                dim: d,
                need,
                largest,
            } => Reason::ExceedsLargestInstanceType {
                resource: dim(*d),
                needed: *need,
                largest: *largest,
            },
            Rejection::NoFit(vector) => Reason::NoInstanceTypeFits {
                needed: self.resources(vector),
            },
            Rejection::NoOffering => Reason::NoAvailableOffering,
            Rejection::Resource { dim: d, need, free } => Reason::InsufficientResource {
                resource: dim(*d),
                needed: *need,
                free: *free,
            },
            Rejection::Limits(d) => Reason::LimitsReached { resource: dim(*d) },
            Rejection::MinValues { key, min, left } => Reason::MinValues {
                key: self.keys.name(*key).to_string(),
                min: *min,
                left: *left,
            },
            Rejection::Spread(g) => {
                let skew = match self.groups[*g].kind {
                    GroupKind::Spread { skew, .. } => skew,
                    _ => 0,
                };
                Reason::TopologySpread {
                    key: self.keys.name(self.groups[*g].key).to_string(),
                    max_skew: skew,
                }
            }
            Rejection::Affinity(g) => Reason::PodAffinity {
                key: self.keys.name(self.groups[*g].key).to_string(),
            },
            Rejection::AntiAffinity(g) => Reason::PodAntiAffinity {
                key: self.keys.name(self.groups[*g].key).to_string(),
            },
            Rejection::InverseAnti(g) => Reason::ExistingPodAntiAffinity {
                key: self.keys.name(self.groups[*g].key).to_string(),
            },
            Rejection::TopologyKey(k) => Reason::TopologyKeyUndetermined {
                key: self.keys.name(*k).to_string(),
            },
            Rejection::Port(p) => Reason::HostPortConflict { port: *p },
            Rejection::Conflict => Reason::ConflictingPreferences,
            Rejection::StaticPool => Reason::StaticNodePool,
        }
    }

    /// Fills in what the pod wanted and what the candidate offered for requirement reasons.
    pub(super) fn detail(
        &self,
        pi: usize,
        r: Reason,
        offered: Option<&dyn Fn(u32) -> String>,
    ) -> Reason {
        match r {
            Reason::Requirement { key, .. } => {
                let p = &self.pods[pi];
                let k = self.keys.get(&key);
                let wanted = k
                    .and_then(|k| {
                        p.alternative_ids
                            .iter()
                            .find_map(|&a| reqset_get(&self.alternatives[a].rs, k))
                    })
                    .or_else(|| {
                        k.and_then(|k| {
                            p.required_alternatives
                                .iter()
                                .find_map(|a| reqset_get(a, k))
                        })
                    })
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
                let pod = &self.pod_sources[self.pods[pi].source];
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

    pub(super) fn pool_offers(&self, pool: usize, key: u32) -> String {
        let pp = &self.pools[pool];
        let mut vals = BTreeSet::new();
        if key == self.cluster.zone_key {
            for t in pp.types.iter() {
                for c in mask_bits(pp.capacity_mask) {
                    for z in
                        mask_bits(self.cluster.types[t].zones_by_capacity_type[c] & pp.zone_mask)
                    {
                        vals.insert(self.vals.name(self.cluster.zones[z]).to_string());
                    }
                }
            }
        } else if key == self.cluster.capacity_type_key {
            for t in pp.types.iter() {
                for c in mask_bits(pp.capacity_mask) {
                    if self.cluster.types[t].zones_by_capacity_type[c] & pp.zone_mask != 0 {
                        vals.insert(self.vals.name(self.cluster.capacity_types[c]).to_string());
                    }
                }
            }
        } else if self.is_type_key(key) {
            for t in pp.types.iter() {
                if let Some(v) = label(&self.cluster.types[t].labels, key) {
                    vals.insert(self.vals.name(v).to_string());
                }
            }
            if vals.len() > 12 {
                let n = vals.len();
                let first: Vec<String> = vals.into_iter().take(12).collect();
                return format!("{} values: {} ...", n, first.join(","));
            }
        } else if key == self.cluster.hostname_key {
            return "a new hostname".into();
        } else {
            return reqset_get(&pp.requirements, key)
                .map(|v| v.describe(&self.vals))
                .unwrap_or_else(|| "no such label".into());
        }
        if vals.is_empty() {
            "nothing".into()
        } else {
            vals.into_iter().collect::<Vec<_>>().join(",")
        }
    }

    pub(super) fn explain(&self, pi: usize) -> Unschedulable {
        let pod = self.pod_sources[self.pods[pi].source].key();
        let mut node_pools = vec![];
        if self.cluster.options.allow_new_nodes {
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
            if let Err(w) = self.try_existing(pi, s) {
                let f = |k: u32| match label(&self.cluster.slots[s].labels, k) {
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
                    Rejection::Exceeds { dim, .. } | Rejection::Resource { dim, .. } => {
                        Reason::InsufficientResource {
                            resource: self.cluster.dimensions[dim].clone(),
                            needed: self.pods[pi].requests.0[dim],
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
        if node_pools.is_empty() && self.cluster.options.allow_new_nodes && self.pools.is_empty() {
            node_pools.push(("-".into(), Reason::NoNodePools));
        }
        Unschedulable {
            pod,
            node_pools,
            nodes: tally,
            relaxed: self.dropped_names(pi),
        }
    }
}
