//! The `HorizontalAutoscaler` reconciler.
//!
//! A kube-runtime [`Controller`] on `HorizontalAutoscaler` (all namespaces, or one). Per object,
//! every `spec.syncPeriodSeconds` (default 15 s):
//!
//! 1. read the target's `scale` subresource, for any kind that has one (resolved through
//!    discovery, cached: Deployment, StatefulSet, ReplicaSet, custom resources) — [`crate::scale`];
//! 2. select its pods from the shared pod index (one watch, no LIST per reconcile) — [`pods`];
//!    and note which other autoscalers select the same pods (`AmbiguousSelector`), from an index
//!    completed with every autoscaler of the namespace before the first decision — [`ambiguity`];
//! 3. read every metric with `ballast-metrics`;
//! 4. build the [`Snapshot`] and run the pure core (`ballast_horizontal::explain`);
//! 5. write the scale when the decision says so (a failed write becomes `FailedRescale`);
//! 6. patch the status subresource with what changed (conditions, current metrics, and the
//!    history that stabilization windows and rate policies need, so a restart forgets nothing);
//!    and the `VerticalConflict` condition when a `VerticalAutoscaler` applies the requests a
//!    utilization metric divides by (from a cache of those, one watch) — [`vertical`];
//! 7. publish the decision's events (`SuccessfulRescale`, `FailedGetScale`,
//!    `FailedGetResourceMetric`, `FailedRescale`, ...) — [`crate::events`];
//! 8. requeue after the sync period, or, when the decision reported an error (target, selector,
//!    metrics, rescale), after a backoff of 1 s, 2 s, 4 s ... up to four periods, at most
//!    `max_backoff` unless one period is longer.
//!
//! Objects are reconciled concurrently (`concurrency` decisions at once, taken in the order they
//! fell due: a fair semaphore, not the runtime's queue, whose order among expired entries lets
//! requeued objects overtake ones never decided when the API server is slower than the demand),
//! each independently: a failing
//! object only delays itself. Shared state (pod index, discovery cache, per-object schedule) is
//! sharded or held only for a copy, never across an API call. A watch event that arrives before
//! the object is due (its own status write, a label change) does not trigger a decision; a spec
//! change (new `generation`) does, at once.
//!
//! Under leader election ([`Config::leadership`]) a standby keeps its pod index and autoscaler
//! cache warm but decides nothing (a reconcile returns at once); the moment it leads, every
//! autoscaler is reconciled.
//!
//! While an object rests at zero (or idle) replicas, [`wake`] reads its event sources every
//! `activation_poll` (250 ms by default) and, when a reading would activate it, makes it due at
//! once: its next decision follows the first item within a poll interval instead of a sync
//! period.
//!
//! With [`Config::native_hpa`], `autoscaling/v2` HorizontalPodAutoscalers are reconciled by the
//! same path in a second context of kind `Native` ([`native`]): status in upstream's shape, the
//! history in an annotation, the selector index shared with ours.
//!
//! [`capture`] builds the snapshot of steps 1–3 for one object with direct reads instead of the
//! caches, and decides nothing (`ballast explain horizontal --live`).

mod ambiguity;
pub mod capture;
pub mod demand;
pub mod error;
pub mod label_index;
pub mod metrics;
pub mod native;
pub mod patch;
pub mod pods;
mod schedule;
mod vertical;
mod wake;

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ballast_api::horizontal::{HorizontalAutoscaler, HorizontalAutoscalerStatus};
use ballast_horizontal::{
    ControllerConfig as DecisionConfig, Decision, EventType, Path, Snapshot, TargetScale, persist,
};
use ballast_metrics::{MetricSource, MetricsConfig};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::registry::Registry;

use crate::Clock;

use crate::events;
use crate::health::Heartbeats;
use crate::leader::Leadership;
use crate::scale::{self as target, Targets};
use ambiguity::{Kind, Selectors};
use ballast_horizontal::selector::Selector;
pub use capture::capture;
pub use demand::DemandHistoryConfig;
pub use error::Error;
pub use metrics::Metrics;
use pods::PodIndex;
use schedule::{Memo, ObjectState, Schedule};

