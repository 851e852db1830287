//! JSON merge patches (RFC 7386) from an old and a new document: only what changed is sent, and
//! fields the new document no longer has are removed (`null`), which a merge patch of the new
//! document alone would leave in place (`status.history.lastActiveTime`, `lastScaleTime`...).

use serde_json::{Map, Value};

/// The merge patch turning `old` into `new`, or `None` when they are equal.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(p) = merge_patch(ov, nv) {
                            out.insert(k.clone(), p);
                        }
                    }
                    None => {
                        out.insert(k.clone(), strip_nulls(nv));
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        // A null in the new document would mean "delete": a value set to null is absent.
        (_, Value::Null) => Some(Value::Null),
        _ => Some(strip_nulls(new)),
    }
}

/// In a merge patch an object's null members mean "remove": drop them from added objects.
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies a merge patch (used by tests, and to check `merge_patch`).
pub fn apply(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("just made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    apply(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_turns_old_into_new() {
        let old = json!({"a": 1, "h": {"t": "x", "r": [1, 2]}, "gone": {"x": 1}, "same": [1]});
        let new = json!({"a": 2, "h": {"r": [2, 3]}, "added": {"y": null, "z": 1}, "same": [1]});
        let p = merge_patch(&old, &new).unwrap();
        assert_eq!(
            p,
            json!({"a": 2, "h": {"t": null, "r": [2, 3]}, "gone": null, "added": {"z": 1}})
        );
        let mut t = old.clone();
        apply(&mut t, &p);
        assert_eq!(
            t,
            json!({"a": 2, "h": {"r": [2, 3]}, "added": {"z": 1}, "same": [1]})
        );
        assert_eq!(merge_patch(&new, &new), None);
    }
}
