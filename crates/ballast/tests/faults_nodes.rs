//! Faults under `ballast controller nodes --provider kwok`, a real process on the REAL test bed
//! (`tests/testbed.sh up kube`), one scenario at a time (`faults::serial()`):
//!
//! - `api_server_restart_during_provisioning`: the API server crashed (SIGKILL) while NodeClaims
//!   are being launched for pending pods, down 5 s, started again; more pods arrive once it is
//!   back. Figures: each NodeClaim's creation-to-launch time after the restart (asserted), and
//!   the time from the API server's return to every pod placed (printed: it includes the
//!   kube-scheduler's own recovery, which marks the new pods unschedulable).
//! - `controller_killed_during_a_launch`: the controller SIGKILLed the moment a NodeClaim
//!   appears (created, its node not registered yet), then restarted.
//! - `consolidation_under_faults`: two half-empty m6i.large under a PDB (`maxUnavailable: 1`)
//!   that multi-node consolidation replaces by one c6i.xlarge; the controller is SIGKILLed after
//!   the disruption taint, after the replacement's launch and mid-drain (each time restarted), and
//!   the API server crashes mid-drain (evictions held by the PDB).
//! - `leader_killed_mid_write`: two replicas under leader election; the leader is SIGKILLed while
//!   it creates NodeClaims for six pending pods: in the end no node without a pod (no NodeClaim
//!   made twice).
//! - The API server crashed mid-drain found a defect: the restarted controller deleted the
//!   replacement made for the draining nodes' pods as empty; disruption now waits for drains in
//!   flight (`disruption::drains_in_flight`).
//!
//! Invariants, watched through each whole scenario ([`faults_nodes_support::Watchers`]) and checked once
//! it settles ([`faults_nodes_support::Scenario::settle`]): the Deployment's available replicas and the
//! PDB's healthy pods never below the PDB's floor; every pending pod placed; no orphan NodeClaim
//! or node of the pool; no node left cordoned or carrying the disruption taint; no NodeClaim left
//! deleting. Recovery times are printed; asserted only against a generous bound ([`RECOVERY`]).
//!
//! Without a test bed every test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

// `faults::serial()` is a std lock held for a whole test on purpose: each test has a runtime of
// its own, and the lock keeps the others (on other threads) from running while a part is down.
#![allow(clippy::await_holding_lock)]

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ballast_testbed::faults::{self, Heal, Part};
use ballast_testbed::{TestDeployment, testbed_or_skip};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

mod faults_nodes_support;
mod process_support;

use faults_nodes_support::{Scenario, seconds, wait_step};

/// The bound recovery times are asserted against (the goal is ≤ 10 s; figures are printed).
const RECOVERY: Duration = Duration::from_secs(60);
/// How long a wait for recovery lasts before it fails (so a slow recovery prints its figure).
const LONG: Duration = Duration::from_secs(150);
/// How long the API server stays down.
const DOWN: Duration = Duration::from_secs(5);
/// A pod of 1500m: one per c6i.large.
const BIG: &str = "1500m";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_during_provisioning() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let _serial = faults::serial();
    let never = serde_json::json!({ "consolidateAfter": "Never" });
    let mut s = Scenario::new(&bed, "fault-provision", never).await?;
    let controller = s.controller(false).await?;
    let watchers = s.watchers();
    let result = async {
        s.ns.create_deployment(TestDeployment::new("big").replicas(2).request("cpu", BIG))
            .await?;
        wait_step("a NodeClaim", Duration::from_secs(60), || async {
            Ok((!s.claims().await?.is_empty()).then_some(()))
        })
        .await?;
        let back = {
            let _heal = Heal::new(&s.bed, Part::ApiServer);
            faults::restart(&s.bed, Part::ApiServer, DOWN).await?
        };
        s.ns.scale_deployment("big", 4).await?;
        let scheduler = wait_step("4 pods seen by the scheduler", LONG, || async {
            Ok((s.pods_tried().await? == 4).then(|| back.elapsed()))
        })
        .await?;
        println!(
            "the scheduler tried every pod {:.2} s after the API server was back",
            scheduler.as_secs_f64()
        );
        let resumed = wait_step("4 pods placed", LONG, || async {
            Ok((s.pods_bound().await? == 4).then(|| back.elapsed()))
        })
        .await;
        // The watchers' last events.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let delays = watchers.launch_delays(back);
        println!(
            "api server restart during provisioning: creation-to-launch of the NodeClaims made after it: {}",
            seconds(&delays)
        );
        let resumed = resumed?;
        println!(
            "api server restart during provisioning: every pod placed {:.2} s after the API server was back (with the kube-scheduler's own recovery)",
            resumed.as_secs_f64()
        );
        let slowest = delays.iter().copied().fold(0.0, f64::max);
        ensure!(slowest < RECOVERY.as_secs_f64(), "a NodeClaim launched {slowest:.1} s after its creation");
        let settled = s.settle(&watchers, 4).await?;
        println!("settled {:.2} s later", settled.as_secs_f64());
        s.assert_no_violation(&watchers)
    }
    .await;
    finish(s, vec![controller], result).await
}

