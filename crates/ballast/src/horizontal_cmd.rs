//! `ballast controller horizontal` and `ballast explain horizontal`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use ballast_controller::horizontal::{Config, HorizontalController, capture};
use ballast_controller::jobs::{JobsConfig, JobsController};
use ballast_controller::runtime;
use ballast_horizontal::Snapshot;
use ballast_metrics::{MetricSource, MetricsConfig};
use clap::Args;
use prometheus_client::registry::Registry;

use crate::cli::Format;
use crate::leader_cmd::LeaderFlags;
use crate::serve_cmd::{Endpoint, serve_and_run, stopped};

/// What a horizontal decision depends on besides the cluster: the metric readers and the
/// controller-wide settings. Shared by `ballast controller horizontal` and
/// `ballast explain horizontal --live`, so a capture reads and decides as the controller does.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Horizontal decision")]
pub struct DecisionFlags {
    /// Prometheus base URL for Prometheus metrics that set no `serverAddress`.
    #[arg(long, value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// Tolerance around the target when an object sets none.
    #[arg(long, default_value_t = ballast_api::horizontal::DEFAULT_TOLERANCE)]
    pub tolerance: f64,
    /// Seconds after a pod starts during which its CPU samples are distrusted.
    #[arg(long, default_value_t = 300)]
    pub cpu_initialization_period: i64,
    /// Seconds after a pod starts within which a readiness flip counts as never ready.
    #[arg(long, default_value_t = 30)]
    pub initial_readiness_delay: i64,
    /// Scale-down stabilization window for objects without `behavior.scaleDown`.
    #[arg(long, default_value_t = 300)]
    pub downscale_stabilization: i64,
    /// Metric reads in flight at once, over all objects.
    #[arg(long, default_value_t = 64)]
    pub max_concurrent_reads: usize,
}

impl DecisionFlags {
    /// The metric readers' settings (with the AWS credentials of the environment).
    pub fn metrics(&self) -> MetricsConfig {
        MetricsConfig {
            prometheus_url: self.prometheus_url.clone(),
            max_concurrent_reads: self.max_concurrent_reads,
            ..Default::default()
        }
        .with_aws_env()
    }

    /// The controller-wide decision settings.
    pub fn decision(&self) -> ballast_horizontal::ControllerConfig {
        ballast_horizontal::ControllerConfig {
            tolerance: self.tolerance,
            cpu_initialization_period_seconds: self.cpu_initialization_period,
            initial_readiness_delay_seconds: self.initial_readiness_delay,
            downscale_stabilization_seconds: self.downscale_stabilization,
        }
    }
}

/// Flags of `ballast controller horizontal`.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Horizontal reconciler")]
pub struct HorizontalFlags {
    /// Where to serve /metrics, /healthz and /readyz (a loopback address; 127.0.0.1:0 picks a port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// Serve /metrics on a non-loopback address (in a pod, for the Prometheus of the cluster).
    #[arg(long)]
    pub metrics_bind_any: bool,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub decision: DecisionFlags,
    /// Reconciles running at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u16,
    /// Longest retry delay after an error, seconds: the delay grows to four sync periods, at
    /// most this, and never below one period.
    #[arg(long, default_value_t = 60)]
    pub max_backoff: u64,
    /// While an object rests at zero (or idle) replicas, milliseconds between two reads of its
    /// event sources between syncs, so that the first item wakes it at once (each distinct
    /// source read once per tick; an object's `spec.activationPollMilliseconds` overrides it).
    /// 0 turns the poll off: objects at zero then wake at their next sync.
    #[arg(long, value_name = "MS", default_value_t = 250)]
    pub activation_poll: u64,
    /// Also reconcile `autoscaling/v2` HorizontalPodAutoscaler objects in place, as
    /// kube-controller-manager's HPA controller does (turn that controller off:
    /// `--controllers=*,-horizontal-pod-autoscaler-controller`). Upstream's status, conditions
    /// and events; the stabilization history kept in an annotation.
    #[arg(long)]
    pub native_hpa: bool,
    /// Seconds between two decisions of one native HPA (upstream's
    /// `--horizontal-pod-autoscaler-sync-period`).
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub native_hpa_sync_period: u64,
    /// Least seconds between two writes of an object's stored demand history (objects with
    /// `spec.predictive`; the ConfigMap `<name>-demand-history`).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub demand_history_save_interval: u64,
    /// Do not read a short demand history back from the object's Prometheus queries.
    #[arg(long)]
    pub no_demand_backfill: bool,
    /// Threads of the async runtime. The work is I/O: one thread keeps 2,000 objects on a 15 s
    /// period with 0.08 core where two threads took 0.12 (cross-thread wake-ups).
    #[arg(long, default_value_t = 1)]
    pub worker_threads: usize,
    /// Log as JSON lines (every reconciler).
    #[arg(long)]
    pub log_json: bool,
}

