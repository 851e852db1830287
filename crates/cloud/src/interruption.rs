//! Interruption notices: what an EventBridge message from the interruption queue says, and what
//! the controller does about it. Pure: no I/O, no clock; table-tested on message samples shaped
//! like the ones EC2 and AWS Health publish.
//!
//! | `source` / `detail-type` | kind | response |
//! | --- | --- | --- |
//! | `aws.ec2` / `EC2 Spot Instance Interruption Warning` | spot interruption | disrupt, mark the offering unavailable |
//! | `aws.ec2` / `EC2 Instance Rebalance Recommendation` | rebalance recommendation | notify only (log + event) |
//! | `aws.ec2` / `EC2 Instance State-change Notification` | state change | disrupt when `stopping`, `stopped`, `shutting-down`, `terminated`; else ignore |
//! | `aws.health` / `AWS Health Event`, service EC2, category `scheduledChange` | scheduled change | disrupt |
//!
//! A message wrapped in an SNS notification (`{"Type": "Notification", "Message": "..."}`) is
//! unwrapped first. Anything else is an error saying why ([`ParseError`]).

use jiff::Timestamp;
use serde_json::Value;

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    /// The spot instance will be reclaimed in two minutes.
    SpotInterruption,
    /// The spot instance is at elevated risk of interruption.
    RebalanceRecommendation,
    /// The instance changed state (see [`Notice::state`]).
    StateChange,
    /// AWS Health scheduled a change for the instance (retirement, maintenance, reboot).
    ScheduledChange,
}

impl NoticeKind {
    /// The `kind` label of the metrics.
    pub fn label(self) -> &'static str {
        match self {
            NoticeKind::SpotInterruption => "spot_interruption",
            NoticeKind::RebalanceRecommendation => "rebalance_recommendation",
            NoticeKind::StateChange => "state_change",
            NoticeKind::ScheduledChange => "scheduled_change",
        }
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoticeKind::SpotInterruption => "spot interruption",
            NoticeKind::RebalanceRecommendation => "rebalance recommendation",
            NoticeKind::StateChange => "state change",
            NoticeKind::ScheduledChange => "scheduled change",
        })
    }
}

/// One understood message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The instances it is about (EC2 events name one; a Health event may name several).
    pub instance_ids: Vec<String>,
    /// The event's `id`.
    pub event_id: Option<String>,
    /// The event's `time` (when it was published).
    pub time: Option<Timestamp>,
    /// State changes: the new state (`stopping`, `running`...).
    pub state: Option<String>,
    /// Details for logs and events: the spot `instance-action`, the Health `eventTypeCode`.
    pub detail: Option<String>,
}

/// What the controller does about a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Nothing (an instance starting or running).
    Ignore,
    /// Log and publish an event; the node stays.
    Notify,
    /// Cordon and taint the node and delete its NodeClaim (drained by termination; the
    /// provisioner makes a replacement for its pods). `mark_unavailable`: the offering (type,
    /// zone, capacity type) is marked unavailable first, so the replacement is another one.
    Disrupt { mark_unavailable: bool },
}

/// Why a message is not a notice. Every such message is deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not an EventBridge event: {0}")]
    NotAnEvent(String),
    #[error("unsupported event: source {event_source:?}, detail-type {detail_type:?}{more}")]
    Unsupported {
        event_source: String,
        detail_type: String,
        /// More about why (`, service RDS`...), or empty.
        more: String,
    },
    #[error("{detail_type} without {field}")]
    Missing {
        detail_type: String,
        field: &'static str,
    },
}

impl ParseError {
    /// The `kind` label of the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ParseError::Unsupported { .. } => "unsupported",
            _ => "unparseable",
        }
    }
}

const SPOT: &str = "EC2 Spot Instance Interruption Warning";
const REBALANCE: &str = "EC2 Instance Rebalance Recommendation";
const STATE: &str = "EC2 Instance State-change Notification";
const HEALTH: &str = "AWS Health Event";

