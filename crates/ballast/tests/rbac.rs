//! Least-privilege RBAC proven with the chart's own identities, against the REAL test bed
//! (`tests/testbed.sh up kube metrics-server`, and `tests/testbed.sh build` for Helm).
//!
//! `controllers_work_under_their_chart_tokens_and_no_further` renders deploy/helm/ballast with the
//! cached Helm, applies its ServiceAccounts, ClusterRoles, Roles, bindings and the nodes
//! reconciler's ValidatingAdmissionPolicy, gets each ServiceAccount a token through the
//! TokenRequest API and writes a kubeconfig per reconciler with it. Then, under those tokens:
//!
//! - `ballast controller horizontal` scales a Deployment and writes its autoscaler's status and
//!   events; `ballast controller vertical` writes a recommendation and checkpoints, and its
//!   updater evicts a pod of a `Recreate` object;
//!   `ballast controller nodes` (kwok) launches a NodeClaim and its Node for a pending pod, drains
//!   the node through the Eviction API when its NodeClaim is deleted, and removes an empty node;
//!   each holds its Lease (leader election, as the chart runs them);
//! - direct calls with the same tokens (server-side dry runs, so nothing changes were one allowed)
//!   are refused with 403: a Deployment deleted, Secrets outside `horizontal.secretNamespaces`,
//!   `update` where the code only patches, a pod patched or deleted by the vertical reconciler,
//!   and, by the admission policy, a Node not managed by Ballast patched, labelled, deleted or
//!   created, the managed label removed, an unbound pod deleted (a bound one may be: what a drain
//!   past terminationGracePeriod does);
//! - nothing the controllers did was refused: no output of theirs says "forbidden";
//! - the checks can fail: with cluster-admin bound to the horizontal ServiceAccount a denial check
//!   fails, and without the policy's binding the unmanaged Node's patch is admitted.
//!
//! Every call and its answer is printed (the allowed and denied list). Without a test bed the test
//! prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

mod bed_support;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_api::nodes::{KwokNodeClass, NodeClaim, NodePool, labels};
use ballast_api::vertical::{VerticalAutoscaler, VerticalAutoscalerCheckpoint};
use ballast_testbed::usage::wait_for_pod_metrics;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{KwokNode, TestBed, TestDeployment, TestNamespace, testbed_or_skip};
use bed_support::{Process, apply_all, delete_all, render_chart, token, token_kubeconfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const T: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(300);
const RUN_LABEL: &str = "test.ballast.dev/run";
/// The kinds of the chart this test applies (no Deployment: the test runs the processes).
const IDENTITY_KINDS: [&str; 7] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

/// One reconciler's identity: its ServiceAccount, kubeconfig file and a client using it.
struct Identity {
    account: String,
    kubeconfig: std::path::PathBuf,
    client: Client,
}

/// The test's namespaces: the release's (ServiceAccounts, Leases, the horizontal and vertical
/// workloads), the one `horizontal.secretNamespaces` names, and the nodes reconciler's.
struct Namespaces {
    release: TestNamespace,
    secrets: TestNamespace,
    nodes: TestNamespace,
}

/// The calls made and their answers, printed at the end.
#[derive(Default)]
struct Ledger {
    lines: Vec<String>,
    allowed: usize,
    denied: usize,
}

impl Ledger {
    fn allowed(&mut self, who: &str, what: &str) {
        self.allowed += 1;
        self.lines.push(format!("allowed  {who:<10} {what}"));
    }

    fn denied(&mut self, who: &str, what: &str, by: &str) {
        self.denied += 1;
        self.lines.push(format!("denied   {who:<10} {what} ({by})"));
    }
}

fn dry_patch() -> PatchParams {
    PatchParams {
        dry_run: true,
        ..Default::default()
    }
}

fn dry_delete() -> DeleteParams {
    DeleteParams {
        dry_run: true,
        ..Default::default()
    }
}

fn dry_post() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

/// Who refused: `RBAC` or the admission policy, from a 403's message.
fn refusal(e: &kube::Error) -> Option<&'static str> {
    match e {
        kube::Error::Api(s) if s.code == 403 && s.message.contains("ValidatingAdmissionPolicy") => {
            Some("admission policy")
        }
        kube::Error::Api(s) if s.code == 403 => Some("RBAC"),
        _ => None,
    }
}

