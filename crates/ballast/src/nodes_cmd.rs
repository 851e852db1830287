//! `ballast controller nodes` and the flags its decisions share with `ballast explain
//! provision|disruption --live`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use ballast_controller::nodes::NodesOptions;
use ballast_controller::nodes::capture::Scope;
use ballast_controller::nodes::disruption::DisruptionShellOptions;
use ballast_controller::nodes::interruption::InterruptionOptions;
use ballast_nodes::{BatchWindow, DisruptionOptions, PdbMode, ProvisionOptions};
use clap::{Args, ValueEnum};
use prometheus_client::registry::Registry;

use crate::leader_cmd::LeaderFlags;
use crate::serve_cmd::{Endpoint, serve_and_run, stopped};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Provider {
    /// kwok Nodes (local clusters, the test bed), instance types from `--catalog`.
    Kwok,
    /// EC2 instances (CreateFleet), instance types from the EC2 API, on-demand prices from
    /// `--price-file`; `--aws-endpoint` points it at moto on the test bed.
    Aws,
}

/// What a node decision depends on besides the cluster: the provider and its instance types,
/// the controller's scope, batching and disruption knobs. Shared by `ballast controller nodes`
/// and `ballast explain provision|disruption --live`, so a capture reads and decides as the
/// controller does.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Node decisions")]
pub struct NodesDecisionFlags {
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
    /// Multi-node consolidation looks at this many candidates at most.
    #[arg(long, default_value_t = DisruptionOptions::default().multi_node_max_candidates)]
    pub consolidation_max_candidates: usize,
    /// Never replace a spot node with a cheaper spot node.
    #[arg(long)]
    pub no_spot_to_spot: bool,
    /// Also refuse an action that would evict more of a PodDisruptionBudget's pods than it
    /// allows now (default: only nodes with a pod a PDB allows no disruption of are blocked).
    #[arg(long)]
    pub strict_pdbs: bool,
}

impl NodesDecisionFlags {
    /// The provisioning knobs (batching; the solver's defaults).
    pub fn provision_options(&self) -> ProvisionOptions {
        ProvisionOptions {
            solve: Default::default(),
            batch: BatchWindow {
                idle_seconds: self.batch_idle,
                max_seconds: self.batch_max,
            },
        }
    }

    /// The disruption knobs.
    pub fn disruption_options(&self) -> DisruptionOptions {
        DisruptionOptions {
            multi_node_max_candidates: self.consolidation_max_candidates,
            spot_to_spot: !self.no_spot_to_spot,
            pdb_mode: if self.strict_pdbs {
                PdbMode::Strict
            } else {
                PdbMode::Karpenter
            },
            ..Default::default()
        }
    }

    /// What the controller manages: its NodePool selector and namespaces.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            nodepool_selector: self.nodepool_selector.as_deref(),
            namespaces: &self.provision_namespaces,
            pool: None,
        }
    }
}

