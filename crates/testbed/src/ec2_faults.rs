//! A fault-injecting proxy in front of moto's EC2 API, for the failures moto never produces:
//! throttling and insufficient capacity. Everything else goes through to moto unchanged, so the
//! code under test runs its real SDK path against real answers.
//!
//! - [`Ec2FaultProxy::throttle`]: the next N requests (of one action, or any) are answered like
//!   EC2 answers a throttled call: HTTP 503 with error code `RequestLimitExceeded`.
//! - [`Ec2FaultProxy::insufficient_capacity`]: in `CreateFleet` requests, the overrides of that
//!   instance type (in that subnet, or any) are taken out before the request goes to moto, and
//!   the response gets an `errorSet` entry `InsufficientInstanceCapacity` for each, as EC2 reports
//!   overrides it could not launch. When no override is left, the proxy answers itself with a
//!   fleet that launched nothing.
//!
//! Listens on 127.0.0.1 only and forwards only to a loopback moto.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// What the proxy does to the next requests, and what it has done.
#[derive(Debug, Default)]
struct Faults {
    throttle_next: u32,
    throttle_action: Option<String>,
    /// (instance type, subnet) pairs out of capacity; a `None` subnet means every subnet.
    insufficient: Vec<(String, Option<String>)>,
    throttled: u32,
    insufficient_answered: u32,
    requests: BTreeMap<String, u32>,
}

struct Shared {
    moto: String,
    faults: Mutex<Faults>,
    http: reqwest::Client,
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
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
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

    /// Throttles the next `n` requests of `action` (any action when `None`).
    pub fn throttle(&self, n: u32, action: Option<&str>) {
        let mut f = self.shared.faults.lock().expect("faults lock");
        f.throttle_next = n;
        f.throttle_action = action.map(str::to_string);
    }

    /// Makes CreateFleet report `InsufficientInstanceCapacity` for the instance type (in the
    /// subnet, or in every subnet).
    pub fn insufficient_capacity(&self, instance_type: &str, subnet: Option<&str>) {
        self.shared
            .faults
            .lock()
            .expect("faults lock")
            .insufficient
            .push((instance_type.to_string(), subnet.map(str::to_string)));
    }

    /// Stops injecting faults (counters stay).
    pub fn clear(&self) {
        let mut f = self.shared.faults.lock().expect("faults lock");
        f.throttle_next = 0;
        f.insufficient.clear();
    }

    /// Requests answered with a throttling error so far.
    pub fn throttled(&self) -> u32 {
        self.shared.faults.lock().expect("faults lock").throttled
    }

    /// Fleet overrides answered with insufficient capacity so far.
    pub fn insufficient_answered(&self) -> u32 {
        self.shared
            .faults
            .lock()
            .expect("faults lock")
            .insufficient_answered
    }

    /// Requests of an action seen so far (throttled ones included).
    pub fn requests(&self, action: &str) -> u32 {
        self.shared
            .faults
            .lock()
            .expect("faults lock")
            .requests
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

fn throttled_response() -> Response {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>00000000-0000-4000-8000-000000000001</RequestID></Response>";
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("content-type", "text/xml;charset=UTF-8")],
        body,
    )
        .into_response()
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

async fn forward(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes)> {
    let url = format!(
        "{}{}",
        shared.moto,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = shared.http.request(method, &url);
    for (k, v) in headers {
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
    let bytes = resp.bytes().await?;
    Ok((status, h, bytes))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    let pairs = parse_form(&text);
    let action = pairs
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let insufficient = {
        let mut f = shared.faults.lock().expect("faults lock");
        *f.requests.entry(action.clone()).or_default() += 1;
        let applies = f.throttle_action.as_ref().is_none_or(|a| *a == action);
        if f.throttle_next > 0 && applies {
            f.throttle_next -= 1;
            f.throttled += 1;
            return throttled_response();
        }
        f.insufficient.clone()
    };
    if action != "CreateFleet" || insufficient.is_empty() {
        return match forward(&shared, method, &uri, &headers, body).await {
            Ok((s, h, b)) => (s, h, b).into_response(),
            Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
        };
    }
    let (rewritten, removed) = remove_overrides(&pairs, &insufficient);
    if removed.is_empty() {
        return match forward(&shared, method, &uri, &headers, body).await {
            Ok((s, h, b)) => (s, h, b).into_response(),
            Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
        };
    }
    shared
        .faults
        .lock()
        .expect("faults lock")
        .insufficient_answered += removed.len() as u32;
    let lifecycle = pairs
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
    match forward(
        &shared,
        method,
        &uri,
        &headers,
        Bytes::from(form(&rewritten)),
    )
    .await
    {
        Ok((s, h, b)) if s.is_success() => {
            let text = String::from_utf8_lossy(&b);
            let patched = match text.rfind("</CreateFleetResponse>") {
                Some(i) => format!("{}{errors}{}", &text[..i], &text[i..]),
                None => text.into_owned(),
            };
            (s, h, patched).into_response()
        }
        Ok((s, h, b)) => (s, h, b).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
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
}
