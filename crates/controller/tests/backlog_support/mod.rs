//! A backlog of work on one of the test bed's real event sources (Redis list, RabbitMQ queue,
//! PostgreSQL table, SQS queue on moto, Kafka topic and consumer group), which a test or bench
//! fills and drains, and the `event` metric source that reads it.

#![allow(dead_code)]

use anyhow::{Context as _, Result, ensure};
use ballast_metrics::KafkaAdmin;
use ballast_testbed::TestBed;
use ballast_testbed::services::{loopback_addr, postgres_query, redis_command};
use serde_json::json;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A source of work the test fills and drains, and the metric that reads it.
pub enum Backlog {
    Redis {
        url: String,
        list: String,
    },
    Rabbit {
        amqp: String,
        management: String,
        queue: String,
    },
    Postgres {
        url: String,
        table: String,
    },
    Sqs {
        moto: String,
        queue_url: String,
    },
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

pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

fn rabbit_base(management: &str) -> Result<String> {
    Ok(format!("http://{}", loopback_addr(management)?))
}

/// Calls moto's SQS query API (it routes by the credential scope, so a dummy one is sent).
async fn moto_sqs(moto: &str, params: &[(&str, &str)]) -> Result<String> {
    let scope = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0";
    let resp = ballast_testbed::http_client()
        .post(format!("{}/", moto.trim_end_matches('/')))
        .header("authorization", scope)
        .form(params)
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    ensure!(status.is_success(), "moto {params:?}: {status} {text}");
    Ok(text)
}

impl Backlog {
    /// The bed's source of `kind`, created empty; `None` when the bed does not run it.
    pub async fn create(bed: &TestBed, kind: &str) -> Result<Option<Backlog>> {
        let backlog = match kind {
            "redis" => bed.redis_url().map(|url| Backlog::Redis {
                url,
                list: unique("ballast-consumer"),
            }),
            "rabbitmq" => match (bed.rabbitmq_url(), bed.rabbitmq_management_url()) {
                (Some(amqp), Some(management)) => {
                    let queue = unique("ballast-consumer");
                    ballast_testbed::http_client()
                        .put(format!(
                            "{}/api/queues/%2F/{queue}",
                            rabbit_base(&management)?
                        ))
                        .basic_auth("guest", Some("guest"))
                        .json(&json!({"durable": false, "auto_delete": false}))
                        .send()
                        .await?
                        .error_for_status()?;
                    Some(Backlog::Rabbit {
                        amqp,
                        management,
                        queue,
                    })
                }
                _ => None,
            },
            "postgres" => match bed.postgres_url() {
                Some(url) => {
                    let table = unique("ballast_jobs");
                    postgres_query(
                        &url,
                        &format!("CREATE TABLE {table} (id serial, body text)"),
                    )
                    .await?;
                    Some(Backlog::Postgres { url, table })
                }
                None => None,
            },
            "sqs" => match bed.moto_url() {
                Some(moto) => {
                    let name = unique("ballast-consumer");
                    let created =
                        moto_sqs(&moto, &[("Action", "CreateQueue"), ("QueueName", &name)]).await?;
                    let queue_url = created
                        .split("<QueueUrl>")
                        .nth(1)
                        .and_then(|s| s.split("</QueueUrl>").next())
                        .with_context(|| format!("no QueueUrl in {created}"))?
                        .to_owned();
                    Some(Backlog::Sqs { moto, queue_url })
                }
                None => None,
            },
            "kafka" => match bed.kafka_address() {
                Some(address) => {
                    let topic = unique("ballast-consumer");
                    let mut admin = KafkaAdmin::connect(&address).await?;
                    admin.create_topic(&topic, KAFKA_PARTITIONS).await?;
                    Some(Backlog::Kafka {
                        address,
                        topic,
                        group: unique("ballast-consumers"),
                        admin: tokio::sync::Mutex::new(admin),
                        ends: std::sync::Mutex::new(vec![0; KAFKA_PARTITIONS as usize]),
                    })
                }
                None => None,
            },
            other => anyhow::bail!("no backlog kind {other}"),
        };
        Ok(backlog)
    }

