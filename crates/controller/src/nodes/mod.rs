//! The node reconcilers: provisioning, NodeClaim lifecycle, termination, garbage collection,
//! NodePool status and disruption. Kube-runtime shells around the pure cores of `ballast-nodes`;
//! instances are launched and deleted through a [`ballast_cloud::CloudProvider`].
//!
//! - [`provisioner`]: pending pods the kube-scheduler marked `Unschedulable` are batched
//!   (`batch_state`), a `ClusterSnapshot` is built from the caches, `provision` decides, the
//!   `NodeClaim`s are created, and pods that get no node get an event saying why.
//! - [`static_pools`]: each provisioner turn keeps static NodePools (`spec.replicas`) at their
//!   count: missing NodeClaims created, surplus ones (fewest pods first) deleted and drained.
//! - [`claims`]: one reconcile per NodeClaim drives `claim_lifecycle`: launch through the
//!   provider (insufficient capacity marks the offering unavailable and the next is tried),
//!   Registered when a node with its provider ID appears, Initialized once ready without startup
//!   taints; launch and registration timeouts delete it. Initialized NodeClaims are asked about
//!   cloud-provider drift every few minutes ([`drift`]: a `Drifted=True` condition).
//! - [`termination`]: a deleted NodeClaim's node is cordoned, tainted and drained through the
//!   Eviction API (a PDB's 429 is retried), daemon pods last; then the instance is deleted and the
//!   finalizer removed once it is gone.
//! - [`node_termination`]: registered Nodes carry a termination finalizer; deleting such a Node
//!   deletes its NodeClaim, so the same drain runs before the Node goes.
//! - [`gc`]: instances without a NodeClaim and NodeClaims without an instance are removed.
//! - [`pools`]: NodePool status (resources in use, `Ready`, `LimitsReached`).
//! - [`capture`]: the snapshot the provisioner or the disruption pass would decide on, from one
//!   list of each kind (for `ballast explain provision|disruption --live`); writes nothing.
//! - [`disruption`]: one disruption action at a time from `disrupt`; at start, disruption taints
//!   that no disruption in flight explains (left by a process killed mid-action) are removed.
//! - [`interruption`]: spot interruption, state-change and scheduled-change messages from an
//!   SQS queue delete the NodeClaim (same drain) after cordoning its node.
//!
//! - every watch retries through [`crate::watch_backoff::WatchBackoff`] (200 ms doubling to 2 s),
//!   so the controllers see an API server that came back within seconds.
//! - [`metrics`]: what the controllers count (`ballast_nodes_*` on `/metrics`), recorded where
//!   each thing happens; provider calls go through [`Metered`], which counts failures by code.
//!
//! Under leader election ([`NodesOptions::leadership`]) a standby fills its caches ([`Stores`])
//! and starts none of the controllers above until it leads. The provisioner and disruption loops
//! beat [`NodesOptions::heartbeats`], which `/healthz` reads; [`NodesOptions::ready`] is set once
//! the caches are synced (`/readyz`).
//!
//! Scope: a NodePool label selector restricts which NodePools (and so which NodeClaims, nodes and
//! instances) this process manages, and a namespace list which pending pods it provisions for,
//! so several instances (or tests) can share a cluster.

pub mod capture;
pub mod claims;
pub mod cluster;
pub mod disruption;
pub mod drift;
pub mod error;
pub mod events;
pub mod gc;
pub mod interruption;
pub mod metered;
pub mod metrics;
pub mod node_termination;
pub mod pools;
pub mod provisioner;
pub mod static_pools;
pub mod termination;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_api::nodes::NodeClaim;
use ballast_cloud::{CloudProvider, Instance, UnavailableOfferings};
use ballast_nodes::{BatchWindow, LifecycleOptions};
use ballast_scheduling::{InstanceType, SolveOptions};
use jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::PatchParams;
use tokio::task::JoinSet;

