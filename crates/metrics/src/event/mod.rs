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
use tls::TlsMaterial;

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

/// What a Redis Secret holds.
#[derive(Default)]
struct RedisCredentials<'a> {
    username: Option<&'a str>,
    password: Option<&'a str>,
    tls: TlsMaterial,
}

/// Redis's user, password and TLS material from its Secret: a Secret must hold `password` unless
/// it holds TLS material.
fn redis_credentials(s: &SecretData) -> Result<RedisCredentials<'_>, ReadError> {
    let tls = TlsMaterial::from_secret(s)?;
    let password = match tls.is_empty() {
        false => s.get("password")?,
        true => Some(s.require("password")?),
    };
    Ok(RedisCredentials {
        username: s.get("username")?,
        password,
        tls,
    })
}

/// PostgreSQL's password and TLS material from its Secret: a Secret must hold at least one.
fn postgres_credentials(s: &SecretData) -> Result<(Option<&str>, TlsMaterial), ReadError> {
    let tls = TlsMaterial::from_secret(s)?;
    let password = match tls.is_empty() {
        false => s.get("password")?,
        true => Some(s.require("password")?),
    };
    Ok((password, tls))
}

/// RabbitMQ's URL and TLS material from its Secret: a Secret must hold `url` unless it holds TLS
/// material (the URL is then the source's).
fn rabbitmq_credentials(s: &SecretData) -> Result<(Option<&str>, TlsMaterial), ReadError> {
    let tls = TlsMaterial::from_secret(s)?;
    let url = match tls.is_empty() {
        false => s.get("url")?,
        true => Some(s.require("url")?),
    };
    Ok((url, tls))
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
                self.redis.read(src, c.username, c.password, &c.tls).await?
            }
            EventSourceType::Rabbitmq => {
                let src = e
                    .rabbitmq
                    .as_ref()
                    .ok_or_else(|| missing("rabbitmq", "rabbitmq"))?;
                let (url, tls) = match secret {
                    Some(s) => rabbitmq_credentials(s)?,
                    None => (None, TlsMaterial::default()),
                };
                self.rabbitmq.read(src, url, &tls).await?
            }
            EventSourceType::Postgresql => {
                let src = e
                    .postgresql
                    .as_ref()
                    .ok_or_else(|| missing("postgresql", "postgresql"))?;
                let (password, tls) = match secret {
                    Some(s) => postgres_credentials(s)?,
                    None => (None, TlsMaterial::default()),
                };
                self.postgres.read(src, password, &tls).await?
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
