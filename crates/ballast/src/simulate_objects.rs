//! `ballast simulate --objects DIR` and `--from-cluster`: the user's own objects (a folder of
//! manifests, or a read-only capture of a running cluster) as the starting point of a scenario.
//! Taking and merging are `ballast_sim::manifests`'; this file reads, prints what was taken and
//! what was not, and saves the scenario or hands it on to be run.

use anyhow::{Context, Result, bail};
use ballast_sim::Scenario;
use ballast_sim::manifests::{self, Manifests};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Default)]
#[command(group(clap::ArgGroup::new("taken").args(["objects", "from_cluster"])))]
pub struct ObjectsFlags {
    /// Take the objects of the manifests in DIR (*.yaml, *.yml, *.json, several documents per
    /// file; or of one file): Ballast kinds, autoscaling/v2 HPAs, KEDA ScaledObjects, VPAs, Karpenter NodePools
    /// and EC2NodeClasses, Deployments, StatefulSets, PodDisruptionBudgets and Nodes. With a
    /// scenario (a file or --scenario) they replace or add to its objects; without one, they run
    /// on the default scenario's catalog and settings (docs/simulator.md).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["from_cluster", "list"])]
    pub objects: Option<PathBuf>,
    /// Take the objects of the cluster of the current kubeconfig (read-only: list calls only),
    /// as --objects takes a folder's.
    #[arg(long, conflicts_with = "list")]
    pub from_cluster: bool,
    /// With --from-cluster: the kubeconfig file (default: KUBECONFIG, ~/.kube/config or the
    /// pod's service account).
    #[arg(long, value_name = "FILE", requires = "from_cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// With --from-cluster: the kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME", requires = "from_cluster")]
    pub context: Option<String>,
    /// With --from-cluster: capture the namespaced kinds of this namespace only (NodePools and
    /// Nodes are cluster-wide).
    #[arg(long, short = 'n', value_name = "NAMESPACE", requires = "from_cluster")]
    pub namespace: Option<String>,
    /// Write the scenario made of the objects to FILE (YAML that `ballast simulate FILE` runs)
    /// instead of running it.
    #[arg(long, value_name = "FILE", requires = "taken")]
    pub save_scenario: Option<PathBuf>,
}

impl ObjectsFlags {
    /// Whether the run starts from the user's objects.
    pub fn taken(&self) -> bool {
        self.objects.is_some() || self.from_cluster
    }
}

/// What to do after taking the objects.
pub enum Next {
    /// The scenario was saved: nothing to run.
    Saved,
    /// Run these variants; the path names the scenario in the report.
    Run(PathBuf, Vec<Scenario>),
}

/// Takes the objects, merges them into the scenario at `base` (`whole`: a scenario the user
/// named) and saves or returns the result.
pub fn prepare(flags: &ObjectsFlags, base: &Path, whole: bool) -> Result<Next> {
    let (origin, taken) = match &flags.objects {
        Some(dir) => (dir.display().to_string(), manifests::read_dir(dir)?),
        None => ("the cluster".to_string(), from_cluster(flags)?),
    };
    report_taken(&origin, &taken);
    if taken.counts.is_empty() {
        bail!(
            "{origin}: nothing the simulator models (autoscalers, NodePools, Deployments, StatefulSets, PodDisruptionBudgets, Nodes)"
        );
    }
    let base_file = ballast_sim::scenario::read_file(base)?;
    let merged = manifests::merge(&base_file, base, &taken, whole, &origin)?;
    for note in &merged.notes {
        eprintln!("note: {note}");
    }
    if merged.file.workloads.is_empty() && merged.file.batch.is_empty() {
        eprintln!(
            "warning: no Deployment or StatefulSet taken and none in the scenario: no pod will run"
        );
    }
    let yaml = format!(
        "# Made by `ballast simulate` from {origin} on scenario {}.\n{}",
        base.display(),
        serde_yaml::to_string(&merged.file).context("encoding the scenario")?
    );
    let label = flags
        .save_scenario
        .clone()
        .unwrap_or_else(|| PathBuf::from(&origin));
    // Loaded before it is saved, so a saved scenario is one that runs.
    let scenarios = ballast_sim::scenario::load_str(&yaml, &label)?;
    match &flags.save_scenario {
        Some(path) => {
            std::fs::write(path, yaml)
                .with_context(|| format!("--save-scenario {}: cannot write it", path.display()))?;
            eprintln!(
                "saved the scenario to {} (run it with `ballast simulate {}`)",
                path.display(),
                path.display()
            );
            Ok(Next::Saved)
        }
        None => Ok(Next::Run(label, scenarios)),
    }
}

/// Says on standard error what was taken, by kind, and what was not simulated.
fn report_taken(origin: &str, taken: &Manifests) {
    eprintln!("taken from {origin}: {}", taken.counts_line());
    if !taken.not_simulated.is_empty() {
        eprintln!(
            "warning: {} object(s) not simulated:",
            taken.not_simulated.len()
        );
        for line in &taken.not_simulated {
            eprintln!("  {line}");
        }
    }
    if !taken.left_out.is_empty() {
        eprintln!(
            "warning: {} object(s) could not be mapped, left out:",
            taken.left_out.len()
        );
        for line in &taken.left_out {
            eprintln!("  {line}");
        }
    }
    for note in &taken.notes {
        eprintln!("note: {note}");
    }
}

fn from_cluster(flags: &ObjectsFlags) -> Result<Manifests> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let captured = crate::horizontal_cmd::runtime(1)?.block_on(async {
        let client =
            crate::cluster_capture::client(flags.kubeconfig.as_deref(), flags.context.as_deref())
                .await?;
        crate::cluster_capture::capture(&client, flags.namespace.as_deref()).await
    })?;
    if !captured.not_served.is_empty() {
        eprintln!(
            "the cluster does not serve (skipped): {}",
            captured.not_served.join(", ")
        );
    }
    Ok(manifests::take_captured(captured.documents))
}
