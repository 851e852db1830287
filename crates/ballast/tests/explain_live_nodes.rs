//! `ballast explain provision|disruption --live` against the REAL test bed
//! (`tests/testbed.sh up kube`).
//!
//! - `explains_what_the_nodes_controller_then_does`: one pending pod and the test's own NodePool
//!   (kwok provider, `simulations/catalogs/aws-like.yaml`): `explain provision --live POOL` names
//!   the pool and the instance type of a new NodeClaim; `--save-snapshot` then `-f` prints the same
//!   text; a `ballast controller nodes` started with the same flags then creates a NodeClaim of
//!   that pool launched as that instance type. Scaled to zero, the node is empty: `explain
//!   disruption --live POOL` chooses emptiness for it once `consolidateAfter` has passed and says
//!   why (`empty`), and its saved snapshot explains to the same text.
//! - `live_errors_name_what_is_wrong`: a NodePool that does not exist, a missing kubeconfig and a
//!   user without rights each exit 2 with an error naming the pool, the kubeconfig or the verb and
//!   resource.
//!
//! Without a test bed every test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

mod explain_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::nodes::{KwokNodeClass, NodeClaim, NodePool, labels};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestDeployment, TestNamespace, testbed_or_skip};
use explain_support::{ballast, fails_naming, kubeconfig, nobody_kubeconfig, temp_dir, text};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const RUN_LABEL: &str = "test.ballast.dev/run";
const CATALOG: &str = "simulations/catalogs/aws-like.yaml";
const T: Duration = Duration::from_secs(90);

async fn install_crds(client: &Client) -> Result<()> {
    let crds: Vec<_> = ballast_api::crds()
        .into_iter()
        .filter(|c| c.spec.group == "nodes.ballast.dev")
        .collect();
    ballast_testbed::crds::apply(
        client,
        crds,
        "ballast-explain-test",
        Duration::from_secs(30),
    )
    .await
}

/// The test's KwokNodeClass and NodePool, both named after its namespace: on-demand c6i and
/// m6i instances, empty nodes removable after a second, nodes only for the namespace's pods.
async fn create_pool(client: &Client, name: &str) -> Result<()> {
    let class: KwokNodeClass = serde_json::from_value(json!({
        "apiVersion": "nodes.ballast.dev/v1", "kind": "KwokNodeClass",
        "metadata": { "name": name, "labels": { RUN_LABEL: name } }, "spec": {},
    }))?;
    Api::<KwokNodeClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await?;
    let pool: NodePool = serde_json::from_value(json!({
        "apiVersion": "nodes.ballast.dev/v1", "kind": "NodePool",
        "metadata": { "name": name, "labels": { RUN_LABEL: name } },
        "spec": {
            "disruption": { "consolidateAfter": "1s", "budgets": [{ "nodes": "100%" }] },
            "template": {
                "metadata": { "labels": { ballast_testbed::ISOLATION_KEY: name } },
                "spec": {
                    "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": name },
                    "requirements": [
                        { "key": labels::CAPACITY_TYPE, "operator": "In", "values": ["on-demand"] },
                        { "key": "nodes.ballast.dev/instance-family", "operator": "In", "values": ["c6i", "m6i"] }
                    ],
                    "taints": [{ "key": ballast_testbed::ISOLATION_KEY, "value": name, "effect": "NoSchedule" }]
                }
            }
        }
    }))?;
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await?;
    Ok(())
}

/// The flags the controller and the explanation share: the catalog and the test's scope.
fn decision_flags(name: &str) -> Vec<String> {
    [
        "--catalog",
        CATALOG,
        "--nodepool-selector",
        &format!("{RUN_LABEL}={name}"),
        "--provision-namespace",
        name,
    ]
    .map(str::to_string)
    .to_vec()
}

