//! Which other autoscalers select the same pods (`AmbiguousSelector`): the target selector each
//! autoscaler used last, by namespace, indexed by one required label.
//!
//! Upstream refuses to scale a target whose pods more than one autoscaler selects. That holds only
//! if the index knows every autoscaler when a decision is taken: filled one reconcile at a time,
//! the first of two autoscalers decided after a start would see no other and rescale. So
//! [`Selectors::complete`] registers, before a decision of a namespace is taken, the selector of
//! every autoscaler of that namespace not registered yet (one scale read each, once per process),
//! and a scale read that fails (an API server restart) keeps the selector last read instead of
//! forgetting it. An autoscaler leaves the index only when it is deleted ([`Selectors::forget`]).
//!
//! With `--native-hpa` one index holds both kinds ([`Kind::index_name`]: an HPA's name carries
//! its kind), so a `HorizontalAutoscaler` and an HPA on the same target each see the other
//! (`AmbiguousSelector` on both, neither scales), as two HPAs do upstream.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_horizontal::selector::Selector;
use futures::StreamExt;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::label_index::LabelIndex;
use super::pods::IndexedPod;
use crate::scale::{ScaleRead, Targets};

/// Scale reads at once while completing the index.
const COMPLETE_CONCURRENCY: usize = 16;

/// The target selector each autoscaler used last, by namespace, indexed by one required label
/// (selectors that require none are checked against every pod).
#[derive(Default)]
struct NsSelectors {
    by_name: HashMap<String, Arc<Selector>>,
    index: LabelIndex,
    unindexed: HashSet<String>,
}

impl NsSelectors {
    fn remove(&mut self, name: &str) {
        if let Some(old) = self.by_name.remove(name) {
            match old.required_labels().next() {
                Some((k, v)) => self.index.remove(k, v, name),
                None => {
                    self.unindexed.remove(name);
                }
            }
        }
    }

    fn insert(&mut self, name: &str, sel: Arc<Selector>) {
        self.remove(name);
        match sel.required_labels().next() {
            Some((k, v)) => self.index.insert(k, v, name),
            None => {
                self.unindexed.insert(name.to_owned());
            }
        }
        self.by_name.insert(name.to_owned(), sel);
    }
}

/// The selectors of every autoscaler this process has registered, by namespace.
#[derive(Default)]
pub(super) struct Selectors {
    map: RwLock<HashMap<String, NsSelectors>>,
    /// `ns/name` of every autoscaler registered (whether its target could be read or not).
    registered: RwLock<HashSet<String>>,
    /// Held while a namespace is being completed, so concurrent decisions read each target once.
    completing: tokio::sync::Mutex<()>,
}

impl Selectors {
    /// Registers what a scale read says of an autoscaler's selector: the selector when the read
    /// succeeded (None: the target has none, or it does not parse), nothing new when it failed
    /// (the selector read last stays).
    pub(super) fn record(&self, ns: &str, name: &str, read: &ScaleRead) {
        self.registered
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("{ns}/{name}"));
        if read.scale.error.is_some() {
            return;
        }
        let sel = Selector::parse(&read.scale.selector)
            .ok()
            .filter(|_| !read.scale.selector.trim().is_empty());
        self.set(ns, name, sel.map(Arc::new));
    }

    /// Drops a deleted autoscaler.
    pub(super) fn forget(&self, ns: &str, name: &str) {
        self.set(ns, name, None);
        self.registered
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&format!("{ns}/{name}"));
    }

    fn is_registered(&self, ns: &str, name: &str) -> bool {
        self.registered
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&format!("{ns}/{name}"))
    }

    /// Registers every autoscaler of `ns` in `objects` (of `kind`, once it holds the full list)
    /// that is not registered yet, besides `name` (the index name of the one being decided, which
    /// registers itself), reading their targets' scales.
    pub(super) async fn complete(
        &self,
        ns: &str,
        name: &str,
        objects: &Store<HorizontalAutoscaler>,
        kind: Kind,
        targets: &Targets,
    ) {
        let missing = |objects: &Store<HorizontalAutoscaler>| -> Vec<Arc<HorizontalAutoscaler>> {
            objects
                .state()
                .into_iter()
                .filter(|h| h.namespace().as_deref() == Some(ns))
                .filter(|h| h.metadata.deletion_timestamp.is_none())
                .filter(|h| {
                    let n = kind.index_name(&h.name_any());
                    n != name && !self.is_registered(ns, &n)
                })
                .collect()
        };
        if objects.wait_until_ready().await.is_err() || missing(objects).is_empty() {
            return;
        }
        let _one_at_a_time = self.completing.lock().await;
        futures::stream::iter(missing(objects))
            .for_each_concurrent(COMPLETE_CONCURRENCY, |h| async move {
                let read = targets.read(ns, &h.spec.scale_target_ref).await;
                self.record(ns, &kind.index_name(&h.name_any()), &read);
            })
            .await;
    }

    pub(super) fn set(&self, ns: &str, name: &str, sel: Option<Arc<Selector>>) {
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            let current = map.get(ns).and_then(|m| m.by_name.get(name));
            if current.map(|s| &**s) == sel.as_deref() {
                return;
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        match sel {
            Some(s) => map.entry(ns.to_owned()).or_default().insert(name, s),
            None => {
                if let Some(m) = map.get_mut(ns) {
                    m.remove(name);
                    if m.by_name.is_empty() {
                        map.remove(ns);
                    }
                }
            }
        }
    }

    /// Other autoscalers of `ns` whose selector selects one of `pods`, as `ns/name`, sorted.
    /// Candidates: the selectors indexed under one of the pods' labels, and those requiring none.
    pub(super) fn others_selecting(
        &self,
        ns: &str,
        name: &str,
        pods: &[Arc<IndexedPod>],
    ) -> Vec<String> {
        if pods.is_empty() {
            return Vec::new();
        }
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let Some(m) = map.get(ns) else {
            return Vec::new();
        };
        let mut candidates: HashSet<&str> = m.unindexed.iter().map(String::as_str).collect();
        for p in pods {
            for (k, v) in &p.labels {
                if let Some(names) = m.index.get(k, v) {
                    candidates.extend(names.iter().map(String::as_str));
                }
            }
        }
        candidates.remove(name);
        let mut out: Vec<String> = candidates
            .into_iter()
            .filter(|other| {
                m.by_name
                    .get(*other)
                    .is_some_and(|sel| pods.iter().any(|p| sel.matches(&p.labels)))
            })
            .map(|other| format!("{ns}/{other}"))
            .collect();
        out.sort();
        out
    }
}

