//! Queued work in the bed's event sources, for tests of the horizontal reconciler's event
//! metrics: a Redis list, a RabbitMQ queue, a PostgreSQL table or an SQS queue (moto) that a test
//! creates empty, fills, drains, and creates again after the source was restarted (a restarted
//! part of the bed comes back empty).

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use crate::TestBed;
use crate::services::{loopback_addr, postgres_query, redis_command};

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
        name: String,
        queue_url: String,
    },
}

/// `PREFIX_PID_NANOS`: a name no other test run uses.
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
pub async fn moto_sqs(moto: &str, params: &[(&str, &str)]) -> Result<String> {
    let scope = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0";
    let resp = crate::http_client()
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
                (Some(amqp), Some(management)) => Some(Backlog::Rabbit {
                    amqp,
                    management,
                    queue: unique("ballast-consumer"),
                }),
                _ => None,
            },
            "postgres" => bed.postgres_url().map(|url| Backlog::Postgres {
                url,
                table: unique("ballast_jobs"),
            }),
            "sqs" => bed.moto_url().map(|moto| Backlog::Sqs {
                moto,
                name: unique("ballast-consumer"),
                queue_url: String::new(),
            }),
            other => anyhow::bail!("no backlog kind {other}"),
        };
        let Some(mut backlog) = backlog else {
            return Ok(None);
        };
        backlog.restore().await?;
        Ok(Some(backlog))
    }

    /// Creates the list, queue or table (empty) unless it exists: after [`Backlog::create`], and
    /// again once the source was restarted (the bed's sources come back without their data). An
    /// SQS queue keeps its URL.
    pub async fn restore(&mut self) -> Result<()> {
        match self {
            // A list exists once it has an item.
            Backlog::Redis { .. } => {}
            Backlog::Rabbit {
                management, queue, ..
            } => {
                crate::http_client()
                    .put(format!(
                        "{}/api/queues/%2F/{queue}",
                        rabbit_base(management)?
                    ))
                    .basic_auth("guest", Some("guest"))
                    .json(&json!({"durable": false, "auto_delete": false}))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Backlog::Postgres { url, table } => {
                let sql = format!("CREATE TABLE IF NOT EXISTS {table} (id serial, body text)");
                postgres_query(url, &sql).await?;
            }
            Backlog::Sqs {
                moto,
                name,
                queue_url,
            } => {
                let created =
                    moto_sqs(moto, &[("Action", "CreateQueue"), ("QueueName", name)]).await?;
                *queue_url = created
                    .split("<QueueUrl>")
                    .nth(1)
                    .and_then(|s| s.split("</QueueUrl>").next())
                    .with_context(|| format!("no QueueUrl in {created}"))?
                    .to_owned();
            }
        }
        Ok(())
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
        })
    }

    /// Adds `n` items.
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
                    let text = crate::http_client()
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
            Backlog::Sqs {
                moto, queue_url, ..
            } => {
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
        }
        Ok(())
    }

    /// Removes every item.
    pub async fn clear(&self) -> Result<()> {
        match self {
            Backlog::Redis { url, list } => {
                redis_command(url, &["DEL", list]).await?;
            }
            Backlog::Rabbit {
                management, queue, ..
            } => {
                crate::http_client()
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
            Backlog::Sqs {
                moto, queue_url, ..
            } => {
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
        }
        Ok(())
    }
}
