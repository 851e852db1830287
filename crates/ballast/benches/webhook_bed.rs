//! Admission latency of the vertical webhook as the API server sees it: pods created through the
//! test bed's real kube-apiserver at a fixed rate (200 per second by default, the goal:
//! p99 < 5 ms), each one sent by the API server to the webhook over TLS on 127.0.0.1 and patched.
//!
//! The figure is the API server's own: its histogram
//! `apiserver_admission_webhook_admission_duration_seconds{name="pods.vertical.ballast.dev"}`
//! (read from its `/metrics` before and after), whose first bucket is 5 ms, so the bench states
//! the share of admissions at or under 5 ms (p99 < 5 ms ⇔ that share ≥ 99%). It also states the
//! create latency the client saw, and checks that the pods were resized.
//!
//! Needs the bed: `tests/testbed.sh up kube`, then
//! `cargo bench -p ballast --bench webhook_bed` (`-- --seconds N --rate R` to change;
//! `--pods bound|scheduled|unscheduled` for where the pods go after admission, see [`Placement`];
//! `--webhook-thread` to serve the webhook on a runtime and thread of its own). It also counts the
//! TLS connections the API server opened to the webhook.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ballast_api::vertical::{RecommendedContainerResources, RecommendedPodResources};
use ballast_controller::vertical::webhook::{self, Certificate, Entry, Index, TlsListener};
use ballast_horizontal::selector::Selector;
use ballast_testbed::TestBed;
use ballast_testbed::webhook as webhook_config;
use k8s_openapi::api::core::v1::{LimitRange, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::PostParams;
use kube::runtime::reflector;
use serde_json::json;
use support::{arg, flag, percentile, word};

const WEBHOOK: &str = webhook_config::POD_WEBHOOK;

/// One object whose pods (`app=bench`) get 352m CPU and ~488Mi of memory.
fn index(namespace: &str) -> Result<Arc<Index>> {
    let index = Arc::new(Index::default());
    let spec = serde_json::from_value(json!({
        "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "bench" },
        "updatePolicy": { "updateMode": "Initial" }
    }))?;
    let recommendation = RecommendedPodResources {
        container_recommendations: vec![RecommendedContainerResources {
            container_name: "app".into(),
            target: [
                ("cpu".to_owned(), Quantity("352m".into())),
                ("memory".to_owned(), Quantity("511772988".into())),
            ]
            .into(),
            ..Default::default()
        }],
    };
    let entry = Entry {
        selector: Arc::new(Selector::parse("app=bench").map_err(anyhow::Error::msg)?),
        spec,
        recommendation: Some(recommendation),
        held: Default::default(),
    };
    index.set(namespace, "bench", Some(entry));
    Ok(index)
}

async fn register(bed: &TestBed, namespace: &str, port: u16, ca_pem: &str) -> Result<String> {
    let config = webhook_config::pods_configuration(&format!("ballast-bench-{namespace}"))?;
    let path = webhook::PATH;
    webhook_config::register(&bed.client(), config, port, path, ca_pem, namespace).await
}

/// The API server's admission histogram of our webhook: upper bound (s) → cumulative count.
async fn histogram(bed: &TestBed) -> Result<BTreeMap<String, f64>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = bed.client().request_text(request).await?;
    let mut buckets = BTreeMap::new();
    for line in text.lines().filter(|l| {
        l.starts_with("apiserver_admission_webhook_admission_duration_seconds_bucket")
            && l.contains(&format!("name=\"{WEBHOOK}\""))
    }) {
        let le = line
            .split("le=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_string();
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *buckets.entry(le).or_insert(0.0) += count;
    }
    Ok(buckets)
}

/// Where the bench's pods go after admission (`--pods`): `bound` (default) to a node that does
/// not exist (no scheduler, no kubelet: only admission and storage), `scheduled` (the default
/// scheduler tries them: unschedulable, so it writes a status and an event for each) or
/// `unscheduled` (a scheduler name nobody serves: left pending, untouched).
#[derive(Clone, Copy, Debug)]
enum Placement {
    Bound,
    Scheduled,
    Unscheduled,
}

impl Placement {
    fn from_args() -> Result<Placement> {
        match word("--pods", "bound").as_str() {
            "bound" => Ok(Placement::Bound),
            "scheduled" => Ok(Placement::Scheduled),
            "unscheduled" => Ok(Placement::Unscheduled),
            other => bail!("--pods {other:?}: bound, scheduled or unscheduled"),
        }
    }
}

fn pod(n: usize, placement: Placement) -> Result<Pod> {
    let mut pod = json!({
        "metadata": { "name": format!("bench-{n}"), "labels": { "app": "bench" } },
        "spec": {
            "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10",
                "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }]
        }
    });
    match placement {
        Placement::Bound => pod["spec"]["nodeName"] = json!("ballast-bench-nowhere"),
        Placement::Scheduled => {}
        Placement::Unscheduled => pod["spec"]["schedulerName"] = json!("ballast-bench-nobody"),
    }
    Ok(serde_json::from_value(pod)?)
}

/// Creates `total` pods at `rate` per second; the create latencies the client saw, sorted.
async fn create_pods(
    pods: kube::Api<Pod>,
    total: usize,
    rate: f64,
    placement: Placement,
) -> Result<Vec<Duration>> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut calls = Vec::with_capacity(total);
    for n in 0..total {
        tick.tick().await;
        let (pods, pod) = (pods.clone(), pod(n, placement)?);
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            pods.create(&PostParams::default(), &pod)
                .await
                .map(|_| started.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for c in calls {
        latencies.push(c.await?.context("creating a pod")?);
    }
    latencies.sort();
    Ok(latencies)
}

async fn run(bed: &TestBed, seconds: f64, rate: f64) -> Result<()> {
    let ns = bed.namespace("bench-webhook").await?;
    let certificate = Certificate::generate(&[])?;
    let listener = TlsListener::bind("127.0.0.1:0".parse()?, &certificate).await?;
    let port = webhook::local_addr(&listener)?.port();
    let handshakes = listener.handshakes();
    let (limit_ranges, _writer) = reflector::store::<LimitRange>();
    let serving = webhook::serve(
        listener,
        index(ns.name())?,
        limit_ranges,
        std::future::pending(),
    );
    let _webhook_thread = if flag("--webhook-thread") {
        // A runtime of its own on a thread of its own: the webhook does not share the bench's
        // two workers with the client creating the pods.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Some(std::thread::spawn(move || runtime.block_on(serving)))
    } else {
        tokio::spawn(serving);
        None
    };
    let placement = Placement::from_args()?;
    let config = register(bed, ns.name(), port, &certificate.ca_pem).await?;
    // The API server picks a new webhook configuration up within a second or so.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = histogram(bed).await?;
    let connections_before = handshakes.load(Ordering::Relaxed);
    let total = (seconds * rate) as usize;
    let started = Instant::now();
    let created = create_pods(ns.api::<Pod>(), total, rate, placement).await;
    let took = started.elapsed();
    let after = histogram(bed).await?;
    let connections = handshakes.load(Ordering::Relaxed) - connections_before;
    webhook_config::unregister(&bed.client(), &config).await;
    let latencies = created?;
    let sized = ns.api::<Pod>().get("bench-0").await?;
    let cpu = sized
        .spec
        .as_ref()
        .and_then(|s| s.containers[0].resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("cpu"))
        .map(|q| q.0.clone());
    if cpu.as_deref() != Some("352m") {
        bail!("pod bench-0 was not sized by the webhook (cpu request {cpu:?})");
    }
    report(&before, &after, &latencies, took, rate)?;
    println!(
        "TLS connections the API server opened to the webhook during the run: {connections} (for {} pods)",
        latencies.len()
    );
    Ok(())
}

fn report(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    latencies: &[Duration],
    took: Duration,
    rate: f64,
) -> Result<()> {
    let delta =
        |le: &str| after.get(le).copied().unwrap_or(0.0) - before.get(le).copied().unwrap_or(0.0);
    let admitted = delta("+Inf");
    if admitted < latencies.len() as f64 * 0.99 {
        bail!(
            "the API server counted {admitted} admissions by {WEBHOOK} for {} pods",
            latencies.len()
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{} pods created in {:.1} s ({:.0}/s, asked {rate:.0}/s); create latency seen by the client: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        took.as_secs_f64(),
        latencies.len() as f64 / took.as_secs_f64(),
        ms(percentile(latencies, 0.5)),
        ms(percentile(latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    let mut bounds: Vec<(f64, String)> = after
        .keys()
        .filter_map(|le| le.parse::<f64>().ok().map(|v| (v, le.clone())))
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let shares: Vec<String> = bounds
        .iter()
        .map(|(v, le)| {
            format!(
                "≤ {:.0} ms: {:.2}%",
                v * 1000.0,
                100.0 * delta(le) / admitted
            )
        })
        .collect();
    println!(
        "admission by the webhook, as the API server timed it ({admitted:.0} calls): {}",
        shares.join(", ")
    );
    let under = 100.0 * delta("0.005") / admitted;
    println!(
        "p99 < 5 ms: {} ({under:.2}% of admissions took 5 ms or less)",
        if under >= 99.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(bed) = TestBed::from_env().await else {
        eprintln!("error: this benchmark needs the test bed: run `tests/testbed.sh up kube` first");
        return std::process::ExitCode::from(2);
    };
    match run(&bed, arg("--seconds", 20.0), arg("--rate", 200.0)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
