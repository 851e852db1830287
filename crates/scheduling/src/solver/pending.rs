//! Compiling the pending pods: their order, requests, required node affinity as alternatives
//! (each one requirement set), topology terms (spread, affinity, anti-affinity) as groups, and the
//! preferences that may be relaxed one by one. Bound pods are counted into the groups here too.

use super::*;

/// One requirement alternative compiled against the catalog.
#[derive(Clone)]
pub(super) struct Alternative {
    pub(super) rs: ReqSet,
    pub(super) types: TypeSet,
    pub(super) has_type_keys: bool,
    pub(super) zone_mask: u64,
    pub(super) capacity_mask: u64,
    pub(super) host_fresh_ok: bool,
    pub(super) other: ReqSet,
}

/// An existing node or in-flight claim; what changes during a solve (requests used, host ports)

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum NamespaceScope {
    All,
    Set(Vec<u32>),
}

impl NamespaceScope {
    pub(super) fn has(&self, ns: u32) -> bool {
        match self {
            NamespaceScope::All => true,
            NamespaceScope::Set(v) => v.binary_search(&ns).is_ok(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Preference {
    NodeAffinity(usize),
    Spread(usize),
    Affinity(usize),
    AntiAffinity(usize),
    PreferNoSchedule,
}

#[derive(Clone)]
pub(super) struct GroupTerm {
    pub(super) group: usize,
    /// Position in the relaxation order, None for a hard term.
    pub(super) soft: Option<usize>,
    pub(super) self_match: bool,
}

#[derive(Clone)]
pub(super) struct PendingPod {
    pub(super) source: usize,
    pub(super) ns: u32,
    pub(super) labels: Labels,
    pub(super) requests: ResourceVector,
    pub(super) required_alternatives: Vec<ReqSet>,
    pub(super) hard_problem: Option<Rejection>,
    pub(super) preferred_node_terms: Vec<(i32, ReqSet)>,
    pub(super) spread: Vec<GroupTerm>,
    pub(super) affinity: Vec<GroupTerm>,
    pub(super) anti: Vec<GroupTerm>,
    pub(super) counted_in: Vec<usize>,
    pub(super) ports: Vec<HostPort>,
    pub(super) soft: Vec<Preference>,
    pub(super) prefer_no_schedule_step: Option<usize>,
    pub(super) relaxed: usize,
    pub(super) alternative_ids: Vec<usize>,
}

impl PendingPod {
    pub(super) fn active(&self, t: &GroupTerm) -> bool {
        t.soft.is_none_or(|p| p >= self.relaxed)
    }
    pub(super) fn prefer_no_schedule_active(&self) -> bool {
        self.prefer_no_schedule_step
            .is_some_and(|p| p >= self.relaxed)
    }
}

impl<'a> Solver<'a> {
    pub(super) fn alternative_id(&mut self, rs: &ReqSet) -> usize {
        if let Some(&i) = self.alternative_index.get(rs) {
            return i;
        }
        let (types, has_type_keys) = self.type_mask(rs);
        let zone_mask = self.zones_allowed(reqset_get(rs, self.cluster.zone_key));
        let capacity_mask =
            self.capacity_types_allowed(reqset_get(rs, self.cluster.capacity_type_key));
        let host_fresh_ok =
            reqset_get(rs, self.cluster.hostname_key).is_none_or(|v| v.allows_fresh_value());
        let other: ReqSet = rs
            .iter()
            .filter(|(k, _)| {
                !self.is_type_key(*k)
                    && *k != self.cluster.zone_key
                    && *k != self.cluster.capacity_type_key
                    && *k != self.cluster.hostname_key
            })
            .cloned()
            .collect();
        let id = self.alternatives.len();
        self.alternatives.push(Alternative {
            rs: rs.clone(),
            types,
            has_type_keys,
            zone_mask,
            capacity_mask,
            host_fresh_ok,
            other,
        });
        self.alternative_index.insert(rs.clone(), id);
        id
    }

    pub(super) fn ns_scope(&mut self, term: &PodAffinityTerm, own: &str) -> NamespaceScope {
        let mut set: Vec<u32> = term.namespaces.iter().map(|n| self.vals.id(n)).collect();
        match &term.namespace_selector {
            Some(sel) if sel.match_labels.is_empty() && sel.match_expressions.is_empty() => {
                return NamespaceScope::All;
            }
            Some(sel) => {
                let compiled = Selector::compile(Some(sel), &mut self.keys, &mut self.vals);
                let mut names: Vec<&String> = self.cluster.namespace_labels.keys().collect();
                names.sort();
                let picked: Vec<String> = names
                    .into_iter()
                    .filter(|n| compiled.matches(&self.cluster.namespace_labels[*n]))
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
        NamespaceScope::Set(set)
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
            .cluster
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
            let r = self.vector(&p.effective_requests());
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
                    && let Some(d) = self.slot_domain(slot, grp.key)
                {
                    Group::bump(&mut self.groups[g].counts, d);
                    self.groups[g].total += 1;
                }
            }
            for term in &p.affinity.pod_anti_affinity.required {
                let (key, ns_scope, sel) = self.compile_anti_term(term, &p.namespace);
                self.record_anti_affinity_owner(slot, key, ns_scope, sel);
            }
        }
        self.set_members();
        Ok(())
    }

    /// A bound pod's required anti-affinity term, compiled: topology key, namespaces, selector.
    pub(super) fn compile_anti_term(
        &mut self,
        term: &PodAffinityTerm,
        ns: &str,
    ) -> (u32, NamespaceScope, Selector) {
        let key = self.keys.id(&term.topology_key);
        let ns_scope = self.ns_scope(term, ns);
        let sel = Selector::compile(term.label_selector.as_ref(), &mut self.keys, &mut self.vals);
        (key, ns_scope, sel)
    }

    /// Records that a pod bound to `slot` keeps the pods its anti-affinity term selects out of
    /// its domain.
    pub(super) fn record_anti_affinity_owner(
        &mut self,
        slot: usize,
        key: u32,
        ns: NamespaceScope,
        sel: Selector,
    ) {
        let g = self.group(GroupKey {
            kind: GroupKind::AntiAffinity,
            key,
            ns,
            sel,
            eligible: vec![],
        });
        if let Some(d) = self.slot_domain(slot, key) {
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
        self.pod_sources = keyed.iter().map(|(_, p)| *p).collect();
        for (i, (eff, _)) in keyed.iter().enumerate() {
            let pp = self.prepare_pod(i, eff)?;
            self.pods.push(pp);
        }
        // Untolerated PreferNoSchedule taints anywhere make "tolerate them" a relaxable step.
        let pns: Vec<Taint> = self
            .live
            .iter()
            .flat_map(|&s| self.cluster.slots[s].taints.iter())
            .chain(self.pools.iter().flat_map(|p| p.taints.iter()))
            .filter(|t| t.effect == TaintEffect::PreferNoSchedule)
            .cloned()
            .collect();
        for pi in 0..self.pods.len() {
            let tol = &self.pod_sources[self.pods[pi].source].tolerations;
            if pns.iter().any(|t| !crate::model::tolerated(tol, t)) {
                let pos = self.pods[pi].soft.len();
                self.pods[pi].soft.push(Preference::PreferNoSchedule);
                self.pods[pi].prefer_no_schedule_step = Some(pos);
            }
            self.refresh_alternatives(pi);
        }
        Ok(())
    }

    /// Which groups count each pending pod.
    pub(super) fn set_members(&mut self) {
        for pi in 0..self.pods.len() {
            let p = &self.pods[pi];
            let counted_in: Vec<usize> = (0..self.groups.len())
                .filter(|&g| self.groups[g].ns.has(p.ns) && self.groups[g].sel.matches(&p.labels))
                .collect();
            self.pods[pi].counted_in = counted_in;
        }
    }

    pub(super) fn prepare_pod(
        &mut self,
        source: usize,
        eff: &Resources,
    ) -> Result<PendingPod, ModelError> {
        let p: &'a Pod = self.pod_sources[source];
        let name = p.key().to_string();
        let e = |field: &str, why: String| ModelError::new(Kind::Pod, &name, field, why);
        let ns = self.vals.id(&p.namespace);
        let labels = intern_labels(&mut self.keys, &mut self.vals, &p.labels);
        let requests = self.vector(eff);
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
            reqset_add(&mut base, self.cluster.zone_key, v, &self.vals);
            if reqset_get(&base, self.cluster.zone_key).is_some_and(|v| v.is_empty()) {
                hard_problem = Some(Rejection::Volume);
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
        let mut required_alternatives = vec![];
        if na.required.is_empty() {
            required_alternatives.push(base.clone());
        } else {
            for (ti, t) in na.required.iter().enumerate() {
                let rs = compile_term(self, &format!("affinity.nodeAffinity.required[{ti}]"), t)?;
                required_alternatives.push(reqset_merge(&base, &rs, &self.vals));
            }
        }
        let before = required_alternatives.len();
        required_alternatives.retain(|rs| rs.iter().all(|(_, v)| !v.is_empty()));
        if required_alternatives.is_empty() && hard_problem.is_none() && before > 0 {
            let k = self
                .first_key(base.iter().map(|(k, _)| *k))
                .unwrap_or(self.cluster.zone_key);
            hard_problem = Some(Rejection::Requirement(k));
        }
        let mut preferred_node_terms = vec![];
        for (ti, t) in na.preferred.iter().enumerate() {
            let rs = compile_term(
                self,
                &format!("affinity.nodeAffinity.preferred[{ti}]"),
                &t.preference,
            )?;
            preferred_node_terms.push((t.weight, rs));
        }
        let mut soft = vec![];
        let mut order: Vec<usize> = (0..preferred_node_terms.len()).collect();
        order.sort_by_key(|&i| (preferred_node_terms[i].0, i));
        soft.extend(order.into_iter().map(Preference::NodeAffinity));

        // Domains a spread constraint counts come from the pod's required node constraints.
        let hard_alt_ids: Vec<usize> = required_alternatives
            .iter()
            .map(|rs| self.alternative_id(rs))
            .collect();
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
            let eligible = if key == self.cluster.hostname_key {
                vec![]
            } else {
                let alternatives = match c.node_affinity_policy {
                    NodeInclusionPolicy::Honor => Some(hard_alt_ids.as_slice()),
                    NodeInclusionPolicy::Ignore => None,
                };
                self.eligible_domains(key, alternatives)
            };
            let kind = GroupKind::Spread {
                skew: c.max_skew,
                min_domains: c.min_domains.unwrap_or(1).max(1),
            };
            let g = self.group(GroupKey {
                kind,
                key,
                ns: NamespaceScope::Set(vec![ns]),
                sel,
                eligible,
            });
            let soft_pos = match c.when_unsatisfiable {
                WhenUnsatisfiable::DoNotSchedule => None,
                WhenUnsatisfiable::ScheduleAnyway => {
                    soft.push(Preference::Spread(spread.len()));
                    Some(soft.len() - 1)
                }
            };
            spread.push(GroupTerm {
                group: g,
                soft: soft_pos,
                self_match: false,
            });
        }
        let terms = |s: &mut Self,
                     kind: GroupKind,
                     pa: &crate::model::PodAffinity,
                     field: &str,
                     soft: &mut Vec<Preference>|
         -> Result<Vec<GroupTerm>, ModelError> {
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
                        GroupKind::Affinity => Preference::Affinity(out.len()),
                        _ => Preference::AntiAffinity(out.len()),
                    });
                    soft.len() - 1
                });
                out.push(GroupTerm {
                    group: g,
                    soft: soft_pos,
                    self_match,
                });
            }
            Ok(out)
        };
        let affinity = terms(
            self,
            GroupKind::Affinity,
            &p.affinity.pod_affinity,
            "affinity.podAffinity",
            &mut soft,
        )?;
        let anti = terms(
            self,
            GroupKind::AntiAffinity,
            &p.affinity.pod_anti_affinity,
            "affinity.podAntiAffinity",
            &mut soft,
        )?;
        Ok(PendingPod {
            source,
            ns,
            labels,
            requests,
            required_alternatives,
            hard_problem,
            preferred_node_terms,
            spread,
            affinity,
            anti,
            counted_in: vec![],
            ports: p.host_ports.clone(),
            soft,
            prefer_no_schedule_step: None,
            relaxed: 0,
            alternative_ids: vec![],
        })
    }

    /// Recomputes the pod's effective alternatives: each required term ANDed with the preferred
    /// node terms still in force.
    pub(super) fn refresh_alternatives(&mut self, pi: usize) {
        let p = &self.pods[pi];
        let mut active_prefs: ReqSet = vec![];
        for (pos, s) in p.soft.iter().enumerate() {
            if let Preference::NodeAffinity(i) = s
                && pos >= p.relaxed
            {
                active_prefs =
                    reqset_merge(&active_prefs, &p.preferred_node_terms[*i].1, &self.vals);
            }
        }
        let merged: Vec<ReqSet> = p
            .required_alternatives
            .iter()
            .map(|a| reqset_merge(a, &active_prefs, &self.vals))
            .filter(|rs| rs.iter().all(|(_, v)| !v.is_empty()))
            .collect();
        let ids: Vec<usize> = merged.iter().map(|rs| self.alternative_id(rs)).collect();
        self.pods[pi].alternative_ids = ids;
    }
}