/// Name the controller reports in events and uses as field manager.
pub const CONTROLLER_NAME: &str = "ballast-horizontal";

/// Default interval of the activation poll ([`Config::activation_poll`]).
pub const DEFAULT_ACTIVATION_POLL: Duration = Duration::from_millis(250);

/// Settings of the horizontal reconciler.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch only this namespace (autoscalers and pods); all namespaces when `None`.
    pub namespace: Option<String>,
    /// Metric readers (Prometheus URL, timeouts, concurrency).
    pub metrics: MetricsConfig,
    /// Controller-wide decision settings (tolerance, CPU initialization period, readiness delay,
    /// downscale stabilization), the HPA's defaults.
    pub decision: DecisionConfig,
    /// Reconciles running at once (different objects; one object is never reconciled twice at
    /// the same time).
    pub concurrency: u16,
    /// Longest retry delay after an error, when above the object's sync period.
    pub max_backoff: Duration,
    /// `reportingInstance` of events (the pod name in a Deployment).
    pub instance: String,
    /// Where every decision's `now` (and every event's time) comes from.
    pub clock: Clock,
    /// Whether this process leads (always, without leader election): only the leader decides
    /// and writes.
    pub leadership: Leadership,
    /// While an object rests at zero or idle replicas, how often its event sources are read
    /// between syncs ([`wake`]; an object's `spec.activationPollMilliseconds` overrides it).
    /// Zero turns the poll off.
    pub activation_poll: Duration,
    /// Also reconcile `autoscaling/v2` HorizontalPodAutoscalers in place, each every this period
    /// (`--native-hpa`; the HPA has no sync period of its own) — [`native`]. Off when `None`.
    pub native_hpa: Option<Duration>,
    /// How the demand history of objects with `spec.predictive` is stored and backfilled
    /// ([`demand`]).
    pub demand_history: DemandHistoryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            metrics: MetricsConfig::default(),
            decision: DecisionConfig::default(),
            concurrency: 64,
            max_backoff: Duration::from_secs(60),
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| CONTROLLER_NAME.to_owned()),
            clock: Clock::system(),
            leadership: Leadership::always(),
            activation_poll: DEFAULT_ACTIVATION_POLL,
            native_hpa: None,
            demand_history: DemandHistoryConfig::default(),
        }
    }
}

// ---- the controller -------------------------------------------------------------------------

struct Context {
    /// Which objects this context decides (its own kind, or native HPAs read as ours).
    kind: Kind,
    client: Client,
    config: Config,
    targets: Targets,
    pods: Arc<PodIndex>,
    source: MetricSource,
    recorder: events::Recorder,
    schedule: Schedule,
    /// Objects at rest, for the activation poll.
    resting: wake::Resting,
    /// The demand history of each object with `spec.predictive`.
    demand: demand::Histories,
    /// Shared by both kinds, so an HPA and a `HorizontalAutoscaler` on one target see each other.
    selectors: Arc<Selectors>,
    /// The objects of the other kind (set once both run), completed into the selectors too.
    peers: std::sync::OnceLock<Store<HorizontalAutoscaler>>,
    /// Every autoscaler watched (set once the controller runs): the ambiguity index is completed
    /// from it before a decision is taken.
    objects: std::sync::OnceLock<Store<HorizontalAutoscaler>>,
    /// Every vertical autoscaler watched (set once the controller runs), for `VerticalConflict`.
    verticals: std::sync::OnceLock<Store<ballast_api::vertical::VerticalAutoscaler>>,
    metrics: Arc<Metrics>,
    /// Decisions running at once (`Config::concurrency`), granted in FIFO order.
    permits: tokio::sync::Semaphore,
}

/// Health of a running reconciler, for `/readyz` and `/healthz`.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    heartbeats: Heartbeats,
}

