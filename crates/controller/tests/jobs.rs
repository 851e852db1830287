//! The jobs loop against the REAL test bed (`tests/testbed.sh up kube redis`): a Redis list with
//! 5 items and a `JobAutoscaler` (1 item per Job, max 3) starts 3 Jobs; the test marks them
//! Complete through the Job status (their pods never run: no node in the namespace), the history
//! limit (1) deletes the older two; once the list is empty no Job starts; an object whose source
//! cannot be read reports `Ready=False` while the good one keeps working.
//!
//! Without a test bed the test prints a skip note and passes.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::jobs::{JobAutoscaler, JobAutoscalerSpec, OWNER_LABEL};
use ballast_controller::jobs::{JobsConfig, JobsController};
use ballast_metrics::{MetricSource, MetricsConfig};
use ballast_testbed::services::{loopback_addr, redis_command};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{service_or_skip, testbed_or_skip};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt};
use serde_json::json;
use std::future::Future;

/// Waits up to `timeout` for `check` to hold.
async fn until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    poll_until(what, timeout, Duration::from_millis(300), || {
        let f = check();
        async move { Ok(f.await?.then_some(())) }
    })
    .await
}

fn object(name: &str, address: &str, list: &str) -> Result<JobAutoscaler> {
    let spec: JobAutoscalerSpec = serde_json::from_value(json!({
        "jobTargetRef": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "work", "image": "busybox"}],
            }},
        },
        "pollingInterval": 1,
        "maxReplicaCount": 3,
        "successfulJobsHistoryLimit": 1,
        "triggers": [{
            "type": "redis-list",
            "redisList": {"address": address, "listName": list},
            "target": {"type": "AverageValue", "averageValue": "1"},
        }],
    }))?;
    Ok(JobAutoscaler::new(name, spec))
}

async fn jobs_of(api: &Api<Job>, name: &str) -> Result<Vec<Job>> {
    Ok(api
        .list(&ListParams::default().labels(&format!("{OWNER_LABEL}={name}")))
        .await?
        .items)
}

fn ready(o: &JobAutoscaler) -> Option<(String, String)> {
    let c = o
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone()))
}

/// Marks a Job finished as the Job controller would (the pods never ran).
async fn complete(api: &Api<Job>, job: &Job) -> Result<()> {
    let name = job.metadata.name.clone().context("job name")?;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let start = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| now.clone());
    let status = json!({"status": {
        "startTime": start,
        "completionTime": now,
        "succeeded": 1,
        "active": 0,
        "ready": 0,
        "terminating": 0,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now, "lastProbeTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now, "lastProbeTime": now},
        ],
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("completing Job {name}"))?;
    Ok(())
}

#[tokio::test]
async fn jobs_start_per_item_and_history_is_kept_short() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    let address = loopback_addr(&url)?;
    let client = bed.client();
    ballast_testbed::crds::apply(
        &client,
        [JobAutoscaler::crd()],
        "ballast-jobs-test",
        Duration::from_secs(30),
    )
    .await?;
    let ns = bed.namespace("jba").await?;
    let list = format!("{}-queue", ns.name());
    redis_command(&url, &["DEL", &list]).await?;
    redis_command(&url, &["RPUSH", &list, "1", "2", "3", "4", "5"]).await?;

    let objects: Api<JobAutoscaler> = ns.api();
    let jobs: Api<Job> = ns.api();
    let pp = PostParams::default();
    objects
        .create(&pp, &object("work", &address, &list)?)
        .await?;
    objects
        .create(&pp, &object("bad", "nowhere.invalid:6379", &list)?)
        .await?;

    let source = MetricSource::new(
        client.clone(),
        MetricsConfig {
            read_timeout: Duration::from_secs(3),
            ..Default::default()
        },
    )?;
    let controller = JobsController::new(
        client.clone(),
        source,
        JobsConfig {
            namespace: Some(ns.name().to_owned()),
            tick: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller.run(async move {
        let _ = rx.await;
    }));

    until(
        Duration::from_secs(30),
        "3 Jobs for 5 items, max 3",
        || async { Ok(jobs_of(&jobs, "work").await?.len() == 3) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = jobs_of(&jobs, "work").await?;
    ensure!(started.len() == 3, "max 3 held: {} Jobs", started.len());
    ensure!(
        jobs_of(&jobs, "bad").await?.is_empty(),
        "the bad object starts nothing"
    );
    until(
        Duration::from_secs(30),
        "bad object reports SourceFailed",
        || async {
            Ok(ready(&objects.get("bad").await?) == Some(("False".into(), "SourceFailed".into())))
        },
    )
    .await?;
    ensure!(
        ready(&objects.get("work").await?) == Some(("True".into(), "SourcesRead".into())),
        "the good object stays Ready"
    );

    // The work is taken: the queue empties and the three Jobs finish.
    redis_command(&url, &["DEL", &list]).await?;
    for job in &started {
        complete(&jobs, job).await?;
    }
    until(
        Duration::from_secs(30),
        "history limit 1 keeps one Job",
        || async { Ok(jobs_of(&jobs, "work").await?.len() == 1) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        jobs_of(&jobs, "work").await?.len() == 1,
        "an empty queue starts no Job"
    );
    let _ = tx.send(());
    task.await?;
    ns.cleanup().await?;
    Ok(())
}