/// Cleans the scenario up with `controllers` still running (they drain the pool's nodes), and
/// prints their logs' tails when the scenario failed.
async fn finish(
    s: Scenario,
    controllers: Vec<process_support::Replica>,
    result: Result<()>,
) -> Result<()> {
    if result.is_err() {
        for c in &controllers {
            eprintln!("{}", c.tail());
        }
    }
    let cleaned = s.cleanup().await;
    drop(controllers);
    result?;
    cleaned
}

/// A short description of the pool's state at a fault: NodeClaims (launched), nodes, tainted
/// nodes and NodeClaims being deleted.
async fn state(s: &Scenario) -> Result<String> {
    Ok(format!(
        "{} NodeClaims ({} launched), {} nodes, tainted {:?}, deleting {:?}",
        s.claims().await?.len(),
        s.launched().await?,
        s.nodes().await?.len(),
        s.tainted_nodes().await?,
        s.deleting_claims().await?
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_killed_during_a_launch() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let _serial = faults::serial();
    let never = serde_json::json!({ "consolidateAfter": "Never" });
    let mut s = Scenario::new(&bed, "fault-launch", never).await?;
    let first = s.controller(false).await?;
    let watchers = s.watchers();
    let mut controllers = vec![first];
    let result = async {
        s.ns.create_deployment(TestDeployment::new("big").replicas(3).request("cpu", BIG))
            .await?;
        wait_step("a NodeClaim", Duration::from_secs(60), || async {
            Ok((!s.claims().await?.is_empty()).then_some(()))
        })
        .await?;
        controllers[0].signal("KILL")?;
        let killed = Instant::now();
        println!("killed during a launch: {}", state(&s).await?);
        controllers.push(s.controller(false).await?);
        let settled = s.settle(&watchers, 3).await?;
        let empty = s.empty_nodes().await?;
        println!(
            "killed during a launch: settled {:.2} s after the kill ({} NodeClaims, empty nodes {empty:?})",
            killed.elapsed().as_secs_f64(),
            s.claims().await?.len()
        );
        for n in &empty {
            watchers.violation(&format!("Node/{n}"), "no pod: launched twice");
        }
        ensure!(settled < RECOVERY, "settled after {settled:?}");
        s.assert_no_violation(&watchers)
    }
    .await;
    finish(s, controllers, result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_write() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let _serial = faults::serial();
    let never = serde_json::json!({ "consolidateAfter": "Never" });
    let mut s = Scenario::new(&bed, "fault-leader", never).await?;
    let mut controllers = vec![s.controller(true).await?, s.controller(true).await?];
    let watchers = s.watchers();
    let result = async {
        let leader = wait_step("a nodes lease holder", Duration::from_secs(30), || async {
            let lease = s
                .ns
                .api::<k8s_openapi::api::coordination::v1::Lease>()
                .get_opt("ballast-nodes")
                .await?;
            Ok(lease
                .and_then(|l| l.spec?.holder_identity)
                .filter(|h| !h.is_empty()))
        })
        .await?;
        let index = controllers
            .iter()
            .position(|c| c.name == leader)
            .ok_or_else(|| anyhow::anyhow!("the leader {leader} is none of ours"))?;
        s.ns.create_deployment(TestDeployment::new("big").replicas(6).request("cpu", BIG))
            .await?;
        wait_step("a NodeClaim", Duration::from_secs(60), || async {
            Ok((!s.claims().await?.is_empty()).then_some(()))
        })
        .await?;
        controllers[index].signal("KILL")?;
        let killed = Instant::now();
        println!("leader {leader} killed mid-write: {}", state(&s).await?);
        let settled = s.settle(&watchers, 6).await?;
        let empty = s.empty_nodes().await?;
        println!(
            "leader killed mid-write: settled {:.2} s after the kill (lease 15 s) with {} NodeClaims, empty nodes {empty:?}",
            killed.elapsed().as_secs_f64(),
            s.claims().await?.len()
        );
        for n in &empty {
            watchers.violation(&format!("Node/{n}"), "no pod: launched twice");
        }
        ensure!(settled < RECOVERY, "settled after {settled:?}");
        s.assert_no_violation(&watchers)?;
        // A standby for the cleanup should the survivor stop.
        controllers.push(s.controller(true).await?);
        Ok(())
    }
    .await;
    finish(s, controllers, result).await
}

/// Two m6i.large, each running one `web` pod (1 CPU, 3500Mi: two do not share an m6i.large, and
/// one c6i.xlarge takes both for less), under a PDB of `maxUnavailable: 1` watched with a floor
/// of one available pod.
async fn half_empty_pair(
    s: &Scenario,
    watchers: &mut faults_nodes_support::Watchers,
) -> Result<()> {
    let web = TestDeployment::new("web")
        .replicas(1)
        .request("cpu", "1")
        .request("memory", "3500Mi");
    s.ns.create_deployment(web).await?;
    s.ns.wait_deployment_ready("web", 1, Duration::from_secs(60))
        .await?;
    s.ns.scale_deployment("web", 2).await?;
    s.ns.wait_deployment_ready("web", 2, Duration::from_secs(60))
        .await?;
    s.create_pdb("web").await?;
    watchers.availability(&s.client, s.name(), "web", "web", 1);
    wait_step("the PDB's status", Duration::from_secs(30), || async {
        let p = s.ns.api::<PodDisruptionBudget>().get("web").await?;
        Ok(p.status
            .filter(|st| st.disruptions_allowed == 1)
            .map(|_| ()))
    })
    .await?;
    println!("before consolidation: {}", state(s).await?);
    Ok(())
}

/// SIGKILLs `controllers`' last process, prints the state at that moment, and starts another.
async fn kill_and_restart(
    s: &mut Scenario,
    controllers: &mut Vec<process_support::Replica>,
    step: &str,
) -> Result<Instant> {
    if let Some(c) = controllers.last() {
        c.signal("KILL")?;
    }
    let killed = Instant::now();
    println!("killed {step}: {}", state(s).await?);
    controllers.push(s.controller(false).await?);
    Ok(killed)
}

/// The consolidation's taint and replacement steps, each followed by a SIGKILL and a restart.
async fn kills_before_the_drain(
    s: &mut Scenario,
    controllers: &mut Vec<process_support::Replica>,
) -> Result<()> {
    let step = Duration::from_secs(90);
    wait_step("the disruption taint", step, || async {
        Ok((!s.tainted_nodes().await?.is_empty()).then_some(()))
    })
    .await?;
    let killed = kill_and_restart(s, controllers, "after the disruption taint").await?;
    wait_step("the stale taint cleared", step, || async {
        let clear = s.tainted_nodes().await?.is_empty() || !s.deleting_claims().await?.is_empty();
        Ok(clear.then_some(()))
    })
    .await?;
    println!(
        "stale disruption taint cleared (or the action carried on) {:.2} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    let before = s.claims().await?.len();
    let launched = wait_step("a replacement launch or a drain", step, || async {
        if !s.deleting_claims().await?.is_empty() {
            return Ok(Some(false));
        }
        let more = s.claims().await?.len() > before;
        Ok((more && !s.tainted_nodes().await?.is_empty()).then_some(true))
    })
    .await?;
    if launched {
        kill_and_restart(s, controllers, "after the replacement's launch").await?;
    } else {
        println!("no replacement launched after the restart (the action went on to the drain)");
    }
    Ok(())
}

/// Mid-drain (evictions held by the PDB from the moment the action tainted its nodes): a SIGKILL
/// and restart, then the API server crashed for
/// [`DOWN`]; the PDB lets evictions go again once it is back. Returns the time from the PDB's
/// status written again (the bed's own controllers recover from the restart on their own
/// backoff, up to a minute) to the end of the drain.
async fn faults_mid_drain(
    s: &mut Scenario,
    controllers: &mut Vec<process_support::Replica>,
) -> Result<Duration> {
    // A decision taken: its nodes tainted (after any stale taint of a killed process is gone).
    // From then on the PDB holds its drain.
    let step = Duration::from_secs(90);
    wait_step("no stale disruption taint", step, || async {
        let clear = s.tainted_nodes().await?.is_empty() || !s.deleting_claims().await?.is_empty();
        Ok(clear.then_some(()))
    })
    .await?;
    wait_step("a node with pods tainted for disruption", step, || async {
        let tainted = s.tainted_nodes().await?;
        Ok((!tainted.is_empty() && s.pods_on(&tainted).await? > 0).then_some(()))
    })
    .await?;
    s.set_max_unavailable("web", 0).await?;
    let draining = wait_step("a drain with pods", step, || async {
        let d = s.draining_with_pods().await?;
        Ok((!d.is_empty()).then_some(d))
    })
    .await?;
    kill_and_restart(s, controllers, "mid-drain").await?;
    let back = {
        let _heal = Heal::new(&s.bed, Part::ApiServer);
        faults::restart(&s.bed, Part::ApiServer, DOWN).await?
    };
    s.set_max_unavailable("web", 1).await?;
    // The evictions go on once the bed's own controllers see the relaxed PDB again (the
    // kube-controller-manager recovers from the restart on its own watch backoff).
    wait_step("the PDB's status after the restart", LONG, || async {
        let p = s.ns.api::<PodDisruptionBudget>().get("web").await?;
        let generation = p.metadata.generation;
        Ok(p.status
            .filter(|st| st.observed_generation == generation)
            .map(|_| ()))
    })
    .await?;
    let caught_up = Instant::now();
    println!(
        "api server restart mid-drain: the PDB's status caught up {:.2} s after the API server was back",
        back.elapsed().as_secs_f64()
    );
    wait_step("the drain to finish", LONG, || async {
        let claims = s.claims().await?;
        let left = claims.iter().any(|c| {
            draining
                .iter()
                .any(|d| c.metadata.name.as_deref() == Some(d))
        });
        Ok((!left).then(|| caught_up.elapsed()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consolidation_under_faults() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let _serial = faults::serial();
    let never =
        serde_json::json!({ "consolidateAfter": "Never", "budgets": [{ "nodes": "100%" }] });
    let mut s = Scenario::new(&bed, "fault-consolidate", never).await?;
    let mut controllers = vec![s.controller(false).await?];
    let mut watchers = s.watchers();
    let result = async {
        half_empty_pair(&s, &mut watchers).await?;
        s.set_disruption(serde_json::json!({ "consolidateAfter": "1s" }))
            .await?;
        kills_before_the_drain(&mut s, &mut controllers).await?;
        let drained = faults_mid_drain(&mut s, &mut controllers).await?;
        println!(
            "api server restart mid-drain: the drain finished {:.2} s after the PDB's status caught up",
            drained.as_secs_f64()
        );
        let settled = s.settle(&watchers, 2).await?;
        println!(
            "consolidation under faults: settled {:.2} s later: {}",
            settled.as_secs_f64(),
            state(&s).await?
        );
        ensure!(drained < RECOVERY, "the drain finished after {drained:?}");
        s.assert_no_violation(&watchers)
    }
    .await;
    finish(s, controllers, result).await
}
