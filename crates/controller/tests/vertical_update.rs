//! The vertical updater against the REAL test bed (`tests/testbed.sh up kube metrics-server`):
//! kube-apiserver v1.35 (Eviction API with PDBs, the pods' `resize` subresource), the disruption
//! controller keeping each PDB's status, kwok nodes, metrics-server serving the pods' usage.
//!
//! - `recreate_evicts_within_the_pdb_and_new_pods_get_the_recommendation`: three pods requesting
//!   100m and using 300m, a PDB of maxUnavailable 1, a `Recreate` object: every pod is evicted and
//!   replaced by one sized by the real webhook, while a watch on the Deployment never sees fewer
//!   than two available replicas.
//! - `in_place_resizes_without_eviction`: `InPlaceOrRecreate` patches each pod's `resize`
//!   subresource; the pods keep their UIDs, their spec carries the recommendation, nothing is
//!   evicted.
//! - `a_resize_left_pending_falls_back_to_eviction`: a resize the "kubelet" defers
//!   (`PodResizePending`, reason `Deferred`) longer than the updater's pending timeout (6 s here,
//!   5 min by default) gets the pod evicted; the other pod, resized without a pending condition,
//!   stays.
//! - `a_refused_resize_falls_back_to_eviction`: on pods whose status reports no container
//!   resources (kwok's own), the API server refuses the resize and the updater evicts instead.
//!
//! **kwok runs no kubelet, and v0.8 emulates nothing of an in-place resize**: its pod stages
//! (`pod-ready`, `pod-complete`, `pod-delete`) never write `status.containerStatuses[].resources`
//! nor the `PodResizePending`/`PodResizeInProgress` conditions. The API server only accepts a
//! resize of a pod whose running containers report `resources` in their status (a kubelet that
//! supports resizing does); on a kwok pod it answers 422 "Pod running on node without support for
//! resize". So these tests play the kubelet's part on the pod status (the status subresource):
//! [`report_resources`] writes each container's resources as a resize-capable kubelet reports
//! them, and the fallback test sets `PodResizePending` itself.
//!
//! Each test runs its own recommender (with the updater every 2 s) restricted to its own
//! namespace. Without the updater nothing is evicted or resized and each test times out naming
//! what it waited for. Without a test bed every test prints a skip note and passes, unless
//! `BALLAST_REQUIRE_TESTBED=1` (as `tests/run.sh` sets).

mod vertical_support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_api::common::parse_quantity;
use ballast_api::vertical::VerticalAutoscaler;
use ballast_controller::vertical::{Config, UpdaterConfig, VerticalRecommender, webhook};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{KwokNode, TestBed, TestNamespace, service_or_skip, testbed_or_skip};
use ballast_vertical::apply::fallback::Timeouts;
use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use serde_json::json;
use vertical_support::{
    Running, cpu_request, create_va, deployment, install_crds, register_webhook, target,
    wait_condition, wait_event, workload,
};

const T: Duration = Duration::from_secs(120);

/// A recommender (passes every 2 s) with the updater (every 2 s, `timeouts`), evicting through a
/// client that does not retry 429s, and the webhook when a listener is given.
fn start(
    bed: &TestBed,
    ns: &TestNamespace,
    timeouts: Timeouts,
    listener: Option<webhook::TlsListener>,
) -> Result<Running> {
    let config = Config {
        namespace: Some(ns.name().to_owned()),
        interval: Duration::from_secs(2),
        instance: format!("test-{}", ns.name()),
        ..Default::default()
    };
    let mut no_retry = bed.kube_config().clone();
    no_retry.default_retry = false;
    let updater = UpdaterConfig {
        interval: Duration::from_secs(2),
        timeouts,
        ..Default::default()
    };
    let mut registry = Registry::default();
    let mut recommender = VerticalRecommender::new(bed.client(), config, &mut registry)
        .with_updater(updater, kube::Client::try_from(no_retry)?);
    if let Some(l) = listener {
        recommender = recommender.with_webhook(l);
    }
    Ok(Running::spawn(|s| recommender.run(s), registry))
}

