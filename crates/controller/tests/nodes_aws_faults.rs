//! The node controllers with the EC2 provider behind the EC2 fault proxy
//! (`ballast_testbed::ec2_faults`) in front of the bed's moto (`tests/testbed.sh up kube moto`):
//! one test per fault EC2 shows and moto never does.
//!
//! - `server_errors_on_ec2_delay_launches_and_duplicate_none`: every CreateFleet answered HTTP
//!   500 `InternalError` and the first DescribeInstances 503 `Unavailable`.
//! - `latency_on_ec2_delays_launches_and_duplicate_none`: every call 300 ms slower, and
//!   CreateFleet's answer held back 3 s, past the provider's 2 s attempt timeout (moto launched:
//!   the call happened, the caller gave up).
//! - `connections_dropped_before_ec2_acted_delay_launches`: CreateFleet's connection closed
//!   before the request reached moto (the call never happened).
//! - `connections_dropped_after_ec2_acted_duplicate_no_instance`: CreateFleet's connection closed
//!   after moto answered (the call happened, its answer is lost).
//!
//! Each test asks for nodes (a Deployment of two 3-CPU pods: one c6i.2xlarge) while the fault is on,
//! lifts it once it has hit CreateFleet, and then checks ([`settled`]): every NodeClaim has
//! exactly one instance; no NodeClaim got an instance launched twice (counted in every state,
//! terminated ones included); once garbage collection ran, no instance of the run is left that
//! no NodeClaim has; and both pods run within [`RECOVERY`] of the fault being lifted (the time is
//! printed). One test at a time ([`ballast_testbed::faults::serial`]): the recovery times are
//! the figures of docs/nodes.md.

// `faults::serial()` is a std lock held for a whole test on purpose: each test has a runtime of
// its own, and the lock keeps the others (on other threads) from running beside it, so that the
// recovery times are those of one scenario.
#![allow(clippy::await_holding_lock)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_cloud_aws::{AwsOptions, tags};
use ballast_testbed::ec2_faults::{Ec2FaultProxy, Fault, HangUp, ServerError};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestDeployment, service_or_skip, testbed_or_skip};

mod nodes_aws_support;

use nodes_aws_support::{Run, T, with_run};

/// How soon after a fault is lifted every pod must run (figures are printed; docs/nodes.md).
const RECOVERY: Duration = Duration::from_secs(30);
/// How long a fault stays on once it has hit.
const HOLD: Duration = Duration::from_secs(3);
/// Pods the tests ask for.
const PODS: i32 = 2;

/// The provider of the controllers gives an attempt up after 2 s.
fn short_attempts(o: &mut AwsOptions) {
    o.attempt_timeout = Duration::from_secs(2);
}

/// Starts a run behind `proxy`, injects the fault (`inject`), asks for [`PODS`] pods, lifts the
/// fault [`HOLD`] after `hit` says it has done its work (or after 60 s), and checks what is left.
async fn scenario(
    bed: &TestBed,
    moto: &str,
    prefix: &str,
    inject: impl FnOnce(&Ec2FaultProxy),
    hit: impl Fn(&Ec2FaultProxy) -> bool,
) -> Result<()> {
    let proxy = Ec2FaultProxy::start(moto).await?;
    let run = Run::start_full(bed, moto, prefix, Some(proxy.url()), |_| {}, short_attempts).await?;
    with_run(run, async |run| {
        let ns = &run.ns;
        // The catalog first, so that the NodeClaims are made and the fault meets their launch.
        poll_until("the catalog read", T, Duration::from_millis(200), || async {
            Ok((proxy.forwarded("DescribeInstanceTypes") > 0).then_some(()))
        })
        .await?;
        inject(&proxy);
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(PODS)
                .request("cpu", "3")
                .request("memory", "2Gi"),
        )
        .await?;
        let faulted = poll_until("the fault to hit", Duration::from_secs(60), Duration::from_millis(100), || async {
            Ok(hit(&proxy).then_some(()))
        })
        .await;
        // Held a little longer, so the launch's own retries meet it too.
        tokio::time::sleep(HOLD).await;
        proxy.clear();
        let lifted = Instant::now();
        faulted?;
        ns.wait_deployment_ready("web", PODS, T).await?;
        let recovered = lifted.elapsed();
        eprintln!(
            "{prefix}: {PODS} pods running {:.1} s after the fault was lifted (CreateFleet: {} requests, {} reached moto)",
            recovered.as_secs_f64(),
            proxy.requests("CreateFleet"),
            proxy.forwarded("CreateFleet"),
        );
        settled(run).await?;
        ensure!(
            recovered <= RECOVERY,
            "{prefix}: pods ran {recovered:?} after the fault was lifted (bound {RECOVERY:?})"
        );
        Ok(())
    })
    .await
}

