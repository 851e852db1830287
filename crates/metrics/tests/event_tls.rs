//! TLS to the event sources against the REAL servers of the test bed (`tests/testbed.sh up redis
//! rabbitmq postgres`), each with its own CA and a client certificate the bed signed with it:
//! RabbitMQ over AMQPS (which requires the client certificate) and its management API over HTTPS,
//! PostgreSQL with a role admitted only with a client certificate, Redis presenting one.
//!
//! Without a test bed every test prints a skip note and passes, unless
//! `BALLAST_REQUIRE_TESTBED=1` (as `tests/run.sh` sets), when it fails.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::common::{CrossVersionObjectReference, SecretReference};
use ballast_api::horizontal::{
    EventMetricSource, EventSourceType, HorizontalAutoscaler, HorizontalAutoscalerSpec,
    MetricSourceType, MetricSpec, MetricTarget, MetricTargetType, PostgresqlSource, RabbitmqMode,
    RabbitmqSource, RedisListSource,
};
use ballast_metrics::{FailureReason, MetricError, MetricReading, MetricSource, MetricsConfig};
use ballast_testbed::services::{loopback_addr, redis_command};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{client_certificate_beside, service_or_skip, testbed_or_skip};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The source under test as the only metric of an autoscaler in `namespace`, reading Secret
/// `secret`.
fn hza(
    namespace: &str,
    secret: Option<&str>,
    fill: impl FnOnce(&mut EventMetricSource),
) -> HorizontalAutoscaler {
    let mut e = EventMetricSource {
        target: Some(MetricTarget {
            type_: MetricTargetType::Value,
            value: Some(Quantity("1".into())),
            ..Default::default()
        }),
        credentials_ref: secret.map(|name| SecretReference { name: name.into() }),
        ..Default::default()
    };
    fill(&mut e);
    let mut h = HorizontalAutoscaler::new(
        "under-test",
        HorizontalAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: "web".into(),
            },
            max_replicas: 10,
            metrics: vec![MetricSpec {
                type_: MetricSourceType::Event,
                event: Some(e),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    h.metadata.namespace = Some(namespace.to_owned());
    h
}

async fn read(src: &MetricSource, h: &HorizontalAutoscaler) -> Result<MetricReading, MetricError> {
    let mut all = src.read_all(h, "app=web").await;
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn value_of(r: Result<MetricReading, MetricError>, what: &str) -> f64 {
    let r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
    let q = r
        .value
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no single value in {r:?}"));
    ballast_api::common::quantity_milli(q).unwrap() as f64 / 1000.0
}

/// The error of `r`, checked to be a failed event read whose message holds every one of `parts`.
fn error_of(r: Result<MetricReading, MetricError>, parts: &[&str]) -> String {
    let e = match r {
        Ok(r) => panic!("expected an error containing {parts:?}, got {r:?}"),
        Err(e) => e,
    };
    assert_eq!(e.reason, FailureReason::FailedGetEventMetric, "{e}");
    let text = e.to_string();
    for part in parts {
        assert!(text.contains(part), "{text} does not contain {part:?}");
    }
    eprintln!("{text}");
    text
}

/// The PEM texts of a service's CA and of the client certificate and key the bed signed with it.
fn bed_pems(ca_path: &str) -> Result<(String, String, String)> {
    let (cert, key) = client_certificate_beside(ca_path);
    Ok((
        std::fs::read_to_string(ca_path)?,
        std::fs::read_to_string(&cert)
            .with_context(|| format!("{cert}: run tests/testbed.sh down and up again"))?,
        std::fs::read_to_string(key)?,
    ))
}

fn other_ca() -> Result<String> {
    Ok(
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?
            .cert
            .pem(),
    )
}

fn rabbitmq(url: &str, queue: &str) -> impl FnOnce(&mut EventMetricSource) {
    let (url, queue) = (url.to_owned(), queue.to_owned());
    move |e| {
        e.type_ = EventSourceType::Rabbitmq;
        e.rabbitmq = Some(RabbitmqSource {
            url: Some(url),
            queue_name: queue,
            mode: Some(RabbitmqMode::QueueLength),
        });
    }
}

/// Declares `queue` and publishes `n` messages to it through the clear-text management API.
async fn rabbit_queue(management: &str, queue: &str, n: usize) -> Result<()> {
    let base = format!("http://{}", loopback_addr(management)?);
    let http = ballast_testbed::http_client();
    http.put(format!("{base}/api/queues/%2F/{queue}"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"durable": false, "auto_delete": false}))
        .send()
        .await?
        .error_for_status()?;
    for i in 0..n {
        let body = serde_json::json!({"properties": {}, "routing_key": queue, "payload": format!("m{i}"), "payload_encoding": "string"});
        let text = http
            .post(format!("{base}/api/exchanges/%2F/amq.default/publish"))
            .basic_auth("guest", Some("guest"))
            .json(&body)
            .send()
            .await?
            .text()
            .await?;
        ensure!(text.contains("\"routed\":true"), "publish: {text}");
    }
    Ok(())
}

#[tokio::test]
async fn rabbitmq_over_amqps_and_https() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let management = service_or_skip!(bed.rabbitmq_management_url(), Ok(()));
    let amqps = service_or_skip!(bed.rabbitmq_tls_url(), Ok(()));
    let https = service_or_skip!(bed.rabbitmq_management_tls_url(), Ok(()));
    let (ca, cert, key) = bed_pems(&service_or_skip!(bed.rabbitmq_ca(), Ok(())))?;
    let ns = bed.namespace("metrics-rabbit-tls").await?;
    ns.create_secret(
        "mtls",
        &[("ca.crt", &ca), ("tls.crt", &cert), ("tls.key", &key)],
    )
    .await?;
    ns.create_secret("keda-names", &[("ca", &ca), ("cert", &cert), ("key", &key)])
        .await?;
    ns.create_secret("ca-only", &[("ca.crt", &ca)]).await?;
    let other = other_ca()?;
    ns.create_secret(
        "other-ca",
        &[("ca.crt", &other), ("tls.crt", &cert), ("tls.key", &key)],
    )
    .await?;
    let queue = unique("ballast-tls-q");
    rabbit_queue(&management, &queue, 3).await?;
    let src = MetricSource::new(bed.client(), MetricsConfig::default())?;
    let at = |url: &str, secret: Option<&str>| hza(ns.name(), secret, rabbitmq(url, &queue));

    // AMQPS (the port requires a client certificate), with either naming of the Secret's keys.
    for secret in ["mtls", "keda-names"] {
        assert_eq!(
            value_of(read(&src, &at(&amqps, Some(secret))).await, secret),
            3.0
        );
    }
    error_of(
        read(&src, &at(&amqps, Some("ca-only"))).await,
        &["cannot connect", "client certificate", "tls.crt"],
    );
    error_of(
        read(&src, &at(&amqps, Some("other-ca"))).await,
        &["cannot connect", "key \"ca.crt\" of Secret"],
    );
    // HTTPS management API: the CA alone is enough (the API's counts lag by up to its 5 s
    // statistics interval); without it the system roots do not trust the bed's certificate.
    for secret in ["ca-only", "mtls"] {
        let h = at(&https, Some(secret));
        poll_until(
            &format!("3 messages over HTTPS with Secret {secret}"),
            Duration::from_secs(30),
            Duration::from_millis(500),
            || async { Ok((value_of(read(&src, &h).await, secret) == 3.0).then_some(())) },
        )
        .await?;
    }
    error_of(
        read(&src, &at(&https, None)).await,
        &["cannot connect", "system root"],
    );
    error_of(
        read(&src, &at(&https, Some("other-ca"))).await,
        &["cannot connect", "key \"ca.crt\" of Secret"],
    );
    Ok(())
}

fn postgresql(url: &str, ssl_mode: &str) -> Result<impl FnOnce(&mut EventMetricSource)> {
    let addr = loopback_addr(url)?;
    let (host, port) = addr.rsplit_once(':').context("host:port")?;
    let (host, port) = (host.to_owned(), port.parse::<i32>()?);
    let user = reqwest::Url::parse(url)?.username().to_owned();
    let ssl_mode = ssl_mode.to_owned();
    Ok(move |e: &mut EventMetricSource| {
        e.type_ = EventSourceType::Postgresql;
        e.postgresql = Some(PostgresqlSource {
            host,
            port: Some(port),
            database: "postgres".into(),
            user,
            query: "SELECT 1".into(),
            ssl_mode: Some(ssl_mode),
        });
    })
}

#[tokio::test]
async fn postgresql_with_a_client_certificate() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    // The bed admits this role only over TLS with a client certificate signed by its CA.
    let url = service_or_skip!(bed.postgres_mtls_url(), Ok(()));
    let (ca, cert, key) = bed_pems(&service_or_skip!(bed.postgres_ca(), Ok(())))?;
    let ns = bed.namespace("metrics-postgres-mtls").await?;
    ns.create_secret(
        "mtls",
        &[("ca.crt", &ca), ("tls.crt", &cert), ("tls.key", &key)],
    )
    .await?;
    ns.create_secret("client-only", &[("tls.crt", &cert), ("tls.key", &key)])
        .await?;
    ns.create_secret("ca-only", &[("ca.crt", &ca)]).await?;
    ns.create_secret("half", &[("ca.crt", &ca), ("tls.crt", &cert)])
        .await?;
    let src = MetricSource::new(bed.client(), MetricsConfig::default())?;
    let at = |mode: &str, secret: &str| {
        Ok::<_, anyhow::Error>(hza(ns.name(), Some(secret), postgresql(&url, mode)?))
    };

    assert_eq!(
        value_of(read(&src, &at("verify-full", "mtls")?).await, "verify-full"),
        1.0
    );
    assert_eq!(
        value_of(read(&src, &at("require", "client-only")?).await, "require"),
        1.0
    );
    error_of(
        read(&src, &at("verify-full", "ca-only")?).await,
        &["cannot connect", "certificate"],
    );
    error_of(
        read(&src, &at("verify-full", "half")?).await,
        &["\"tls.crt\"", "no key tls.key"],
    );
    Ok(())
}