impl Health {
    /// True once the pod index is synced and the controller runs (a standby too: its caches are
    /// warm); false again after shutdown.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// False when the housekeeping loop, which turns every 10 s on the reconciles' runtime, has
    /// not turned for a minute (a wedged runtime).
    pub fn is_live(&self) -> bool {
        self.heartbeats.healthy()
    }
}

/// How late the housekeeping loop may be before `/healthz` fails.
const HOUSEKEEPING_LIMIT: Duration = Duration::from_secs(60);

/// The horizontal reconciler, ready to run.
pub struct HorizontalController {
    ctx: Arc<Context>,
    /// The native HPA reconciler, with `Config::native_hpa`.
    native: Option<Arc<Context>>,
    health: Health,
}

impl HorizontalController {
    /// Builds the reconciler on `client` and registers its metrics in `registry`.
    pub fn new(
        client: Client,
        config: Config,
        registry: &mut Registry,
    ) -> Result<HorizontalController, Error> {
        let source = MetricSource::new(client.clone(), config.metrics.clone())
            .map_err(Error::MetricReaders)?;
        let ctx = Context {
            kind: Kind::Own,
            targets: Targets::new(client.clone()),
            pods: Arc::new(PodIndex::default()),
            source,
            recorder: events::Recorder::new(
                client.clone(),
                CONTROLLER_NAME,
                config.instance.clone(),
                config.clock.clone(),
            ),
            schedule: Schedule::new(),
            resting: wake::Resting::default(),
            demand: demand::Histories::default(),
            selectors: Arc::new(Selectors::default()),
            peers: std::sync::OnceLock::new(),
            objects: std::sync::OnceLock::new(),
            verticals: std::sync::OnceLock::new(),
            permits: tokio::sync::Semaphore::new(usize::from(config.concurrency.max(1))),
            metrics: Metrics::new(registry),
            client,
            config,
        };
        let native = ctx
            .config
            .native_hpa
            .map(|_| Arc::new(native::context_beside(&ctx)));
        Ok(HorizontalController {
            ctx: Arc::new(ctx),
            native,
            health: Health::default(),
        })
    }

    /// The health flag `/healthz` reads.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Runs until `shutdown` resolves, then lets the reconciles in flight finish (graceful
    /// shutdown) and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) -> Result<(), Error> {
        let ctx = self.ctx;
        let client = ctx.client.clone();
        let (hzas, pods): (Api<HorizontalAutoscaler>, Api<Pod>) = match &ctx.config.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        // Fail early and clearly when the CRD is not installed or not readable.
        hzas.list_metadata(&kube::api::ListParams::default().limit(1))
            .await
            .map_err(Error::NoCrd)?;

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let closing = ctx.clone();
        let closing_native = self.native.clone();
        let stopper = tokio::spawn(async move {
            shutdown.await;
            // Objects still waiting for a turn give it up: graceful shutdown only waits for the
            // decisions already running.
            closing.permits.close();
            if let Some(n) = closing_native {
                n.permits.close();
            }
            let _ = stop_tx.send(true);
        });
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };

        let pod_task = tokio::spawn(ctx.pods.clone().run(pods));
        let (verticals, vertical_task) =
            vertical::watch(client.clone(), ctx.config.namespace.as_deref());
        let _ = ctx.verticals.set(verticals);
        tracing::info!(namespace = ?ctx.config.namespace, "waiting for the pod index to sync");
        tokio::select! {
            _ = ctx.pods.wait_synced() => {}
            _ = stopped() => {
                pod_task.abort();
                vertical_task.abort();
                stopper.abort();
                return Ok(());
            }
        }

        // The store keeps every autoscaler: without managedFields and the last-applied annotation
        // (a copy of the spec), which the decision never reads.
        let (store, writer) = kube::runtime::reflector::store();
        let objects = watcher::watcher(hzas, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(trim)
            .reflect(writer)
            .applied_objects();
        let _ = ctx.objects.set(store.clone());
        let health = self.health.clone();
        health.ready.store(true, Ordering::Release);
        tracing::info!(pods = ctx.pods.len(), "pod index synced; reconciling");
        match self.native {
            Some(native) => {
                let (native_store, native_objects) = native::watch(&native);
                if let Some(v) = ctx.verticals.get() {
                    let _ = native.verticals.set(v.clone());
                }
                let _ = ctx.peers.set(native_store.clone());
                let _ = native.peers.set(store.clone());
                let _ = native.objects.set(native_store.clone());
                futures::join!(
                    drive(ctx.clone(), objects, store, &health, stopped.clone()),
                    drive(native, native_objects, native_store, &health, stopped),
                );
            }
            None => drive(ctx.clone(), objects, store, &health, stopped).await,
        }
        health.ready.store(false, Ordering::Release);
        pod_task.abort();
        vertical_task.abort();
        stopper.abort();
        tracing::info!("horizontal reconciler stopped");
        Ok(())
    }
}

