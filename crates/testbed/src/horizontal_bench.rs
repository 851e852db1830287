//! `ballast-bench horizontal`: the horizontal reconciler against a live cluster (the test bed),
//! keeping N HorizontalAutoscalers on their sync period, with the controller's CPU and memory.
//! A test tool, outside the `ballast` binary: it runs that binary as the controller.
//!
//! 1. installs the HorizontalAutoscaler CRD (server-side apply) and makes a namespace
//!    `ballast-bench-<id>` with kwok nodes (annotated `kwok.x-k8s.io/node=fake`, tainted for the
//!    bench only);
//! 2. creates N Deployments of one kwok pod each and N HorizontalAutoscalers on them, each with
//!    one Prometheus metric (default `sum(up{job="prometheus"})`, target AverageValue 1: the
//!    steady state, no rescale) and `syncPeriodSeconds` (default 15);
//! 3. starts `ballast controller horizontal --namespace ...` as a child process (`--ballast`,
//!    by default the `ballast` binary next to this one),
//!    waits until every object has a status (the first full sync), then for `--duration`
//!    samples the child's CPU time and RSS from /proc and its /metrics (reconciles, status
//!    patches, sync delay, reconcile time);
//! 4. stops the child with SIGTERM (graceful shutdown, timed) and deletes what it made.
//!
//! Only loopback API servers and Prometheus URLs are accepted (the test bed's network rule),
//! unless `--allow-remote`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use clap::{Args, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use serde::Serialize;
use serde_json::json;

/// A report's format other than the terminal table.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchTarget {
    Horizontal,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchTargetKind {
    Deployment,
    Custom,
}

/// The custom resource `--target custom` scales: replicas in spec and status, a selector in status.
const CUSTOM_GROUP: &str = "bench.ballast.dev";

fn custom_target_crd() -> Result<CustomResourceDefinition> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("benchtargets.{CUSTOM_GROUP}") },
        "spec": {
            "group": CUSTOM_GROUP, "scope": "Namespaced",
            "names": { "plural": "benchtargets", "singular": "benchtarget", "kind": "BenchTarget" },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "properties": {
                    "spec": { "type": "object", "properties": { "replicas": { "type": "integer" } } },
                    "status": { "type": "object", "properties": {
                        "replicas": { "type": "integer" }, "selector": { "type": "string" } } }
                } } },
                "subresources": { "status": {}, "scale": {
                    "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.selector" } }
            }]
        }
    }))?)
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub what: BenchTarget,
    /// HorizontalAutoscalers (and Deployments of one pod) to create.
    #[arg(long, default_value_t = 2000)]
    pub objects: usize,
    /// `syncPeriodSeconds` of every object.
    #[arg(long, default_value_t = 15)]
    pub period: i32,
    /// Seconds measured after the first full sync.
    #[arg(long, default_value_t = 120)]
    pub duration: u64,
    /// Prometheus URL the objects' metric is read from (default: $BALLAST_PROMETHEUS_URL).
    #[arg(long)]
    pub prometheus_url: Option<String>,
    /// PromQL of every object (AverageValue target 1 per replica).
    #[arg(long, default_value = "sum(up{job=\"prometheus\"})")]
    pub query: String,
    /// Pods per kwok node.
    #[arg(long, default_value_t = 250)]
    pub pods_per_node: usize,
    /// Longest wait for the pods to run and for the first full sync, seconds.
    #[arg(long, default_value_t = 900)]
    pub setup_timeout: u64,
    /// Controller flags: reconciles at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u16,
    /// Controller flags: metric reads in flight at once.
    #[arg(long, default_value_t = 64)]
    pub max_concurrent_reads: usize,
    /// Controller flags: threads of its async runtime.
    #[arg(long, default_value_t = 1)]
    pub worker_threads: usize,
    /// Leave the namespace and nodes in place.
    #[arg(long)]
    pub keep: bool,
    /// Accept a non-loopback API server or Prometheus.
    #[arg(long)]
    pub allow_remote: bool,
    /// What the autoscalers scale: Deployments of one kwok pod each, or objects of a custom
    /// resource with a `scale` subresource and no pods (the controller's own cost, without making
    /// the test bed run thousands of pods first).
    #[arg(long, value_enum, default_value_t = BenchTargetKind::Deployment)]
    pub target: BenchTargetKind,
    /// Print the report as JSON (or YAML).
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Format>,
    /// The `ballast` binary run as the controller (default: the one next to this program, as
    /// `cargo build -p ballast` leaves it).
    #[arg(long)]
    pub ballast: Option<std::path::PathBuf>,
}

