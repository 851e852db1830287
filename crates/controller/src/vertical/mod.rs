//! The `VerticalAutoscaler` recommender.
//!
//! One watch on `VerticalAutoscaler`s and one on pods fill two caches; then, every `interval`
//! (60 s by default, the VPA recommender's loop):
//!
//! 1. per namespace holding autoscalers, one `metrics.k8s.io` list of pod usage — [`usage`];
//! 2. per autoscaler: its settings (`spec.estimation`), its target's `scale` subresource (any
//!    kind with one: the selector), the target's pods from the cache;
//! 3. the pods' container usage and OOM kills feed the object's [`Workload`] (one decaying
//!    histogram set per container name, each window counted once); an autoscaler seen for the
//!    first time without a checkpoint first reads its history from Prometheus — [`history`];
//! 4. `ballast_vertical::recommend` gives the recommendation, `ballast_vertical::status::status`
//!    the status and events; the status is patched when it changed — [`crate::events`].
//!
//! Every `checkpoint_interval` (and at shutdown) each container's histograms are saved in a
//! `VerticalAutoscalerCheckpoint`; at start they are read back, so a restart forgets nothing
//! [`checkpoints`]; [`capture`] reads an object and its checkpoints for `ballast explain vertical
//! --live`. A third watch, on `HorizontalAutoscaler`s, finds the ones scaling the same
//! target on the utilization of a controlled request (`ballast_vertical::coordination`): the
//! object's `HorizontalConflict` condition says so, and with `horizontalCoordination:
//! Coordinated` the webhook holds those requests. With a webhook listener ([`VerticalRecommender::with_webhook`]) the same
//! process serves the mutating admission webhook that sizes new pods — [`webhook`]. A bad object (missing target, no scale subresource, invalid spec, no pods,
//! unreadable metrics) gets a condition and a warning event; the others keep going.
//!
//! With an updater ([`VerticalRecommender::with_updater`]), every `updater.interval` the leader
//! also applies the recommendations to running pods (evictions, in-place resizes) — [`updater`].
//!
//! Under leader election ([`Config::leadership`]) a standby fills its two caches and waits (its
//! webhook, if served, answers from the recommendations the leader writes in the statuses); the
//! moment it leads it reads the checkpoints (the previous leader saved them at its shutdown) and
//! starts its passes. `/readyz` is true once the caches are synced ([`VerticalRecommender::readiness`]).

pub mod capture;
pub mod checkpoints;
pub mod history;
pub mod metrics;
mod pass;
pub mod updater;
pub mod usage;
pub mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_api::vertical::VerticalAutoscaler;
use ballast_vertical::Settings;
use ballast_vertical::Workload;
use ballast_vertical::status::History;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use prometheus_client::registry::Registry;

use crate::Clock;
use crate::events::Recorder;
use crate::health::Ready;
use crate::leader::Leadership;
use crate::runtime::HealthCheck;
use crate::scale::Targets;
pub use history::HistoryConfig;
pub use metrics::Metrics;
pub use updater::UpdaterConfig;

/// Name the recommender reports in events and uses as field manager.
pub const CONTROLLER_NAME: &str = "ballast-vertical";

/// Settings of the vertical recommender.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch only this namespace (autoscalers and pods); all namespaces when `None`.
    pub namespace: Option<String>,
    /// Time between two passes over every autoscaler.
    pub interval: Duration,
    /// Time between two checkpoint writes.
    pub checkpoint_interval: Duration,
    /// Where history is read from for autoscalers without a checkpoint.
    pub history: HistoryConfig,
    /// `reportingInstance` of events.
    pub instance: String,
    /// Where every recommendation's `now` comes from.
    pub clock: Clock,
    /// Whether this process leads (always, without leader election): only the leader runs
    /// passes and writes.
    pub leadership: Leadership,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            interval: Duration::from_secs(60),
            checkpoint_interval: Duration::from_secs(600),
            history: HistoryConfig::default(),
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| CONTROLLER_NAME.to_owned()),
            clock: Clock::system(),
            leadership: Leadership::always(),
        }
    }
}

/// Why the recommender stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A watch ended before its cache was filled.
    #[error("the {what} watch ended before its first list (check RBAC: list/watch {what})")]
    CacheNeverReady { what: &'static str },
}

/// What the recommender keeps per autoscaler between passes.
struct Tracked {
    uid: String,
    settings: Settings,
    workload: Workload,
    history: History,
}

