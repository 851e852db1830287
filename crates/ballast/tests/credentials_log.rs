//! Credentials are never logged, against the REAL test bed (`tests/testbed.sh up kube redis
//! rabbitmq postgres`).
//!
//! `credentials_never_appear_in_the_logs` runs `ballast controller horizontal` at `RUST_LOG=trace`
//! on autoscalers whose sources take their credentials from Secrets (`credentialsRef`, as users
//! write them): Redis (an ACL user of the test with a random password), RabbitMQ (a user of the
//! test, the password inside the Secret's `url`), PostgreSQL (a password), Prometheus (a bearer
//! token; basic auth) and SQS on moto (a secret access key and a session token). One autoscaler of
//! Redis and one of RabbitMQ use a wrong password (PostgreSQL, Prometheus and moto of the bed check
//! none). Once every autoscaler has reconciled several
//! times (the good ones scaled their Deployment, the bad ones report the failure in their status),
//! the process's whole output (stdout and stderr), the autoscalers' statuses and the namespace's
//! events are searched for each secret value, as written and base64-encoded: one found fails the
//! test, naming where. The search is shown to work: the output does hold the Secrets' (non-secret)
//! names and the failures it logged.
//!
//! Needs `tests/testbed.sh up kube redis rabbitmq postgres prometheus moto`. Without a test bed or
//! one of the services the test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

mod bed_support;

use std::hash::BuildHasher;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_testbed::services::{loopback_addr, redis_command};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip};
use base64::Engine as _;
use bed_support::Process;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(500);

/// A random value no log line could hold by chance.
fn random_value(tag: &str) -> String {
    let state = std::collections::hash_map::RandomState::new();
    let a = state.hash_one(tag);
    let b = state.hash_one((tag, a));
    format!("{tag}{a:016x}{b:016x}")
}

/// The service endpoints, or `None` when one is not running.
struct Services {
    redis_url: String,
    redis_address: String,
    rabbitmq_amqp: String,
    rabbitmq_management: String,
    postgres: String,
    prometheus: String,
    moto: String,
}

fn services(bed: &TestBed) -> Option<Services> {
    let redis_url = bed.redis_url()?;
    let redis_address = loopback_addr(&redis_url).ok()?;
    Some(Services {
        redis_url,
        redis_address,
        rabbitmq_amqp: bed.rabbitmq_url()?,
        rabbitmq_management: bed.rabbitmq_management_url()?,
        postgres: bed.postgres_url()?,
        prometheus: bed.prometheus_url()?,
        moto: bed.moto_url()?.trim_end_matches('/').to_owned(),
    })
}

/// The secret values of the run (each also searched base64-encoded).
struct Values {
    redis_user: String,
    redis_password: String,
    redis_wrong: String,
    rabbit_user: String,
    rabbit_password: String,
    rabbit_wrong: String,
    postgres_password: String,
    prometheus_token: String,
    prometheus_password: String,
    aws_secret_key: String,
    aws_session_token: String,
}

impl Values {
    fn new() -> Values {
        Values {
            redis_user: format!("ballast-log-{}", &random_value("u")[1..9]),
            redis_password: random_value("redispw"),
            redis_wrong: random_value("rediswrong"),
            rabbit_user: format!("ballast-log-{}", &random_value("u")[1..9]),
            rabbit_password: random_value("rabbitpw"),
            rabbit_wrong: random_value("rabbitwrong"),
            postgres_password: random_value("pgpw"),
            prometheus_token: random_value("promtoken"),
            prometheus_password: random_value("prompw"),
            aws_secret_key: random_value("awssecret"),
            aws_session_token: random_value("awssession"),
        }
    }

