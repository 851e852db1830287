//! `ballast controller nodes` and `ballast explain provision|disruption`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use ballast_controller::nodes::NodesOptions;
use ballast_controller::nodes::disruption::DisruptionShellOptions;
use ballast_controller::nodes::interruption::InterruptionOptions;
use ballast_nodes::{
    ClusterSnapshot, Destination, DisruptionDecision, DisruptionOptions, ProvisionOptions,
    ProvisioningDecision, Verdict,
};
use clap::{Args, ValueEnum};
use jiff::Timestamp;
use prometheus_client::registry::Registry;

use crate::cli::Format;
use crate::leader_cmd::LeaderFlags;
use crate::serve_cmd::{Endpoint, serve_and_run, stopped};
use crate::strict;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Provider {
    /// kwok Nodes (local clusters, the test bed), instance types from `--catalog`.
    Kwok,
    /// EC2 instances (CreateFleet), instance types from the EC2 API, on-demand prices from
    /// `--price-file`; `--aws-endpoint` points it at moto on the test bed.
    Aws,
}

/// Flags of `ballast controller nodes`.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Nodes reconciler")]
pub struct NodesFlags {
    /// Cloud provider that launches the nodes.
    #[arg(long, value_enum, default_value = "kwok")]
    pub provider: Provider,
    /// Instance catalog file (kwok), e.g. simulations/catalogs/aws-like.yaml.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// On-demand (and fallback spot) prices for the aws provider, in the catalog format (the EC2
    /// API has no on-demand prices); only the instance types it lists are offered.
    #[arg(long, value_name = "FILE")]
    pub price_file: Option<PathBuf>,
    /// Value of the `nodes.ballast.dev/cluster` tag on the instances the aws provider launches:
    /// which instances it owns (listing, garbage collection).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// EC2 region (default: AWS_REGION, else AWS_DEFAULT_REGION).
    #[arg(long, value_name = "REGION")]
    pub aws_region: Option<String>,
    /// EC2 endpoint (default: AWS_ENDPOINT_URL_EC2, else AWS_ENDPOINT_URL, else the region's),
    /// e.g. moto on the test bed: http://127.0.0.1:25000. Credentials come from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
    #[arg(long, value_name = "URL")]
    pub aws_endpoint: Option<String>,
    /// Manage only the NodePools matching this label selector (and their NodeClaims and nodes).
    #[arg(long, value_name = "SELECTOR")]
    pub nodepool_selector: Option<String>,
    /// Provision only for pending pods of this namespace (repeatable; default: all namespaces).
    #[arg(long = "provision-namespace", value_name = "NS")]
    pub provision_namespaces: Vec<String>,
    /// Batching: solve once no new pending pod arrived for this long (seconds).
    #[arg(long, default_value_t = 1.0)]
    pub batch_idle: f64,
    /// Batching: solve at the latest this long after the first pending pod (seconds).
    #[arg(long, default_value_t = 10.0)]
    pub batch_max: f64,
    /// Do not run the disruption controller (consolidation, emptiness, drift, expiration).
    #[arg(long)]
    pub no_disruption: bool,
    /// Seconds between disruption passes.
    #[arg(long, default_value_t = 10)]
    pub disruption_poll: u64,
    /// SQS queue URL of EC2 interruption events (spot interruption warnings, rebalance
    /// recommendations, instance state changes, AWS Health scheduled changes, sent by EventBridge
    /// rules): interrupted nodes are cordoned, drained and replaced. Credentials come from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
    #[arg(long, value_name = "URL")]
    pub interruption_queue: Option<String>,
    /// SQS endpoint of the interruption queue (default: AWS_ENDPOINT_URL_SQS, else AWS_ENDPOINT_URL,
    /// else the queue URL's origin).
    #[arg(long, value_name = "URL", requires = "interruption_queue")]
    pub interruption_endpoint: Option<String>,
    /// Region the interruption queue's requests are signed for (default: AWS_REGION, else
    /// AWS_DEFAULT_REGION, else the queue URL's sqs.REGION host, else us-east-1).
    #[arg(long, value_name = "REGION", requires = "interruption_queue")]
    pub interruption_region: Option<String>,
    /// Where the nodes reconciler serves /metrics, /healthz and /readyz (a loopback address).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9465")]
    pub nodes_health_addr: SocketAddr,
    /// Serve /healthz on a non-loopback address (in a pod, for the kubelet's probes).
    #[arg(long)]
    pub nodes_health_bind_any: bool,
}

