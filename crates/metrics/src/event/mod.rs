//! Event sources: the backlog of a queue or database, read straight from it.

pub(crate) mod kafka;
pub(crate) mod postgres;
pub(crate) mod rabbitmq;
pub(crate) mod redis;
pub mod sqs;
pub(crate) mod tls;

use std::time::Duration;

use ballast_api::horizontal::{EventMetricSource, EventSourceType};
use ballast_horizontal::snapshot::MetricReading;

use crate::convert::float_quantity;
use crate::error::ReadError;
use crate::secrets::SecretData;
use sqs::AwsCredentials;

pub(crate) struct EventReaders {
    pub(crate) redis: redis::RedisReader,
    pub(crate) rabbitmq: rabbitmq::RabbitReader,
    pub(crate) postgres: postgres::PostgresReader,
    pub(crate) kafka: kafka::KafkaReader,
    pub(crate) http: reqwest::Client,
    pub(crate) aws_region: Option<String>,
    pub(crate) aws_credentials: Option<AwsCredentials>,
    pub(crate) read_timeout: Duration,
}

fn missing(field: &str, type_: &str) -> ReadError {
    ReadError::InvalidSpec(format!("event type {type_} needs the event.{field} field"))
}

/// The PEM CA certificates of a credentials Secret, under `ca.crt` (the key of cert-manager and
/// `kubernetes.io/tls` Secrets) or `ca` (KEDA's name for it).
fn secret_ca(
    s: &SecretData,
) -> Result<Option<Vec<rustls::pki_types::CertificateDer<'static>>>, ReadError> {
    let Some((key, pem)) = ["ca.crt", "ca"]
        .into_iter()
        .find_map(|k| s.get(k).transpose().map(|v| v.map(|v| (k, v))))
        .transpose()?
    else {
        return Ok(None);
    };
    tls::parse_ca(pem, &format!("key {key:?}"))
        .map(Some)
        .map_err(|e| s.invalid(e.to_string()))
}

/// What a Redis Secret holds.
#[derive(Default)]
struct RedisCredentials<'a> {
    username: Option<&'a str>,
    password: Option<&'a str>,
    ca: Option<&'a str>,
}

/// Redis's user, password and PEM CA (`ca.crt` or `ca`, checked to hold certificates) from its
/// Secret: a Secret must hold `password` unless it holds a CA.
fn redis_credentials(s: &SecretData) -> Result<RedisCredentials<'_>, ReadError> {
    let ca = match s.get("ca.crt")? {
        Some(pem) => Some(pem),
        None => s.get("ca")?,
    };
    if ca.is_some() {
        secret_ca(s)?;
    }
    let password = match ca {
        Some(_) => s.get("password")?,
        None => Some(s.require("password")?),
    };
    Ok(RedisCredentials {
        username: s.get("username")?,
        password,
        ca,
    })
}

/// PostgreSQL's password and CA from its Secret: a Secret must hold at least one of them.
fn postgres_credentials(
    s: &SecretData,
) -> Result<
    (
        Option<&str>,
        Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    ),
    ReadError,
> {
    let ca = secret_ca(s)?;
    let password = match &ca {
        Some(_) => s.get("password")?,
        None => Some(s.require("password")?),
    };
    Ok((password, ca))
}

/// The per-replica value of an AverageValue target (the Kafka replica cap needs it).
fn per_replica_target(e: &EventMetricSource) -> Option<f64> {
    let t = e.target.as_ref()?;
    if t.type_ != ballast_api::horizontal::MetricTargetType::AverageValue {
        return None;
    }
    ballast_api::common::quantity_value(t.average_value.as_ref()?).ok()
}