/// Runs one kind's controller on its watch stream until `stopped` resolves: the reconciles, the
/// housekeeping, the promotion to leader and the activation poll.
async fn drive<S, F, Fut>(
    ctx: Arc<Context>,
    objects: S,
    store: Store<HorizontalAutoscaler>,
    health: &Health,
    stopped: F,
) where
    S: futures::Stream<Item = Result<HorizontalAutoscaler, watcher::Error>> + Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + Sync + 'static,
{
    let controller = Controller::for_stream(objects, store.clone()).with_config(
        // No limit here: every due object gets its turn at `ctx.permits`, first come first served.
        kube::runtime::controller::Config::default().concurrency(0),
    );
    let housekeeping = tokio::spawn(housekeeping(
        ctx.clone(),
        store,
        health.heartbeats.clone(),
        stopped(),
    ));
    // A standby's reconciles return at once; the moment it leads, every object is reconciled.
    let (lead_tx, lead_rx) = futures::channel::mpsc::unbounded::<()>();
    let leadership = ctx.config.leadership.clone();
    let promoted = tokio::spawn(async move {
        if !leadership.is_leading() {
            leadership.wait_leading().await;
            tracing::info!("leading: reconciling every autoscaler");
            let _ = lead_tx.unbounded_send(());
        }
    });
    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded();
    let controller = controller.reconcile_all_on(lead_rx).reconcile_on(wake_rx);
    let poll = tokio::spawn(wake::run(
        ctx.clone(),
        controller.store(),
        wake_tx,
        stopped(),
    ));
    controller
        .graceful_shutdown_on(stopped())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            match res {
                Ok(_) => {}
                // Deleted objects still queued, watch hiccups: the controller recovers.
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
                Err(e) => tracing::debug!(error = %e, "controller stream"),
            }
        })
        .await;
    promoted.abort();
    poll.abort();
    housekeeping.abort();
}

