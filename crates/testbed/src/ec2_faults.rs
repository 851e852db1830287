//! A fault-injecting proxy in front of moto's EC2 API, for the failures moto never produces.
//! Everything else goes through to moto unchanged, so the code under test runs its real SDK path
//! against real answers.
//!
//! - [`Ec2FaultProxy::throttle`]: the next N requests (of one action, or any) are answered like
//!   EC2 answers a throttled call: HTTP 503 with error code `RequestLimitExceeded`.
//! - [`Ec2FaultProxy::insufficient_capacity`]: in `CreateFleet` requests, the overrides of that
//!   instance type (in that subnet, or any) are taken out before the request goes to moto, and
//!   the response gets an `errorSet` entry `InsufficientInstanceCapacity` for each, as EC2 reports
//!   overrides it could not launch. When no override is left, the proxy answers itself with a
//!   fleet that launched nothing.
//! - [`Ec2FaultProxy::inject`] with a [`Fault`], for the next N requests (of one action, or any)
//!   or until [`Ec2FaultProxy::clear`]:
//!   - [`Fault::ServerError`]: EC2's XML error answer, HTTP 500 `InternalError` or HTTP 503
//!     `Unavailable`; the request never reaches moto.
//!   - [`Fault::Delay`]: the request goes to moto at once and moto's answer is held back for the
//!     delay, so a client that gives up waiting has still made the call. Delays of every
//!     matching rule add up, and combine with the other faults.
//!   - [`Fault::HangUp`]: the connection is closed without an answer, [`HangUp::BeforeForward`]
//!     (the call never happened) or [`HangUp::AfterAnswer`] (moto carried the call out, its
//!     answer is lost: what makes a retried launch a duplicate).
//!
//! The first matching rule that answers (throttle, server error, hang-up) decides, in the order
//! the rules were added. Listens on 127.0.0.1 only and forwards only to a loopback moto.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

mod switch;

use switch::{Switch, SwitchedListener};

/// An EC2 server error, answered in EC2's XML error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerError {
    /// HTTP 500, code `InternalError`.
    Internal,
    /// HTTP 503, code `Unavailable`.
    Unavailable,
}

/// When a dropped connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUp {
    /// Before the request goes to moto: the call never happened.
    BeforeForward,
    /// After moto answered: the call happened, its answer is lost.
    AfterAnswer,
}

/// What the proxy does to a request a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 `RequestLimitExceeded`.
    Throttle,
    /// HTTP 500 `InternalError` or 503 `Unavailable`.
    ServerError(ServerError),
    /// The answer is held back this long (the call is made at once).
    Delay(Duration),
    /// The connection is closed without an answer.
    HangUp(HangUp),
}

impl Fault {
    /// The name the proxy counts this fault under ([`Ec2FaultProxy::injected`]).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError(ServerError::Internal) => "500",
            Fault::ServerError(ServerError::Unavailable) => "503",
            Fault::Delay(_) => "delay",
            Fault::HangUp(HangUp::BeforeForward) => "hang-up-before",
            Fault::HangUp(HangUp::AfterAnswer) => "hang-up-after",
        }
    }
}

/// One injected fault: for requests of `action` (any when `None`), `left` more times (until
/// cleared when `None`).
#[derive(Debug, Clone)]
struct Rule {
    fault: Fault,
    action: Option<String>,
    left: Option<u32>,
}

/// What the proxy does to the next requests, and what it has done.
#[derive(Debug, Default)]
struct Faults {
    rules: Vec<Rule>,
    /// (instance type, subnet) pairs out of capacity; a `None` subnet means every subnet.
    insufficient: Vec<(String, Option<String>)>,
    insufficient_answered: u32,
    requests: BTreeMap<String, u32>,
    /// Requests moto answered, per action.
    forwarded: BTreeMap<String, u32>,
    /// Faults injected, per [`Fault::name`].
    injected: BTreeMap<&'static str, u32>,
}

