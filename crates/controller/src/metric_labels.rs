//! The label sets every reconciler's metric families use: a short list of `(name, value)` pairs.
//! Values are bounded words (an outcome, a NodePool, a method), never an object's name.

/// One label set of a metric family.
pub type Labels = Vec<(&'static str, String)>;

/// A one-label set.
pub fn label(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}

/// A label set from pairs, in order.
pub fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}
