//! One connection to a Kafka broker: TCP (optionally TLS), the API versions check, SASL, and
//! request/response framing with the `kafka-protocol` messages. Every step is bounded by a
//! timeout, so a silent broker fails the read instead of hanging it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::scram::{Scram, ScramHash};

/// What failed on a connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// TCP or TLS could not be set up.
    #[error("cannot connect to {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    /// The broker refused the SASL login.
    #[error("kafka {endpoint}: {message}")]
    Login { endpoint: String, message: String },
    /// The broker answered something unusable, or an error code.
    #[error("kafka {endpoint}: {message}")]
    Broker { endpoint: String, message: String },
}

/// The SASL login of a connection.
#[derive(Clone, Debug)]
pub(crate) enum Login {
    Plain {
        user: String,
        password: String,
    },
    Scram {
        hash: ScramHash,
        user: String,
        password: String,
    },
}

/// How to reach a broker: TLS settings and SASL login, both optional.
#[derive(Clone, Default)]
pub(crate) struct Security {
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) login: Option<Login>,
}

/// A request this client sends, with its API key and answer (the crate ties them together only
/// when built for brokers too).
pub(crate) trait Exchange: Encodable + HeaderVersion {
    const KEY: ApiKey;
    type Answer: Decodable + HeaderVersion;
}

macro_rules! exchanges {
    ($($request:ty => $answer:ty, $key:ident;)*) => {
        $(impl Exchange for $request {
            const KEY: ApiKey = ApiKey::$key;
            type Answer = $answer;
        })*
    };
}

exchanges! {
    ApiVersionsRequest => ApiVersionsResponse, ApiVersions;
    SaslHandshakeRequest => SaslHandshakeResponse, SaslHandshake;
    SaslAuthenticateRequest => SaslAuthenticateResponse, SaslAuthenticate;
    MetadataRequest => MetadataResponse, Metadata;
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets;
    CreateTopicsRequest => CreateTopicsResponse, CreateTopics;
    ProduceRequest => ProduceResponse, Produce;
    OffsetCommitRequest => OffsetCommitResponse, OffsetCommit;
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Largest response accepted (offsets and metadata answers are small).
const MAX_RESPONSE: usize = 64 << 20;

/// An open, authenticated connection.
pub(crate) struct Connection {
    stream: Box<dyn Stream>,
    endpoint: String,
    correlation: i32,
    io_timeout: Duration,
    /// API key → (min, max) version the broker serves.
    versions: BTreeMap<i16, (i16, i16)>,
}

/// `host:port` split (`[v6]:port` too); Kafka has no default port worth guessing.
pub(crate) fn host_port(endpoint: &str) -> Option<(String, u16)> {
    let (host, port) = endpoint.trim().rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host.to_owned(), port.parse().ok()?))
}

