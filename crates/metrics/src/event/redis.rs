//! Redis list length (`LLEN`), through one cached `ConnectionManager` per server, database,
//! credentials and TLS setting (it reconnects by itself after a failure).
//!
//! `enableTls: true` connects with TLS (rustls), checking the certificate chain and host name
//! against the system roots, or only against the credentials Secret's CA when it has one. A client
//! certificate in the Secret (`tls.crt` and `tls.key`) is presented to a server that asks for one.

use std::time::Duration;

use ballast_api::horizontal::RedisListSource;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo,
    TlsCertificates,
};

use crate::cache::{Cache, key_with_secret};
use crate::error::ReadError;
use crate::event::tls::TlsMaterial;

pub(crate) struct RedisReader {
    pub(crate) connections: Cache<ConnectionManager>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

/// `host:port` (or `[v6]:port`, or `host` with the default port 6379).
pub(crate) fn host_port(address: &str) -> Result<(String, u16), ReadError> {
    let a = address.trim();
    let a = a
        .strip_prefix("redis://")
        .unwrap_or(a)
        .trim_end_matches('/');
    let bad = || ReadError::InvalidSpec(format!("redisList.address {address:?} is not host:port"));
    if a.is_empty() {
        return Err(bad());
    }
    if let Some(rest) = a.strip_prefix('[') {
        let (host, port) = rest.split_once(']').ok_or_else(bad)?;
        let port = match port.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if port.is_empty() => 6379,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    match a.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            Ok((host.to_owned(), port.parse().map_err(|_| bad())?))
        }
        Some(_) => Err(bad()),
        None => Ok((a.to_owned(), 6379)),
    }
}

/// A client for `host:port`, with TLS when `tls` (trusting only the material's CA when given, else
/// the system roots, and presenting its client certificate when given).
fn client(
    host: &str,
    port: u16,
    tls: bool,
    material: &TlsMaterial,
    settings: RedisConnectionInfo,
) -> redis::RedisResult<redis::Client> {
    let address = if tls {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    };
    let info: ConnectionInfo = address.into_connection_info()?.set_redis_settings(settings);
    if !tls || material.is_empty() {
        return redis::Client::open(info);
    }
    redis::Client::build_with_tls(
        info,
        TlsCertificates {
            client_tls: material.client.as_ref().map(|c| ClientTlsConfig {
                client_cert: c.cert_pem.as_bytes().to_vec(),
                client_key: c.key_pem.as_bytes().to_vec(),
            }),
            root_cert: material.ca_pem.as_ref().map(|pem| pem.as_bytes().to_vec()),
        },
    )
}

impl RedisReader {
    pub(crate) async fn read(
        &self,
        src: &RedisListSource,
        username: Option<&str>,
        password: Option<&str>,
        material: &TlsMaterial,
    ) -> Result<f64, ReadError> {
        let tls = src.enable_tls == Some(true);
        if src.list_name.is_empty() {
            return Err(ReadError::InvalidSpec("redisList.listName is empty".into()));
        }
        let (host, port) = host_port(&src.address)?;
        let db = i64::from(src.database.unwrap_or(0));
        let endpoint = format!("{host}:{port}");
        let secret = password.map(|p| format!("{}:{p}", username.unwrap_or("")));
        let scheme = if tls { "rediss" } else { "redis" };
        let ca_key = material.fingerprint();
        let key = key_with_secret(
            &format!("{scheme}://{endpoint}/{db}?{ca_key}"),
            secret.as_deref(),
        );
        let mut conn = match self.connections.get(&key) {
            Some(c) => c,
            None => {
                let mut settings = RedisConnectionInfo::default().set_db(db);
                if let Some(u) = username {
                    settings = settings.set_username(u);
                }
                if let Some(p) = password {
                    settings = settings.set_password(p);
                }
                let client = client(&host, port, tls, material, settings)
                    .map_err(|e| ReadError::InvalidSpec(format!("redis {endpoint}: {e}")))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.read_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                let manager = tokio::time::timeout(
                    self.connect_timeout,
                    ConnectionManager::new_with_config(client, config),
                )
                .await
                .map_err(|_| ReadError::Connect {
                    endpoint: endpoint.clone(),
                    message: "connection timed out".into(),
                })?
                .map_err(|e| ReadError::Connect {
                    endpoint: endpoint.clone(),
                    message: match tls {
                        true => material.explain(&e.to_string()),
                        false => e.to_string(),
                    },
                })?;
                self.connections.insert(&key, manager)
            }
        };
        let n: i64 = redis::cmd("LLEN")
            .arg(&src.list_name)
            .query_async(&mut conn)
            .await
            .map_err(|e| {
                ReadError::Source(format!("redis {endpoint}: LLEN {}: {e}", src.list_name))
            })?;
        Ok(n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let ok = |a: &str| host_port(a).unwrap();
        assert_eq!(ok("127.0.0.1:6379"), ("127.0.0.1".into(), 6379));
        assert_eq!(ok("redis.default.svc"), ("redis.default.svc".into(), 6379));
        assert_eq!(ok("redis://10.0.0.1:7000/"), ("10.0.0.1".into(), 7000));
        assert_eq!(ok("[::1]:6380"), ("::1".into(), 6380));
        assert_eq!(ok("[::1]"), ("::1".into(), 6379));
        for bad in ["", ":6379", "host:port", "::1:6379", "[::1]x", "h:99999"] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }
}
