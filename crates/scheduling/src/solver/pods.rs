//! Compiling pods.

use super::*;

/// One requirement alternative compiled against the catalog.
#[derive(Clone)]
pub(super) struct AltInfo {
    pub(super) rs: ReqSet,
    pub(super) types: Bits,
    pub(super) has_type_keys: bool,
    pub(super) zmask: u64,
    pub(super) cmask: u64,
    pub(super) host_fresh_ok: bool,
    pub(super) other: ReqSet,
}

/// An existing node or in-flight claim; what changes during a solve (requests used, host ports)

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum NsScope {
    All,
    Set(Vec<u32>),
}

impl NsScope {
    pub(super) fn has(&self, ns: u32) -> bool {
        match self {
            NsScope::All => true,
            NsScope::Set(v) => v.binary_search(&ns).is_ok(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Soft {
    NodePref(usize),
    Spread(usize),
    Affinity(usize),
    Anti(usize),
    PreferNoSchedule,
}

#[derive(Clone)]
pub(super) struct Term {
    pub(super) group: usize,
    /// Position in the relaxation order, None for a hard term.
    pub(super) soft: Option<usize>,
    pub(super) self_match: bool,
}

#[derive(Clone)]
pub(super) struct PPod {
    pub(super) src: usize,
    pub(super) ns: u32,
    pub(super) labels: Labels,
    pub(super) req: RV,
    pub(super) hard_alts: Vec<ReqSet>,
    pub(super) hard_problem: Option<Why>,
    pub(super) pref_node: Vec<(i32, ReqSet)>,
    pub(super) spread: Vec<Term>,
    pub(super) aff: Vec<Term>,
    pub(super) anti: Vec<Term>,
    pub(super) member: Vec<usize>,
    pub(super) ports: Vec<HostPort>,
    pub(super) soft: Vec<Soft>,
    pub(super) pns_soft: Option<usize>,
    pub(super) relaxed: usize,
    pub(super) eff_alts: Vec<usize>,
}

impl PPod {
    pub(super) fn active(&self, t: &Term) -> bool {
        t.soft.is_none_or(|p| p >= self.relaxed)
    }
    pub(super) fn pns_active(&self) -> bool {
        self.pns_soft.is_some_and(|p| p >= self.relaxed)
    }
}

impl<'a> Solver<'a> {
    pub(super) fn alt_id(&mut self, rs: &ReqSet) -> usize {
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

    pub(super) fn ns_scope(&mut self, term: &PodAffinityTerm, own: &str) -> NsScope {
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

    /// Rejects pods without a name, duplicates and negative quantities.
    pub(super) fn check_pods<'p>(
        &self,
        pods: impl Iterator<Item = &'p Pod>,
    ) -> Result<(), ModelError> {
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

    pub(super) fn check_pod_quantities(&self, p: &Pod) -> Result<(), ModelError> {
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

    pub(super) fn prepare_pods(&mut self, snap: &'a Snapshot) -> Result<(), ModelError> {
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
    pub(super) fn anti_term(
        &mut self,
        term: &PodAffinityTerm,
        ns: &str,
    ) -> (u32, NsScope, Selector) {
        let key = self.keys.id(&term.topology_key);
        let ns_scope = self.ns_scope(term, ns);
        let sel = Selector::compile(term.label_selector.as_ref(), &mut self.keys, &mut self.vals);
        (key, ns_scope, sel)
    }

    /// Records that a pod bound to `slot` keeps the pods its anti-affinity term selects out of
    /// its domain.
    pub(super) fn own_anti(&mut self, slot: usize, key: u32, ns: NsScope, sel: Selector) {
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
    pub(super) fn prepare_pending(&mut self, pending: Vec<&'a Pod>) -> Result<(), ModelError> {
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
    pub(super) fn set_members(&mut self) {
        for pi in 0..self.pods.len() {
            let p = &self.pods[pi];
            let member: Vec<usize> = (0..self.groups.len())
                .filter(|&g| self.groups[g].ns.has(p.ns) && self.groups[g].sel.matches(&p.labels))
                .collect();
            self.pods[pi].member = member;
        }
    }

    pub(super) fn prepare_pod(&mut self, src: usize, eff: &Resources) -> Result<PPod, ModelError> {
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
    pub(super) fn refresh_alts(&mut self, pi: usize) {
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
}
