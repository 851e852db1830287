//! AWS SQS over the AWS JSON 1.0 protocol the SDKs use, signed with Signature Version 4 by a
//! small client of our own (ring for SHA-256/HMAC, reqwest for HTTP): the AWS SDK would add some
//! 45 crates and minutes of cold build for a handful of calls.
//!
//! - Queue depth for the aws-sqs event metric: `GetQueueAttributes`
//!   (`ApproximateNumberOfMessages`, plus `ApproximateNumberOfMessagesNotVisible` when in-flight
//!   messages count).
//! - [`SqsClient`]: `ReceiveMessage` (long polling), `DeleteMessage`, `SendMessage`,
//!   `CreateQueue` and any other action as raw JSON, for the node controller's interruption queue
//!   (and tests).

use std::time::Duration;

use ballast_api::horizontal::AwsSqsSource;
use reqwest::Url;
use ring::{digest, hmac};
use serde::Deserialize;

use crate::error::ReadError;
use crate::secrets::SecretData;

const TARGET: &str = "AmazonSQS.GetQueueAttributes";
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const VISIBLE: &str = "ApproximateNumberOfMessages";
const IN_FLIGHT: &str = "ApproximateNumberOfMessagesNotVisible";

/// Static AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` from the environment.
    pub fn from_env() -> Option<AwsCredentials> {
        let id = std::env::var("AWS_ACCESS_KEY_ID")
            .ok()
            .filter(|s| !s.is_empty())?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
            .ok()
            .filter(|s| !s.is_empty())?;
        let token = std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|s| !s.is_empty());
        Some(AwsCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: token,
        })
    }

    /// From the credentials Secret: `awsAccessKeyID`, `awsSecretAccessKey`, optional
    /// `awsSessionToken`.
    pub fn from_secret(secret: &SecretData) -> Result<AwsCredentials, ReadError> {
        Ok(AwsCredentials {
            access_key_id: secret.require("awsAccessKeyID")?.trim().to_owned(),
            secret_access_key: secret.require("awsSecretAccessKey")?.trim().to_owned(),
            session_token: secret.get("awsSessionToken")?.map(|s| s.trim().to_owned()),
        })
    }
}

/// Where and how to call: endpoint (default: the queue URL's origin), region (default: from
/// the queue URL's host `sqs.REGION.amazonaws.com`, else the controller's default).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub endpoint: Url,
    pub region: String,
}

pub(crate) fn target(
    src: &AwsSqsSource,
    default_region: Option<&str>,
) -> Result<Target, ReadError> {
    target_of(
        &src.queue_url,
        ("awsSqs.queueUrl", "awsSqs.endpoint"),
        src.endpoint.as_deref(),
        src.region.as_deref(),
        default_region,
    )
}