/// What to do with one request.
#[derive(Debug, Default, PartialEq)]
struct Decision {
    delay: Duration,
    /// The rule that answers (throttle, server error) or hangs up, if any.
    fault: Option<Fault>,
    insufficient: Vec<(String, Option<String>)>,
}

impl Faults {
    /// Counts a request of `action` and takes what the rules do to it.
    fn decide(&mut self, action: &str) -> Decision {
        *self.requests.entry(action.to_string()).or_default() += 1;
        let mut d = Decision {
            insufficient: self.insufficient.clone(),
            ..Decision::default()
        };
        for r in &mut self.rules {
            let applies = r.action.as_ref().is_none_or(|a| a == action);
            if !applies || r.left == Some(0) {
                continue;
            }
            match r.fault {
                Fault::Delay(by) => d.delay += by,
                _ if d.fault.is_some() => continue,
                f => d.fault = Some(f),
            }
            if let Some(n) = &mut r.left {
                *n -= 1;
            }
            *self.injected.entry(r.fault.name()).or_default() += 1;
        }
        self.rules.retain(|r| r.left != Some(0));
        d
    }
}

struct Shared {
    moto: String,
    faults: Mutex<Faults>,
    http: reqwest::Client,
}

impl Shared {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running proxy; stops when dropped.
pub struct Ec2FaultProxy {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Ec2FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request's decision to close its connection without an answer.
#[derive(Debug)]
struct HungUp;

async fn serve(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(switch): ConnectInfo<Switch>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&shared, method, &uri, &headers, body).await {
        Ok(r) => r,
        Err(HungUp) => {
            switch.0.store(true, Ordering::SeqCst);
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

impl Ec2FaultProxy {
    /// Starts a proxy in front of `moto_url` (a loopback URL) on a free 127.0.0.1 port.
    pub async fn start(moto_url: &str) -> Result<Self> {
        crate::services::loopback_addr(moto_url)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the EC2 fault proxy")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            moto: moto_url.trim_end_matches('/').to_string(),
            faults: Mutex::default(),
            http: crate::http_client(),
        });
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<Switch>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(SwitchedListener(listener), app).await;
        });
        Ok(Ec2FaultProxy {
            url: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`: the endpoint to give the code under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Throttles the next `n` requests of `action` (any action when `None`), in place of the
    /// throttling set before.
    pub fn throttle(&self, n: u32, action: Option<&str>) {
        let mut f = self.shared.faults();
        f.rules.retain(|r| r.fault != Fault::Throttle);
        f.rules.push(Rule {
            fault: Fault::Throttle,
            action: action.map(str::to_string),
            left: Some(n),
        });
    }

    /// Injects `fault` into the next `times` requests of `action` (any action when `None`), or
    /// into every one until [`Ec2FaultProxy::clear`] when `times` is `None`.
    pub fn inject(&self, fault: Fault, action: Option<&str>, times: Option<u32>) {
        self.shared.faults().rules.push(Rule {
            fault,
            action: action.map(str::to_string),
            left: times,
        });
    }

    /// Makes CreateFleet report `InsufficientInstanceCapacity` for the instance type (in the
    /// subnet, or in every subnet).
    pub fn insufficient_capacity(&self, instance_type: &str, subnet: Option<&str>) {
        self.shared
            .faults()
            .insufficient
            .push((instance_type.to_string(), subnet.map(str::to_string)));
    }

    /// Stops injecting faults (counters stay).
    pub fn clear(&self) {
        let mut f = self.shared.faults();
        f.rules.clear();
        f.insufficient.clear();
    }

    /// Requests answered with a throttling error so far.
    pub fn throttled(&self) -> u32 {
        self.injected(Fault::Throttle.name())
    }

    /// Faults of that [`Fault::name`] injected so far (`"500"`, `"delay"`, `"hang-up-after"`, ...).
    pub fn injected(&self, name: &str) -> u32 {
        self.shared
            .faults()
            .injected
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Fleet overrides answered with insufficient capacity so far.
    pub fn insufficient_answered(&self) -> u32 {
        self.shared.faults().insufficient_answered
    }

    /// Requests of an action seen so far (faulted ones included).
    pub fn requests(&self, action: &str) -> u32 {
        self.shared
            .faults()
            .requests
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    /// Requests of an action moto answered so far (whether or not the answer was delivered).
    pub fn forwarded(&self, action: &str) -> u32 {
        self.shared
            .faults()
            .forwarded
            .get(action)
            .copied()
            .unwrap_or(0)
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query-protocol form body as ordered (key, value) pairs.
pub fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn form(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                crate::services::url_encode(k),
                crate::services::url_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// EC2's XML error answer.
fn error_response(status: StatusCode, code: &str, message: &str, request: u32) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{}</Message></Error></Errors><RequestID>00000000-0000-4000-8000-{request:012}</RequestID></Response>",
        xml_escape(message)
    );
    (status, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
}

/// The answer of a fault the proxy answers itself (throttling, server errors).
fn fault_response(fault: Fault) -> Option<Response> {
    Some(match fault {
        Fault::Throttle => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "Request limit exceeded.",
            1,
        ),
        Fault::ServerError(ServerError::Internal) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "An internal error has occurred.",
            3,
        ),
        Fault::ServerError(ServerError::Unavailable) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "The server is overloaded and can't handle the request.",
            4,
        ),
        Fault::Delay(_) | Fault::HangUp(_) => return None,
    })
}

/// One override taken out of a CreateFleet request.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovedOverride {
    pub launch_template_name: Option<String>,
    pub instance_type: String,
    pub subnet: Option<String>,
}

/// Takes the overrides matching `insufficient` out of a CreateFleet form, renumbering the rest
/// (a launch template config left with no override is dropped). Returns the new form and the
/// removed overrides.
pub fn remove_overrides(
    pairs: &[(String, String)],
    insufficient: &[(String, Option<String>)],
) -> (Vec<(String, String)>, Vec<RemovedOverride>) {
    // config index → override index → field → value
    type Ovr = BTreeMap<u32, BTreeMap<String, String>>;
    let mut configs: BTreeMap<u32, (Vec<(String, String)>, Ovr)> = BTreeMap::new();
    let mut other = vec![];
    for (k, v) in pairs {
        let Some(rest) = k.strip_prefix("LaunchTemplateConfigs.") else {
            other.push((k.clone(), v.clone()));
            continue;
        };
        let Some((n, field)) = rest.split_once('.') else {
            other.push((k.clone(), v.clone()));
            continue;
        };
        let Ok(n) = n.parse::<u32>() else {
            other.push((k.clone(), v.clone()));
            continue;
        };
        let c = configs.entry(n).or_default();
        match field
            .strip_prefix("Overrides.")
            .and_then(|r| r.split_once('.'))
            .and_then(|(m, f)| Some((m.parse::<u32>().ok()?, f)))
        {
            Some((m, f)) => {
                c.1.entry(m).or_default().insert(f.to_string(), v.clone());
            }
            None => c.0.push((field.to_string(), v.clone())),
        }
    }
    let mut removed = vec![];
    let mut out = other;
    let mut next_config = 1;
    for (_, (fields, overrides)) in configs {
        let lt = fields
            .iter()
            .find(|(f, _)| f == "LaunchTemplateSpecification.LaunchTemplateName")
            .map(|(_, v)| v.clone());
        let had = overrides.len();
        let mut kept = vec![];
        for (_, o) in overrides {
            let t = o.get("InstanceType").cloned().unwrap_or_default();
            let s = o.get("SubnetId").cloned();
            let hit = insufficient
                .iter()
                .any(|(it, sn)| *it == t && (sn.is_none() || *sn == s));
            if hit {
                removed.push(RemovedOverride {
                    launch_template_name: lt.clone(),
                    instance_type: t,
                    subnet: s,
                });
            } else {
                kept.push(o);
            }
        }
        if had > 0 && kept.is_empty() {
            continue;
        }
        let prefix = format!("LaunchTemplateConfigs.{next_config}.");
        for (f, v) in fields {
            out.push((format!("{prefix}{f}"), v));
        }
        for (j, o) in kept.into_iter().enumerate() {
            for (f, v) in o {
                out.push((format!("{prefix}Overrides.{}.{f}", j + 1), v));
            }
        }
        next_config += 1;
    }
    (out, removed)
}

/// The `errorSet` EC2 puts in a CreateFleet response for overrides it could not launch.
pub fn error_set(removed: &[RemovedOverride], lifecycle: &str) -> String {
    let mut x = String::from("<errorSet>");
    for r in removed {
        x.push_str("<item><launchTemplateAndOverrides><launchTemplateSpecification>");
        if let Some(n) = &r.launch_template_name {
            x.push_str(&format!(
                "<launchTemplateName>{}</launchTemplateName>",
                xml_escape(n)
            ));
        }
        x.push_str("<version>$Latest</version></launchTemplateSpecification><overrides>");
        x.push_str(&format!(
            "<instanceType>{}</instanceType>",
            xml_escape(&r.instance_type)
        ));
        if let Some(s) = &r.subnet {
            x.push_str(&format!("<subnetId>{}</subnetId>", xml_escape(s)));
        }
        x.push_str("</overrides></launchTemplateAndOverrides>");
        x.push_str(&format!("<lifecycle>{}</lifecycle>", xml_escape(lifecycle)));
        x.push_str("<errorCode>InsufficientInstanceCapacity</errorCode>");
        x.push_str(&format!(
            "<errorMessage>We currently do not have sufficient {} capacity in the Availability Zone you requested. Our system will be working on provisioning additional capacity.</errorMessage>",
            xml_escape(&r.instance_type)
        ));
        x.push_str("</item>");
    }
    x.push_str("</errorSet>");
    x
}

/// One request to the proxy.
struct Call {
    action: String,
    pairs: Vec<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// moto's status, content type and body for `body` (counted as forwarded), or why not.
async fn forward(
    shared: &Shared,
    call: &Call,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes)> {
    let url = format!(
        "{}{}",
        shared.moto,
        call.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = shared.http.request(call.method.clone(), &url);
    for (k, v) in &call.headers {
        if k == "host" || k == "content-length" || k == "connection" || k == "transfer-encoding" {
            continue;
        }
        req = req.header(k, v);
    }
    let resp = req.body(body).send().await.context("forwarding to moto")?;
    let status = resp.status();
    let mut h = HeaderMap::new();
    if let Some(ct) = resp.headers().get("content-type") {
        h.insert("content-type", ct.clone());
    }
    let bytes = resp.bytes().await.context("reading moto's answer")?;
    *shared
        .faults()
        .forwarded
        .entry(call.action.clone())
        .or_default() += 1;
    Ok((status, h, bytes))
}

fn bad_gateway(e: &anyhow::Error) -> Response {
    (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response()
}

/// Answers one request: faults first, then moto (with the capacity rewriting of CreateFleet).
async fn handle(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, HungUp> {
    let pairs = parse_form(&String::from_utf8_lossy(&body));
    let action = pairs
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let decision = shared.faults().decide(&action);
    let call = Call {
        action,
        pairs,
        method,
        uri: uri.clone(),
        headers: headers.clone(),
    };
    let answer = match decision.fault {
        Some(Fault::HangUp(HangUp::BeforeForward)) => Err(HungUp),
        Some(f) if let Some(r) = fault_response(f) => Ok(r),
        _ => {
            let r = answer_from_moto(shared, &call, &decision.insufficient, body).await;
            match decision.fault {
                Some(Fault::HangUp(HangUp::AfterAnswer)) => Err(HungUp),
                _ => Ok(r),
            }
        }
    };
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    answer
}

/// moto's answer, CreateFleet's overrides out of capacity taken out and reported as EC2 does.
async fn answer_from_moto(
    shared: &Shared,
    call: &Call,
    insufficient: &[(String, Option<String>)],
    body: Bytes,
) -> Response {
    let removed = if call.action == "CreateFleet" && !insufficient.is_empty() {
        remove_overrides(&call.pairs, insufficient)
    } else {
        (vec![], vec![])
    };
    let (rewritten, removed) = removed;
    if removed.is_empty() {
        return match forward(shared, call, body).await {
            Ok(a) => a.into_response(),
            Err(e) => bad_gateway(&e),
        };
    }
    shared.faults().insufficient_answered += removed.len() as u32;
    let lifecycle = call
        .pairs
        .iter()
        .find(|(k, _)| k == "TargetCapacitySpecification.DefaultTargetCapacityType")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "on-demand".into());
    let errors = error_set(&removed, &lifecycle);
    let any_left = rewritten
        .iter()
        .any(|(k, _)| k.starts_with("LaunchTemplateConfigs."));
    if !any_left {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateFleetResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>00000000-0000-4000-8000-000000000002</requestId><fleetId>fleet-00000000-0000-4000-8000-000000000000</fleetId>{errors}<fleetInstanceSet/></CreateFleetResponse>"
        );
        return (
            StatusCode::OK,
            [("content-type", "text/xml;charset=UTF-8")],
            body,
        )
            .into_response();
    }
    match forward(shared, call, Bytes::from(form(&rewritten))).await {
        Ok((s, h, b)) if s.is_success() => {
            let text = String::from_utf8_lossy(&b);
            let patched = match text.rfind("</CreateFleetResponse>") {
                Some(i) => format!("{}{errors}{}", &text[..i], &text[i..]),
                None => text.into_owned(),
            };
            (s, h, patched).into_response()
        }
        Ok(a) => a.into_response(),
        Err(e) => bad_gateway(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        parse_form(s)
    }

    #[test]
    fn form_round_trip() {
        let p = pairs(
            "Action=CreateFleet&LaunchTemplateConfigs.1.LaunchTemplateSpecification.Version=%24Latest&A=b+c",
        );
        assert_eq!(p[1].1, "$Latest");
        assert_eq!(p[2].1, "b c");
        assert_eq!(parse_form(&form(&p)), p);
    }

    #[test]
    fn overrides_are_removed_and_renumbered() {
        let p = pairs(concat!(
            "Action=CreateFleet&Type=instant",
            "&LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateName=lt-amd",
            "&LaunchTemplateConfigs.1.Overrides.1.InstanceType=c6i.large&LaunchTemplateConfigs.1.Overrides.1.SubnetId=subnet-a",
            "&LaunchTemplateConfigs.1.Overrides.2.InstanceType=c6i.large&LaunchTemplateConfigs.1.Overrides.2.SubnetId=subnet-b",
            "&LaunchTemplateConfigs.1.Overrides.3.InstanceType=m6i.large&LaunchTemplateConfigs.1.Overrides.3.SubnetId=subnet-a",
            "&LaunchTemplateConfigs.2.LaunchTemplateSpecification.LaunchTemplateName=lt-arm",
            "&LaunchTemplateConfigs.2.Overrides.1.InstanceType=m6g.large&LaunchTemplateConfigs.2.Overrides.1.SubnetId=subnet-a",
        ));
        let (out, removed) = remove_overrides(
            &p,
            &[
                ("c6i.large".into(), Some("subnet-a".into())),
                ("m6g.large".into(), None),
            ],
        );
        assert_eq!(removed.len(), 2);
        assert_eq!(removed[1].launch_template_name.as_deref(), Some("lt-arm"));
        let m: BTreeMap<String, String> = out.into_iter().collect();
        assert_eq!(
            m["LaunchTemplateConfigs.1.Overrides.1.SubnetId"],
            "subnet-b"
        );
        assert_eq!(
            m["LaunchTemplateConfigs.1.Overrides.2.InstanceType"],
            "m6i.large"
        );
        assert!(!m.contains_key("LaunchTemplateConfigs.1.Overrides.3.InstanceType"));
        assert!(!m.keys().any(|k| k.starts_with("LaunchTemplateConfigs.2.")));
        assert_eq!(m["Type"], "instant");
        let x = error_set(&removed, "on-demand");
        assert!(x.contains("<errorCode>InsufficientInstanceCapacity</errorCode>"));
        assert!(x.contains("<subnetId>subnet-a</subnetId>"));
    }

    #[test]
    fn rules_count_down_and_delays_add_up() {
        let mut f = Faults::default();
        let ms = Duration::from_millis;
        f.rules = vec![
            Rule {
                fault: Fault::Delay(ms(100)),
                action: None,
                left: None,
            },
            Rule {
                fault: Fault::ServerError(ServerError::Internal),
                action: Some("CreateFleet".into()),
                left: Some(1),
            },
            Rule {
                fault: Fault::HangUp(HangUp::AfterAnswer),
                action: Some("CreateFleet".into()),
                left: Some(1),
            },
            Rule {
                fault: Fault::Delay(ms(50)),
                action: Some("CreateFleet".into()),
                left: Some(2),
            },
        ];
        let first = f.decide("CreateFleet");
        assert_eq!(first.delay, ms(150));
        assert_eq!(first.fault, Some(Fault::ServerError(ServerError::Internal)));
        // The hang-up waited behind the server error: it was neither used nor counted.
        let second = f.decide("CreateFleet");
        assert_eq!(second.fault, Some(Fault::HangUp(HangUp::AfterAnswer)));
        assert_eq!(second.delay, ms(150));
        let third = f.decide("CreateFleet");
        assert_eq!((third.fault, third.delay), (None, ms(100)));
        assert_eq!(f.decide("DescribeInstances").delay, ms(100));
        assert_eq!(f.injected["500"], 1);
        assert_eq!(f.injected["hang-up-after"], 1);
        assert_eq!(f.injected["delay"], 6);
        assert_eq!(f.requests["CreateFleet"], 3);
        assert_eq!(f.rules.len(), 1, "spent rules are dropped");
    }

    /// A stand-in for moto that counts the calls it answers.
    async fn upstream() -> (String, Arc<std::sync::atomic::AtomicU32>) {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let app = axum::Router::new().fallback(move || {
            let c = counted.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                "<DescribeInstancesResponse/>"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    #[tokio::test]
    async fn server_errors_delays_and_hang_ups_over_http() {
        use std::sync::atomic::Ordering;
        let (moto, calls) = upstream().await;
        let proxy = Ec2FaultProxy::start(&moto).await.expect("proxy");
        let http = reqwest::Client::new();
        let send = || {
            http.post(proxy.url())
                .body("Action=DescribeInstances&Version=2016-11-15")
                .send()
        };
        proxy.inject(Fault::ServerError(ServerError::Internal), None, Some(1));
        proxy.inject(Fault::ServerError(ServerError::Unavailable), None, Some(1));
        let r = send().await.expect("answer");
        assert_eq!(r.status(), 500);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("<Code>InternalError</Code>")
        );
        let r = send().await.expect("answer");
        assert_eq!(r.status(), 503);
        assert!(r.text().await.unwrap().contains("<Code>Unavailable</Code>"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "server errors never reach moto"
        );
        proxy.inject(Fault::HangUp(HangUp::BeforeForward), None, Some(1));
        assert!(send().await.is_err(), "closed without an answer");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        proxy.inject(Fault::HangUp(HangUp::AfterAnswer), None, Some(1));
        assert!(send().await.is_err(), "closed without an answer");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the call was made");
        assert_eq!(proxy.forwarded("DescribeInstances"), 1);
        proxy.inject(
            Fault::Delay(Duration::from_millis(300)),
            Some("DescribeInstances"),
            None,
        );
        let started = std::time::Instant::now();
        assert_eq!(send().await.expect("answer").status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
        proxy.clear();
        let started = std::time::Instant::now();
        assert_eq!(send().await.expect("answer").status(), 200);
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(proxy.requests("DescribeInstances"), 6);
        assert_eq!(proxy.forwarded("DescribeInstances"), 3);
        for (name, n) in [
            ("500", 1),
            ("503", 1),
            ("hang-up-before", 1),
            ("hang-up-after", 1),
            ("delay", 1),
        ] {
            assert_eq!(proxy.injected(name), n, "{name}");
        }
    }
}
