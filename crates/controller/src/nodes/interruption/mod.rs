//! Interruption handling: a loop long-polls an SQS queue fed by EventBridge rules (EC2 spot
//! interruption warnings, rebalance recommendations, instance state changes, AWS Health
//! scheduled changes), maps each message's instance ID to the NodeClaim whose provider ID ends
//! with it, and acts as [`ballast_cloud::interruption::response`] says:
//!
//! - disrupt (spot interruption, stopping / stopped / shutting-down / terminated, scheduled
//!   change): for a spot interruption the offering (instance type, zone, capacity type) is
//!   marked unavailable, so the replacement is another one; Warning events on the NodeClaim and
//!   the node; the node is cordoned and tainted `nodes.ballast.dev/disrupted:NoSchedule`; the
//!   NodeClaim is deleted, so termination drains it (Eviction API, PDBs) and the provisioner
//!   makes a home for its pods;
//! - notify (rebalance recommendation): a log line and a Normal event, nothing else;
//! - ignore (pending, running).
//!
//! A message is deleted once handled, also when it is not understood (logged with the reason)
//! or names no instance of ours. One whose handling failed (API server unreachable) is left in
//! the queue and comes back after its visibility timeout. The loop never stops on a bad message;
//! receive errors are retried with backoff (1 s doubling to 60 s).

use std::sync::Arc;
use std::time::Duration;

use ballast_api::nodes::{NodeClaim, labels};
use ballast_cloud::interruption::{self as message, Notice, Response};
use ballast_cloud::{CloudProvider, OfferingKey};
use ballast_metrics::{AwsCredentials, SqsClient, SqsClientOptions, SqsMessage};
use k8s_openapi::api::core::v1::Node;
use kube::api::DeleteParams;
use kube::{Api, Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::cluster::{claim_pool, claim_provider_id};
use super::error::Error;
use super::metrics::terminated;
use super::{Ctx, termination};
use crate::metric_labels::{Labels, labels};

/// Counters of the interruption loop, registered under `ballast_nodes_interruption_`.
#[derive(Clone, Debug, Default)]
pub struct InterruptionMetrics {
    /// Messages by `kind` (`spot_interruption`, `rebalance_recommendation`, `state_change`,
    /// `scheduled_change`, `unparseable`, `unsupported`) and `outcome` (`disrupted`,
    /// `notified`, `ignored`, `already_deleting`, `unknown_instance`, `not_understood`,
    /// `failed`).
    pub messages: Family<Labels, Counter>,
    /// ReceiveMessage calls that failed.
    pub receive_errors: Counter,
    /// DeleteMessage calls that failed (the message comes back and is handled again).
    pub delete_errors: Counter,
}

impl InterruptionMetrics {
    /// Registers the counters in `registry` (they count whether registered or not).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("ballast_nodes_interruption");
        r.register(
            "messages",
            "Interruption queue messages by kind and outcome",
            self.messages.clone(),
        );
        r.register(
            "receive_errors",
            "Failed ReceiveMessage calls on the interruption queue",
            self.receive_errors.clone(),
        );
        r.register(
            "delete_errors",
            "Failed DeleteMessage calls on the interruption queue",
            self.delete_errors.clone(),
        );
    }

    fn count(&self, kind: &str, outcome: &str) {
        self.messages
            .get_or_create(&labels([("kind", kind), ("outcome", outcome)]))
            .inc();
    }

    /// The count of one (kind, outcome) pair (tests, logs).
    pub fn get(&self, kind: &str, outcome: &str) -> u64 {
        self.messages
            .get_or_create(&labels([("kind", kind), ("outcome", outcome)]))
            .get()
    }
}

/// Where the interruption queue is and how to read it.
#[derive(Debug, Clone)]
pub struct InterruptionOptions {
    /// The queue URL (`https://sqs.us-east-1.amazonaws.com/123456789012/ballast-interruptions`).
    pub queue_url: String,
    /// The SQS endpoint (default: the queue URL's origin).
    pub endpoint: Option<String>,
    /// The region requests are signed for (default: from an `sqs.REGION.amazonaws.com` queue
    /// URL, else us-east-1).
    pub region: Option<String>,
    /// Static credentials (required: the client signs with SigV4 itself).
    pub credentials: Option<AwsCredentials>,
    /// Long-poll wait (at most 20 s).
    pub wait: Duration,
    /// Messages per receive (1–10).
    pub max_messages: u32,
    /// How long a received message stays invisible (default: the queue's setting).
    pub visibility_timeout: Option<Duration>,
    pub metrics: InterruptionMetrics,
}

impl InterruptionOptions {
    /// Defaults for `queue_url`: 20 s long polls, 10 messages, nothing else set.
    pub fn new(queue_url: impl Into<String>) -> Self {
        InterruptionOptions {
            queue_url: queue_url.into(),
            endpoint: None,
            region: None,
            credentials: None,
            wait: Duration::from_secs(20),
            max_messages: 10,
            visibility_timeout: None,
            metrics: InterruptionMetrics::default(),
        }
    }

