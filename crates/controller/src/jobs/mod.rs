//! The jobs loop: starts Jobs for `JobAutoscaler`s. Run inside `ballast controller horizontal`
//! (same event sources, same metric readers, same leader), one pass per object every
//! `pollingInterval`:
//!
//! ```text
//! read triggers (ballast_metrics::MetricSource::read_event)
//!   → list the object's Jobs by owner label → count (count.rs)
//!   → rollout: delete unfinished Jobs of an older template (strategy default)
//!   → ballast_horizontal::jobs::plan → create Jobs (job.rs)
//!   → delete finished Jobs past the history limits → status
//! ```
//!
//! A bad object (a source that cannot be read, a trigger without a target) gets `Ready=False`
//! with the reason in its status; the other objects go on.

mod count;
mod job;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ballast_api::common::Time;
use ballast_api::jobs::{JobAutoscaler, JobAutoscalerStatus, OWNER_LABEL};
use ballast_horizontal::jobs::{JobCounts, JobLimits, QueueReading, plan};
use ballast_metrics::MetricSource;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::clock::Clock;
use crate::leader::Leadership;
pub use count::{Classified, classify};
pub use job::{new_job, template_hash};

/// Errors of one object's pass (reported in its status, never stopping the loop).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("JobAutoscaler {object}: {message}")]
    Spec { object: String, message: String },
    #[error("JobAutoscaler {object}: {source}")]
    Kube {
        object: String,
        #[source]
        source: kube::Error,
    },
}

/// Settings of the jobs loop.
#[derive(Clone)]
pub struct JobsConfig {
    /// Watch only this namespace.
    pub namespace: Option<String>,
    /// Passes run only while leading.
    pub leadership: Leadership,
    /// How often the loop looks for objects that are due.
    pub tick: Duration,
    /// Time of the status's conditions and `lastActiveTime`.
    pub clock: Clock,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            namespace: None,
            leadership: Leadership::always(),
            tick: Duration::from_secs(1),
            clock: Clock::system(),
        }
    }
}

/// The jobs loop.
pub struct JobsController {
    client: Client,
    source: MetricSource,
    config: JobsConfig,
}

/// When each object was last passed and at which generation.
type Due = HashMap<(String, String), (Instant, Option<i64>)>;

impl JobsController {
    /// A loop on `client` reading sources through `source`.
    pub fn new(client: Client, source: MetricSource, config: JobsConfig) -> JobsController {
        JobsController {
            client,
            source,
            config,
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut due = Due::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.config.tick) => {}
            }
            if !self.config.leadership.is_leading() {
                continue;
            }
            self.pass_due(&mut due).await;
        }
    }

    fn objects(&self) -> Api<JobAutoscaler> {
        match &self.config.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    async fn pass_due(&self, due: &mut Due) {
        let list = match self.objects().list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "listing JobAutoscalers");
                return;
            }
        };
        let now = Instant::now();
        for object in list.items {
            let key = (object.namespace().unwrap_or_default(), object.name_any());
            let period = Duration::from_secs(object.spec.polling_interval_seconds().max(1) as u64);
            let generation = object.metadata.generation;
            let is_due = match due.get(&key) {
                Some((last, seen)) => *seen != generation || now.duration_since(*last) >= period,
                None => true,
            };
            if !is_due || object.metadata.deletion_timestamp.is_some() {
                continue;
            }
            due.insert(key, (now, generation));
            if let Err(e) = self.pass(&object).await {
                tracing::warn!(error = %e, "job autoscaler pass");
            }
        }
    }

    /// One pass over one object.
    pub async fn pass(&self, object: &JobAutoscaler) -> Result<(), Error> {
        let namespace = object.namespace().unwrap_or_default();
        let name = object.name_any();
        let id = format!("{namespace}/{name}");
        let kube = |source| Error::Kube {
            object: id.clone(),
            source,
        };
        let readings = self.read(&namespace, object).await;
        let now = Time(self.config.clock.now());
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        let listed = jobs
            .list(&ListParams::default().labels(&format!("{OWNER_LABEL}={name}")))
            .await
            .map_err(kube)?;
        let hash = template_hash(&object.spec.job_target_ref);
        let classified = classify(listed.items, &hash, object.spec.rollout.as_ref());
        let policy = object
            .spec
            .rollout
            .as_ref()
            .map(|r| r.propagation_policy)
            .unwrap_or_default();
        let delete = DeleteParams {
            propagation_policy: Some(match policy {
                ballast_api::jobs::PropagationPolicy::Background => {
                    kube::api::PropagationPolicy::Background
                }
                ballast_api::jobs::PropagationPolicy::Foreground => {
                    kube::api::PropagationPolicy::Foreground
                }
            }),
            ..Default::default()
        };
        for old in classified.to_delete(&object.spec) {
            if let Err(e) = jobs.delete(&old, &delete).await {
                tracing::warn!(job = %old, error = %e, "deleting a Job");
            }
        }
        let (status, start) = match readings {
            Ok(readings) => {
                let limits = limits(object).map_err(|message| Error::Spec {
                    object: id.clone(),
                    message,
                })?;
                let counts = JobCounts {
                    active: classified.active,
                    pending: classified.pending,
                };
                let decided = plan(&readings, counts, limits);
                let backlog: f64 = readings.iter().map(|r| r.backlog.max(0.0)).sum();
                (
                    ready_status(object, &classified, decided.active, backlog, &now),
                    decided.start,
                )
            }
            Err(message) => (failed_status(object, &classified, &message, &now), 0),
        };
        let template = new_job(object, &hash).map_err(|message| Error::Spec {
            object: id.clone(),
            message,
        })?;
        for _ in 0..start {
            jobs.create(&PostParams::default(), &template)
                .await
                .map_err(kube)?;
        }
        let mut status = status;
        status.active_jobs += start as i32;
        status.pending_jobs += start as i32;
        self.write_status(&namespace, &name, status)
            .await
            .map_err(kube)
    }

    /// Each trigger's backlog and work per Job, or the first failure's message.
    async fn read(
        &self,
        namespace: &str,
        object: &JobAutoscaler,
    ) -> Result<Vec<QueueReading>, String> {
        let mut out = Vec::new();
        for (i, trigger) in object.spec.triggers.iter().enumerate() {
            let per_job = trigger
                .target
                .as_ref()
                .and_then(|t| t.average_value.as_ref().or(t.value.as_ref()))
                .and_then(|q| ballast_api::common::quantity_value(q).ok())
                .filter(|v| *v > 0.0)
                .ok_or_else(|| format!("triggers[{i}] needs a target above zero"))?;
            let reading = self
                .source
                .read_event(namespace, i, trigger)
                .await
                .map_err(|e| e.reading_message())?;
            let backlog = backlog_of(&reading).ok_or_else(|| format!("triggers[{i}]: no value"))?;
            out.push(QueueReading { backlog, per_job });
        }
        Ok(out)
    }

    async fn write_status(
        &self,
        namespace: &str,
        name: &str,
        status: JobAutoscalerStatus,
    ) -> Result<(), kube::Error> {
        let api: Api<JobAutoscaler> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({ "status": status });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }
}

