//! `ballast controller vertical`: the recommender, its admission webhook and the updater.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use ballast_controller::runtime;
use ballast_controller::vertical::{
    Config, HistoryConfig, UpdaterConfig, VerticalRecommender, webhook,
};
use clap::Args;
use prometheus_client::registry::Registry;

use crate::horizontal_cmd::{HorizontalFlags, init_logs};
use crate::leader_cmd::LeaderFlags;
use crate::serve_cmd::{Endpoint, serve_and_run, stopped};

/// Flags of `ballast controller vertical` (with `--namespace`, `--prometheus-url`,
/// `--metrics-addr`, `--metrics-bind-any`, `--log-json` and `--worker-threads`, shared with the
/// horizontal reconciler).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Vertical recommender")]
pub struct VerticalFlags {
    /// Time between two passes over every VerticalAutoscaler (Go duration).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = duration)]
    pub recommender_interval: Duration,
    /// Time between two checkpoint writes (Go duration).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    pub checkpoint_interval: Duration,
    /// How far back usage history is read from `--prometheus-url` for an autoscaler without a
    /// checkpoint (Go duration; no history is read without `--prometheus-url`).
    #[arg(long, value_name = "DURATION", default_value = "192h", value_parser = duration)]
    pub history_length: Duration,
    /// Step of the history queries (Go duration).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub history_resolution: Duration,
    /// Serve the mutating admission webhook (sets requests of new pods) on this address, over TLS.
    #[arg(long, value_name = "ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Folder holding the webhook's `tls.crt` and `tls.key` (and `ca.crt`); without it a CA and a
    /// certificate for 127.0.0.1 and localhost are made at start.
    #[arg(long, value_name = "DIR", requires = "webhook_addr")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// MutatingWebhookConfiguration whose `caBundle`s this process sets to its CA at start (for a
    /// generated certificate).
    #[arg(long, value_name = "NAME", requires = "webhook_addr")]
    pub webhook_configuration: Option<String>,
    /// Time between two passes of the updater (Go duration), which evicts or resizes in place the
    /// pods of `Recreate` and `InPlaceOrRecreate` objects. The updater runs in a process that
    /// serves the webhook (`--webhook-addr`): the pods it evicts are sized by it.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = duration)]
    pub updater_interval: Duration,
    /// Do not run the updater (recommendations and the webhook only).
    #[arg(long)]
    pub no_updater: bool,
}

/// A Go duration of at least one second (a clap value parser).
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let seconds = ballast_api::common::parse_duration_seconds(text).map_err(|e| e.to_string())?;
    if seconds < 1.0 {
        return Err(format!("{text:?} is shorter than one second"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl VerticalFlags {
    pub fn config(&self, shared: &HorizontalFlags) -> Config {
        Config {
            namespace: shared.namespace.clone(),
            interval: self.recommender_interval,
            checkpoint_interval: self.checkpoint_interval,
            history: HistoryConfig {
                prometheus_url: shared.decision.prometheus_url.clone(),
                length: self.history_length,
                resolution: self.history_resolution,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The updater's settings, when it runs: with the webhook and without `--no-updater`.
    pub fn updater(&self) -> Option<UpdaterConfig> {
        (self.webhook_addr.is_some() && !self.no_updater).then(|| UpdaterConfig {
            interval: self.updater_interval,
            ..Default::default()
        })
    }
}

/// The webhook's listener, with its certificate read or made; the configuration's `caBundle` set
/// when asked.
async fn webhook_listener(
    client: &kube::Client,
    flags: &VerticalFlags,
    addr: SocketAddr,
) -> Result<webhook::TlsListener> {
    let certificate = match &flags.webhook_cert_dir {
        Some(dir) => webhook::Certificate::from_dir(dir)?,
        None => webhook::Certificate::generate(&[])?,
    };
    let listener = webhook::TlsListener::bind(addr, &certificate).await?;
    let addr = webhook::local_addr(&listener)?;
    tracing::info!(%addr, path = webhook::PATH, "serving the admission webhook");
    if let Some(name) = &flags.webhook_configuration {
        set_ca_bundle(client, name, &certificate.ca_pem)
            .await
            .with_context(|| {
                format!("setting the caBundle of MutatingWebhookConfiguration {name}")
            })?;
    }
    Ok(listener)
}

async fn set_ca_bundle(client: &kube::Client, name: &str, ca_pem: &str) -> Result<()> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let api: kube::Api<MutatingWebhookConfiguration> = kube::Api::all(client.clone());
    let text = |e: kube::Error| anyhow::anyhow!(ballast_controller::scale::error_text(&e));
    let mut config = api.get(name).await.map_err(text)?;
    for w in config.webhooks.iter_mut().flatten() {
        w.client_config.ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
    }
    api.replace(name, &Default::default(), &config)
        .await
        .map_err(text)?;
    Ok(())
}

/// `ballast controller vertical`: runs until SIGTERM / Ctrl+C, then saves checkpoints (and, with
/// `--leader-elect`, releases the lease).
pub fn controller(
    shared: &HorizontalFlags,
    flags: &VerticalFlags,
    leader: &LeaderFlags,
) -> Result<ExitCode> {
    init_logs(shared.log_json);
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::horizontal_cmd::runtime(shared.worker_threads)?.block_on(async {
        let kube_config = kube::Config::infer()
            .await
            .context("loading the kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster)")?;
        let client = kube::Client::try_from(kube_config.clone())?;
        let election = leader.start(&client, "vertical")?;
        let mut config = flags.config(shared);
        config.leadership = election.leadership.clone();
        let mut registry = Registry::default();
        let mut recommender = VerticalRecommender::new(client.clone(), config, &mut registry);
        if let Some(addr) = flags.webhook_addr {
            recommender = recommender.with_webhook(webhook_listener(&client, flags, addr).await?);
        }
        if let Some(updater) = flags.updater() {
            // Evictions refused by a PDB (429) must come back at once, not after retries.
            let mut no_retry = kube_config;
            no_retry.default_retry = false;
            recommender = recommender.with_updater(updater, kube::Client::try_from(no_retry)?);
        }
        let probes = runtime::Probes {
            live: recommender.health(),
            ready: recommender.readiness(),
            leading: runtime::leading(election.leadership.clone()),
        };
        let endpoint = Endpoint {
            addr: shared.metrics_addr,
            bind_any: shared.metrics_bind_any,
        };
        let saving = "saving checkpoints";
        serve_and_run(endpoint, registry, probes, election, saving, |stop| async {
            Ok(recommender.run(stopped(stop)).await?)
        })
        .await
    })
}
