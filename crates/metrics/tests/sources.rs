//! The readers against the REAL services of the test bed (`tests/testbed.sh up prometheus redis
//! rabbitmq postgres moto`): Prometheus, Redis, RabbitMQ (AMQP and management API), PostgreSQL,
//! SQS on moto, the kube API server (Secrets, aggregated-API discovery). All on 127.0.0.1.
//!
//! Without a test bed every test prints a skip note and passes, unless
//! `BALLAST_REQUIRE_TESTBED=1` (as `tests/run.sh` sets), when it fails.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_api::common::{CrossVersionObjectReference, SecretReference};
use ballast_api::horizontal::{
    AwsSqsSource, ContainerResourceMetricSource, CronSource, EventMetricSource, EventSourceType,
    ExternalMetricSource, HorizontalAutoscaler, HorizontalAutoscalerSpec, KafkaSource,
    MetricIdentifier, MetricSourceType, MetricSpec, MetricTarget, MetricTargetType,
    ObjectMetricSource, PodsMetricSource, PostgresqlSource, PrometheusMetricSource, RabbitmqMode,
    RabbitmqSource, RedisListSource, ResourceMetricSource,
};
use ballast_metrics::{
    FailureReason, MetricError, MetricReading, MetricSource, MetricsConfig, ReadError,
};
use ballast_testbed::services::{RespValue, loopback_addr, postgres_query, redis_command};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, service_or_skip, testbed_or_skip};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

// ---- helpers ------------------------------------------------------------------------------------

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn value_target() -> MetricTarget {
    MetricTarget {
        type_: MetricTargetType::Value,
        value: Some(Quantity("1".into())),
        ..Default::default()
    }
}

fn hza(namespace: &str, metrics: Vec<MetricSpec>) -> HorizontalAutoscaler {
    let mut h = HorizontalAutoscaler::new(
        "under-test",
        HorizontalAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: "web".into(),
            },
            max_replicas: 10,
            metrics,
            ..Default::default()
        },
    );
    h.metadata.namespace = Some(namespace.to_owned());
    h
}

fn prometheus(query: &str, server: Option<&str>, secret: Option<&str>) -> MetricSpec {
    MetricSpec {
        type_: MetricSourceType::Prometheus,
        prometheus: Some(PrometheusMetricSource {
            server_address: server.map(String::from),
            query: query.into(),
            target: value_target(),
            activation_threshold: None,
            credentials_ref: secret.map(|name| SecretReference { name: name.into() }),
        }),
        ..Default::default()
    }
}

fn event(
    type_: EventSourceType,
    secret: Option<&str>,
    fill: impl FnOnce(&mut EventMetricSource),
) -> MetricSpec {
    let mut e = EventMetricSource {
        type_,
        target: Some(value_target()),
        credentials_ref: secret.map(|name| SecretReference { name: name.into() }),
        ..Default::default()
    };
    fill(&mut e);
    MetricSpec {
        type_: MetricSourceType::Event,
        event: Some(e),
        ..Default::default()
    }
}

fn source(bed: &TestBed, config: MetricsConfig) -> MetricSource {
    MetricSource::new(bed.client(), config).expect("metric source")
}

async fn read_one(
    src: &MetricSource,
    h: &HorizontalAutoscaler,
) -> Result<MetricReading, MetricError> {
    let mut all = src.read_all(h, "app=web").await;
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn value_of(r: &MetricReading) -> f64 {
    let q = r
        .value
        .as_ref()
        .unwrap_or_else(|| panic!("no single value in {r:?}"));
    ballast_api::common::quantity_milli(q).unwrap() as f64 / 1000.0
}

fn expect_error(
    r: Result<MetricReading, MetricError>,
    reason: FailureReason,
    contains: &str,
) -> MetricError {
    let e = match r {
        Ok(r) => panic!("expected an error containing {contains:?}, got {r:?}"),
        Err(e) => e,
    };
    assert_eq!(e.reason, reason, "{e}");
    assert!(
        e.to_string().contains(contains),
        "{e} does not contain {contains:?}"
    );
    e
}

fn http() -> reqwest::Client {
    ballast_testbed::http_client()
}

// ---- Prometheus ---------------------------------------------------------------------------------

#[tokio::test]
async fn prometheus_reads_scraped_series() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.prometheus_url(), Ok(()));
    // The controller default serves metrics that name no server.
    let src = source(
        &bed,
        MetricsConfig {
            prometheus_url: Some(url.clone()),
            ..Default::default()
        },
    );

    // One series: the bed's Prometheus scrapes itself.
    let h = hza(
        "default",
        vec![prometheus(
            "prometheus_build_info{job=\"prometheus\"}",
            None,
            None,
        )],
    );
    let r = poll_until(
        "prometheus_build_info scraped",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async { Ok(read_one(&src, &h).await.ok()) },
    )
    .await?;
    assert_eq!(value_of(&r), 1.0, "{r:?}");

    // Several series (etcd and prometheus are both scraped): values, one per series.
    let h = hza("default", vec![prometheus("up", Some(&url), None)]);
    let r = poll_until(
        "up has 2 series",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            Ok(read_one(&src, &h)
                .await
                .ok()
                .filter(|r| r.values.as_ref().is_some_and(|v| v.len() >= 2)))
        },
    )
    .await?;
    let values = r.values.unwrap();
    assert!(values.iter().all(|q| q.0 == "1"), "{values:?}");

    // A scalar and a fractional value.
    let h = hza(
        "default",
        vec![prometheus("scalar(vector(2.5))", Some(&url), None)],
    );
    let r = read_one(&src, &h).await?;
    assert_eq!(r.value.as_ref().unwrap().0, "2500m");
    Ok(())
}

