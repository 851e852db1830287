//! The variables `tests/testbed.sh` exports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

/// `BALLAST_*` (and the AWS test credentials) from the env file `tests/testbed.sh` writes,
/// overridden by `BALLAST_*` variables of the process environment.
///
/// The generic `KUBECONFIG` is deliberately not read from the process environment: a developer's
/// own cluster must never be mistaken for the test bed. Only `BALLAST_KUBECONFIG` counts.
#[derive(Clone, Debug, Default)]
pub struct TestBedEnv {
    vars: BTreeMap<String, String>,
    file: Option<PathBuf>,
}

impl TestBedEnv {
    /// Path of the env file: `$BALLAST_TESTBED_ENV`, else `$BALLAST_TESTBED_DIR/env`, else
    /// `/tmp/ballast-testbed/env`.
    pub fn default_file() -> PathBuf {
        if let Some(f) = std::env::var_os("BALLAST_TESTBED_ENV") {
            return f.into();
        }
        let dir = std::env::var_os("BALLAST_TESTBED_DIR")
            .unwrap_or_else(|| "/tmp/ballast-testbed".into());
        PathBuf::from(dir).join("env")
    }

    /// Reads the env file (if any) and the process environment.
    pub fn load() -> Result<TestBedEnv> {
        let file = Self::default_file();
        let mut env = match std::fs::read_to_string(&file) {
            Ok(text) => TestBedEnv {
                vars: parse(&text),
                file: Some(file.clone()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TestBedEnv::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        for (k, v) in std::env::vars() {
            if k.starts_with("BALLAST_") && k != "BALLAST_REQUIRE_TESTBED" && !v.is_empty() {
                env.vars.insert(k, v);
            }
        }
        if env.vars.is_empty() {
            bail!("no {} and no BALLAST_* variables", file.display());
        }
        Ok(env)
    }

    /// Parses env-file text (for tests of this crate).
    pub fn from_text(text: &str) -> TestBedEnv {
        TestBedEnv {
            vars: parse(text),
            file: None,
        }
    }

    /// One variable.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// All variables, sorted by name.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The env file they came from, if one was read.
    pub fn file(&self) -> Option<&PathBuf> {
        self.file.as_ref()
    }
}

/// `export KEY='value'` / `KEY="value"` / `KEY=value` lines; `#` comments and blanks ignored.
fn parse(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
            .unwrap_or(value);
        vars.insert(key.to_owned(), value.to_owned());
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_env_file_format() {
        let env = TestBedEnv::from_text(
            "# written by tests/testbed.sh\n\
             export BALLAST_TESTBED_DIR='/tmp/ballast-testbed'\n\
             export BALLAST_KUBECONFIG='/tmp/ballast-testbed/kubeconfig'\n\
             export BALLAST_RABBITMQ_URL='amqp://guest:guest@127.0.0.1:25672/%2f'\n\
             BARE=x=y\n\
             export QUOTED=\"two words\"\n\
             export EMPTY=''\n\
             not a line\n",
        );
        assert_eq!(
            env.get("BALLAST_KUBECONFIG"),
            Some("/tmp/ballast-testbed/kubeconfig")
        );
        assert_eq!(
            env.get("BALLAST_RABBITMQ_URL"),
            Some("amqp://guest:guest@127.0.0.1:25672/%2f")
        );
        assert_eq!(env.get("BARE"), Some("x=y"));
        assert_eq!(env.get("QUOTED"), Some("two words"));
        assert_eq!(env.get("EMPTY"), None);
        assert_eq!(env.vars().len(), 6);
    }
}
