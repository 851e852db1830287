//! What the horizontal fault tests share: the namespace of a scenario (a kwok node, the moto
//! credentials, the HorizontalAutoscaler CRD), its autoscalers and Deployments, the
//! `ballast controller horizontal` process, waits that measure, and the invariant watchers
//! ([`watch`]).
#![allow(dead_code)]

pub mod source;
pub mod watch;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{KwokNode, TestBed, TestDeployment, TestNamespace};
use kube::api::PostParams;
use serde_json::json;

use crate::process_support::{FAST, Replica, install_horizontal_crd};
use watch::{Rules, Violation, Watch};

/// The sync period of every autoscaler of the fault tests.
pub const SYNC_SECONDS: u64 = 2;

/// The longest a recovery may take before it is a failure (the goal is 10 s; the figures are
/// printed).
pub const RECOVERY_BOUND: Duration = Duration::from_secs(60);

/// A fresh namespace for one scenario, with a kwok node for the pods, the `aws` Secret of the
/// moto credentials and the CRD installed; and a folder for the process logs.
pub async fn scenario_namespace(bed: &TestBed, prefix: &str) -> Result<(TestNamespace, PathBuf)> {
    install_horizontal_crd(&bed.client()).await?;
    let ns = bed.namespace(prefix).await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("32").memory("64Gi"))
        .await?;
    ns.create_secret(
        "aws",
        &[
            ("awsAccessKeyID", "testing"),
            ("awsSecretAccessKey", "testing"),
        ],
    )
    .await?;
    let logs = std::env::temp_dir().join(format!("ballast-{}", ns.name()));
    std::fs::create_dir_all(&logs)?;
    Ok((ns, logs))
}

/// A Deployment `name` at `replicas` and its autoscaler of the same name on `metrics`, every
/// [`SYNC_SECONDS`], no scale-down stabilization; `extra` is merged into the spec.
pub async fn target(
    ns: &TestNamespace,
    name: &str,
    replicas: i32,
    (min, max): (i32, i32),
    metrics: Vec<serde_json::Value>,
    extra: serde_json::Value,
) -> Result<()> {
    ns.create_deployment(TestDeployment::new(name).replicas(replicas))
        .await?;
    let mut spec = json!({
        "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
        "minReplicas": min,
        "maxReplicas": max,
        "syncPeriodSeconds": SYNC_SECONDS,
        "behavior": { "scaleDown": { "stabilizationWindowSeconds": 0 } },
        "metrics": metrics,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let object: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "HorizontalAutoscaler",
        "metadata": { "name": name, "namespace": ns.name() },
        "spec": spec,
    }))?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating the HorizontalAutoscaler {name}"))?;
    Ok(())
}

/// `ballast controller horizontal --namespace NS` as a process named `name`, ready.
pub async fn controller(
    bed: &TestBed,
    ns: &TestNamespace,
    name: &'static str,
    logs: &std::path::Path,
    leader: bool,
) -> Result<Replica> {
    let args = [
        "controller",
        "horizontal",
        "--namespace",
        ns.name(),
        "--metrics-addr",
    ];
    let replica = if leader {
        Replica::spawn(bed, ns.name(), name, logs, &args)?
    } else {
        Replica::spawn_alone(bed, name, logs, &args)?
    };
    replica.wait_ready().await?;
    Ok(replica)
}

/// Waits until the watch has seen `target` at `want` replicas; the time it took.
pub async fn wait_replicas(
    watch: &Watch,
    target: &str,
    want: i32,
    timeout: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    poll_until(
        &format!(
            "{target} at {want} replicas (seen: {:?})",
            watch.replicas(target)
        ),
        timeout,
        FAST,
        || async { Ok((watch.replicas(target) == Some(want)).then_some(())) },
    )
    .await?;
    Ok(started.elapsed())
}

/// Waits until `object` shows ScalingActive=True; how long after `back` that became so (zero
/// when it already was).
pub async fn wait_active(watch: &Watch, object: &str, back: Instant) -> Result<Duration> {
    let since = poll_until(
        &format!("{object} ScalingActive=True"),
        RECOVERY_BOUND,
        FAST,
        || async { Ok(watch.active_since(object)) },
    )
    .await?;
    Ok(since.saturating_duration_since(back))
}

/// Prints the violations and fails when there is one.
pub fn assert_none(scenario: &str, violations: &[Violation], replica: &Replica) -> Result<()> {
    for v in violations {
        eprintln!(
            "{scenario}: violation at {:.1} s: {}",
            v.at.as_secs_f64(),
            v.what
        );
    }
    println!("{scenario}: {} violation(s)", violations.len());
    ensure!(
        violations.is_empty(),
        "{scenario}: {} violation(s), first: {}\n{}",
        violations.len(),
        violations[0].what,
        replica.tail()
    );
    Ok(())
}

/// The reconciles of the controller that decided something (not the skipped wake-ups).
pub async fn decided(replica: &Replica) -> Result<f64> {
    let (_, text) = replica.get("/metrics").await?;
    let all = crate::process_support::sum(&text, "ballast_horizontal_reconciles_total");
    let skipped = text
        .lines()
        .filter(|l| l.starts_with("ballast_horizontal_reconciles_total{") && l.contains("skipped"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Ok(all - skipped)
}

/// The failed reconciles (a decision that reported a problem, or an error).
pub async fn failed(replica: &Replica) -> Result<f64> {
    let (_, text) = replica.get("/metrics").await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("ballast_horizontal_reconciles_total{")
                && (l.contains("\"failed\"") || l.contains("\"error\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Rules of a target between `min` and `max`.
pub fn within(min: i32, max: i32) -> Rules {
    Rules {
        min,
        max,
        ..Default::default()
    }
}