    /// The values that must never be seen.
    fn secrets(&self) -> [(&'static str, &str); 9] {
        [
            ("the Prometheus token", &self.prometheus_token),
            ("the Prometheus password", &self.prometheus_password),
            ("the AWS secret access key", &self.aws_secret_key),
            ("the AWS session token", &self.aws_session_token),
            ("the Redis password", &self.redis_password),
            ("the wrong Redis password", &self.redis_wrong),
            ("the RabbitMQ password", &self.rabbit_password),
            ("the wrong RabbitMQ password", &self.rabbit_wrong),
            ("the PostgreSQL password", &self.postgres_password),
        ]
    }
}

/// `http://HOST:PORT` and the user and password of the management URL.
fn management(url: &str) -> Result<(String, String, String)> {
    let rest = url.strip_prefix("http://").context("a http:// URL")?;
    let (auth, host) = rest.split_once('@').context("user:password@ in the URL")?;
    let (user, password) = auth.split_once(':').context("user:password")?;
    Ok((
        format!("http://{}", host.trim_end_matches('/')),
        user.to_owned(),
        password.to_owned(),
    ))
}

/// A RabbitMQ user of the test (all rights on `/`) and a queue holding `messages` messages.
async fn rabbit_user_and_queue(
    s: &Services,
    v: &Values,
    queue: &str,
    messages: usize,
) -> Result<()> {
    let (base, admin, admin_password) = management(&s.rabbitmq_management)?;
    let http = ballast_testbed::http_client();
    let send = |req: reqwest::RequestBuilder| async {
        req.basic_auth(&admin, Some(&admin_password))
            .send()
            .await?
            .error_for_status()
            .map(|_| ())
    };
    let user = &v.rabbit_user;
    let body = json!({ "password": v.rabbit_password, "tags": "" });
    send(http.put(format!("{base}/api/users/{user}")).json(&body)).await?;
    let all = json!({ "configure": ".*", "write": ".*", "read": ".*" });
    send(
        http.put(format!("{base}/api/permissions/%2F/{user}"))
            .json(&all),
    )
    .await?;
    let queue_body = json!({ "durable": false, "auto_delete": false });
    send(
        http.put(format!("{base}/api/queues/%2F/{queue}"))
            .json(&queue_body),
    )
    .await?;
    for i in 0..messages {
        let message = json!({
            "properties": {}, "routing_key": queue,
            "payload": format!("m{i}"), "payload_encoding": "string"
        });
        send(
            http.post(format!("{base}/api/exchanges/%2F/amq.default/publish"))
                .json(&message),
        )
        .await?;
    }
    Ok(())
}

async fn rabbit_cleanup(s: &Services, v: &Values, queue: &str) {
    let Ok((base, admin, admin_password)) = management(&s.rabbitmq_management) else {
        return;
    };
    let http = ballast_testbed::http_client();
    for path in [
        format!("{base}/api/queues/%2F/{queue}"),
        format!("{base}/api/users/{}", v.rabbit_user),
    ] {
        let _ = http
            .delete(path)
            .basic_auth(&admin, Some(&admin_password))
            .send()
            .await;
    }
}

/// The AMQP URL of the bed with `user:password` instead of its own credentials.
fn amqp_with(url: &str, user: &str, password: &str) -> Result<String> {
    let (scheme, rest) = url.split_once("://").context("an AMQP URL")?;
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    Ok(format!("{scheme}://{user}:{password}@{host}"))
}

/// A HorizontalAutoscaler `name` on Deployment `name` with one event metric.
async fn autoscaler(ns: &TestNamespace, name: &str, event: Value) -> Result<()> {
    autoscaler_on(ns, name, json!({ "type": "Event", "event": event })).await
}

/// A HorizontalAutoscaler `name` on Deployment `name` with one metric.
async fn autoscaler_on(ns: &TestNamespace, name: &str, metric: Value) -> Result<()> {
    ns.create_deployment(TestDeployment::new(name).replicas(1))
        .await?;
    let hza: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1", "kind": "HorizontalAutoscaler",
        "metadata": { "name": name },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "minReplicas": 1, "maxReplicas": 10, "syncPeriodSeconds": 1,
            "metrics": [metric]
        }
    }))?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &hza)
        .await?;
    Ok(())
}

fn target() -> Value {
    json!({ "type": "AverageValue", "averageValue": "1" })
}