/// The `ballast` binary the bench runs as the controller.
fn ballast_binary(args: &BenchArgs) -> Result<std::path::PathBuf> {
    if let Some(path) = &args.ballast {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the bench's own path has no folder")?;
    let path = dir.join("ballast");
    ensure!(
        path.exists(),
        "no ballast binary at {} (build it with `cargo build --release -p ballast`, or pass --ballast)",
        path.display()
    );
    Ok(path)
}

/// What a run measured.
#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub objects: usize,
    /// `Deployment` or `BenchTarget` (custom resource, no pods).
    pub target: String,
    pub pods: usize,
    pub period_seconds: i32,
    pub setup_seconds: f64,
    pub first_full_sync_seconds: f64,
    pub measured_seconds: f64,
    /// Decisions made (reconciles that ran the core) per second, and what the period asks for.
    pub decisions_per_second: f64,
    pub expected_per_second: f64,
    pub decisions_failed: f64,
    pub controller_errors: f64,
    pub skipped_wakeups_per_second: f64,
    pub status_patches_per_second: f64,
    /// Decisions whose status was left unwritten because only time moved.
    pub status_writes_skipped_per_second: f64,
    pub rescales: f64,
    /// How late periodic syncs ran past their due time.
    pub sync_delay_mean_seconds: f64,
    pub sync_delay_p99_seconds: f64,
    pub reconcile_mean_seconds: f64,
    pub reconcile_p99_seconds: f64,
    /// Per step of a reconcile: (mean, p99) seconds.
    pub steps: BTreeMap<String, (f64, f64)>,
    /// Controller process: mean CPU over the window (cores), RSS at the end and at most.
    pub cpu_cores: f64,
    pub rss_mib: f64,
    pub rss_max_mib: f64,
    pub load_average: String,
    pub graceful_shutdown_seconds: f64,
}

fn loopback(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

fn suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{:x}", (n as u64 ^ std::process::id() as u64) & 0xff_ffff)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// CPU seconds (user + system) and RSS bytes of a process, from /proc.
fn proc_sample(pid: u32, ticks: f64) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after the command: state(0) ... utime(11) stime(12)
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((cpu, rss_kib * 1024))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn sum(m: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// (mean, p99) of a histogram between two scrapes; `labels` selects one series (`step="scale"`).
fn histogram(
    a: &BTreeMap<String, f64>,
    b: &BTreeMap<String, f64>,
    name: &str,
    labels: &str,
) -> (f64, f64) {
    let d = |k: String| b.get(&k).copied().unwrap_or(0.0) - a.get(&k).copied().unwrap_or(0.0);
    // Buckets read `NAME_bucket{le="0.5",step="scale"}` (le first).
    let sel = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let bucket_prefix = format!("{name}_bucket{{");
    let count = d(format!("{name}_count{sel}"));
    if count <= 0.0 {
        return (0.0, 0.0);
    }
    let mean = d(format!("{name}_sum{sel}")) / count;
    let mut buckets: Vec<(f64, f64)> = b
        .keys()
        .filter(|k| k.starts_with(&bucket_prefix) && (labels.is_empty() || k.contains(labels)))
        .filter_map(|k| {
            let le = k.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, d(k.clone())))
        })
        .collect();
    buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
    let p99 = buckets
        .iter()
        .find(|(_, c)| *c >= 0.99 * count)
        .map_or(f64::NAN, |(le, _)| *le);
    (mean, p99)
}