#[tokio::test]
async fn prometheus_errors_are_typed() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.prometheus_url(), Ok(()));
    let src = source(&bed, MetricsConfig::default());
    let read = |q: &str, server: Option<&str>| {
        let h = hza("default", vec![prometheus(q, server, None)]);
        let src = src.clone();
        async move { read_one(&src, &h).await }
    };

    let e = expect_error(
        read("up{job=\"no-such-job\"}", Some(&url)).await,
        FailureReason::FailedGetPrometheusMetric,
        "query returned no data",
    );
    assert!(matches!(e.error, ReadError::EmptyResult));
    assert!(e.to_string().contains(&url), "names the server: {e}");
    eprintln!("{e}");

    let e = expect_error(
        read("sum(", Some(&url)).await,
        FailureReason::FailedGetPrometheusMetric,
        "query failed: bad_data",
    );
    eprintln!("{e}");

    let e = expect_error(
        read("1/0", Some(&url)).await,
        FailureReason::FailedGetPrometheusMetric,
        "not a finite number",
    );
    eprintln!("{e}");

    let e = expect_error(
        read("up", None).await,
        FailureReason::FailedGetPrometheusMetric,
        "no Prometheus server address",
    );
    eprintln!("{e}");

    // Nothing listens there (port 1 on loopback): a connection error, quickly.
    let e = expect_error(
        read("up", Some("http://127.0.0.1:1")).await,
        FailureReason::FailedGetPrometheusMetric,
        "cannot connect",
    );
    eprintln!("{e}");

    // The folded reading carries the message for the core.
    let h = hza(
        "default",
        vec![prometheus("up{job=\"no-such-job\"}", Some(&url), None)],
    );
    let readings = src.readings(&h, "").await;
    assert_eq!(readings.len(), 1);
    let msg = readings[0].error.as_deref().unwrap();
    assert!(
        msg.contains("query returned no data") && msg.contains("Prometheus query"),
        "{msg}"
    );
    Ok(())
}

#[tokio::test]
async fn prometheus_credentials_come_from_the_secret() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.prometheus_url(), Ok(()));
    let ns = bed.namespace("metrics-prom").await?;
    ns.create_secret("prom-token", &[("token", "abc")]).await?;
    ns.create_secret("prom-basic", &[("username", "u"), ("password", "p")])
        .await?;
    ns.create_secret("prom-empty", &[("unrelated", "x")])
        .await?;
    let src = source(&bed, MetricsConfig::default());
    // The bed's Prometheus ignores Authorization: both succeed once the Secret is read.
    for secret in ["prom-token", "prom-basic"] {
        let h = hza(
            ns.name(),
            vec![prometheus("vector(1)", Some(&url), Some(secret))],
        );
        let r = read_one(&src, &h)
            .await
            .with_context(|| secret.to_owned())?;
        assert_eq!(value_of(&r), 1.0);
    }
    let h = hza(
        ns.name(),
        vec![prometheus("vector(1)", Some(&url), Some("prom-empty"))],
    );
    expect_error(
        read_one(&src, &h).await,
        FailureReason::FailedGetPrometheusMetric,
        &format!(
            "secret {}/prom-empty: has neither token nor username and password",
            ns.name()
        ),
    );
    let h = hza(
        ns.name(),
        vec![prometheus("vector(1)", Some(&url), Some("absent"))],
    );
    expect_error(
        read_one(&src, &h).await,
        FailureReason::FailedGetPrometheusMetric,
        "absent: not found",
    );
    Ok(())
}

// ---- Redis --------------------------------------------------------------------------------------

fn redis_list(address: &str, list: &str, secret: Option<&str>) -> MetricSpec {
    event(EventSourceType::RedisList, secret, |e| {
        e.redis_list = Some(RedisListSource {
            address: address.into(),
            list_name: list.into(),
            database: Some(0),
            enable_tls: None,
        })
    })
}

#[tokio::test]
async fn redis_list_length() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    let address = loopback_addr(&url)?;
    let list = unique("ballast-metrics-list");
    let src = source(&bed, MetricsConfig::default());
    let h = hza("default", vec![redis_list(&address, &list, None)]);

    assert_eq!(
        value_of(&read_one(&src, &h).await?),
        0.0,
        "absent list has length 0"
    );
    redis_command(&url, &["LPUSH", &list, "a", "b", "c"]).await?;
    assert_eq!(value_of(&read_one(&src, &h).await?), 3.0);
    redis_command(&url, &["LPUSH", &list, "d"]).await?;
    assert_eq!(
        value_of(&read_one(&src, &h).await?),
        4.0,
        "cached connection sees the new length"
    );

    // A key of another type: the source's error.
    redis_command(&url, &["SET", &list, "x"]).await?;
    let e = expect_error(
        read_one(&src, &h).await,
        FailureReason::FailedGetEventMetric,
        "WRONGTYPE",
    );
    eprintln!("{e}");
    redis_command(&url, &["DEL", &list]).await?;

    let h = hza("default", vec![redis_list("127.0.0.1:1", &list, None)]);
    let e = expect_error(
        read_one(&src, &h).await,
        FailureReason::FailedGetEventMetric,
        "cannot connect to 127.0.0.1:1",
    );
    eprintln!("{e}");
    Ok(())
}

