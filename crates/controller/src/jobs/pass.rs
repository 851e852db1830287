//! One pass over one `JobAutoscaler`:
//!
//! ```text
//! check the spec (settings.rs)                       → InvalidSpec
//!   → its Jobs from the cache, corrected by the expectations (expect.rs) → classify (count.rs)
//!   → delete unfinished Jobs of an older template (rollout default) and finished Jobs past
//!     the history limits                                → event RolloutDeleteJobs
//!   → pending Jobs (pods.rs, ballast_horizontal::jobs::pending_count) → FailedListPods
//!   → read the triggers                              → SourceFailed
//!   → ballast_horizontal::jobs::plan → create Jobs   → event SuccessfulCreate / FailedCreateJob
//!   → status (status.rs)
//! ```
//!
//! A problem stops the pass where it happens, sets `Ready=False` with its reason and message,
//! and is published as a Warning event; the loop goes on with the other objects.

use std::sync::Arc;
use std::time::Instant;

use ballast_api::common::Time;
use ballast_api::jobs::JobAutoscaler;
use ballast_horizontal::jobs::{JobCounts, QueueReading, pending_count, plan};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use super::count::{Classified, classify};
use super::expect::Expectations;
use super::pods::unfinished_jobs;
use super::settings::{Settings, settings};
use super::status::{Problem, Seen, status};
use super::{JobsController, Note};
use crate::scale::error_text;

type Stopped = (Seen, Problem);

impl JobsController {
    /// One pass over `object`, whose cached Jobs are `cached`; writes its status.
    pub(super) async fn pass(
        &self,
        object: &JobAutoscaler,
        cached: Vec<Arc<Job>>,
        expect: &mut Expectations,
    ) {
        let (seen, problem) = match self.settle(object, cached, expect).await {
            Ok(seen) => (seen, None),
            Err((seen, problem)) => (seen, Some(problem)),
        };
        if let Some(p) = &problem {
            self.publish(object, Note::warning(p.reason, &p.message))
                .await;
        }
        let now = Time(self.config.clock.now());
        let status = status(object, seen, problem.as_ref(), &now);
        let api: Api<JobAutoscaler> =
            Api::namespaced(self.client.clone(), &object.namespace().unwrap_or_default());
        let patch = serde_json::json!({ "status": status });
        if let Err(e) = api
            .patch_status(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(object = %key(object), error = %error_text(&e), "writing the status of a JobAutoscaler");
        }
    }

    async fn settle(
        &self,
        object: &JobAutoscaler,
        cached: Vec<Arc<Job>>,
        expect: &mut Expectations,
    ) -> Result<Seen, Stopped> {
        let settings = settings(object).map_err(|p| (Seen::default(), p))?;
        let key = key(object);
        let (jobs, unseen) = expect.adjust(&key, cached, Instant::now());
        let classified = classify(jobs, &settings.hash, object.spec.rollout.as_ref());
        self.delete(object, &classified, &settings, expect).await;
        let namespace = object.namespace().unwrap_or_default();
        let active = u32::try_from(classified.unfinished.len()).unwrap_or(u32::MAX) + unseen;
        let mut seen = Seen {
            active,
            pending: unseen,
            backlog: None,
        };
        let unfinished = unfinished_jobs(
            &self.client,
            &namespace,
            &classified.unfinished,
            &settings.pending_conditions,
        )
        .await
        .map_err(|e| {
            let message = format!("listing the pods of its Jobs: {}", error_text(&e));
            let problem = Problem {
                reason: "FailedListPods",
                message,
            };
            (seen, problem)
        })?;
        seen.pending += pending_count(&unfinished, &settings.pending_conditions);
        let readings = self.read(&namespace, object, &settings).await;
        let readings = readings.map_err(|message| {
            let reason = "SourceFailed";
            (seen, Problem { reason, message })
        })?;
        let backlog: f64 = readings.iter().map(|r| r.backlog.max(0.0)).sum();
        seen.backlog = Some(backlog);
        let counts = JobCounts {
            active: seen.active,
            pending: seen.pending,
        };
        let decided = plan(&readings, counts, settings.limits);
        let (created, failed) = self.create(object, &settings, decided.start, expect).await;
        if created > 0 {
            let note = format!(
                "Created {created} Jobs (backlog {backlog}, wanted {}, active before {}, pending {})",
                decided.wanted, seen.active, seen.pending
            );
            self.publish(object, Note::normal("SuccessfulCreate", &note))
                .await;
        }
        seen.active += created;
        seen.pending += created;
        match failed {
            Some(problem) => Err((seen, problem)),
            None => Ok(seen),
        }
    }

    /// Each trigger's backlog and work per Job, or the first failure's message.
    async fn read(
        &self,
        namespace: &str,
        object: &JobAutoscaler,
        settings: &Settings,
    ) -> Result<Vec<QueueReading>, String> {
        let mut out = Vec::new();
        for (i, (trigger, per_job)) in object
            .spec
            .triggers
            .iter()
            .zip(&settings.per_job)
            .enumerate()
        {
            let reading = self
                .source
                .read_event(namespace, i, trigger)
                .await
                .map_err(|e| format!("spec.triggers[{i}]: {}", e.reading_message()))?;
            let backlog = backlog_of(&reading)
                .ok_or_else(|| format!("spec.triggers[{i}]: the source gave no value"))?;
            out.push(QueueReading {
                backlog,
                per_job: *per_job,
            });
        }
        Ok(out)
    }

    /// Starts `count` Jobs; returns how many were created and the failure that stopped it.
    async fn create(
        &self,
        object: &JobAutoscaler,
        settings: &Settings,
        count: u32,
        expect: &mut Expectations,
    ) -> (u32, Option<Problem>) {
        let namespace = object.namespace().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        let mut created = 0;
        for _ in 0..count {
            match api.create(&PostParams::default(), &settings.template).await {
                Ok(job) => {
                    expect.created(&key(object), job.name_any(), Instant::now());
                    created += 1;
                }
                Err(e) => {
                    let message =
                        format!("creating a Job from spec.jobTargetRef: {}", error_text(&e));
                    let reason = "FailedCreateJob";
                    return (created, Some(Problem { reason, message }));
                }
            }
        }
        (created, None)
    }

    /// Deletes the outdated Jobs (rollout) and the finished ones past the history limits.
    async fn delete(
        &self,
        object: &JobAutoscaler,
        classified: &Classified,
        settings: &Settings,
        expect: &mut Expectations,
    ) {
        let namespace = object.namespace().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        let mut outdated = Vec::new();
        for name in classified.to_delete(&object.spec) {
            match api.delete(&name, &settings.delete).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    let note = format!("deleting Job {name}: {}", error_text(&e));
                    self.publish(object, Note::warning("FailedDeleteJob", &note))
                        .await;
                    continue;
                }
            }
            expect.deleted(&key(object), name.clone(), Instant::now());
            if classified.outdated.contains(&name) {
                outdated.push(name);
            }
        }
        if !outdated.is_empty() {
            let note = format!(
                "Deleted {} unfinished Jobs of an older spec.jobTargetRef (rollout default): {}",
                outdated.len(),
                outdated.join(", ")
            );
            self.publish(object, Note::normal("RolloutDeleteJobs", &note))
                .await;
        }
    }
}

/// `namespace/name` of `object`.
pub(super) fn key(object: &JobAutoscaler) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// A reading's value, or the sum of its values.
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

/// The reference events carry.
pub(super) fn regarding(object: &JobAutoscaler) -> k8s_openapi::api::core::v1::ObjectReference {
    object.object_ref(&())
}
