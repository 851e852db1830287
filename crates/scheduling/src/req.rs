//! Interned labels, requirement sets and label selectors: the set algebra the solver runs on.

use rustc_hash::FxHashMap;

use crate::model::{LabelSelector, Operator, Requirement, SelectorOperator};

/// Interns strings to dense ids; remembers the integer value of each string for Gt/Lt.
///
/// An interner may sit on top of a shared one (`layered`): the shared strings keep their ids
/// and new strings get ids after them, so a prepared cluster's strings are not copied for every
/// solve. Nothing the solver decides depends on the order of ids, only on the strings.
#[derive(Debug, Default, Clone)]
pub(crate) struct Interner<'a> {
    base: Option<&'a Interner<'a>>,
    map: FxHashMap<String, u32>,
    names: Vec<String>,
    nums: Vec<Option<i64>>,
    /// Label keys: Karpenter's spelling of a key gets the id of Ballast's (`aliases`).
    label_keys: bool,
}

impl<'a> Interner<'a> {
    /// An interner that starts with every string of `base`.
    pub fn layered(base: &'a Interner<'a>) -> Self {
        Interner {
            base: Some(base),
            label_keys: base.label_keys,
            ..Interner::default()
        }
    }
    /// An interner of label keys: both spellings of an aliased key
    /// ([`crate::aliases::canonical_key`]) get one id, named by Ballast's spelling.
    pub fn label_keys() -> Self {
        Interner {
            label_keys: true,
            ..Interner::default()
        }
    }
    fn offset(&self) -> u32 {
        self.base.map_or(0, |b| b.len() as u32)
    }
    pub fn len(&self) -> usize {
        self.offset() as usize + self.names.len()
    }
    pub fn id(&mut self, s: &str) -> u32 {
        let s = self.spelling(s);
        if let Some(i) = self.get(s) {
            return i;
        }
        let i = self.offset() + self.names.len() as u32;
        self.map.insert(s.to_string(), i);
        self.names.push(s.to_string());
        self.nums.push(s.parse::<i64>().ok());
        i
    }
    /// The string this interner stores for `s`.
    fn spelling<'s>(&self, s: &'s str) -> &'s str {
        if self.label_keys {
            crate::aliases::canonical_key(s)
        } else {
            s
        }
    }
    pub fn get(&self, s: &str) -> Option<u32> {
        let s = self.spelling(s);
        self.base
            .and_then(|b| b.get(s))
            .or_else(|| self.map.get(s).copied())
    }
    pub fn name(&self, i: u32) -> &str {
        let off = self.offset();
        match self.base {
            Some(b) if i < off => b.name(i),
            _ => &self.names[(i - off) as usize],
        }
    }
    pub fn num(&self, i: u32) -> Option<i64> {
        let off = self.offset();
        match self.base {
            Some(b) if i < off => b.num(i),
            _ => self.nums[(i - off) as usize],
        }
    }
}

/// Sorted (key, value) label pairs.
pub(crate) type Labels = Vec<(u32, u32)>;

pub(crate) fn label(labels: &Labels, key: u32) -> Option<u32> {
    labels
        .binary_search_by_key(&key, |&(k, _)| k)
        .ok()
        .map(|i| labels[i].1)
}

pub(crate) fn intern_labels<'a>(
    keys: &mut Interner,
    vals: &mut Interner,
    it: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Labels {
    let mut v: Labels = it
        .into_iter()
        .map(|(k, x)| (keys.id(k), vals.id(x)))
        .collect();
    v.sort_unstable();
    v.dedup_by_key(|p| p.0);
    v
}

/// The values a label may take: whether it may be absent, and which present values are allowed
/// (`vals` or its complement, further bounded by `gt`/`lt` on the integer value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct VSet {
    pub absent_ok: bool,
    pub complement: bool,
    pub vals: Vec<u32>,
    pub gt: Option<i64>,
    pub lt: Option<i64>,
}

impl VSet {
    pub fn only(v: u32) -> Self {
        VSet {
            absent_ok: false,
            complement: false,
            vals: vec![v],
            gt: None,
            lt: None,
        }
    }
    pub fn absent() -> Self {
        VSet {
            absent_ok: true,
            complement: false,
            vals: vec![],
            gt: None,
            lt: None,
        }
    }