#[tokio::test]
async fn redis_password_comes_from_the_secret() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    let address = loopback_addr(&url)?;
    let ns = bed.namespace("metrics-redis").await?;
    // A Redis ACL user of its own, allowed only LLEN on our keys.
    let user = unique("ballast-user");
    let list = unique("ballast-secret-list");
    let r = redis_command(
        &url,
        &[
            "ACL",
            "SETUSER",
            &user,
            "on",
            ">s3cret",
            "~ballast-secret-list-*",
            "+llen",
            "+client",
            "+select",
            "+ping",
            "+hello",
        ],
    )
    .await?;
    ensure!(r == RespValue::Simple("OK".into()), "ACL SETUSER: {r:?}");
    redis_command(&url, &["RPUSH", &list, "1", "2"]).await?;
    ns.create_secret("redis-good", &[("username", &user), ("password", "s3cret")])
        .await?;
    ns.create_secret("redis-bad", &[("username", &user), ("password", "wrong")])
        .await?;
    ns.create_secret("redis-nokey", &[("username", &user)])
        .await?;
    let src = source(&bed, MetricsConfig::default());

    let result = async {
        let h = hza(
            ns.name(),
            vec![redis_list(&address, &list, Some("redis-good"))],
        );
        assert_eq!(value_of(&read_one(&src, &h).await?), 2.0);
        let h = hza(
            ns.name(),
            vec![redis_list(&address, &list, Some("redis-bad"))],
        );
        let e = expect_error(
            read_one(&src, &h).await,
            FailureReason::FailedGetEventMetric,
            "cannot connect",
        );
        eprintln!("{e}");
        let h = hza(
            ns.name(),
            vec![redis_list(&address, &list, Some("redis-nokey"))],
        );
        expect_error(
            read_one(&src, &h).await,
            FailureReason::FailedGetEventMetric,
            "has no key \"password\"",
        );
        anyhow::Ok(())
    }
    .await;
    redis_command(&url, &["ACL", "DELUSER", &user]).await?;
    redis_command(&url, &["DEL", &list]).await?;
    result
}

// ---- RabbitMQ -----------------------------------------------------------------------------------

#[tokio::test]
async fn redis_list_over_tls() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    // This port speaks TLS only: a value read there was read over TLS.
    let address = service_or_skip!(bed.redis_tls_address(), Ok(()));
    let ca = std::fs::read_to_string(service_or_skip!(bed.redis_ca(), Ok(())))?;
    let other_ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?
        .cert
        .pem();
    let ns = bed.namespace("metrics-redis-tls").await?;
    ns.create_secret("redis-ca", &[("ca.crt", &ca)]).await?;
    ns.create_secret("redis-other-ca", &[("ca.crt", &other_ca)])
        .await?;
    ns.create_secret("redis-broken-ca", &[("ca", "not a certificate")])
        .await?;
    let list = unique("ballast-tls-list");
    redis_command(&url, &["RPUSH", &list, "a", "b", "c"]).await?;
    let src = source(&bed, MetricsConfig::default());
    let read = |tls: bool, secret: Option<&str>| {
        let mut spec = redis_list(&address, &list, secret);
        if let Some(e) = spec.event.as_mut() {
            e.redis_list.as_mut().expect("redisList").enable_tls = Some(tls);
        }
        let (src, ns) = (src.clone(), ns.name().to_owned());
        async move { read_one(&src, &hza(&ns, vec![spec])).await }
    };
    let result = async {
        assert_eq!(value_of(&read(true, Some("redis-ca")).await?), 3.0);
        for (tls, secret, message) in [
            (true, None, "cannot connect"),
            (true, Some("redis-other-ca"), "cannot connect"),
            (true, Some("redis-broken-ca"), "holds no PEM certificate"),
            (false, Some("redis-ca"), "cannot connect"),
        ] {
            let e = expect_error(
                read(tls, secret).await,
                FailureReason::FailedGetEventMetric,
                message,
            );
            eprintln!("enableTls {tls} {secret:?}: {e}");
        }
        anyhow::Ok(())
    }
    .await;
    redis_command(&url, &["DEL", &list]).await?;
    result
}

fn rabbitmq(
    url: Option<&str>,
    queue: &str,
    mode: RabbitmqMode,
    secret: Option<&str>,
) -> MetricSpec {
    event(EventSourceType::Rabbitmq, secret, |e| {
        e.rabbitmq = Some(RabbitmqSource {
            url: url.map(String::from),
            queue_name: queue.into(),
            mode: Some(mode),
        })
    })
}

/// The management API's base URL without credentials (the bed uses guest/guest).
fn management_base(url: &str) -> Result<String> {
    Ok(format!("http://{}", loopback_addr(url)?))
}

