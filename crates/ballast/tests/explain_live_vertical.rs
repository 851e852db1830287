//! `ballast explain vertical --live` against the REAL test bed
//! (`tests/testbed.sh up kube metrics-server`).
//!
//! - `explains_the_recommenders_checkpoints`: two pods with steady usage (kwok annotations served
//!   by metrics-server) and a VerticalAutoscaler; a `ballast controller vertical` writes its
//!   status and checkpoints and is stopped (SIGTERM: it saves its checkpoints once more). `explain
//!   vertical --live NS/NAME` gives, for each container, the CPU and memory targets of the
//!   object's status; `--save-snapshot` then `-f` prints the same text.
//! - `live_errors_name_the_object`: a missing VerticalAutoscaler and a user without rights exit 2
//!   naming the object, or the verb and resource.
//!
//! Without a test bed every test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

mod explain_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::vertical::{VerticalAutoscaler, VerticalAutoscalerCheckpoint};
use ballast_testbed::usage::wait_for_pod_metrics;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{
    KwokNode, TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip,
};
use explain_support::{ballast, fails_naming, kubeconfig, nobody_kubeconfig, temp_dir, text};
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

const CPU: &str = "200m";
const MEMORY: &str = "300Mi";

async fn install_crds(bed: &TestBed) -> Result<()> {
    let crds: Vec<_> = ballast_api::crds()
        .into_iter()
        .filter(|c| c.spec.group == "autoscaling.ballast.dev")
        .collect();
    let client = bed.client();
    ballast_testbed::crds::apply(
        &client,
        crds,
        "ballast-explain-test",
        Duration::from_secs(30),
    )
    .await
}

/// Two pods of `web` using [`CPU`] and [`MEMORY`], their metrics served, and a
/// VerticalAutoscaler `web` on them.
async fn steady_web(bed: &TestBed, ns: &TestNamespace) -> Result<()> {
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    ns.create_deployment(TestDeployment::new("web").replicas(2).usage(CPU, MEMORY))
        .await?;
    ns.wait_deployment_ready("web", 2, Duration::from_secs(90))
        .await?;
    let timeout = bed.metric_resolution() * 6;
    for pod in ns.pods("app=web").await? {
        let pod = pod.metadata.name.context("pod without a name")?;
        wait_for_pod_metrics(&bed.client(), ns.name(), &pod, CPU, MEMORY, timeout).await?;
    }
    let va: VerticalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "VerticalAutoscaler",
        "metadata": { "name": "web", "namespace": ns.name() },
        "spec": {
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "updatePolicy": { "updateMode": "Off" }
        }
    }))?;
    ns.api::<VerticalAutoscaler>()
        .create(&PostParams::default(), &va)
        .await
        .context("creating VerticalAutoscaler web")?;
    Ok(())
}