/// `call` must be refused with 403, by the admission policy when `by_policy`, else by RBAC.
async fn expect_denied<T>(
    ledger: &mut Ledger,
    who: &Identity,
    what: &str,
    by_policy: bool,
    call: impl Future<Output = kube::Result<T>>,
) -> Result<()> {
    let want = if by_policy {
        "admission policy"
    } else {
        "RBAC"
    };
    match call.await {
        Err(e) if refusal(&e) == Some(want) => {
            ledger.denied(&who.account, what, want);
            Ok(())
        }
        Err(e) => bail!("{}: {what}: want a 403 from {want}, got {e}", who.account),
        Ok(_) => bail!("{}: {what}: allowed, want a 403 from {want}", who.account),
    }
}

/// `call` must succeed.
async fn expect_allowed<T>(
    ledger: &mut Ledger,
    who: &Identity,
    what: &str,
    call: impl Future<Output = kube::Result<T>>,
) -> Result<()> {
    call.await
        .with_context(|| format!("{}: {what}: refused", who.account))?;
    ledger.allowed(&who.account, what);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_work_under_their_chart_tokens_and_no_further() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    ballast_testbed::crds::apply(
        &bed.client(),
        ballast_api::crds(),
        "ballast-rbac-test",
        Duration::from_secs(30),
    )
    .await?;
    let namespaces = Namespaces {
        release: bed.namespace("rbac").await?,
        secrets: bed.namespace("rbac-secrets").await?,
        nodes: bed.namespace("rbac-nodes").await?,
    };
    let release = namespaces.release.name().to_owned();
    let secret_ns = format!(
        "horizontal.secretNamespaces={{{}}}",
        namespaces.secrets.name()
    );
    let objects: Vec<DynamicObject> = render_chart(
        &release,
        &release,
        &[&secret_ns, "vertical.webhook.enabled=false"],
    )?
    .into_iter()
    .filter(|o| {
        o.types
            .as_ref()
            .is_some_and(|t| IDENTITY_KINDS.contains(&t.kind.as_str()))
    })
    .collect();
    let applied = apply_all(&bed.client(), &objects).await?;
    let result = run(&bed, &namespaces).await;
    cleanup_nodes(&bed.client(), &namespaces.nodes).await;
    delete_all(&bed.client(), &applied).await;
    result?;
    namespaces.nodes.cleanup().await?;
    namespaces.secrets.cleanup().await?;
    namespaces.release.cleanup().await
}

async fn identity(bed: &TestBed, ns: &str, component: &str, dir: &Path) -> Result<Identity> {
    let account = format!("{ns}-ballast-{component}");
    let token = token(&bed.client(), ns, &account).await?;
    let (kubeconfig, client) = token_kubeconfig(bed, dir, component, &token).await?;
    Ok(Identity {
        account,
        kubeconfig,
        client,
    })
}

/// The flags of `ballast controller COMPONENT` in this test, its address flag last (the address
/// itself is added by [`Process::start`]).
fn controller_args(component: &str, namespaces: &Namespaces) -> Result<Vec<String>> {
    let ns = namespaces.release.name();
    let webhook = format!("127.0.0.1:{}", bed_support::free_port()?);
    let own: Vec<String> = match component {
        "horizontal" => vec!["--namespace".into(), ns.into()],
        "vertical" => [
            "--namespace",
            ns,
            "--recommender-interval",
            "5s",
            "--checkpoint-interval",
            "5s",
            // The webhook serves (the updater runs only with it) but is not registered.
            "--webhook-addr",
            &webhook,
            "--updater-interval",
            "2s",
        ]
        .map(String::from)
        .to_vec(),
        _ => {
            let pool = namespaces.nodes.name();
            let selector = format!("{RUN_LABEL}={pool}");
            [
                "--provider",
                "kwok",
                "--catalog",
                "simulations/catalogs/aws-like.yaml",
                "--nodepool-selector",
                &selector,
                "--provision-namespace",
                pool,
                "--disruption-poll",
                "2",
                "--batch-max",
                "3",
            ]
            .map(String::from)
            .to_vec()
        }
    };
    let address = if component == "nodes" {
        "--nodes-health-addr"
    } else {
        "--metrics-addr"
    };
    let mut all = vec!["controller".to_owned(), component.to_owned()];
    all.extend(own);
    all.extend(["--leader-elect", "--leader-election-namespace", ns].map(String::from));
    all.push("--leader-election-id".into());
    all.push(format!("{ns}-ballast-{component}"));
    all.push(address.into());
    Ok(all)
}

