//! The vertical recommender against the REAL test bed (`tests/testbed.sh up kube metrics-server
//! prometheus`): kube-apiserver with the aggregation layer, kwok emulating each node's kubelet
//! resource-metrics endpoint from the pods' usage annotations, metrics-server serving
//! `metrics.k8s.io`, Prometheus scraping kwok. Everything on 127.0.0.1.
//!
//! - `recommendations_from_metrics_server_and_restored_from_checkpoints`: a Deployment's usage
//!   becomes `status.recommendation` and conditions; checkpoints are written; a new recommender
//!   starts from them (its sample count goes on from the saved one).
//! - `an_oom_kill_raises_memory`: an `OOMKilled` last state in a pod's status raises the memory
//!   target.
//! - `bad_objects_get_conditions_and_the_rest_go_on`: missing target, a kind without a scale
//!   subresource, an estimation the core refuses, a target without pods; a healthy object in the
//!   same namespace keeps getting its recommendation.
//! - `unreadable_metrics_get_a_condition`: a recommender whose user may not read
//!   `metrics.k8s.io` (impersonated, bound to a Role without it) says so in `MetricsUnavailable`.
//! - `the_webhook_sizes_new_pods_and_a_webhook_down_blocks_nothing`: the recommender's mutating
//!   webhook, registered with `clientConfig.url: https://127.0.0.1:PORT` and its generated CA, sets
//!   the requests of a new pod of an `Initial` object; once it is stopped (`failurePolicy:
//!   Ignore`), pods are still created, unchanged.
//! - `history_is_read_from_prometheus`: an object without a checkpoint starts from the history of
//!   its pods' series in Prometheus.
//!
//! Each test runs its own recommender restricted to its own namespace. Without a test bed every
//! test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1` (as `tests/run.sh`
//! sets).

mod vertical_support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::vertical::{VerticalAutoscaler, VerticalAutoscalerCheckpoint};
use ballast_controller::vertical::{Config, HistoryConfig, VerticalRecommender, webhook};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{
    KwokNode, TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip,
};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use serde_json::json;
use vertical_support::{
    MIB, Running, cpu_request, create_va, deployment, install_crds, register_webhook, target,
    wait_condition, wait_event, workload,
};

fn start(bed: &TestBed, ns: &TestNamespace, history: HistoryConfig) -> Running {
    start_with(bed.client(), ns, history)
}

fn start_with(client: kube::Client, ns: &TestNamespace, history: HistoryConfig) -> Running {
    let config = Config {
        namespace: Some(ns.name().to_owned()),
        interval: Duration::from_secs(2),
        checkpoint_interval: Duration::from_secs(4),
        history,
        instance: format!("test-{}", ns.name()),
        ..Default::default()
    };
    let mut registry = Registry::default();
    let recommender = VerticalRecommender::new(client, config, &mut registry);
    Running::spawn(|s| recommender.run(s), registry)
}