use crate::Clock;
use crate::health::{Heartbeats, Ready};
use crate::leader::Leadership;

pub use cluster::Stores;
pub use error::Error;
pub use events::Events;
pub use metered::Metered;
pub use metrics::NodesMetrics;

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "ballast-nodes";

/// Patch parameters of every write: our field manager.
pub(crate) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Knobs of the node controllers.
#[derive(Debug, Clone)]
pub struct NodesOptions {
    pub batch: BatchWindow,
    pub solve: SolveOptions,
    pub lifecycle: LifecycleOptions,
    /// Solve again at least this often while pods are pending.
    pub resync: Duration,
    /// How often orphaned instances and NodeClaims are looked for.
    pub gc_interval: Duration,
    /// Instances and NodeClaims younger than this are never garbage-collected.
    pub gc_grace: Duration,
    /// How long an offering that failed with insufficient capacity stays unavailable.
    pub unavailable_ttl: Duration,
    /// Only NodePools with these labels (a label selector) are managed.
    pub nodepool_selector: Option<String>,
    /// Only pending pods of these namespaces are provisioned for (empty: all).
    pub namespaces: Vec<String>,
    /// How often NodePool statuses are refreshed (besides after each solve).
    pub status_interval: Duration,
    /// The disruption controller (None: off).
    pub disruption: Option<disruption::DisruptionShellOptions>,
    /// The interruption queue (None: not read).
    pub interruption: Option<interruption::InterruptionOptions>,
    /// How often the provider is asked whether an initialized NodeClaim drifted ([`drift`]).
    pub drift_interval: Duration,
    /// Where every decision's `now` comes from.
    pub clock: Clock,
    /// Whether this process leads (always, without leader election): the controllers start
    /// when it does.
    pub leadership: Leadership,
    /// The turns of the provisioner and disruption loops (`/healthz`).
    pub heartbeats: Heartbeats,
    /// Set once the caches are synced (`/readyz`).
    pub ready: Ready,
    /// What the controllers count (`/metrics`, once registered).
    pub metrics: NodesMetrics,
}

impl Default for NodesOptions {
    fn default() -> Self {
        NodesOptions {
            batch: BatchWindow::default(),
            solve: SolveOptions::default(),
            lifecycle: LifecycleOptions::default(),
            resync: Duration::from_secs(30),
            gc_interval: Duration::from_secs(30),
            gc_grace: Duration::from_secs(30),
            unavailable_ttl: Duration::from_secs(180),
            nodepool_selector: None,
            namespaces: vec![],
            status_interval: Duration::from_secs(5),
            disruption: Some(disruption::DisruptionShellOptions::default()),
            interruption: None,
            drift_interval: Duration::from_secs(300),
            clock: Clock::system(),
            leadership: Leadership::always(),
            heartbeats: Heartbeats::default(),
            ready: Ready::default(),
            metrics: NodesMetrics::default(),
        }
    }
}

/// What every node controller shares.
pub struct Ctx<P> {
    pub client: Client,
    /// A client that does not retry 429s itself: an eviction refused by a PDB must come back at
    /// once (the default client retries 429s for up to minutes).
    pub evictions: Client,
    pub provider: Arc<P>,
    pub stores: Stores,
    pub unavailable: UnavailableOfferings,
    pub events: Events,
    pub opts: NodesOptions,
    /// Instances launched by this process whose NodeClaim status may not show them yet.
    pub launched: Mutex<BTreeMap<String, Instance>>,
    /// NodeClaims created by the provisioner that the cache may not show yet.
    pub recent_claims: Mutex<Vec<(NodeClaim, std::time::Instant)>>,
    /// When each NodeClaim was last asked about cloud-provider drift.
    pub drift_checks: Mutex<BTreeMap<String, drift::Checked>>,
}

impl<P: CloudProvider> Ctx<P> {
    /// The time now, from the options' clock.
    pub fn now(&self) -> Timestamp {
        self.opts.clock.now()
    }

