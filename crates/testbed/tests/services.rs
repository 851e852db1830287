//! The services are real: Prometheus scrapes, Redis, PostgreSQL and RabbitMQ speak their
//! protocols, moto answers EC2 calls. All on 127.0.0.1.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_testbed::services::{
    RespValue, amqp_handshake, moto_ec2, postgres_query, redis_command,
};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{service_or_skip, testbed_or_skip};

#[tokio::test]
async fn prometheus_has_scraped_series() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prom = service_or_skip!(bed.prometheus(), Ok(()));
    // The test bed's Prometheus scrapes itself and etcd every 2s.
    for job in ["prometheus", "etcd"] {
        let query = format!("up{{job=\"{job}\"}}");
        let value = poll_until(
            &query,
            Duration::from_secs(60),
            Duration::from_millis(500),
            || async {
                let res = prom.query(query.as_str()).get().await?;
                Ok(res
                    .data()
                    .as_vector()
                    .and_then(|v| v.first())
                    .map(|s| s.sample().value())
                    .filter(|v| *v == 1.0))
            },
        )
        .await?;
        eprintln!("{query} = {value}");
    }
    // A series from the scraped target itself, not only the synthetic `up`.
    let res = prom.query("etcd_server_has_leader").get().await?;
    let v = res
        .data()
        .as_vector()
        .and_then(|v| v.first())
        .map(|s| s.sample().value());
    ensure!(v == Some(1.0), "etcd_server_has_leader = {v:?}");
    Ok(())
}

#[tokio::test]
async fn redis_answers_ping_and_commands() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.redis_url(), Ok(()));
    ensure!(redis_command(&url, &["PING"]).await? == RespValue::Simple("PONG".into()));
    let key = format!("ballast-test-{}", std::process::id());
    redis_command(&url, &["DEL", &key]).await?;
    let n = redis_command(&url, &["RPUSH", &key, "a", "b", "c"]).await?;
    ensure!(n == RespValue::Integer(3), "RPUSH gave {n:?}");
    ensure!(redis_command(&url, &["LLEN", &key]).await? == RespValue::Integer(3));
    redis_command(&url, &["DEL", &key]).await?;
    Ok(())
}

#[tokio::test]
async fn postgres_runs_queries() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.postgres_url(), Ok(()));
    let rows = postgres_query(&url, "SELECT 1 + 1, current_user, version()").await?;
    ensure!(rows.len() == 1, "rows {rows:?}");
    ensure!(rows[0][0].as_deref() == Some("2"));
    ensure!(rows[0][1].as_deref() == Some("postgres"));
    eprintln!("{}", rows[0][2].as_deref().unwrap_or_default());
    let err = postgres_query(&url, "SELECT * FROM no_such_table")
        .await
        .unwrap_err();
    ensure!(
        format!("{err:#}").contains("does not exist"),
        "unexpected error {err:#}"
    );
    Ok(())
}

#[tokio::test]
async fn rabbitmq_accepts_amqp_connections_and_serves_management_api() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.rabbitmq_url(), Ok(()));
    let hello = amqp_handshake(&url).await?;
    ensure!(hello.version == (0, 9), "AMQP version {:?}", hello.version);
    ensure!(
        hello.product.as_deref() == Some("RabbitMQ"),
        "product {:?}",
        hello.product
    );
    ensure!(
        hello.mechanisms.split(' ').any(|m| m == "PLAIN"),
        "mechanisms {}",
        hello.mechanisms
    );

    let mgmt = bed.rabbitmq_management_url().context("management URL")?;
    let mgmt = reqwest::Url::parse(&mgmt)?;
    let mut api = mgmt.join("/api/overview")?;
    api.set_username("")
        .and_then(|_| api.set_password(None))
        .map_err(|_| anyhow::anyhow!("bad URL"))?;
    let overview: serde_json::Value = ballast_testbed::http_client()
        .get(api)
        .basic_auth(mgmt.username(), mgmt.password())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    ensure!(
        overview["rabbitmq_version"].as_str() == hello.server_version.as_deref(),
        "overview {overview}"
    );
    eprintln!("RabbitMQ {:?}", hello.server_version);
    Ok(())
}

#[tokio::test]
async fn moto_answers_ec2_describe_regions() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let url = service_or_skip!(bed.moto_url(), Ok(()));
    let xml = moto_ec2(&url, "DescribeRegions", &[]).await?;
    ensure!(
        xml.contains("<regionName>us-east-1</regionName>"),
        "DescribeRegions: {xml}"
    );
    let xml = moto_ec2(
        &url,
        "DescribeInstanceTypes",
        &[("InstanceType.1", "m5.large")],
    )
    .await?;
    ensure!(xml.contains("m5.large"), "DescribeInstanceTypes: {xml}");
    Ok(())
}