/// What the store need not keep of an autoscaler.
fn trim(h: &mut HorizontalAutoscaler) {
    h.metadata.managed_fields = None;
    if let Some(a) = h.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Drops the schedule and selector of deleted autoscalers, updates the gauges.
async fn housekeeping(
    ctx: Arc<Context>,
    store: Store<HorizontalAutoscaler>,
    heartbeats: Heartbeats,
    stopped: impl Future<Output = ()>,
) {
    let mut stopped = std::pin::pin!(stopped);
    loop {
        heartbeats.beat(ctx.kind.housekeeping(), HOUSEKEEPING_LIMIT);
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        for key in ctx.schedule.keys() {
            let Some((ns, name)) = key.split_once('/') else {
                continue;
            };
            if store.get(&ObjectRef::new(name).within(ns)).is_none() {
                ctx.schedule.remove(&key);
                ctx.resting.forget(&key);
                ctx.demand.forget(&key);
                ctx.selectors.forget(ns, &ctx.kind.index_name(name));
            }
        }
        if ctx.kind == Kind::Own {
            ctx.metrics.objects.set(store.state().len() as i64);
        }
        ctx.metrics.pods.set(ctx.pods.len() as i64);
    }
}

/// Periods an object's retry delay may grow to: a source that comes back is read again within
/// this many sync periods, not after the global cap.
const BACKOFF_PERIODS: u32 = 4;

/// The delay before retrying an object after its `failures`-th failure in a row: 1 s, 2 s, 4 s
/// ..., capped at `BACKOFF_PERIODS` sync periods and at `max_backoff`, but never below one
/// period (a failing object is not decided more rarely than a healthy one's period allows).
fn backoff(failures: u32, period: Duration, max_backoff: Duration) -> Duration {
    let cap = period
        .saturating_mul(BACKOFF_PERIODS)
        .min(max_backoff)
        .max(period);
    let exp = failures.saturating_sub(1).min(20);
    Duration::from_secs(1u64 << exp).min(cap)
}

/// A stable fraction in [0, 0.5) from the object's uid.
fn spread(uid: &str) -> f64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut h);
    (h.finish() % 1000) as f64 / 2000.0
}

fn period_of(hza: &HorizontalAutoscaler) -> Duration {
    Duration::from_secs(hza.spec.sync_period_seconds().clamp(1, 3600) as u64)
}

/// Whether the decision reports a problem that deserves a retry with backoff.
fn failed(decision: &Decision) -> bool {
    matches!(
        decision.path,
        Path::FailedGetScale | Path::InvalidSpec | Path::InvalidSelector | Path::MetricsFailed
    ) || decision.events.iter().any(|e| e.reason == "FailedRescale")
}

fn event_action(reason: &str) -> &'static str {
    match reason {
        "SuccessfulRescale" | "FailedRescale" => "Rescale",
        "FailedGetScale" => "GetScale",
        r if r.starts_with("FailedGet") => "GetMetrics",
        "SelectorRequired" | "InvalidSelector" | "AmbiguousSelector" => "SelectPods",
        "VerticalConflict" | "ConflictResolved" => "CheckVertical",
        _ => "ComputeReplicas",
    }
}

async fn reconcile(hza: Arc<HorizontalAutoscaler>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = hza.namespace().ok_or(Error::NoNamespace)?;
    let name = hza.name_any();
    let key = format!("{ns}/{name}");
    let uid = hza.uid().unwrap_or_default();
    let mut now = Instant::now();
    if hza.meta().deletion_timestamp.is_some() || !ctx.config.leadership.is_leading() {
        return Ok(Action::await_change());
    }
    let previous = ctx.schedule.get(&key).filter(|s| s.uid == uid);
    if let Some(s) = &previous
        && s.generation == hza.metadata.generation
        && now < s.due
    {
        ctx.metrics
            .reconciles
            .get_or_create(&Metrics::label("outcome", "skipped"))
            .inc();
        return Ok(Action::requeue(s.due - now));
    }
    let Ok(_permit) = ctx.permits.acquire().await else {
        return Ok(Action::await_change());
    };
    now = Instant::now();
    if let Some(s) = &previous
        && s.generation == hza.metadata.generation
    {
        ctx.metrics
            .sync_delay_seconds
            .observe((now - s.due).as_secs_f64());
    }

    let memo = previous.as_ref().and_then(|s| s.memo.clone());
    // Boxed: objects waiting for a permit hold a small future, not the whole decision's state.
    let (decision, memo, scale) = Box::pin(decide_and_apply(&hza, &ns, &name, &ctx, memo)).await;
    let period = period_of(&hza);
    let (outcome, failures, delay) = match &decision {
        Ok(d) if failed(d) => {
            let n = previous.as_ref().map_or(0, |s| s.failures) + 1;
            ("failed", n, backoff(n, period, ctx.config.max_backoff))
        }
        // The first decision of this process: the next one comes a little earlier (50–100% of
        // the period, by uid), so objects that all started together do not stay in one wave.
        Ok(_) if previous.is_none() => ("ok", 0, period.mul_f64(1.0 - spread(&uid))),
        Ok(_) => ("ok", 0, period),
        Err(_) => {
            let n = previous.as_ref().map_or(0, |s| s.failures) + 1;
            ("error", n, backoff(n, period, ctx.config.max_backoff))
        }
    };
    // A period counts from the start of the decision (the sync rate does not drift by the time a
    // reconcile takes); a backoff from its end.
    let due = if failures == 0 {
        now + delay
    } else {
        Instant::now() + delay
    };
    let delay = due.saturating_duration_since(Instant::now());
    ctx.schedule.set(
        &key,
        ObjectState {
            uid: uid.clone(),
            generation: hza.metadata.generation,
            due,
            failures,
            memo,
        },
    );
    // After the schedule holds the decided status: the activation poll decides from it.
    match (&decision, &scale) {
        (Ok(d), Some(scale)) => ctx.resting.after_decision(&key, &uid, d, scale),
        _ => ctx.resting.forget(&key),
    }
    ctx.metrics
        .reconciles
        .get_or_create(&Metrics::label("outcome", outcome))
        .inc();
    ctx.metrics
        .reconcile_seconds
        .observe(now.elapsed().as_secs_f64());
    match decision {
        Ok(d) => {
            tracing::debug!(object = %key, path = ?d.path, current = d.current_replicas, desired = d.desired_replicas, rescale = d.rescale, next = ?delay, "reconciled");
            Ok(Action::requeue(delay))
        }
        Err(e) => Err(e),
    }
}

