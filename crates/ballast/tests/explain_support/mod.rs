//! What the `explain --live` bed tests share: running `ballast` on the bed's kubeconfig (or
//! another), and a kubeconfig that impersonates a user with no rights.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, Result};
use ballast_testbed::TestBed;

/// The bed's kubeconfig file.
pub fn kubeconfig(bed: &TestBed) -> Result<PathBuf> {
    Ok(PathBuf::from(
        bed.env()
            .get("BALLAST_KUBECONFIG")
            .context("BALLAST_KUBECONFIG")?,
    ))
}

/// `ballast ARGS...` on `kubeconfig`, run to completion from the repository root.
pub fn ballast_with(kubeconfig: &Path, args: &[&str]) -> Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(repo_root())
        .env("KUBECONFIG", kubeconfig)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .output()
        .context("running ballast")
}

/// `ballast ARGS...` on the bed's kubeconfig.
pub fn ballast(bed: &TestBed, args: &[&str]) -> Result<Output> {
    ballast_with(&kubeconfig(bed)?, args)
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh folder under the system's temporary folder.
pub fn temp_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ballast-explain-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A copy of the bed's kubeconfig, written into `dir`, whose user impersonates
/// `ballast-nobody` (a user no role names): every read is forbidden.
pub fn nobody_kubeconfig(bed: &TestBed, dir: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(kubeconfig(bed)?)?;
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let users = config["users"]
        .as_sequence_mut()
        .context("kubeconfig users")?;
    for user in users {
        user["user"]["as"] = "ballast-nobody".into();
    }
    let path = dir.join("nobody.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config)?)?;
    Ok(path)
}

/// Runs `args` and expects exit status 2 with `fragment` on standard error.
pub fn fails_naming(kubeconfig: &Path, args: &[&str], fragment: &str) -> Result<()> {
    let out = ballast_with(kubeconfig, args)?;
    let err = text(&out.stderr);
    anyhow::ensure!(
        out.status.code() == Some(2),
        "ballast {args:?}: exit {:?}, expected 2:\n{}{err}",
        out.status.code(),
        text(&out.stdout)
    );
    anyhow::ensure!(
        err.contains(fragment),
        "ballast {args:?}: the error does not say {fragment:?}: {err}"
    );
    println!("$ ballast {}\n{err}", args.join(" "));
    Ok(())
}