impl NodesFlags {
    pub fn options(&self) -> NodesOptions {
        let mut o = NodesOptions {
            nodepool_selector: self.nodepool_selector.clone(),
            namespaces: self.provision_namespaces.clone(),
            ..Default::default()
        };
        o.batch.idle_seconds = self.batch_idle;
        o.batch.max_seconds = self.batch_max;
        o.disruption = (!self.no_disruption).then(|| DisruptionShellOptions {
            poll: Duration::from_secs(self.disruption_poll.max(1)),
            ..Default::default()
        });
        o.interruption = self.interruption_queue.as_ref().map(|q| {
            let mut i = InterruptionOptions::new(q.clone());
            i.endpoint = self.interruption_endpoint.clone();
            i.region = self.interruption_region.clone();
            i.with_env()
        });
        o
    }
}

/// `ballast controller nodes`: runs until SIGTERM / Ctrl+C (with `--leader-elect`, then releases
/// the lease).
pub fn controller(flags: &NodesFlags, leader: &LeaderFlags) -> Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,tower=warn,hyper=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match (flags.provider, &flags.catalog) {
        (Provider::Kwok, None) => {
            bail!("--provider kwok needs --catalog FILE (e.g. simulations/catalogs/aws-like.yaml)")
        }
        #[cfg(feature = "aws")]
        (Provider::Aws, _) => {
            aws_options(flags)?;
        }
        #[cfg(not(feature = "aws"))]
        (Provider::Aws, _) => bail!(
            "--provider aws: this ballast was built without the AWS provider; build it with `cargo build --release -p ballast --features aws`"
        ),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let config = kube::Config::infer()
            .await
            .context("loading the kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster)")?;
        let client = kube::Client::try_from(config.clone())?;
        match flags.provider {
            Provider::Kwok => {
                let catalog = flags.catalog.clone().unwrap_or_default();
                let provider =
                    ballast_cloud_kwok::KwokProvider::from_catalog_file(client.clone(), &catalog)
                        .map_err(anyhow::Error::msg)?;
                serve_and_run_nodes(flags, leader, config, provider).await
            }
            #[cfg(not(feature = "aws"))]
            Provider::Aws => bail!(
                "--provider aws: this ballast was built without the AWS provider (--features aws)"
            ),
            #[cfg(feature = "aws")]
            Provider::Aws => {
                let (opts, prices) = aws_options(flags)?;
                let provider = ballast_cloud_aws::AwsProvider::new(
                    opts,
                    prices,
                    ballast_cloud_aws::NodeClasses::Kube(client.clone()),
                )
                .map_err(anyhow::Error::msg)?;
                serve_and_run_nodes(flags, leader, config, provider).await
            }
        }
    })
}

/// The aws provider's options and price file from the flags and the standard AWS variables.
#[cfg(feature = "aws")]
pub fn aws_options(
    flags: &NodesFlags,
) -> Result<(
    ballast_cloud_aws::AwsOptions,
    ballast_scheduling::catalog::CatalogFile,
)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(price_file) = &flags.price_file else {
        bail!(
            "--provider aws needs --price-file FILE (on-demand prices; e.g. simulations/catalogs/aws-like.yaml)"
        )
    };
    let prices = ballast_cloud_aws::catalog::load_prices(price_file).map_err(anyhow::Error::msg)?;
    let Some(cluster) = flags.cluster_name.clone().filter(|c| !c.is_empty()) else {
        bail!("--provider aws needs --cluster-name NAME (the ownership tag of its instances)")
    };
    let Some(region) = flags
        .aws_region
        .clone()
        .or_else(|| var("AWS_REGION"))
        .or_else(|| var("AWS_DEFAULT_REGION"))
    else {
        bail!("--provider aws needs --aws-region REGION (or AWS_REGION)")
    };
    let credentials =
        ballast_cloud_aws::StaticCredentials::from_env().map_err(anyhow::Error::msg)?;
    let mut opts = ballast_cloud_aws::AwsOptions::new(&region, &cluster, credentials);
    opts.endpoint = flags
        .aws_endpoint
        .clone()
        .or_else(|| var("AWS_ENDPOINT_URL_EC2"))
        .or_else(|| var("AWS_ENDPOINT_URL"));
    if let Some(e) = &opts.endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        bail!("--aws-endpoint {e:?}: not an http(s) URL");
    }
    Ok((opts, prices))
}