/// Steps 1–7 for one object; returns the decision as applied, what to remember of the status
/// and the target's scale as read.
async fn decide_and_apply(
    hza: &HorizontalAutoscaler,
    ns: &str,
    name: &str,
    ctx: &Context,
    memo: Option<Memo>,
) -> (Result<Decision, Error>, Option<Memo>, Option<TargetScale>) {
    let now = ctx.config.clock.now();
    // The status the decision starts from: ours when this process made the last decision (the
    // object's may lag by the history that only aged), else the stored one, resumed ([`persist`]).
    let mut autoscaler = hza.clone();
    let written = match memo {
        Some(m) => {
            autoscaler.status = Some((*m.decided).clone());
            m.written
        }
        None => {
            if let Some(h) = autoscaler.status.as_mut().and_then(|s| s.history.as_mut()) {
                persist::resume(h, k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            }
            hza.status.clone().map(Arc::new)
        }
    };
    let result =
        decide_and_apply_from(autoscaler, hza, ns, name, ctx, now, written.as_deref()).await;
    match result {
        Ok((decision, wrote, scale)) => {
            let decided = Arc::new(decision.status.clone());
            let written = if wrote {
                Some(decided.clone())
            } else {
                written
            };
            (Ok(decision), Some(Memo { written, decided }), Some(scale))
        }
        // An invalid spec or an unwritable status: the next decision starts from the object.
        Err(e) => (Err(e), None, None),
    }
}

async fn decide_and_apply_from(
    autoscaler: HorizontalAutoscaler,
    hza: &HorizontalAutoscaler,
    ns: &str,
    name: &str,
    ctx: &Context,
    now: Timestamp,
    written: Option<&HorizontalAutoscalerStatus>,
) -> Result<(Decision, bool, TargetScale), Error> {
    let target_ref = &hza.spec.scale_target_ref;
    let t = Instant::now();
    let read = ctx.targets.read(ns, target_ref).await;
    ctx.metrics.step("scale", t);
    let mut pods = Vec::new();
    let mut others = Vec::new();
    let mut readings = Vec::new();
    // No decision before the index knows every autoscaler of the namespace (of both kinds).
    let me = ctx.kind.index_name(name);
    for (objects, kind) in [
        (ctx.objects.get(), ctx.kind),
        (ctx.peers.get(), ctx.kind.other()),
    ] {
        if let Some(objects) = objects {
            (ctx.selectors.complete(ns, &me, objects, kind, &ctx.targets)).await;
        }
    }
    ctx.selectors.record(ns, &me, &read);
    if read.scale.error.is_none()
        && !read.scale.selector.trim().is_empty()
        && let Ok(sel) = Selector::parse(&read.scale.selector)
    {
        let sel = Arc::new(sel);
        let selected = ctx.pods.select(ns, &sel);
        others = ctx
            .kind
            .describe(ctx.selectors.others_selecting(ns, &me, &selected));
        pods = selected.iter().map(|p| p.snapshot.clone()).collect();
        if others.is_empty() {
            let t = Instant::now();
            readings = ctx.source.readings(hza, &read.scale.selector).await;
            ctx.metrics.step("metrics", t);
        }
    }

    let demand_history = demand::before_decision(ctx, hza, now).await;
    let snapshot = Snapshot {
        autoscaler,
        scale: read.scale.clone(),
        pods,
        metrics: readings,
        other_autoscalers: others,
        demand_history,
        config: ctx.config.decision.clone(),
        now,
    };
    let t = Instant::now();
    let decided = ballast_horizontal::explain(&snapshot);
    ctx.metrics.step("decide", t);
    let mut decision = match decided {
        Ok(d) => d,
        Err(e) => {
            publish(ctx, hza, true, "InvalidSpec", &e.to_string()).await;
            return Err(e.into());
        }
    };
    ctx.metrics
        .decisions
        .get_or_create(&Metrics::label("path", format!("{:?}", decision.path)))
        .inc();

    if decision.rescale {
        let direction = if decision.desired_replicas > decision.current_replicas {
            "up"
        } else {
            "down"
        };
        let t = Instant::now();
        let result = read
            .write(&target_ref.name, decision.desired_replicas)
            .await;
        ctx.metrics.step("rescale", t);
        let labels = vec![
            ("direction", direction.to_owned()),
            (
                "result",
                if result.is_ok() { "ok" } else { "error" }.to_owned(),
            ),
        ];
        ctx.metrics.rescales.get_or_create(&labels).inc();
        match result {
            Ok(()) => {
                tracing::info!(object = %format!("{ns}/{name}"), from = decision.current_replicas, to = decision.desired_replicas, reason = %decision.reason, "rescaled")
            }
            Err(e) => decision.rescale_failed(&e),
        }
    }

    let conflict = ctx
        .verticals
        .get()
        .and_then(|v| vertical::mark(&mut decision, hza, v, now));
    // Status before events: the history must be stored even if an event cannot be.
    let t = Instant::now();
    let status_result = match ctx.kind {
        Kind::Own => write_status(written, ns, name, &decision, ctx).await,
        Kind::Native => native::write_status(written, ns, name, &decision, ctx).await,
    };
    ctx.metrics.step("status", t);
    demand::after_decision(ctx, hza, &decision, now).await;
    if !decision.events.is_empty() {
        let t = Instant::now();
        for e in &decision.events {
            publish(
                ctx,
                hza,
                e.type_ == EventType::Warning,
                &e.reason,
                &e.message,
            )
            .await;
        }
        ctx.metrics.step("events", t);
    }
    if let Some(note) = conflict {
        publish(ctx, hza, note.warning, note.reason, &note.message).await;
    }
    status_result.map(|wrote| (decision, wrote, read.scale))
}

/// Patches the status with what changed since `written`; `Ok(false)` when nothing but time moved
/// (see [`persist`]).
async fn write_status(
    written: Option<&HorizontalAutoscalerStatus>,
    ns: &str,
    name: &str,
    decision: &Decision,
    ctx: &Context,
) -> Result<bool, Error> {
    if written.is_some_and(|w| persist::only_time_moved(w, &decision.status)) {
        ctx.metrics.status_writes_skipped.inc();
        return Ok(false);
    }
    let old = match written {
        Some(s) => serde_json::to_value(s)?,
        None => serde_json::Value::Null,
    };
    let new = serde_json::to_value(&decision.status)?;
    let Some(diff) = patch::merge_patch(&old, &new) else {
        return Ok(false);
    };
    let body = serde_json::json!({ "status": diff });
    patch_status::<HorizontalAutoscaler>(ctx, ns, name, format!("{ns}/{name}"), &body).await
}

/// Merge-patches the `status` subresource of the `K` named `ns/name` with `body` (counted in
/// `status_patches`); an error is `Error::Status` under `key`. The response (the whole object)
/// is not decoded: the watch brings the new object anyway.
async fn patch_status<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    ns: &str,
    name: &str,
    key: String,
    body: &serde_json::Value,
) -> Result<bool, Error> {
    ctx.metrics.status_patches.inc();
    let fail = |message: String| Error::Status {
        key: key.clone(),
        message,
    };
    let request = kube::core::Request::new(K::url_path(&(), Some(ns)))
        .patch_subresource("status", name, &PatchParams::default(), &Patch::Merge(body))
        .map_err(|e| fail(e.to_string()))?;
    ctx.client
        .request_text(request)
        .await
        .map(|_| true)
        .map_err(|e| fail(target::error_text(&e)))
}