/// Which objects a reconciler decides: `HorizontalAutoscaler`s, or native HPAs read as them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Own,
    Native,
}

/// What an HPA's index name adds to its name (no object name holds a space).
const NATIVE_SUFFIX: &str = " (HorizontalPodAutoscaler)";

impl Kind {
    /// The other kind.
    pub(super) fn other(self) -> Kind {
        match self {
            Kind::Own => Kind::Native,
            Kind::Native => Kind::Own,
        }
    }

    /// An object's name in the selector index: ours as it is, an HPA's with its kind, so the
    /// two kinds never share an entry and the conflict message says which is which.
    pub(super) fn index_name(self, name: &str) -> String {
        match self {
            Kind::Own => name.to_owned(),
            Kind::Native => format!("{name}{NATIVE_SUFFIX}"),
        }
    }

    /// The other autoscalers (`ns/index name`) as the object of this kind names them: an HPA
    /// names a `HorizontalAutoscaler` by its kind too (their names may be the same).
    pub(super) fn describe(self, others: Vec<String>) -> Vec<String> {
        match self {
            Kind::Own => others,
            Kind::Native => others
                .into_iter()
                .map(|o| {
                    if o.ends_with(NATIVE_SUFFIX) {
                        o
                    } else {
                        format!("{o} (HorizontalAutoscaler)")
                    }
                })
                .collect(),
        }
    }

    /// The name of the housekeeping heartbeat of this kind's reconciler.
    pub(super) fn housekeeping(self) -> &'static str {
        match self {
            Kind::Own => "housekeeping",
            Kind::Native => "housekeeping-native-hpa",
        }
    }

    /// The object events name: the HPA itself for a native one.
    pub(super) fn reference(
        self,
        object: &HorizontalAutoscaler,
    ) -> k8s_openapi::api::core::v1::ObjectReference {
        let mut reference = kube::Resource::object_ref(object, &());
        if self == Kind::Native {
            reference.api_version = Some("autoscaling/v2".into());
            reference.kind = Some("HorizontalPodAutoscaler".into());
        }
        reference
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_autoscalers_selecting_the_same_pods() {
        let pod = |labels: &[(&str, &str)]| {
            Arc::new(IndexedPod {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                snapshot: Default::default(),
            })
        };
        let s = Selectors::default();
        let sel = |t: &str| Some(Arc::new(Selector::parse(t).unwrap()));
        s.set("ns", "web", sel("app=web"));
        s.set("ns", "web-canary", sel("app=web,track=canary"));
        s.set("ns", "api", sel("app=api"));
        s.set("ns", "everything", sel("tier"));
        s.set("other", "web", sel("app=web"));
        let web = [pod(&[("app", "web"), ("track", "stable")])];
        assert!(s.others_selecting("ns", "web", &web).is_empty());
        let canary = [pod(&[("app", "web"), ("track", "canary")])];
        assert_eq!(s.others_selecting("ns", "web", &canary), ["ns/web-canary"]);
        let front = [pod(&[("app", "api"), ("tier", "front")])];
        assert_eq!(s.others_selecting("ns", "api", &front), ["ns/everything"]);
        // A changed selector moves in the index.
        s.set("ns", "web-canary", sel("app=other"));
        assert!(s.others_selecting("ns", "web", &canary).is_empty());
        s.set("ns", "everything", None);
        assert!(s.others_selecting("ns", "api", &front).is_empty());
    }

    /// An HPA and a HorizontalAutoscaler of one name on one target: two entries, each sees the
    /// other, named by kind.
    #[test]
    fn both_kinds_of_one_name_see_each_other() {
        let pod = Arc::new(IndexedPod {
            labels: [("app".to_string(), "web".to_string())].into(),
            snapshot: Default::default(),
        });
        let s = Selectors::default();
        let sel = || Some(Arc::new(Selector::parse("app=web").unwrap()));
        let hpa = Kind::Native.index_name("web");
        s.set("ns", "web", sel());
        s.set("ns", &hpa, sel());
        let pods = [pod];
        assert_eq!(
            s.others_selecting("ns", "web", &pods),
            ["ns/web (HorizontalPodAutoscaler)"]
        );
        assert_eq!(
            Kind::Native.describe(s.others_selecting("ns", &hpa, &pods)),
            ["ns/web (HorizontalAutoscaler)"]
        );
    }
}