/// Serves /healthz and /metrics and runs the node controllers with `provider` until a signal.
async fn serve_and_run_nodes<P: ballast_cloud::CloudProvider>(
    flags: &NodesFlags,
    leader: &LeaderFlags,
    config: kube::Config,
    provider: P,
) -> Result<ExitCode> {
    let election = leader.start(&kube::Client::try_from(config.clone())?, "nodes")?;
    let mut opts = flags.options();
    opts.leadership = election.leadership.clone();
    let (heartbeats, ready) = (opts.heartbeats.clone(), opts.ready.clone());
    let mut registry = Registry::default();
    opts.metrics.register(&mut registry);
    if let Some(i) = &opts.interruption {
        i.metrics.register(&mut registry);
    }
    let probes = ballast_controller::runtime::Probes {
        live: Arc::new(move || heartbeats.healthy()),
        ready: Arc::new(move || ready.get()),
    };
    let endpoint = Endpoint {
        addr: flags.nodes_health_addr,
        bind_any: flags.nodes_health_bind_any,
    };
    let stopping = "stopping the node controllers";
    serve_and_run(
        endpoint,
        registry,
        probes,
        election,
        stopping,
        |stop| async {
            Ok(ballast_controller::nodes::run(config, provider, opts, stopped(stop)).await?)
        },
    )
    .await
}

/// A snapshot file: a `ClusterSnapshot` plus the decision time and optional knobs.
struct SnapshotFile {
    /// The decision time: required, nothing else gives the time.
    now: Timestamp,
    provision_options: Option<ProvisionOptions>,
    disruption_options: Option<DisruptionOptions>,
    snapshot: ClusterSnapshot,
}

/// Reads a node snapshot strictly: an empty file, a file of another kind, a missing `now` or a
/// field the format does not have is an error naming it.
fn read_snapshot(text: &str) -> Result<SnapshotFile> {
    const WHAT: &str = "node snapshot";
    let mut map = strict::mapping(
        text,
        "a node snapshot (see docs/nodes.md, \"The snapshot\")",
    )?;
    strict::known_keys::<ClusterSnapshot>(
        &map,
        &["now", "provisionOptions", "disruptionOptions"],
        WHAT,
    )?;
    let Some(now) = map.remove("now") else {
        bail!(
            "{WHAT}: now: missing: the decision time (RFC 3339, e.g. \"2025-06-01T12:00:00Z\"); nothing else gives it"
        )
    };
    let now = strict::typed(now, "now", WHAT)?;
    let provision_options = map
        .remove("provisionOptions")
        .map(|v| strict::typed(v, "provisionOptions", WHAT))
        .transpose()?;
    let disruption_options = map
        .remove("disruptionOptions")
        .map(|v| strict::typed(v, "disruptionOptions", WHAT))
        .transpose()?;
    let snapshot = strict::typed(serde_json::Value::Object(map), "", WHAT)?;
    Ok(SnapshotFile {
        now,
        provision_options,
        disruption_options,
        snapshot,
    })
}

