//! RabbitMQ queue length and message rate.
//!
//! - `amqp://` or `amqps://` URL: a passive `queue.declare` on a cached connection (one per URL
//!   and TLS material), which answers the number of messages ready.
//! - `http(s)://` URL: the management API, `GET /api/queues/{vhost}/{queue}`: `messages_ready`
//!   (QueueLength) or `message_stats.publish_details.rate` (MessageRate). As KEDA does, the URL's
//!   path is the vhost (`/` when empty) and its user info the basic-auth credentials.
//!
//! `amqps` and `https` check the server's chain (to the system roots plus the credentials
//! Secret's CA) and host name, and present the Secret's client certificate when it has one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ballast_api::horizontal::{RabbitmqMode, RabbitmqSource};
use lapin::options::QueueDeclareOptions;
use lapin::tcp::{AMQPUriTcpExt, RustlsConnector, TLSConfig};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use reqwest::Url;
use serde::Deserialize;

use crate::cache::{Cache, key_with_secret};
use crate::error::ReadError;
use crate::event::tls::{TlsMaterial, Verification, client_config};

pub(crate) struct RabbitReader {
    pub(crate) http: reqwest::Client,
    /// Management API clients for Secrets with TLS material, by its fingerprint.
    pub(crate) tls_http: Cache<reqwest::Client>,
    pub(crate) connections: Cache<Arc<Connection>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

/// A URL as it may be shown: without user info.
pub(crate) fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() || u.password().is_some() {
                let _ = u.set_username("");
                let _ = u.set_password(None);
            }
            u.to_string()
        }
        Err(_) => "<invalid URL>".into(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The management API request for a queue: URL and basic-auth credentials.
pub(crate) fn management_request(url: &Url, queue: &str) -> (Url, Option<(String, String)>) {
    let path = url.path().trim_matches('/');
    let vhost = if path.is_empty() {
        "/".to_owned()
    } else {
        percent_decode(path)
    };
    let creds = (!url.username().is_empty()).then(|| {
        (
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or("")),
        )
    });
    let mut api = url.clone();
    let _ = api.set_username("");
    let _ = api.set_password(None);
    api.set_query(None);
    api.set_fragment(None);
    api.set_path("/");
    if let Ok(mut segments) = api.path_segments_mut() {
        segments.clear().extend(["api", "queues", &vhost, queue]);
    }
    (api, creds)
}

#[derive(Deserialize, Default)]
struct QueueInfo {
    #[serde(default)]
    messages_ready: Option<f64>,
    #[serde(default)]
    message_stats: Option<MessageStats>,
}

#[derive(Deserialize, Default)]
struct MessageStats {
    #[serde(default)]
    publish_details: Option<Rate>,
}

#[derive(Deserialize, Default)]
struct Rate {
    #[serde(default)]
    rate: f64,
}

/// The value of a management API queue answer. Statistics not computed yet count as 0.
pub(crate) fn management_value(body: &[u8], mode: RabbitmqMode) -> Result<f64, ReadError> {
    let info: QueueInfo = serde_json::from_slice(body).map_err(|e| ReadError::Parse {
        what: "RabbitMQ management API".into(),
        message: e.to_string(),
    })?;
    Ok(match mode {
        RabbitmqMode::QueueLength => info.messages_ready.unwrap_or(0.0),
        RabbitmqMode::MessageRate => info
            .message_stats
            .and_then(|s| s.publish_details)
            .map(|r| r.rate)
            .unwrap_or(0.0),
    })
}