async fn scrape(http: &reqwest::Client, url: &str) -> Result<BTreeMap<String, f64>> {
    let text = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(parse_metrics(&text))
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn progress(msg: impl AsRef<str>) {
    eprintln!(
        "[bench {:>7.1}s] {}",
        START.get_or_init(Instant::now).elapsed().as_secs_f64(),
        msg.as_ref()
    );
}

struct Cleanup {
    client: Client,
    namespace: String,
    nodes: Vec<String>,
    child: Option<Child>,
    keep: bool,
}

impl Cleanup {
    async fn run(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.keep {
            progress(format!(
                "kept namespace {} and {} node(s)",
                self.namespace,
                self.nodes.len()
            ));
            return;
        }
        progress(format!(
            "deleting namespace {} and {} node(s)",
            self.namespace,
            self.nodes.len()
        ));
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::background())
            .await;
        // kwok finishes pod deletion only while the nodes exist.
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            match pods.list_metadata(&ListParams::default().limit(1)).await {
                Ok(l) if !l.items.is_empty() => tokio::time::sleep(Duration::from_secs(2)).await,
                _ => break,
            }
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        for n in &self.nodes {
            let _ = nodes.delete(n, &DeleteParams::background()).await;
        }
    }
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    START.get_or_init(Instant::now);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let config = kube::Config::infer().await.context("loading the kubeconfig")?;
        let server = config.cluster_url.to_string();
        ensure!(args.allow_remote || loopback(&server), "refusing the non-loopback API server {server} (pass --allow-remote)");
        let prometheus = args
            .prometheus_url
            .clone()
            .or_else(|| std::env::var("BALLAST_PROMETHEUS_URL").ok())
            .context("no Prometheus: pass --prometheus-url or set BALLAST_PROMETHEUS_URL (tests/testbed.sh up prometheus)")?;
        ensure!(args.allow_remote || loopback(&prometheus), "refusing the non-loopback Prometheus {prometheus}");
        let client = Client::try_from(config)?;
        let id = suffix();
        let namespace = format!("ballast-bench-{id}");
        let mut cleanup = Cleanup { client: client.clone(), namespace: namespace.clone(), nodes: Vec::new(), child: None, keep: args.keep };
        let result = bench(args, &client, &prometheus, &id, &mut cleanup).await;
        cleanup.run().await;
        let report = result?;
        match args.output {
            Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&report)?),
            Some(Format::Yaml) => print!("{}", serde_yaml::to_string(&report)?),
            None => print_report(&report),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_report(r: &Report) {
    println!(
        "horizontal reconciler: {} objects on {} targets ({} pods), syncPeriodSeconds {}",
        r.objects, r.target, r.pods, r.period_seconds
    );
    println!(
        "  setup (objects created, pods running)   {:>9.1} s",
        r.setup_seconds
    );
    println!(
        "  first full sync after controller start  {:>9.1} s",
        r.first_full_sync_seconds
    );
    println!(
        "  measured window                         {:>9.1} s",
        r.measured_seconds
    );
    println!(
        "  decisions/s (expected objects/period)   {:>9.1} ({:.1})",
        r.decisions_per_second, r.expected_per_second
    );
    println!(
        "  failed decisions / controller errors    {:>9} / {}",
        r.decisions_failed, r.controller_errors
    );
    println!(
        "  status patches/s / writes skipped/s     {:>9.1} / {:.1}",
        r.status_patches_per_second, r.status_writes_skipped_per_second
    );
    println!(
        "  skipped wake-ups/s (own status writes)  {:>9.1}",
        r.skipped_wakeups_per_second
    );
    println!(
        "  rescales                                {:>9}",
        r.rescales
    );
    println!(
        "  sync delay past due: mean / p99         {:>9.3} / {:.3} s",
        r.sync_delay_mean_seconds, r.sync_delay_p99_seconds
    );
    println!(
        "  reconcile time: mean / p99              {:>9.3} / {:.3} s",
        r.reconcile_mean_seconds, r.reconcile_p99_seconds
    );
    for (step, (mean, p99)) in &r.steps {
        println!("    step {step:<8} mean / p99               {mean:>9.3} / {p99:.3} s");
    }
    println!(
        "  controller CPU (mean over the window)   {:>9.3} cores",
        r.cpu_cores
    );
    println!(
        "  controller RSS: end / max               {:>9.1} / {:.1} MiB",
        r.rss_mib, r.rss_max_mib
    );
    println!(
        "  graceful shutdown (SIGTERM → exit)      {:>9.2} s",
        r.graceful_shutdown_seconds
    );
    println!(
        "  load average during the window          {:>9}",
        r.load_average
    );
}

