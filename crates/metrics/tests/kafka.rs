//! The Kafka event source against the REAL broker of the test bed (`tests/testbed.sh up kube
//! kafka`): a single-node KRaft cluster on 127.0.0.1 with PLAINTEXT, SASL_PLAINTEXT (PLAIN,
//! SCRAM-SHA-256/512) and SSL listeners. Topics, records and committed offsets are made by
//! `KafkaAdmin` on the PLAINTEXT listener; the reader is the one the controller uses.
//!
//! Without a test bed every test prints a skip note and passes, unless
//! `BALLAST_REQUIRE_TESTBED=1` (as `tests/run.sh` sets), when it fails.

use std::time::{Duration, Instant};

use anyhow::Result;
use ballast_api::common::{CrossVersionObjectReference, SecretReference};
use ballast_api::horizontal::{
    EventMetricSource, EventSourceType, HorizontalAutoscaler, HorizontalAutoscalerSpec,
    KafkaOffsetResetPolicy, KafkaSasl, KafkaSource, MetricSourceType, MetricSpec, MetricTarget,
    MetricTargetType,
};
use ballast_horizontal::snapshot::{ControllerConfig, Snapshot, TargetScale};
use ballast_metrics::{
    KafkaAdmin, MetricError, MetricReading, MetricSource, MetricsConfig, ReadError,
};
use ballast_testbed::{TestBed, service_or_skip, testbed_or_skip};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// An autoscaler in `namespace` with one kafka metric: AverageValue `per_replica`, activation
/// `activation`, min 0 replicas, max 10.
fn hza(
    namespace: &str,
    src: KafkaSource,
    per_replica: &str,
    activation: Option<&str>,
    secret: Option<&str>,
) -> HorizontalAutoscaler {
    let event = EventMetricSource {
        type_: EventSourceType::Kafka,
        kafka: Some(src),
        target: Some(MetricTarget {
            type_: MetricTargetType::AverageValue,
            average_value: Some(Quantity(per_replica.into())),
            ..Default::default()
        }),
        activation_threshold: activation.map(|a| Quantity(a.into())),
        credentials_ref: secret.map(|name| SecretReference { name: name.into() }),
        ..Default::default()
    };
    let mut h = HorizontalAutoscaler::new(
        "under-test",
        HorizontalAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: "workers".into(),
            },
            min_replicas: Some(0),
            max_replicas: 10,
            metrics: vec![MetricSpec {
                type_: MetricSourceType::Event,
                event: Some(event),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    h.metadata.namespace = Some(namespace.to_owned());
    h
}

fn kafka(address: &str, group: &str, topic: Option<&str>) -> KafkaSource {
    KafkaSource {
        bootstrap_servers: vec![address.to_owned()],
        consumer_group: group.to_owned(),
        topic: topic.map(str::to_owned),
        allow_idle_consumers: Some(true),
        ..Default::default()
    }
}

fn source(bed: &TestBed) -> MetricSource {
    MetricSource::new(bed.client(), MetricsConfig::default()).expect("metric source")
}

async fn read(src: &MetricSource, h: &HorizontalAutoscaler) -> Result<MetricReading, MetricError> {
    src.read_all(h, "app=workers").await.remove(0)
}

fn value_of(r: &MetricReading) -> f64 {
    let q = r
        .value
        .as_ref()
        .unwrap_or_else(|| panic!("no value in {r:?}"));
    ballast_api::common::quantity_milli(q).unwrap() as f64 / 1000.0
}

async fn value(src: &MetricSource, h: &HorizontalAutoscaler) -> f64 {
    value_of(&read(src, h).await.unwrap_or_else(|e| panic!("{e}")))
}

/// The replica count the decision core picks from `reading`, starting at `current` replicas.
fn desired(h: &HorizontalAutoscaler, current: i32, reading: MetricReading) -> i32 {
    let snapshot = Snapshot {
        autoscaler: h.clone(),
        scale: TargetScale {
            spec_replicas: current,
            status_replicas: Some(current),
            selector: "app=workers".into(),
            ..Default::default()
        },
        pods: Vec::new(),
        metrics: vec![reading],
        other_autoscalers: Vec::new(),
        config: ControllerConfig::default(),
        demand_history: Vec::new(),
        now: "2026-01-01T00:00:00Z".parse().unwrap(),
    };
    ballast_horizontal::explain(&snapshot)
        .expect("decision")
        .desired_replicas
}

/// A topic with `records[i]` records in partition i and the group's commits (`None`: no commit).
async fn topic_with_lag(
    address: &str,
    group: &str,
    records: &[usize],
    commits: &[Option<i64>],
) -> Result<String> {
    let topic = unique("ballast-lag");
    let mut admin = KafkaAdmin::connect(address).await?;
    admin.create_topic(&topic, records.len() as i32).await?;
    for (partition, count) in records.iter().enumerate() {
        if *count > 0 {
            admin.produce(&topic, partition as i32, *count).await?;
        }
    }
    for (partition, commit) in commits.iter().enumerate() {
        if let Some(offset) = commit {
            admin
                .commit(group, &topic, partition as i32, *offset)
                .await?;
        }
    }
    Ok(topic)
}

#[tokio::test]
async fn lag_of_a_group_across_partitions() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let address = service_or_skip!(bed.kafka_address(), Ok(()));
    let group = unique("workers");
    let topic = topic_with_lag(&address, &group, &[10, 20, 5], &[Some(4), Some(20), None]).await?;
    let src = source(&bed);
    // 6 + 0 + 1 (no commit under offsetResetPolicy latest counts 1).
    let h = hza(
        "default",
        kafka(&address, &group, Some(&topic)),
        "10",
        None,
        None,
    );
    assert_eq!(value(&src, &h).await, 7.0);
    // Every topic the group has committed: the same one here.
    let h = hza("default", kafka(&address, &group, None), "10", None, None);
    assert_eq!(value(&src, &h).await, 7.0);
    // Only partition 0.
    let mut only = kafka(&address, &group, Some(&topic));
    only.partition_limitation = Some(vec![0]);
    assert_eq!(
        value(&src, &hza("default", only, "10", None, None)).await,
        6.0
    );
    // A group with no commits at all, on all its topics: nothing to count.
    let h = hza(
        "default",
        kafka(&address, &unique("idle"), None),
        "10",
        None,
        None,
    );
    assert_eq!(value(&src, &h).await, 0.0);
    // A topic that does not exist.
    let h = hza(
        "default",
        kafka(&address, &group, Some("no-such-topic")),
        "10",
        None,
        None,
    );
    let e = read(&src, &h).await.unwrap_err().to_string();
    assert!(
        e.contains("no-such-topic") && e.contains("UnknownTopicOrPartition"),
        "{e}"
    );
    Ok(())
}

#[tokio::test]
async fn offset_reset_policy_without_a_committed_offset() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let address = service_or_skip!(bed.kafka_address(), Ok(()));
    let group = unique("fresh");
    let topic = topic_with_lag(&address, &group, &[12, 7], &[None, Some(2)]).await?;
    let src = source(&bed);
    let with = |f: fn(&mut KafkaSource)| {
        let mut k = kafka(&address, &group, Some(&topic));
        f(&mut k);
        hza("default", k, "10", None, None)
    };
    // latest: 1 + 5; latest with scaleToZeroOnInvalidOffset: 0 + 5; earliest: 12 + 5.
    assert_eq!(value(&src, &with(|_| {})).await, 6.0);
    assert_eq!(
        value(
            &src,
            &with(|k| k.scale_to_zero_on_invalid_offset = Some(true))
        )
        .await,
        5.0
    );
    assert_eq!(
        value(
            &src,
            &with(|k| k.offset_reset_policy = Some(KafkaOffsetResetPolicy::Earliest))
        )
        .await,
        17.0
    );
    Ok(())
}