    /// The provider's instance types with recently unavailable offerings masked.
    pub async fn instance_types(
        &self,
        now: Timestamp,
    ) -> Result<Vec<InstanceType>, ballast_cloud::CloudError> {
        let mut types = self.provider.instance_types().await?;
        self.unavailable.apply(&mut types, now);
        Ok(types)
    }

    /// Marks offerings unavailable for the configured time.
    pub fn mark_unavailable(&self, keys: &[ballast_cloud::OfferingKey], now: Timestamp) {
        let ttl = SignedDuration::try_from(self.opts.unavailable_ttl)
            .unwrap_or(SignedDuration::from_secs(180));
        self.unavailable.mark(keys, now, ttl);
    }

    /// Recently created NodeClaims not yet in the cache (entries the cache shows, or older than a
    /// minute, are dropped).
    pub fn recent_claims(&self) -> Vec<NodeClaim> {
        let mut recent = self.recent_claims.lock().expect("lock");
        recent.retain(|(c, at)| {
            at.elapsed() < Duration::from_secs(60)
                && c.metadata.name.as_ref().is_some_and(|n| {
                    self.stores
                        .node_claims
                        .find(|x| x.metadata.name.as_ref() == Some(n))
                        .is_none()
                })
        });
        recent.iter().map(|(c, _)| c.clone()).collect()
    }

    pub fn in_namespace_scope(&self, ns: Option<&str>) -> bool {
        cluster::in_namespaces(&self.opts.namespaces, ns)
    }
}

/// Runs every node controller until `shutdown` resolves (or the returned future is dropped,
/// which stops them all).
pub async fn run<P: CloudProvider>(
    config: kube::Config,
    provider: P,
    opts: NodesOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let sqs = match &opts.interruption {
        Some(i) => Some(i.client()?),
        None => None,
    };
    let client = Client::try_from(config.clone())?;
    let mut no_retry = config;
    no_retry.default_retry = false;
    let evictions = Client::try_from(no_retry)?;
    let mut tasks = JoinSet::new();
    let stores = Stores::start(&client, opts.nodepool_selector.as_deref(), &mut tasks).await?;
    opts.ready.set(true);
    let mut shutdown = std::pin::pin!(shutdown);
    if !opts.leadership.is_leading() {
        tracing::info!("caches synced; standing by until this process leads");
        tokio::select! {
            _ = opts.leadership.wait_leading() => {}
            _ = &mut shutdown => {
                tasks.shutdown().await;
                return Ok(());
            }
            Some(r) = tasks.join_next() => {
                r?;
                return Err(Error::TaskStopped);
            }
        }
    }
    tracing::info!(
        provider = provider.name(),
        nodepools = stores.node_pools.len(),
        nodeclaims = stores.node_claims.len(),
        nodes = stores.nodes.len(),
        "node controllers starting"
    );
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone()),
        client,
        evictions,
        provider: Arc::new(Metered::new(provider, opts.metrics.clone())),
        stores,
        unavailable: UnavailableOfferings::new(),
        opts,
        launched: Mutex::default(),
        recent_claims: Mutex::default(),
        drift_checks: Mutex::default(),
    });
    disruption::clear_stale_taints(&ctx).await;
    tasks.spawn(provisioner::run(ctx.clone()));
    tasks.spawn(claims::run(ctx.clone()));
    tasks.spawn(node_termination::run(ctx.clone()));
    tasks.spawn(gc::run(ctx.clone()));
    if ctx.opts.disruption.is_some() {
        tasks.spawn(disruption::run(ctx.clone()));
    }
    if let Some(sqs) = sqs {
        tasks.spawn(interruption::run(ctx.clone(), sqs));
    }
    tokio::select! {
        _ = &mut shutdown => tracing::info!("node controllers stopping"),
        Some(r) = tasks.join_next() => {
            r?;
            return Err(Error::TaskStopped);
        }
    }
    tasks.shutdown().await;
    Ok(())
}