async fn rabbit_publish(management: &str, queue: &str, n: usize) -> Result<()> {
    let base = management_base(management)?;
    for i in 0..n {
        let body = serde_json::json!({"properties": {}, "routing_key": queue, "payload": format!("m{i}"), "payload_encoding": "string"});
        let resp = http()
            .post(format!("{base}/api/exchanges/%2F/amq.default/publish"))
            .basic_auth("guest", Some("guest"))
            .json(&body)
            .send()
            .await?;
        let text = resp.text().await?;
        ensure!(text.contains("\"routed\":true"), "publish: {text}");
    }
    Ok(())
}

#[tokio::test]
async fn rabbitmq_queue_length_and_rate() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let amqp = service_or_skip!(bed.rabbitmq_url(), Ok(()));
    let management = service_or_skip!(bed.rabbitmq_management_url(), Ok(()));
    let base = management_base(&management)?;
    let queue = unique("ballast-metrics-q");
    let resp = http()
        .put(format!("{base}/api/queues/%2F/{queue}"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"durable": false, "auto_delete": false}))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "create queue: {}",
        resp.status()
    );
    let src = source(&bed, MetricsConfig::default());

    let result = async {
        // AMQP: a passive declare answers the ready count at once.
        let h = hza(
            "default",
            vec![rabbitmq(
                Some(&amqp),
                &queue,
                RabbitmqMode::QueueLength,
                None,
            )],
        );
        assert_eq!(value_of(&read_one(&src, &h).await?), 0.0);
        rabbit_publish(&management, &queue, 5).await?;
        assert_eq!(value_of(&read_one(&src, &h).await?), 5.0);

        // Management API: statistics lag a few seconds behind.
        let h = hza(
            "default",
            vec![rabbitmq(
                Some(&management),
                &queue,
                RabbitmqMode::QueueLength,
                None,
            )],
        );
        let v = poll_until(
            "management API shows 5 ready",
            Duration::from_secs(30),
            Duration::from_millis(500),
            || async {
                Ok(read_one(&src, &h)
                    .await
                    .ok()
                    .map(|r| value_of(&r))
                    .filter(|v| *v == 5.0))
            },
        )
        .await?;
        assert_eq!(v, 5.0);

        // Message rate: publish while polling until the broker reports a positive rate.
        let h = hza(
            "default",
            vec![rabbitmq(
                Some(&management),
                &queue,
                RabbitmqMode::MessageRate,
                None,
            )],
        );
        let rate = poll_until(
            "publish rate > 0",
            Duration::from_secs(40),
            Duration::from_secs(1),
            || async {
                rabbit_publish(&management, &queue, 3).await?;
                Ok(read_one(&src, &h)
                    .await
                    .ok()
                    .map(|r| value_of(&r))
                    .filter(|v| *v > 0.0))
            },
        )
        .await?;
        eprintln!("publish rate {rate}/s");

        // MessageRate over AMQP is refused; an unknown queue is the source's error.
        let h = hza(
            "default",
            vec![rabbitmq(
                Some(&amqp),
                &queue,
                RabbitmqMode::MessageRate,
                None,
            )],
        );
        expect_error(
            read_one(&src, &h).await,
            FailureReason::FailedGetEventMetric,
            "needs the management API",
        );
        for url in [&amqp, &management] {
            let h = hza(
                "default",
                vec![rabbitmq(
                    Some(url),
                    "no-such-queue-ballast",
                    RabbitmqMode::QueueLength,
                    None,
                )],
            );
            let e = expect_error(
                read_one(&src, &h).await,
                FailureReason::FailedGetEventMetric,
                "no-such-queue-ballast",
            );
            assert!(
                !e.to_string().contains("guest:guest"),
                "credentials leaked: {e}"
            );
            eprintln!("{e}");
        }
        // After the failed declare closed its channel, the cached connection still works.
        let h = hza(
            "default",
            vec![rabbitmq(
                Some(&amqp),
                &queue,
                RabbitmqMode::QueueLength,
                None,
            )],
        );
        assert!(value_of(&read_one(&src, &h).await?) >= 5.0);
        anyhow::Ok(())
    }
    .await;
    let _ = http()
        .delete(format!("{base}/api/queues/%2F/{queue}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await;
    result
}

#[tokio::test]
async fn rabbitmq_url_comes_from_the_secret() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let amqp = service_or_skip!(bed.rabbitmq_url(), Ok(()));
    let management = service_or_skip!(bed.rabbitmq_management_url(), Ok(()));
    let ns = bed.namespace("metrics-rabbit").await?;
    let queue = unique("ballast-metrics-sq");
    let base = management_base(&management)?;
    http()
        .put(format!("{base}/api/queues/%2F/{queue}"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"durable": false, "auto_delete": false}))
        .send()
        .await?
        .error_for_status()?;
    rabbit_publish(&management, &queue, 2).await?;
    // The spec has no URL: only the Secret's `url` (with the credentials) reaches the broker.
    ns.create_secret("rabbit", &[("url", &amqp)]).await?;
    let bad = amqp.replace("guest:guest", "guest:wrong");
    ns.create_secret("rabbit-bad", &[("url", &bad)]).await?;
    let src = source(&bed, MetricsConfig::default());
    let result = async {
        let h = hza(
            ns.name(),
            vec![rabbitmq(
                None,
                &queue,
                RabbitmqMode::QueueLength,
                Some("rabbit"),
            )],
        );
        assert_eq!(value_of(&read_one(&src, &h).await?), 2.0);
        let h = hza(
            ns.name(),
            vec![rabbitmq(
                None,
                &queue,
                RabbitmqMode::QueueLength,
                Some("rabbit-bad"),
            )],
        );
        let e = expect_error(
            read_one(&src, &h).await,
            FailureReason::FailedGetEventMetric,
            "cannot connect",
        );
        assert!(!e.to_string().contains("wrong"), "credentials leaked: {e}");
        eprintln!("{e}");
        let h = hza(
            ns.name(),
            vec![rabbitmq(None, &queue, RabbitmqMode::QueueLength, None)],
        );
        expect_error(
            read_one(&src, &h).await,
            FailureReason::FailedGetEventMetric,
            "no URL",
        );
        anyhow::Ok(())
    }
    .await;
    let _ = http()
        .delete(format!("{base}/api/queues/%2F/{queue}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await;
    result
}

// ---- PostgreSQL ---------------------------------------------------------------------------------

fn postgresql(url: &str, query: &str) -> Result<MetricSpec> {
    let u = reqwest::Url::parse(url)?;
    let addr = loopback_addr(url)?;
    let (host, port) = addr.rsplit_once(':').context("host:port")?;
    let (host, port) = (host.to_owned(), port.parse::<i32>()?);
    let user = if u.username().is_empty() {
        "postgres".to_owned()
    } else {
        u.username().to_owned()
    };
    let db = u.path().trim_start_matches('/').to_owned();
    Ok(event(EventSourceType::Postgresql, None, |e| {
        e.postgresql = Some(PostgresqlSource {
            host,
            port: Some(port),
            database: if db.is_empty() { "postgres".into() } else { db },
            user,
            query: query.into(),
            ssl_mode: None,
        })
    }))
}

#[tokio::test]
async fn postgresql_query_value() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.postgres_url(), Ok(()));
    let table = unique("ballast_jobs").replace('-', "_");
    postgres_query(&url, &format!("CREATE TABLE {table} (id int, done bool)")).await?;
    postgres_query(
        &url,
        &format!("INSERT INTO {table} SELECT g, g % 3 = 0 FROM generate_series(1, 10) g"),
    )
    .await?;
    let src = source(&bed, MetricsConfig::default());
    let result = async {
        let read = |q: String| {
            let spec = postgresql(&url, &q);
            let src = src.clone();
            async move {
                read_one(&src, &hza("default", vec![spec?]))
                    .await
                    .map_err(anyhow::Error::from)
            }
        };
        // count(*) is bigint; numeric and float are read too.
        assert_eq!(
            value_of(&read(format!("SELECT count(*) FROM {table} WHERE NOT done")).await?),
            7.0
        );
        assert_eq!(value_of(&read("SELECT 42.5::numeric".into()).await?), 42.5);
        assert_eq!(value_of(&read("SELECT 0.25::float8".into()).await?), 0.25);
        postgres_query(&url, &format!("INSERT INTO {table} VALUES (11, false)")).await?;
        assert_eq!(
            value_of(&read(format!("SELECT count(*) FROM {table} WHERE NOT done")).await?),
            8.0
        );

        for (q, msg) in [
            ("SELECT NULL::int".to_owned(), "returned NULL"),
            (
                format!("SELECT id FROM {table} WHERE id < 0"),
                "returned no rows",
            ),
            ("SELECT 'many'".to_owned(), "not a number"),
            (
                "SELECT * FROM no_such_table_ballast".to_owned(),
                "does not exist",
            ),
        ] {
            let spec = postgresql(&url, &q)?;
            let e = expect_error(
                read_one(&src, &hza("default", vec![spec])).await,
                FailureReason::FailedGetEventMetric,
                msg,
            );
            eprintln!("{e}");
        }
        // A query longer than the read timeout is cancelled by the server and reported.
        let short = source(
            &bed,
            MetricsConfig {
                read_timeout: Duration::from_secs(1),
                ..Default::default()
            },
        );
        let started = Instant::now();
        let spec = postgresql(&url, "SELECT pg_sleep(5)")?;
        let r = read_one(&short, &hza("default", vec![spec])).await;
        assert!(
            r.is_err() && started.elapsed() < Duration::from_secs(3),
            "{r:?} after {:?}",
            started.elapsed()
        );
        eprintln!("{}", r.unwrap_err());
        anyhow::Ok(())
    }
    .await;
    postgres_query(&url, &format!("DROP TABLE {table}")).await?;
    result
}