/// The recommender: build with [`VerticalRecommender::new`], run with [`VerticalRecommender::run`].
pub struct VerticalRecommender {
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    targets: Targets,
    http: reqwest::Client,
    last_pass: Arc<Mutex<Instant>>,
    ready: Ready,
    /// What the admission webhook reads, kept by the passes.
    index: Arc<webhook::Index>,
    webhook: Option<webhook::TlsListener>,
    /// Whether this process serves the webhook (a standby then keeps its index too).
    webhook_served: bool,
    /// The horizontal autoscalers, for the conflicts on a shared target (set by `run`).
    horizontals: Option<Store<HorizontalAutoscaler>>,
    /// The updater's settings, when it runs.
    updater: Option<UpdaterConfig>,
    /// The client evictions go through (one that does not retry 429s).
    evictions: Client,
}

impl VerticalRecommender {
    /// A recommender on `client`, its metrics registered in `registry`.
    pub fn new(client: Client, config: Config, registry: &mut Registry) -> VerticalRecommender {
        VerticalRecommender {
            recorder: Recorder::new(
                client.clone(),
                CONTROLLER_NAME,
                config.instance.clone(),
                config.clock.clone(),
            ),
            targets: Targets::new(client.clone()),
            metrics: Metrics::new(registry),
            http: reqwest::Client::new(),
            last_pass: Arc::new(Mutex::new(Instant::now())),
            ready: Ready::default(),
            index: Arc::default(),
            webhook: None,
            webhook_served: false,
            horizontals: None,
            updater: None,
            evictions: client.clone(),
            client,
            config,
        }
    }

    /// Also serves the admission webhook on `listener` (from [`webhook::TlsListener::bind`]).
    pub fn with_webhook(mut self, listener: webhook::TlsListener) -> VerticalRecommender {
        self.webhook = Some(listener);
        self
    }

    /// Also runs the updater with `config`, evicting through `evictions`: a client built with
    /// `default_retry: false`, so that a PDB's 429 comes back at once (a retrying client would
    /// wait out its backoff on each refused eviction).
    pub fn with_updater(mut self, config: UpdaterConfig, evictions: Client) -> VerticalRecommender {
        self.updater = Some(config);
        self.evictions = evictions;
        self
    }

    /// Healthy while passes keep completing (none late by more than three intervals plus a
    /// minute); a standby, which runs no pass, is healthy.
    pub fn health(&self) -> HealthCheck {
        let last = self.last_pass.clone();
        let limit = self.config.interval * 3 + Duration::from_secs(60);
        let leadership = self.config.leadership.clone();
        Arc::new(move || {
            !leadership.is_leading() || last.lock().map(|t| t.elapsed() < limit).unwrap_or(false)
        })
    }

    /// Ready once both caches are synced (a standby too).
    pub fn readiness(&self) -> HealthCheck {
        let ready = self.ready.clone();
        Arc::new(move || ready.get())
    }