    /// Fills what is unset from the environment, as the AWS SDKs read it: the endpoint from
    /// `AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL`, the region from `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`, credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`.
    pub fn with_env(mut self) -> Self {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|s| !s.trim().is_empty()))
        };
        if self.endpoint.is_none() {
            self.endpoint = var(&["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"]);
        }
        if self.region.is_none() {
            self.region = var(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
        }
        if self.credentials.is_none() {
            self.credentials = AwsCredentials::from_env();
        }
        self
    }

    /// The queue's client; an error names the setting that is wrong.
    pub fn client(&self) -> Result<SqsClient, Error> {
        let creds = self
            .credentials
            .clone()
            .ok_or_else(|| Error::NoCredentials {
                queue: self.queue_url.clone(),
            })?;
        Ok(SqsClient::new(
            &self.queue_url,
            creds,
            SqsClientOptions {
                endpoint: self.endpoint.as_deref(),
                region: self.region.as_deref(),
                fields: Some(("--interruption-queue", "--interruption-endpoint")),
                ..Default::default()
            },
        )?)
    }
}

/// The offering a NodeClaim (or its node) runs as, from the labels set at launch.
fn offering(claim: &NodeClaim, node: Option<&Node>) -> Option<OfferingKey> {
    let get = |key: &str| {
        claim
            .labels()
            .get(key)
            .or_else(|| node.and_then(|n| n.labels().get(key)))
            .cloned()
    };
    Some(OfferingKey {
        instance_type: get(labels::INSTANCE_TYPE)?,
        zone: get(labels::ZONE)?,
        capacity_type: get(labels::CAPACITY_TYPE)?,
    })
}

/// The NodeClaim (in scope) of the instance with this ID.
fn claim_of<P: CloudProvider>(ctx: &Ctx<P>, instance: &str) -> Option<Arc<NodeClaim>> {
    let claims = ctx.stores.claims();
    if let Some(c) = claims
        .iter()
        .find(|c| claim_provider_id(c).is_some_and(|p| message::instance_id(p) == instance))
    {
        return Some(c.clone());
    }
    // Launched by this process, status not written (or not seen) yet.
    let name = ctx
        .launched
        .lock()
        .expect("lock")
        .iter()
        .find(|(_, i)| message::instance_id(&i.provider_id) == instance)
        .map(|(n, _)| n.clone())?;
    claims
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name.as_str()))
}

fn node_of<P: CloudProvider>(ctx: &Ctx<P>, claim: &NodeClaim) -> Option<Arc<Node>> {
    claim_provider_id(claim)
        .and_then(|p| ctx.stores.node_by_provider_id(p))
        .or_else(|| {
            let n = claim.status.as_ref()?.node_name.clone()?;
            ctx.stores
                .nodes
                .find(|x| x.metadata.name.as_deref() == Some(n.as_str()))
        })
}

/// Outcomes, weakest first: a message about several instances reports its strongest.
const OUTCOMES: [&str; 5] = [
    "unknown_instance",
    "ignored",
    "already_deleting",
    "notified",
    "disrupted",
];

fn rank(o: &str) -> usize {
    OUTCOMES.iter().position(|x| *x == o).unwrap_or(0)
}

async fn act_on<P: CloudProvider>(
    ctx: &Ctx<P>,
    n: &Notice,
    instance: &str,
) -> Result<&'static str, kube::Error> {
    let response = message::response(n);
    let Some(claim) = claim_of(ctx, instance) else {
        tracing::info!(instance, kind = %n.kind, event = ?n.event_id, "interruption message for an instance no NodeClaim of ours runs; deleting it");
        return Ok("unknown_instance");
    };
    let name = claim.name_any();
    if response == Response::Ignore {
        tracing::debug!(instance, nodeclaim = %name, kind = %n.kind, state = ?n.state, "interruption message needs no action");
        return Ok("ignored");
    }
    if claim.metadata.deletion_timestamp.is_some() {
        tracing::info!(instance, nodeclaim = %name, kind = %n.kind, "interruption message for a NodeClaim already being deleted");
        return Ok("already_deleting");
    }
    let node = node_of(ctx, &claim);
    let (reason, note) = message::event(n, instance);
    match response {
        Response::Ignore => Ok("ignored"),
        Response::Notify => {
            tracing::info!(instance, nodeclaim = %name, node = ?node.as_ref().map(|x| x.name_any()), kind = %n.kind, "{note}");
            ctx.events
                .normal(&claim.object_ref(&()), reason, "Interruption", note.clone())
                .await;
            if let Some(node) = &node {
                ctx.events
                    .normal(&node.object_ref(&()), reason, "Interruption", note)
                    .await;
            }
            Ok("notified")
        }
        Response::Disrupt { mark_unavailable } => {
            if mark_unavailable && let Some(k) = offering(&claim, node.as_deref()) {
                tracing::info!(offering = %k, "marking the interrupted offering unavailable");
                ctx.mark_unavailable(std::slice::from_ref(&k), ctx.now());
            }
            let delay = n.time.map(|t| ctx.now().duration_since(t).as_secs_f64());
            tracing::warn!(instance, nodeclaim = %name, node = ?node.as_ref().map(|x| x.name_any()), kind = %n.kind, seconds_since_published = ?delay, "{note}");
            ctx.events
                .warning(&claim.object_ref(&()), reason, "Interruption", note.clone())
                .await;
            if let Some(node) = &node {
                ctx.events
                    .warning(&node.object_ref(&()), reason, "Interruption", note)
                    .await;
                match termination::cordon_and_taint(ctx, node).await {
                    Ok(()) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            match Api::<NodeClaim>::all(ctx.client.clone())
                .delete(&name, &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    let pool = claim_pool(&claim).unwrap_or_default();
                    ctx.opts.metrics.terminated(pool, terminated::INTERRUPTION);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
            Ok("disrupted")
        }
    }
}

/// The first characters of a body, for logs.
fn preview(body: &str) -> String {
    let mut s: String = body.chars().take(200).collect();
    if s.len() < body.len() {
        s.push('…');
    }
    s
}

/// Handles one message; whether it may be deleted.
async fn handle<P: CloudProvider>(
    ctx: &Ctx<P>,
    m: &SqsMessage,
    metrics: &InterruptionMetrics,
) -> bool {
    let notice = match message::parse(&m.body) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(message_id = %m.message_id, reason = %e, body = %preview(&m.body), "interruption message not understood; deleting it");
            metrics.count(e.label(), "not_understood");
            return true;
        }
    };
    let mut outcome = OUTCOMES[0];
    for id in &notice.instance_ids {
        match act_on(ctx, &notice, id).await {
            Ok(o) if rank(o) > rank(outcome) => outcome = o,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(message_id = %m.message_id, instance = %id, kind = %notice.kind, error = %e, "handling the interruption message failed; it comes back after its visibility timeout");
                metrics.count(notice.kind.label(), "failed");
                return false;
            }
        }
    }
    metrics.count(notice.kind.label(), outcome);
    true
}