/// `explain DECISION --live POOL FLAGS... --save-snapshot FILE`, then `explain DECISION -f
/// FILE`: both succeed and print the same; returns the text.
fn live_and_saved(bed: &TestBed, decision: &str, pool: &str, flags: &[String]) -> Result<String> {
    let dir = temp_dir(pool)?;
    let file = dir.join(format!("{decision}.yaml"));
    let file = file.to_str().context("temporary path")?;
    let mut args = vec!["explain", decision, "--live", pool];
    args.extend(flags.iter().map(String::as_str));
    let live = ballast(bed, &[&args[..], &["--save-snapshot", file][..]].concat())?;
    ensure!(live.status.success(), "{}", text(&live.stderr));
    let shown = text(&live.stdout);
    println!("$ kubectl ballast {}\n{shown}", args.join(" "));
    let saved = ballast(bed, &["explain", decision, "-f", file])?;
    ensure!(saved.status.success(), "{}", text(&saved.stderr));
    ensure!(
        saved.stdout == live.stdout,
        "the saved snapshot explains differently:\nlive:\n{shown}\nsaved:\n{}",
        text(&saved.stdout)
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(shown)
}

/// The instance type and pool `explain provision --live POOL -o json` plans its one NodeClaim as.
fn planned_claim(bed: &TestBed, pool: &str, flags: &[String]) -> Result<(String, String)> {
    let mut args = vec!["explain", "provision", "--live", pool, "-o", "json"];
    args.extend(flags.iter().map(String::as_str));
    let out = ballast(bed, &args)?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let decision: Value = serde_json::from_slice(&out.stdout)?;
    let claims = decision["nodeClaims"].as_array().context("nodeClaims")?;
    ensure!(claims.len() == 1, "one NodeClaim planned: {decision}");
    let field = |k: &str| {
        claims[0][k]
            .as_str()
            .map(str::to_string)
            .context(k.to_string())
    };
    Ok((field("nodePool")?, field("instanceType")?))
}

/// `ballast controller nodes FLAGS...` without disruption, its log in `log`.
fn start_controller(bed: &TestBed, flags: &[String], log: &Path) -> Result<Child> {
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["controller", "nodes", "--no-disruption", "--batch-max", "3"])
        .args(["--nodes-health-addr", "127.0.0.1:0"])
        .args(flags)
        .current_dir(explain_support::repo_root())
        .env("KUBECONFIG", kubeconfig(bed)?)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("starting ballast controller nodes")
}

/// Whether the kube-scheduler marked the pod unschedulable (what the provisioner waits for).
fn unschedulable(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        })
}