    /// The event source reading this backlog (as the `event` of a metric).
    pub fn source(&self) -> Result<serde_json::Value> {
        Ok(match self {
            Backlog::Redis { url, list } => json!({
                "type": "redis-list",
                "redisList": { "address": loopback_addr(url)?, "listName": list },
            }),
            Backlog::Rabbit { amqp, queue, .. } => json!({
                "type": "rabbitmq",
                "rabbitmq": { "url": amqp, "queueName": queue },
            }),
            Backlog::Postgres { url, table } => {
                let addr = loopback_addr(url)?;
                let (host, port) = addr.rsplit_once(':').context("host:port")?;
                json!({
                    "type": "postgresql",
                    "postgresql": {
                        "host": host, "port": port.parse::<i32>()?, "database": "postgres",
                        "user": "postgres", "query": format!("SELECT count(*) FROM {table}"),
                    },
                })
            }
            Backlog::Sqs { queue_url, .. } => json!({
                "type": "aws-sqs",
                "awsSqs": { "queueUrl": queue_url, "region": "us-east-1" },
                "credentialsRef": { "name": "aws" },
            }),
            Backlog::Kafka {
                address,
                topic,
                group,
                ..
            } => json!({
                "type": "kafka",
                "kafka": {
                    "bootstrapServers": [address], "consumerGroup": group, "topic": topic,
                    "offsetResetPolicy": "earliest",
                },
            }),
        })
    }

    pub async fn push(&self, n: usize) -> Result<()> {
        match self {
            Backlog::Redis { url, list } => {
                let items: Vec<String> = (0..n).map(|i| format!("job{i}")).collect();
                let mut args = vec!["RPUSH", list.as_str()];
                args.extend(items.iter().map(String::as_str));
                redis_command(url, &args).await?;
            }
            Backlog::Rabbit {
                management, queue, ..
            } => {
                let url = format!(
                    "{}/api/exchanges/%2F/amq.default/publish",
                    rabbit_base(management)?
                );
                for i in 0..n {
                    let body = json!({"properties": {}, "routing_key": queue, "payload": format!("job{i}"), "payload_encoding": "string"});
                    let text = ballast_testbed::http_client()
                        .post(&url)
                        .basic_auth("guest", Some("guest"))
                        .json(&body)
                        .send()
                        .await?
                        .text()
                        .await?;
                    ensure!(text.contains("\"routed\":true"), "publish: {text}");
                }
            }
            Backlog::Postgres { url, table } => {
                let sql =
                    format!("INSERT INTO {table} (body) SELECT 'job' FROM generate_series(1, {n})");
                postgres_query(url, &sql).await?;
            }
            Backlog::Sqs { moto, queue_url } => {
                for i in 0..n {
                    let body = format!("job{i}");
                    let params = [
                        ("Action", "SendMessage"),
                        ("QueueUrl", queue_url.as_str()),
                        ("MessageBody", &body),
                    ];
                    moto_sqs(moto, &params).await?;
                }
            }
            Backlog::Kafka {
                topic, admin, ends, ..
            } => {
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
            }
        }
        Ok(())
    }

    pub async fn clear(&self) -> Result<()> {
        match self {
            Backlog::Redis { url, list } => {
                redis_command(url, &["DEL", list]).await?;
            }
            Backlog::Rabbit {
                management, queue, ..
            } => {
                ballast_testbed::http_client()
                    .delete(format!(
                        "{}/api/queues/%2F/{queue}/contents",
                        rabbit_base(management)?
                    ))
                    .basic_auth("guest", Some("guest"))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Backlog::Postgres { url, table } => {
                postgres_query(url, &format!("DELETE FROM {table}")).await?;
            }
            Backlog::Sqs { moto, queue_url } => {
                // PurgeQueue is allowed once a minute: receive and delete instead.
                loop {
                    let received = moto_sqs(
                        moto,
                        &[
                            ("Action", "ReceiveMessage"),
                            ("QueueUrl", queue_url),
                            ("MaxNumberOfMessages", "10"),
                        ],
                    )
                    .await?;
                    let handles: Vec<&str> = received
                        .split("<ReceiptHandle>")
                        .skip(1)
                        .filter_map(|s| s.split("</ReceiptHandle>").next())
                        .collect();
                    if handles.is_empty() {
                        break;
                    }
                    for handle in handles {
                        let params = [
                            ("Action", "DeleteMessage"),
                            ("QueueUrl", queue_url.as_str()),
                            ("ReceiptHandle", handle),
                        ];
                        moto_sqs(moto, &params).await?;
                    }
                }
            }
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
            }
        }
        Ok(())
    }
}
