//! Faults under `ballast controller nodes --provider kwok`, a real process on the REAL test bed
//! (`tests/testbed.sh up kube`), one scenario at a time (`faults::serial()`):
//!
//! - `api_server_restart_during_provisioning`: the API server crashed (SIGKILL) while NodeClaims
//!   are being launched for pending pods, down 5 s, started again; more pods arrive once it is
//!   back. Figures: each NodeClaim's creation-to-launch time after the restart, and the time from
//!   the API server's return to every pod's NodeClaim launched.
//! - `controller_killed_during_a_launch`: the controller SIGKILLed the moment a NodeClaim
//!   appears (created, its node not registered yet), then restarted.
//! - `consolidation_under_faults`: two half-empty m6i.large under a PDB (`maxUnavailable: 1`)
//!   that multi-node consolidation replaces by one c6i.xlarge; the controller is SIGKILLed after
//!   the disruption taint, after the replacement's launch and mid-drain (each time restarted), and
//!   the API server crashes mid-drain (evictions held by the PDB).
//! - `leader_killed_mid_write`: two replicas under leader election; the leader is SIGKILLed while
//!   it creates NodeClaims for six pending pods: in the end exactly one NodeClaim per pod.
//!
//! Invariants, watched through each whole scenario ([`faults_support::Watchers`]) and checked once
//! it settles ([`faults_support::Scenario::settle`]): the Deployment's available replicas and the
//! PDB's healthy pods never below the PDB's floor; every pending pod placed; no orphan NodeClaim
//! or node of the pool; no node left cordoned or carrying the disruption taint; no NodeClaim left
//! deleting. Recovery times are printed; asserted only against a generous bound ([`RECOVERY`]).
//!
//! Without a test bed every test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ballast_testbed::faults::{self, Heal, Part};
use ballast_testbed::{TestDeployment, testbed_or_skip};

mod faults_support;
mod process_support;

use faults_support::{Scenario, seconds, wait_step};

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
        let delays = watchers.launch_delays(back);
        println!(
            "api server restart during provisioning: creation-to-launch of the NodeClaims made after it: {}",
            seconds(&delays)
        );
        let resumed = resumed?;
        println!(
            "api server restart during provisioning: every pod placed {:.2} s after the API server was back",
            resumed.as_secs_f64()
        );
        let slowest = delays.iter().copied().fold(0.0, f64::max);
        ensure!(slowest < RECOVERY.as_secs_f64(), "a NodeClaim launched {slowest:.1} s after its creation");
        ensure!(resumed < RECOVERY, "provisioning resumed after {resumed:?}");
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

#[allow(dead_code)]
fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
