//! Label selectors in string form (the `status.selector` of a scale subresource): the one grammar
//! of Kubernetes' `labels.Parse` the core checks and the shell selects pods with. Comma-separated
//! requirements, all of which must hold: `key`, `!key`, `key=value`, `key==value`, `key!=value`,
//! `key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1`. Keys and values are checked as label
//! keys and values; a value may be empty (`key=`, and an empty slot of a list: `key in (a,)`
//! holds `a` and the empty value).
//!
//! The core reports a selector [`Selector::parse`] refuses as `InvalidSelector`; the shell selects
//! pods only with a selector it accepts.

use std::collections::BTreeMap;

/// Why a selector string is not a selector (the message says where and what was expected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SelectorError {
    /// What is wrong, for the `InvalidSelector` condition.
    pub reason: String,
}

impl From<String> for SelectorError {
    fn from(reason: String) -> Self {
        SelectorError { reason }
    }
}

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key`: the label is present.
    Exists(String),
    /// `!key`: the label is absent.
    NotExists(String),
    /// `key=value`, `key==value`.
    Equals(String, String),
    /// `key!=value` (an absent label holds it).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (an absent label holds it).
    NotIn(String, Vec<String>),
    /// `key>n`: the label is an integer above `n`.
    Gt(String, i64),
    /// `key<n`: the label is an integer below `n`.
    Lt(String, i64),
}

impl Requirement {
    /// Whether the labels satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let int = |k: &str| labels.get(k).and_then(|l| l.parse::<i64>().ok());
        match self {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Gt(k, n) => int(k).is_some_and(|l| l > *n),
            Requirement::Lt(k, n) => int(k).is_some_and(|l| l < *n),
        }
    }
}

/// A parsed selector: every requirement must hold. The empty selector selects everything (the
/// core refuses it as a scale target's selector before anything is selected with it).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    /// Parses `app=web,tier in (a,b)`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let tokens = lex(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let mut requirements = Vec::new();
        if parser.tokens.is_empty() {
            return Ok(Selector(requirements));
        }
        loop {
            requirements.push(parser.requirement()?);
            match parser.peek() {
                None => return Ok(Selector(requirements)),
                Some(Token::Comma) => {
                    parser.at += 1;
                    if parser.peek().is_none() {
                        return Err(SelectorError::from(
                            "the selector ends with ','".to_string(),
                        ));
                    }
                }
                other => {
                    return Err(format!(
                        "expected ',' between requirements, found {}",
                        describe(other)
                    )
                    .into());
                }
            }
        }
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

/// Checks the selector's syntax. The empty string is syntactically valid (it selects
/// everything); the caller rejects it separately.
pub(crate) fn check(selector: &str) -> Result<(), String> {
    Selector::parse(selector).map(drop).map_err(|e| e.reason)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
}

fn lex(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '>' => {
                out.push(Token::Gt);
                i += 1;
            }
            '<' => {
                out.push(Token::Lt);
                i += 1;
            }
            '=' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Token::DoubleEq);
                    i += 2;
                } else {
                    out.push(Token::Eq);
                    i += 1;
                }
            }
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Token::NotEq);
                    i += 2;
                } else {
                    out.push(Token::Not);
                    i += 1;
                }
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '-' | '_' | '.' | '/'))
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?} at position {i}")),
        }
    }
    Ok(out)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn check_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "invalid label key {k:?}: the prefix must be a DNS subdomain"
            ));
        }
    }
    if !is_name(name) {
        return Err(format!(
            "invalid label key {k:?}: name part must be 1-63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
        ));
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_name(v) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {v:?}: must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
        ))
    }
}

/// A cursor over the tokens of one selector.
struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.tokens.get(self.at) {
            Some(Token::Ident(s)) => {
                self.at += 1;
                Ok(s.clone())
            }
            other => Err(format!("expected {what}, found {}", describe(other))),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Not) {
            self.at += 1;
            let key = self.ident("a label key after '!'")?;
            check_key(&key)?;
            return Ok(Requirement::NotExists(key));
        }
        let key = self.ident("a label key")?;
        check_key(&key)?;
        match self.peek().cloned() {
            None | Some(Token::Comma) => Ok(Requirement::Exists(key)),
            Some(op @ (Token::Eq | Token::DoubleEq | Token::NotEq)) => {
                self.at += 1;
                let value = self.optional_value()?;
                Ok(if op == Token::NotEq {
                    Requirement::NotEquals(key, value)
                } else {
                    Requirement::Equals(key, value)
                })
            }
            Some(op @ (Token::Gt | Token::Lt)) => {
                self.at += 1;
                let v = self.ident("an integer")?;
                let n = v.parse::<i64>().map_err(|_| {
                    format!("for 'Gt', 'Lt' operators, the value must be an integer, got {v:?}")
                })?;
                Ok(if op == Token::Gt {
                    Requirement::Gt(key, n)
                } else {
                    Requirement::Lt(key, n)
                })
            }
            Some(Token::Ident(op)) if op == "in" || op == "notin" => {
                self.at += 1;
                let values = self.values(&op)?;
                Ok(if op == "in" {
                    Requirement::In(key, values)
                } else {
                    Requirement::NotIn(key, values)
                })
            }
            other => Err(format!(
                "expected an operator after {key:?}, found {}",
                describe(other.as_ref())
            )),
        }
    }

    /// The value after `=`, `==` or `!=`: empty when the requirement ends there.
    fn optional_value(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Token::Ident(v)) => {
                let v = v.clone();
                check_value(&v)?;
                self.at += 1;
                Ok(v)
            }
            None | Some(Token::Comma) => Ok(String::new()),
            other => Err(format!("expected a label value, found {}", describe(other))),
        }
    }

    /// `(a, b)` after `in` / `notin`; an empty slot is the empty value.
    fn values(&mut self, op: &str) -> Result<Vec<String>, String> {
        if self.peek() != Some(&Token::Open) {
            return Err(format!(
                "expected '(' after '{op}', found {}",
                describe(self.peek())
            ));
        }
        self.at += 1;
        let mut values = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Ident(v)) => {
                    let v = v.clone();
                    check_value(&v)?;
                    self.at += 1;
                    values.push(v);
                }
                Some(Token::Comma) | Some(Token::Close) => values.push(String::new()),
                other => {
                    return Err(format!("expected a label value, found {}", describe(other)));
                }
            }
            match self.peek() {
                Some(Token::Comma) => self.at += 1,
                Some(Token::Close) => {
                    self.at += 1;
                    return Ok(values);
                }
                other => return Err(format!("expected ',' or ')', found {}", describe(other))),
            }
        }
    }
}

fn describe(t: Option<&Token>) -> String {
    match t {
        None => "the end".into(),
        Some(Token::Ident(s)) => format!("{s:?}"),
        Some(Token::Not) => "'!'".into(),
        Some(Token::Eq) => "'='".into(),
        Some(Token::DoubleEq) => "'=='".into(),
        Some(Token::NotEq) => "'!='".into(),
        Some(Token::Gt) => "'>'".into(),
        Some(Token::Lt) => "'<'".into(),
        Some(Token::Comma) => "','".into(),
        Some(Token::Open) => "'('".into(),
        Some(Token::Close) => "')'".into(),
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
    fn accepts_the_grammar_of_labels_parse() {
        for ok in [
            "",
            "app=web",
            "app==web,tier!=db",
            "app in (web, api),!legacy,env",
            "example.com/team notin (a,b)",
            "app=",
            "rank>3,rank<10",
            "app.kubernetes.io/name=web",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in [
            "app=web,",
            "app web",
            "app in web",
            "app in (web",
            "=web",
            "app=-web",
            "app=we b",
            "Upper_Case.Prefix/app=x",
            "rank>three",
            "app=web;tier=db",
            "app ~ x",
            "gen>x",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad} should be rejected");
        }
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
    }

    /// Where the shell's former parser and the core's former check differed. The shell parsed
    /// (and selected pods with) selectors whose keys or values are not label keys or values;
    /// those are now refused, as the core always reported them `InvalidSelector`. Empty slots of
    /// a value list were the empty value in the shell and accepted by the core: kept.
    #[test]
    fn edge_cases_of_the_two_former_grammars() {
        let empty_app = labels(&[("app", "")]);
        let web = labels(&[("app", "web")]);
        let rows: [(&str, Option<(bool, bool)>); 9] = [
            // selector, None if refused, else (matches app="", matches app=web)
            ("app in ()", Some((true, false))),
            ("app in (web,)", Some((true, true))),
            ("app notin (,web)", Some((false, false))),
            ("app!=", Some((false, true))),
            ("-app=web", None),
            ("a/b/c=web", None),
            ("app=web-", None),
            ("app\u{a0}=web", None),
            ("app=web\u{a0}", None),
        ];
        for (text, want) in rows {
            match (Selector::parse(text), want) {
                (Ok(s), Some((empty, w))) => {
                    assert_eq!(s.matches(&empty_app), empty, "{text}");
                    assert_eq!(s.matches(&web), w, "{text}");
                }
                (Err(_), None) => {}
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
    }

    #[test]
    fn required_labels_are_the_equalities() {
        let s = Selector::parse("app=web,tier in (a),gen in (a,b),!x,y!=z").unwrap();
        let req: Vec<_> = s.required_labels().collect();
        assert_eq!(req, vec![("app", "web"), ("tier", "a")]);
    }
}