/// `postgresql(url, query)` with `sslMode` and a credentials Secret.
fn postgresql_tls(
    url: &str,
    query: &str,
    ssl_mode: &str,
    secret: Option<&str>,
) -> Result<MetricSpec> {
    let mut spec = postgresql(url, query)?;
    let e = spec.event.as_mut().context("event")?;
    e.credentials_ref = secret.map(|name| SecretReference { name: name.into() });
    e.postgresql.as_mut().context("postgresql")?.ssl_mode = Some(ssl_mode.into());
    Ok(spec)
}

/// 1 when the session reading it runs over TLS.
const SESSION_USES_TLS: &str =
    "SELECT CASE WHEN ssl THEN 1 ELSE 0 END FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

#[tokio::test]
async fn postgresql_over_tls() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    // The bed admits this role over TLS only: a value read as it was read over TLS.
    let url = service_or_skip!(bed.postgres_tls_url(), Ok(()));
    let ca = std::fs::read_to_string(service_or_skip!(bed.postgres_ca(), Ok(())))?;
    let other_ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?
        .cert
        .pem();
    let ns = bed.namespace("metrics-postgres-tls").await?;
    ns.create_secret("pg-ca", &[("ca.crt", &ca)]).await?;
    ns.create_secret("pg-keda-ca", &[("ca", &ca)]).await?;
    ns.create_secret("pg-other-ca", &[("ca.crt", &other_ca)])
        .await?;
    ns.create_secret("pg-broken-ca", &[("ca.crt", "not a certificate")])
        .await?;
    let src = source(&bed, MetricsConfig::default());
    let read = |mode: &str, secret: Option<&str>| {
        let spec = postgresql_tls(&url, SESSION_USES_TLS, mode, secret);
        let (src, ns) = (src.clone(), ns.name().to_owned());
        async move { Ok::<_, anyhow::Error>(read_one(&src, &hza(&ns, vec![spec?])).await) }
    };

    // In clear text the server refuses the role: the TLS cases below cannot have fallen back.
    let e = expect_error(
        read("disable", None).await?,
        FailureReason::FailedGetEventMetric,
        "no encryption",
    );
    eprintln!("{e}");
    for (mode, secret) in [
        ("require", None),
        ("prefer", None),
        ("verify-full", Some("pg-ca")),
        ("verify-full", Some("pg-keda-ca")),
    ] {
        let r = read(mode, secret).await?;
        let value = value_of(&r.map_err(|e| anyhow::anyhow!("{mode} {secret:?}: {e}"))?);
        assert_eq!(value, 1.0, "{mode} {secret:?}");
    }
    // verify-full checks the chain: neither the system roots nor another CA trust the bed's.
    for secret in [None, Some("pg-other-ca")] {
        let e = expect_error(
            read("verify-full", secret).await?,
            FailureReason::FailedGetEventMetric,
            "invalid peer certificate",
        );
        eprintln!("{e}");
    }
    expect_error(
        read("verify-full", Some("pg-broken-ca")).await?,
        FailureReason::FailedGetEventMetric,
        "holds no PEM certificate",
    );
    expect_error(
        read("verify-ca", None).await?,
        FailureReason::FailedGetEventMetric,
        "use disable, prefer, require or verify-full",
    );
    Ok(())
}

