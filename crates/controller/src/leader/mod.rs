//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas of one reconciler
//! can run and only one writes.
//!
//! [`LeaderElector::run`] reads the Lease every retry period (2 s) and, through the state machine
//! of [`election`], creates it, takes it over when it is free or expired, or renews it; every
//! write replaces the object read (its `resourceVersion` guards against a concurrent writer: a 409
//! means someone else wrote first, and the next read tells who). The [`Leadership`] handle the
//! reconcilers hold says whether this process leads now; `/leaderz` and the `<reconciler>_leader`
//! gauge ([`metric`]) tell it outside.
//!
//! - A standby keeps its caches (watches) warm and decides nothing; it is ready to take over.
//! - A leader that could not renew within the renew deadline (10 s) has lost the lease:
//!   [`LeaderElector::run`] returns [`LeaderError::Lost`] at that instant, and the process exits
//!   non-zero so that Kubernetes restarts it as a standby (nothing it has in flight can write
//!   after the lease could have passed to another, 15 s after its last renewal).
//! - On shutdown the leader releases the lease (empty holder), so a standby takes over at its next
//!   read instead of waiting for the lease to expire.

pub mod election;
pub mod metric;

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::Clock;
pub use election::{Election, Record, Step, Timing, TimingError};

/// Where and as whom a process runs for leadership.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Namespace of the Lease (the pod's own).
    pub namespace: String,
    /// Name of the Lease, one per reconciler (`ballast-horizontal`, ...).
    pub name: String,
    /// This candidate's identity, unique among the replicas (the pod name).
    pub identity: String,
    /// Lease duration, renew deadline and retry period.
    pub timing: Timing,
    /// The wall clock written into `acquireTime` and `renewTime`.
    pub clock: Clock,
}

/// Why leader election stopped.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The leader could not renew the lease within the renew deadline (or saw another holder):
    /// it must stop writing at once.
    #[error(
        "lost the leadership of Lease {namespace}/{name}: not renewed within the renew deadline of {deadline:?} (last error: {last_error})"
    )]
    Lost {
        namespace: String,
        name: String,
        deadline: Duration,
        last_error: String,
    },
    /// The timing is not usable.
    #[error(transparent)]
    Timing(#[from] TimingError),
}

/// Until when a process leads, as its elector last published it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Term {
    /// Not leading.
    Standby,
    /// Leading until this instant unless the elector renews first.
    Until(Instant),
    /// Always leading (no election).
    Always,
}

/// Whether this process leads: cheap to clone, shared by the reconcilers of one process.
///
/// The answer is checked against the leader's renew deadline at each call, so a reconcile that
/// runs before the elector noticed a missed deadline (after a long pause of the process) sees that
/// it no longer leads.
#[derive(Clone, Debug)]
pub struct Leadership {
    term: watch::Receiver<Term>,
}

impl Leadership {
    /// A process without leader election: it always leads.
    pub fn always() -> Leadership {
        let (_, term) = watch::channel(Term::Always);
        Leadership { term }
    }

    /// A process that never leads (tests of what a standby answers).
    pub fn standby() -> Leadership {
        let (_, term) = watch::channel(Term::Standby);
        Leadership { term }
    }

    /// Whether this process leads now.
    pub fn is_leading(&self) -> bool {
        leads(&self.term.borrow(), Instant::now())
    }

    /// Resolves once this process leads (at once when it does); never when the elector stopped
    /// without leading.
    pub async fn wait_leading(&self) {
        let mut rx = self.term.clone();
        if rx.wait_for(|t| leads(t, Instant::now())).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn leads(term: &Term, now: Instant) -> bool {
    match term {
        Term::Standby => false,
        Term::Until(d) => now < *d,
        Term::Always => true,
    }
}

impl Default for Leadership {
    fn default() -> Self {
        Leadership::always()
    }
}

/// Runs for the leadership of one Lease; see the module documentation.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderConfig,
    election: Election,
    term: watch::Sender<Term>,
    last_error: String,
}

impl LeaderElector {
    /// An elector on `client` and the handle that tells whether it leads (not yet).
    pub fn new(
        client: Client,
        config: LeaderConfig,
    ) -> Result<(LeaderElector, Leadership), LeaderError> {
        config.timing.validate()?;
        let (term, rx) = watch::channel(Term::Standby);
        let elector = LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            election: Election::new(config.identity.clone(), config.timing),
            config,
            term,
            last_error: "none".to_owned(),
        };
        Ok((elector, Leadership { term: rx }))
    }

