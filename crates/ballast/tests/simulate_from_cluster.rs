//! `ballast simulate --from-cluster` against the REAL test bed (`tests/testbed.sh up kube`).
//!
//! - `captures_the_cluster_and_simulates_from_it`: a Deployment, a native `autoscaling/v2` HPA on
//!   it, a PodDisruptionBudget, the test's NodePool and KwokNodeClass, a kwok node of a catalog
//!   type in that pool and one of a type the catalog lacks. `simulate --from-cluster -n NS
//!   --save-scenario F` says what it took and names the node it left out; F holds the workload
//!   (replicas, requests, the PDB's maxUnavailable), the HPA as a HorizontalAutoscaler, the pool
//!   and the node as a start node of the pool; `simulate F` runs it.
//! - `capture_errors_name_what_is_wrong`: a user without rights (the verb and resource named), a
//!   context the kubeconfig lacks, and `--save-scenario` without a source.
//!
//! Without a test bed every test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

mod explain_support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::nodes::{KwokNodeClass, NodePool};
use ballast_testbed::{KwokNode, TestDeployment, testbed_or_skip};
use explain_support::{ballast, fails_naming, kubeconfig, nobody_kubeconfig, temp_dir, text};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

async fn install_crds(client: &Client) -> Result<()> {
    let crds: Vec<_> = ballast_api::crds()
        .into_iter()
        .filter(|c| c.spec.group == "nodes.ballast.dev")
        .collect();
    ballast_testbed::crds::apply(
        client,
        crds,
        "ballast-simulate-test",
        Duration::from_secs(30),
    )
    .await
}

/// The test's KwokNodeClass and NodePool, named after its namespace: on-demand c6i and m6i
/// nodes for the namespace's pods only.
async fn create_pool(client: &Client, name: &str) -> Result<()> {
    let class: KwokNodeClass = serde_json::from_value(json!({
        "apiVersion": "nodes.ballast.dev/v1", "kind": "KwokNodeClass",
        "metadata": { "name": name }, "spec": {},
    }))?;
    Api::<KwokNodeClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await?;
    let pool: NodePool = serde_json::from_value(json!({
        "apiVersion": "nodes.ballast.dev/v1", "kind": "NodePool",
        "metadata": { "name": name },
        "spec": {
            "template": {
                "metadata": { "labels": { ballast_testbed::ISOLATION_KEY: name } },
                "spec": {
                    "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": name },
                    "requirements": [
                        { "key": "nodes.ballast.dev/capacity-type", "operator": "In", "values": ["on-demand"] },
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

async fn delete_pool(client: &Client, name: &str) {
    let _ = Api::<NodePool>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
    let _ = Api::<KwokNodeClass>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// The HPA and PDB of `web` in `ns`.
async fn create_hpa_and_pdb(client: &Client, ns: &str) -> Result<()> {
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": "web", "namespace": ns },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 2, "maxReplicas": 9,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu",
                "target": { "type": "Utilization", "averageUtilization": 60 } } }]
        }
    }))?;
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &hpa)
        .await?;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": { "name": "web", "namespace": ns },
        "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": "web" } } }
    }))?;
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pdb)
        .await?;
    Ok(())
}

#[tokio::test]
async fn captures_the_cluster_and_simulates_from_it() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let client = bed.client();
    install_crds(&client).await?;
    let ns = bed.namespace("simcap").await?;
    let name = ns.name().to_string();
    create_pool(&client, &name).await?;
    let outcome = capture_and_simulate(&bed, &ns, &name).await;
    delete_pool(&client, &name).await;
    ns.cleanup().await?;
    outcome
}

