//! YAML output that YAML 1.1 readers read back as written.
//!
//! `serde_yaml` follows YAML 1.2, where `Off`, `On`, `Yes`, `No`, `y` and `n` are plain strings,
//! so it leaves them unquoted; YAML 1.1 readers (PyYAML, older Go libraries, many editors) read
//! them as booleans. Every such plain scalar in a sequence item or a mapping value is quoted.

use serde::Serialize;

/// Words YAML 1.1 reads as booleans.
const YAML11_BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// `value` as YAML with YAML 1.1 booleans words quoted.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_yaml::Error> {
    Ok(quote_yaml11_booleans(&serde_yaml::to_string(value)?))
}

/// Quotes every plain scalar of `text` (as `serde_yaml` writes it) that YAML 1.1 reads as a
/// boolean; block scalars (`|`, `>`) are left alone.
pub fn quote_yaml11_booleans(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut block_indent: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let indent = body.len() - body.trim_start().len();
        if let Some(b) = block_indent {
            if body.trim().is_empty() || indent > b {
                out.push_str(line);
                continue;
            }
            block_indent = None;
        }
        let trimmed = body.trim_end();
        if trimmed.ends_with('|')
            || trimmed.ends_with("|-")
            || trimmed.ends_with('>')
            || trimmed.ends_with(">-")
        {
            block_indent = Some(indent);
        }
        out.push_str(&quote_line(body));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn quote_line(body: &str) -> String {
    // the scalar after the last "- " or ": " that starts it
    let cut = [body.rfind(": ").map(|i| i + 2), sequence_item(body)]
        .into_iter()
        .flatten()
        .max();
    match cut {
        Some(at) if YAML11_BOOLEANS.contains(&&body[at..]) => {
            format!("{}'{}'", &body[..at], &body[at..])
        }
        _ => body.to_string(),
    }
}

fn sequence_item(body: &str) -> Option<usize> {
    let rest = body.trim_start();
    rest.starts_with("- ").then(|| body.len() - rest.len() + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_of_yaml_1_1_are_quoted() {
        let cases = [
            ("enum:\n- Off\n- Auto\n", "enum:\n- 'Off'\n- Auto\n"),
            ("mode: Off\nx: On\n", "mode: 'Off'\nx: 'On'\n"),
            ("  - mode: No\n", "  - mode: 'No'\n"),
            (
                "d: |\n  - Off\n  mode: Off\ne: Yes\n",
                "d: |\n  - Off\n  mode: Off\ne: 'Yes'\n",
            ),
            ("name: Offset\n- Auto\n", "name: Offset\n- Auto\n"),
        ];
        for (input, want) in cases {
            assert_eq!(quote_yaml11_booleans(input), want, "{input:?}");
        }
        let value: serde_yaml::Value = serde_yaml::from_str("mode: 'Off'").unwrap();
        assert_eq!(to_string(&value).unwrap(), "mode: 'Off'\n");
    }
}
