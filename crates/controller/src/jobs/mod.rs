//! The jobs loop: starts Jobs for `JobAutoscaler`s. Run inside `ballast controller horizontal`
//! (same event sources, same metric readers, same leader).
//!
//! It reads two watch caches (watch.rs): the objects and the Jobs carrying the owner label. An
//! object is passed (pass.rs) at once when it appears or its generation changes, and then every
//! `pollingInterval`; each tick only looks through the cache for objects that are due. A pass
//! checks the spec, counts the Jobs, reads the triggers, asks `ballast_horizontal::jobs::plan`,
//! creates and deletes Jobs, writes the status and publishes events (`SuccessfulCreate`,
//! `RolloutDeleteJobs`, and Warnings `InvalidSpec`, `SourceFailed`, `FailedListPods`,
//! `FailedCreateJob`, `FailedDeleteJob`).
//!
//! A bad object gets `Ready=False` with the reason and a Warning event; the others go on.

mod count;
mod expect;
mod job;
mod pass;
mod pods;
mod settings;
mod status;
mod watch;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ballast_api::jobs::JobAutoscaler;
use ballast_metrics::MetricSource;
use kube::{Client, ResourceExt};

use crate::clock::Clock;
use crate::events::{Event, Recorder};
use crate::leader::Leadership;
pub use count::{Classified, classify};
use expect::Expectations;
pub use job::{new_job, template_hash};
pub use pods::JOB_NAME_LABEL;
pub use status::Problem;

/// The `reportingController` of the loop's events.
pub const CONTROLLER_NAME: &str = "ballast-jobs";

/// Settings of the jobs loop.
#[derive(Clone)]
pub struct JobsConfig {
    /// Watch only this namespace.
    pub namespace: Option<String>,
    /// Passes run only while leading.
    pub leadership: Leadership,
    /// How often the loop looks through its cache for objects that are due.
    pub tick: Duration,
    /// Time of the status's conditions, `lastActiveTime` and events.
    pub clock: Clock,
    /// The `reportingInstance` of events (the pod's name).
    pub instance: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            namespace: None,
            leadership: Leadership::always(),
            tick: Duration::from_secs(1),
            clock: Clock::system(),
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| CONTROLLER_NAME.to_owned()),
        }
    }
}

/// The jobs loop.
pub struct JobsController {
    client: Client,
    source: MetricSource,
    config: JobsConfig,
    recorder: Recorder,
}

/// An event of a pass.
struct Note<'a> {
    warning: bool,
    reason: &'a str,
    message: &'a str,
}

impl<'a> Note<'a> {
    fn normal(reason: &'a str, message: &'a str) -> Note<'a> {
        Note {
            warning: false,
            reason,
            message,
        }
    }

    fn warning(reason: &'a str, message: &'a str) -> Note<'a> {
        Note {
            warning: true,
            reason,
            message,
        }
    }
}

/// When each object was last passed, and at which generation.
type Due = HashMap<String, (Instant, Option<i64>)>;

impl JobsController {
    /// A loop on `client` reading sources through `source`.
    pub fn new(client: Client, source: MetricSource, config: JobsConfig) -> JobsController {
        let recorder = Recorder::new(
            client.clone(),
            CONTROLLER_NAME,
            config.instance.clone(),
            config.clock.clone(),
        );
        JobsController {
            client,
            source,
            config,
            recorder,
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let caches = watch::start(&self.client, self.config.namespace.as_deref());
        tokio::select! {
            _ = &mut shutdown => return,
            r = caches.ready() => if r.is_err() { return },
        }
        let mut due = Due::new();
        let mut expect = Expectations::default();
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = caches.changed.notified() => {}
                _ = tokio::time::sleep(self.config.tick) => {}
            }
            if !self.config.leadership.is_leading() {
                continue;
            }
            self.pass_due(&caches, &mut due, &mut expect).await;
        }
    }

    /// Passes every cached object that is new, changed or due by its polling interval.
    async fn pass_due(&self, caches: &watch::Caches, due: &mut Due, expect: &mut Expectations) {
        let objects = caches.objects.state();
        let keys: Vec<String> = objects.iter().map(|o| pass::key(o)).collect();
        let watched: HashSet<&str> = keys.iter().map(String::as_str).collect();
        due.retain(|k, _| watched.contains(k.as_str()));
        expect.retain(|k| watched.contains(k));
        let now = Instant::now();
        for (object, key) in objects.iter().zip(&keys) {
            if !is_due(object, due.get(key), now) {
                continue;
            }
            due.insert(key.clone(), (now, object.metadata.generation));
            let namespace = object.namespace().unwrap_or_default();
            let cached = caches.jobs_of(&namespace, &object.name_any());
            self.pass(object, cached, expect).await;
        }
    }

    async fn publish(&self, object: &JobAutoscaler, note: Note<'_>) {
        let action = match note.reason {
            "SuccessfulCreate" | "FailedCreateJob" => "StartJobs",
            "RolloutDeleteJobs" | "FailedDeleteJob" => "DeleteJobs",
            "SourceFailed" => "ReadTriggers",
            _ => "CheckSpec",
        };
        let event = Event {
            warning: note.warning,
            reason: note.reason,
            note: note.message,
            action,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &pass::regarding(object))
            .await
        {
            tracing::warn!(object = %pass::key(object), reason = note.reason, error = %e, "publishing an event failed");
        }
    }
}

/// Whether `object`, last passed as `last` (time, generation), is due at `now`.
fn is_due(object: &JobAutoscaler, last: Option<&(Instant, Option<i64>)>, now: Instant) -> bool {
    if object.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let period = Duration::from_secs(object.spec.polling_interval_seconds().max(1) as u64);
    match last {
        Some((at, generation)) => {
            *generation != object.metadata.generation || now.duration_since(*at) >= period
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_due_when_new_changed_or_its_interval_passed() {
        let mut object = JobAutoscaler::new("work", Default::default());
        object.spec.polling_interval = Some(30);
        object.metadata.generation = Some(1);
        let t0 = Instant::now();
        assert!(is_due(&object, None, t0));
        let last = (t0, Some(1));
        assert!(!is_due(&object, Some(&last), t0 + Duration::from_secs(29)));
        assert!(is_due(&object, Some(&last), t0 + Duration::from_secs(30)));
        object.metadata.generation = Some(2);
        assert!(is_due(&object, Some(&last), t0 + Duration::from_secs(1)));
        object.metadata.deletion_timestamp =
            Some(ballast_api::common::Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(!is_due(&object, None, t0));
    }
}
