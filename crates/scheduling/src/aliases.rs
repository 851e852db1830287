//! Karpenter's spellings of Ballast's label, annotation and taint keys: the one table.
//!
//! Ballast's keys live under `nodes.ballast.dev/`. Workloads written for Karpenter select
//! `karpenter.sh/capacity-type`, `karpenter.sh/nodepool`, `karpenter.k8s.aws/instance-family`...
//! Every reader of a key (the scheduling core's requirement sets and selectors, the nodes core's
//! annotations and taints, `ballast convert`) maps it through [`canonical_key`], so both spellings
//! mean the same thing; every node Ballast launches carries both spellings of its labels
//! ([`add_karpenter_spellings`]), so a selector written either way matches it.

use std::collections::BTreeMap;

/// What an aliased key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasKind {
    /// A node label: read in requirements and selectors, written on launched nodes.
    Label,
    /// A pod or node annotation: read, never written.
    Annotation,
    /// A node taint: read, never written under Karpenter's key.
    Taint,
}

/// One key with its two spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias {
    /// Ballast's spelling (`nodes.ballast.dev/...`): the canonical one.
    pub ours: &'static str,
    /// Karpenter's spelling (`karpenter.sh/...`, `karpenter.k8s.aws/...`).
    pub karpenter: &'static str,
    pub kind: AliasKind,
}

const fn label(ours: &'static str, karpenter: &'static str) -> Alias {
    Alias {
        ours,
        karpenter,
        kind: AliasKind::Label,
    }
}

/// Every key Ballast and Karpenter spell differently.
pub const ALIASES: &[Alias] = &[
    label("nodes.ballast.dev/nodepool", "karpenter.sh/nodepool"),
    label(
        "nodes.ballast.dev/capacity-type",
        "karpenter.sh/capacity-type",
    ),
    label("nodes.ballast.dev/initialized", "karpenter.sh/initialized"),
    label("nodes.ballast.dev/registered", "karpenter.sh/registered"),
    label(
        "nodes.ballast.dev/instance-family",
        "karpenter.k8s.aws/instance-family",
    ),
    label(
        "nodes.ballast.dev/instance-size",
        "karpenter.k8s.aws/instance-size",
    ),
    label(
        "nodes.ballast.dev/instance-category",
        "karpenter.k8s.aws/instance-category",
    ),
    label(
        "nodes.ballast.dev/instance-generation",
        "karpenter.k8s.aws/instance-generation",
    ),
    label(
        "nodes.ballast.dev/instance-cpu",
        "karpenter.k8s.aws/instance-cpu",
    ),
    label(
        "nodes.ballast.dev/instance-memory",
        "karpenter.k8s.aws/instance-memory",
    ),
    label(
        "nodes.ballast.dev/instance-gpu-count",
        "karpenter.k8s.aws/instance-gpu-count",
    ),
    label(
        "nodes.ballast.dev/instance-gpu-name",
        "karpenter.k8s.aws/instance-gpu-name",
    ),
    label(
        "nodes.ballast.dev/instance-hypervisor",
        "karpenter.k8s.aws/instance-hypervisor",
    ),
    label(
        "nodes.ballast.dev/instance-cpu-manufacturer",
        "karpenter.k8s.aws/instance-cpu-manufacturer",
    ),
    label(
        "nodes.ballast.dev/instance-network-bandwidth",
        "karpenter.k8s.aws/instance-network-bandwidth",
    ),
    label(
        "nodes.ballast.dev/instance-local-nvme",
        "karpenter.k8s.aws/instance-local-nvme",
    ),
    label(
        "nodes.ballast.dev/ec2nodeclass",
        "karpenter.k8s.aws/ec2nodeclass",
    ),
    Alias {
        ours: "nodes.ballast.dev/do-not-disrupt",
        karpenter: "karpenter.sh/do-not-disrupt",
        kind: AliasKind::Annotation,
    },
    Alias {
        ours: "nodes.ballast.dev/disrupted",
        karpenter: "karpenter.sh/disrupted",
        kind: AliasKind::Taint,
    },
];

/// Ballast's spelling of `key`: the key itself unless it is Karpenter's spelling of one of ours.
/// Cheap for keys outside Karpenter's domains (one prefix test).
pub fn canonical_key(key: &str) -> &str {
    if !key.starts_with("karpenter.") {
        return key;
    }
    ALIASES
        .iter()
        .find(|a| a.karpenter == key)
        .map_or(key, |a| a.ours)
}

/// Karpenter's spelling of one of Ballast's keys, if it has one.
pub fn karpenter_key(ours: &str) -> Option<&'static str> {
    ALIASES.iter().find(|a| a.ours == ours).map(|a| a.karpenter)
}