/// Every NodeClaim has exactly one instance, none was launched twice, and (after garbage
/// collection) no instance of the run is left that no NodeClaim has.
async fn settled(run: &Run) -> Result<()> {
    let claims = run.claims().await?;
    let live: Vec<_> = claims
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .collect();
    ensure!(!live.is_empty(), "no NodeClaim");
    let mut pids = BTreeSet::new();
    for c in &live {
        let pid = c
            .status
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .with_context(|| format!("NodeClaim {:?} has no providerID", c.metadata.name))?;
        let (_, id) = ballast_cloud_aws::parse_provider_id(&pid).context("aws providerID")?;
        pids.insert(id.to_string());
    }
    // Garbage collection runs every 2 s and spares instances younger than 5 s.
    let left = poll_until(
        "no instance of the run beyond those of its NodeClaims",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let running: BTreeSet<String> = run.running().await?.into_iter().map(|i| i.0).collect();
            Ok((running == pids).then_some(running))
        },
    )
    .await;
    let all = run.instances().await?;
    let mut per_claim: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, _, _, state, t) in &all {
        let claim = t.get(tags::NODECLAIM).cloned().unwrap_or_default();
        per_claim
            .entry(claim)
            .or_default()
            .push(format!("{id} ({state})"));
    }
    let twice: Vec<_> = per_claim.iter().filter(|(_, v)| v.len() > 1).collect();
    ensure!(
        twice.is_empty(),
        "instances launched more than once for one NodeClaim: {twice:?}"
    );
    left.with_context(|| format!("instances of the run: {per_claim:?}; NodeClaims': {pids:?}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_on_ec2_delay_launches_and_duplicate_none() -> Result<()> {
    let _serial = ballast_testbed::faults::serial();
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    scenario(
        &bed,
        &moto,
        "aws-5xx",
        |p| {
            p.inject(
                Fault::ServerError(ServerError::Unavailable),
                Some("DescribeInstances"),
                Some(4),
            );
            p.inject(
                Fault::ServerError(ServerError::Internal),
                Some("CreateFleet"),
                None,
            );
        },
        |p| p.injected("500") >= 4,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_on_ec2_delays_launches_and_duplicate_none() -> Result<()> {
    let _serial = ballast_testbed::faults::serial();
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    scenario(
        &bed,
        &moto,
        "aws-latency",
        |p| {
            p.inject(Fault::Delay(Duration::from_millis(300)), None, None);
            p.inject(
                Fault::Delay(Duration::from_secs(3)),
                Some("CreateFleet"),
                None,
            );
        },
        |p| p.forwarded("CreateFleet") >= 1,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_before_ec2_acted_delay_launches() -> Result<()> {
    let _serial = ballast_testbed::faults::serial();
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    scenario(
        &bed,
        &moto,
        "aws-drop-before",
        |p| {
            p.inject(
                Fault::HangUp(HangUp::BeforeForward),
                Some("CreateFleet"),
                None,
            )
        },
        |p| p.injected("hang-up-before") >= 4,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_after_ec2_acted_duplicate_no_instance() -> Result<()> {
    let _serial = ballast_testbed::faults::serial();
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    scenario(
        &bed,
        &moto,
        "aws-drop-after",
        |p| {
            p.inject(
                Fault::HangUp(HangUp::AfterAnswer),
                Some("CreateFleet"),
                None,
            )
        },
        |p| p.injected("hang-up-after") >= 1,
    )
    .await
}