async fn claims_of(client: &Client, pool: &str) -> Result<Vec<NodeClaim>> {
    let lp = ListParams::default().labels(&format!("{}={pool}", labels::NODEPOOL));
    Ok(Api::<NodeClaim>::all(client.clone()).list(&lp).await?.items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explains_what_the_nodes_controller_then_does() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let client = bed.client();
    install_crds(&client).await?;
    let ns = bed.namespace("explain-nodes").await?;
    let name = ns.name().to_owned();
    create_pool(&client, &name).await?;
    let logs = temp_dir(&format!("{name}-logs"))?;
    let mut controller = None;
    let result = provision_then_disrupt(&bed, &ns, &logs, &mut controller).await;
    cleanup(&client, &ns).await;
    if let Some(mut c) = controller {
        let _ = c.kill();
        let _ = c.wait();
    }
    if result.is_err() {
        let log = std::fs::read_to_string(logs.join("nodes.log")).unwrap_or_default();
        eprintln!("controller log:\n{log}");
    }
    result?;
    std::fs::remove_dir_all(&logs)?;
    ns.cleanup().await
}

async fn provision_then_disrupt(
    bed: &TestBed,
    ns: &TestNamespace,
    logs: &Path,
    controller: &mut Option<Child>,
) -> Result<()> {
    let client = bed.client();
    let pool = ns.name();
    let flags = decision_flags(pool);
    ns.create_deployment(TestDeployment::new("web").request("cpu", "1500m"))
        .await?;
    poll_until(
        "web pending as unschedulable",
        T,
        Duration::from_millis(500),
        || async {
            Ok(ns
                .pods("app=web")
                .await?
                .iter()
                .any(unschedulable)
                .then_some(()))
        },
    )
    .await?;

    let shown = live_and_saved(bed, "provision", pool, &flags)?;
    ensure!(shown.contains("1 new NodeClaim(s)"), "{shown}");
    ensure!(shown.contains(&format!("NodePool {pool}")), "{shown}");
    let (planned_pool, planned_type) = planned_claim(bed, pool, &flags)?;
    ensure!(planned_pool == pool, "planned in {planned_pool}");
    ensure!(shown.contains(&planned_type), "{shown}");

    // The controller, with the same flags, launches that very claim.
    *controller = Some(start_controller(bed, &flags, &logs.join("nodes.log"))?);
    let launched = poll_until(
        "a launched NodeClaim",
        T,
        Duration::from_millis(500),
        || async {
            let claims = claims_of(&client, pool).await?;
            Ok(claims
                .iter()
                .find_map(|c| c.labels().get(labels::INSTANCE_TYPE).cloned()))
        },
    )
    .await?;
    println!("the controller launched a {launched} NodeClaim in NodePool {pool}");
    ensure!(
        launched == planned_type,
        "explain planned {planned_type}, the controller launched {launched}"
    );
    ns.wait_deployment_ready("web", 1, T).await?;

    // Scaled to zero: the node is empty, and emptiness would remove it.
    ns.scale_deployment("web", 0).await?;
    poll_until(
        "web scaled to zero",
        T,
        Duration::from_millis(500),
        || async { Ok(ns.pods("app=web").await?.is_empty().then_some(())) },
    )
    .await?;
    let lp = ListParams::default().labels(&format!("{}={pool}", labels::NODEPOOL));
    let nodes = Api::<Node>::all(client.clone()).list(&lp).await?.items;
    ensure!(nodes.len() == 1, "{} nodes in the pool", nodes.len());
    let node = nodes[0].name_any();
    // The pool's consolidateAfter (1 s) counts from when the node became empty; until then the
    // explanation says how long is left, so ask again until emptiness is chosen.
    let chosen = format!("Action: emptiness of {node}");
    let mut shown = String::new();
    for _ in 0..20 {
        shown = live_and_saved(bed, "disruption", pool, &flags)?;
        if shown.contains(&chosen) || !shown.contains("consolidateAfter not reached") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(shown.contains(&chosen), "{shown}");
    ensure!(shown.contains("emptiness: chosen: empty"), "{shown}");
    Ok(())
}

/// Deletes the Deployment, the pool and its NodeClaims (the controller, when running, drains
/// them); finalizers are removed from what is left after a minute; then the class.
async fn cleanup(client: &Client, ns: &TestNamespace) {
    let dp = DeleteParams::background();
    let pool = ns.name();
    let _ = ns
        .api::<Deployment>()
        .delete_collection(&dp, &ListParams::default())
        .await;
    let _ = Api::<NodePool>::all(client.clone()).delete(pool, &dp).await;
    let claims: Api<NodeClaim> = Api::all(client.clone());
    for c in claims_of(client, pool).await.unwrap_or_default() {
        let _ = claims.delete(&c.name_any(), &dp).await;
    }
    let gone = poll_until(
        "the NodeClaims to go",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async { Ok(claims_of(client, pool).await?.is_empty().then_some(())) },
    )
    .await;
    let unfinalize = json!({ "metadata": { "finalizers": null } });
    if gone.is_err() {
        for c in claims_of(client, pool).await.unwrap_or_default() {
            let _ = claims
                .patch(
                    &c.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&unfinalize),
                )
                .await;
        }
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{}={pool}", labels::NODEPOOL));
    for n in nodes.list(&lp).await.map(|l| l.items).unwrap_or_default() {
        let name = n.name_any();
        let _ = nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&unfinalize))
            .await;
        let _ = nodes.delete(&name, &dp).await;
    }
    let _ = Api::<KwokNodeClass>::all(client.clone())
        .delete(pool, &dp)
        .await;
}

#[tokio::test]
async fn live_errors_name_what_is_wrong() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let client = bed.client();
    install_crds(&client).await?;
    let ns = bed.namespace("explain-node-errors").await?;
    let dir = temp_dir(ns.name())?;
    let config = kubeconfig(&bed)?;
    for decision in ["provision", "disruption"] {
        let missing = format!("{}-missing", ns.name());
        fails_naming(
            &config,
            &[
                "explain",
                decision,
                "--live",
                &missing,
                "--catalog",
                CATALOG,
            ],
            &format!("NodePool {missing} not found"),
        )?;
    }
    fails_naming(
        &dir.join("absent.kubeconfig"),
        &["explain", "provision", "--live", "--catalog", CATALOG],
        "no kubeconfig: KUBECONFIG names",
    )?;
    let nobody = nobody_kubeconfig(&bed, &dir)?;
    fails_naming(
        &nobody,
        &["explain", "disruption", "--live", "--catalog", CATALOG],
        "may not list nodepools.nodes.ballast.dev",
    )?;
    std::fs::remove_dir_all(&dir)?;
    ns.cleanup().await
}
