//! What the process-level bed tests share (`leader.rs`, `metrics.rs`): a `ballast controller`
//! process ([`Replica`]) and its `/metrics`, the CRDs, and a kwok NodePool of the test's own
//! with its cleanup.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use ballast_api::nodes::{KwokNodeClass, NodeClaim, NodePool, labels};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde::Deserialize as _;
use serde_json::json;

/// Poll period of the waits.
pub const FAST: Duration = Duration::from_millis(100);

/// One `ballast controller horizontal --leader-elect` process.
pub struct Replica {
    pub name: &'static str,
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Replica {
    /// `ballast controller horizontal` restricted to `ns`, its Lease in `ns`.
    pub fn start(bed: &TestBed, ns: &str, name: &'static str, logs: &Path) -> Result<Replica> {
        let args = [
            "controller",
            "horizontal",
            "--namespace",
            ns,
            "--metrics-addr",
        ];
        Replica::spawn(bed, ns, name, logs, &args)
    }

    /// `ballast ARGS... ADDR --leader-elect --leader-election-namespace ns`, ADDR a free port.
    pub fn spawn(
        bed: &TestBed,
        ns: &str,
        name: &'static str,
        logs: &Path,
        args: &[&str],
    ) -> Result<Replica> {
        let leader = ["--leader-elect", "--leader-election-namespace", ns];
        Replica::launch(bed, name, logs, args, &leader)
    }

    /// `ballast ARGS... ADDR` without leader election (the process always leads), ADDR a free
    /// port.
    pub fn spawn_alone(
        bed: &TestBed,
        name: &'static str,
        logs: &Path,
        args: &[&str],
    ) -> Result<Replica> {
        Replica::launch(bed, name, logs, args, &[])
    }

    fn launch(
        bed: &TestBed,
        name: &'static str,
        logs: &Path,
        args: &[&str],
        after: &[&str],
    ) -> Result<Replica> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = logs.join(format!("{name}.log"));
        let kubeconfig = bed
            .env()
            .get("BALLAST_KUBECONFIG")
            .context("BALLAST_KUBECONFIG")?;
        let child = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(args)
            .arg(format!("127.0.0.1:{port}"))
            .args(after)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info,ballast_controller=debug,kube=warn")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting ballast")?;
        Ok(Replica {
            name,
            child,
            port,
            log,
        })
    }

    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let r = ballast_testbed::http_client().get(&url).send().await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    pub async fn wait_ready(&self) -> Result<()> {
        poll_until(
            &format!("{} /readyz", self.name),
            Duration::from_secs(30),
            FAST,
            || async { Ok(matches!(self.get("/readyz").await, Ok((200, _))).then_some(())) },
        )
        .await
        .with_context(|| self.tail())
    }

    /// The sum of every sample of `metric` in `/metrics`.
    pub async fn counter(&self, metric: &str) -> Result<f64> {
        let (_, text) = self.get("/metrics").await?;
        Ok(sum(&text, metric))
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// CPU time the process used so far (user + system, from `/proc/PID/stat`).
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // The fields after the command name (in parentheses, which may hold spaces).
        let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks: f64 = fields
            .get(11..13)
            .context("utime and stime in /proc/PID/stat")?
            .iter()
            .map(|f| f.parse::<f64>())
            .sum::<Result<f64, _>>()?;
        Ok(ticks / 100.0)
    }

    pub fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill -{signal} {}", self.name);
        Ok(())
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > timeout {
                bail!(
                    "{} still runs after {timeout:?}\n{}",
                    self.name,
                    self.tail()
                );
            }
            tokio::time::sleep(FAST).await;
        }
    }

    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!("--- {} log ---\n{}", self.name, lines[from..].join("\n"))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of every sample of `metric` in a `/metrics` text.
pub fn sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

/// Installs the `HorizontalAutoscaler` CRD.
pub async fn install_horizontal_crd(client: &Client) -> Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../crds/horizontalautoscalers.autoscaling.ballast.dev.yaml");
    let text = std::fs::read_to_string(&path)?;
    let mut crds = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if !value.is_null() {
            crds.push(serde_yaml::from_value::<CustomResourceDefinition>(value)?);
        }
    }
    ballast_testbed::crds::apply(client, crds, "ballast-leader-test", Duration::from_secs(30)).await
}

