//! `ballast explain vertical`: a vertical snapshot, from a file (`-f`) or captured from the
//! cluster (`--live NAMESPACE/NAME`: the object and its checkpoints, as the recommender restores
//! them), recommended on by the core and printed with its reasons.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use ballast_vertical::explain::Snapshot;

use crate::cli::Format;

/// `ballast explain vertical -f SNAPSHOT [-o json|yaml]`: the recommendation of a snapshot and
/// why. The snapshot gives each container as usage series or as a checkpoint, read strictly.
pub fn explain(text: &str, output: Option<Format>) -> Result<ExitCode> {
    const WHAT: &str = "vertical snapshot";
    let map = crate::strict::mapping(text, "a vertical snapshot (see docs/vertical.md)")?;
    crate::strict::known_keys::<Snapshot>(&map, &[], WHAT)?;
    let snapshot: Snapshot = crate::strict::typed(serde_json::Value::Object(map), "", WHAT)?;
    print_recommendation(&snapshot, output)
}

/// `ballast explain vertical --live NAMESPACE/NAME [--save-snapshot FILE] [-o json|yaml]`: reads
/// the object and its checkpoints from the current kubeconfig, optionally saves the snapshot
/// (YAML, which `-f` reads to the same output) and explains the recommendation at now.
pub fn explain_live(target: &str, save: Option<&Path>, output: Option<Format>) -> Result<ExitCode> {
    let (namespace, name) = crate::horizontal_cmd::live_target(target)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let snapshot = crate::horizontal_cmd::runtime(1)?.block_on(async {
        let client = crate::kubeconfig::client().await?;
        let now = jiff::Timestamp::now();
        let capture = ballast_controller::vertical::capture::capture;
        anyhow::Ok(capture(&client, namespace, name, now).await?)
    })?;
    if snapshot.checkpoints.is_empty() {
        eprintln!(
            "note: VerticalAutoscaler {target} has no checkpoints yet: the recommender writes them every --checkpoint-interval (10m by default) and when it stops"
        );
    }
    if let Some(path) = save {
        let value = serde_json::to_value(&snapshot).context("encoding the snapshot")?;
        std::fs::write(path, ballast_api::yaml::to_string(&value)?)
            .with_context(|| format!("writing the snapshot to {}", path.display()))?;
        eprintln!("saved the snapshot to {}", path.display());
    }
    print_recommendation(&snapshot, output)
}

/// Recommends on `snapshot` and prints it: in words, or JSON or YAML.
fn print_recommendation(snapshot: &Snapshot, output: Option<Format>) -> Result<ExitCode> {
    let explanation = ballast_vertical::explain::explain(snapshot)?;
    match output {
        Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&explanation)?),
        Some(Format::Yaml) => print!("{}", ballast_api::yaml::to_string(&explanation)?),
        None => print!("{}", explanation.text()),
    }
    Ok(ExitCode::SUCCESS)
}
