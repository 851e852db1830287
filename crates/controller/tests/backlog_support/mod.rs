//! A backlog of work on one of the test bed's real event sources: the four of
//! `ballast_testbed::backlog` (Redis list, RabbitMQ queue, PostgreSQL table, SQS queue on moto)
//! and a Kafka topic with its consumer group (the Kafka client is `ballast_metrics`' own, which
//! the test-bed crate does not depend on), which a test or bench fills and drains, and the `event`
//! metric source that reads it.

#![allow(dead_code)]

use anyhow::Result;
use ballast_metrics::KafkaAdmin;
use ballast_testbed::backlog::{self, unique};
use ballast_testbed::{KwokNode, TestBed, TestDeployment, TestNamespace};
use serde_json::json;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A source of work the test fills and drains, and the metric that reads it.
pub enum Backlog {
    /// Redis, RabbitMQ, PostgreSQL or SQS.
    Bed(backlog::Backlog),
    /// A topic of `KAFKA_PARTITIONS` partitions read by a group under `offsetResetPolicy:
    /// earliest`: pushed records are lag until `clear` commits the log ends.
    Kafka {
        address: String,
        topic: String,
        group: String,
        admin: tokio::sync::Mutex<KafkaAdmin>,
        /// Log-end offset of each partition after the last push.
        ends: std::sync::Mutex<Vec<i64>>,
    },
}

/// Partitions of a Kafka backlog's topic (the lag asks for at most one replica per partition).
pub const KAFKA_PARTITIONS: i32 = 6;

/// The backlog kinds, as `Backlog::create` names them.
pub const KINDS: [&str; 5] = ["redis", "rabbitmq", "postgres", "sqs", "kafka"];

impl Backlog {
    /// The bed's source of `kind`, created empty; `None` when the bed does not run it.
    pub async fn create(bed: &TestBed, kind: &str) -> Result<Option<Backlog>> {
        if kind != "kafka" {
            return Ok(backlog::Backlog::create(bed, kind).await?.map(Backlog::Bed));
        }
        let Some(address) = bed.kafka_address() else {
            return Ok(None);
        };
        let topic = unique("ballast-consumer");
        let mut admin = KafkaAdmin::connect(&address).await?;
        admin.create_topic(&topic, KAFKA_PARTITIONS).await?;
        Ok(Some(Backlog::Kafka {
            address,
            topic,
            group: unique("ballast-consumers"),
            admin: tokio::sync::Mutex::new(admin),
            ends: std::sync::Mutex::new(vec![0; KAFKA_PARTITIONS as usize]),
        }))
    }

    /// The event source reading this backlog (as the `event` of a metric).
    pub fn source(&self) -> Result<serde_json::Value> {
        match self {
            Backlog::Bed(b) => b.source(),
            Backlog::Kafka {
                address,
                topic,
                group,
                ..
            } => Ok(json!({
                "type": "kafka",
                "kafka": {
                    "bootstrapServers": [address], "consumerGroup": group, "topic": topic,
                    "offsetResetPolicy": "earliest",
                },
            })),
        }
    }

    pub async fn push(&self, n: usize) -> Result<()> {
        let (topic, admin, ends) = match self {
            Backlog::Bed(b) => return b.push(n).await,
            Backlog::Kafka {
                topic, admin, ends, ..
            } => (topic, admin, ends),
        };
        // Round robin from partition 0: one item lands on partition 0.
        let mut admin = admin.lock().await;
        for p in 0..KAFKA_PARTITIONS {
            let count = n / KAFKA_PARTITIONS as usize
                + usize::from((p as usize) < n % KAFKA_PARTITIONS as usize);
            if count > 0 {
                let end = admin.produce(topic, p, count).await?;
                lock(ends)[p as usize] = end;
            }
        }
        Ok(())
    }

    pub async fn clear(&self) -> Result<()> {
        match self {
            Backlog::Bed(b) => b.clear().await,
            Backlog::Kafka {
                topic,
                group,
                admin,
                ends,
                ..
            } => {
                // The consumers caught up: the group commits every log end.
                let ends = lock(ends).clone();
                let mut admin = admin.lock().await;
                for (p, end) in ends.into_iter().enumerate() {
                    if end > 0 {
                        admin.commit(group, topic, p as i32, end).await?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A namespace with a kwok node, the consumer Deployment `consumer` at 0 replicas and the `aws`
/// Secret with moto's credentials (for the SQS backlog).
pub async fn consumer_namespace(
    bed: &TestBed,
    prefix: &str,
    consumer: &str,
) -> Result<TestNamespace> {
    let ns = bed.namespace(prefix).await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("32").memory("64Gi"))
        .await?;
    ns.create_deployment(TestDeployment::new(consumer).replicas(0))
        .await?;
    ns.create_secret(
        "aws",
        &[
            ("awsAccessKeyID", "testing"),
            ("awsSecretAccessKey", "testing"),
        ],
    )
    .await?;
    Ok(ns)
}