/// The five autoscalers: Redis, RabbitMQ and PostgreSQL with good credentials, Redis and RabbitMQ
/// with wrong passwords.
async fn autoscalers(
    ns: &TestNamespace,
    s: &Services,
    v: &Values,
    list: &str,
    queue: &str,
) -> Result<()> {
    let redis = |secret: &str| {
        json!({
            "type": "redis-list", "target": target(), "credentialsRef": { "name": secret },
            "redisList": { "address": s.redis_address, "listName": list }
        })
    };
    ns.create_secret(
        "redis",
        &[("username", &v.redis_user), ("password", &v.redis_password)],
    )
    .await?;
    ns.create_secret(
        "redis-wrong",
        &[("username", &v.redis_user), ("password", &v.redis_wrong)],
    )
    .await?;
    autoscaler(ns, "redis", redis("redis")).await?;
    autoscaler(ns, "redis-wrong", redis("redis-wrong")).await?;
    let rabbit = |secret: &str| {
        json!({
            "type": "rabbitmq", "target": target(), "credentialsRef": { "name": secret },
            "rabbitmq": { "queueName": queue }
        })
    };
    let good = amqp_with(&s.rabbitmq_amqp, &v.rabbit_user, &v.rabbit_password)?;
    let wrong = amqp_with(&s.rabbitmq_amqp, &v.rabbit_user, &v.rabbit_wrong)?;
    ns.create_secret("rabbit", &[("url", &good)]).await?;
    ns.create_secret("rabbit-wrong", &[("url", &wrong)]).await?;
    autoscaler(ns, "rabbit", rabbit("rabbit")).await?;
    autoscaler(ns, "rabbit-wrong", rabbit("rabbit-wrong")).await?;
    // postgres://USER@HOST:PORT/DB (the bed admits it without checking the password).
    let rest = s
        .postgres
        .strip_prefix("postgres://")
        .context("a postgres:// URL")?;
    let (user, rest) = rest.split_once('@').context("USER@ in the URL")?;
    let (host, rest) = rest.split_once(':').context("HOST:PORT in the URL")?;
    let port: u16 = rest.split('/').next().unwrap_or_default().parse()?;
    ns.create_secret("postgres", &[("password", &v.postgres_password)])
        .await?;
    let postgres = json!({
        "type": "postgresql", "target": target(), "credentialsRef": { "name": "postgres" },
        "postgresql": {
            "host": host, "port": port, "database": "postgres", "user": user, "query": "SELECT 4"
        }
    });
    autoscaler(ns, "postgres", postgres).await
}

/// Prometheus with a bearer token and with basic auth (the bed's Prometheus checks neither).
async fn prometheus_autoscalers(ns: &TestNamespace, s: &Services, v: &Values) -> Result<()> {
    ns.create_secret("prometheus-token", &[("token", &v.prometheus_token)])
        .await?;
    let basic = [
        ("username", "ballast"),
        ("password", v.prometheus_password.as_str()),
    ];
    ns.create_secret("prometheus-basic", &basic).await?;
    for (name, secret, query) in [
        ("prometheus", "prometheus-token", "vector(5)"),
        ("prometheus-basic", "prometheus-basic", "vector(6)"),
    ] {
        let metric = json!({
            "type": "Prometheus",
            "prometheus": {
                "serverAddress": s.prometheus, "query": query, "target": target(),
                "credentialsRef": { "name": secret }
            }
        });
        autoscaler_on(ns, name, metric).await?;
    }
    Ok(())
}

/// Calls moto's SQS query API (moto routes by the credential scope's service and checks no
/// signature).
async fn moto_sqs(moto: &str, params: &[(&str, &str)]) -> Result<String> {
    let scope = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0";
    let response = ballast_testbed::http_client()
        .post(format!("{moto}/"))
        .header("authorization", scope)
        .form(params)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    ensure!(status.is_success(), "moto {params:?}: {status} {text}");
    Ok(text)
}

/// An SQS queue on moto holding 3 messages, read with the Secret's keys and session token.
async fn sqs_autoscaler(ns: &TestNamespace, s: &Services, v: &Values) -> Result<()> {
    let name = format!("{}-jobs", ns.name());
    let created = moto_sqs(&s.moto, &[("Action", "CreateQueue"), ("QueueName", &name)]).await?;
    let queue_url = created
        .split("<QueueUrl>")
        .nth(1)
        .and_then(|t| t.split("</QueueUrl>").next())
        .with_context(|| format!("no QueueUrl in {created}"))?
        .to_owned();
    for i in 0..3 {
        let body = format!("job {i}");
        moto_sqs(
            &s.moto,
            &[
                ("Action", "SendMessage"),
                ("QueueUrl", &queue_url),
                ("MessageBody", &body),
            ],
        )
        .await?;
    }
    let keys = [
        ("awsAccessKeyID", "AKIDBALLASTTEST"),
        ("awsSecretAccessKey", v.aws_secret_key.as_str()),
        ("awsSessionToken", v.aws_session_token.as_str()),
    ];
    ns.create_secret("aws", &keys).await?;
    let sqs = json!({
        "type": "aws-sqs", "target": target(), "credentialsRef": { "name": "aws" },
        "awsSqs": { "queueUrl": queue_url, "region": "us-east-1" }
    });
    autoscaler(ns, "sqs", sqs).await
}

async fn replicas(ns: &TestNamespace, name: &str) -> Result<i32> {
    let d = ns.api::<Deployment>().get(name).await?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(0))
}