/// [`target`] from loose parts; `fields` name the queue URL's and the endpoint's fields (or
/// flags) in errors.
fn target_of(
    queue_url: &str,
    fields: (&str, &str),
    endpoint: Option<&str>,
    region: Option<&str>,
    default_region: Option<&str>,
) -> Result<Target, ReadError> {
    let queue = Url::parse(queue_url)
        .map_err(|e| ReadError::InvalidSpec(format!("{} {queue_url:?}: {e}", fields.0)))?;
    let endpoint = match endpoint.filter(|s| !s.is_empty()) {
        Some(e) => Url::parse(e)
            .map_err(|err| ReadError::InvalidSpec(format!("{} {e:?}: {err}", fields.1)))?,
        None => {
            let mut u = queue.clone();
            u.set_path("/");
            u.set_query(None);
            u
        }
    };
    if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
        return Err(ReadError::InvalidSpec(format!(
            "SQS endpoint {endpoint} is not an http(s) URL"
        )));
    }
    let from_host = queue.host_str().and_then(|h| {
        let mut parts = h.split('.');
        match (parts.next(), parts.next()) {
            (Some("sqs"), Some(region))
                if h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn") =>
            {
                Some(region.to_owned())
            }
            _ => None,
        }
    });
    let region = region
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .or(from_host)
        .or(default_region.map(str::to_owned))
        .unwrap_or_else(|| "us-east-1".to_owned());
    Ok(Target { endpoint, region })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// `host[:port]` as the Host header carries it (the port only when not the scheme's default).
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// The headers of a SigV4-signed POST of `body` to `url` at `amz_date` (`YYYYMMDDTHHMMSSZ`):
/// `(name, value)` pairs to send, `Authorization` last.
pub(crate) fn sign(
    url: &Url,
    region: &str,
    service: &str,
    target: &str,
    body: &[u8],
    amz_date: &str,
    creds: &AwsCredentials,
) -> Vec<(&'static str, String)> {
    let date = &amz_date[..8];
    let host = host_header(url);
    let mut headers: Vec<(&'static str, String)> = vec![
        ("content-type", CONTENT_TYPE.to_owned()),
        ("host", host),
        ("x-amz-date", amz_date.to_owned()),
    ];
    if let Some(token) = &creds.session_token {
        headers.push(("x-amz-security-token", token.clone()));
    }
    headers.push(("x-amz-target", target.to_owned()));
    // Sorted by name already; values are trimmed single-line strings.
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(";");
    let path = if url.path().is_empty() {
        "/"
    } else {
        url.path()
    };
    let canonical_request = format!(
        "POST\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        url.query().unwrap_or(""),
        sha256_hex(body)
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac_sha256(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
    let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
    let signature = hex(hmac_sha256(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref());
    headers.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    headers
}

#[derive(Deserialize)]
struct Attributes {
    #[serde(rename = "Attributes", default)]
    attributes: std::collections::BTreeMap<String, String>,
}

/// The queue depth from a `GetQueueAttributes` JSON answer.
pub(crate) fn depth(body: &[u8], include_in_flight: bool) -> Result<f64, ReadError> {
    let parsed: Attributes = serde_json::from_slice(body).map_err(|e| ReadError::Parse {
        what: "SQS GetQueueAttributes".into(),
        message: e.to_string(),
    })?;
    let get = |name: &str| -> Result<f64, ReadError> {
        let v = parsed
            .attributes
            .get(name)
            .ok_or_else(|| ReadError::Source(format!("SQS answer has no attribute {name}")))?;
        v.parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| ReadError::Source(format!("SQS attribute {name} = {v:?}")))
    };
    let mut n = get(VISIBLE)?;
    if include_in_flight {
        n += get(IN_FLIGHT)?;
    }
    Ok(n)
}

/// The message of an AWS JSON error answer (`QueueDoesNotExist: ...`).
fn error_message(status: reqwest::StatusCode, body: &[u8]) -> String {
    // `{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "..."}` (AWS sends
    // `message`, some implementations `Message`, moto both).
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    match (
        field("__type"),
        field("message").or_else(|| field("Message")),
    ) {
        (None, None) => format!(
            "SQS answered HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ),
        (kind, message) => {
            let kind = kind.unwrap_or_default();
            let kind = kind.rsplit('#').next().unwrap_or(&kind);
            format!(
                "SQS error {kind} (HTTP {status}): {}",
                message.unwrap_or_default()
            )
        }
    }
}

/// One signed call: POSTs `body` as `x-amz-target: {amz_target}` and returns the answer's bytes,
/// or the AWS error it carries.
async fn call(
    http: &reqwest::Client,
    t: &Target,
    amz_target: &str,
    body: &serde_json::Value,
    creds: &AwsCredentials,
    timeout: Duration,
) -> Result<Vec<u8>, ReadError> {
    let body = serde_json::to_vec(body).map_err(|e| ReadError::InvalidSpec(e.to_string()))?;
    let amz_date = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let mut req = http
        .post(t.endpoint.clone())
        .timeout(timeout)
        .body(body.clone());
    for (k, v) in sign(
        &t.endpoint,
        &t.region,
        "sqs",
        amz_target,
        &body,
        &amz_date,
        creds,
    ) {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_connect() {
            ReadError::Connect {
                endpoint: t.endpoint.to_string(),
                message: crate::prometheus::error_chain(&e),
            }
        } else {
            ReadError::Source(format!(
                "SQS request to {}: {}",
                t.endpoint,
                crate::prometheus::error_chain(&e)
            ))
        }
    })?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ReadError::Source(format!("reading the SQS answer: {e}")))?;
    if !status.is_success() {
        return Err(ReadError::Source(error_message(status, &bytes)));
    }
    Ok(bytes.to_vec())
}

/// Reads the depth of the queue.
pub(crate) async fn read(
    http: &reqwest::Client,
    src: &AwsSqsSource,
    default_region: Option<&str>,
    creds: &AwsCredentials,
    timeout: Duration,
) -> Result<f64, ReadError> {
    let t = target(src, default_region)?;
    let include_in_flight = src.include_in_flight.unwrap_or(true);
    let mut names = vec![VISIBLE];
    if include_in_flight {
        names.push(IN_FLIGHT);
    }
    let body = serde_json::json!({ "QueueUrl": src.queue_url, "AttributeNames": names });
    let bytes = call(http, &t, TARGET, &body, creds, timeout).await?;
    depth(&bytes, include_in_flight)
}

/// A message received from a queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SqsMessage {
    pub message_id: String,
    /// What `DeleteMessage` needs (valid for this receipt only).
    pub receipt_handle: String,
    #[serde(default)]
    pub body: String,
}

