//! Per-node entries kept across decisions and renewed by [`ClusterNode::pods_revision`]: the
//! bookkeeping the disruption and provisioning memos share.

use rustc_hash::FxHashMap;

use crate::snapshot::ClusterNode;

/// One entry per node of the last snapshot, by node name.
#[derive(Debug, Clone)]
pub(crate) struct ByRevision<T> {
    pass: u64,
    entries: FxHashMap<String, Entry<T>>,
    /// Nodes read again by the last [`ByRevision::refresh`].
    pub read: usize,
}

#[derive(Debug, Clone)]
struct Entry<T> {
    revision: Option<u64>,
    seen: u64,
    value: T,
}

impl<T> Default for ByRevision<T> {
    fn default() -> Self {
        ByRevision {
            pass: 0,
            entries: FxHashMap::default(),
            read: 0,
        }
    }
}

impl<T> ByRevision<T> {
    /// Keeps the entry of every node whose revision is the one it was read at and for which
    /// `still` holds; reads the others with `read` (a node without a revision always) and
    /// forgets nodes that are no longer in `nodes`.
    pub fn refresh(
        &mut self,
        nodes: &[ClusterNode],
        still: impl Fn(&ClusterNode, &T) -> bool,
        mut read: impl FnMut(&ClusterNode) -> T,
    ) {
        self.pass += 1;
        let pass = self.pass;
        self.read = 0;
        for n in nodes {
            let kept = self.entries.get_mut(&n.name).filter(|e| {
                n.pods_revision.is_some() && e.revision == n.pods_revision && still(n, &e.value)
            });
            match kept {
                Some(e) => e.seen = pass,
                None => {
                    self.read += 1;
                    let entry = Entry {
                        revision: n.pods_revision,
                        seen: pass,
                        value: read(n),
                    };
                    self.entries.insert(n.name.clone(), entry);
                }
            }
        }
        self.entries.retain(|_, e| e.seen == pass);
    }

    /// The entry of a node of the last refresh.
    pub fn get(&self, node: &str) -> &T {
        &self.entries[node].value
    }

    pub fn get_mut(&mut self, node: &str) -> &mut T {
        &mut self.entries.get_mut(node).expect("refreshed").value
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.values_mut().map(|e| &mut e.value)
    }
}
