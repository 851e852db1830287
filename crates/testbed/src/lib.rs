//! Test support for Ballast integration tests against the local test bed.
//!
//! `tests/testbed.sh up [kube metrics-server custom-metrics prometheus redis rabbitmq postgres moto
//! kafka]` starts a real control plane (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler), kwok as fake kubelets, the metrics adapters and the real services, all on
//! 127.0.0.1, and writes an env file (`$BALLAST_TESTBED_DIR/env`, default
//! `/tmp/ballast-testbed/env`). [`TestBed::from_env`] reads the `BALLAST_*` variables from the
//! process environment or, failing that, from that file, and hands out a [`kube::Client`].
//!
//! When no test bed is running, [`TestBed::from_env`] returns `None` so a test can print
//! `skipped: no test bed` and return, unless `BALLAST_REQUIRE_TESTBED=1` is set (as `tests/run.sh`
//! does), in which case it panics: a CI run must never pass by skipping.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ballast_testbed::{KwokNode, TestDeployment};
//! use std::time::Duration;
//! let Some(bed) = ballast_testbed::TestBed::from_env().await else { return Ok(()) };
//! let ns = bed.namespace("demo").await?;            // deleted again when `ns` is dropped
//! ns.create_kwok_node(KwokNode::new("n1").cpu("4").memory("8Gi")).await?;
//! ns.create_deployment(TestDeployment::new("web").replicas(2)).await?;
//! ns.wait_deployment_ready("web", 2, Duration::from_secs(60)).await?;
//! # Ok(()) }
//! ```
//!
//! Isolation: every test works in its own namespace with a random suffix. Nodes are cluster-wide,
//! so nodes made by [`TestNamespace::create_kwok_node`] carry a label and a `NoSchedule` taint
//! naming their namespace, and workloads made by the namespace's helpers select and tolerate
//! exactly that; other tests' pods can neither land on them nor pull this test's pods away.
//!
//! Network rule: everything here only ever connects to 127.0.0.1 (the kubeconfig's server is
//! checked to be loopback, and HTTP clients ignore proxy variables).

pub mod backlog;
pub mod crds;
pub mod custom_metrics;
pub mod ec2_faults;
mod env;
pub mod faults;
pub mod horizontal_bench;
mod namespace;
mod objects;
pub mod running;
pub mod services;
pub mod usage;
pub mod wait;
pub mod webhook;

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use env::TestBedEnv;
pub use namespace::{ISOLATION_KEY, TestNamespace};
pub use objects::{KwokNode, TestDeployment};

/// Environment variable that turns "no test bed" from a skip into a panic.
pub const REQUIRE_VAR: &str = "BALLAST_REQUIRE_TESTBED";
/// Annotation that makes kwok manage a node (the test bed runs kwok with this selector).
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

const NOT_RUNNING: &str = "test bed not running: run tests/testbed.sh up";

/// Whether `BALLAST_REQUIRE_TESTBED` asks for the test bed to be there.
pub fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// A handle on the running test bed.
#[derive(Clone)]
pub struct TestBed {
    client: Client,
    config: kube::Config,
    env: TestBedEnv,
}

/// The services `tests/testbed.sh` can start besides the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Prometheus,
    Redis,
    RabbitMq,
    Postgres,
    Moto,
    /// A single-node Kafka cluster (PLAINTEXT, SASL_PLAINTEXT and SSL listeners).
    Kafka,
    /// metrics-server, serving `metrics.k8s.io` from kwok's emulated kubelets (see [`usage`]).
    MetricsServer,
    /// The custom and external metrics adapter, serving `custom.metrics.k8s.io` and
    /// `external.metrics.k8s.io` the values tests write (see [`custom_metrics`]).
    CustomMetrics,
}