#[derive(Deserialize)]
struct Received {
    #[serde(rename = "Messages", default)]
    messages: Vec<SqsMessage>,
}

/// The messages of a `ReceiveMessage` JSON answer (none: `{}`).
pub(crate) fn received(body: &[u8]) -> Result<Vec<SqsMessage>, ReadError> {
    serde_json::from_slice::<Received>(body)
        .map(|r| r.messages)
        .map_err(|e| ReadError::Parse {
            what: "SQS ReceiveMessage".into(),
            message: e.to_string(),
        })
}

/// A client of one SQS queue: where to call (the endpoint and region come from the queue URL
/// unless given), with which credentials.
#[derive(Clone)]
pub struct SqsClient {
    http: reqwest::Client,
    target: Target,
    queue_url: String,
    creds: AwsCredentials,
    timeout: Duration,
}

impl std::fmt::Debug for SqsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsClient")
            .field("queue_url", &self.queue_url)
            .field("endpoint", &self.target.endpoint.as_str())
            .field("region", &self.target.region)
            .finish_non_exhaustive()
    }
}

/// Where an [`SqsClient`] calls.
#[derive(Debug, Clone, Default)]
pub struct SqsClientOptions<'a> {
    /// Overrides the endpoint (default: the queue URL's origin).
    pub endpoint: Option<&'a str>,
    /// Overrides the region (default: from an `sqs.REGION.amazonaws.com` queue URL, else
    /// `default_region`, else us-east-1).
    pub region: Option<&'a str>,
    pub default_region: Option<&'a str>,
    /// Per-call timeout (a long poll adds its wait to it). Default 10 s.
    pub timeout: Option<Duration>,
    /// Names of the queue URL's and the endpoint's settings in errors (default
    /// `queueUrl`, `endpoint`).
    pub fields: Option<(&'a str, &'a str)>,
}

