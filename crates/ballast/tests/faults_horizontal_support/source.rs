//! The metric source a fault test takes away: Prometheus (a constant query, no data), one of the
//! event sources of [`Backlog`] (Redis, RabbitMQ, PostgreSQL, SQS on moto), or Kafka (a topic
//! and a consumer group's commit, made with the reader crate's `KafkaAdmin`). Each holds a
//! backlog of `level` items; after a restart (the bed's sources come back empty) the test puts
//! it back with [`FaultSource::restore`].

use anyhow::{Context as _, Result};
use ballast_metrics::KafkaAdmin;
use ballast_testbed::TestBed;
use ballast_testbed::backlog::{Backlog, unique};
use ballast_testbed::faults::Part;
use ballast_testbed::services::loopback_addr;
use serde_json::json;

/// A source with a backlog the test controls, and the bed part that serves it.
pub enum FaultSource {
    Prometheus {
        url: String,
        level: usize,
    },
    Backlog {
        backlog: Backlog,
        part: Part,
    },
    Kafka {
        address: String,
        topic: String,
        group: String,
    },
}

impl FaultSource {
    /// The source of `kind` (`prometheus`, `redis`, `rabbitmq`, `postgres`, `sqs`, `kafka`) with
    /// a backlog of `level`; `None` when the bed does not run it.
    pub async fn create(bed: &TestBed, kind: &str, level: usize) -> Result<Option<FaultSource>> {
        let source = match kind {
            "prometheus" => bed
                .prometheus_url()
                .map(|url| FaultSource::Prometheus { url, level }),
            "kafka" => bed.kafka_address().map(|address| FaultSource::Kafka {
                address,
                topic: unique("ballast-faults"),
                group: unique("ballast-faults"),
            }),
            _ => {
                let part = match kind {
                    "redis" => Part::Redis,
                    "rabbitmq" => Part::RabbitMq,
                    "postgres" => Part::Postgres,
                    _ => Part::Moto,
                };
                Backlog::create(bed, kind)
                    .await?
                    .map(|backlog| FaultSource::Backlog { backlog, part })
            }
        };
        let Some(mut source) = source else {
            return Ok(None);
        };
        source.restore(level).await?;
        Ok(Some(source))
    }

    /// The bed part serving this source.
    pub fn part(&self) -> Part {
        match self {
            FaultSource::Prometheus { .. } => Part::Prometheus,
            FaultSource::Backlog { part, .. } => *part,
            FaultSource::Kafka { .. } => Part::Kafka,
        }
    }

    /// What a condition about a failed read must contain to name this source: its port (or
    /// moto's, in the queue URL).
    pub fn fragment(&self) -> Result<String> {
        let url = match self {
            FaultSource::Prometheus { url, .. } => url.clone(),
            FaultSource::Kafka { address, .. } => format!("kafka://{address}"),
            FaultSource::Backlog { backlog, .. } => match backlog {
                Backlog::Redis { url, .. } => url.clone(),
                Backlog::Rabbit { amqp, .. } => amqp.clone(),
                Backlog::Postgres { url, .. } => url.clone(),
                Backlog::Sqs { moto, .. } => moto.clone(),
            },
        };
        let addr = loopback_addr(&url)?;
        Ok(addr.rsplit_once(':').context("host:port")?.1.to_owned())
    }

    /// A metric entry (`spec.metrics[]`) reading this source, 5 items per replica.
    pub fn metric(&self) -> Result<serde_json::Value> {
        let target = json!({ "type": "AverageValue", "averageValue": "5" });
        Ok(match self {
            FaultSource::Prometheus { url, level } => json!({
                "type": "Prometheus",
                "prometheus": { "serverAddress": url, "query": format!("vector({level})"), "target": target },
            }),
            FaultSource::Kafka {
                address,
                topic,
                group,
            } => json!({ "type": "Event", "event": {
                "type": "kafka",
                "kafka": {
                    "bootstrapServers": [address], "consumerGroup": group, "topic": topic,
                    "allowIdleConsumers": true,
                },
                "target": target,
            }}),
            FaultSource::Backlog { backlog, .. } => {
                let mut event = backlog.source()?;
                event["target"] = target;
                json!({ "type": "Event", "event": event })
            }
        })
    }

    /// Puts the backlog back to `level` items in a source that came back empty (or is new).
    pub async fn restore(&mut self, level: usize) -> Result<()> {
        match self {
            FaultSource::Prometheus { .. } => {}
            FaultSource::Backlog { backlog, .. } => {
                backlog.restore().await?;
                backlog.clear().await?;
                backlog.push(level).await?;
            }
            FaultSource::Kafka {
                address,
                topic,
                group,
            } => {
                let mut admin = KafkaAdmin::connect(address).await?;
                admin.create_topic(topic, 1).await?;
                admin.produce(topic, 0, level).await?;
                admin.commit(group, topic, 0, 0).await?;
            }
        }
        Ok(())
    }
}