    /// Runs until `shutdown` resolves (then releases the lease if held and returns `Ok`) or the
    /// leadership is lost (returns [`LeaderError::Lost`] the moment the renew deadline passes).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), LeaderError> {
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(lease = %format!("{}/{}", self.config.namespace, self.config.name), identity = %self.config.identity, "running for leadership");
        loop {
            let started = Instant::now();
            let wake = tokio::select! {
                _ = &mut shutdown => break,
                _ = until(self.election.leads_until()) => return Err(self.lost()),
                wake = self.attempt(started) => wake,
            };
            self.publish()?;
            tokio::select! {
                _ = &mut shutdown => break,
                _ = until(self.election.leads_until()) => return Err(self.lost()),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        self.release().await;
        Ok(())
    }

    /// One read and, when the state machine says so, one write; returns when to try again.
    async fn attempt(&mut self, started: Instant) -> Instant {
        let retry = started + self.config.timing.retry_period;
        let read = match self.api.get_opt(&self.config.name).await {
            Ok(r) => r,
            Err(e) => {
                self.failed("reading", &e);
                return retry;
            }
        };
        let record = read.as_ref().map(record_of);
        let now = Instant::now();
        match self
            .election
            .step(record.as_ref(), now, self.config.clock.now())
        {
            Step::Wait { holder, expires } => {
                tracing::debug!(%holder, "lease held by another candidate");
                // Read again at the retry period, or the moment the lease expires if sooner.
                retry.min(expires.max(now))
            }
            Step::Create(r) => {
                let lease = self.lease(None, &r);
                let result = self.api.create(&self.post_params(), &lease).await;
                self.wrote(result, r, now);
                retry
            }
            Step::Write(r) => {
                let lease = self.lease(read, &r);
                let result = self
                    .api
                    .replace(&self.config.name, &self.post_params(), &lease)
                    .await;
                self.wrote(result, r, now);
                retry
            }
        }
    }

    fn wrote(&mut self, result: Result<Lease, kube::Error>, record: Record, sent: Instant) {
        match result {
            Ok(_) => {
                if !self.election.is_leader(sent) {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired the lease: leading");
                }
                self.election.written(record, sent);
            }
            Err(e) => self.failed("writing", &e),
        }
    }

    fn failed(&mut self, what: &str, e: &kube::Error) {
        let conflict = matches!(e, kube::Error::Api(s) if s.code == 409);
        if !conflict {
            tracing::warn!(lease = %self.config.name, error = %e, "{what} the lease failed");
        }
        self.last_error = format!("{what}: {e}");
    }

    /// Tells the reconcilers until when this process leads; an error once it led and no more.
    fn publish(&mut self) -> Result<(), LeaderError> {
        let now = Instant::now();
        let led = *self.term.borrow() != Term::Standby;
        if !self.election.is_leader(now) {
            return if led { Err(self.lost()) } else { Ok(()) };
        }
        if let Some(until) = self.election.leads_until() {
            self.term.send_replace(Term::Until(until));
        }
        Ok(())
    }

    fn lost(&mut self) -> LeaderError {
        self.term.send_replace(Term::Standby);
        LeaderError::Lost {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            deadline: self.config.timing.renew_deadline,
            last_error: self.last_error.clone(),
        }
    }

    /// Gives the lease up when this process holds it (best effort, bounded by the renew
    /// deadline): the reconcilers stop first, so nothing writes after.
    async fn release(&mut self) {
        if self.term.send_replace(Term::Standby) == Term::Standby {
            return;
        }
        let give_up = async {
            let read = self.api.get_opt(&self.config.name).await?;
            let Some(lease) = read else { return Ok(false) };
            let Some(r) = self
                .election
                .release(&record_of(&lease), self.config.clock.now())
            else {
                return Ok(false);
            };
            let lease = self.lease(Some(lease), &r);
            self.api
                .replace(&self.config.name, &self.post_params(), &lease)
                .await
                .map(|_| true)
        };
        let deadline = self.config.timing.renew_deadline;
        match tokio::time::timeout(deadline, give_up).await {
            Ok(Ok(true)) => {
                tracing::info!(lease = %self.config.name, "released the lease");
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.config.name, error = %e, "releasing the lease failed; it expires by itself")
            }
            Err(_) => {
                tracing::warn!(lease = %self.config.name, "releasing the lease timed out; it expires by itself")
            }
        }
        self.election.released();
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(format!("ballast-leader-{}", self.config.name)),
            ..Default::default()
        }
    }

    /// The Lease to write: `read` (keeping its metadata, so its `resourceVersion` guards the
    /// replace) with `record` as its spec, or a new one.
    fn lease(&self, read: Option<Lease>, record: &Record) -> Lease {
        let metadata = read
            .map(|l| ObjectMeta {
                // Left out: the server keeps them (sending them would replace them).
                managed_fields: None,
                ..l.metadata
            })
            .unwrap_or_else(|| ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..Default::default()
            });
        Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: record.holder.clone(),
                lease_duration_seconds: record.lease_duration_seconds,
                acquire_time: record.acquire_time.map(MicroTime),
                renew_time: record.renew_time.map(MicroTime),
                lease_transitions: Some(record.transitions),
                ..LeaseSpec::default()
            }),
        }
    }
}

/// The election's fields of a Lease.
pub fn record_of(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity,
        lease_duration_seconds: spec.lease_duration_seconds,
        acquire_time: spec.acquire_time.map(|t| t.0),
        renew_time: spec.renew_time.map(|t| t.0),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

/// The default identity of a candidate: `POD_NAME`, else the host name and process id.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}_{}", std::process::id())
}

/// The default namespace of the Lease: `POD_NAMESPACE`, else `default`.
pub fn default_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leadership(term: Term) -> (watch::Sender<Term>, Leadership) {
        let (tx, term) = watch::channel(term);
        (tx, Leadership { term })
    }

    #[test]
    fn leading_ends_at_the_renew_deadline_even_unpublished() {
        let now = Instant::now();
        let (_tx, l) = leadership(Term::Until(now + Duration::from_secs(10)));
        assert!(l.is_leading());
        // The elector has not run since its deadline passed (a paused process): not leading.
        let (_tx, l) = leadership(Term::Until(now - Duration::from_millis(1)));
        assert!(!l.is_leading());
        let (_tx, l) = leadership(Term::Standby);
        assert!(!l.is_leading());
        assert!(Leadership::always().is_leading());
    }

    #[tokio::test]
    async fn waiting_for_leadership() {
        Leadership::always().wait_leading().await;
        let (tx, l) = leadership(Term::Standby);
        let waiter = tokio::spawn(async move { l.wait_leading().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        tx.send_replace(Term::Until(Instant::now() + Duration::from_secs(10)));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("leading")
            .expect("task");
    }
}