/// States after which the instance is gone or going.
pub const DISRUPTING_STATES: [&str; 4] = ["stopping", "stopped", "shutting-down", "terminated"];

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Reads one message body.
pub fn parse(body: &str) -> Result<Notice, ParseError> {
    let mut v: Value =
        serde_json::from_str(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    // An SNS notification carries the event as a string.
    if str_field(&v, "Type") == Some("Notification")
        && let Some(inner) = str_field(&v, "Message")
    {
        v = serde_json::from_str(inner)
            .map_err(|e| ParseError::NotJson(format!("the SNS notification's Message: {e}")))?;
    }
    if !v.is_object() {
        return Err(ParseError::NotAnEvent(format!(
            "a JSON {} instead of an object",
            match v {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "boolean",
                _ => "null",
            }
        )));
    }
    let detail_type = str_field(&v, "detail-type")
        .ok_or_else(|| ParseError::NotAnEvent("no detail-type".into()))?
        .to_owned();
    let source = str_field(&v, "source")
        .ok_or_else(|| ParseError::NotAnEvent("no source".into()))?
        .to_owned();
    let detail = v
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or_else(|| ParseError::Missing {
            detail_type: detail_type.clone(),
            field: "detail",
        })?;
    let missing = |field| ParseError::Missing {
        detail_type: detail_type.clone(),
        field,
    };
    let unsupported = |more: String| ParseError::Unsupported {
        event_source: source.clone(),
        detail_type: detail_type.clone(),
        more,
    };
    let mut notice = Notice {
        kind: NoticeKind::SpotInterruption,
        instance_ids: vec![],
        event_id: str_field(&v, "id").map(str::to_owned),
        time: str_field(&v, "time").and_then(|t| t.parse().ok()),
        state: None,
        detail: None,
    };
    let instance = || {
        str_field(detail, "instance-id")
            .map(|i| vec![i.to_owned()])
            .ok_or_else(|| missing("detail.instance-id"))
    };
    match (source.as_str(), detail_type.as_str()) {
        ("aws.ec2", SPOT) => {
            notice.instance_ids = instance()?;
            notice.detail = str_field(detail, "instance-action").map(str::to_owned);
        }
        ("aws.ec2", REBALANCE) => {
            notice.kind = NoticeKind::RebalanceRecommendation;
            notice.instance_ids = instance()?;
        }
        ("aws.ec2", STATE) => {
            notice.kind = NoticeKind::StateChange;
            notice.instance_ids = instance()?;
            notice.state = Some(
                str_field(detail, "state")
                    .ok_or_else(|| missing("detail.state"))?
                    .to_ascii_lowercase(),
            );
        }
        ("aws.health", HEALTH) => {
            let service = str_field(detail, "service").unwrap_or("");
            let category = str_field(detail, "eventTypeCategory").unwrap_or("");
            if service != "EC2" || category != "scheduledChange" {
                return Err(unsupported(format!(
                    ", service {service:?}, category {category:?} (only EC2 scheduledChange)"
                )));
            }
            notice.kind = NoticeKind::ScheduledChange;
            notice.detail = str_field(detail, "eventTypeCode").map(str::to_owned);
            notice.instance_ids = detail
                .get("affectedEntities")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| str_field(e, "entityValue"))
                .map(str::to_owned)
                .collect();
            if notice.instance_ids.is_empty() {
                return Err(missing("detail.affectedEntities[].entityValue"));
            }
        }
        _ => return Err(unsupported(String::new())),
    }
    Ok(notice)
}