/// Starts `ballast controller COMPONENT` as `who`, as the chart runs it (leader election), and
/// waits until it is ready.
async fn start(
    who: &Identity,
    component: &str,
    namespaces: &Namespaces,
    logs: &Path,
) -> Result<Process> {
    let args = controller_args(component, namespaces)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = "info,ballast_controller=debug,kube=warn";
    let mut p = Process::start(component, &args, &who.kubeconfig, log, logs)?;
    p.wait_ready().await?;
    Ok(p)
}

/// Nothing the controllers did was refused (a 403 is logged as a warning or an error).
fn never_refused(processes: &[Process]) -> Result<()> {
    for p in processes {
        let output = p.output().to_lowercase();
        ensure!(
            !output.contains("forbidden"),
            "{} was refused something:\n{}",
            p.name,
            p.tail(40)
        );
    }
    Ok(())
}

async fn run(bed: &TestBed, namespaces: &Namespaces) -> Result<()> {
    let ns = namespaces.release.name();
    let logs = std::env::temp_dir().join(format!("ballast-{ns}"));
    std::fs::create_dir_all(&logs)?;
    let horizontal = identity(bed, ns, "horizontal", &logs).await?;
    let nodes = identity(bed, ns, "nodes", &logs).await?;
    let vertical = identity(bed, ns, "vertical", &logs).await?;
    let mut ledger = Ledger::default();
    let mut processes = Vec::new();
    let result = async {
        processes.push(start(&horizontal, "horizontal", namespaces, &logs).await?);
        horizontal_works(namespaces, &mut ledger, &horizontal).await?;
        vertical_workloads(bed, &namespaces.release).await?;
        processes.push(start(&vertical, "vertical", namespaces, &logs).await?);
        vertical_works(namespaces, &mut ledger, &vertical).await?;
        processes.push(start(&nodes, "nodes", namespaces, &logs).await?);
        nodes_work(namespaces, &mut ledger, &nodes).await?;
        let all = [
            (&horizontal, "horizontal"),
            (&nodes, "nodes"),
            (&vertical, "vertical"),
        ];
        for (who, component) in all {
            leases_held(namespaces, &mut ledger, who, component).await?;
        }
        never_refused(&processes)?;
        horizontal_denied(namespaces, &mut ledger, &horizontal).await?;
        vertical_denied(namespaces, &mut ledger, &vertical).await?;
        the_checks_can_fail(bed, namespaces, &horizontal, &nodes).await
    }
    .await;
    println!("calls under the chart's tokens:");
    for l in &ledger.lines {
        println!("  {l}");
    }
    println!("{} allowed, {} denied", ledger.allowed, ledger.denied);
    if result.is_err() {
        for p in &processes {
            eprintln!("{}", p.tail(40));
        }
    }
    result
}

/// The Lease `who` holds: the chart's leader Role lets it create and renew its own.
async fn leases_held(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
    component: &str,
) -> Result<()> {
    let api = namespaces
        .release
        .api::<k8s_openapi::api::coordination::v1::Lease>();
    let lease = poll_until(&format!("{component} holds its Lease"), T, POLL, || async {
        let l = api.get_opt(&who.account).await?;
        Ok(l.filter(|l| {
            l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(component)
        }))
    })
    .await?;
    ensure!(lease.spec.is_some());
    ledger.allowed(&who.account, "create and renew its Lease (leader election)");
    Ok(())
}

// ---- horizontal ---------------------------------------------------------------------------------