fn backlog_of(reading: &ballast_metrics::MetricReading) -> Option<f64> {
    if let Some(v) = &reading.value {
        return ballast_api::common::quantity_value(v).ok();
    }
    let values = reading.values.as_ref()?;
    values
        .iter()
        .map(|q| ballast_api::common::quantity_value(q).ok())
        .sum()
}

/// The object's settings for the core.
fn limits(object: &JobAutoscaler) -> Result<JobLimits, String> {
    let strategy = object.spec.scaling_strategy.clone().unwrap_or_default();
    let running_share = match &strategy.custom_scaling_running_job_percentage {
        Some(text) => text
            .parse::<f64>()
            .map_err(|_| format!("customScalingRunningJobPercentage {text:?} is not a number"))?,
        None => 0.0,
    };
    Ok(JobLimits {
        strategy: strategy.strategy,
        combine: strategy.multiple_scalers_calculation,
        max: object.spec.max_replicas().max(0) as u32,
        min: object.spec.min_replicas().max(0) as u32,
        deduction: i64::from(strategy.custom_scaling_queue_length_deduction.unwrap_or(0)),
        running_share,
    })
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    previous: Option<&ballast_api::common::Condition>,
    generation: Option<i64>,
    now: &Time,
) -> ballast_api::common::Condition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    ballast_api::common::Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }
}

fn previous<'a>(
    object: &'a JobAutoscaler,
    type_: &str,
) -> Option<&'a ballast_api::common::Condition> {
    object
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn ready_status(
    object: &JobAutoscaler,
    jobs: &Classified,
    active: bool,
    backlog: f64,
    now: &Time,
) -> JobAutoscalerStatus {
    let generation = object.metadata.generation;
    let last_active = if active {
        Some(now.clone())
    } else {
        object
            .status
            .as_ref()
            .and_then(|s| s.last_active_time.clone())
    };
    JobAutoscalerStatus {
        observed_generation: generation,
        conditions: vec![
            condition(
                "Ready",
                true,
                "SourcesRead",
                "every trigger was read".into(),
                previous(object, "Ready"),
                generation,
                now,
            ),
            condition(
                "Active",
                active,
                if active { "Backlog" } else { "NoBacklog" },
                format!("backlog {backlog}"),
                previous(object, "Active"),
                generation,
                now,
            ),
        ],
        last_active_time: last_active,
        active_jobs: jobs.active as i32,
        pending_jobs: jobs.pending as i32,
        queue_length: Some(backlog.round() as i64),
    }
}

fn failed_status(
    object: &JobAutoscaler,
    jobs: &Classified,
    message: &str,
    now: &Time,
) -> JobAutoscalerStatus {
    let generation = object.metadata.generation;
    let mut status = object.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.conditions = vec![condition(
        "Ready",
        false,
        "SourceFailed",
        message.into(),
        previous(object, "Ready"),
        generation,
        now,
    )];
    status.active_jobs = jobs.active as i32;
    status.pending_jobs = jobs.pending as i32;
    status.queue_length = None;
    status
}