/// Flags of `ballast controller nodes`.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Nodes reconciler")]
pub struct NodesFlags {
    #[command(flatten)]
    pub decision: NodesDecisionFlags,
    /// Do not run the disruption controller (consolidation, emptiness, drift, expiration).
    #[arg(long)]
    pub no_disruption: bool,
    /// Seconds between disruption passes.
    #[arg(long, default_value_t = 10)]
    pub disruption_poll: u64,
    /// Seconds a disruption pass waits before deciding again and acting only if the decision
    /// holds (a pod that arrives or leaves meanwhile cancels the action).
    #[arg(long, default_value_t = 15)]
    pub disruption_validation_delay: u64,
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
        let decision = &self.decision;
        let provision = decision.provision_options();
        let mut o = NodesOptions {
            nodepool_selector: decision.nodepool_selector.clone(),
            namespaces: decision.provision_namespaces.clone(),
            batch: provision.batch,
            solve: provision.solve,
            ..Default::default()
        };
        o.disruption = (!self.no_disruption).then(|| DisruptionShellOptions {
            poll: Duration::from_secs(self.disruption_poll.max(1)),
            validation_delay: Duration::from_secs(self.disruption_validation_delay),
            options: decision.disruption_options(),
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
    check_provider(&flags.decision)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let config = kube::Config::infer()
            .await
            .context("loading the kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster)")?;
        let client = kube::Client::try_from(config.clone())?;
        match flags.decision.provider {
            Provider::Kwok => {
                let provider = kwok_provider(&flags.decision, client)?;
                serve_and_run_nodes(flags, leader, config, provider).await
            }
            #[cfg(not(feature = "aws"))]
            Provider::Aws => bail!(
                "--provider aws: this ballast was built without the AWS provider (--features aws)"
            ),
            #[cfg(feature = "aws")]
            Provider::Aws => {
                let provider = aws_provider(&flags.decision, client)?;
                serve_and_run_nodes(flags, leader, config, provider).await
            }
        }
    })
}

/// Refuses provider flags that cannot work, before anything starts: the kwok provider needs a
/// catalog, the aws one its settings (and a build with the `aws` feature).
pub fn check_provider(flags: &NodesDecisionFlags) -> Result<()> {
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
    Ok(())
}

/// The kwok provider with the instance types of `--catalog`.
pub fn kwok_provider(
    flags: &NodesDecisionFlags,
    client: kube::Client,
) -> Result<ballast_cloud_kwok::KwokProvider> {
    let catalog = flags.catalog.clone().unwrap_or_default();
    ballast_cloud_kwok::KwokProvider::from_catalog_file(client, &catalog)
        .map_err(anyhow::Error::msg)
}

/// The EC2 provider of the flags and the standard AWS variables.
#[cfg(feature = "aws")]
pub fn aws_provider(
    flags: &NodesDecisionFlags,
    client: kube::Client,
) -> Result<ballast_cloud_aws::AwsProvider> {
    let (opts, prices) = aws_options(flags)?;
    ballast_cloud_aws::AwsProvider::new(opts, prices, ballast_cloud_aws::NodeClasses::Kube(client))
        .map_err(anyhow::Error::msg)
}

/// The aws provider's options and price file from the flags and the standard AWS variables.
#[cfg(feature = "aws")]
pub fn aws_options(
    flags: &NodesDecisionFlags,
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
        leading: ballast_controller::runtime::leading(election.leadership.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = aws_options(&f.decision).unwrap_err().to_string();
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
        let e = aws_options(&f.decision).unwrap_err().to_string();
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
        let e = aws_options(&f.decision).unwrap_err().to_string();
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
        assert_eq!(f.decision.aws_region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            f.decision.aws_endpoint.as_deref(),
            Some("http://127.0.0.1:25000")
        );
    }

    #[test]
    fn consolidation_flags_reach_the_disruption_pass() {
        let f = nodes_flags(&["--catalog", "c.yaml"]).unwrap();
        let shell = f.options().disruption.expect("disruption on by default");
        assert_eq!(shell.options, DisruptionOptions::default());
        assert_eq!(shell.validation_delay, Duration::from_secs(15));
        let f = nodes_flags(&[
            "--consolidation-max-candidates",
            "7",
            "--no-spot-to-spot",
            "--strict-pdbs",
            "--batch-max",
            "3",
            "--disruption-validation-delay",
            "2",
        ])
        .unwrap();
        let shell = f.options().disruption.expect("disruption on by default");
        assert_eq!(shell.validation_delay, Duration::from_secs(2));
        assert_eq!(shell.options, f.decision.disruption_options());
        assert_eq!(shell.options.multi_node_max_candidates, 7);
        assert!(!shell.options.spot_to_spot);
        assert_eq!(shell.options.pdb_mode, PdbMode::Strict);
        assert_eq!(f.options().batch.max_seconds, 3.0);
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
}
