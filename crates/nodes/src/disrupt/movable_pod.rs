//! A movable pod as the what-if placement reads it: its requests as a first-fit `Room` (cpu,
//! memory, pods, ephemeral storage, then up to eight extended resources), whether first fit can
//! place it, its place in the scheduling solver's placement order, and where the pod itself is.
//!
//! Read once per node by the memo, then only compared and summed by the what-if placement.

use ballast_scheduling::Pod;
use ballast_scheduling::first_fit::{Plain, Room};

use crate::snapshot::ClusterNode;

/// Where a pod of the simulation is: in its node's list in the snapshot, or translated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PodAt {
    Snapshot(usize),
    /// A copy whose label keys were translated to the scheduling model's spelling.
    Owned(Box<Pod>),
}

/// A movable pod prepared for the fast simulation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MovablePod {
    pub at: PodAt,
    pub req: Room,
    /// What first fit learnt of the pod, when it can place it (`None`: the solver must).
    pub plain: Option<Plain>,
    pub key: (i32, i64, i64),
    pub ns: Head,
    pub name: Head,
}

/// The pod `f` of node `n` stands for.
pub(crate) fn pod_of<'p>(n: &'p ClusterNode, f: &'p MovablePod) -> &'p Pod {
    match &f.at {
        PodAt::Snapshot(k) => &n.pods[*k].pod,
        PodAt::Owned(p) => p,
    }
}

/// The solver's placement order: priority, CPU and memory descending, then namespace and name
/// (`ap` and `bp` are the pods `a` and `b` stand for).
pub(crate) fn placement_order(
    a: &MovablePod,
    ap: &Pod,
    b: &MovablePod,
    bp: &Pod,
) -> std::cmp::Ordering {
    // The heads order names as the strings do, so the strings are only read when both are
    // longer than a head and their heads tie.
    a.key
        .cmp(&b.key)
        .then_with(|| a.ns.cmp_then(&b.ns, || ap.namespace.cmp(&bp.namespace)))
        .then_with(|| a.name.cmp_then(&b.name, || ap.name.cmp(&bp.name)))
}

/// The first [`Head::BYTES`] bytes of a string as a big-endian number (zero-padded), and its
/// length: enough to order most names without reading them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    prefix: u128,
    len: usize,
}

impl Head {
    pub const BYTES: usize = 16;

    pub fn of(s: &str) -> Head {
        let b = s.as_bytes();
        let prefix = match b.first_chunk::<16>() {
            Some(head) => u128::from_be_bytes(*head),
            // Byte by byte: copying a variable length into a buffer is a call to memcpy.
            None => (0..16).fold(0u128, |v, i| {
                v << 8 | u128::from(b.get(i).copied().unwrap_or(0))
            }),
        };
        Head {
            prefix,
            len: b.len(),
        }
    }

    /// The order of the two strings, with `full` comparing them when the heads cannot tell.
    ///
    /// A smaller prefix means a smaller string. When prefixes tie and one string fits in its
    /// head, it is the other's beginning (padding and NUL bytes alike are zeros, and the rest of
    /// the shorter is all padding), so the shorter is the smaller, or they are equal.
    pub fn cmp_then(
        &self,
        other: &Head,
        full: impl FnOnce() -> std::cmp::Ordering,
    ) -> std::cmp::Ordering {
        self.prefix.cmp(&other.prefix).then_with(|| {
            if self.len.min(other.len) <= Self::BYTES {
                self.len.cmp(&other.len)
            } else {
                full()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Head;
    use proptest::prelude::*;

    fn head_order(a: &str, b: &str) -> std::cmp::Ordering {
        Head::of(a).cmp_then(&Head::of(b), || a.cmp(b))
    }

    #[test]
    fn heads_order_names_as_strings() {
        let names = [
            "",
            "a",
            "a\0",
            "a\0\0",
            "ab",
            "svc-27-94",
            "svc-27-95",
            "svc-27-9",
            "exactly-16-bytes",
            "exactly-16-bytes\0",
            "exactly-16-bytesz",
            "exactly-16-byte",
            "a-much-longer-pod-name-7d9f8c-x2k9p",
            "a-much-longer-pod-name-7d9f8c-x2k9q",
            "a-much-longer-po",
            "é-accented",
        ];
        for a in names {
            for b in names {
                assert_eq!(head_order(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn heads_order_random_names(a in "[ab\0]{0,20}", b in "[ab\0]{0,20}") {
            prop_assert_eq!(head_order(&a, &b), a.cmp(&b));
        }
    }
}
