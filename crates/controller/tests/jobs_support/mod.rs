//! Helpers of the jobs loop's bed tests (`jobs.rs`): objects, a running loop on one namespace,
//! the Jobs, conditions and events of an object, and a Job marked finished.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, Result};
use ballast_api::jobs::{JobAutoscaler, JobAutoscalerSpec, OWNER_LABEL};
use ballast_controller::jobs::{JobsConfig, JobsController};
use ballast_metrics::{MetricSource, MetricsConfig};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestNamespace};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, CustomResourceExt};
use serde_json::{Value, json};

/// Waits up to `timeout` for `check` to hold.
pub async fn until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
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

/// Installs the CRD.
pub async fn install_crd(bed: &TestBed) -> Result<()> {
    ballast_testbed::crds::apply(
        &bed.client(),
        [JobAutoscaler::crd()],
        "ballast-jobs-test",
        Duration::from_secs(30),
    )
    .await
}

/// A Job template with one container `name`.
pub fn template(container: &str) -> Value {
    json!({
        "backoffLimit": 0,
        "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": container, "image": "busybox"}],
        }},
    })
}

/// A redis-list trigger (1 item per Job).
pub fn redis_trigger(address: &str, list: &str) -> Value {
    json!({
        "type": "redis-list",
        "redisList": {"address": address, "listName": list},
        "target": {"type": "AverageValue", "averageValue": "1"},
    })
}

/// An object `name`: polling every second, max 3 Jobs, history 1, with `trigger`; `extra` is
/// merged over the spec.
pub fn object(name: &str, trigger: Value, extra: Value) -> Result<JobAutoscaler> {
    let mut spec = json!({
        "jobTargetRef": template("work"),
        "pollingInterval": 1,
        "maxReplicaCount": 3,
        "successfulJobsHistoryLimit": 1,
        "triggers": [trigger],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    let spec: JobAutoscalerSpec = serde_json::from_value(spec)?;
    Ok(JobAutoscaler::new(name, spec))
}

/// The handle of a running loop: send (or drop) to stop it, then await the task.
pub type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// Starts the loop on `ns` (200 ms ticks).
pub fn start_loop(bed: &TestBed, ns: &TestNamespace) -> Result<Running> {
    start_loop_ticking(bed, ns, Duration::from_millis(200))
}

/// Starts the loop on `ns`, looking for due objects every `tick` (watch events wake it too).
pub fn start_loop_ticking(bed: &TestBed, ns: &TestNamespace, tick: Duration) -> Result<Running> {
    let client = bed.client();
    let source = MetricSource::new(
        client.clone(),
        MetricsConfig {
            read_timeout: Duration::from_secs(3),
            ..Default::default()
        },
    )?;
    let controller = JobsController::new(
        client,
        source,
        JobsConfig {
            namespace: Some(ns.name().to_owned()),
            tick,
            ..Default::default()
        },
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller.run(async move {
        let _ = rx.await;
    }));
    Ok((tx, task))
}

/// The Jobs of object `name` not being deleted.
pub async fn jobs_of(api: &Api<Job>, name: &str) -> Result<Vec<Job>> {
    Ok(api
        .list(&ListParams::default().labels(&format!("{OWNER_LABEL}={name}")))
        .await?
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .collect())
}

/// The `Ready` condition's status, reason and message.
pub fn ready(o: &JobAutoscaler) -> Option<(String, String, String)> {
    let c = o
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The (reason, note) of the events about object `name` in `ns`.
pub async fn events_of(ns: &TestNamespace, name: &str) -> Result<Vec<(String, String)>> {
    let events: Api<Event> = ns.api();
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reporting_controller.as_deref() == Some("ballast-jobs")
        })
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect())
}

/// Waits for an event `reason` about `name` whose note contains `part`.
pub async fn wait_event(ns: &TestNamespace, name: &str, reason: &str, part: &str) -> Result<()> {
    until(
        Duration::from_secs(30),
        &format!("event {reason} on {name} containing {part:?}"),
        || async {
            Ok(events_of(ns, name)
                .await?
                .iter()
                .any(|(r, n)| r == reason && n.contains(part)))
        },
    )
    .await
}

/// Marks a Job finished as the Job controller would (the pods never ran).
pub async fn complete(api: &Api<Job>, job: &Job) -> Result<()> {
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