    /// Builds the set for one requirement; errors name the offending part.
    pub fn from_req(r: &Requirement, vals: &mut Interner) -> Result<Self, String> {
        let mut ids: Vec<u32> = r.values.iter().map(|v| vals.id(v)).collect();
        ids.sort_unstable();
        ids.dedup();
        let one_int = || -> Result<i64, String> {
            match r.values.as_slice() {
                [v] => v
                    .parse::<i64>()
                    .map_err(|_| format!("{:?} needs an integer value, got {v:?}", r.operator)),
                _ => Err(format!("{:?} needs exactly one value", r.operator)),
            }
        };
        Ok(match r.operator {
            Operator::In => {
                if ids.is_empty() {
                    return Err("In needs at least one value".into());
                }
                VSet {
                    absent_ok: false,
                    complement: false,
                    vals: ids,
                    gt: None,
                    lt: None,
                }
            }
            Operator::NotIn => VSet {
                absent_ok: true,
                complement: true,
                vals: ids,
                gt: None,
                lt: None,
            },
            Operator::Exists => VSet {
                absent_ok: false,
                complement: true,
                vals: vec![],
                gt: None,
                lt: None,
            },
            Operator::DoesNotExist => VSet::absent(),
            Operator::Gt => VSet {
                absent_ok: false,
                complement: true,
                vals: vec![],
                gt: Some(one_int()?),
                lt: None,
            },
            Operator::Lt => VSet {
                absent_ok: false,
                complement: true,
                vals: vec![],
                gt: None,
                lt: Some(one_int()?),
            },
        })
    }

    fn bounds_ok(&self, v: u32, vals: &Interner) -> bool {
        if self.gt.is_none() && self.lt.is_none() {
            return true;
        }
        match vals.num(v) {
            None => false,
            Some(n) => self.gt.is_none_or(|g| n > g) && self.lt.is_none_or(|l| n < l),
        }
    }

    /// Whether a label with this value (None = absent) satisfies the set.
    pub fn allows(&self, v: Option<u32>, vals: &Interner) -> bool {
        match v {
            None => self.absent_ok,
            Some(v) => {
                let listed = self.vals.binary_search(&v).is_ok();
                listed != self.complement && self.bounds_ok(v, vals)
            }
        }
    }

    /// Whether a label that is present with a value nobody named (a fresh hostname) passes.
    pub fn allows_fresh_value(&self) -> bool {
        self.complement && self.gt.is_none() && self.lt.is_none()
    }

    /// No present value is allowed.
    pub fn present_empty(&self) -> bool {
        if !self.complement {
            return self.vals.is_empty();
        }
        matches!((self.gt, self.lt), (Some(g), Some(l)) if l <= g.saturating_add(1))
    }

    pub fn is_empty(&self) -> bool {
        !self.absent_ok && self.present_empty()
    }

    pub fn single(&self) -> Option<u32> {
        if !self.complement && self.vals.len() == 1 {
            Some(self.vals[0])
        } else {
            None
        }
    }

    pub fn intersect(&self, o: &VSet, vals: &Interner) -> VSet {
        let absent_ok = self.absent_ok && o.absent_ok;
        let gt = match (self.gt, o.gt) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let lt = match (self.lt, o.lt) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut out = match (self.complement, o.complement) {
            (false, false) => VSet {
                absent_ok,
                complement: false,
                vals: self
                    .vals
                    .iter()
                    .copied()
                    .filter(|v| o.vals.binary_search(v).is_ok())
                    .collect(),
                gt,
                lt,
            },
            (false, true) | (true, false) => {
                let (pos, neg) = if self.complement {
                    (o, self)
                } else {
                    (self, o)
                };
                VSet {
                    absent_ok,
                    complement: false,
                    vals: pos
                        .vals
                        .iter()
                        .copied()
                        .filter(|v| neg.vals.binary_search(v).is_err())
                        .collect(),
                    gt,
                    lt,
                }
            }
            (true, true) => {
                let mut v = self.vals.clone();
                v.extend_from_slice(&o.vals);
                v.sort_unstable();
                v.dedup();
                VSet {
                    absent_ok,
                    complement: true,
                    vals: v,
                    gt,
                    lt,
                }
            }
        };
        if !out.complement && (out.gt.is_some() || out.lt.is_some()) {
            let bounded = VSet {
                vals: vec![],
                ..out.clone()
            };
            out.vals.retain(|&v| bounded.bounds_ok(v, vals));
            out.gt = None;
            out.lt = None;
        }
        out
    }

    pub fn describe(&self, vals: &Interner) -> String {
        // By name, not by id: ids follow the order strings were first seen.
        let names = |v: &[u32]| {
            let mut n: Vec<&str> = v.iter().map(|&i| vals.name(i)).collect();
            n.sort_unstable();
            n.join(",")
        };
        let mut parts = vec![];
        if !self.complement {
            if self.vals.is_empty() {
                parts.push("absent".to_string());
            } else {
                parts.push(format!("In [{}]", names(&self.vals)));
            }
        } else {
            if self.vals.is_empty() && !self.absent_ok && self.gt.is_none() && self.lt.is_none() {
                parts.push("Exists".into());
            }
            if !self.vals.is_empty() {
                parts.push(format!("NotIn [{}]", names(&self.vals)));
            }
        }
        if let Some(g) = self.gt {
            parts.push(format!("Gt {g}"));
        }
        if let Some(l) = self.lt {
            parts.push(format!("Lt {l}"));
        }
        parts.join(" and ")
    }
}