    /// Runs until `shutdown` resolves, then saves checkpoints once more.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let (stop_webhook, webhook_stopped) = tokio::sync::oneshot::channel::<()>();
        let limit_ranges = (self.webhook.is_some() || self.updater.is_some())
            .then(|| self.watch::<LimitRange>("limitranges"));
        if let Some(listener) = self.webhook.take() {
            self.webhook_served = true;
            let limit_ranges = limit_ranges.clone().unwrap_or_else(|| reflector::store().0);
            self.spawn_webhook(listener, limit_ranges, webhook_stopped);
        }
        let autoscalers = self.watch::<VerticalAutoscaler>("verticalautoscalers");
        // Not waited for: until it is filled the HorizontalConflict condition stays as it was.
        self.horizontals = Some(self.watch::<HorizontalAutoscaler>("horizontalautoscalers"));
        let pods = self.watch::<Pod>("pods");
        let budgets = self
            .updater
            .is_some()
            .then(|| self.watch::<PodDisruptionBudget>("poddisruptionbudgets"));
        autoscalers
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheNeverReady {
                what: "verticalautoscalers",
            })?;
        pods.wait_until_ready()
            .await
            .map_err(|_| Error::CacheNeverReady { what: "pods" })?;
        if let Some(b) = &budgets {
            b.wait_until_ready()
                .await
                .map_err(|_| Error::CacheNeverReady {
                    what: "poddisruptionbudgets",
                })?;
        }
        self.ready.set(true);
        tokio::pin!(shutdown);
        if !self.standby(&autoscalers, &mut shutdown).await {
            return Ok(());
        }
        let mut saved =
            match checkpoints::load(&self.client, self.config.namespace.as_deref()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "starting without checkpoints");
                    Default::default()
                }
            };
        let updater_every = self.updater.as_ref().map(|u| u.interval);
        tracing::info!(checkpoints = saved.len(), updater_interval = ?updater_every, "vertical recommender started");
        let mut tracked = HashMap::new();
        let mut last_checkpoint = Instant::now();
        let updater = match (self.updater.clone(), budgets, limit_ranges) {
            (Some(config), Some(budgets), Some(limit_ranges)) => {
                Some((config, budgets, limit_ranges))
            }
            _ => None,
        };
        let start = tokio::time::Instant::now();
        let mut next_pass = start;
        // The first update follows the first pass (the index it reads is then filled).
        let mut next_update = updater.as_ref().map(|(c, _, _)| start + c.interval);
        loop {
            let update_at =
                next_update.unwrap_or_else(|| start + Duration::from_secs(30 * 365 * 86_400));
            tokio::select! {
                _ = tokio::time::sleep_until(next_pass) => {
                    self.timed_pass(&autoscalers, &pods, &mut tracked, &mut saved).await;
                    if last_checkpoint.elapsed() >= self.config.checkpoint_interval {
                        self.save_checkpoints(&autoscalers, &tracked).await;
                        last_checkpoint = Instant::now();
                    }
                    next_pass = tokio::time::Instant::now() + self.config.interval;
                }
                _ = tokio::time::sleep_until(update_at), if next_update.is_some() => {
                    if let Some((config, budgets, limit_ranges)) = &updater {
                        let caches = updater::Caches {
                            autoscalers: &autoscalers,
                            pods: &pods,
                            budgets,
                            limit_ranges,
                        };
                        self.update(&caches, config).await;
                        next_update = Some(tokio::time::Instant::now() + config.interval);
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        let _ = stop_webhook.send(());
        self.save_checkpoints(&autoscalers, &tracked).await;
        Ok(())
    }

    /// Serves the webhook on `listener` in a task of its own until `stopped`.
    fn spawn_webhook(
        &self,
        listener: webhook::TlsListener,
        limit_ranges: Store<LimitRange>,
        stopped: tokio::sync::oneshot::Receiver<()>,
    ) {
        let index = self.index.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            if let Err(e) = webhook::serve(listener, index, limit_ranges, stopped).await {
                tracing::error!(error = %e, "the admission webhook stopped");
            }
        });
    }

    /// Waits while this process does not lead (its webhook answering from the statuses); false
    /// when `shutdown` came first.
    async fn standby(
        &self,
        autoscalers: &Store<VerticalAutoscaler>,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        if self.config.leadership.is_leading() {
            return true;
        }
        tracing::info!("caches synced; standing by until this process leads");
        loop {
            if self.webhook_served {
                self.index_from_statuses(autoscalers).await;
            }
            tokio::select! {
                _ = self.config.leadership.wait_leading() => break,
                _ = shutdown.as_mut() => return false,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
        if let Ok(mut t) = self.last_pass.lock() {
            *t = Instant::now();
        }
        true
    }

    /// One recommender pass, counted and timed.
    async fn timed_pass(
        &self,
        autoscalers: &Store<VerticalAutoscaler>,
        pods: &Store<Pod>,
        tracked: &mut HashMap<(String, String), Tracked>,
        saved: &mut checkpoints::Saved,
    ) {
        let started = Instant::now();
        self.pass(autoscalers, pods, tracked, saved).await;
        self.metrics.passes.inc();
        self.metrics
            .pass_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Ok(mut t) = self.last_pass.lock() {
            *t = Instant::now();
        }
    }

    /// A cache of `K` in the configured scope, filled by a background watch.
    fn watch<K>(&self, what: &'static str) -> Store<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let api: Api<K> = match self.config.namespace.as_deref() {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .touched_objects();
        tokio::spawn(async move {
            stream
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::warn!(watch = what, error = %e, "watch error");
                    }
                })
                .await;
        });
        store
    }

    async fn save_checkpoints(
        &self,
        autoscalers: &Store<VerticalAutoscaler>,
        tracked: &HashMap<(String, String), Tracked>,
    ) {
        let now = self.config.clock.now();
        for va in autoscalers.state() {
            let key = pass::key(&va);
            let Some(t) = tracked.get(&key).filter(|t| !t.workload.is_empty()) else {
                continue;
            };
            match checkpoints::save(&self.client, &va, &t.workload, now, CONTROLLER_NAME).await {
                Ok(n) => {
                    self.metrics.checkpoints.inc_by(n as u64);
                }
                Err(e) => {
                    self.metrics.checkpoint_errors.inc();
                    tracing::warn!(object = %format!("{}/{}", key.0, key.1), error = %e, "checkpoint not written");
                }
            }
        }
    }
}