#[tokio::test]
async fn redis_presents_a_client_certificate() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    let address = service_or_skip!(bed.redis_tls_address(), Ok(()));
    let (ca, cert, key) = bed_pems(&service_or_skip!(bed.redis_ca(), Ok(())))?;
    let ns = bed.namespace("metrics-redis-mtls").await?;
    ns.create_secret(
        "mtls",
        &[("ca.crt", &ca), ("tls.crt", &cert), ("tls.key", &key)],
    )
    .await?;
    // A client key that does not belong to the certificate: the server refuses the handshake.
    let stranger = rcgen::KeyPair::generate()?.serialize_pem();
    ns.create_secret(
        "wrong-key",
        &[("ca.crt", &ca), ("tls.crt", &cert), ("tls.key", &stranger)],
    )
    .await?;
    let list = unique("ballast-mtls-list");
    redis_command(&url, &["RPUSH", &list, "a", "b"]).await?;
    let src = MetricSource::new(bed.client(), MetricsConfig::default())?;
    let at = |secret: &str| {
        hza(ns.name(), Some(secret), |e| {
            e.type_ = EventSourceType::RedisList;
            e.redis_list = Some(RedisListSource {
                address: address.clone(),
                list_name: list.clone(),
                database: None,
                enable_tls: Some(true),
            });
        })
    };
    let result = async {
        assert_eq!(value_of(read(&src, &at("mtls")).await, "mtls"), 2.0);
        error_of(read(&src, &at("wrong-key")).await, &["redis"]);
        anyhow::Ok(())
    }
    .await;
    redis_command(&url, &["DEL", &list]).await?;
    result
}
