//! Label selectors in string form (the `status.selector` of a scale subresource), parsed once and
//! matched against pod labels, with the semantics of Kubernetes' `labels.Parse`:
//! `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
//! `key>N`, `key<N`, comma-separated (all must hold).
//!
//! The decision core checks the syntax and reports `InvalidSelector`; this module only selects
//! pods, so a selector it cannot parse selects nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Gt(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            Requirement::Lt(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        }
    }
}

/// A parsed selector: every requirement must hold. The empty selector selects everything (the
/// reconciler never uses it to select pods: the core rejects it first).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    /// Parses `app=web,tier in (a,b)`.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
        };
        let mut reqs = Vec::new();
        p.skip_ws();
        if p.at_end() {
            return Ok(Selector(reqs));
        }
        loop {
            reqs.push(p.requirement()?);
            p.skip_ws();
            if p.at_end() {
                break;
            }
            p.expect(',')?;
        }
        Ok(Selector(reqs))
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    /// Whether this selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `key=value` requirements (and `key in (v)` with one value): a pod must carry each of
    /// these labels to match, so they can pick candidates from a label index.
    pub fn required_labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter_map(|r| match r {
            Requirement::Equals(k, v) => Some((k.as_str(), v.as_str())),
            Requirement::In(k, vs) if vs.len() == 1 => Some((k.as_str(), vs[0].as_str())),
            _ => None,
        })
    }
}

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

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {c:?} at position {}", self.pos))
        }
    }
    fn ident(&mut self) -> String {
        self.skip_ws();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }
    fn values(&mut self) -> Result<Vec<String>, String> {
        self.expect('(')?;
        let mut out = Vec::new();
        loop {
            out.push(self.ident());
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(out);
                }
                _ => return Err(format!("expected ',' or ')' at position {}", self.pos)),
            }
        }
    }
    fn requirement(&mut self) -> Result<Requirement, String> {
        self.skip_ws();
        if self.peek() == Some('!') {
            self.pos += 1;
            let key = self.ident();
            if key.is_empty() {
                return Err(format!("expected a label key at position {}", self.pos));
            }
            return Ok(Requirement::NotExists(key));
        }
        let key = self.ident();
        if key.is_empty() {
            return Err(format!("expected a label key at position {}", self.pos));
        }
        self.skip_ws();
        match self.peek() {
            None | Some(',') => Ok(Requirement::Exists(key)),
            Some('=') => {
                self.pos += 1;
                if self.peek() == Some('=') {
                    self.pos += 1;
                }
                Ok(Requirement::Equals(key, self.ident()))
            }
            Some('!') => {
                self.pos += 1;
                self.expect('=')?;
                Ok(Requirement::NotEquals(key, self.ident()))
            }
            Some(c @ ('>' | '<')) => {
                self.pos += 1;
                let v = self.ident();
                let n = v
                    .parse::<i64>()
                    .map_err(|_| format!("{v:?} is not an integer"))?;
                Ok(if c == '>' {
                    Requirement::Gt(key, n)
                } else {
                    Requirement::Lt(key, n)
                })
            }
            _ => {
                let op = self.ident();
                match op.as_str() {
                    "in" => Ok(Requirement::In(key, self.values()?)),
                    "notin" => Ok(Requirement::NotIn(key, self.values()?)),
                    _ => Err(format!("unknown operator {op:?} after {key:?}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_matches_every_operator() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("gen", "3")]);
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app=api", false),
            ("app!=api", true),
            ("app", true),
            ("!app", false),
            ("!zone", true),
            ("tier in (front, back)", true),
            ("tier notin (front)", false),
            ("zone notin (a)", true),
            ("gen>2", true),
            ("gen<3", false),
            ("app=web,tier=front", true),
            ("app=web, tier=back", false),
            ("", true),
            ("app=", false),
        ] {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel}");
        }
        for bad in ["app in a", "=x", "app=web,", "gen>x", "app ~ x"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }

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