/// A paused autoscaler holding `web` at 3: the scale patch, the status patch and an event.
async fn horizontal_works(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let ns = &namespaces.release;
    ns.create_deployment(TestDeployment::new("web").replicas(1))
        .await?;
    let hza: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1", "kind": "HorizontalAutoscaler",
        "metadata": { "name": "web" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 1, "maxReplicas": 5, "syncPeriodSeconds": 1,
            "paused": true, "pausedReplicas": 3
        }
    }))?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &hza)
        .await?;
    poll_until("web scaled to 3", T, POLL, || async {
        let d = ns.api::<Deployment>().get("web").await?;
        Ok((d.spec.and_then(|s| s.replicas) == Some(3)).then_some(()))
    })
    .await?;
    ledger.allowed(
        &who.account,
        "patch deployments/scale (the controller scaled web to 3)",
    );
    poll_until("web's status written", T, POLL, || async {
        let h = ns.api::<HorizontalAutoscaler>().get("web").await?;
        Ok(h.status.filter(|s| s.desired_replicas == 3).map(|_| ()))
    })
    .await?;
    ledger.allowed(&who.account, "patch horizontalautoscalers/status");
    poll_until("an event of ballast-horizontal", T, POLL, || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await?;
        Ok(events
            .items
            .into_iter()
            .find(|e| e.reporting_controller.as_deref() == Some("ballast-horizontal")))
    })
    .await?;
    ledger.allowed(&who.account, "create events (events.k8s.io)");
    Ok(())
}

async fn horizontal_denied(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let (ns, secrets) = (namespaces.release.name(), namespaces.secrets.name());
    let c = &who.client;
    namespaces
        .secrets
        .api::<Secret>()
        .create(&PostParams::default(), &secret("probe"))
        .await?;
    let secret_api = |n: &str| Api::<Secret>::namespaced(c.clone(), n);
    let what = format!("get Secret {secrets}/probe (horizontal.secretNamespaces)");
    expect_allowed(ledger, who, &what, secret_api(secrets).get("probe")).await?;
    let deployments = Api::<Deployment>::namespaced(c.clone(), ns);
    let scale = json!({ "spec": { "replicas": 3 } });
    let what = "patch deployments/scale web (dry run)";
    expect_allowed(
        ledger,
        who,
        what,
        deployments.patch_scale("web", &dry_patch(), &Patch::Merge(&scale)),
    )
    .await?;
    let what = "delete Deployment web (dry run)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        deployments.delete("web", &dry_delete()),
    )
    .await?;
    let what = "get Secret kube-system/probe";
    expect_denied(
        ledger,
        who,
        what,
        false,
        secret_api("kube-system").get("probe"),
    )
    .await?;
    let what = format!("get Secret {ns}/probe (its own namespace, not listed)");
    expect_denied(ledger, who, &what, false, secret_api(ns).get("probe")).await?;
    let what = format!("list Secrets in {secrets} (get by name only)");
    expect_denied(
        ledger,
        who,
        &what,
        false,
        secret_api(secrets).list(&ListParams::default()),
    )
    .await?;
    let current = deployments.get_scale("web").await?;
    let what = "update (PUT) deployments/scale web (it only patches)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        deployments.replace_scale("web", &dry_post(), &current),
    )
    .await?;
    let hzas = Api::<HorizontalAutoscaler>::namespaced(c.clone(), ns);
    let spec = json!({ "spec": { "maxReplicas": 50 } });
    let what = "patch HorizontalAutoscaler web's spec (status only)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        hzas.patch("web", &dry_patch(), &Patch::Merge(&spec)),
    )
    .await?;
    let mut current = namespaces
        .release
        .api::<HorizontalAutoscaler>()
        .get("web")
        .await?;
    current.metadata.managed_fields = None;
    let what = "update (PUT) horizontalautoscalers/status web (it only patches)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        hzas.replace_status("web", &dry_post(), &current),
    )
    .await?;
    let nodes = Api::<Node>::all(c.clone());
    let what = "list Nodes";
    expect_denied(ledger, who, what, false, nodes.list(&ListParams::default())).await
}

fn secret(name: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            "token".to_owned(),
            "not-a-secret".to_owned(),
        )])),
        ..Default::default()
    }
}

// ---- vertical -----------------------------------------------------------------------------------