impl Service {
    /// The env variable holding the service's URL.
    pub fn url_var(self) -> &'static str {
        match self {
            Service::Prometheus => "BALLAST_PROMETHEUS_URL",
            Service::Redis => "BALLAST_REDIS_URL",
            Service::RabbitMq => "BALLAST_RABBITMQ_URL",
            Service::Postgres => "BALLAST_POSTGRES_URL",
            Service::Moto => "BALLAST_MOTO_URL",
            Service::Kafka => "BALLAST_KAFKA_ADDRESS",
            Service::MetricsServer => "BALLAST_METRICS_SERVER_URL",
            Service::CustomMetrics => "BALLAST_CUSTOM_METRICS_URL",
        }
    }

    /// The component name for `tests/testbed.sh up`.
    pub fn component(self) -> &'static str {
        match self {
            Service::Prometheus => "prometheus",
            Service::Redis => "redis",
            Service::RabbitMq => "rabbitmq",
            Service::Postgres => "postgres",
            Service::Moto => "moto",
            Service::Kafka => "kafka",
            Service::MetricsServer => "metrics-server",
            Service::CustomMetrics => "custom-metrics",
        }
    }
}

impl TestBed {
    /// Connects to the running test bed.
    ///
    /// Returns `None` when it is not running (no env file, no kubeconfig, or the API server does
    /// not answer), or panics with "test bed not running: run tests/testbed.sh up" when
    /// `BALLAST_REQUIRE_TESTBED=1`.
    pub async fn from_env() -> Option<TestBed> {
        match Self::connect().await {
            Ok(bed) => Some(bed),
            Err(e) if required() => panic!("{NOT_RUNNING} ({e:#})"),
            Err(_) => None,
        }
    }