impl SqsClient {
    /// A client of `queue_url`. Fails when the URL or the endpoint is not an http(s) URL.
    pub fn new(
        queue_url: &str,
        creds: AwsCredentials,
        opts: SqsClientOptions<'_>,
    ) -> Result<SqsClient, ReadError> {
        let target = target_of(
            queue_url,
            opts.fields.unwrap_or(("queueUrl", "endpoint")),
            opts.endpoint,
            opts.region,
            opts.default_region,
        )?;
        // kube and reqwest compile in two rustls providers; settle on ring (harmless if set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ReadError::Source(format!("building the HTTP client: {e}")))?;
        Ok(SqsClient {
            http,
            target,
            queue_url: queue_url.to_owned(),
            creds,
            timeout: opts.timeout.unwrap_or(Duration::from_secs(10)),
        })
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn endpoint(&self) -> &str {
        self.target.endpoint.as_str()
    }

    pub fn region(&self) -> &str {
        &self.target.region
    }

    /// Any action (`"SendMessage"`...) with a JSON body; the answer as JSON (`{}` when empty).
    /// The queue URL is not added: put `QueueUrl` in `body` where the action needs it.
    pub async fn call(
        &self,
        action: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ReadError> {
        self.call_with(action, body, self.timeout).await
    }

    async fn call_with(
        &self,
        action: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, ReadError> {
        let bytes = call(
            &self.http,
            &self.target,
            &format!("AmazonSQS.{action}"),
            body,
            &self.creds,
            timeout,
        )
        .await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::json!({}));
        }
        serde_json::from_slice(&bytes).map_err(|e| ReadError::Parse {
            what: format!("SQS {action}"),
            message: e.to_string(),
        })
    }

    /// Up to `max` (1–10) messages, waiting up to `wait` (0–20 s) for the first one (long
    /// polling); received messages stay invisible to others for `visibility` (default: the
    /// queue's setting).
    pub async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<SqsMessage>, ReadError> {
        let wait = wait.min(Duration::from_secs(20));
        let mut body = serde_json::json!({
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": max.clamp(1, 10),
            "WaitTimeSeconds": wait.as_secs(),
        });
        if let Some(v) = visibility {
            body["VisibilityTimeout"] = v.as_secs().into();
        }
        let bytes = call(
            &self.http,
            &self.target,
            "AmazonSQS.ReceiveMessage",
            &body,
            &self.creds,
            self.timeout + wait,
        )
        .await?;
        received(&bytes)
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), ReadError> {
        self.call(
            "DeleteMessage",
            &serde_json::json!({ "QueueUrl": self.queue_url, "ReceiptHandle": receipt_handle }),
        )
        .await
        .map(|_| ())
    }

    /// Sends a message; its id.
    pub async fn send(&self, body: &str) -> Result<String, ReadError> {
        let v = self
            .call(
                "SendMessage",
                &serde_json::json!({ "QueueUrl": self.queue_url, "MessageBody": body }),
            )
            .await?;
        Ok(v.get("MessageId")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned())
    }

    /// Messages visible and in flight (`ApproximateNumberOfMessages`,
    /// `ApproximateNumberOfMessagesNotVisible`).
    pub async fn depth(&self) -> Result<(u64, u64), ReadError> {
        let body = serde_json::json!({ "QueueUrl": self.queue_url, "AttributeNames": [VISIBLE, IN_FLIGHT] });
        let bytes = call(
            &self.http,
            &self.target,
            TARGET,
            &body,
            &self.creds,
            self.timeout,
        )
        .await?;
        let visible = depth(&bytes, false)?;
        let all = depth(&bytes, true)?;
        Ok((visible as u64, (all - visible) as u64))
    }
}

/// Creates a queue (idempotent for the same attributes) and returns its URL: for tests and
/// setup. `endpoint` is the service's URL.
pub async fn create_queue(
    endpoint: &str,
    region: &str,
    name: &str,
    creds: &AwsCredentials,
) -> Result<String, ReadError> {
    let base = endpoint.trim_end_matches('/');
    // Any queue URL under the endpoint gives the right target; CreateQueue ignores it.
    let client = SqsClient::new(
        &format!("{base}/000000000000/{name}"),
        creds.clone(),
        SqsClientOptions {
            region: Some(region),
            ..Default::default()
        },
    )?;
    let v = client
        .call("CreateQueue", &serde_json::json!({ "QueueName": name }))
        .await?;
    v.get("QueueUrl")
        .and_then(|u| u.as_str())
        .map(str::to_owned)
        .ok_or_else(|| ReadError::Parse {
            what: "SQS CreateQueue".into(),
            message: format!("no QueueUrl in {v}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"QueueUrl":"http://127.0.0.1:25000/123456789012/jobs","AttributeNames":["ApproximateNumberOfMessages","ApproximateNumberOfMessagesNotVisible"]}"#;

    fn creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(String::from),
        }
    }

    /// Reference signatures computed by botocore's `SigV4Auth` for the same requests.
    #[test]
    fn signatures_match_botocore() {
        let url = Url::parse("http://127.0.0.1:25000/").unwrap();
        let h = sign(
            &url,
            "us-east-1",
            "sqs",
            TARGET,
            BODY,
            "20261122T030204Z",
            &creds(None),
        );
        assert_eq!(
            h.iter().find(|(k, _)| *k == "host").unwrap().1,
            "127.0.0.1:25000"
        );
        assert_eq!(
            h.last().unwrap().1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/sqs/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
             Signature=4e4114f948d605bfd3dedfb23130c0e0afbd7fc22fdc76be54026ee994d95ec7"
        );
        let url = Url::parse("https://sqs.eu-west-1.amazonaws.com/").unwrap();
        let h = sign(
            &url,
            "eu-west-1",
            "sqs",
            TARGET,
            BODY,
            "20261122T030204Z",
            &creds(Some("SESSIONTOKEN")),
        );
        assert_eq!(
            h.iter().find(|(k, _)| *k == "host").unwrap().1,
            "sqs.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            h.last().unwrap().1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/eu-west-1/sqs/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, \
             Signature=e157fe1bbe5c0343995c8dbb1700f8838ed3c9dc46607ecd74c6999ba01b35fc"
        );
    }

    #[test]
    fn endpoint_and_region_come_from_the_queue_url() {
        let src = |url: &str, endpoint: Option<&str>, region: Option<&str>| AwsSqsSource {
            queue_url: url.into(),
            endpoint: endpoint.map(String::from),
            region: region.map(String::from),
            include_in_flight: None,
        };
        let t = target(
            &src("https://sqs.eu-west-3.amazonaws.com/123/jobs", None, None),
            Some("us-west-2"),
        )
        .unwrap();
        assert_eq!(
            (t.endpoint.as_str(), t.region.as_str()),
            ("https://sqs.eu-west-3.amazonaws.com/", "eu-west-3")
        );
        let t = target(
            &src("http://127.0.0.1:25000/123/jobs", None, None),
            Some("us-west-2"),
        )
        .unwrap();
        assert_eq!(
            (t.endpoint.as_str(), t.region.as_str()),
            ("http://127.0.0.1:25000/", "us-west-2")
        );
        let t = target(&src("http://127.0.0.1:25000/123/jobs", None, None), None).unwrap();
        assert_eq!(t.region, "us-east-1");
        let t = target(
            &src(
                "https://sqs.eu-west-3.amazonaws.com/123/jobs",
                Some("http://127.0.0.1:4566"),
                Some("ap-south-1"),
            ),
            None,
        )
        .unwrap();
        assert_eq!(
            (t.endpoint.as_str(), t.region.as_str()),
            ("http://127.0.0.1:4566/", "ap-south-1")
        );
        assert!(target(&src("not a url", None, None), None).is_err());
        assert!(target(&src("ftp://x/1/q", None, None), None).is_err());
    }

    #[test]
    fn received_messages() {
        let two = br#"{"Messages":[{"MessageId":"m-1","ReceiptHandle":"r-1","MD5OfBody":"x","Body":"{\"a\":1}"},{"MessageId":"m-2","ReceiptHandle":"r-2","Body":""}]}"#;
        let m = received(two).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            SqsMessage {
                message_id: "m-1".into(),
                receipt_handle: "r-1".into(),
                body: r#"{"a":1}"#.into()
            }
        );
        assert_eq!(m[1].body, "");
        assert!(received(b"{}").unwrap().is_empty());
        assert!(received(br#"{"Messages":[]}"#).unwrap().is_empty());
        let e = received(br#"{"Messages":[{"Body":"x"}]}"#).unwrap_err();
        assert!(e.to_string().contains("SQS ReceiveMessage"), "{e}");
        let e = target_of(
            "::",
            ("--interruption-queue", "--interruption-endpoint"),
            None,
            None,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--interruption-queue"), "{e}");
        let e = target_of(
            "http://127.0.0.1:25000/1/q",
            ("--interruption-queue", "--interruption-endpoint"),
            Some("nope"),
            None,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--interruption-endpoint"), "{e}");
    }

    #[test]
    fn answers_become_depths() {
        let ok = br#"{"Attributes":{"ApproximateNumberOfMessages":"7","ApproximateNumberOfMessagesNotVisible":"2"}}"#;
        assert_eq!(depth(ok, true).unwrap(), 9.0);
        assert_eq!(depth(ok, false).unwrap(), 7.0);
        assert!(
            depth(
                br#"{"Attributes":{"ApproximateNumberOfMessages":"7"}}"#,
                true
            )
            .is_err()
        );
        assert!(depth(br#"{}"#, false).is_err());
        assert!(
            depth(
                br#"{"Attributes":{"ApproximateNumberOfMessages":"x"}}"#,
                false
            )
            .is_err()
        );
        assert!(depth(b"<xml/>", false).is_err());
        let e = error_message(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#,
        );
        assert_eq!(
            e,
            "SQS error QueueDoesNotExist (HTTP 400 Bad Request): The specified queue does not exist."
        );
        let both = br#"{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "gone", "Message": "gone"}"#;
        assert_eq!(
            error_message(reqwest::StatusCode::BAD_REQUEST, both),
            "SQS error QueueDoesNotExist (HTTP 400 Bad Request): gone"
        );
        assert!(error_message(reqwest::StatusCode::FORBIDDEN, b"denied").contains("HTTP 403"));
    }
}
