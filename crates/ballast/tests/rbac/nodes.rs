//! The nodes reconciler under its token: launching, draining and consolidating its own nodes work;
//! RBAC and the admission policy refuse the rest.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::nodes::{KwokNodeClass, NodeClaim, NodePool, labels};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestDeployment, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::calls::{
    Ledger, dry_delete, dry_patch, dry_post, expect_allowed, expect_denied, refusal,
};
use crate::{Identity, Namespaces, POLL, RUN_LABEL, T};

pub(crate) async fn create_pool(client: &Client, name: &str) -> Result<()> {
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
            "disruption": { "consolidateAfter": "5s", "budgets": [{ "nodes": "100%" }] },
            "template": {
                "metadata": { "labels": { ballast_testbed::ISOLATION_KEY: name } },
                "spec": {
                    "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": name },
                    "requirements": [
                        { "key": labels::CAPACITY_TYPE, "operator": "In", "values": ["on-demand"] },
                        { "key": labels::INSTANCE_TYPE, "operator": "In", "values": ["c6i.large"] }
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

/// The pool's NodeClaims and Nodes.
pub(crate) async fn pool_state(client: &Client, pool: &str) -> Result<(Vec<NodeClaim>, Vec<Node>)> {
    let lp = ListParams::default().labels(&format!("{}={pool}", labels::NODEPOOL));
    let claims = Api::<NodeClaim>::all(client.clone()).list(&lp).await?.items;
    let nodes = Api::<Node>::all(client.clone()).list(&lp).await?.items;
    Ok((claims, nodes))
}

/// The pod of `big` running on a node of the pool: that node's name.
pub(crate) async fn running_on_pool(ns: &TestNamespace, pool: &str) -> Result<(String, String)> {
    let client = ns.client();
    poll_until("big running on a launched node", T, POLL, || async {
        let (_, nodes) = pool_state(&client, pool).await?;
        let pods = ns.pods("app=big").await?;
        Ok(pods.into_iter().find_map(|p| {
            let node = p.spec.as_ref()?.node_name.clone()?;
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            (running && nodes.iter().any(|n| n.name_any() == node)).then(|| (p.name_any(), node))
        }))
    })
    .await
}

pub(crate) async fn nodes_work(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let ns = &namespaces.nodes;
    let pool = ns.name();
    let admin = ns.client();
    create_pool(&admin, pool).await?;
    ns.create_deployment(
        TestDeployment::new("big")
            .replicas(1)
            .request("cpu", "1500m"),
    )
    .await?;
    let (pod, node) = running_on_pool(ns, pool).await?;
    ledger.allowed(
        &who.account,
        &format!("create NodeClaim and Node {node} (kwok), label and initialize it"),
    );
    nodes_denied(namespaces, ledger, who, &node).await?;
    // Deleting the NodeClaim: the node is cordoned and tainted, the pod evicted, the node deleted.
    let (claims, _) = pool_state(&admin, pool).await?;
    let claim = claims.first().context("a NodeClaim")?.name_any();
    Api::<NodeClaim>::all(admin.clone())
        .delete(&claim, &DeleteParams::background())
        .await?;
    poll_until("the drained NodeClaim and Node gone", T, POLL, || async {
        let (claims, nodes) = pool_state(&admin, pool).await?;
        let gone = !claims.iter().any(|c| c.name_any() == claim)
            && !nodes.iter().any(|n| n.name_any() == node);
        Ok(gone.then_some(()))
    })
    .await?;
    let (moved, second) = running_on_pool(ns, pool).await?;
    ensure!(
        moved != pod && second != node,
        "big did not move: {moved} on {second}"
    );
    ledger.allowed(
        &who.account,
        &format!("cordon and taint {node}, evict {pod}, delete {node}, remove the finalizers"),
    );
    // Empty: the disruption controller removes the node and its NodeClaim.
    ns.scale_deployment("big", 0).await?;
    poll_until(
        "the empty node removed",
        Duration::from_secs(120),
        POLL,
        || async {
            let (claims, nodes) = pool_state(&admin, pool).await?;
            Ok((claims.is_empty() && nodes.is_empty()).then_some(()))
        },
    )
    .await?;
    ledger.allowed(
        &who.account,
        &format!("consolidate: delete the empty {second} and its NodeClaim"),
    );
    Ok(())
}

/// What the nodes reconciler may not do, `managed` a node it launched.
pub(crate) async fn nodes_denied(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
    managed: &str,
) -> Result<()> {
    let c = &who.client;
    let nodes = Api::<Node>::all(c.clone());
    let plain = namespaces.release.node_name("plain");
    let mark = json!({ "metadata": { "annotations": { "test.ballast.dev/probe": "x" } } });
    let what = format!("patch its own Node {managed} (dry run)");
    expect_allowed(
        ledger,
        who,
        &what,
        nodes.patch(managed, &dry_patch(), &Patch::Merge(&mark)),
    )
    .await?;
    // The policy may take a moment to be loaded by the API server after it is created.
    poll_until("the admission policy in force", T, POLL, || async {
        let r = nodes
            .patch(&plain, &dry_patch(), &Patch::Merge(&mark))
            .await;
        Ok(matches!(r, Err(ref e) if refusal(e).is_some()).then_some(()))
    })
    .await?;
    let what = format!("patch unmanaged Node {plain}");
    expect_denied(
        ledger,
        who,
        &what,
        true,
        nodes.patch(&plain, &dry_patch(), &Patch::Merge(&mark)),
    )
    .await?;
    let adopt = json!({ "metadata": { "labels": { labels::NODEPOOL: "stolen" } } });
    let what = format!("label unmanaged Node {plain} {}", labels::NODEPOOL);
    expect_denied(
        ledger,
        who,
        &what,
        true,
        nodes.patch(&plain, &dry_patch(), &Patch::Merge(&adopt)),
    )
    .await?;
    let what = format!("delete unmanaged Node {plain}");
    expect_denied(
        ledger,
        who,
        &what,
        true,
        nodes.delete(&plain, &dry_delete()),
    )
    .await?;
    let stray: Node =
        serde_json::from_value(json!({ "metadata": { "name": format!("{plain}-stray") } }))?;
    let what = "create a Node without the managed label";
    expect_denied(ledger, who, what, true, nodes.create(&dry_post(), &stray)).await?;
    let drop_label = json!({ "metadata": { "labels": { labels::NODEPOOL: null } } });
    let what = format!("remove {} from its own Node {managed}", labels::NODEPOOL);
    expect_denied(
        ledger,
        who,
        &what,
        true,
        nodes.patch(managed, &dry_patch(), &Patch::Merge(&drop_label)),
    )
    .await?;
    let mut current = Api::<Node>::all(namespaces.release.client())
        .get(managed)
        .await?;
    current.metadata.managed_fields = None;
    let what = format!("update (PUT) its own Node {managed} (it only patches)");
    expect_denied(
        ledger,
        who,
        &what,
        false,
        nodes.replace(managed, &dry_post(), &current),
    )
    .await?;
    pod_deletes(namespaces, ledger, who).await?;
    let what = "get Secret kube-system/probe";
    let system = Api::<Secret>::namespaced(c.clone(), "kube-system");
    let secret = system.get("probe");
    expect_denied(ledger, who, what, false, secret).await?;
    let deployments = Api::<Deployment>::namespaced(c.clone(), namespaces.nodes.name());
    let what = "delete Deployment big (dry run)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        deployments.delete("big", &dry_delete()),
    )
    .await
}

/// A pod bound to no node: the nodes reconciler may not delete it. A bound pod it may (what a
/// drain past a NodeClaim's terminationGracePeriod does; the policy cannot see the pod's node).
pub(crate) async fn pod_deletes(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let ns = &namespaces.release;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "unbound" },
        "spec": {
            "nodeSelector": { "test.ballast.dev/nowhere": "true" },
            "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10" }]
        }
    }))?;
    ns.api::<Pod>().create(&PostParams::default(), &pod).await?;
    let pods = Api::<Pod>::namespaced(who.client.clone(), ns.name());
    let what = format!("delete unbound Pod {}/unbound", ns.name());
    expect_denied(
        ledger,
        who,
        &what,
        true,
        pods.delete("unbound", &dry_delete()),
    )
    .await?;
    let bound = ns
        .pods("app=usage")
        .await?
        .into_iter()
        .next()
        .context("a usage pod")?
        .name_any();
    let what = format!("delete bound Pod {}/{bound} (dry run)", ns.name());
    expect_allowed(ledger, who, &what, pods.delete(&bound, &dry_delete())).await
}

/// Removes the nodes test's pool, class and whatever nodes are left (admin).
pub(crate) async fn cleanup_nodes(client: &Client, ns: &TestNamespace) {
    let dp = DeleteParams::background();
    let name = ns.name();
    let _ = Api::<NodePool>::all(client.clone()).delete(name, &dp).await;
    let unfinalize = json!({ "metadata": { "finalizers": null } });
    let pp = PatchParams::default();
    if let Ok((claims, nodes)) = pool_state(client, name).await {
        for c in claims {
            let api = Api::<NodeClaim>::all(client.clone());
            let _ = api
                .patch(&c.name_any(), &pp, &Patch::Merge(&unfinalize))
                .await;
            let _ = api.delete(&c.name_any(), &dp).await;
        }
        for n in nodes {
            let api = Api::<Node>::all(client.clone());
            let _ = api
                .patch(&n.name_any(), &pp, &Patch::Merge(&unfinalize))
                .await;
            let _ = api.delete(&n.name_any(), &dp).await;
        }
    }
    let _ = Api::<KwokNodeClass>::all(client.clone())
        .delete(name, &dp)
        .await;
}