    /// Like [`TestBed::from_env`], but always an error (never a panic) when the bed is missing.
    pub async fn connect() -> Result<TestBed> {
        install_crypto_provider();
        let env = TestBedEnv::load()?;
        let path = env
            .get("BALLAST_KUBECONFIG")
            .context("BALLAST_KUBECONFIG not set: the control plane is not up")?;
        let kubeconfig =
            Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {path}"))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {path}"))?;
        match config.cluster_url.host() {
            Some("127.0.0.1" | "localhost" | "[::1]") => {}
            other => bail!("refusing non-loopback API server {other:?} in {path} (network rule)"),
        }
        // Never through a proxy: loopback only.
        config.proxy_url = None;
        config.connect_timeout = Some(Duration::from_secs(5));
        let client = Client::try_from(config.clone()).context("building kube client")?;
        let version = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
            .await
            .context("API server did not answer within 10s")?
            .context("API server version request failed")?;
        if version.git_version.is_empty() {
            bail!("API server returned an empty version");
        }
        Ok(TestBed {
            client,
            config,
            env,
        })
    }

    /// A client for the test bed's API server (admin rights).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The client configuration, e.g. to build more clients (one per runtime).
    pub fn kube_config(&self) -> &kube::Config {
        &self.config
    }

    /// All variables the test bed exported.
    pub fn env(&self) -> &TestBedEnv {
        &self.env
    }

    /// The URL of a service, or `None` if it is not running (a panic under
    /// `BALLAST_REQUIRE_TESTBED=1`, naming the `tests/testbed.sh up` component to start).
    pub fn service_url(&self, service: Service) -> Option<String> {
        match self.env.get(service.url_var()) {
            Some(url) => Some(url.to_owned()),
            None if required() => panic!(
                "{} not running: run tests/testbed.sh up {} ({} is not set)",
                service.component(),
                service.component(),
                service.url_var()
            ),
            None => None,
        }
    }

    /// `http://127.0.0.1:PORT` of Prometheus.
    pub fn prometheus_url(&self) -> Option<String> {
        self.service_url(Service::Prometheus)
    }

    /// A Prometheus HTTP API client (loopback, no proxy).
    pub fn prometheus(&self) -> Option<prometheus_http_query::Client> {
        let url = self.prometheus_url()?;
        let http = http_client();
        Some(prometheus_http_query::Client::from(http, &url).expect("valid Prometheus URL"))
    }

    /// Directory where a test may drop a file_sd target file (`*.json`/`*.yaml`) so Prometheus
    /// scrapes an endpoint of its own (127.0.0.1 targets only; others are dropped by relabelling).
    pub fn prometheus_targets_dir(&self) -> Option<String> {
        self.prometheus_url()?;
        self.env
            .get("BALLAST_PROMETHEUS_TARGETS_DIR")
            .map(str::to_owned)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn redis_url(&self) -> Option<String> {
        self.service_url(Service::Redis)
    }

    /// `127.0.0.1:PORT` where the bed's Redis (the same server as [`TestBed::redis_url`]) speaks
    /// TLS only, with a certificate for `127.0.0.1` and `localhost` signed by [`TestBed::redis_ca`].
    pub fn redis_tls_address(&self) -> Option<String> {
        self.redis_url()?;
        self.tls_var("BALLAST_REDIS_TLS_ADDRESS")
    }

    /// Path of the PEM CA certificate that signed the bed's Redis server certificate.
    pub fn redis_ca(&self) -> Option<String> {
        self.redis_url()?;
        self.tls_var("BALLAST_REDIS_CA")
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn rabbitmq_url(&self) -> Option<String> {
        self.service_url(Service::RabbitMq)
    }

    /// `http://guest:guest@127.0.0.1:PORT` of the RabbitMQ management API.
    pub fn rabbitmq_management_url(&self) -> Option<String> {
        self.rabbitmq_url()?;
        self.env
            .get("BALLAST_RABBITMQ_MANAGEMENT_URL")
            .map(str::to_owned)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (trust authentication).
    pub fn postgres_url(&self) -> Option<String> {
        self.service_url(Service::Postgres)
    }

    /// `postgres://ballast_tls@127.0.0.1:PORT/postgres`: a role the bed's PostgreSQL admits over
    /// TLS only (its `pg_hba.conf` rejects it in clear text), so a read as it proves TLS was used.
    pub fn postgres_tls_url(&self) -> Option<String> {
        self.postgres_url()?;
        self.tls_var("BALLAST_POSTGRES_TLS_URL")
    }

    /// Path of the PEM CA certificate that signed the bed's PostgreSQL server certificate (valid
    /// for `127.0.0.1` and `localhost`).
    pub fn postgres_ca(&self) -> Option<String> {
        self.postgres_url()?;
        self.tls_var("BALLAST_POSTGRES_CA")
    }

    /// `127.0.0.1:PORT` of the bed's Kafka broker, PLAINTEXT listener (no login).
    pub fn kafka_address(&self) -> Option<String> {
        self.service_url(Service::Kafka)
    }

    /// The same broker's SASL_PLAINTEXT listener: `(address, [(mechanism user, password)])` with
    /// the PLAIN user first, then the SCRAM user (SCRAM-SHA-256 and -512).
    pub fn kafka_sasl(&self) -> Option<(String, [(String, String); 2])> {
        self.kafka_address()?;
        let var = |v: &str| self.tls_var(v);
        Some((
            var("BALLAST_KAFKA_SASL_ADDRESS")?,
            [
                (
                    var("BALLAST_KAFKA_PLAIN_USER")?,
                    var("BALLAST_KAFKA_PLAIN_PASSWORD")?,
                ),
                (
                    var("BALLAST_KAFKA_SCRAM_USER")?,
                    var("BALLAST_KAFKA_SCRAM_PASSWORD")?,
                ),
            ],
        ))
    }

    /// The same broker's SSL listener: `(address, CA path, client certificate path, client key
    /// path)`; the server certificate names `127.0.0.1` and `localhost`, and a client certificate
    /// is checked when one is sent.
    pub fn kafka_tls(&self) -> Option<(String, String, String, String)> {
        self.kafka_address()?;
        Some((
            self.tls_var("BALLAST_KAFKA_TLS_ADDRESS")?,
            self.tls_var("BALLAST_KAFKA_CA")?,
            self.tls_var("BALLAST_KAFKA_CLIENT_CERT")?,
            self.tls_var("BALLAST_KAFKA_CLIENT_KEY")?,
        ))
    }

    /// `postgres://ballast_mtls@127.0.0.1:PORT/postgres`: a role the bed's PostgreSQL admits over
    /// TLS with a client certificate signed by [`TestBed::postgres_ca`] only (see
    /// [`client_certificate_beside`]).
    pub fn postgres_mtls_url(&self) -> Option<String> {
        self.postgres_url()?;
        self.tls_var("BALLAST_POSTGRES_MTLS_URL")
    }

    /// `amqps://guest:guest@127.0.0.1:PORT/%2f`: the bed's RabbitMQ over TLS, which requires a
    /// client certificate signed by [`TestBed::rabbitmq_ca`] (see [`client_certificate_beside`]).
    pub fn rabbitmq_tls_url(&self) -> Option<String> {
        self.rabbitmq_url()?;
        self.tls_var("BALLAST_RABBITMQ_TLS_URL")
    }

    /// `https://guest:guest@127.0.0.1:PORT` of the RabbitMQ management API over TLS (no client
    /// certificate asked).
    pub fn rabbitmq_management_tls_url(&self) -> Option<String> {
        self.rabbitmq_url()?;
        self.tls_var("BALLAST_RABBITMQ_MANAGEMENT_TLS_URL")
    }

    /// Path of the PEM CA certificate that signed the bed's RabbitMQ server certificate.
    pub fn rabbitmq_ca(&self) -> Option<String> {
        self.rabbitmq_url()?;
        self.tls_var("BALLAST_RABBITMQ_CA")
    }

    fn tls_var(&self, var: &str) -> Option<String> {
        match self.env.get(var) {
            Some(v) => Some(v.to_owned()),
            None if required() => panic!(
                "{var} is not set: the test bed predates its TLS ports; run tests/testbed.sh down \
                 and up again"
            ),
            None => None,
        }
    }

    /// `http://127.0.0.1:PORT` of the moto server (EC2, SQS, ...; credentials `testing`/`testing`).
    pub fn moto_url(&self) -> Option<String> {
        self.service_url(Service::Moto)
    }

    /// `https://127.0.0.1:PORT` of metrics-server. Tests read its metrics through the API server
    /// (`metrics.k8s.io/v1beta1`, [`usage::pod_metrics`]); `Some` says the pipeline is up.
    pub fn metrics_server_url(&self) -> Option<String> {
        self.service_url(Service::MetricsServer)
    }

    /// How often metrics-server scrapes kwok (`--metric-resolution`), 10 s on the bed.
    pub fn metric_resolution(&self) -> Duration {
        self.env
            .get("BALLAST_METRIC_RESOLUTION_SECONDS")
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(10), Duration::from_secs)
    }

    /// Creates an isolated namespace `<prefix>-<random>`; see [`TestNamespace`].
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        TestNamespace::create(self, prefix).await
    }
}