impl HorizontalFlags {
    pub fn config(&self) -> Config {
        Config {
            namespace: self.namespace.clone(),
            metrics: self.decision.metrics(),
            decision: self.decision.decision(),
            concurrency: self.concurrency,
            max_backoff: Duration::from_secs(self.max_backoff),
            activation_poll: Duration::from_millis(self.activation_poll),
            native_hpa: self
                .native_hpa
                .then(|| Duration::from_secs(self.native_hpa_sync_period.clamp(1, 3600))),
            demand_history: ballast_controller::horizontal::DemandHistoryConfig {
                save_interval: Duration::from_secs(self.demand_history_save_interval),
                backfill: !self.no_demand_backfill,
            },
            ..Default::default()
        }
    }
}

/// Installs the log subscriber of a controller: `RUST_LOG` (default `info`), text or JSON lines on
/// standard error. A second call keeps the first subscriber.
pub(crate) fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,tower=warn,hyper=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub(crate) fn runtime(worker_threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `ballast controller horizontal`: runs until SIGTERM / Ctrl+C (with `--leader-elect`, then
/// releases the lease).
pub fn controller(flags: &HorizontalFlags, leader: &LeaderFlags) -> Result<ExitCode> {
    init_logs(flags.log_json);
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime(flags.worker_threads)?.block_on(async {
        let client = crate::kubeconfig::client().await?;
        let election = leader.start(&client, "horizontal")?;
        let mut config = flags.config();
        config.leadership = election.leadership.clone();
        let mut registry = Registry::default();
        let jobs = JobsController::new(
            client.clone(),
            MetricSource::new(client.clone(), config.metrics.clone())
                .context("building the metric readers of the jobs loop")?,
            JobsConfig {
                namespace: config.namespace.clone(),
                leadership: config.leadership.clone(),
                clock: config.clock.clone(),
                instance: config.instance.clone(),
                ..Default::default()
            },
        );
        let reconciler = HorizontalController::new(client, config, &mut registry)?;
        let health = reconciler.health();
        let probes = runtime::Probes {
            live: Arc::new({
                let health = health.clone();
                move || health.is_live()
            }),
            ready: Arc::new(move || health.is_ready()),
            leading: runtime::leading(election.leadership.clone()),
        };
        let endpoint = Endpoint {
            addr: flags.metrics_addr,
            bind_any: flags.metrics_bind_any,
        };
        let finishing = "finishing the reconciles in flight";
        serve_and_run(
            endpoint,
            registry,
            probes,
            election,
            finishing,
            |stop| async {
                // The jobs loop (JobAutoscalers) shares the process, sources and leader.
                let ((), done) = tokio::join!(
                    jobs.run(stopped(stop.clone())),
                    reconciler.run(stopped(stop))
                );
                Ok(done?)
            },
        )
        .await
    })
}

/// `ballast explain horizontal -f SNAPSHOT [-o json|yaml]`.
pub fn explain(text: &str, output: Option<Format>) -> Result<ExitCode> {
    crate::strict::mapping(
        text,
        "a horizontal snapshot (see docs/horizontal.md, \"Snapshot format\")",
    )?;
    print_decision(&Snapshot::from_yaml(text)?, output)
}

/// `ballast explain horizontal --live NAMESPACE/NAME [--save-snapshot FILE] [-o json|yaml]`:
/// captures the snapshot the controller would decide on now, from the current kubeconfig and
/// the metric sources `flags` name, optionally saves it (YAML, readable by `-f`), and explains it.
pub fn explain_live(
    target: &str,
    flags: &DecisionFlags,
    save: Option<&Path>,
    output: Option<Format>,
) -> Result<ExitCode> {
    let (namespace, name) = live_target(target)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let snapshot = runtime(1)?.block_on(async {
        let client = crate::kubeconfig::client().await?;
        let source = MetricSource::new(client.clone(), flags.metrics())
            .context("building the metric readers")?;
        let now = jiff::Timestamp::now();
        anyhow::Ok(capture(&client, &source, &flags.decision(), namespace, name, now).await?)
    })?;
    if let Some(path) = save {
        std::fs::write(path, snapshot.to_yaml()?)
            .with_context(|| format!("writing the snapshot to {}", path.display()))?;
        eprintln!("saved the snapshot to {}", path.display());
    }
    print_decision(&snapshot, output)
}

/// `NAMESPACE/NAME` of `--live`, both parts non-empty.
pub(crate) fn live_target(target: &str) -> Result<(&str, &str)> {
    match target.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns, name))
        }
        _ => bail!("--live takes NAMESPACE/NAME, not {target:?}"),
    }
}

/// Decides on `snapshot` and prints the decision: the explanation, or JSON or YAML.
fn print_decision(snapshot: &Snapshot, output: Option<Format>) -> Result<ExitCode> {
    let decision = ballast_horizontal::explain(snapshot)?;
    match output {
        None => print!("{decision}"),
        Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&decision)?),
        Some(Format::Yaml) => print!("{}", serde_yaml::to_string(&decision)?),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_targets_are_namespace_slash_name() {
        assert_eq!(live_target("shop/web").unwrap(), ("shop", "web"));
        for bad in ["web", "/web", "shop/", "a/b/c", ""] {
            let e = live_target(bad).unwrap_err().to_string();
            assert!(e.contains("NAMESPACE/NAME"), "{bad}: {e}");
        }
    }
}