/// The value of `key` in a label or annotation map, under either spelling (Ballast's first).
pub fn get<'m>(map: &'m BTreeMap<String, String>, key: &str) -> Option<&'m String> {
    let ours = canonical_key(key);
    map.get(ours)
        .or_else(|| karpenter_key(ours).and_then(|k| map.get(k)))
}

/// Whether two keys are the same key under either spelling.
pub fn same_key(a: &str, b: &str) -> bool {
    canonical_key(a) == canonical_key(b)
}

/// Adds Karpenter's spelling beside each of Ballast's node labels in `labels` (an existing value
/// under Karpenter's key is left as it is), so selectors written for Karpenter match the node.
pub fn add_karpenter_spellings(labels: &mut BTreeMap<String, String>) {
    for a in ALIASES.iter().filter(|a| a.kind == AliasKind::Label) {
        if let Some(v) = labels.get(a.ours).cloned() {
            labels.entry(a.karpenter.to_string()).or_insert(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_key_maps_karpenter_spellings_to_ours() {
        let cases = [
            (
                "karpenter.sh/capacity-type",
                "nodes.ballast.dev/capacity-type",
            ),
            ("karpenter.sh/nodepool", "nodes.ballast.dev/nodepool"),
            (
                "karpenter.k8s.aws/instance-family",
                "nodes.ballast.dev/instance-family",
            ),
            (
                "karpenter.k8s.aws/instance-size",
                "nodes.ballast.dev/instance-size",
            ),
            (
                "karpenter.k8s.aws/instance-category",
                "nodes.ballast.dev/instance-category",
            ),
            (
                "karpenter.k8s.aws/instance-cpu",
                "nodes.ballast.dev/instance-cpu",
            ),
            (
                "karpenter.k8s.aws/instance-memory",
                "nodes.ballast.dev/instance-memory",
            ),
            (
                "karpenter.sh/do-not-disrupt",
                "nodes.ballast.dev/do-not-disrupt",
            ),
            ("karpenter.sh/disrupted", "nodes.ballast.dev/disrupted"),
            // Ours and everything else stay as they are.
            (
                "nodes.ballast.dev/capacity-type",
                "nodes.ballast.dev/capacity-type",
            ),
            ("topology.kubernetes.io/zone", "topology.kubernetes.io/zone"),
            ("karpenter.sh/unknown", "karpenter.sh/unknown"),
            (
                "karpenter.k8s.aws/instance-foo",
                "karpenter.k8s.aws/instance-foo",
            ),
        ];
        for (key, want) in cases {
            assert_eq!(canonical_key(key), want, "{key}");
        }
    }

    #[test]
    fn every_alias_is_spelled_in_its_domain_and_appears_once() {
        for a in ALIASES {
            assert!(a.ours.starts_with("nodes.ballast.dev/"), "{}", a.ours);
            assert!(a.karpenter.starts_with("karpenter."), "{}", a.karpenter);
            assert_eq!(ALIASES.iter().filter(|b| b.ours == a.ours).count(), 1);
            assert_eq!(
                ALIASES
                    .iter()
                    .filter(|b| b.karpenter == a.karpenter)
                    .count(),
                1
            );
            assert_eq!(karpenter_key(a.ours), Some(a.karpenter));
        }
    }

    #[test]
    fn get_reads_either_spelling_ours_first() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ours = "nodes.ballast.dev/do-not-disrupt";
        let theirs = "karpenter.sh/do-not-disrupt";
        let cases = [
            (map(&[(ours, "true")]), ours, Some("true")),
            (map(&[(theirs, "1h")]), ours, Some("1h")),
            (map(&[(theirs, "1h")]), theirs, Some("1h")),
            (map(&[(ours, "true"), (theirs, "1h")]), theirs, Some("true")),
            (map(&[("other", "x")]), ours, None),
        ];
        for (m, key, want) in cases {
            assert_eq!(get(&m, key).map(String::as_str), want, "{key} in {m:?}");
        }
    }

    #[test]
    fn launched_node_labels_get_both_spellings_annotations_and_taints_do_not() {
        let mut l: BTreeMap<String, String> = [
            ("nodes.ballast.dev/capacity-type", "spot"),
            ("nodes.ballast.dev/instance-family", "m6i"),
            ("karpenter.sh/nodepool", "kept"),
            ("nodes.ballast.dev/nodepool", "general"),
            ("nodes.ballast.dev/do-not-disrupt", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        add_karpenter_spellings(&mut l);
        assert_eq!(l["karpenter.sh/capacity-type"], "spot");
        assert_eq!(l["karpenter.k8s.aws/instance-family"], "m6i");
        assert_eq!(l["karpenter.sh/nodepool"], "kept");
        assert!(!l.contains_key("karpenter.sh/do-not-disrupt"));
        assert!(!l.contains_key("karpenter.sh/disrupted"));
    }
}