/// What to do about a notice. Rebalance recommendations are only reported: acting on them
/// would replace spot nodes on every risk signal (Karpenter does the same by default).
pub fn response(n: &Notice) -> Response {
    match n.kind {
        NoticeKind::SpotInterruption => Response::Disrupt {
            mark_unavailable: true,
        },
        NoticeKind::RebalanceRecommendation => Response::Notify,
        NoticeKind::StateChange
            if n.state
                .as_deref()
                .is_some_and(|s| DISRUPTING_STATES.contains(&s)) =>
        {
            Response::Disrupt {
                mark_unavailable: false,
            }
        }
        NoticeKind::StateChange => Response::Ignore,
        NoticeKind::ScheduledChange => Response::Disrupt {
            mark_unavailable: false,
        },
    }
}

/// The event reason and note the controller publishes on the NodeClaim and the node.
pub fn event(n: &Notice, instance: &str) -> (&'static str, String) {
    let when = n
        .time
        .map(|t| format!(" (published {t})"))
        .unwrap_or_default();
    match n.kind {
        NoticeKind::SpotInterruption => (
            "SpotInterrupted",
            format!(
                "spot interruption warning for instance {instance}{when}: the offering is marked unavailable, the node is drained and its NodeClaim deleted"
            ),
        ),
        NoticeKind::RebalanceRecommendation => (
            "SpotRebalanceRecommendation",
            format!(
                "rebalance recommendation for instance {instance}{when}: elevated risk of interruption; no action"
            ),
        ),
        NoticeKind::StateChange => {
            let state = n.state.as_deref().unwrap_or("?");
            let reason = match state {
                "stopping" | "stopped" => "InstanceStopping",
                "shutting-down" | "terminated" => "InstanceTerminating",
                _ => "InstanceStateChange",
            };
            (
                reason,
                format!(
                    "instance {instance} is {state}{when}: the node is drained and its NodeClaim deleted"
                ),
            )
        }
        NoticeKind::ScheduledChange => (
            "InstanceScheduledChange",
            format!(
                "AWS Health scheduled change {} for instance {instance}{when}: the node is drained and its NodeClaim deleted",
                n.detail.as_deref().unwrap_or("(no event type code)")
            ),
        ),
    }
}