// ---- SQS on moto --------------------------------------------------------------------------------

/// Calls moto's SQS query API directly, independent of the reader under test. moto does not
/// check signatures but routes by the credential scope's service, so a dummy one is sent.
async fn moto_sqs(moto: &str, params: &[(&str, &str)]) -> Result<String> {
    let scope = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0";
    let resp = http()
        .post(format!("{moto}/"))
        .header("authorization", scope)
        .form(params)
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    ensure!(status.is_success(), "moto {params:?}: {status} {text}");
    Ok(text)
}

fn sqs(queue_url: &str, in_flight: bool, secret: Option<&str>) -> MetricSpec {
    event(EventSourceType::AwsSqs, secret, |e| {
        e.aws_sqs = Some(AwsSqsSource {
            queue_url: queue_url.into(),
            region: Some("us-east-1".into()),
            endpoint: None,
            include_in_flight: Some(in_flight),
        })
    })
}

#[tokio::test]
async fn sqs_queue_depth_on_moto() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let moto = moto.trim_end_matches('/').to_owned();
    let ns = bed.namespace("metrics-sqs").await?;
    let name = unique("ballast-jobs");
    let created = moto_sqs(&moto, &[("Action", "CreateQueue"), ("QueueName", &name)]).await?;
    let queue_url = created
        .split("<QueueUrl>")
        .nth(1)
        .and_then(|s| s.split("</QueueUrl>").next())
        .with_context(|| format!("no QueueUrl in {created}"))?
        .to_owned();
    ensure!(
        queue_url.starts_with("http://127.0.0.1"),
        "queue URL {queue_url} is not loopback"
    );
    for i in 0..3 {
        moto_sqs(
            &moto,
            &[
                ("Action", "SendMessage"),
                ("QueueUrl", &queue_url),
                ("MessageBody", &format!("job {i}")),
            ],
        )
        .await?;
    }
    // One message received: in flight until its visibility timeout.
    moto_sqs(
        &moto,
        &[
            ("Action", "ReceiveMessage"),
            ("QueueUrl", &queue_url),
            ("VisibilityTimeout", "600"),
        ],
    )
    .await?;

    ns.create_secret(
        "aws",
        &[
            ("awsAccessKeyID", "testing"),
            ("awsSecretAccessKey", "testing"),
        ],
    )
    .await?;
    ns.create_secret("aws-partial", &[("awsAccessKeyID", "testing")])
        .await?;
    // No controller-wide credentials: the Secret is the only way in.
    let src = source(&bed, MetricsConfig::default());
    let h = hza(ns.name(), vec![sqs(&queue_url, true, Some("aws"))]);
    assert_eq!(
        value_of(&read_one(&src, &h).await?),
        3.0,
        "visible + in flight"
    );
    let h = hza(ns.name(), vec![sqs(&queue_url, false, Some("aws"))]);
    assert_eq!(value_of(&read_one(&src, &h).await?), 2.0, "visible only");

    let h = hza(ns.name(), vec![sqs(&queue_url, true, None)]);
    expect_error(
        read_one(&src, &h).await,
        FailureReason::FailedGetEventMetric,
        "no AWS credentials",
    );
    let h = hza(ns.name(), vec![sqs(&queue_url, true, Some("aws-partial"))]);
    expect_error(
        read_one(&src, &h).await,
        FailureReason::FailedGetEventMetric,
        "has no key \"awsSecretAccessKey\"",
    );

    // Controller-wide credentials serve metrics without a Secret.
    let with_env = source(
        &bed,
        MetricsConfig {
            aws_credentials: Some(ballast_metrics::AwsCredentials {
                access_key_id: "testing".into(),
                secret_access_key: "testing".into(),
                session_token: None,
            }),
            ..Default::default()
        },
    );
    let h = hza(ns.name(), vec![sqs(&queue_url, true, None)]);
    assert_eq!(value_of(&read_one(&with_env, &h).await?), 3.0);

    let missing = format!("{}-missing", queue_url);
    let h = hza(ns.name(), vec![sqs(&missing, true, Some("aws"))]);
    let e = expect_error(
        read_one(&src, &h).await,
        FailureReason::FailedGetEventMetric,
        "SQS error",
    );
    eprintln!("{e}");
    moto_sqs(
        &moto,
        &[("Action", "DeleteQueue"), ("QueueUrl", &queue_url)],
    )
    .await?;
    Ok(())
}