/// The taint (and node label) that keeps a run's pods on its own kwok nodes.
const TAINT_KEY: &str = "bench.ballast.dev/run";

async fn bench(
    args: &BenchArgs,
    client: &Client,
    prometheus: &str,
    id: &str,
    cleanup: &mut Cleanup,
) -> Result<Report> {
    ensure!(
        args.objects > 0 && args.period >= 1 && args.duration >= 1,
        "objects, period and duration must be positive"
    );
    let setup_started = Instant::now();
    let setup_deadline = setup_started + Duration::from_secs(args.setup_timeout);
    let custom = args.target == BenchTargetKind::Custom;
    install_crds(client, custom).await?;
    let node_count = namespace_and_nodes(args, client, id, cleanup).await?;
    let ns = cleanup.namespace.clone();
    progress(format!(
        "namespace {ns}, {node_count} kwok node(s); creating {} Deployments and HorizontalAutoscalers",
        args.objects
    ));
    create_objects(args, client, &ns, id).await?;
    progress("objects created; waiting for the pods to run");
    let running = wait_for_pods(args, client, &ns, setup_deadline).await?;
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    progress(format!("{running} pods running; starting the controller"));
    let (pid, metrics_url, log) = start_controller(args, prometheus, id, cleanup)?;
    let controller_started = Instant::now();
    let hzas: Api<HorizontalAutoscaler> = Api::namespaced(client.clone(), &ns);
    wait_first_sync(args, &hzas, cleanup, &log, setup_deadline).await?;
    let first_full_sync_seconds = controller_started.elapsed().as_secs_f64();
    progress(format!(
        "first full sync in {first_full_sync_seconds:.1}s; measuring for {}s",
        args.duration
    ));
    // Let the first wave (all objects due at once) spread out over one period before measuring.
    tokio::time::sleep(Duration::from_secs(args.period as u64)).await;
    let window = measure(args, pid, &metrics_url).await?;
    let graceful = stop_controller(pid, cleanup).await?;
    Ok(report(
        args,
        Setup {
            pods: running,
            setup_seconds,
            first_full_sync_seconds,
            graceful_shutdown_seconds: graceful,
        },
        window,
    ))
}

/// What the set-up phase measured.
struct Setup {
    pods: usize,
    setup_seconds: f64,
    first_full_sync_seconds: f64,
    graceful_shutdown_seconds: f64,
}

/// The measured window: the controller's metrics before and after, its CPU and memory.
struct Window {
    m0: BTreeMap<String, f64>,
    m1: BTreeMap<String, f64>,
    seconds: f64,
    cpu_seconds: f64,
    rss: u64,
    rss_max: u64,
    load_average: String,
}

/// Installs the HorizontalAutoscaler CRD (and the custom target's) and waits until established.
async fn install_crds(client: &Client, custom: bool) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut to_install = vec![HorizontalAutoscaler::crd()];
    if custom {
        to_install.push(custom_target_crd()?);
    }
    for crd in to_install {
        let crd_name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &crd_name,
            &PatchParams::apply("ballast-bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("installing the CRD {crd_name}"))?;
        for _ in 0..60 {
            let c = crds.get(&crd_name).await?;
            if c.status.and_then(|s| s.conditions).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// The run's namespace and, for Deployment targets, tainted kwok nodes only its pods tolerate;
/// returns the node count.
async fn namespace_and_nodes(
    args: &BenchArgs,
    client: &Client,
    id: &str,
    cleanup: &mut Cleanup,
) -> Result<usize> {
    let custom = args.target == BenchTargetKind::Custom;
    let ns = cleanup.namespace.clone();
    let taint_key = TAINT_KEY;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": ns, "labels": { "testbed.ballast.dev/test": "true" } }
            }))?,
        )
        .await
        .context("creating the namespace")?;
    let nodes: Api<Node> = Api::all(client.clone());
    let node_count = if custom {
        0
    } else {
        args.objects.div_ceil(args.pods_per_node.max(1))
    };
    for i in 0..node_count {
        let name = format!("ballast-bench-{id}-n{i}");
        let node: Node = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "annotations": { "kwok.x-k8s.io/node": "fake" },
                "labels": { "type": "kwok", "kubernetes.io/hostname": name, taint_key: id, "testbed.ballast.dev/test": "true" }
            },
            "spec": { "taints": [{ "key": taint_key, "value": id, "effect": "NoSchedule" }] },
            "status": {
                "capacity": { "cpu": "256", "memory": "1Ti", "pods": args.pods_per_node.to_string() },
                "allocatable": { "cpu": "256", "memory": "1Ti", "pods": args.pods_per_node.to_string() }
            }
        }))?;
        nodes
            .create(&PostParams::default(), &node)
            .await
            .with_context(|| format!("creating node {name}"))?;
        cleanup.nodes.push(name);
    }
    Ok(node_count)
}