/// The webhook's listener on a free port of 127.0.0.1, registered for `ns`; returns the
/// configuration's name (the caller deletes it).
async fn webhook_for(bed: &TestBed, ns: &TestNamespace) -> Result<(webhook::TlsListener, String)> {
    let certificate = webhook::Certificate::generate(&[])?;
    let listener = webhook::TlsListener::bind("127.0.0.1:0".parse()?, &certificate).await?;
    let addr = webhook::local_addr(&listener)?;
    let name = register_webhook(bed, ns, addr, &certificate.ca_pem).await?;
    Ok((listener, name))
}

async fn delete_webhook(bed: &TestBed, name: &str) -> Result<()> {
    kube::Api::<MutatingWebhookConfiguration>::all(bed.client())
        .delete(name, &Default::default())
        .await?;
    Ok(())
}

fn with_mode(mode: &str) -> serde_json::Value {
    let mut spec = deployment("web");
    spec["updatePolicy"] = json!({ "updateMode": mode });
    spec
}

/// The live (not deleting) pods of `app=web`.
async fn live_pods(ns: &TestNamespace) -> Result<Vec<Pod>> {
    Ok(ns
        .pods("app=web")
        .await?
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

fn uids(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter().filter_map(|p| p.uid()).collect()
}

/// The kubelet's part that kwok does not play: each running container reports its resources in
/// `status.containerStatuses[].resources` (what a resize-capable kubelet allocated). The list is
/// written whole (a merge patch replaces it), from the pod's own statuses.
async fn report_resources(ns: &TestNamespace, pod: &Pod) -> Result<()> {
    let spec = pod.spec.as_ref().context("pod without a spec")?;
    let mut statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .context("pod without container statuses")?;
    for s in &mut statuses {
        let c = spec.containers.iter().find(|c| c.name == s.name);
        s.resources = c.and_then(|c| c.resources.clone());
    }
    let body = json!({ "status": { "containerStatuses": statuses } });
    ns.api::<Pod>()
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
        .context("writing the pod's container resources to its status")?;
    Ok(())
}

/// Every value of the Deployment's `status.availableReplicas` a watch sees, until dropped.
struct AvailableReplicas {
    seen: Arc<Mutex<Vec<i32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AvailableReplicas {
    fn watch(ns: &TestNamespace, name: &str) -> AvailableReplicas {
        use kube::runtime::watcher::{Config as W, Event, watcher};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        let cfg = W::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(ns.api::<Deployment>(), cfg);
        let task = tokio::spawn(async move {
            let mut stream = stream.boxed();
            while let Some(ev) = stream.next().await {
                if let Ok(Event::Apply(d) | Event::InitApply(d)) = ev {
                    let a = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
                    out.lock().unwrap_or_else(|e| e.into_inner()).push(a);
                }
            }
        });
        AvailableReplicas { seen, task }
    }

    fn seen(&self) -> Vec<i32> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for AvailableReplicas {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Three pods using 300m with 100m requests (far below the recommendation's lower bound), a PDB
/// of maxUnavailable 1: all three are evicted, one at a time, and come back with the
/// recommendation through the webhook; the Deployment never has fewer than 2 available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_evicts_within_the_pdb_and_new_pods_get_the_recommendation() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vzu-recreate").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 3).await?;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": "web" } } }
    }))?;
    ns.api::<PodDisruptionBudget>()
        .create(&PostParams::default(), &pdb)
        .await?;
    poll_until("PDB status", T, Duration::from_millis(300), || async {
        let p = ns.api::<PodDisruptionBudget>().get("web").await?;
        Ok(p.status
            .filter(|s| s.current_healthy == 3 && s.disruptions_allowed == 1)
            .map(|_| ()))
    })
    .await?;
    let before = uids(&live_pods(&ns).await?);
    let available = AvailableReplicas::watch(&ns, "web");
    create_va(&ns, "web", with_mode("Recreate")).await?;
    let (listener, hook) = webhook_for(&bed, &ns).await?;
    let running = start(&bed, &ns, Timeouts::default(), Some(listener))?;

    // Every pod replaced; each new one sized by the webhook, within the recommended bounds.
    let replaced = poll_until(
        "three new pods with the recommended cpu target as request",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || async {
            let va = ns.api::<VerticalAutoscaler>().get("web").await?;
            let Some(cpu) = target(&va, "cpu") else {
                return Ok(None);
            };
            let pods = live_pods(&ns).await?;
            let fresh = pods.iter().all(|p| {
                !before.contains(&p.uid().unwrap_or_default())
                    && p.annotations().contains_key(webhook::ANNOTATION)
                    && cpu_request(p).is_some_and(|c| (c - cpu).abs() < 0.0011)
            });
            Ok((pods.len() == 3 && fresh).then_some(pods))
        },
    )
    .await?;
    let requests: Vec<_> = replaced.iter().map(cpu_request).collect();
    let seen = available.seen();
    eprintln!("new pods' cpu requests {requests:?}; available replicas seen {seen:?}");
    ensure!(!seen.is_empty(), "the Deployment watch saw nothing");
    ensure!(
        seen.iter().all(|a| *a >= 2),
        "available replicas fell below the PDB's floor of 2: {seen:?}"
    );
    let evicted = running.counter(
        "ballast_vertical_evictions",
        r#"cause="recommendation",result="evicted""#,
    );
    ensure!(evicted >= 3.0, "{evicted} evictions counted");
    let event = wait_event(&ns, "web", "Evicted").await?;
    eprintln!("event: {:?}", event.note);
    running.stop().await?;
    delete_webhook(&bed, &hook).await?;
    ns.cleanup().await?;
    Ok(())
}

/// The recommended cpu (lowerBound, upperBound) of container `app`.
fn cpu_bounds(va: &VerticalAutoscaler) -> Option<(f64, f64)> {
    let rec = va.status.as_ref()?.recommendation.as_ref()?;
    let c = rec
        .container_recommendations
        .iter()
        .find(|c| c.container_name == "app")?;
    let read = |l: &Option<ballast_api::vertical::ResourceList>| {
        parse_quantity(&l.as_ref()?.get("cpu")?.0).ok()
    };
    Some((read(&c.lower_bound)?, read(&c.upper_bound)?))
}

/// Two pods, `InPlaceOrRecreate`: both are resized through the `resize` subresource (their spec
/// carries the recommendation), keep their UIDs, and nothing is evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_resizes_without_eviction() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vzu-inplace").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 2).await?;
    let pods = live_pods(&ns).await?;
    for p in &pods {
        report_resources(&ns, p).await?;
    }
    let before = uids(&pods);
    create_va(&ns, "web", with_mode("InPlaceOrRecreate")).await?;
    let running = start(&bed, &ns, Timeouts::default(), None)?;
    let va = wait_condition(&ns, "web", "RecommendationProvided", "True", None).await?;
    let (lower, upper) = cpu_bounds(&va).context("no cpu bounds")?;
    let cpu = target(&va, "cpu").context("no cpu target")?;

    let resized = poll_until(
        "both pods resized in place",
        T,
        Duration::from_millis(500),
        || async {
            let pods = live_pods(&ns).await?;
            let done = pods.len() == 2
                && pods
                    .iter()
                    .all(|p| cpu_request(p).is_some_and(|c| (c - cpu).abs() < 0.0011));
            Ok(done.then_some(pods))
        },
    )
    .await?;
    ensure!(
        uids(&resized) == before,
        "the pods were replaced: {before:?} → {:?}",
        uids(&resized)
    );
    let requests: Vec<_> = resized.iter().map(cpu_request).collect();
    eprintln!("resized cpu requests {requests:?} (target {cpu}, bounds {lower}..{upper})");
    let event = wait_event(&ns, "web", "Resized").await?;
    eprintln!("event: {:?}", event.note);
    ensure!(running.counter("ballast_vertical_resizes", r#"result="resized""#) >= 2.0);
    ensure!(
        running.counter("ballast_vertical_evictions", "") == 0.0,
        "an eviction was asked"
    );
    running.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

/// A resize the kubelet (played by the test) defers longer than the pending timeout falls back
/// to eviction; its replacement is sized by the webhook; the other pod, resized without a
/// pending condition, stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_left_pending_falls_back_to_eviction() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vzu-fallback").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 2).await?;
    for p in &live_pods(&ns).await? {
        report_resources(&ns, p).await?;
    }
    create_va(&ns, "web", with_mode("InPlaceOrRecreate")).await?;
    let (listener, hook) = webhook_for(&bed, &ns).await?;
    let pending = Timeouts {
        pending: 6,
        ..Default::default()
    };
    let running = start(&bed, &ns, pending, Some(listener))?;

    // The first pod resized: the "kubelet" defers it.
    let deferred = poll_until("a pod resized", T, Duration::from_millis(300), || async {
        Ok(live_pods(&ns)
            .await?
            .into_iter()
            .find(|p| cpu_request(p).is_some_and(|c| c > 0.1)))
    })
    .await?;
    // Taken before the condition's time, so `waited` below never counts less than the updater.
    let deferred_at = Instant::now();
    let condition = json!({ "status": { "conditions": [{
        "type": "PodResizePending", "status": "True", "reason": "Deferred",
        "message": "node is short of cpu (set by the test)",
        "lastTransitionTime": jiff::Timestamp::now().to_string()
    }]}});
    ns.api::<Pod>()
        .patch_status(
            &deferred.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&condition),
        )
        .await
        .context("setting PodResizePending")?;
    let deferred_uid = deferred.uid().unwrap_or_default();

    poll_until(
        "the deferred pod evicted",
        T,
        Duration::from_millis(300),
        || async {
            let gone = !uids(&live_pods(&ns).await?).contains(&deferred_uid);
            Ok(gone.then_some(()))
        },
    )
    .await?;
    let waited = deferred_at.elapsed();
    ensure!(
        waited >= Duration::from_secs(6),
        "evicted {waited:?} after the resize was deferred, before the 6 s timeout"
    );
    let event = wait_event(&ns, "web", "Evicted").await?;
    let note = event.note.unwrap_or_default();
    ensure!(note.contains("resize Deferred"), "{note}");
    ensure!(
        running.counter(
            "ballast_vertical_evictions",
            r#"cause="resize",result="evicted""#
        ) >= 1.0
    );
    // Two live pods again: the other one kept, resized in place; the replacement sized at
    // creation by the webhook.
    let after = poll_until("two pods again", T, Duration::from_millis(300), || async {
        let pods = live_pods(&ns).await?;
        let sized = pods.iter().all(|p| cpu_request(p).is_some_and(|c| c > 0.1));
        Ok((pods.len() == 2 && sized).then_some(pods))
    })
    .await?;
    eprintln!(
        "evicted {waited:?} after the deferral ({note}); pods now {:?}",
        after
            .iter()
            .map(|p| (p.name_any(), cpu_request(p)))
            .collect::<Vec<_>>()
    );
    ensure!(
        running.counter("ballast_vertical_evictions", r#"result="evicted""#) == 1.0,
        "only the deferred pod is evicted"
    );
    running.stop().await?;
    delete_webhook(&bed, &hook).await?;
    ns.cleanup().await?;
    Ok(())
}

/// Pods whose containers report no `resources` in their status (kwok's, untouched): the API
/// server refuses the resize ("node without support for resize"), and the updater evicts the pod
/// instead in the same pass; the replacements, sized by the webhook, are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_resize_falls_back_to_eviction() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vzu-refused").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 2).await?;
    let before = uids(&live_pods(&ns).await?);
    create_va(&ns, "web", with_mode("InPlaceOrRecreate")).await?;
    let (listener, hook) = webhook_for(&bed, &ns).await?;
    let running = start(&bed, &ns, Timeouts::default(), Some(listener))?;

    let event = wait_event(&ns, "web", "Evicted").await?;
    let note = event.note.unwrap_or_default();
    ensure!(note.contains("resize refused"), "{note}");
    let replaced = poll_until(
        "two new pods sized by the webhook",
        T,
        Duration::from_millis(500),
        || async {
            let pods = live_pods(&ns).await?;
            let fresh = pods.iter().all(|p| {
                !before.contains(&p.uid().unwrap_or_default())
                    && cpu_request(p).is_some_and(|c| c > 0.1)
            });
            Ok((pods.len() == 2 && fresh).then_some(pods))
        },
    )
    .await?;
    eprintln!(
        "{note}; pods now {:?}",
        replaced.iter().map(cpu_request).collect::<Vec<_>>()
    );
    ensure!(running.counter("ballast_vertical_resizes", r#"result="refused""#) >= 2.0);
    ensure!(
        running.counter(
            "ballast_vertical_evictions",
            r#"cause="resize",result="evicted""#
        ) >= 2.0
    );
    running.stop().await?;
    delete_webhook(&bed, &hook).await?;
    ns.cleanup().await?;
    Ok(())
}