async fn publish(
    ctx: &Context,
    hza: &HorizontalAutoscaler,
    warning: bool,
    reason: &str,
    note: &str,
) {
    let ev = events::Event {
        warning,
        reason,
        note,
        action: event_action(reason),
    };
    match ctx.recorder.publish(&ev, &ctx.kind.reference(hza)).await {
        Ok(()) => {
            ctx.metrics
                .events
                .get_or_create(&Metrics::label("reason", reason))
                .inc();
        }
        Err(e) => {
            ctx.metrics.event_errors.inc();
            tracing::warn!(object = %format!("{}/{}", hza.namespace().unwrap_or_default(), hza.name_any()), reason, error = %e, "publishing an event failed");
        }
    }
}

fn error_policy(hza: Arc<HorizontalAutoscaler>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", hza.namespace().unwrap_or_default(), hza.name_any());
    // `reconcile` already counted the failure and set the due time.
    let delay = ctx
        .schedule
        .get(&key)
        .map(|s| s.due.saturating_duration_since(Instant::now()))
        .unwrap_or(Duration::from_secs(1));
    tracing::warn!(object = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The retry delay of an object that keeps failing is capped by its own sync period
    /// (`BACKOFF_PERIODS` periods), never above `max_backoff` unless one period is longer.
    #[test]
    fn backoff_is_capped_by_the_sync_period() {
        let s = Duration::from_secs;
        // (period, max_backoff, failures, delay)
        let rows = [
            (5, 60, 1, 1),
            (5, 60, 3, 4),
            (5, 60, 5, 16),
            (5, 60, 6, 20),
            (5, 60, 20, 20),
            (1, 60, 9, 4),
            (15, 60, 9, 60),
            (30, 60, 9, 60),
            (600, 60, 30, 600),
            (5, 8, 9, 8),
        ];
        for (period, max, failures, want) in rows {
            assert_eq!(
                backoff(failures, s(period), s(max)),
                s(want),
                "period {period}s, max {max}s, failure {failures}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = Duration::from_secs(15);
        let m = Duration::from_secs(60);
        let got: Vec<u64> = (1..=9).map(|n| backoff(n, p, m).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(
            backoff(30, Duration::from_secs(600), m),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn event_actions() {
        assert_eq!(event_action("SuccessfulRescale"), "Rescale");
        assert_eq!(event_action("FailedGetScale"), "GetScale");
        assert_eq!(event_action("FailedGetPrometheusMetric"), "GetMetrics");
        assert_eq!(
            event_action("FailedComputeMetricsReplicas"),
            "ComputeReplicas"
        );
    }
}
