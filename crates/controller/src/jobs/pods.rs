//! The pods of a `JobAutoscaler`'s unfinished Jobs, read only when it lists
//! `pendingPodConditions`: lists by the `batch.kubernetes.io/job-name` label the Job controller
//! puts on every pod (50 Jobs per list).

use std::collections::HashMap;

use ballast_horizontal::jobs::UnfinishedJob;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

/// The label the Job controller sets on a Job's pods, with the Job's name as value.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
const NAMES_PER_LIST: usize = 50;

/// What the pending count reads of `unfinished` (name, pods ready or succeeded) in
/// `namespace`: with `required` conditions, each Job's pods' True conditions (read from the API
/// server); without, no read.
pub async fn unfinished_jobs(
    client: &Client,
    namespace: &str,
    unfinished: &[(String, u32)],
    required: &[String],
) -> Result<Vec<UnfinishedJob>, kube::Error> {
    let mut pods: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    if !required.is_empty() {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        for names in unfinished.chunks(NAMES_PER_LIST) {
            let list: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
            let selector = format!("{JOB_NAME_LABEL} in ({})", list.join(","));
            for pod in api.list(&ListParams::default().labels(&selector)).await? {
                let Some(job) = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(JOB_NAME_LABEL))
                else {
                    continue;
                };
                pods.entry(job.clone())
                    .or_default()
                    .push(true_conditions(&pod));
            }
        }
    }
    Ok(unfinished
        .iter()
        .map(|(name, started_pods)| UnfinishedJob {
            started_pods: *started_pods,
            pods: pods.remove(name).unwrap_or_default(),
        })
        .collect())
}

/// The types of `pod`'s conditions whose status is True.
fn true_conditions(pod: &Pod) -> Vec<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .filter(|c| c.status == "True")
                .map(|c| c.type_.clone())
                .collect()
        })
        .unwrap_or_default()
}
