//! The Jobs of one `JobAutoscaler`, sorted into unfinished, succeeded and failed, and which of
//! them to delete (rollout, history limits). Which unfinished Jobs are pending is counted by
//! `ballast_horizontal::jobs::pending_count` from what `pods.rs` reads.

use ballast_api::jobs::{
    DEFAULT_HISTORY_LIMIT, JobAutoscalerSpec, Rollout, RolloutStrategy, TEMPLATE_HASH_ANNOTATION,
};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

/// The Jobs of one object after a list.
#[derive(Debug, Default)]
pub struct Classified {
    /// Unfinished Jobs of the current template (and of older ones under `gradual`): name and
    /// pods ready or succeeded.
    pub unfinished: Vec<(String, u32)>,
    /// Unfinished Jobs of an older template, to delete (rollout `default`).
    pub outdated: Vec<String>,
    /// Succeeded Jobs, oldest first.
    pub succeeded: Vec<String>,
    /// Failed Jobs, oldest first.
    pub failed: Vec<String>,
}

fn finished(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Sorts `jobs` (listed by owner label) for a template of hash `hash`.
pub fn classify(mut jobs: Vec<Job>, hash: &str, rollout: Option<&Rollout>) -> Classified {
    jobs.sort_by(|a, b| {
        (a.creation_timestamp(), a.name_any()).cmp(&(b.creation_timestamp(), b.name_any()))
    });
    let gradual = rollout.is_some_and(|r| r.strategy == RolloutStrategy::Gradual);
    let mut out = Classified::default();
    for job in jobs {
        let name = job.name_any();
        if finished(&job, "Complete") || finished(&job, "SuccessCriteriaMet") {
            out.succeeded.push(name);
        } else if finished(&job, "Failed") || finished(&job, "FailureTarget") {
            out.failed.push(name);
        } else if !gradual
            && job
                .annotations()
                .get(TEMPLATE_HASH_ANNOTATION)
                .map(String::as_str)
                != Some(hash)
        {
            out.outdated.push(name);
        } else {
            let status = job.status.as_ref();
            let ready = status.and_then(|s| s.ready).unwrap_or(0);
            let succeeded = status.and_then(|s| s.succeeded).unwrap_or(0);
            let started = u32::try_from(ready.max(0) + succeeded.max(0)).unwrap_or(0);
            out.unfinished.push((name, started));
        }
    }
    out
}

impl Classified {
    /// Jobs to delete: outdated ones, then the oldest finished beyond the history limits.
    pub fn to_delete(&self, spec: &JobAutoscalerSpec) -> Vec<String> {
        let beyond = |names: &[String], limit: Option<i32>| {
            let keep = limit.unwrap_or(DEFAULT_HISTORY_LIMIT).max(0) as usize;
            names[..names.len().saturating_sub(keep)].to_vec()
        };
        let mut out = self.outdated.clone();
        out.extend(beyond(&self.succeeded, spec.successful_jobs_history_limit));
        out.extend(beyond(&self.failed, spec.failed_jobs_history_limit));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn job(name: &str, hash: &str, condition: Option<&str>, ready: i32) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        j.metadata.annotations =
            Some([(TEMPLATE_HASH_ANNOTATION.to_string(), hash.to_string())].into());
        j.status = Some(JobStatus {
            ready: Some(ready),
            conditions: condition.map(|c| {
                vec![JobCondition {
                    type_: c.into(),
                    status: "True".into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        j
    }

    #[test]
    fn jobs_sort_into_active_pending_finished_and_outdated() {
        let jobs = vec![
            job("a", "h", Some("Complete"), 0),
            job("b", "h", Some("Complete"), 0),
            job("c", "h", Some("Failed"), 0),
            job("d", "h", None, 1),
            job("e", "h", None, 0),
            job("f", "old", None, 1),
        ];
        let c = classify(jobs.clone(), "h", None);
        assert_eq!(c.unfinished, vec![("d".into(), 1), ("e".into(), 0)]);
        assert_eq!(c.outdated, vec!["f".to_string()]);
        let spec = JobAutoscalerSpec {
            successful_jobs_history_limit: Some(1),
            failed_jobs_history_limit: Some(0),
            ..Default::default()
        };
        assert_eq!(c.to_delete(&spec), vec!["f", "a", "c"]);
        let gradual = Rollout {
            strategy: RolloutStrategy::Gradual,
            ..Default::default()
        };
        let c = classify(jobs, "h", Some(&gradual));
        assert_eq!(c.unfinished.len(), 3);
        assert!(c.outdated.is_empty());
    }
}
