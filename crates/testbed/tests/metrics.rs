//! The bed's metrics pipeline is real: a pod's usage annotations go through kwok's emulated
//! kubelet resource endpoint to metrics-server (served as `metrics.k8s.io/v1beta1` by the API
//! server's aggregator) and to Prometheus (job `kwok-resource`). All on 127.0.0.1.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, ensure};
use ballast_testbed::usage::{pod_metrics, set_pod_usage, wait_for_pod_metrics};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{KwokNode, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip};

/// Creates a node and a one-pod Deployment `app` using `cpu` / `memory`; returns the pod's name.
async fn one_pod(ns: &TestNamespace, cpu: &str, memory: &str) -> Result<String> {
    ns.create_kwok_node(KwokNode::new("n1")).await?;
    ns.create_deployment(TestDeployment::new("app").usage(cpu, memory))
        .await?;
    ns.wait_deployment_ready("app", 1, Duration::from_secs(90))
        .await?;
    let pods = ns.pods("app=app").await?;
    pods.first()
        .and_then(|p| p.metadata.name.clone())
        .context("no pod of deployment app")
}

#[tokio::test]
async fn metrics_server_serves_annotated_usage() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    let client = bed.client();
    let ns = bed.namespace("metrics-server").await?;
    let pod = one_pod(&ns, "250m", "300Mi").await?;
    let timeout = bed.metric_resolution() * 6;

    // From the pod's start: two scrapes of its node.
    let ready = Instant::now();
    let first = wait_for_pod_metrics(&client, ns.name(), &pod, "250m", "300Mi", timeout).await?;
    eprintln!(
        "{pod}: {first:?} served {:.1}s after the pod was ready",
        ready.elapsed().as_secs_f64()
    );
    ensure!(!first.window.is_empty() && !first.timestamp.is_empty());

    // A changed annotation: served from the next scrape or the one after.
    let changed = Instant::now();
    set_pod_usage(&client, ns.name(), &pod, "700m", "1Gi").await?;
    let second = wait_for_pod_metrics(&client, ns.name(), &pod, "700m", "1Gi", timeout).await?;
    eprintln!(
        "{pod}: {second:?} served {:.1}s after the annotation changed",
        changed.elapsed().as_secs_f64()
    );

    // An unknown pod has no metrics (metrics-server answers 404).
    ensure!(pod_metrics(&client, ns.name(), "nobody").await?.is_none());
    ns.cleanup().await?;
    Ok(())
}

/// The single value of an instant query, if the result has exactly one series.
async fn single_value(prom: &prometheus_http_query::Client, query: &str) -> Result<Option<f64>> {
    let res = prom.query(query).get().await?;
    Ok(match res.data().as_vector().map(|v| v.as_slice()) {
        Some([one]) => Some(one.sample().value()),
        _ => None,
    })
}

#[tokio::test]
async fn prometheus_scrapes_container_usage_from_kwok() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prom = service_or_skip!(bed.prometheus(), Ok(()));
    let ns = bed.namespace("metrics-prom").await?;
    let pod = one_pod(&ns, "300m", "200Mi").await?;
    let selector = format!(
        "namespace=\"{}\",pod=\"{pod}\",container=\"app\"",
        ns.name()
    );

    // Memory: a gauge, the annotated bytes; labelled with the node it runs on.
    let memory = format!("container_memory_working_set_bytes{{{selector}}}");
    poll_until(
        &format!("Prometheus to have {memory} = 200Mi"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let v = single_value(&prom, &memory).await?;
            Ok(v.filter(|v| *v == 200.0 * 1024.0 * 1024.0))
        },
    )
    .await?;
    let res = prom.query(memory.as_str()).get().await?;
    let labels = res
        .data()
        .as_vector()
        .and_then(|v| v.first())
        .map(|s| s.metric().clone())
        .unwrap_or_default();
    ensure!(
        labels.get("node") == Some(&ns.node_name("n1")) && labels["job"] == "kwok-resource",
        "labels: {labels:?}"
    );

    // CPU: a counter whose rate is the annotated cores.
    let rate = format!("rate(container_cpu_usage_seconds_total{{{selector}}}[10s])");
    let cores = poll_until(
        &format!("{rate} ≈ 0.3"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let v = single_value(&prom, &rate).await?;
            Ok(v.filter(|v| (v - 0.3).abs() <= 0.3 * 0.1))
        },
    )
    .await?;
    eprintln!("{rate} = {cores}");

    // History for a recommender: a range query over the pod's life so far.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs() as i64;
    let res = prom
        .query_range(memory.as_str(), now - 60, now, 2.0)
        .get()
        .await?;
    let points = res
        .data()
        .as_matrix()
        .and_then(|m| m.first())
        .map_or(0, |series| series.samples().len());
    ensure!(points >= 3, "range query returned {points} points");
    eprintln!("{memory}: {points} points over the last 60 s");
    ns.cleanup().await?;
    Ok(())
}