/// The interruption loop: runs until dropped.
pub async fn run<P: CloudProvider>(ctx: Arc<Ctx<P>>, sqs: SqsClient) {
    let Some(opts) = ctx.opts.interruption.clone() else {
        return;
    };
    tracing::info!(queue = %sqs.queue_url(), endpoint = %sqs.endpoint(), region = %sqs.region(), "reading interruption messages");
    let mut backoff = Duration::from_secs(1);
    loop {
        let batch = match sqs
            .receive(opts.max_messages, opts.wait, opts.visibility_timeout)
            .await
        {
            Ok(b) => {
                backoff = Duration::from_secs(1);
                b
            }
            Err(e) => {
                opts.metrics.receive_errors.inc();
                tracing::warn!(queue = %sqs.queue_url(), error = %e, retry_in = ?backoff, "receiving interruption messages failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        for m in &batch {
            if handle(&ctx, m, &opts.metrics).await
                && let Err(e) = sqs.delete(&m.receipt_handle).await
            {
                opts.metrics.delete_errors.inc();
                tracing::warn!(message_id = %m.message_id, error = %e, "deleting an interruption message failed; it will be handled again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offering_from_labels() {
        let claim: NodeClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "nodes.ballast.dev/v1", "kind": "NodeClaim",
            "metadata": { "name": "c", "labels": {
                labels::INSTANCE_TYPE: "c6i.large", labels::ZONE: "us-east-1b",
                labels::CAPACITY_TYPE: "spot" } },
            "spec": { "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": "k" } }
        }))
        .unwrap();
        assert_eq!(
            offering(&claim, None),
            Some(OfferingKey::new("c6i.large", "us-east-1b", "spot"))
        );
        let mut bare = claim.clone();
        bare.metadata.labels = None;
        assert_eq!(offering(&bare, None), None);
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "n", "labels": {
                labels::INSTANCE_TYPE: "m6i.large", labels::ZONE: "us-east-1a",
                labels::CAPACITY_TYPE: "on-demand" } }
        }))
        .unwrap();
        assert_eq!(
            offering(&bare, Some(&node)),
            Some(OfferingKey::new("m6i.large", "us-east-1a", "on-demand"))
        );
    }

    #[test]
    fn strongest_outcome_wins() {
        assert!(rank("disrupted") > rank("notified"));
        assert!(rank("notified") > rank("unknown_instance"));
        assert_eq!(preview("short"), "short");
        assert_eq!(preview(&"x".repeat(300)).chars().count(), 201);
    }

    #[test]
    fn options_need_credentials_and_name_the_flag() {
        let o = InterruptionOptions::new("http://127.0.0.1:25000/123456789012/q");
        let e = o.client().unwrap_err().to_string();
        assert!(e.contains("no AWS credentials"), "{e}");
        let mut o = InterruptionOptions::new("not a url");
        o.credentials = Some(AwsCredentials {
            access_key_id: "a".into(),
            secret_access_key: "b".into(),
            session_token: None,
        });
        let e = o.client().unwrap_err().to_string();
        assert!(e.contains("--interruption-queue"), "{e}");
        o.queue_url = "http://127.0.0.1:25000/123456789012/q".into();
        let c = o.client().unwrap();
        assert_eq!(
            (c.endpoint(), c.region()),
            ("http://127.0.0.1:25000/", "us-east-1")
        );
    }
}