/// Where an event source reads, for messages (never with credentials).
pub(crate) fn describe(e: &EventMetricSource) -> String {
    match e.type_ {
        EventSourceType::RedisList => match &e.redis_list {
            Some(r) => format!("event source redis-list {:?} at {}", r.list_name, r.address),
            None => "event source redis-list".into(),
        },
        EventSourceType::Rabbitmq => match &e.rabbitmq {
            Some(r) => match &r.url {
                Some(u) => format!(
                    "event source rabbitmq queue {:?} at {}",
                    r.queue_name,
                    rabbitmq::redact(u)
                ),
                None => format!("event source rabbitmq queue {:?}", r.queue_name),
            },
            None => "event source rabbitmq".into(),
        },
        EventSourceType::Postgresql => match &e.postgresql {
            Some(p) => format!(
                "event source postgresql query on {}:{}/{}",
                p.host,
                p.port.unwrap_or(5432),
                p.database
            ),
            None => "event source postgresql".into(),
        },
        EventSourceType::AwsSqs => match &e.aws_sqs {
            Some(s) => format!("event source aws-sqs queue {}", s.queue_url),
            None => "event source aws-sqs".into(),
        },
        EventSourceType::Kafka => match &e.kafka {
            Some(k) => format!(
                "event source kafka consumer group {:?} on {} at {}",
                k.consumer_group,
                k.topic
                    .as_deref()
                    .map_or("all its topics".to_string(), |t| format!("topic {t:?}")),
                k.bootstrap_servers.join(",")
            ),
            None => "event source kafka".into(),
        },
        EventSourceType::Cron => "event source cron".into(),
    }
}

impl EventReaders {
    /// Reads the source's value. Cron needs no reading (the core evaluates the schedule): its
    /// reading is empty.
    pub(crate) async fn read(
        &self,
        e: &EventMetricSource,
        secret: Option<&SecretData>,
    ) -> Result<MetricReading, ReadError> {
        let value = match e.type_ {
            EventSourceType::Cron => return Ok(MetricReading::default()),
            EventSourceType::Kafka => {
                let src = e.kafka.as_ref().ok_or_else(|| missing("kafka", "kafka"))?;
                self.kafka.read(src, per_replica_target(e), secret).await?
            }
            EventSourceType::RedisList => {
                let src = e
                    .redis_list
                    .as_ref()
                    .ok_or_else(|| missing("redisList", "redis-list"))?;
                let c = match secret {
                    Some(s) => redis_credentials(s)?,
                    None => RedisCredentials::default(),
                };
                self.redis.read(src, c.username, c.password, c.ca).await?
            }
            EventSourceType::Rabbitmq => {
                let src = e
                    .rabbitmq
                    .as_ref()
                    .ok_or_else(|| missing("rabbitmq", "rabbitmq"))?;
                let url = match secret {
                    Some(s) => Some(s.require("url")?),
                    None => None,
                };
                self.rabbitmq.read(src, url).await?
            }
            EventSourceType::Postgresql => {
                let src = e
                    .postgresql
                    .as_ref()
                    .ok_or_else(|| missing("postgresql", "postgresql"))?;
                let (password, ca) = match secret {
                    Some(s) => postgres_credentials(s)?,
                    None => (None, None),
                };
                self.postgres.read(src, password, ca.as_deref()).await?
            }
            EventSourceType::AwsSqs => {
                let src = e
                    .aws_sqs
                    .as_ref()
                    .ok_or_else(|| missing("awsSqs", "aws-sqs"))?;
                let creds = match secret {
                    Some(s) => AwsCredentials::from_secret(s)?,
                    None => self.aws_credentials.clone().ok_or_else(|| {
                        ReadError::InvalidSpec(
                            "aws-sqs: no AWS credentials (set credentialsRef with awsAccessKeyID and \
                             awsSecretAccessKey, or give the controller AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                                .into(),
                        )
                    })?,
                };
                sqs::read(
                    &self.http,
                    src,
                    self.aws_region.as_deref(),
                    &creds,
                    self.read_timeout,
                )
                .await?
            }
        };
        Ok(MetricReading {
            value: Some(float_quantity(value)?),
            ..Default::default()
        })
    }
}
