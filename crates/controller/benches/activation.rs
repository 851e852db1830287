//! Activation latency on the test bed's real event sources: the time from pushing the first item
//! into an empty source to the consumer Deployment's `spec.replicas` becoming 1, as a watch on the
//! Deployment sees it, through the horizontal reconciler running in this process.
//!
//! Per source (Redis list, RabbitMQ queue, PostgreSQL query, SQS queue on moto, Kafka lag): one
//! namespace with a kwok node, a consumer Deployment at 0 replicas and a `HorizontalAutoscaler`
//! on it (minReplicas 0, activation threshold 0, `syncPeriodSeconds: 60`, so only the
//! activation poll can wake it within the goal; cooldown 0). Each trial waits a varying 0.2–0.7 s
//! after the object rests at zero (so pushes fall anywhere in the poll's tick), starts the clock,
//! pushes one item, and stops it when the watch sees 1 replica. Between trials the backlog is
//! drained and a spec change (maxReplicas 6 ↔ 7) makes the reconciler decide at once, which
//! scales the consumer back to 0.
//!
//! Needs the bed: `tests/testbed.sh up kube redis rabbitmq postgres moto kafka`, then
//! `cargo bench -p ballast-controller --bench activation` (`-- --trials N --sources redis,kafka
//! --poll MS` to change; defaults 20 trials, every source, 250 ms). Prints p50 and p99 (nearest
//! rank: with 20 trials p99 is the slowest) per source and the verdict against the goal, 0 → 1
//! within 1 s.

#[path = "../tests/backlog_support/mod.rs"]
mod backlog_support;
#[path = "../tests/vertical_support/mod.rs"]
mod vertical_support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use backlog_support::{Backlog, KINDS};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_controller::horizontal::{Config, HorizontalController};
use ballast_metrics::MetricsConfig;
use ballast_testbed::{TestBed, TestNamespace};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::sync::watch;

type Running = ballast_testbed::running::Running<ballast_controller::horizontal::Error>;

const CONSUMER: &str = "consumer";
const GOAL: Duration = Duration::from_secs(1);

struct Options {
    trials: usize,
    sources: Vec<String>,
    poll: Duration,
}