#[tokio::test]
async fn activation_threshold_decides_zero_or_one() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let address = service_or_skip!(bed.kafka_address(), Ok(()));
    let group = unique("activation");
    let topic = topic_with_lag(&address, &group, &[3], &[Some(0)]).await?;
    let src = source(&bed);
    let h = hza(
        "default",
        kafka(&address, &group, Some(&topic)),
        "10",
        Some("5"),
        None,
    );
    let reading = read(&src, &h).await?;
    assert_eq!(value_of(&reading), 3.0);
    assert_eq!(
        desired(&h, 0, reading),
        0,
        "lag 3 is under the activation threshold 5"
    );
    KafkaAdmin::connect(&address)
        .await?
        .produce(&topic, 0, 5)
        .await?;
    let reading = read(&src, &h).await?;
    assert_eq!(value_of(&reading), 8.0);
    assert_eq!(desired(&h, 0, reading), 1, "lag 8 activates");
    Ok(())
}

#[tokio::test]
async fn idle_consumers_cap_the_replicas_at_the_partitions() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let address = service_or_skip!(bed.kafka_address(), Ok(()));
    let group = unique("cap");
    let topic = topic_with_lag(
        &address,
        &group,
        &[300, 200, 0],
        &[Some(0), Some(0), Some(0)],
    )
    .await?;
    let src = source(&bed);
    let with = |idle: bool, with_lag: bool| {
        let mut k = kafka(&address, &group, Some(&topic));
        k.allow_idle_consumers = Some(idle);
        k.limit_to_partitions_with_lag = Some(with_lag);
        hza("default", k, "10", None, None)
    };
    let free = with(true, false);
    let reading = read(&src, &free).await?;
    assert_eq!(value_of(&reading), 500.0);
    // From 5 replicas the scale-up policy (100% per period) allows 10: maxReplicas, no cap.
    assert_eq!(desired(&free, 5, reading), 10, "without a cap: maxReplicas");
    let capped = with(false, false);
    let reading = read(&src, &capped).await?;
    assert_eq!(value_of(&reading), 30.0, "3 partitions × 10");
    assert_eq!(desired(&capped, 1, reading), 3);
    let lagging = with(false, true);
    let reading = read(&src, &lagging).await?;
    assert_eq!(value_of(&reading), 20.0, "2 partitions with lag × 10");
    assert_eq!(desired(&lagging, 1, reading), 2);
    Ok(())
}