/// The message of a False `ScalingActive` or `AbleToScale`-style failure condition of `name`.
async fn failure(ns: &TestNamespace, name: &str) -> Result<Option<String>> {
    let h = ns.api::<HorizontalAutoscaler>().get(name).await?;
    Ok(h.status.and_then(|s| {
        s.conditions
            .into_iter()
            .find(|c| c.status == "False" && c.message.contains("event"))
            .map(|c| format!("{}: {}", c.reason, c.message))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_the_logs() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let s = service_or_skip!(services(&bed), Ok(()));
    ballast_testbed::crds::apply(
        &bed.client(),
        ballast_api::crds(),
        "ballast-credentials-test",
        Duration::from_secs(30),
    )
    .await?;
    let ns = bed.namespace("credentials-log").await?;
    let v = Values::new();
    let list = format!("{}-list", ns.name());
    let queue = format!("{}-queue", ns.name());
    let acl = format!(">{}", v.redis_password);
    redis_command(
        &s.redis_url,
        &["ACL", "SETUSER", &v.redis_user, "on", &acl, "~*", "+@all"],
    )
    .await?;
    redis_command(&s.redis_url, &["RPUSH", &list, "a", "b", "c"]).await?;
    let result = async {
        rabbit_user_and_queue(&s, &v, &queue, 2).await?;
        autoscalers(&ns, &s, &v, &list, &queue).await?;
        prometheus_autoscalers(&ns, &s, &v).await?;
        sqs_autoscaler(&ns, &s, &v).await?;
        run_and_search(&bed, &ns, &v).await
    }
    .await;
    let _ = redis_command(&s.redis_url, &["ACL", "DELUSER", &v.redis_user]).await;
    let _ = redis_command(&s.redis_url, &["DEL", &list]).await;
    rabbit_cleanup(&s, &v, &queue).await;
    result?;
    ns.cleanup().await
}

async fn run_and_search(bed: &TestBed, ns: &TestNamespace, v: &Values) -> Result<()> {
    let logs = std::env::temp_dir().join(format!("ballast-{}", ns.name()));
    std::fs::create_dir_all(&logs)?;
    let kubeconfig = bed
        .env()
        .get("BALLAST_KUBECONFIG")
        .context("BALLAST_KUBECONFIG")?;
    // JSON lines, as the chart runs it (logJson).
    let args = [
        "controller",
        "horizontal",
        "--log-json",
        "--namespace",
        ns.name(),
        "--metrics-addr",
    ];
    let mut p = Process::start("horizontal", &args, kubeconfig.as_ref(), "trace", &logs)?;
    p.wait_ready().await?;
    let reconciled = async {
        let scaled = [
            ("redis", 3),
            ("rabbit", 2),
            ("postgres", 4),
            ("prometheus", 5),
            ("prometheus-basic", 6),
            ("sqs", 3),
        ];
        for (name, want) in scaled {
            poll_until(&format!("{name} scaled to {want}"), T, POLL, || async {
                Ok((replicas(ns, name).await? == want).then_some(()))
            })
            .await?;
        }
        for name in ["redis-wrong", "rabbit-wrong"] {
            let message =
                poll_until(&format!("{name}'s failure"), T, POLL, || failure(ns, name)).await?;
            println!("{name}: {message}");
        }
        // A few more passes of every autoscaler (syncPeriodSeconds 1), the failing ones included.
        tokio::time::sleep(Duration::from_secs(5)).await;
        anyhow::Ok(())
    }
    .await;
    p.stop();
    if let Err(e) = reconciled {
        return Err(e.context(p.tail(60)));
    }
    let output = p.output();
    let statuses = serde_json::to_string(
        &ns.api::<HorizontalAutoscaler>()
            .list(&ListParams::default())
            .await?
            .items,
    )?;
    let events =
        serde_json::to_string(&ns.api::<Event>().list(&ListParams::default()).await?.items)?;
    println!(
        "searched: {} bytes of output ({} lines), {} of statuses, {} of events",
        output.len(),
        output.lines().count(),
        statuses.len(),
        events.len()
    );
    // The search sees what was logged: the Secrets' names and the failures.
    for seen in ["redis-wrong", "rabbit-wrong", "credentials"] {
        ensure!(
            output.contains(seen),
            "the output never mentions {seen:?}: is the log level trace?"
        );
    }
    let mut found = Vec::new();
    for (what, value) in v.secrets() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        for (place, text) in [
            ("the output", &output),
            ("the statuses", &statuses),
            ("the events", &events),
        ] {
            for needle in [value, encoded.as_str()] {
                if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                    found.push(format!("{what} in {place}: {line}"));
                }
            }
        }
    }
    ensure!(
        found.is_empty(),
        "credentials logged:\n{}",
        found.join("\n")
    );
    Ok(())
}