/// `ballast explain provision -f SNAPSHOT [-o json|yaml]`.
pub fn explain_provision(text: &str, output: Option<Format>) -> Result<ExitCode> {
    let f = read_snapshot(text)?;
    let now = f.now;
    let opts = f.provision_options.unwrap_or_default();
    let d = ballast_nodes::provision(&f.snapshot, now, &opts)?;
    match output {
        None => print!("{}", render_provision(&d, now)),
        Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&d)?),
        Some(Format::Yaml) => print!("{}", serde_yaml::to_string(&d)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `ballast explain disruption -f SNAPSHOT [-o json|yaml]`: every method and candidate is
/// evaluated (`explainAll`), so each node says why it stays.
pub fn explain_disruption(text: &str, output: Option<Format>) -> Result<ExitCode> {
    let f = read_snapshot(text)?;
    let now = f.now;
    let mut opts = f.disruption_options.unwrap_or_default();
    opts.explain_all = true;
    let d = ballast_nodes::disrupt(&f.snapshot, now, &opts)?;
    match output {
        None => print!("{}", render_disruption(&d, now)),
        Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&d)?),
        Some(Format::Yaml) => print!("{}", serde_yaml::to_string(&d)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `-0.00` reads oddly.
fn z(x: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x }
}

fn list<T: std::fmt::Display>(items: &[T], max: usize) -> String {
    let mut s: Vec<String> = items.iter().take(max).map(|x| x.to_string()).collect();
    if items.len() > max {
        s.push(format!("… (+{} more)", items.len() - max));
    }
    s.join(", ")
}

/// The human form of a provisioning decision.
pub fn render_provision(d: &ProvisioningDecision, now: Timestamp) -> String {
    let mut o = String::new();
    let placed = d.placements.len();
    let _ = writeln!(
        o,
        "Provisioning at {now}: {} new NodeClaim(s) at ${:.4}/h; {placed} pod(s) placed, {} stay pending",
        d.node_claims.len(),
        d.cost_per_hour,
        d.unschedulable.len()
    );
    if !d.node_claims.is_empty() {
        let _ = writeln!(o, "\nNodeClaims to create:");
        for p in &d.node_claims {
            let _ = writeln!(
                o,
                "  {}  NodePool {}  {} {} {}  ${:.4}/h  {} pod(s), requests {}",
                p.name,
                p.node_pool,
                p.instance_type,
                p.zone,
                p.capacity_type,
                p.price,
                p.pods.len(),
                serde_json::to_string(&p.requests)
                    .unwrap_or_default()
                    .replace('"', "")
            );
            let types: Vec<String> = p
                .instance_types
                .iter()
                .map(|t| format!("{} ${:.4}", t.name, t.price))
                .collect();
            let _ = writeln!(
                o,
                "      may launch as (cheapest first): {}",
                list(&types, 8)
            );
            let _ = writeln!(
                o,
                "      zones: {}; capacity types: {}",
                p.zones.join(", "),
                p.capacity_types.join(", ")
            );
            let _ = writeln!(o, "      pods: {}", list(&p.pods, 10));
        }
    }
    let existing: Vec<String> = d
        .placements
        .iter()
        .filter_map(|pl| match &pl.to {
            Destination::Node(n) => Some(format!("{} → node {n}", pl.pod)),
            Destination::InFlight(n) => Some(format!("{} → NodeClaim in flight {n}", pl.pod)),
            Destination::NewNodeClaim(_) => None,
        })
        .collect();
    if !existing.is_empty() {
        let _ = writeln!(o, "\nPods that fit existing or in-flight capacity:");
        for e in existing {
            let _ = writeln!(o, "  {e}");
        }
    }
    if !d.unschedulable.is_empty() {
        let _ = writeln!(o, "\nPods that stay pending:");
        for u in &d.unschedulable {
            let _ = writeln!(o, "  {}  [{:?}]", u.pod, u.category);
            for (pool, why) in &u.node_pools {
                let _ = writeln!(o, "      NodePool {pool}: {why}");
            }
            for (why, n) in &u.nodes {
                let _ = writeln!(o, "      {n} node(s): {why}");
            }
            if u.node_pools.is_empty() && u.nodes.is_empty() {
                let _ = writeln!(o, "      {}", u.message);
            }
        }
    }
    if !d.relaxed.is_empty() {
        let _ = writeln!(o, "\nPreferences dropped to place a pod:");
        for r in &d.relaxed {
            let _ = writeln!(o, "  {}: {}", r.pod, r.dropped.join("; "));
        }
    }
    if !d.skipped.is_empty() {
        let _ = writeln!(o, "\nLeft out (invalid):");
        for e in &d.skipped {
            let _ = writeln!(o, "  {e}");
        }
    }
    o
}

/// The human form of a disruption decision.
pub fn render_disruption(d: &DisruptionDecision, now: Timestamp) -> String {
    let mut o = String::new();
    // The core formats a zero cost of an empty node as "-0.00".
    let _ = writeln!(
        o,
        "Disruption at {now}: {}",
        d.summary.replace("cost -0.00", "cost 0.00")
    );
    if let Some(a) = &d.action {
        let _ = writeln!(o, "\nAction: {} of {}", a.method, a.nodes.join(", "));
        let _ = writeln!(o, "  why: {}", a.why);
        let _ = writeln!(
            o,
            "  removes ${:.4}/h, saves ${:.4}/h, disruption cost {:.2}, evicts {} pod(s)",
            a.removed_price,
            a.savings,
            z(a.disruption_cost),
            a.pods_evicted.len()
        );
        for r in &a.replacements {
            let _ = writeln!(
                o,
                "  replacement {}: {} {} {} ${:.4}/h (NodePool {})",
                r.plan.name,
                r.plan.instance_type,
                r.plan.zone,
                r.plan.capacity_type,
                r.plan.price,
                r.plan.node_pool
            );
        }
        for m in &a.moves {
            let to = if m.to_replacement {
                "replacement "
            } else {
                "node "
            };
            let _ = writeln!(o, "  {} → {to}{}", m.pod, m.to);
        }
        if let Some(t) = a.drain_deadline {
            let _ = writeln!(o, "  drain deadline (terminationGracePeriod): {t}");
        }
    }
    let _ = writeln!(o, "\nMethods:");
    for (m, line) in &d.methods {
        let _ = writeln!(o, "  {m}: {line}");
    }
    let _ = writeln!(o, "\nNodes:");
    for n in &d.nodes {
        let chosen = d.action.as_ref().is_some_and(|a| a.nodes.contains(&n.node));
        let price = n
            .price
            .map(|p| format!("${p:.4}/h"))
            .unwrap_or_else(|| "price unknown".into());
        let _ = writeln!(
            o,
            "  {}{}  NodePool {}  {price}  disruption cost {:.2}",
            n.node,
            if chosen { " (chosen)" } else { "" },
            n.node_pool.as_deref().unwrap_or("-"),
            z(n.disruption_cost)
        );
        for note in &n.notes {
            let method = note
                .method
                .map(|m| m.to_string())
                .unwrap_or_else(|| "all methods".into());
            let verdict = match note.verdict {
                Verdict::Chosen => "chosen",
                Verdict::Possible => "possible",
                Verdict::Rejected => "no",
            };
            let _ = writeln!(o, "      {method}: {verdict}: {}", note.why);
        }
    }
    if !d.budgets.is_empty() {
        let _ = writeln!(o, "\nBudgets:");
        for b in &d.budgets {
            let allowed = b
                .allowed
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unlimited".into());
            let _ = writeln!(
                o,
                "  NodePool {} {:?}: {} node(s), {allowed} allowed ({}), {} disrupting, {} left",
                b.node_pool, b.reason, b.nodes, b.budget, b.disrupting, b.available
            );
        }
    }
    if !d.skipped.is_empty() {
        let _ = writeln!(o, "\nLeft out (invalid):");
        for e in &d.skipped {
            let _ = writeln!(o, "  {e}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../nodes/examples")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn provision_example_explains_claims_and_pending_pods() {
        let f = read_snapshot(&example("provision.yaml")).unwrap();
        let now = f.now;
        let d = ballast_nodes::provision(&f.snapshot, now, &ProvisionOptions::default()).unwrap();
        let text = render_provision(&d, now);
        assert!(text.contains("NodeClaims to create:"), "{text}");
        assert!(text.contains("may launch as (cheapest first)"), "{text}");
        assert!(text.contains("shop/api-2 → node general-1"), "{text}");
        assert!(text.contains("ml/train-2  [LimitsReached]"), "{text}");
        assert!(
            text.contains("NodePool gpu: NodePool limits reached (nodes)"),
            "{text}"
        );
        assert!(
            text.contains("shop/arm-1  [UnsatisfiableRequirements]"),
            "{text}"
        );
        // Zone spread: the three web pods end up in both zones.
        let zones: std::collections::BTreeSet<&str> =
            d.node_claims.iter().map(|c| c.zone.as_str()).collect();
        assert_eq!(zones.len(), 2, "{text}");
        let json = serde_json::to_value(&d).unwrap();
        assert!(json["nodeClaims"][0]["nodeClaim"]["metadata"]["name"].is_string());
        assert_eq!(json["unschedulable"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn disruption_example_explains_every_node() {
        let f = read_snapshot(&example("disruption.yaml")).unwrap();
        let now = f.now;
        let opts = DisruptionOptions {
            explain_all: true,
            ..Default::default()
        };
        let d = ballast_nodes::disrupt(&f.snapshot, now, &opts).unwrap();
        let text = render_disruption(&d, now);
        assert!(text.contains("Action: emptiness of empty-1"), "{text}");
        assert!(
            text.contains("big-1") && text.contains("can be deleted, its pods fit elsewhere"),
            "{text}"
        );
        assert!(
            text.contains("pod batch/job-1 has the do-not-disrupt annotation"),
            "{text}"
        );
        assert!(
            text.contains("PDB shop/db allows no disruption of pod shop/db-1 now"),
            "{text}"
        );
        assert!(text.contains("consolidateAfter not reached"), "{text}");
        assert!(!text.contains("-0.00"), "{text}");
    }

    fn nodes_flags(args: &[&str]) -> Result<NodesFlags, clap::Error> {
        use clap::Parser;
        let mut all = vec!["ballast", "controller", "nodes"];
        all.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(all)?.command {
            crate::cli::Command::Controller(c) => Ok(c.nodes),
            other => panic!("{other:?}"),
        }
    }

    #[cfg(feature = "aws")]
    #[test]
    fn aws_flags_name_what_is_missing() {
        let f = nodes_flags(&["--provider", "aws"]).unwrap();
        let e = aws_options(&f).unwrap_err().to_string();
        assert!(e.contains("--price-file"), "{e}");
        let prices = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../simulations/catalogs/aws-like.yaml");
        let f = nodes_flags(&[
            "--provider",
            "aws",
            "--price-file",
            prices.to_str().unwrap(),
        ])
        .unwrap();
        let e = aws_options(&f).unwrap_err().to_string();
        assert!(e.contains("--cluster-name"), "{e}");
        let f = nodes_flags(&[
            "--provider",
            "aws",
            "--price-file",
            "/nonexistent/prices.yaml",
            "--cluster-name",
            "c1",
        ])
        .unwrap();
        let e = aws_options(&f).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/prices.yaml"), "{e}");
        let f = nodes_flags(&[
            "--provider",
            "aws",
            "--price-file",
            prices.to_str().unwrap(),
            "--cluster-name",
            "c1",
            "--aws-region",
            "eu-west-1",
            "--aws-endpoint",
            "http://127.0.0.1:25000",
        ])
        .unwrap();
        assert_eq!(f.aws_region.as_deref(), Some("eu-west-1"));
        assert_eq!(f.aws_endpoint.as_deref(), Some("http://127.0.0.1:25000"));
    }

    #[test]
    fn interruption_flags() {
        let f = nodes_flags(&["--catalog", "c.yaml"]).unwrap();
        assert!(f.options().interruption.is_none());
        let f = nodes_flags(&[
            "--interruption-queue",
            "http://127.0.0.1:25000/123456789012/interruptions",
            "--interruption-endpoint",
            "http://127.0.0.1:25000",
            "--interruption-region",
            "eu-west-1",
        ])
        .unwrap();
        let i = f.options().interruption.expect("interruption options");
        assert_eq!(
            i.queue_url,
            "http://127.0.0.1:25000/123456789012/interruptions"
        );
        assert_eq!(i.endpoint.as_deref(), Some("http://127.0.0.1:25000"));
        assert_eq!(i.region.as_deref(), Some("eu-west-1"));
        let e = nodes_flags(&["--interruption-region", "eu-west-1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--interruption-queue"), "{e}");
    }

    #[test]
    fn snapshot_files_are_read_strictly() {
        let f = read_snapshot("now: 2025-06-01T12:00:00Z\nnodes: []\npendingPods: []\n").unwrap();
        assert!(f.provision_options.is_none() && f.disruption_options.is_none());
        let refused = [
            ("", "the file is empty"),
            ("nodes: []\n", "now: missing"),
            ("now: 2025-06-01T12:00:00Z\nnodes: 3", "nodes: invalid type"),
            (
                "now: 2025-06-01T12:00:00Z\nnodePoolz: []",
                "did you mean `nodePools`",
            ),
            ("now: yesterday\n", "now: "),
            (
                "now: 2025-06-01T12:00:00Z\nautoscaler: {}",
                "unknown field `autoscaler`",
            ),
            (
                "apiVersion: v1\nkind: Pod\n",
                "this is a Kubernetes object (v1 Pod)",
            ),
            (
                "now: 2025-06-01T12:00:00Z\nprovisionOptions: {maxNodeClaimz: 3}",
                "unknown field `provisionOptions.maxNodeClaimz`",
            ),
        ];
        for (text, fragment) in refused {
            let e = format!(
                "{:#}",
                read_snapshot(text)
                    .err()
                    .unwrap_or_else(|| panic!("{text:?} was accepted"))
            );
            assert!(e.contains(fragment), "{text:?}: {e}");
        }
    }
}