/// The instance ID in a provider ID: its last path segment (`aws:///us-east-1a/i-0abc` →
/// `i-0abc`, `kwok://node-1` → `node-1`).
pub fn instance_id(provider_id: &str) -> &str {
    provider_id
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(provider_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPOT_MSG: &str = r#"{
      "version": "0",
      "id": "7f1c2a3e-5b9d-4e0a-9c51-0d2b6e8f4a10",
      "detail-type": "EC2 Spot Instance Interruption Warning",
      "source": "aws.ec2",
      "account": "210987654321",
      "time": "2026-03-04T10:15:00Z",
      "region": "eu-west-1",
      "resources": ["arn:aws:ec2:eu-west-1b:instance/i-0a1b2c3d4e5f60718"],
      "detail": { "instance-id": "i-0a1b2c3d4e5f60718", "instance-action": "terminate" }
    }"#;

    const REBALANCE_MSG: &str = r#"{
      "version": "0",
      "id": "0c6f0e4a-3d1e-4b9b-8f3e-6a2c1d7b9e55",
      "detail-type": "EC2 Instance Rebalance Recommendation",
      "source": "aws.ec2",
      "account": "210987654321",
      "time": "2026-03-04T10:11:42Z",
      "region": "eu-west-1",
      "resources": ["arn:aws:ec2:eu-west-1c:instance/i-09f8e7d6c5b4a3210"],
      "detail": { "instance-id": "i-09f8e7d6c5b4a3210" }
    }"#;

    fn state_msg(state: &str) -> String {
        format!(
            r#"{{
              "version": "0",
              "id": "5d2b7c90-1a4f-4c3e-a8d7-2f6e9b0c1d34",
              "detail-type": "EC2 Instance State-change Notification",
              "source": "aws.ec2",
              "account": "210987654321",
              "time": "2026-03-04T11:00:05Z",
              "region": "eu-west-1",
              "resources": ["arn:aws:ec2:eu-west-1:210987654321:instance/i-0123456789abcdef0"],
              "detail": {{ "instance-id": "i-0123456789abcdef0", "state": "{state}" }}
            }}"#
        )
    }

    fn health_msg(service: &str, category: &str, entities: &str) -> String {
        format!(
            r#"{{
              "version": "0",
              "id": "a9e1c3b5-7d2f-4e6a-b0c8-1f3d5e7a9b2c",
              "detail-type": "AWS Health Event",
              "source": "aws.health",
              "account": "210987654321",
              "time": "2026-03-05T08:00:00Z",
              "region": "eu-west-1",
              "resources": ["i-0fedcba9876543210"],
              "detail": {{
                "eventArn": "arn:aws:health:eu-west-1::event/{service}/AWS_{service}_INSTANCE_RETIREMENT_SCHEDULED/AWS_{service}_INSTANCE_RETIREMENT_SCHEDULED_77",
                "service": "{service}",
                "eventTypeCode": "AWS_{service}_INSTANCE_RETIREMENT_SCHEDULED",
                "eventTypeCategory": "{category}",
                "startTime": "Wed, 11 Mar 2026 08:00:00 GMT",
                "eventDescription": [{{ "language": "en_US", "latestDescription": "The instance is scheduled for retirement." }}],
                "affectedEntities": {entities}
              }}
            }}"#
        )
    }

    #[test]
    fn spot_interruption() {
        let n = parse(SPOT_MSG).unwrap();
        assert_eq!(n.kind, NoticeKind::SpotInterruption);
        assert_eq!(n.instance_ids, vec!["i-0a1b2c3d4e5f60718"]);
        assert_eq!(
            n.event_id.as_deref(),
            Some("7f1c2a3e-5b9d-4e0a-9c51-0d2b6e8f4a10")
        );
        assert_eq!(n.time, Some("2026-03-04T10:15:00Z".parse().unwrap()));
        assert_eq!(n.detail.as_deref(), Some("terminate"));
        assert_eq!(
            response(&n),
            Response::Disrupt {
                mark_unavailable: true
            }
        );
        let (reason, note) = event(&n, "i-0a1b2c3d4e5f60718");
        assert_eq!(reason, "SpotInterrupted");
        assert!(note.contains("marked unavailable"), "{note}");
    }

    #[test]
    fn rebalance_only_notifies() {
        let n = parse(REBALANCE_MSG).unwrap();
        assert_eq!(n.kind, NoticeKind::RebalanceRecommendation);
        assert_eq!(n.instance_ids, vec!["i-09f8e7d6c5b4a3210"]);
        assert_eq!(response(&n), Response::Notify);
        assert_eq!(event(&n, "x").0, "SpotRebalanceRecommendation");
    }

    #[test]
    fn state_changes() {
        let table = [
            (
                "stopping",
                Response::Disrupt {
                    mark_unavailable: false,
                },
                "InstanceStopping",
            ),
            (
                "stopped",
                Response::Disrupt {
                    mark_unavailable: false,
                },
                "InstanceStopping",
            ),
            (
                "shutting-down",
                Response::Disrupt {
                    mark_unavailable: false,
                },
                "InstanceTerminating",
            ),
            (
                "terminated",
                Response::Disrupt {
                    mark_unavailable: false,
                },
                "InstanceTerminating",
            ),
            (
                "Terminated",
                Response::Disrupt {
                    mark_unavailable: false,
                },
                "InstanceTerminating",
            ),
            ("pending", Response::Ignore, "InstanceStateChange"),
            ("running", Response::Ignore, "InstanceStateChange"),
        ];
        for (state, want, reason) in table {
            let n = parse(&state_msg(state)).unwrap_or_else(|e| panic!("{state}: {e}"));
            assert_eq!(n.kind, NoticeKind::StateChange, "{state}");
            assert_eq!(n.instance_ids, vec!["i-0123456789abcdef0"], "{state}");
            assert_eq!(response(&n), want, "{state}");
            assert_eq!(event(&n, "i").0, reason, "{state}");
        }
    }

    #[test]
    fn health_scheduled_change() {
        let n = parse(&health_msg(
            "EC2",
            "scheduledChange",
            r#"[{"entityValue": "i-0fedcba9876543210"}, {"entityValue": "i-0aaaabbbbccccdddd"}]"#,
        ))
        .unwrap();
        assert_eq!(n.kind, NoticeKind::ScheduledChange);
        assert_eq!(
            n.instance_ids,
            vec!["i-0fedcba9876543210", "i-0aaaabbbbccccdddd"]
        );
        assert_eq!(
            n.detail.as_deref(),
            Some("AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED")
        );
        assert_eq!(
            response(&n),
            Response::Disrupt {
                mark_unavailable: false
            }
        );
        assert!(event(&n, "i-0fedcba9876543210").1.contains("RETIREMENT"));
    }

    #[test]
    fn sns_envelope_is_unwrapped() {
        let wrapped = serde_json::json!({
            "Type": "Notification",
            "MessageId": "3b1f7a8e-0000-4000-8000-000000000001",
            "TopicArn": "arn:aws:sns:eu-west-1:210987654321:interruptions",
            "Message": SPOT_MSG,
        })
        .to_string();
        assert_eq!(parse(&wrapped).unwrap(), parse(SPOT_MSG).unwrap());
    }

    #[test]
    fn what_is_not_understood_says_why() {
        let table: Vec<(String, &str, &str)> = vec![
            ("not json at all".into(), "not JSON", "unparseable"),
            ("".into(), "not JSON", "unparseable"),
            ("[1, 2]".into(), "a JSON array instead of an object", "unparseable"),
            (r#""spot""#.into(), "a JSON string", "unparseable"),
            (r#"{"source": "aws.ec2", "detail": {}}"#.into(), "no detail-type", "unparseable"),
            (
                r#"{"detail-type": "EC2 Spot Instance Interruption Warning", "detail": {}}"#.into(),
                "no source",
                "unparseable",
            ),
            (
                r#"{"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2"}"#
                    .into(),
                "EC2 Spot Instance Interruption Warning without detail",
                "unparseable",
            ),
            (
                r#"{"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "detail": {"instance-action": "terminate"}}"#.into(),
                "without detail.instance-id",
                "unparseable",
            ),
            (
                r#"{"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {"instance-id": "i-1"}}"#.into(),
                "without detail.state",
                "unparseable",
            ),
            (
                r#"{"detail-type": "Object Created", "source": "aws.s3", "detail": {}}"#.into(),
                "unsupported event: source \"aws.s3\", detail-type \"Object Created\"",
                "unsupported",
            ),
            (
                health_msg("RDS", "scheduledChange", r#"[{"entityValue": "db-1"}]"#),
                "service \"RDS\"",
                "unsupported",
            ),
            (
                health_msg("EC2", "issue", r#"[{"entityValue": "i-1"}]"#),
                "category \"issue\"",
                "unsupported",
            ),
            (
                health_msg("EC2", "scheduledChange", "[]"),
                "without detail.affectedEntities[].entityValue",
                "unparseable",
            ),
            (
                r#"{"Type": "Notification", "Message": "{oops"}"#.into(),
                "the SNS notification's Message",
                "unparseable",
            ),
        ];
        for (body, want, label) in table {
            let e = parse(&body).expect_err(&body);
            assert!(e.to_string().contains(want), "{body}: {e}");
            assert_eq!(e.label(), label, "{body}: {e}");
        }
    }

    #[test]
    fn instance_ids_from_provider_ids() {
        assert_eq!(instance_id("aws:///us-east-1a/i-0abc"), "i-0abc");
        assert_eq!(instance_id("kwok://node-1"), "node-1");
        assert_eq!(instance_id("kwok://node-1/"), "node-1");
        assert_eq!(instance_id("i-0abc"), "i-0abc");
    }
}