impl Connection {
    /// Connects to `endpoint` (`host:port`), checks the API versions and logs in.
    pub(crate) async fn open(
        endpoint: &str,
        security: &Security,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Connection, WireError> {
        let fail = |message: String| WireError::Connect {
            endpoint: endpoint.to_owned(),
            message,
        };
        let (host, port) = host_port(endpoint).ok_or_else(|| fail("not host:port".into()))?;
        let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| fail("connection timed out".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &security.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| fail(format!("{host:?} is not a TLS server name: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let tls = tokio::time::timeout(connect_timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| fail("TLS handshake timed out".into()))?
                    .map_err(|e| fail(format!("TLS handshake: {e}")))?;
                Box::new(tls)
            }
        };
        let mut conn = Connection {
            stream,
            endpoint: endpoint.to_owned(),
            correlation: 0,
            io_timeout,
            versions: BTreeMap::new(),
        };
        conn.api_versions().await?;
        if let Some(login) = &security.login {
            conn.login(login).await?;
        }
        Ok(conn)
    }

    /// The broker's address, for messages.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An error about this broker's answer.
    pub(crate) fn broker_error(&self, message: String) -> WireError {
        WireError::Broker {
            endpoint: self.endpoint.clone(),
            message,
        }
    }

    async fn api_versions(&mut self) -> Result<(), WireError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("ballast"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = self.call(&request, 3).await?;
        if response.error_code != 0 {
            return Err(self.broker_error(format!(
                "ApiVersions v3 refused (error {}): the broker is older than Kafka 2.4",
                response.error_code
            )));
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    async fn login(&mut self, login: &Login) -> Result<(), WireError> {
        let mechanism = match login {
            Login::Plain { .. } => "PLAIN",
            Login::Scram {
                hash: ScramHash::Sha256,
                ..
            } => "SCRAM-SHA-256",
            Login::Scram { .. } => "SCRAM-SHA-512",
        };
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let answer = self.call(&handshake, 1).await?;
        if answer.error_code != 0 {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(self.login_error(format!(
                "the broker does not offer SASL mechanism {mechanism} on this listener (it offers {offered:?})"
            )));
        }
        match login {
            Login::Plain { user, password } => {
                let token = format!("\0{user}\0{password}");
                self.authenticate(mechanism, user, token.into_bytes())
                    .await
                    .map(|_| ())
            }
            Login::Scram {
                hash,
                user,
                password,
            } => self.scram(mechanism, *hash, user, password).await,
        }
    }

    async fn scram(
        &mut self,
        mechanism: &str,
        hash: ScramHash,
        user: &str,
        password: &str,
    ) -> Result<(), WireError> {
        let nonce: String = {
            let mut bytes = [0u8; 18];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .map_err(|_| self.login_error("no randomness for the SCRAM nonce".into()))?;
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
        };
        let mut scram = Scram::new(hash, user, password, &nonce);
        let first = self
            .authenticate(mechanism, user, scram.client_first().into_bytes())
            .await?;
        let server_first = String::from_utf8_lossy(&first).into_owned();
        let last = scram
            .client_final(&server_first)
            .map_err(|m| self.login_error(format!("{mechanism}: {m}")))?;
        let server_final = self
            .authenticate(mechanism, user, last.into_bytes())
            .await?;
        scram
            .check_server_final(&String::from_utf8_lossy(&server_final))
            .map_err(|m| self.login_error(format!("{mechanism}: {m}")))
    }

    async fn authenticate(
        &mut self,
        mechanism: &str,
        user: &str,
        bytes: Vec<u8>,
    ) -> Result<Bytes, WireError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        let answer = self.call(&request, 1).await?;
        if answer.error_code != 0 {
            let said = answer.error_message.as_deref().unwrap_or("no message");
            return Err(self.login_error(format!(
                "SASL {mechanism} login as {user:?} refused (error {}): {said}",
                answer.error_code
            )));
        }
        Ok(answer.auth_bytes)
    }

    fn login_error(&self, message: String) -> WireError {
        WireError::Login {
            endpoint: self.endpoint.clone(),
            message,
        }
    }

    /// Sends `request` as `version` and reads its response. The broker must serve that version.
    pub(crate) async fn call<R: Exchange>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Answer, WireError> {
        let key = R::KEY as i16;
        let api = format!("{:?}", R::KEY);
        if R::KEY != ApiKey::ApiVersions {
            match self.versions.get(&key) {
                Some((min, max)) if (*min..=*max).contains(&version) => {}
                Some((min, max)) => {
                    return Err(self.broker_error(format!(
                        "{api} v{version} is needed; the broker serves v{min} to v{max}"
                    )));
                }
                None => return Err(self.broker_error(format!("the broker does not serve {api}"))),
            }
        }
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("ballast")));
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|_| request.encode(&mut frame, version))
            .map_err(|e| self.broker_error(format!("encoding {api} v{version}: {e}")))?;
        let mut body = tokio::time::timeout(self.io_timeout, self.exchange(&frame))
            .await
            .map_err(|_| self.broker_error(format!("no answer to {api} in {:?}", self.io_timeout)))?
            .map_err(|e| self.broker_error(format!("{api}: {e}")))?;
        let answer_header = ResponseHeader::decode(&mut body, R::Answer::header_version(version))
            .map_err(|e| self.broker_error(format!("{api} answer header: {e}")))?;
        if answer_header.correlation_id != self.correlation {
            return Err(self.broker_error(format!("{api}: answer to another request")));
        }
        R::Answer::decode(&mut body, version)
            .map_err(|e| self.broker_error(format!("{api} v{version} answer: {e}")))
    }

    async fn exchange(&mut self, frame: &[u8]) -> std::io::Result<Bytes> {
        let size = u32::try_from(frame.len()).map_err(std::io::Error::other)?;
        self.stream.write_all(&size.to_be_bytes()).await?;
        self.stream.write_all(frame).await?;
        self.stream.flush().await?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await?;
        let size = u32::from_be_bytes(size) as usize;
        if size > MAX_RESPONSE {
            return Err(std::io::Error::other(format!(
                "answer of {size} bytes is too large"
            )));
        }
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body).await?;
        Ok(Bytes::from(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(host_port("b-1:9092"), Some(("b-1".into(), 9092)));
        assert_eq!(host_port("[::1]:9093"), Some(("::1".into(), 9093)));
        for bad in ["b-1", ":9092", "b:x", "b:99999"] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
    }
}