/// Requirements on several keys, sorted by key. All must hold.
pub(crate) type ReqSet = Vec<(u32, VSet)>;

/// Adds one key's set to a requirement set (intersecting when the key is already there).
pub(crate) fn reqset_add(rs: &mut ReqSet, key: u32, v: VSet, vals: &Interner) {
    match rs.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(i) => rs[i].1 = rs[i].1.intersect(&v, vals),
        Err(i) => rs.insert(i, (key, v)),
    }
}

pub(crate) fn reqset_merge(a: &ReqSet, b: &ReqSet, vals: &Interner) -> ReqSet {
    let mut out = a.clone();
    for (k, v) in b {
        reqset_add(&mut out, *k, v.clone(), vals);
    }
    out
}

pub(crate) fn reqset_get(rs: &ReqSet, key: u32) -> Option<&VSet> {
    rs.binary_search_by_key(&key, |(k, _)| *k)
        .ok()
        .map(|i| &rs[i].1)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum SelOp {
    In(Vec<u32>),
    NotIn(Vec<u32>),
    Exists,
    DoesNotExist,
}

/// A compiled label selector; `None` in the source (a null selector) matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Selector {
    pub nothing: bool,
    pub terms: Vec<(u32, SelOp)>,
}

impl Selector {
    pub fn compile(
        s: Option<&LabelSelector>,
        keys: &mut Interner,
        vals: &mut Interner,
    ) -> Selector {
        let Some(s) = s else {
            return Selector {
                nothing: true,
                terms: vec![],
            };
        };
        let mut terms = vec![];
        for (k, v) in &s.match_labels {
            terms.push((keys.id(k), SelOp::In(vec![vals.id(v)])));
        }
        for e in &s.match_expressions {
            let mut ids: Vec<u32> = e.values.iter().map(|v| vals.id(v)).collect();
            ids.sort_unstable();
            ids.dedup();
            let op = match e.operator {
                SelectorOperator::In => SelOp::In(ids),
                SelectorOperator::NotIn => SelOp::NotIn(ids),
                SelectorOperator::Exists => SelOp::Exists,
                SelectorOperator::DoesNotExist => SelOp::DoesNotExist,
            };
            terms.push((keys.id(&e.key), op));
        }
        terms.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| format!("{:?}", a.1).cmp(&format!("{:?}", b.1)))
        });
        terms.dedup();
        Selector {
            nothing: false,
            terms,
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        if self.nothing {
            return false;
        }
        self.terms.iter().all(|(k, op)| {
            let v = label(labels, *k);
            match op {
                SelOp::In(vs) => v.is_some_and(|v| vs.binary_search(&v).is_ok()),
                SelOp::NotIn(vs) => v.is_none_or(|v| vs.binary_search(&v).is_err()),
                SelOp::Exists => v.is_some(),
                SelOp::DoesNotExist => v.is_none(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(op: Operator, vs: &[&str], i: &mut Interner) -> VSet {
        VSet::from_req(&Requirement::new("k", op, vs), i).unwrap()
    }

    #[test]
    fn algebra() {
        let mut i = Interner::default();
        let a = set(Operator::In, &["a", "b", "c"], &mut i);
        let not_b = set(Operator::NotIn, &["b"], &mut i);
        let x = a.intersect(&not_b, &i);
        assert_eq!(x.vals.len(), 2);
        assert!(!x.absent_ok);
        let (ia, ib) = (i.id("a"), i.id("b"));
        assert!(x.allows(Some(ia), &i));
        assert!(!x.allows(Some(ib), &i));
        assert!(!x.allows(None, &i));
        assert!(not_b.allows(None, &i));
        let gone = set(Operator::DoesNotExist, &[], &mut i);
        assert!(a.intersect(&gone, &i).is_empty());
        assert!(!not_b.intersect(&gone, &i).is_empty());
        let gt = set(Operator::Gt, &["4"], &mut i);
        let lt = set(Operator::Lt, &["6"], &mut i);
        let between = gt.intersect(&lt, &i);
        assert!(between.allows(Some(i.id("5")), &i));
        assert!(!between.allows(Some(i.id("6")), &i));
        assert!(!between.allows(Some(ia), &i), "non-numeric fails Gt/Lt");
        let narrow = set(Operator::Gt, &["5"], &mut i).intersect(&lt, &i);
        assert!(narrow.is_empty());
        let nums = set(Operator::In, &["2", "8", "16"], &mut i);
        assert_eq!(nums.intersect(&gt, &i).vals.len(), 2);
        assert!(VSet::from_req(&Requirement::new("k", Operator::Gt, &["x"]), &mut i).is_err());
        assert!(VSet::from_req(&Requirement::new("k", Operator::In, &[]), &mut i).is_err());
    }
}