impl RabbitReader {
    /// Reads the queue; `secret_url` (the Secret's `url`, preferred to the source's) and `tls`
    /// come from the credentials Secret.
    pub(crate) async fn read(
        &self,
        src: &RabbitmqSource,
        secret_url: Option<&str>,
        tls: &TlsMaterial,
    ) -> Result<f64, ReadError> {
        let text = secret_url
            .or(src.url.as_deref())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ReadError::InvalidSpec(
                    "rabbitmq: no URL (set rabbitmq.url or the secret's url key)".into(),
                )
            })?;
        let url = Url::parse(text.trim())
            .map_err(|e| ReadError::InvalidSpec(format!("rabbitmq URL {}: {e}", redact(text))))?;
        if src.queue_name.is_empty() {
            return Err(ReadError::InvalidSpec("rabbitmq.queueName is empty".into()));
        }
        let mode = src.mode.unwrap_or_default();
        match url.scheme() {
            "http" | "https" => self.management(&url, &src.queue_name, mode, tls).await,
            "amqp" | "amqps" if mode == RabbitmqMode::MessageRate => Err(ReadError::InvalidSpec(
                "rabbitmq: mode MessageRate needs the management API (an http(s) URL)".into(),
            )),
            "amqp" | "amqps" => self.amqp(text.trim(), &src.queue_name, tls).await,
            other => Err(ReadError::InvalidSpec(format!(
                "rabbitmq URL scheme {other:?}: use amqp(s) or http(s)"
            ))),
        }
    }

    /// The HTTP client for `tls`: the shared one when the Secret holds no TLS material, else one
    /// per material (cached, so connections are reused).
    fn http_for(&self, tls: &TlsMaterial) -> Result<reqwest::Client, ReadError> {
        if tls.is_empty() {
            return Ok(self.http.clone());
        }
        let key = tls.fingerprint();
        if let Some(client) = self.tls_http.get(&key) {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .timeout(self.read_timeout)
            .tls_backend_preconfigured(client_config(Verification::Full, tls)?)
            .build()
            .map_err(|e| ReadError::InvalidSpec(format!("rabbitmq: HTTPS client: {e}")))?;
        Ok(self.tls_http.insert(&key, client))
    }

    async fn management(
        &self,
        url: &Url,
        queue: &str,
        mode: RabbitmqMode,
        tls: &TlsMaterial,
    ) -> Result<f64, ReadError> {
        let (api, creds) = management_request(url, queue);
        let mut req = self.http_for(tls)?.get(api.clone());
        if let Some((user, password)) = creds {
            req = req.basic_auth(user, Some(password));
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                ReadError::Connect {
                    endpoint: redact(url.as_str()),
                    message: match url.scheme() {
                        "https" => tls.explain(&crate::prometheus::error_chain(&e)),
                        _ => crate::prometheus::error_chain(&e),
                    },
                }
            } else {
                ReadError::Source(format!(
                    "RabbitMQ management API {api}: {}",
                    crate::prometheus::error_chain(&e)
                ))
            }
        })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ReadError::Source(format!("reading {api}: {e}")))?;
        match status.as_u16() {
            200 => management_value(&body, mode),
            404 => Err(ReadError::Source(format!(
                "RabbitMQ: queue {queue:?} not found ({api} answered 404)"
            ))),
            401 | 403 => Err(ReadError::Source(format!(
                "RabbitMQ management API refused the credentials (HTTP {status})"
            ))),
            _ => Err(ReadError::Source(format!(
                "RabbitMQ management API {api} answered HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ))),
        }
    }

    async fn connection(&self, url: &str, tls: &TlsMaterial) -> Result<Arc<Connection>, ReadError> {
        let key = key_with_secret(&format!("amqp/{}", tls.fingerprint()), Some(url));
        if let Some(c) = self.connections.get(&key) {
            if c.status().connected() {
                return Ok(c);
            }
            self.connections.remove(&key);
        }
        let endpoint = redact(url);
        // Boxed: the connector's future nests lapin's types so deeply that checking `Send` on
        // every future holding it exceeds the compiler's default recursion limit downstream.
        let connecting: Pin<Box<dyn Future<Output = Result<Connection, ReadError>> + Send + '_>> =
            Box::pin(connect(url, tls));
        let connected = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| ReadError::Connect {
                endpoint: endpoint.clone(),
                message: "connection timed out".into(),
            })??;
        Ok(self.connections.insert(&key, Arc::new(connected)))
    }

    async fn amqp(&self, url: &str, queue: &str, tls: &TlsMaterial) -> Result<f64, ReadError> {
        let conn = self.connection(url, tls).await?;
        let channel = conn.create_channel().await.map_err(|e| {
            ReadError::Source(format!(
                "RabbitMQ {}: cannot open a channel: {e}",
                redact(url)
            ))
        })?;
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declared = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await;
        // A failed passive declare (no such queue) has the broker close the channel already.
        if channel.status().connected() {
            let _ = channel.close(200, "".into()).await;
        }
        let q =
            declared.map_err(|e| ReadError::Source(format!("RabbitMQ: queue {queue:?}: {e}")))?;
        Ok(f64::from(q.message_count()))
    }
}

