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
//!   its admission webhook, registered from the chart's MutatingWebhookConfiguration (pointed at
//!   the process on 127.0.0.1), sizes a pod the admin creates from the recommendation it reads
//!   under the same token;
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

#[path = "../bed_support/mod.rs"]
mod bed_support;
mod calls;
mod horizontal;
mod nodes;
mod vertical;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestNamespace, testbed_or_skip};
use bed_support::{Process, apply_all, delete_all, render_chart, token, token_kubeconfig};
use calls::{Ledger, dry_delete, dry_patch, expect_denied};
use horizontal::{horizontal_denied, horizontal_works};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{DeleteParams, DynamicObject, Patch, PostParams};
use kube::{Api, Client};
use nodes::{cleanup_nodes, nodes_work};
use serde_json::json;
use vertical::{vertical_denied, vertical_workloads, vertical_works};

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

/// The kind of the chart's webhook configuration, registered by [`vertical::serve_webhook`].
const WEBHOOK_KIND: &str = "MutatingWebhookConfiguration";

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
    let (objects, webhook): (Vec<DynamicObject>, Vec<DynamicObject>) =
        render_chart(&release, &release, &[&secret_ns])?
            .into_iter()
            .filter(|o| {
                o.types.as_ref().is_some_and(|t| {
                    IDENTITY_KINDS.contains(&t.kind.as_str()) || t.kind == WEBHOOK_KIND
                })
            })
            .partition(|o| o.types.as_ref().is_some_and(|t| t.kind != WEBHOOK_KIND));
    let webhook = webhook
        .into_iter()
        .next()
        .context("the chart renders no MutatingWebhookConfiguration")?;
    let applied = apply_all(&bed.client(), &objects).await?;
    let result = run(
        &bed,
        &namespaces,
        serde_json::from_value(serde_json::to_value(webhook)?)?,
    )
    .await;
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
fn controller_args(
    component: &str,
    namespaces: &Namespaces,
    webhook: &WebhookServing,
) -> Result<Vec<String>> {
    let ns = namespaces.release.name();
    let addr = format!("127.0.0.1:{}", webhook.port);
    let cert_dir = webhook.cert_dir.display().to_string();
    let own: Vec<String> = match component {
        "horizontal" => vec!["--namespace".into(), ns.into()],
        "vertical" => [
            "--namespace",
            ns,
            "--recommender-interval",
            "5s",
            "--checkpoint-interval",
            "5s",
            // The webhook, with its certificate from a folder as the chart mounts it.
            "--webhook-addr",
            &addr,
            "--webhook-cert-dir",
            &cert_dir,
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
    webhook: &WebhookServing,
    logs: &Path,
) -> Result<Process> {
    let args = controller_args(component, namespaces, webhook)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = "info,ballast_controller=debug,kube=warn";
    let mut p = Process::start(component, &args, &who.kubeconfig, log, logs)?;
    p.wait_ready().await?;
    Ok(p)
}

/// Where the vertical process serves its webhook (a certificate for 127.0.0.1 in a folder, as
/// the chart mounts its Secret) and the chart's configuration that registers it.
struct WebhookServing {
    port: u16,
    cert_dir: std::path::PathBuf,
    ca_pem: String,
    configuration: MutatingWebhookConfiguration,
}

impl WebhookServing {
    fn new(logs: &Path, configuration: MutatingWebhookConfiguration) -> Result<WebhookServing> {
        let certificate = ballast_controller::vertical::webhook::Certificate::generate(&[])?;
        let cert_dir = logs.join("webhook");
        std::fs::create_dir_all(&cert_dir)?;
        std::fs::write(cert_dir.join("tls.crt"), &certificate.cert_pem)?;
        std::fs::write(cert_dir.join("tls.key"), &certificate.key_pem)?;
        std::fs::write(cert_dir.join("ca.crt"), &certificate.ca_pem)?;
        Ok(WebhookServing {
            port: bed_support::free_port()?,
            cert_dir,
            ca_pem: certificate.ca_pem,
            configuration,
        })
    }

    /// Registers the chart's configuration, pointed at the process on 127.0.0.1 and scoped to
    /// the release's namespace (the chart leaves its own namespace out; the test's workloads are
    /// there, and the bed is shared); returns its name.
    async fn register(&self, bed: &TestBed, ns: &str) -> Result<String> {
        let path = ballast_controller::vertical::webhook::PATH;
        let config = self.configuration.clone();
        ballast_testbed::webhook::register(&bed.client(), config, self.port, path, &self.ca_pem, ns)
            .await
    }
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

async fn run(
    bed: &TestBed,
    namespaces: &Namespaces,
    configuration: MutatingWebhookConfiguration,
) -> Result<()> {
    let ns = namespaces.release.name();
    let logs = std::env::temp_dir().join(format!("ballast-{ns}"));
    std::fs::create_dir_all(&logs)?;
    let webhook = WebhookServing::new(&logs, configuration)?;
    let horizontal = identity(bed, ns, "horizontal", &logs).await?;
    let nodes = identity(bed, ns, "nodes", &logs).await?;
    let vertical = identity(bed, ns, "vertical", &logs).await?;
    let mut ledger = Ledger::default();
    let mut processes = Vec::new();
    let mut registered = None;
    let result = async {
        processes.push(start(&horizontal, "horizontal", namespaces, &webhook, &logs).await?);
        horizontal_works(namespaces, &mut ledger, &horizontal).await?;
        vertical_workloads(bed, &namespaces.release).await?;
        processes.push(start(&vertical, "vertical", namespaces, &webhook, &logs).await?);
        registered = Some(webhook.register(bed, ns).await?);
        vertical_works(namespaces, &mut ledger, &vertical).await?;
        processes.push(start(&nodes, "nodes", namespaces, &webhook, &logs).await?);
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
    if let Some(name) = registered {
        ballast_testbed::webhook::unregister(&bed.client(), &name).await;
    }
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