#[tokio::test]
async fn persistent_lag_is_left_out_when_asked() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let address = service_or_skip!(bed.kafka_address(), Ok(()));
    let group = unique("stuck");
    let topic = topic_with_lag(&address, &group, &[10, 10], &[Some(2), Some(5)]).await?;
    let src = source(&bed);
    let mut k = kafka(&address, &group, Some(&topic));
    k.exclude_persistent_lag = Some(true);
    let h = hza("default", k, "10", None, None);
    assert_eq!(
        value(&src, &h).await,
        13.0,
        "first read: nothing to compare with"
    );
    assert_eq!(
        value(&src, &h).await,
        0.0,
        "no commit moved: all lag is persistent"
    );
    KafkaAdmin::connect(&address)
        .await?
        .commit(&group, &topic, 0, 4)
        .await?;
    assert_eq!(
        value(&src, &h).await,
        6.0,
        "partition 0 moved, partition 1 still stuck"
    );
    Ok(())
}

#[tokio::test]
async fn sasl_plain_and_scram_logins() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let address = service_or_skip!(bed.kafka_address(), Ok(()));
    let (sasl_address, [(plain_user, plain_password), (scram_user, scram_password)]) =
        service_or_skip!(bed.kafka_sasl(), Ok(()));
    let ns = bed.namespace("metrics-kafka-sasl").await?;
    let group = unique("sasl");
    let topic = topic_with_lag(&address, &group, &[9], &[Some(1)]).await?;
    ns.create_secret(
        "plain",
        &[("username", &plain_user), ("password", &plain_password)],
    )
    .await?;
    ns.create_secret(
        "scram",
        &[("username", &scram_user), ("password", &scram_password)],
    )
    .await?;
    ns.create_secret(
        "scram-512",
        &[
            ("username", &scram_user),
            ("password", &scram_password),
            ("sasl", "scram_sha512"),
        ],
    )
    .await?;
    let src = source(&bed);
    for (secret, mechanism) in [
        ("plain", Some(KafkaSasl::Plaintext)),
        ("scram", Some(KafkaSasl::ScramSha256)),
        ("scram", Some(KafkaSasl::ScramSha512)),
        ("scram-512", None),
    ] {
        let mut k = kafka(&sasl_address, &group, Some(&topic));
        k.sasl = mechanism;
        let h = hza(ns.name(), k, "10", None, Some(secret));
        assert_eq!(value(&src, &h).await, 8.0, "{secret} {mechanism:?}");
    }
    // Without SASL the SASL listener does not answer requests: an error, not a hang.
    let h = hza(
        ns.name(),
        kafka(&sasl_address, &group, Some(&topic)),
        "10",
        None,
        None,
    );
    assert!(read(&src, &h).await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_names_the_secret() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.kafka_address(), Ok(()));
    let (sasl_address, [(plain_user, _), (scram_user, _)]) =
        service_or_skip!(bed.kafka_sasl(), Ok(()));
    let ns = bed.namespace("metrics-kafka-login").await?;
    ns.create_secret(
        "bad-plain",
        &[("username", &plain_user), ("password", "wrong")],
    )
    .await?;
    ns.create_secret(
        "bad-scram",
        &[("username", &scram_user), ("password", "wrong")],
    )
    .await?;
    let src = source(&bed);
    for (secret, mechanism) in [
        ("bad-plain", KafkaSasl::Plaintext),
        ("bad-scram", KafkaSasl::ScramSha512),
    ] {
        let mut k = kafka(&sasl_address, "g", Some("t"));
        k.sasl = Some(mechanism);
        let h = hza(ns.name(), k, "10", None, Some(secret));
        let e = read(&src, &h).await.unwrap_err();
        assert!(matches!(e.error, ReadError::Secret { .. }), "{e}");
        let text = e.to_string();
        eprintln!("{text}");
        assert!(
            text.contains(&format!("secret {}/{secret}", ns.name()))
                && text.contains("\"username\", \"password\") were refused"),
            "{text}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn tls_with_the_bed_ca_and_a_client_certificate() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let address = service_or_skip!(bed.kafka_address(), Ok(()));
    let (tls_address, ca, cert, key) = service_or_skip!(bed.kafka_tls(), Ok(()));
    let (ca, cert, key) = (
        std::fs::read_to_string(ca)?,
        std::fs::read_to_string(cert)?,
        std::fs::read_to_string(key)?,
    );
    let ns = bed.namespace("metrics-kafka-tls").await?;
    let group = unique("tls");
    let topic = topic_with_lag(&address, &group, &[4], &[Some(0)]).await?;
    ns.create_secret("ca", &[("ca.crt", &ca)]).await?;
    ns.create_secret(
        "mutual",
        &[
            ("ca", &ca),
            ("cert", &cert),
            ("key", &key),
            ("tls", "enable"),
        ],
    )
    .await?;
    ns.create_secret("other-ca", &[("ca", &cert)]).await?;
    let src = source(&bed);
    let tls = |secret: Option<&str>, unsafe_ssl: bool| {
        let mut k = kafka(&tls_address, &group, Some(&topic));
        k.enable_tls = Some(true);
        k.unsafe_ssl = Some(unsafe_ssl);
        hza(ns.name(), k, "10", None, secret)
    };
    assert_eq!(value(&src, &tls(Some("ca"), false)).await, 4.0);
    // tls: enable from the Secret, with a client certificate.
    let mut k = kafka(&tls_address, &group, Some(&topic));
    k.enable_tls = None;
    assert_eq!(
        value(&src, &hza(ns.name(), k, "10", None, Some("mutual"))).await,
        4.0
    );
    // Not verified: any certificate.
    assert_eq!(value(&src, &tls(None, true)).await, 4.0);
    for (secret, fragment) in [(None, "UnknownIssuer"), (Some("other-ca"), "")] {
        let e = read(&src, &tls(secret, false)).await.unwrap_err();
        assert!(matches!(e.error, ReadError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(fragment), "{e}");
    }
    Ok(())
}

#[tokio::test]
async fn a_broker_down_or_silent_fails_within_the_timeouts() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.kafka_address(), Ok(()));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.to_string()
    };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_address = silent.local_addr()?.to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let src = MetricSource::new(
        bed.client(),
        MetricsConfig {
            read_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )?;
    let started = Instant::now();
    let e = read(
        &src,
        &hza("default", kafka(&closed, "g", Some("t")), "10", None, None),
    )
    .await
    .unwrap_err();
    assert!(matches!(e.error, ReadError::Connect { .. }), "{e}");
    let e = read(
        &src,
        &hza(
            "default",
            kafka(&silent_address, "g", Some("t")),
            "10",
            None,
            None,
        ),
    )
    .await
    .unwrap_err();
    eprintln!("{e}");
    assert!(
        e.to_string().contains("timed out") || e.to_string().contains("no answer"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    task.abort();
    Ok(())
}
