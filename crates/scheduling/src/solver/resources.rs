//! Resource vectors and instance-type sets: the two value types every other part of the solver
//! computes with.

use super::*;

/// A fixed resource vector: cpu, memory, pods, ephemeral-storage, then up to 8 extended resources.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct ResourceVector(pub [i64; DIMS]);

impl ResourceVector {
    pub(super) fn add(&self, o: &ResourceVector) -> ResourceVector {
        let mut r = *self;
        for i in 0..DIMS {
            r.0[i] = r.0[i].saturating_add(o.0[i]);
        }
        r
    }
    pub(super) fn sub(&self, o: &ResourceVector) -> ResourceVector {
        let mut r = *self;
        for i in 0..DIMS {
            r.0[i] = r.0[i].saturating_sub(o.0[i]);
        }
        r
    }
    pub(super) fn le(&self, o: &ResourceVector) -> bool {
        (0..DIMS).all(|i| self.0[i] <= o.0[i])
    }
    pub(super) fn first_over(&self, o: &ResourceVector) -> Option<usize> {
        (0..DIMS).find(|&i| self.0[i] > o.0[i])
    }
    pub(super) fn max(&self, o: &ResourceVector) -> ResourceVector {
        let mut r = *self;
        for i in 0..DIMS {
            r.0[i] = r.0[i].max(o.0[i]);
        }
        r
    }
    pub(super) fn min(&self, o: &ResourceVector) -> ResourceVector {
        let mut r = *self;
        for i in 0..DIMS {
            r.0[i] = r.0[i].min(o.0[i]);
        }
        r
    }
}

/// A set of instance types as a bitset.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct TypeSet(pub(super) Vec<u64>);

impl TypeSet {
    pub(super) fn new(n: usize, all: bool) -> TypeSet {
        let mut v = vec![if all { u64::MAX } else { 0 }; n.div_ceil(64)];
        if all
            && !n.is_multiple_of(64)
            && let Some(last) = v.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        TypeSet(v)
    }
    pub(super) fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub(super) fn and(&mut self, o: &TypeSet) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a &= b;
        }
    }
    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
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
    pub(super) fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
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

pub(super) fn mask_bits(mask: u64) -> impl Iterator<Item = usize> {
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

pub(super) fn dimension_error(kind: Kind, name: &str, field: &str, why: String) -> ModelError {
    ModelError::new(kind, name, field, why)
}

/// Resource dimensions of a solve: the built-ins plus the extended resources that the given
/// (pending) pods request or that NodePool limits name, sorted.
pub(crate) fn solve_dims<'p>(
    pods: impl Iterator<Item = &'p Pod>,
    node_pools: &[crate::model::NodePool],
) -> Result<Vec<String>, ModelError> {
    let mut dimensions: Vec<String> = BUILTIN.iter().map(|s| s.to_string()).collect();
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
    dimensions.extend(ext);
    Ok(dimensions)
}