/// Opens an AMQP connection to `url`; for `amqps`, TLS on rustls with the material's CA and
/// client certificate, checking the chain and the host name.
async fn connect(url: &str, tls: &TlsMaterial) -> Result<Connection, ReadError> {
    let endpoint = redact(url);
    let failed = |message: String| ReadError::Connect {
        endpoint: endpoint.clone(),
        message: tls.explain(&message),
    };
    let uri: AMQPUri = url
        .parse()
        .map_err(|e| ReadError::InvalidSpec(format!("rabbitmq URL {endpoint}: {e}")))?;
    if uri.scheme == AMQPScheme::AMQP {
        return Connection::connect_uri(uri, ConnectionProperties::default())
            .await
            .map_err(|e| ReadError::Connect {
                endpoint: endpoint.clone(),
                message: e.to_string(),
            });
    }
    let connector = RustlsConnector::from(Arc::new(client_config(Verification::Full, tls)?));
    let runtime = lapin::runtime::default_runtime().map_err(|e| failed(e.to_string()))?;
    let open = async move |uri: AMQPUri, runtime| {
        let mut plain = uri.clone();
        plain.scheme = AMQPScheme::AMQP;
        let stream = plain
            .connect_with_config_async(TLSConfig::default(), &runtime)
            .await?;
        Ok(stream.into_rustls(&connector, &uri.authority.host).await?)
    };
    Connection::connector(uri, runtime, open, ConnectionProperties::default())
        .await
        .map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_urls() {
        let cases = [
            (
                "http://guest:guest@127.0.0.1:15672",
                "q1",
                "http://127.0.0.1:15672/api/queues/%2F/q1",
                Some(("guest", "guest")),
            ),
            (
                "http://127.0.0.1:15672/",
                "q1",
                "http://127.0.0.1:15672/api/queues/%2F/q1",
                None,
            ),
            (
                "https://u:p%40ss@mq.example:443/prod",
                "jobs",
                "https://mq.example/api/queues/prod/jobs",
                Some(("u", "p@ss")),
            ),
            (
                "http://h:1/%2F",
                "a b",
                "http://h:1/api/queues/%2F/a%20b",
                None,
            ),
        ];
        for (url, queue, want, creds) in cases {
            let (api, c) = management_request(&Url::parse(url).unwrap(), queue);
            assert_eq!(api.as_str(), want, "{url}");
            assert_eq!(c, creds.map(|(u, p)| (u.to_owned(), p.to_owned())), "{url}");
        }
    }

    #[test]
    fn management_answers() {
        let body = br#"{"name":"q","messages":12,"messages_ready":10,"messages_unacknowledged":2,
            "message_stats":{"publish":40,"publish_details":{"rate":2.5}}}"#;
        assert_eq!(
            management_value(body, RabbitmqMode::QueueLength).unwrap(),
            10.0
        );
        assert_eq!(
            management_value(body, RabbitmqMode::MessageRate).unwrap(),
            2.5
        );
        let fresh = br#"{"name":"q"}"#;
        assert_eq!(
            management_value(fresh, RabbitmqMode::QueueLength).unwrap(),
            0.0
        );
        assert_eq!(
            management_value(fresh, RabbitmqMode::MessageRate).unwrap(),
            0.0
        );
        assert!(management_value(b"not json", RabbitmqMode::QueueLength).is_err());
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("http://127.0.0.1:15672"), "http://127.0.0.1:15672/");
        assert_eq!(redact("::"), "<invalid URL>");
    }
}