/// One target (a Deployment or a BenchTarget) and one HorizontalAutoscaler per object.
async fn create_objects(args: &BenchArgs, client: &Client, ns: &str, id: &str) -> Result<()> {
    let custom = args.target == BenchTargetKind::Custom;
    let taint_key = TAINT_KEY;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let hzas: Api<HorizontalAutoscaler> = Api::namespaced(client.clone(), ns);
    let custom_api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource {
            group: CUSTOM_GROUP.into(),
            version: "v1".into(),
            api_version: format!("{CUSTOM_GROUP}/v1"),
            kind: "BenchTarget".into(),
            plural: "benchtargets".into(),
        },
    );
    futures::stream::iter(0..args.objects)
        .map(|i| {
            let (deployments, hzas, custom_api) =
                (deployments.clone(), hzas.clone(), custom_api.clone());
            async move {
                let name = format!("w{i}");
                let target_ref = if custom {
                    let obj: kube::api::DynamicObject = serde_json::from_value(json!({
                        "apiVersion": format!("{CUSTOM_GROUP}/v1"), "kind": "BenchTarget",
                        "metadata": { "name": name }, "spec": { "replicas": 1 }
                    }))?;
                    custom_api.create(&PostParams::default(), &obj).await.with_context(|| format!("creating BenchTarget {name}"))?;
                    custom_api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": { "replicas": 1, "selector": format!("app={name}") } })))
                        .await
                        .with_context(|| format!("writing the status of BenchTarget {name}"))?;
                    json!({ "apiVersion": format!("{CUSTOM_GROUP}/v1"), "kind": "BenchTarget", "name": name })
                } else {
                let d: Deployment = serde_json::from_value(json!({
                    "metadata": { "name": name },
                    "spec": {
                        "replicas": 1,
                        "selector": { "matchLabels": { "app": name } },
                        "template": {
                            "metadata": { "labels": { "app": name } },
                            "spec": {
                                "nodeSelector": { taint_key: id },
                                "tolerations": [{ "key": taint_key, "operator": "Equal", "value": id, "effect": "NoSchedule" }],
                                "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10",
                                    "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } } }]
                            }
                        }
                    }
                }))?;
                deployments.create(&PostParams::default(), &d).await.with_context(|| format!("creating deployment {name}"))?;
                json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": name })
                };
                let h: HorizontalAutoscaler = serde_json::from_value(json!({
                    "apiVersion": "autoscaling.ballast.dev/v1", "kind": "HorizontalAutoscaler",
                    "metadata": { "name": name },
                    "spec": {
                        "scaleTargetRef": target_ref,
                        "minReplicas": 1, "maxReplicas": 3,
                        "syncPeriodSeconds": args.period,
                        "metrics": [{ "type": "Prometheus", "prometheus": {
                            "query": args.query, "target": { "type": "AverageValue", "averageValue": "1" } } }]
                    }
                }))?;
                hzas.create(&PostParams::default(), &h).await.with_context(|| format!("creating HorizontalAutoscaler {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Waits until every object's pod runs (at once for custom targets, which have none).
async fn wait_for_pods(
    args: &BenchArgs,
    client: &Client,
    ns: &str,
    setup_deadline: Instant,
) -> Result<usize> {
    let custom = args.target == BenchTargetKind::Custom;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let running = loop {
        let list = pods.list(&ListParams::default()).await?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if custom || running >= args.objects {
            break running;
        }
        if Instant::now() > setup_deadline {
            bail!(
                "only {running} of {} pods running after {}s",
                args.objects,
                args.setup_timeout
            );
        }
        progress(format!("{running}/{} pods running", args.objects));
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    Ok(running)
}

/// The controller: the ballast binary, as a separate process, so its CPU and memory are its
/// own; returns its pid, metrics URL and log path.
fn start_controller(
    args: &BenchArgs,
    prometheus: &str,
    id: &str,
    cleanup: &mut Cleanup,
) -> Result<(u32, String, std::path::PathBuf)> {
    let ns = cleanup.namespace.clone();
    let port = free_port()?;
    let log = std::env::temp_dir().join(format!("ballast-bench-{id}-controller.log"));
    let exe = ballast_binary(args)?;
    let child = Command::new(&exe)
        .args([
            "controller",
            "horizontal",
            "--namespace",
            &ns,
            "--prometheus-url",
            prometheus,
        ])
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--concurrency",
            &args.concurrency.to_string(),
        ])
        .args([
            "--max-concurrent-reads",
            &args.max_concurrent_reads.to_string(),
        ])
        .args(["--worker-threads", &args.worker_threads.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting the controller")?;
    let pid = child.id();
    cleanup.child = Some(child);
    progress(format!("controller pid {pid}, log {}", log.display()));
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    Ok((pid, metrics_url, log))
}

/// Waits until every object has a status (the controller's first full sync).
async fn wait_first_sync(
    args: &BenchArgs,
    hzas: &Api<HorizontalAutoscaler>,
    cleanup: &mut Cleanup,
    log: &std::path::Path,
    setup_deadline: Instant,
) -> Result<()> {
    // First full sync: every object has a status.
    loop {
        let list = hzas.list(&ListParams::default()).await?;
        let synced = list
            .items
            .iter()
            .filter(|h| h.status.as_ref().is_some_and(|s| s.reference.is_some()))
            .count();
        if synced >= args.objects {
            break;
        }
        if let Some(c) = cleanup.child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            bail!("the controller exited ({status}); see {}", log.display());
        }
        if Instant::now() > setup_deadline {
            bail!("only {synced} of {} objects synced", args.objects);
        }
        progress(format!("{synced}/{} objects have a status", args.objects));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// Scrapes the controller's metrics and samples its CPU and RSS over the window.
async fn measure(args: &BenchArgs, pid: u32, metrics_url: &str) -> Result<Window> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let ticks = clock_ticks();
    let m0 = scrape(&http, metrics_url).await?;
    let (cpu0, _) = proc_sample(pid, ticks).context("reading /proc of the controller")?;
    let t0 = Instant::now();
    let mut rss_max = 0u64;
    let mut rss = 0u64;
    while t0.elapsed() < Duration::from_secs(args.duration) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some((_, r)) = proc_sample(pid, ticks) {
            rss = r;
            rss_max = rss_max.max(r);
        }
    }
    let (cpu1, _) = proc_sample(pid, ticks).context("the controller exited during the measure")?;
    let m1 = scrape(&http, metrics_url).await?;
    let secs = t0.elapsed().as_secs_f64();
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");

    Ok(Window {
        m0,
        m1,
        seconds: secs,
        cpu_seconds: cpu1 - cpu0,
        rss,
        rss_max,
        load_average,
    })
}

/// SIGTERM, then the seconds until the controller exits (NaN past 30 s; the cleanup kills it).
async fn stop_controller(pid: u32, cleanup: &mut Cleanup) -> Result<f64> {
    let stop = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let mut graceful = f64::NAN;
    if let Some(c) = cleanup.child.as_mut() {
        while stop.elapsed() < Duration::from_secs(30) {
            if c.try_wait()?.is_some() {
                graceful = stop.elapsed().as_secs_f64();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    cleanup.child = cleanup.child.take().filter(|_| graceful.is_nan());

    Ok(graceful)
}

/// The report from the set-up figures and the window's metric deltas.
fn report(args: &BenchArgs, setup: Setup, w: Window) -> Report {
    let custom = args.target == BenchTargetKind::Custom;
    let (m0, m1, secs) = (&w.m0, &w.m1, w.seconds);
    let d = |k: &str| sum(m1, k) - sum(m0, k);
    let decisions_ok = d("ballast_horizontal_reconciles_total{outcome=\"ok\"}");
    let decisions_failed = d("ballast_horizontal_reconciles_total{outcome=\"failed\"}");
    let errors = d("ballast_horizontal_reconciles_total{outcome=\"error\"}");
    let skipped = d("ballast_horizontal_reconciles_total{outcome=\"skipped\"}");
    let (delay_mean, delay_p99) = histogram(m0, m1, "ballast_horizontal_sync_delay_seconds", "");
    let (rec_mean, rec_p99) = histogram(m0, m1, "ballast_horizontal_reconcile_seconds", "");
    let steps = ["scale", "metrics", "decide", "rescale", "status", "events"]
        .iter()
        .map(|s| {
            (
                s.to_string(),
                histogram(
                    m0,
                    m1,
                    "ballast_horizontal_step_seconds",
                    &format!("step=\"{s}\""),
                ),
            )
        })
        .filter(|(_, (mean, _))| *mean > 0.0)
        .collect();
    let _ = std::io::stderr().flush();
    Report {
        objects: args.objects,
        target: if custom { "BenchTarget" } else { "Deployment" }.to_owned(),
        pods: setup.pods,
        period_seconds: args.period,
        setup_seconds: setup.setup_seconds,
        first_full_sync_seconds: setup.first_full_sync_seconds,
        measured_seconds: secs,
        decisions_per_second: (decisions_ok + decisions_failed + errors) / secs,
        expected_per_second: args.objects as f64 / args.period as f64,
        decisions_failed,
        controller_errors: errors,
        skipped_wakeups_per_second: skipped / secs,
        status_patches_per_second: d("ballast_horizontal_status_patches_total") / secs,
        status_writes_skipped_per_second: d("ballast_horizontal_status_writes_skipped_total")
            / secs,
        rescales: d("ballast_horizontal_rescales_total"),
        sync_delay_mean_seconds: delay_mean,
        sync_delay_p99_seconds: delay_p99,
        reconcile_mean_seconds: rec_mean,
        reconcile_p99_seconds: rec_p99,
        steps,
        cpu_cores: w.cpu_seconds / secs,
        rss_mib: w.rss as f64 / 1048576.0,
        rss_max_mib: w.rss_max as f64 / 1048576.0,
        load_average: w.load_average,
        graceful_shutdown_seconds: setup.graceful_shutdown_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        assert!(loopback("https://127.0.0.1:26443/"));
        assert!(loopback("http://localhost:9090"));
        assert!(loopback("http://user:pw@127.0.0.1:9090/x"));
        assert!(loopback("http://[::1]:9090"));
        assert!(!loopback("https://10.0.0.1:443"));
        assert!(!loopback("http://prometheus.monitoring:9090"));
    }

    #[test]
    fn histogram_between_scrapes() {
        let a = parse_metrics(
            "x_bucket{le=\"0.1\"} 0\nx_bucket{le=\"1\"} 0\nx_bucket{le=\"+Inf\"} 0\nx_sum 0\nx_count 0\n",
        );
        let b = parse_metrics(
            "x_bucket{le=\"0.1\"} 98\nx_bucket{le=\"1\"} 100\nx_bucket{le=\"+Inf\"} 100\nx_sum 5\nx_count 100\n",
        );
        let (mean, p99) = histogram(&a, &b, "x", "");
        assert!((mean - 0.05).abs() < 1e-9);
        assert_eq!(p99, 1.0);
        let b = parse_metrics(
            "y_bucket{le=\"0.1\",step=\"a\"} 1\ny_bucket{le=\"+Inf\",step=\"a\"} 2\ny_bucket{le=\"0.1\",step=\"b\"} 5\ny_bucket{le=\"+Inf\",step=\"b\"} 5\ny_sum{step=\"a\"} 3\ny_count{step=\"a\"} 2\n",
        );
        let (mean, p99) = histogram(&BTreeMap::new(), &b, "y", "step=\"a\"");
        assert_eq!((mean, p99), (1.5, f64::INFINITY));
    }
}