/// The sample count of a checkpoint and when it was written.
async fn checkpoint(ns: &TestNamespace, name: &str) -> Result<Option<(i64, jiff::Timestamp)>> {
    let api = ns.api::<VerticalAutoscalerCheckpoint>();
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|c| c.status)
        .and_then(|s| Some((s.total_samples_count, s.last_update_time?.0))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_from_metrics_server_and_restored_from_checkpoints() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vza-rec").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 2).await?;
    create_va(&ns, "web", deployment("web")).await?;
    let first = start(&bed, &ns, HistoryConfig::default());

    let va = wait_condition(&ns, "web", "RecommendationProvided", "True", None).await?;
    let (cpu, memory) = (target(&va, "cpu"), target(&va, "memory"));
    // P90 of 300m plus the 15% margin; P90 of the 400Mi peaks plus 15%.
    ensure!(
        cpu.is_some_and(|c| (0.3..0.5).contains(&c)),
        "cpu target {cpu:?}"
    );
    ensure!(
        memory.is_some_and(|m| (400.0 * MIB..600.0 * MIB).contains(&m)),
        "memory target {memory:?}"
    );
    wait_condition(&ns, "web", "LowConfidence", "True", Some("LowConfidence")).await?;
    wait_condition(&ns, "web", "NoPodsMatched", "False", Some("PodsMatched")).await?;
    let event = wait_event(&ns, "web", "RecommendationProvided").await?;
    ensure!(
        event
            .note
            .as_deref()
            .is_some_and(|n| n.contains("app: cpu")),
        "{event:?}"
    );
    ensure!(first.counter("ballast_vertical_samples", "live") >= 2.0);

    // Checkpoints are written every 4 s, and once more at stop. Two pods and a 10 s metrics
    // resolution: 4 samples after two windows.
    let saved = poll_until(
        "checkpoint web-app with 4 samples",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async { Ok(checkpoint(&ns, "web-app").await?.filter(|c| c.0 >= 4)) },
    )
    .await?;
    first.stop().await?;
    let (at_stop, stopped_at) = checkpoint(&ns, "web-app").await?.context("no checkpoint")?;
    ensure!(at_stop >= saved.0, "{at_stop} < {}", saved.0);

    // A new recommender restores the histograms: its first checkpoint counts on from the saved
    // sample count (a fresh start would write at most the 2 samples of one window).
    let second = start(&bed, &ns, HistoryConfig::default());
    let (restored, _) = poll_until(
        "a checkpoint written by the new recommender",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            Ok(checkpoint(&ns, "web-app")
                .await?
                .filter(|c| c.1 > stopped_at))
        },
    )
    .await?;
    ensure!(
        restored >= at_stop,
        "restored {restored} samples, saved {at_stop}"
    );
    let va = wait_condition(&ns, "web", "RecommendationProvided", "True", None).await?;
    eprintln!(
        "after restart: cpu {:?}, memory {:?} (before: {cpu:?}, {memory:?})",
        target(&va, "cpu"),
        target(&va, "memory")
    );
    second.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_raises_memory() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vza-oom").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 1).await?;
    create_va(&ns, "web", deployment("web")).await?;
    let running = start(&bed, &ns, HistoryConfig::default());
    let va = wait_condition(&ns, "web", "RecommendationProvided", "True", None).await?;
    let before = target(&va, "memory").context("no memory target")?;

    // The kubelet's report of an OOM kill: the container's last state.
    let pod = ns.pods("app=web").await?.remove(0);
    let pod_name = pod.metadata.name.clone().context("pod without a name")?;
    let finished = jiff::Timestamp::now().to_string();
    let status = json!({ "status": { "containerStatuses": [{
        "name": "app", "ready": true, "restartCount": 1, "image": "registry.k8s.io/pause:3.10",
        "imageID": "", "started": true, "state": { "running": { "startedAt": finished } },
        "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled",
            "startedAt": finished, "finishedAt": finished } }
    }]}});
    ns.api::<Pod>()
        .patch_status(
            &pod_name,
            &PatchParams::default(),
            &Patch::Strategic(&status),
        )
        .await
        .context("patching the pod's status")?;

    // max(peak × 1.2, peak + 100Mi) = 500Mi becomes the interval's peak: +15% → 575Mi.
    let va = poll_until(
        "memory target above the OOM bump",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let va = ns.api::<VerticalAutoscaler>().get("web").await?;
            Ok(target(&va, "memory")
                .is_some_and(|m| m >= 500.0 * MIB)
                .then_some(va))
        },
    )
    .await?;
    let after = target(&va, "memory").unwrap_or(0.0);
    ensure!(after > before, "memory target {before} → {after}");
    ensure!(running.counter("ballast_vertical_oom_kills", "") >= 1.0);
    running.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_get_conditions_and_the_rest_go_on() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vza-bad").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 1).await?;
    ns.create_deployment(TestDeployment::new("idle").replicas(0))
        .await?;
    create_va(&ns, "missing", deployment("nope")).await?;
    create_va(
        &ns,
        "no-scale",
        json!({ "targetRef": { "apiVersion": "v1", "kind": "ConfigMap", "name": "kube-root-ca.crt" } }),
    )
    .await?;
    let mut refused = deployment("web");
    refused["estimation"] = json!({ "cpu": { "halfLife": "10s" } });
    create_va(&ns, "refused", refused).await?;
    create_va(&ns, "no-pods", deployment("idle")).await?;
    create_va(&ns, "web", deployment("web")).await?;
    let running = start(&bed, &ns, HistoryConfig::default());

    let cases = [
        ("missing", "ConfigUnsupported", "TargetNotFound"),
        ("no-scale", "ConfigUnsupported", "NoScaleSubresource"),
        ("refused", "ConfigUnsupported", "InvalidSpec"),
        ("no-pods", "NoPodsMatched", "NoPodsMatched"),
    ];
    for (name, type_, reason) in cases {
        let va = wait_condition(&ns, name, type_, "True", Some(reason)).await?;
        let provided = va.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "RecommendationProvided")
        });
        ensure!(
            provided.is_some_and(|c| c.status == "False"),
            "{name}: {provided:?}"
        );
        let event = wait_event(&ns, name, reason).await?;
        eprintln!("{name}: {:?}", event.note);
    }
    let refused = ns.api::<VerticalAutoscaler>().get("refused").await?;
    let message = refused
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "ConfigUnsupported"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains("estimation.cpu.halfLife"),
        "the message names the field: {message}"
    );
    wait_condition(&ns, "web", "RecommendationProvided", "True", None).await?;
    running.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