/// Runs `ballast controller vertical` on the namespace until the object has a recommendation
/// and its checkpoints exist, then stops it with SIGTERM (it saves the checkpoints once more).
async fn recommend_and_stop(bed: &TestBed, ns: &TestNamespace) -> Result<VerticalAutoscaler> {
    let dir = temp_dir(&format!("{}-logs", ns.name()))?;
    let log = dir.join("vertical.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["controller", "vertical", "--namespace", ns.name()])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args([
            "--recommender-interval",
            "5s",
            "--checkpoint-interval",
            "5s",
        ])
        .current_dir(explain_support::repo_root())
        .env("KUBECONFIG", kubeconfig(bed)?)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting ballast controller vertical")?;
    let waited = poll_until(
        "a recommendation and checkpoints",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let va = ns.api::<VerticalAutoscaler>().get("web").await?;
            let recommended = va
                .status
                .as_ref()
                .and_then(|s| s.recommendation.as_ref())
                .is_some_and(|r| !r.container_recommendations.is_empty());
            let checkpoints = ns
                .api::<VerticalAutoscalerCheckpoint>()
                .list(&ListParams::default())
                .await?;
            Ok((recommended && !checkpoints.items.is_empty()).then_some(()))
        },
    )
    .await;
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let stopped = child.wait();
    if waited.is_err() {
        eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    waited?;
    ensure!(stopped?.success(), "the recommender did not stop cleanly");
    std::fs::remove_dir_all(&dir)?;
    Ok(ns.api::<VerticalAutoscaler>().get("web").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explains_the_recommenders_checkpoints() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("explain-vertical").await?;
    steady_web(&bed, &ns).await?;
    let va = recommend_and_stop(&bed, &ns).await?;
    let status = va
        .status
        .and_then(|s| s.recommendation)
        .context("no recommendation")?;
    let target = format!("{}/web", ns.name());

    // The JSON decision: each container's targets as the status writes them.
    let out = ballast(
        &bed,
        &["explain", "vertical", "--live", &target, "-o", "json"],
    )?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let explained: Value = serde_json::from_slice(&out.stdout)?;
    let containers = explained["recommendation"]["containers"]
        .as_array()
        .context("containers")?;
    ensure!(
        containers.len() == status.container_recommendations.len(),
        "{explained}"
    );
    for (c, s) in containers.iter().zip(&status.container_recommendations) {
        ensure!(
            c["containerName"] == s.container_name.as_str(),
            "{explained}"
        );
        let cpu = c["cpu"]["target"].as_f64().context("cpu target")?;
        let memory = c["memory"]["target"].as_f64().context("memory target")?;
        let cpu = ballast_vertical::recommend::cpu_quantity(cpu);
        let memory = ballast_vertical::recommend::memory_quantity(memory);
        println!(
            "container {}: explain targets cpu {} memory {}; status cpu {:?} memory {:?}",
            s.container_name,
            cpu.0,
            memory.0,
            s.target.get("cpu"),
            s.target.get("memory")
        );
        ensure!(s.target.get("cpu") == Some(&cpu), "cpu: {explained}");
        ensure!(
            s.target.get("memory") == Some(&memory),
            "memory: {explained}"
        );
    }

    // The words, and the saved snapshot explains to the same words.
    let dir = temp_dir(ns.name())?;
    let file = dir.join("web.yaml");
    let file = file.to_str().context("temporary path")?;
    let live = ballast(
        &bed,
        &[
            "explain",
            "vertical",
            "--live",
            &target,
            "--save-snapshot",
            file,
        ],
    )?;
    ensure!(live.status.success(), "{}", text(&live.stderr));
    let shown = text(&live.stdout);
    println!("$ kubectl ballast explain vertical --live {target}\n{shown}");
    ensure!(
        shown.contains("target") && shown.contains("confidence"),
        "{shown}"
    );
    let saved = ballast(&bed, &["explain", "vertical", "-f", file])?;
    ensure!(saved.status.success(), "{}", text(&saved.stderr));
    ensure!(
        saved.stdout == live.stdout,
        "the saved snapshot explains differently:\nlive:\n{shown}\nsaved:\n{}",
        text(&saved.stdout)
    );
    std::fs::remove_dir_all(&dir)?;
    ns.cleanup().await
}

#[tokio::test]
async fn live_errors_name_the_object() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    install_crds(&bed).await?;
    let ns = bed.namespace("explain-vertical-errors").await?;
    let dir = temp_dir(ns.name())?;
    let missing = format!("{}/missing", ns.name());
    fails_naming(
        &kubeconfig(&bed)?,
        &["explain", "vertical", "--live", &missing],
        &format!("VerticalAutoscaler {missing} not found"),
    )?;
    fails_naming(
        &nobody_kubeconfig(&bed, &dir)?,
        &["explain", "vertical", "--live", &missing],
        "may not get verticalautoscalers.autoscaling.ballast.dev",
    )?;
    std::fs::remove_dir_all(&dir)?;
    ns.cleanup().await
}
