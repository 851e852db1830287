//! Pods by label, so a selector's required labels pick its candidates without a scan of the
//! namespace. The selector grammar is the core's ([`ballast_horizontal::selector`]).

use std::collections::{HashMap, HashSet};

use ballast_horizontal::selector::Selector;

/// Names by label (`key` → `value` → names): the candidates a selector's required labels allow,
/// without scanning everything.
#[derive(Debug, Default)]
pub struct LabelIndex {
    map: HashMap<String, HashMap<String, HashSet<String>>>,
}

impl LabelIndex {
    pub fn insert(&mut self, key: &str, value: &str, name: &str) {
        self.map
            .entry(key.to_owned())
            .or_default()
            .entry(value.to_owned())
            .or_default()
            .insert(name.to_owned());
    }

    pub fn remove(&mut self, key: &str, value: &str, name: &str) {
        let Some(values) = self.map.get_mut(key) else {
            return;
        };
        if let Some(names) = values.get_mut(value) {
            names.remove(name);
            if names.is_empty() {
                values.remove(value);
            }
        }
        if values.is_empty() {
            self.map.remove(key);
        }
    }

    /// The names carrying `key=value`.
    pub fn get(&self, key: &str, value: &str) -> Option<&HashSet<String>> {
        self.map.get(key)?.get(value)
    }

    /// The smallest candidate set among the selector's required labels: `Some(empty)` when one of
    /// them is carried by nothing, `None` when the selector requires no label (scan everything).
    pub fn candidates(&self, selector: &Selector) -> Option<Vec<&str>> {
        let mut best: Option<Option<&HashSet<String>>> = None;
        for (k, v) in selector.required_labels() {
            let set = self.get(k, v);
            let len = set.map_or(0, HashSet::len);
            if best.is_none_or(|b| b.map_or(0, HashSet::len) > len) {
                best = Some(set);
            }
        }
        best.map(|set| {
            set.map(|s| s.iter().map(String::as_str).collect())
                .unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_index_picks_the_smallest_candidate_set() {
        let mut idx = LabelIndex::default();
        for (name, app, tier) in [
            ("a", "web", "front"),
            ("b", "web", "back"),
            ("c", "api", "back"),
        ] {
            idx.insert("app", app, name);
            idx.insert("tier", tier, name);
        }
        let sorted = |v: Option<Vec<&str>>| {
            v.map(|mut v| {
                v.sort();
                v.into_iter().map(String::from).collect::<Vec<_>>()
            })
        };
        let sel = |s: &str| Selector::parse(s).unwrap();
        assert_eq!(
            sorted(idx.candidates(&sel("app=web,tier=front"))),
            Some(vec!["a".into()])
        );
        assert_eq!(
            sorted(idx.candidates(&sel("app=web"))),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            sorted(idx.candidates(&sel("app=none,tier=back"))),
            Some(vec![])
        );
        assert_eq!(idx.candidates(&sel("app,tier notin (x)")), None);
        idx.remove("app", "api", "c");
        assert_eq!(sorted(idx.candidates(&sel("app=api"))), Some(vec![]));
    }
}