/// The public SQS client (the node controller's interruption queue): create, send, long-poll
/// receive, delete, depth — every call signed and in the JSON protocol.
#[tokio::test]
async fn sqs_client_round_trip_on_moto() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let creds = ballast_metrics::AwsCredentials {
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        session_token: None,
    };
    let name = unique("ballast-client");
    let url = ballast_metrics::create_queue(&moto, "us-east-1", &name, &creds).await?;
    ensure!(url.starts_with("http://127.0.0.1"), "{url}");
    let q = ballast_metrics::SqsClient::new(&url, creds, Default::default())?;
    // Empty queue: a short long poll returns nothing.
    let none = q.receive(10, Duration::from_secs(1), None).await?;
    ensure!(none.is_empty(), "{none:?}");
    let id = q.send(r#"{"hello": "sqs"}"#).await?;
    ensure!(!id.is_empty());
    let got = q
        .receive(10, Duration::from_secs(5), Some(Duration::from_secs(30)))
        .await?;
    ensure!(got.len() == 1, "{got:?}");
    ensure!(got[0].message_id == id && got[0].body == r#"{"hello": "sqs"}"#);
    ensure!(q.depth().await? == (0, 1), "one in flight");
    q.delete(&got[0].receipt_handle).await?;
    ensure!(q.depth().await? == (0, 0), "deleted");
    let missing = ballast_metrics::SqsClient::new(
        &format!("{url}-missing"),
        ballast_metrics::AwsCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        },
        Default::default(),
    )?;
    let e = missing
        .receive(1, Duration::ZERO, None)
        .await
        .expect_err("no such queue");
    ensure!(e.to_string().contains("SQS error"), "{e}");
    q.call("DeleteQueue", &serde_json::json!({ "QueueUrl": url }))
        .await?;
    Ok(())
}

// ---- Kubernetes metrics APIs --------------------------------------------------------------------

async fn served(bed: &TestBed, group_version: &str) -> bool {
    bed.client()
        .list_api_group_resources(group_version)
        .await
        .is_ok()
}

#[tokio::test]
async fn kubernetes_metrics_apis_not_served_are_clear_errors() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let src = source(&bed, MetricsConfig::default());
    let target = || MetricTarget {
        type_: MetricTargetType::AverageValue,
        average_value: Some(Quantity("1".into())),
        ..Default::default()
    };
    let id = |name: &str| MetricIdentifier {
        name: name.into(),
        selector: None,
    };
    let cases: Vec<(MetricSpec, &str, FailureReason)> = vec![
        (
            MetricSpec {
                type_: MetricSourceType::Resource,
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: target(),
                }),
                ..Default::default()
            },
            "metrics.k8s.io/v1beta1",
            FailureReason::FailedGetResourceMetric,
        ),
        (
            MetricSpec {
                type_: MetricSourceType::ContainerResource,
                container_resource: Some(ContainerResourceMetricSource {
                    name: "cpu".into(),
                    container: "app".into(),
                    target: target(),
                }),
                ..Default::default()
            },
            "metrics.k8s.io/v1beta1",
            FailureReason::FailedGetContainerResourceMetric,
        ),
        (
            MetricSpec {
                type_: MetricSourceType::Pods,
                pods: Some(PodsMetricSource {
                    metric: id("rps"),
                    target: target(),
                }),
                ..Default::default()
            },
            "custom.metrics.k8s.io/v1beta2",
            FailureReason::FailedGetPodsMetric,
        ),
        (
            MetricSpec {
                type_: MetricSourceType::Object,
                object: Some(ObjectMetricSource {
                    described_object: CrossVersionObjectReference {
                        api_version: Some("apps/v1".into()),
                        kind: "Deployment".into(),
                        name: "web".into(),
                    },
                    target: target(),
                    metric: id("hits"),
                }),
                ..Default::default()
            },
            "custom.metrics.k8s.io/v1beta2",
            FailureReason::FailedGetObjectMetric,
        ),
        (
            MetricSpec {
                type_: MetricSourceType::External,
                external: Some(ExternalMetricSource {
                    metric: id("queue"),
                    target: target(),
                }),
                ..Default::default()
            },
            "external.metrics.k8s.io/v1beta1",
            FailureReason::FailedGetExternalMetric,
        ),
    ];
    for (spec, gv, reason) in cases {
        let h = hza("default", vec![spec]);
        let r = read_one(&src, &h).await;
        if served(&bed, gv).await {
            // A metrics server is registered in this bed: the read must at least not report
            // "not served".
            if let Err(e) = &r {
                assert!(!matches!(e.error, ReadError::NotServed { .. }), "{e}");
            }
            eprintln!("{gv} is served here: {r:?}");
            continue;
        }
        let e = expect_error(
            r,
            reason,
            &format!("the cluster does not serve {gv} (no APIService registered for it)"),
        );
        assert!(matches!(e.error, ReadError::NotServed { .. }));
        eprintln!("{e}");
    }
    // With no metrics listed, the HPA's 80% CPU default is read.
    let h = hza("default", vec![]);
    let all = src.read_all(&h, "app=web").await;
    assert_eq!(all.len(), 1);
    if !served(&bed, "metrics.k8s.io/v1beta1").await {
        let e = all.into_iter().next().unwrap().unwrap_err();
        assert_eq!(e.reason, FailureReason::FailedGetResourceMetric, "{e}");
    }
    Ok(())
}