/// Installs the `nodes.ballast.dev` CRDs.
pub async fn install_node_crds(client: &Client) -> Result<()> {
    let crds: Vec<CustomResourceDefinition> = ballast_api::crds()
        .into_iter()
        .filter(|c| c.spec.group == "nodes.ballast.dev")
        .collect();
    ballast_testbed::crds::apply(client, crds, "ballast-leader-test", Duration::from_secs(30)).await
}

/// The label that selects a test's own NodePool (`--nodepool-selector`).
pub const RUN_LABEL: &str = "test.ballast.dev/run";

/// A cluster-scoped API.
pub fn nodes_api<K>(client: &Client) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>,
    K::DynamicType: Default,
{
    Api::all(client.clone())
}

/// The run's NodeClaims (of its one NodePool), by name.
pub async fn claims(client: &Client, ns: &str) -> Result<Vec<NodeClaim>> {
    let lp = ListParams::default().labels(&format!("{}={ns}", labels::NODEPOOL));
    Ok(nodes_api::<NodeClaim>(client).list(&lp).await?.items)
}

/// Deletes the pool (its NodeClaims go with it, drained by the live leader), then the class;
/// finalizers are removed from whatever is left after a minute.
pub async fn cleanup_nodes(client: &Client, ns: &TestNamespace) {
    let dp = kube::api::DeleteParams::background();
    let _ = ns
        .api::<Deployment>()
        .delete_collection(&dp, &ListParams::default())
        .await;
    let _ = nodes_api::<NodePool>(client).delete(ns.name(), &dp).await;
    for c in claims(client, ns.name()).await.unwrap_or_default() {
        let _ = nodes_api::<NodeClaim>(client)
            .delete(&c.metadata.name.unwrap_or_default(), &dp)
            .await;
    }
    let gone = poll_until(
        "the run's NodeClaims to go",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async { Ok(claims(client, ns.name()).await?.is_empty().then_some(())) },
    )
    .await;
    if gone.is_err() {
        let patch = json!({ "metadata": { "finalizers": null } });
        for c in claims(client, ns.name()).await.unwrap_or_default() {
            let _ = nodes_api::<NodeClaim>(client)
                .patch(
                    &c.metadata.name.unwrap_or_default(),
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await;
        }
    }
    let lp = ListParams::default().labels(&format!("{}={}", labels::NODEPOOL, ns.name()));
    for n in nodes_api::<Node>(client)
        .list(&lp)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let name = n.metadata.name.unwrap_or_default();
        let patch = json!({ "metadata": { "finalizers": null } });
        let _ = nodes_api::<Node>(client)
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await;
        let _ = nodes_api::<Node>(client).delete(&name, &dp).await;
    }
    let _ = nodes_api::<KwokNodeClass>(client)
        .delete(ns.name(), &dp)
        .await;
}

/// A KwokNodeClass and a NodePool named `name`, labelled `RUN_LABEL=name`, of on-demand
/// c6i.large nodes (2 CPU: one 1500m pod per node) tainted and labelled for `name`'s pods only.
pub async fn create_kwok_pool(client: &Client, name: &str) -> Result<()> {
    let class: KwokNodeClass = serde_json::from_value(json!({
        "apiVersion": "nodes.ballast.dev/v1", "kind": "KwokNodeClass",
        "metadata": { "name": name, "labels": { RUN_LABEL: name } }, "spec": {},
    }))?;
    nodes_api::<KwokNodeClass>(client)
        .create(&PostParams::default(), &class)
        .await?;
    // One c6i.large (2 CPU) per 1500m pod: each replica of the Deployment needs its own node.
    let pool: NodePool = serde_json::from_value(json!({
        "apiVersion": "nodes.ballast.dev/v1", "kind": "NodePool",
        "metadata": { "name": name, "labels": { RUN_LABEL: name } },
        "spec": { "template": {
            "metadata": { "labels": { ballast_testbed::ISOLATION_KEY: name } },
            "spec": {
                "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": name },
                "requirements": [
                    { "key": labels::CAPACITY_TYPE, "operator": "In", "values": ["on-demand"] },
                    { "key": labels::INSTANCE_TYPE, "operator": "In", "values": ["c6i.large"] }
                ],
                "taints": [{ "key": ballast_testbed::ISOLATION_KEY, "value": name, "effect": "NoSchedule" }]
            }
        } }
    }))?;
    nodes_api::<NodePool>(client)
        .create(&PostParams::default(), &pool)
        .await?;
    Ok(())
}