/// The client certificate and key (PEM file paths `client.crt`, `client.key`) the bed made beside
/// a service's CA file `ca` (signed by that CA, for mutual TLS).
pub fn client_certificate_beside(ca: &str) -> (String, String) {
    let dir = std::path::Path::new(ca)
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."));
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    (path("client.crt"), path("client.key"))
}

/// Selects rustls' ring provider for the process. kube and reqwest together compile in both ring
/// and aws-lc-rs, and rustls then refuses to guess; installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client for loopback services: no proxy, short timeouts.
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// `let bed = testbed_or_skip!();` in an async test: the [`TestBed`], or print
/// `skipped: no test bed` and return (with the given value, e.g. `testbed_or_skip!(Ok(()))`).
#[macro_export]
macro_rules! testbed_or_skip {
    () => {
        $crate::testbed_or_skip!(())
    };
    ($ret:expr) => {
        match $crate::TestBed::from_env().await {
            Some(bed) => bed,
            None => {
                eprintln!("skipped: no test bed (run tests/testbed.sh up)");
                return $ret;
            }
        }
    };
}

/// `let url = service_or_skip!(bed.redis_url());`: the value, or print a skip note and return.
#[macro_export]
macro_rules! service_or_skip {
    ($opt:expr) => {
        $crate::service_or_skip!($opt, ())
    };
    ($opt:expr, $ret:expr) => {
        match $opt {
            Some(v) => v,
            None => {
                eprintln!("skipped: {} not running in the test bed", stringify!($opt));
                return $ret;
            }
        }
    };
}