fn options() -> Result<Options> {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let trials = match value("--trials") {
        Some(v) => v.parse().context("--trials")?,
        None => 20,
    };
    let sources = match value("--sources") {
        Some(v) => v.split(',').map(str::to_owned).collect(),
        None => KINDS.iter().map(|k| k.to_string()).collect(),
    };
    let poll = match value("--poll") {
        Some(v) => Duration::from_millis(v.parse().context("--poll")?),
        None => ballast_controller::horizontal::DEFAULT_ACTIVATION_POLL,
    };
    Ok(Options {
        trials,
        sources,
        poll,
    })
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

async fn bench() -> Result<()> {
    let opts = options()?;
    let bed = TestBed::connect()
        .await
        .context("no test bed: run tests/testbed.sh up kube redis rabbitmq postgres moto kafka")?;
    vertical_support::install_crds(&bed).await?;
    println!(
        "activation latency: first item pushed -> Deployment spec.replicas 1 (watch); {} trials per source, activation poll {} ms, sync period 60 s; load average {}",
        opts.trials,
        opts.poll.as_millis(),
        load()
    );
    let mut rows = Vec::new();
    for kind in &opts.sources {
        let Some(backlog) = Backlog::create(&bed, kind).await? else {
            println!("{kind}: not running in the test bed, skipped");
            continue;
        };
        let latencies = source_trials(&bed, kind, &backlog, &opts).await?;
        rows.push((kind.clone(), latencies));
    }
    println!();
    println!(
        "{:<10} {:>6} {:>8} {:>8} {:>8} {:>8}  goal 0->1 within {} ms",
        "source",
        "trials",
        "p50 ms",
        "p99 ms",
        "min ms",
        "max ms",
        GOAL.as_millis()
    );
    let mut all_met = true;
    for (kind, mut l) in rows {
        l.sort();
        let p = |q: f64| l[((q * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1];
        let met = p(0.99) <= GOAL;
        all_met &= met;
        println!(
            "{:<10} {:>6} {:>8} {:>8} {:>8} {:>8}  {}",
            kind,
            l.len(),
            p(0.5).as_millis(),
            p(0.99).as_millis(),
            l[0].as_millis(),
            l[l.len() - 1].as_millis(),
            if met { "met" } else { "MISSED" }
        );
    }
    println!(
        "verdict: {} (load average {})",
        if all_met {
            "every source met the goal at p99"
        } else {
            "goal missed"
        },
        load()
    );
    Ok(())
}

/// The trials of one source, in its own namespace with its own reconciler.
async fn source_trials(
    bed: &TestBed,
    kind: &str,
    backlog: &Backlog,
    opts: &Options,
) -> Result<Vec<Duration>> {
    let ns =
        backlog_support::consumer_namespace(bed, &format!("bench-wake-{kind}"), CONSUMER).await?;
    create_autoscaler(&ns, backlog.source()?).await?;
    let running = start_controller(bed, &ns, opts.poll)?;
    let replicas = watch_replicas(&ns);
    let mut latencies = Vec::new();
    let result = async {
        first_decision(&ns).await?;
        for trial in 0..opts.trials {
            at(&replicas, 0, Duration::from_secs(30))
                .await
                .with_context(|| format!("{kind} trial {}: back to 0", trial + 1))?;
            // The rest starts with the decision that wrote 0; the push falls anywhere in a tick.
            let pause = 200 + (trial as u64 * 137) % 500;
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let started = Instant::now();
            backlog.push(1).await?;
            let seen = at(&replicas, 1, Duration::from_secs(90))
                .await
                .with_context(|| format!("{kind} trial {}: 0 -> 1", trial + 1))?;
            let took = seen.saturating_duration_since(started);
            eprintln!("{kind} trial {}: {} ms", trial + 1, took.as_millis());
            latencies.push(took);
            backlog.clear().await?;
            // The last active time is stored in whole seconds: cooldown 0 is over a second later.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let max = if trial % 2 == 0 { 7 } else { 6 };
            patch_spec(&ns, json!({ "maxReplicas": max })).await?;
        }
        anyhow::Ok(())
    }
    .await;
    running.stop().await?;
    ns.cleanup().await?;
    result.map(|()| latencies)
}

/// Waits until the autoscaler's first decision is written (it then rests at zero).
async fn first_decision(ns: &TestNamespace) -> Result<()> {
    let api = ns.api::<HorizontalAutoscaler>();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let h = api.get(CONSUMER).await?;
        if h.status.and_then(|s| s.observed_generation).is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no decision on {}/{CONSUMER} within 30 s", ns.name())
}

/// The consumer's `spec.replicas` and when the watch saw it change.
fn watch_replicas(ns: &TestNamespace) -> watch::Receiver<(i32, Instant)> {
    let (tx, rx) = watch::channel((-1, Instant::now()));
    let api = ns.api::<Deployment>();
    let config = watcher::Config::default().fields(&format!("metadata.name={CONSUMER}"));
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config).applied_objects());
        while let Some(event) = events.next().await {
            let Ok(d) = event else { continue };
            let n = d.spec.and_then(|s| s.replicas).unwrap_or(1);
            tx.send_if_modified(|(r, at)| {
                let changed = *r != n;
                if changed {
                    *r = n;
                    *at = Instant::now();
                }
                changed
            });
        }
    });
    rx
}

/// Waits until the watch shows `want` replicas; when it was first seen.
async fn at(rx: &watch::Receiver<(i32, Instant)>, want: i32, timeout: Duration) -> Result<Instant> {
    let mut rx = rx.clone();
    let seen = tokio::time::timeout(timeout, rx.wait_for(|(r, _)| *r == want)).await;
    match seen {
        Ok(Ok(v)) => Ok(v.1),
        Ok(Err(_)) => bail!("the Deployment watch ended"),
        Err(_) => bail!("{CONSUMER} not at {want} replicas within {timeout:?}"),
    }
}

fn start_controller(bed: &TestBed, ns: &TestNamespace, poll: Duration) -> Result<Running> {
    let config = Config {
        namespace: Some(ns.name().to_owned()),
        metrics: MetricsConfig {
            read_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            ..Default::default()
        },
        instance: format!("bench-{}", ns.name()),
        activation_poll: poll,
        ..Default::default()
    };
    let mut registry = Registry::default();
    let controller = HorizontalController::new(bed.client(), config, &mut registry)?;
    Ok(Running::spawn(|s| controller.run(s), registry))
}

async fn create_autoscaler(ns: &TestNamespace, mut event: serde_json::Value) -> Result<()> {
    event["target"] = json!({ "type": "AverageValue", "averageValue": "5" });
    event["activationThreshold"] = json!("0");
    let obj: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "HorizontalAutoscaler",
        "metadata": { "name": CONSUMER, "namespace": ns.name() },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": CONSUMER },
            "minReplicas": 0,
            "maxReplicas": 6,
            "syncPeriodSeconds": 60,
            "cooldownPeriodSeconds": 0,
            "behavior": { "scaleDown": { "stabilizationWindowSeconds": 0 } },
            "metrics": [{ "type": "Event", "event": event }],
        },
    }))?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &obj)
        .await
        .context("creating the HorizontalAutoscaler")?;
    Ok(())
}

async fn patch_spec(ns: &TestNamespace, spec: serde_json::Value) -> Result<()> {
    ns.api::<HorizontalAutoscaler>()
        .patch(
            CONSUMER,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await?;
    Ok(())
}