/// Deployments `usage` (one pod) and `evict` (two), each pod requesting 100m and using 300m, on the
/// test's (unmanaged) kwok node, their usage served by metrics-server.
async fn vertical_workloads(bed: &TestBed, ns: &TestNamespace) -> Result<()> {
    ns.create_kwok_node(KwokNode::new("plain").cpu("16").memory("64Gi"))
        .await?;
    for (name, replicas) in [("usage", 1), ("evict", 2)] {
        let d = TestDeployment::new(name)
            .replicas(replicas)
            .usage("300m", "400Mi");
        ns.create_deployment(d).await?;
        ns.wait_deployment_ready(name, replicas, T).await?;
    }
    let timeout = bed.metric_resolution() * 6;
    for pod in ns.pods("app in (usage, evict)").await? {
        let name = pod.name_any();
        wait_for_pod_metrics(&bed.client(), ns.name(), &name, "300m", "400Mi", timeout).await?;
    }
    Ok(())
}

async fn create_va(ns: &TestNamespace, name: &str, mode: &str) -> Result<()> {
    let va: VerticalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1", "kind": "VerticalAutoscaler",
        "metadata": { "name": name },
        "spec": {
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "updatePolicy": { "updateMode": mode }
        }
    }))?;
    ns.api::<VerticalAutoscaler>()
        .create(&PostParams::default(), &va)
        .await?;
    Ok(())
}

/// `usage` (`Off`) gets a recommendation and checkpoints; a pod of `evict` (`Recreate`) is evicted
/// by the updater through the Eviction API.
async fn vertical_works(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let ns = &namespaces.release;
    create_va(ns, "usage", "Off").await?;
    create_va(ns, "evict", "Recreate").await?;
    poll_until("usage's recommendation", T, POLL, || async {
        let va = ns.api::<VerticalAutoscaler>().get("usage").await?;
        Ok(va.status.and_then(|s| s.recommendation).map(|_| ()))
    })
    .await?;
    ledger.allowed(
        &who.account,
        "patch verticalautoscalers/status (a recommendation)",
    );
    poll_until("usage's checkpoints", T, POLL, || async {
        let list = ns
            .api::<VerticalAutoscalerCheckpoint>()
            .list(&ListParams::default())
            .await?;
        Ok((!list.items.is_empty()).then_some(()))
    })
    .await?;
    ledger.allowed(
        &who.account,
        "create and patch verticalautoscalercheckpoints (apply)",
    );
    let evicted = poll_until("an Evicted event of ballast-vertical", T, POLL, || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await?;
        Ok(events.items.into_iter().find(|e| {
            e.reporting_controller.as_deref() == Some("ballast-vertical")
                && e.reason.as_deref() == Some("Evicted")
        }))
    })
    .await?;
    // No more evictions: the replacement pods keep 100m (no webhook is registered).
    ns.api::<VerticalAutoscaler>()
        .delete("evict", &DeleteParams::default())
        .await?;
    let note = evicted.note.unwrap_or_default();
    ledger.allowed(
        &who.account,
        &format!("create pods/eviction (the updater: {note})"),
    );
    Ok(())
}

async fn vertical_denied(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let ns = namespaces.release.name();
    let c = &who.client;
    let pod = namespaces
        .release
        .pods("app=usage")
        .await?
        .into_iter()
        .next()
        .context("a usage pod")?
        .name_any();
    let pods = Api::<Pod>::namespaced(c.clone(), ns);
    let what = format!("delete Pod {pod} (it evicts, never deletes)");
    expect_denied(ledger, who, &what, false, pods.delete(&pod, &dry_delete())).await?;
    let label = json!({ "metadata": { "labels": { "probe": "x" } } });
    let what = format!("patch Pod {pod} (resize subresource only)");
    expect_denied(
        ledger,
        who,
        &what,
        false,
        pods.patch(&pod, &dry_patch(), &Patch::Merge(&label)),
    )
    .await?;
    let checkpoints = Api::<VerticalAutoscalerCheckpoint>::namespaced(c.clone(), ns);
    let what = "delete VerticalAutoscalerCheckpoints (never deleted by it)";
    let (dp, lp) = (dry_delete(), ListParams::default());
    let all = checkpoints.delete_collection(&dp, &lp);
    expect_denied(ledger, who, what, false, all).await?;
    let deployments = Api::<Deployment>::namespaced(c.clone(), ns);
    let scale = json!({ "spec": { "replicas": 3 } });
    let what = "patch deployments/scale usage (reads scale only)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        deployments.patch_scale("usage", &dry_patch(), &Patch::Merge(&scale)),
    )
    .await?;
    let what = "get Secret kube-system/probe";
    let system = Api::<Secret>::namespaced(c.clone(), "kube-system");
    let secret = system.get("probe");
    expect_denied(ledger, who, what, false, secret).await?;
    let vas = Api::<VerticalAutoscaler>::namespaced(c.clone(), ns);
    let spec = json!({ "spec": { "updatePolicy": { "updateMode": "Recreate" } } });
    let what = "patch VerticalAutoscaler usage's spec (status only)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        vas.patch("usage", &dry_patch(), &Patch::Merge(&spec)),
    )
    .await
}