/// A client acting as `user`, who may do in `ns` everything the recommender needs except reading
/// `metrics.k8s.io`.
async fn client_without_metrics(
    bed: &TestBed,
    ns: &TestNamespace,
    user: &str,
) -> Result<kube::Client> {
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": user },
        "rules": [
            { "apiGroups": ["autoscaling.ballast.dev"], "resources": ["*"], "verbs": ["*"] },
            { "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"] },
            { "apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get"] },
            { "apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"] }
        ]
    }))?;
    ns.api::<Role>()
        .create(&PostParams::default(), &role)
        .await?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": user },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
    }))?;
    ns.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await?;
    let mut config = bed.kube_config().clone();
    config.auth_info.impersonate = Some(user.to_owned());
    Ok(kube::Client::try_from(config)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_metrics_get_a_condition() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vza-nometrics").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 1).await?;
    create_va(&ns, "web", deployment("web")).await?;
    let client = client_without_metrics(&bed, &ns, &format!("{}-recommender", ns.name())).await?;
    let running = start_with(client, &ns, HistoryConfig::default());
    let va = wait_condition(
        &ns,
        "web",
        "MetricsUnavailable",
        "True",
        Some("FailedGetResourceMetric"),
    )
    .await?;
    let conditions = &va.status.as_ref().context("no status")?.conditions;
    let message = conditions
        .iter()
        .find(|c| c.type_ == "MetricsUnavailable")
        .map(|c| c.message.as_str())
        .unwrap_or_default();
    ensure!(message.contains("forbidden"), "{message}");
    ensure!(
        conditions
            .iter()
            .any(|c| c.type_ == "RecommendationProvided" && c.reason == "NoUsageYet"),
        "{conditions:?}"
    );
    wait_event(&ns, "web", "FailedGetResourceMetric").await?;
    running.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

/// The pods of `app=web` not in `known`.
async fn new_pods(ns: &TestNamespace, known: &[String]) -> Result<Vec<Pod>> {
    Ok(ns
        .pods("app=web")
        .await?
        .into_iter()
        .filter(|p| !known.contains(&p.metadata.name.clone().unwrap_or_default()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_sizes_new_pods_and_a_webhook_down_blocks_nothing() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vza-hook").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 1).await?;
    let mut spec = deployment("web");
    spec["updatePolicy"] = json!({ "updateMode": "Initial" });
    create_va(&ns, "web", spec).await?;

    let certificate = webhook::Certificate::generate(&[])?;
    let listener = webhook::TlsListener::bind("127.0.0.1:0".parse()?, &certificate).await?;
    let addr = webhook::local_addr(&listener)?;
    let config = Config {
        namespace: Some(ns.name().to_owned()),
        interval: Duration::from_secs(2),
        instance: format!("test-{}", ns.name()),
        ..Default::default()
    };
    let mut registry = Registry::default();
    let recommender =
        VerticalRecommender::new(bed.client(), config, &mut registry).with_webhook(listener);
    let running = Running::spawn(|s| recommender.run(s), registry);
    let hook = register_webhook(&bed, &ns, addr, &certificate.ca_pem).await?;
    let va = wait_condition(&ns, "web", "RecommendationProvided", "True", None).await?;
    let target_cpu = target(&va, "cpu").context("no cpu target")?;

    // A new pod of the target gets the recommendation (the old one keeps 100m: Initial).
    let known: Vec<String> = ns
        .pods("app=web")
        .await?
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    ns.scale_deployment("web", 2).await?;
    let created = poll_until(
        "a second pod",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || async { Ok(new_pods(&ns, &known).await?.into_iter().next()) },
    )
    .await?;
    let got = cpu_request(&created);
    ensure!(
        got.is_some_and(|c| (c - target_cpu).abs() < 0.0011),
        "new pod's cpu request {got:?}, target {target_cpu}"
    );
    let note = created
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(webhook::ANNOTATION))
        .cloned()
        .unwrap_or_default();
    ensure!(
        note.starts_with("web: app: cpu request"),
        "annotation: {note:?}"
    );
    eprintln!("new pod: {note}");

    // The webhook stops; pods are still created (failurePolicy: Ignore), unchanged.
    running.stop().await?;
    let mut known = known;
    known.extend(created.metadata.name.clone());
    ns.scale_deployment("web", 3).await?;
    let plain = poll_until(
        "a third pod without the webhook",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || async { Ok(new_pods(&ns, &known).await?.into_iter().next()) },
    )
    .await?;
    ensure!(
        cpu_request(&plain) == Some(0.1),
        "{:?}",
        cpu_request(&plain)
    );
    kube::Api::<MutatingWebhookConfiguration>::all(bed.client())
        .delete(&hook, &Default::default())
        .await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_read_from_prometheus() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    let prometheus = service_or_skip!(bed.prometheus_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("vza-hist").await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    workload(&bed, &ns, "web", 2).await?;
    // Prometheus scrapes kwok's resource endpoint every 2 s: wait for the pods' series.
    let client = bed.prometheus().context("no Prometheus client")?;
    let query = format!(
        r#"count(container_memory_working_set_bytes{{namespace="{}",container="app"}})"#,
        ns.name()
    );
    poll_until(
        "the pods' series in Prometheus",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let r = client.query(&query).get().await?;
            let n = r
                .data()
                .as_vector()
                .and_then(|v| v.first())
                .map_or(0.0, |s| s.sample().value());
            Ok((n >= 2.0).then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    create_va(&ns, "web", deployment("web")).await?;
    let running = start(
        &bed,
        &ns,
        HistoryConfig {
            prometheus_url: Some(prometheus),
            length: Duration::from_secs(600),
            resolution: Duration::from_secs(5),
            ..Default::default()
        },
    );
    let va = wait_condition(
        &ns,
        "web",
        "FetchingHistory",
        "False",
        Some("HistoryLoaded"),
    )
    .await?;
    let message = va
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "FetchingHistory"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        running.counter("ballast_vertical_samples", "history") >= 2.0,
        "history samples: {message}"
    );
    wait_condition(&ns, "web", "RecommendationProvided", "True", None).await?;
    running.stop().await?;
    ns.cleanup().await?;
    Ok(())
}
