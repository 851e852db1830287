//! The jobs loop against the REAL test bed (`tests/testbed.sh up kube redis kafka`). Jobs' pods
//! never run (no node in the test namespaces): the tests mark Jobs Complete through the Job
//! status and set pod conditions through the pod status.
//!
//! - a Redis list of 5 items (1 per Job, max 3) starts 3 Jobs; the history limit keeps one; an
//!   empty list starts none; an object whose source cannot be read reports `SourceFailed`;
//! - an invalid spec and a Job template the API server refuses get `Ready=False` naming the field
//!   or the create failure, with a Warning event, while an object beside them starts its Jobs;
//! - rollout `default` deletes the Jobs of the older template at once (a 60 s polling interval
//!   and an hour between ticks: only the watch can act in time), `gradual` leaves them;
//! - `pendingPodConditions`: a Job is pending until a pod has the listed conditions;
//! - a Kafka consumer group's lag starts Jobs.
//!
//! Without a test bed each test prints a skip note and passes.

mod jobs_support;

use std::time::Duration;

use anyhow::{Result, ensure};
use ballast_api::jobs::{JobAutoscaler, TEMPLATE_HASH_ANNOTATION};
use ballast_controller::jobs::JOB_NAME_LABEL;
use ballast_metrics::KafkaAdmin;
use ballast_testbed::services::{loopback_addr, redis_command};
use ballast_testbed::{service_or_skip, testbed_or_skip};
use jobs_support::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test]
async fn jobs_start_per_item_and_history_is_kept_short() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    let address = loopback_addr(&url)?;
    install_crd(&bed).await?;
    let ns = bed.namespace("jba").await?;
    let list = format!("{}-queue", ns.name());
    redis_command(&url, &["DEL", &list]).await?;
    redis_command(&url, &["RPUSH", &list, "1", "2", "3", "4", "5"]).await?;

    let objects: Api<JobAutoscaler> = ns.api();
    let jobs: Api<Job> = ns.api();
    let pp = PostParams::default();
    let work = object("work", redis_trigger(&address, &list), json!({}))?;
    objects.create(&pp, &work).await?;
    let bad = redis_trigger("nowhere.invalid:6379", &list);
    objects.create(&pp, &object("bad", bad, json!({}))?).await?;
    let (stop, task) = start_loop(&bed, &ns)?;

    until(
        Duration::from_secs(30),
        "3 Jobs for 5 items, max 3",
        || async { Ok(jobs_of(&jobs, "work").await?.len() == 3) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = jobs_of(&jobs, "work").await?;
    ensure!(started.len() == 3, "max 3 held: {} Jobs", started.len());
    wait_event(&ns, "work", "SuccessfulCreate", "Created 3 Jobs").await?;
    ensure!(
        jobs_of(&jobs, "bad").await?.is_empty(),
        "the bad object starts nothing"
    );
    until(
        Duration::from_secs(30),
        "bad object reports SourceFailed",
        || async {
            let r = ready(&objects.get("bad").await?);
            Ok(r.is_some_and(|(s, reason, _)| s == "False" && reason == "SourceFailed"))
        },
    )
    .await?;
    wait_event(&ns, "bad", "SourceFailed", "spec.triggers[0]").await?;
    let good = ready(&objects.get("work").await?);
    ensure!(
        good.as_ref()
            .is_some_and(|(s, r, _)| s == "True" && r == "SourcesRead"),
        "the good object stays Ready: {good:?}"
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
    let _ = stop.send(());
    task.await?;
    ns.cleanup().await?;
    Ok(())
}

/// Waits until object `name`'s `Ready` is False with `reason` and a message containing `part`.
async fn wait_not_ready(
    objects: &Api<JobAutoscaler>,
    name: &str,
    reason: &str,
    part: &str,
) -> Result<()> {
    until(
        Duration::from_secs(30),
        &format!("{name}: Ready=False {reason} naming {part:?}"),
        || async {
            let r = ready(&objects.get(name).await?);
            Ok(r.is_some_and(|(s, re, m)| s == "False" && re == reason && m.contains(part)))
        },
    )
    .await
}

#[tokio::test]
async fn bad_objects_report_why_and_the_good_one_goes_on() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    let address = loopback_addr(&url)?;
    install_crd(&bed).await?;
    let ns = bed.namespace("jba-bad").await?;
    let list = format!("{}-queue", ns.name());
    redis_command(&url, &["DEL", &list]).await?;
    redis_command(&url, &["RPUSH", &list, "1", "2"]).await?;

    let objects: Api<JobAutoscaler> = ns.api();
    let jobs: Api<Job> = ns.api();
    let pp = PostParams::default();
    // A trigger whose target (the work of one Job) is zero.
    let mut zero = redis_trigger(&address, &list);
    zero["target"] = json!({"type": "AverageValue", "averageValue": "0"});
    objects
        .create(&pp, &object("a-zero-target", zero, json!({}))?)
        .await?;
    // A container name the API server refuses.
    let refused = json!({"jobTargetRef": template("Not_A_DNS_Label")});
    objects
        .create(
            &pp,
            &object("b-refused", redis_trigger(&address, &list), refused)?,
        )
        .await?;
    let good = object("c-good", redis_trigger(&address, &list), json!({}))?;
    objects.create(&pp, &good).await?;
    let (stop, task) = start_loop(&bed, &ns)?;

    until(
        Duration::from_secs(30),
        "2 Jobs for the good object",
        || async { Ok(jobs_of(&jobs, "c-good").await?.len() == 2) },
    )
    .await?;
    wait_not_ready(
        &objects,
        "a-zero-target",
        "InvalidSpec",
        "spec.triggers[0].target",
    )
    .await?;
    wait_event(
        &ns,
        "a-zero-target",
        "InvalidSpec",
        "spec.triggers[0].target",
    )
    .await?;
    wait_not_ready(&objects, "b-refused", "FailedCreateJob", "creating a Job").await?;
    wait_event(&ns, "b-refused", "FailedCreateJob", "Not_A_DNS_Label").await?;
    ensure!(
        jobs_of(&jobs, "a-zero-target").await?.is_empty(),
        "nothing started"
    );
    ensure!(
        jobs_of(&jobs, "b-refused").await?.is_empty(),
        "nothing created"
    );
    let r = ready(&objects.get("c-good").await?);
    ensure!(
        r.is_some_and(|(s, _, _)| s == "True"),
        "the good object is Ready"
    );

    // Fixing the spec clears the condition.
    let fix = json!({"spec": {"triggers": [redis_trigger(&address, &list)]}});
    objects
        .patch(
            "a-zero-target",
            &PatchParams::default(),
            &Patch::Merge(&fix),
        )
        .await?;
    until(
        Duration::from_secs(30),
        "a fixed object starts its Jobs",
        || async {
            let r = ready(&objects.get("a-zero-target").await?);
            Ok(r.is_some_and(|(s, _, _)| s == "True")
                && jobs_of(&jobs, "a-zero-target").await?.len() == 2)
        },
    )
    .await?;
    let _ = stop.send(());
    task.await?;
    ns.cleanup().await?;
    Ok(())
}

fn hashes(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .map(|j| {
            j.annotations()
                .get(TEMPLATE_HASH_ANNOTATION)
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn rollout_default_replaces_older_jobs_and_gradual_keeps_them() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    let address = loopback_addr(&url)?;
    install_crd(&bed).await?;
    let ns = bed.namespace("jba-rollout").await?;
    let list = format!("{}-queue", ns.name());
    redis_command(&url, &["DEL", &list]).await?;
    redis_command(&url, &["RPUSH", &list, "1", "2"]).await?;

    let objects: Api<JobAutoscaler> = ns.api();
    let jobs: Api<Job> = ns.api();
    let pp = PostParams::default();
    // A minute between polls and an hour between ticks: only a watch event can wake the loop,
    // so acting within seconds on a new object or a change shows the watch at work.
    for (name, strategy) in [("default", "default"), ("gradual", "gradual")] {
        let extra = json!({"pollingInterval": 60, "rollout": {"strategy": strategy}});
        let o = object(name, redis_trigger(&address, &list), extra)?;
        objects.create(&pp, &o).await?;
    }
    let (stop, task) = start_loop_ticking(&bed, &ns, Duration::from_secs(3600))?;
    until(Duration::from_secs(20), "2 Jobs each", || async {
        Ok(jobs_of(&jobs, "default").await?.len() == 2
            && jobs_of(&jobs, "gradual").await?.len() == 2)
    })
    .await?;
    let old = hashes(&jobs_of(&jobs, "default").await?);
    let new_template = json!({"spec": {"jobTargetRef": template("work-v2")}});
    for name in ["default", "gradual"] {
        objects
            .patch(name, &PatchParams::default(), &Patch::Merge(&new_template))
            .await?;
    }
    until(
        Duration::from_secs(10),
        "default: the older Jobs deleted, 2 of the new template",
        || async {
            let now = hashes(&jobs_of(&jobs, "default").await?);
            Ok(now.len() == 2 && now.iter().all(|h| !old.contains(h)))
        },
    )
    .await?;
    wait_event(
        &ns,
        "default",
        "RolloutDeleteJobs",
        "Deleted 2 unfinished Jobs",
    )
    .await?;
    let kept = hashes(&jobs_of(&jobs, "gradual").await?);
    ensure!(
        kept.len() == 2 && kept.iter().all(|h| old.contains(h)),
        "gradual keeps the 2 Jobs of the older template and starts no more: {kept:?}"
    );
    let _ = stop.send(());
    task.await?;
    ns.cleanup().await?;
    Ok(())
}

/// The pods of the unfinished Jobs of `name`.
async fn pods_of(pods: &Api<Pod>, jobs: &[Job]) -> Result<Vec<Pod>> {
    let names: Vec<String> = jobs.iter().map(|j| j.name_any()).collect();
    let selector = format!("{JOB_NAME_LABEL} in ({})", names.join(","));
    Ok(pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

#[tokio::test]
async fn pending_pod_conditions_hold_a_job_pending_until_its_pod_has_them() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    let address = loopback_addr(&url)?;
    install_crd(&bed).await?;
    let ns = bed.namespace("jba-pending").await?;
    let list = format!("{}-queue", ns.name());
    redis_command(&url, &["DEL", &list]).await?;
    redis_command(&url, &["RPUSH", &list, "1", "2"]).await?;
    let objects: Api<JobAutoscaler> = ns.api();
    let jobs: Api<Job> = ns.api();
    let pods: Api<Pod> = ns.api();
    // accurate: a backlog of 2 with 2 pending Jobs starts nothing, with 1 pending starts 1.
    let extra = json!({"maxReplicaCount": 10, "scalingStrategy": {
        "strategy": "accurate", "pendingPodConditions": ["PodScheduled", "ballast.dev/Warm"]}});
    let o = object("work", redis_trigger(&address, &list), extra)?;
    objects.create(&PostParams::default(), &o).await?;
    let (stop, task) = start_loop(&bed, &ns)?;
    until(Duration::from_secs(30), "2 Jobs and their pods", || async {
        let started = jobs_of(&jobs, "work").await?;
        Ok(started.len() == 2 && pods_of(&pods, &started).await?.len() == 2)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = jobs_of(&jobs, "work").await?;
    ensure!(started.len() == 2, "2 pending Jobs hold: {}", started.len());
    let status = objects.get("work").await?.status.unwrap_or_default();
    ensure!(status.pending_jobs == 2, "2 pending: {status:?}");
    let pod = pods_of(&pods, &started).await?.remove(0);
    // One condition of two: still pending.
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let warm = json!({"status": {"conditions": [
        {"type": "ballast.dev/Warm", "status": "True", "lastTransitionTime": now}]}});
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Strategic(&warm),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        jobs_of(&jobs, "work").await?.len() == 2,
        "PodScheduled is still missing"
    );
    let scheduled = json!({"status": {"conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]}});
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Strategic(&scheduled),
    )
    .await?;
    until(
        Duration::from_secs(20),
        "a third Job once one is no longer pending",
        || async { Ok(jobs_of(&jobs, "work").await?.len() == 3) },
    )
    .await?;
    let _ = stop.send(());
    task.await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn kafka_lag_starts_jobs() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let address = service_or_skip!(bed.kafka_address(), Ok(()));
    install_crd(&bed).await?;
    let ns = bed.namespace("jba-kafka").await?;
    let topic = format!("{}-topic", ns.name());
    let group = format!("{}-group", ns.name());
    let mut admin = KafkaAdmin::connect(&address).await?;
    admin.create_topic(&topic, 2).await?;
    admin.produce(&topic, 0, 5).await?;
    admin.produce(&topic, 1, 4).await?;
    admin.commit(&group, &topic, 0, 1).await?;
    admin.commit(&group, &topic, 1, 0).await?;
    // Lag 4 + 4 = 8, 2 per Job: 4 Jobs (max 10).
    let trigger = json!({
        "type": "kafka",
        "kafka": {"bootstrapServers": [address], "consumerGroup": group, "topic": topic,
                  "allowIdleConsumers": true},
        "target": {"type": "AverageValue", "averageValue": "2"},
    });
    let objects: Api<JobAutoscaler> = ns.api();
    let jobs: Api<Job> = ns.api();
    let o = object("work", trigger, json!({"maxReplicaCount": 10}))?;
    objects.create(&PostParams::default(), &o).await?;
    let (stop, task) = start_loop(&bed, &ns)?;
    until(Duration::from_secs(30), "4 Jobs for a lag of 8", || async {
        Ok(jobs_of(&jobs, "work").await?.len() == 4)
    })
    .await?;
    let status = objects.get("work").await?.status.unwrap_or_default();
    ensure!(status.queue_length == Some(8), "queue length 8: {status:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        jobs_of(&jobs, "work").await?.len() == 4,
        "no more Jobs for the same lag"
    );
    let _ = stop.send(());
    task.await?;
    ns.cleanup().await?;
    Ok(())
}