// ---- nodes --------------------------------------------------------------------------------------

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
async fn pool_state(client: &Client, pool: &str) -> Result<(Vec<NodeClaim>, Vec<Node>)> {
    let lp = ListParams::default().labels(&format!("{}={pool}", labels::NODEPOOL));
    let claims = Api::<NodeClaim>::all(client.clone()).list(&lp).await?.items;
    let nodes = Api::<Node>::all(client.clone()).list(&lp).await?.items;
    Ok((claims, nodes))
}

/// The pod of `big` running on a node of the pool: that node's name.
async fn running_on_pool(ns: &TestNamespace, pool: &str) -> Result<(String, String)> {
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

async fn nodes_work(namespaces: &Namespaces, ledger: &mut Ledger, who: &Identity) -> Result<()> {
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
async fn nodes_denied(
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
async fn pod_deletes(namespaces: &Namespaces, ledger: &mut Ledger, who: &Identity) -> Result<()> {
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

// ---- the checks can fail -------------------------------------------------------------------------

/// With a broader role a denial check fails; without the policy's binding the unmanaged node's
/// patch is admitted.
async fn the_checks_can_fail(
    bed: &TestBed,
    namespaces: &Namespaces,
    horizontal: &Identity,
    nodes: &Identity,
) -> Result<()> {
    let admin = bed.client();
    let ns = namespaces.release.name();
    let name = format!("{ns}-broader");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "kind": "ServiceAccount", "name": horizontal.account, "namespace": ns }]
    }))?;
    let bindings = Api::<ClusterRoleBinding>::all(admin.clone());
    bindings.create(&PostParams::default(), &binding).await?;
    let deployments = Api::<Deployment>::namespaced(horizontal.client.clone(), ns);
    let tripped = poll_until(
        "a denial check trips under cluster-admin",
        T,
        POLL,
        || async {
            let mut scratch = Ledger::default();
            let dp = dry_delete();
            let delete = deployments.delete("web", &dp);
            let check = expect_denied(&mut scratch, horizontal, "delete web", false, delete);
            Ok(check.await.err())
        },
    )
    .await;
    let _ = bindings.delete(&name, &DeleteParams::default()).await;
    println!("with cluster-admin bound: {:#}", tripped?);
    let policy = format!("{ns}-ballast-nodes");
    let policy_bindings: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &kube::api::ApiResource::erase::<
            k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        >(&()),
    );
    policy_bindings
        .delete(&policy, &DeleteParams::default())
        .await?;
    let plain = namespaces.release.node_name("plain");
    let node_api = Api::<Node>::all(nodes.client.clone());
    let mark = json!({ "metadata": { "annotations": { "test.ballast.dev/probe": "x" } } });
    poll_until(
        "the unmanaged node's patch admitted without the policy",
        T,
        POLL,
        || async {
            Ok(node_api
                .patch(&plain, &dry_patch(), &Patch::Merge(&mark))
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    println!("without the policy's binding: the patch of unmanaged node {plain} is admitted");
    Ok(())
}

/// Removes the nodes test's pool, class and whatever nodes are left (admin).
async fn cleanup_nodes(client: &Client, ns: &TestNamespace) {
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
