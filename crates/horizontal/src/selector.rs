//! Syntax check of a label-selector string (the `status.selector` of a scale subresource), with
//! the grammar of Kubernetes' `labels.Parse`: comma-separated requirements `key`, `!key`,
//! `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1`.
//! The pods themselves are selected by the I/O shell; the core only needs to know whether the
//! selector is usable, to report `InvalidSelector` as upstream does.

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

/// Checks the selector's syntax. The empty string is syntactically valid (it selects
/// everything); the caller rejects it separately.
pub(crate) fn check(selector: &str) -> Result<(), String> {
    let tokens = lex(selector)?;
    if tokens.is_empty() {
        return Ok(());
    }
    let mut i = 0;
    let next_ident = |i: &mut usize, what: &str| -> Result<String, String> {
        match tokens.get(*i) {
            Some(Token::Ident(s)) => {
                *i += 1;
                Ok(s.clone())
            }
            other => Err(format!("expected {what}, found {}", describe(other))),
        }
    };
    loop {
        if tokens.get(i) == Some(&Token::Not) {
            i += 1;
            let key = next_ident(&mut i, "a label key after '!'")?;
            check_key(&key)?;
        } else {
            let key = next_ident(&mut i, "a label key")?;
            check_key(&key)?;
            match tokens.get(i) {
                None | Some(Token::Comma) => {}
                Some(Token::Eq | Token::DoubleEq | Token::NotEq) => {
                    i += 1;
                    // A value may be empty (`key=`).
                    match tokens.get(i) {
                        Some(Token::Ident(v)) => {
                            check_value(v)?;
                            i += 1;
                        }
                        None | Some(Token::Comma) => {}
                        other => {
                            return Err(format!(
                                "expected a label value, found {}",
                                describe(other)
                            ));
                        }
                    }
                }
                Some(Token::Gt | Token::Lt) => {
                    i += 1;
                    let v = next_ident(&mut i, "an integer")?;
                    if v.parse::<i64>().is_err() {
                        return Err(format!(
                            "for 'Gt', 'Lt' operators, the value must be an integer, got {v:?}"
                        ));
                    }
                }
                Some(Token::Ident(op)) if op == "in" || op == "notin" => {
                    i += 1;
                    if tokens.get(i) != Some(&Token::Open) {
                        return Err(format!(
                            "expected '(' after '{op}', found {}",
                            describe(tokens.get(i))
                        ));
                    }
                    i += 1;
                    loop {
                        match tokens.get(i) {
                            Some(Token::Ident(v)) => {
                                check_value(v)?;
                                i += 1;
                            }
                            Some(Token::Comma) | Some(Token::Close) => {}
                            other => {
                                return Err(format!(
                                    "expected a label value, found {}",
                                    describe(other)
                                ));
                            }
                        }
                        match tokens.get(i) {
                            Some(Token::Comma) => i += 1,
                            Some(Token::Close) => {
                                i += 1;
                                break;
                            }
                            other => {
                                return Err(format!(
                                    "expected ',' or ')', found {}",
                                    describe(other)
                                ));
                            }
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "expected an operator after {key:?}, found {}",
                        describe(other)
                    ));
                }
            }
        }
        match tokens.get(i) {
            None => return Ok(()),
            Some(Token::Comma) => {
                i += 1;
                if tokens.get(i).is_none() {
                    return Err("the selector ends with ','".into());
                }
            }
            other => {
                return Err(format!(
                    "expected ',' between requirements, found {}",
                    describe(other)
                ));
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
    use super::check;

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
        ] {
            assert!(check(bad).is_err(), "{bad} should be rejected");
        }
    }
}