async fn capture_and_simulate(
    bed: &ballast_testbed::TestBed,
    ns: &ballast_testbed::TestNamespace,
    name: &str,
) -> Result<()> {
    let client = bed.client();
    ns.create_kwok_node(
        KwokNode::new("m6i")
            .label("node.kubernetes.io/instance-type", "m6i.large")
            .label("topology.kubernetes.io/zone", "us-east-1a")
            .label("karpenter.sh/nodepool", name),
    )
    .await?;
    ns.create_kwok_node(
        KwokNode::new("odd")
            .label("node.kubernetes.io/instance-type", "z9.odd")
            .label("topology.kubernetes.io/zone", "us-east-1a"),
    )
    .await?;
    ns.create_deployment(
        TestDeployment::new("web")
            .replicas(2)
            .request("cpu", "500m")
            .request("memory", "512Mi"),
    )
    .await?;
    create_hpa_and_pdb(&client, name).await?;

    let dir = temp_dir(name)?;
    let file = dir.join("captured.yaml");
    let file_arg = file.to_str().context("temporary path")?;
    let args = [
        "simulate",
        "--from-cluster",
        "-n",
        name,
        "--save-scenario",
        file_arg,
    ];
    let captured = ballast(bed, &args)?;
    let said = text(&captured.stderr);
    println!("$ ballast {}\n{said}", args.join(" "));
    ensure!(captured.status.success(), "{said}");
    for fragment in [
        "1 Deployment",
        "1 HorizontalPodAutoscaler",
        "1 PodDisruptionBudget",
        &format!("Node {name}-odd: instance type z9.odd is not in the catalog: left out"),
        "saved the scenario to",
    ] {
        ensure!(
            said.contains(fragment),
            "the capture does not say {fragment:?}:\n{said}"
        );
    }

    let scenario: Value = serde_yaml::from_str(&std::fs::read_to_string(&file)?)?;
    let workloads = scenario["workloads"].as_array().context("workloads")?;
    ensure!(workloads.len() == 1, "one workload: {workloads:?}");
    let web = &workloads[0];
    ensure!(web["name"] == "web" && web["namespace"] == name, "{web}");
    ensure!(web["replicas"] == 2 && web["maxUnavailable"] == 1, "{web}");
    ensure!(web["pod"]["requests"]["cpu"] == "500m", "{web}");
    ensure!(web["pod"]["requests"]["memory"] == "512Mi", "{web}");
    let objects = scenario["inlineObjects"]
        .as_array()
        .context("inlineObjects")?;
    let find = |kind: &str, n: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == n)
    };
    let hpa = find("HorizontalAutoscaler", "web").context("the HPA, converted")?;
    ensure!(hpa["spec"]["maxReplicas"] == 9, "{hpa}");
    ensure!(
        find("NodePool", name).is_some(),
        "the NodePool: {objects:?}"
    );
    let nodes = scenario["startNodes"].as_array().context("startNodes")?;
    let mine: Vec<&Value> = nodes.iter().filter(|n| n["nodePool"] == name).collect();
    ensure!(mine.len() == 1, "one start node of the pool: {nodes:?}");
    ensure!(
        mine[0]["instanceType"] == "m6i.large" && mine[0]["count"] == 1,
        "{nodes:?}"
    );

    let out = dir.join("out");
    let out_arg = out.to_str().context("temporary path")?;
    // NodePools are cluster-wide: tests running beside this one may have left pools of their
    // own in the capture, which a strict run could find unsatisfiable. The test's own workload
    // is checked in the report instead.
    let ran = ballast(
        bed,
        &[
            "simulate",
            file_arg,
            "--quiet",
            "--out",
            out_arg,
            "--allow-unschedulable",
        ],
    )?;
    ensure!(ran.status.success(), "{}", text(&ran.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json"))?)?;
    println!("{}", text(&ran.stdout));
    let variant = &report["variants"][0];
    ensure!(variant["podsNeverScheduled"] == 0, "{variant}");
    let web = &variant["workloads"][0];
    ensure!(web["name"] == "web", "{variant}");
    ensure!(web["meanReady"].as_f64().is_some_and(|r| r >= 2.0), "{web}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::test]
async fn capture_errors_name_what_is_wrong() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let dir = temp_dir("simulate-errors")?;
    let nobody = nobody_kubeconfig(&bed, &dir)?;
    fails_naming(
        &nobody,
        &["simulate", "--from-cluster"],
        "forbidden: cannot list horizontalautoscalers.autoscaling.ballast.dev in all namespaces",
    )?;
    let config = kubeconfig(&bed)?;
    let config = config.to_str().context("kubeconfig path")?;
    fails_naming(
        &nobody,
        &[
            "simulate",
            "--from-cluster",
            "--kubeconfig",
            config,
            "--context",
            "nope",
        ],
        "--context nope",
    )?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