// ---- bounds, order, unsupported sources ---------------------------------------------------------

/// A TCP server on loopback that accepts connections and never answers.
async fn silent_server() -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock); // keep them open, say nothing
            if held.len() > 64 {
                break;
            }
        }
    });
    Ok((addr, task))
}

#[tokio::test]
async fn a_hung_source_times_out() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let (addr, task) = silent_server().await?;
    let config = MetricsConfig {
        read_timeout: Duration::from_millis(1500),
        connect_timeout: Duration::from_millis(1000),
        aws_credentials: Some(ballast_metrics::AwsCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        }),
        ..Default::default()
    };
    let src = source(&bed, config);
    let specs = vec![
        prometheus("up", Some(&format!("http://{addr}")), None),
        redis_list(&addr, "jobs", None),
        rabbitmq(
            Some(&format!("amqp://guest:guest@{addr}/%2f")),
            "q",
            RabbitmqMode::QueueLength,
            None,
        ),
        rabbitmq(
            Some(&format!("http://{addr}")),
            "q",
            RabbitmqMode::QueueLength,
            None,
        ),
        sqs(&format!("http://{addr}/123/q"), true, None),
    ];
    let h = hza("default", specs);
    let started = Instant::now();
    let all = src.read_all(&h, "").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "reads took {took:?}");
    assert_eq!(all.len(), 5);
    for r in all {
        let e = r.expect_err("a silent server gives no value");
        eprintln!("{e}");
        let text = e.to_string();
        assert!(text.contains("timed out"), "{text}");
    }
    task.abort();
    Ok(())
}

#[tokio::test]
async fn several_metrics_read_in_order() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prom = service_or_skip!(bed.prometheus_url(), Ok(()));
    let redis = service_or_skip!(bed.redis_url(), Ok(()));
    let list = unique("ballast-metrics-order");
    redis_command(&redis, &["RPUSH", &list, "a", "b"]).await?;
    // A port nothing listens on: the kafka reading is a connection error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let src = source(
        &bed,
        MetricsConfig {
            prometheus_url: Some(prom),
            ..Default::default()
        },
    );
    let h = hza(
        "default",
        vec![
            prometheus("vector(7)", None, None),
            redis_list(&loopback_addr(&redis)?, &list, None),
            event(EventSourceType::Cron, None, |e| {
                e.target = None;
                e.cron = Some(CronSource {
                    timezone: None,
                    start: "0 8 * * *".into(),
                    end: "0 18 * * *".into(),
                    desired_replicas: 3,
                })
            }),
            event(EventSourceType::Kafka, None, |e| {
                e.kafka = Some(KafkaSource {
                    bootstrap_servers: vec![closed.clone()],
                    consumer_group: "g".into(),
                    topic: Some("t".into()),
                    ..Default::default()
                })
            }),
        ],
    );
    let readings = src.readings(&h, "").await;
    redis_command(&redis, &["DEL", &list]).await?;
    assert_eq!(readings.len(), 4);
    assert_eq!(value_of(&readings[0]), 7.0);
    assert_eq!(value_of(&readings[1]), 2.0);
    assert_eq!(
        readings[2],
        MetricReading::default(),
        "cron needs no reading"
    );
    let kafka = readings[3].error.as_deref().unwrap();
    assert!(
        kafka.contains(&format!("cannot connect to {closed}")),
        "{kafka}"
    );
    let all = src.read_all(&h, "").await;
    let e = all[3].as_ref().unwrap_err();
    assert_eq!(
        (e.index, e.reason),
        (3, FailureReason::FailedGetEventMetric)
    );
    assert!(matches!(e.error, ReadError::Connect { .. }));
    Ok(())
}
