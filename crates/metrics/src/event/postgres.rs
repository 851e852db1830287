//! PostgreSQL: one number from a query, on a cached connection per server, database, user,
//! password and TLS setting. The query runs with the simple protocol, so any numeric type (or
//! text holding a number) is read; a server-side `statement_timeout` cancels a hung query.
//!
//! `sslMode` follows libpq: `disable` (clear text), `prefer` (TLS when the server offers it,
//! certificate not checked), `require` (TLS, certificate not checked), `verify-full` (TLS, chain
//! to the system roots or the Secret's CA, and the host name). A client certificate in the Secret
//! (`tls.crt` and `tls.key`) is presented to a server that asks for one.

use std::sync::Arc;
use std::time::Duration;

use ballast_api::horizontal::PostgresqlSource;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::cache::{Cache, key_with_secret};
use crate::convert::parse_number;
use crate::error::ReadError;
use crate::event::tls::{TlsMaterial, Verification, client_config};

pub(crate) struct PostgresReader {
    pub(crate) connections: Cache<Arc<Client>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

/// What `sslMode` asks for: the protocol's mode and how the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tls {
    mode: SslMode,
    verification: Verification,
}

fn ssl_mode(text: Option<&str>) -> Result<Tls, ReadError> {
    let (mode, verification) = match text.map(str::trim).unwrap_or("") {
        "" | "disable" => (SslMode::Disable, Verification::None),
        "prefer" => (SslMode::Prefer, Verification::None),
        "require" => (SslMode::Require, Verification::None),
        "verify-full" => (SslMode::Require, Verification::Full),
        other => {
            return Err(ReadError::InvalidSpec(format!(
                "postgresql.sslMode {other:?}: use disable, prefer, require or verify-full"
            )));
        }
    };
    Ok(Tls { mode, verification })
}

/// The first column of the first row of the messages a simple query returned.
pub(crate) fn first_value(messages: &[SimpleQueryMessage]) -> Result<f64, ReadError> {
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or_else(|| ReadError::Source("postgresql: the query returned no rows".into()))?;
    let text = row
        .try_get(0)
        .map_err(|e| ReadError::Source(format!("postgresql: the query returned no column: {e}")))?
        .ok_or_else(|| ReadError::Source("postgresql: the query returned NULL".into()))?;
    parse_number(text).map_err(|_| {
        ReadError::Source(format!(
            "postgresql: the query returned {text:?}, not a number"
        ))
    })
}

impl PostgresReader {
    /// Reads the query's value; `password` and `material` (a CA trusted besides the system roots
    /// under `verify-full`, a client certificate) come from the credentials Secret.
    pub(crate) async fn read(
        &self,
        src: &PostgresqlSource,
        password: Option<&str>,
        material: &TlsMaterial,
    ) -> Result<f64, ReadError> {
        let tls = ssl_mode(src.ssl_mode.as_deref())?;
        if src.query.trim().is_empty() {
            return Err(ReadError::InvalidSpec("postgresql.query is empty".into()));
        }
        let port = u16::try_from(src.port.unwrap_or(5432))
            .map_err(|_| ReadError::InvalidSpec(format!("postgresql.port {:?}", src.port)))?;
        let endpoint = format!("{}:{port}/{}", src.host, src.database);
        let ca_key = material.fingerprint();
        let key = key_with_secret(
            &format!(
                "postgres://{}@{endpoint}?{:?}/{:?}/{ca_key}",
                src.user, tls.mode, tls.verification
            ),
            password,
        );
        let client = match self.connections.get(&key) {
            Some(c) if !c.is_closed() => c,
            _ => {
                let client = Arc::new(self.connect(src, port, password, tls, material).await?);
                self.connections.replace(&key, client.clone());
                client
            }
        };
        let messages = client.simple_query(&src.query).await.map_err(|e| {
            ReadError::Source(format!(
                "postgresql {endpoint}: {}",
                crate::prometheus::error_chain(&e)
            ))
        })?;
        first_value(&messages)
    }

    async fn connect(
        &self,
        src: &PostgresqlSource,
        port: u16,
        password: Option<&str>,
        tls: Tls,
        material: &TlsMaterial,
    ) -> Result<Client, ReadError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&src.host)
            .port(port)
            .dbname(&src.database)
            .user(&src.user)
            .ssl_mode(tls.mode)
            .application_name("ballast-metrics")
            .connect_timeout(self.connect_timeout)
            .options(format!(
                "-c statement_timeout={}",
                self.read_timeout.as_millis().max(1)
            ));
        if let Some(p) = password {
            config.password(p);
        }
        let endpoint = format!("{}:{port}/{}", src.host, src.database);
        if tls.mode == SslMode::Disable {
            return self.connect_with(&config, NoTls, endpoint).await;
        }
        let rustls = client_config(tls.verification, material)?;
        self.connect_with(&config, MakeRustlsConnect::new(rustls), endpoint)
            .await
            .map_err(|e| match e {
                ReadError::Connect { endpoint, message } => ReadError::Connect {
                    endpoint,
                    message: material.explain(&message),
                },
                other => other,
            })
    }

    /// Connects with `tls` and drives the connection on its own task.
    async fn connect_with<T>(
        &self,
        config: &tokio_postgres::Config,
        tls: T,
        endpoint: String,
    ) -> Result<Client, ReadError>
    where
        T: MakeTlsConnect<Socket>,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let connect_error = |message: String| ReadError::Connect {
            endpoint: endpoint.clone(),
            message,
        };
        let (client, connection) = tokio::time::timeout(self.connect_timeout, config.connect(tls))
            .await
            .map_err(|_| connect_error("connection timed out".into()))?
            .map_err(|e| connect_error(crate::prometheus::error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(endpoint = %endpoint, error = %e, "postgresql connection closed");
            }
        });
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_modes() {
        let tls = |mode, verification| Tls { mode, verification };
        assert_eq!(
            ssl_mode(None).unwrap(),
            tls(SslMode::Disable, Verification::None)
        );
        assert_eq!(
            ssl_mode(Some("disable")).unwrap(),
            tls(SslMode::Disable, Verification::None)
        );
        assert_eq!(
            ssl_mode(Some("prefer")).unwrap(),
            tls(SslMode::Prefer, Verification::None)
        );
        assert_eq!(
            ssl_mode(Some("require")).unwrap(),
            tls(SslMode::Require, Verification::None)
        );
        assert_eq!(
            ssl_mode(Some("verify-full")).unwrap(),
            tls(SslMode::Require, Verification::Full)
        );
        assert!(matches!(
            ssl_mode(Some("verify-ca")),
            Err(ReadError::InvalidSpec(_))
        ));
    }
}
