//! PostgreSQL: one number from a query, on a cached connection per server, database, user and
//! password. The query runs with the simple protocol, so any numeric type (or text holding a
//! number) is read; a server-side `statement_timeout` cancels a hung query.

use std::sync::Arc;
use std::time::Duration;

use ballast_api::horizontal::PostgresqlSource;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::cache::{Cache, key_with_secret};
use crate::convert::parse_number;
use crate::error::ReadError;

pub(crate) struct PostgresReader {
    pub(crate) connections: Cache<Arc<Client>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

fn ssl_mode(text: Option<&str>) -> Result<SslMode, ReadError> {
    match text.map(str::trim).unwrap_or("") {
        "" | "disable" => Ok(SslMode::Disable),
        // Without a TLS connector, `prefer` connects in clear text (as libpq does without SSL).
        "prefer" => Ok(SslMode::Prefer),
        "require" => Err(ReadError::Unsupported(
            "postgresql: sslMode require is not supported yet".into(),
        )),
        other => Err(ReadError::InvalidSpec(format!(
            "postgresql.sslMode {other:?}: use disable, prefer or require"
        ))),
    }
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
    pub(crate) async fn read(
        &self,
        src: &PostgresqlSource,
        password: Option<&str>,
    ) -> Result<f64, ReadError> {
        let mode = ssl_mode(src.ssl_mode.as_deref())?;
        if src.query.trim().is_empty() {
            return Err(ReadError::InvalidSpec("postgresql.query is empty".into()));
        }
        let port = u16::try_from(src.port.unwrap_or(5432))
            .map_err(|_| ReadError::InvalidSpec(format!("postgresql.port {:?}", src.port)))?;
        let endpoint = format!("{}:{port}/{}", src.host, src.database);
        let key = key_with_secret(
            &format!("postgres://{}@{endpoint}?{mode:?}", src.user),
            password,
        );
        let client = match self.connections.get(&key) {
            Some(c) if !c.is_closed() => c,
            _ => {
                let mut config = tokio_postgres::Config::new();
                config
                    .host(&src.host)
                    .port(port)
                    .dbname(&src.database)
                    .user(&src.user)
                    .ssl_mode(mode)
                    .application_name("ballast-metrics")
                    .connect_timeout(self.connect_timeout)
                    .options(format!(
                        "-c statement_timeout={}",
                        self.read_timeout.as_millis().max(1)
                    ));
                if let Some(p) = password {
                    config.password(p);
                }
                let connect_error = |message: String| ReadError::Connect {
                    endpoint: endpoint.clone(),
                    message,
                };
                let (client, connection) =
                    tokio::time::timeout(self.connect_timeout, config.connect(NoTls))
                        .await
                        .map_err(|_| connect_error("connection timed out".into()))?
                        .map_err(|e| connect_error(crate::prometheus::error_chain(&e)))?;
                let shown = endpoint.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(endpoint = %shown, error = %e, "postgresql connection closed");
                    }
                });
                let client = Arc::new(client);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_modes() {
        assert_eq!(ssl_mode(None).unwrap(), SslMode::Disable);
        assert_eq!(ssl_mode(Some("disable")).unwrap(), SslMode::Disable);
        assert_eq!(ssl_mode(Some("prefer")).unwrap(), SslMode::Prefer);
        assert!(matches!(
            ssl_mode(Some("require")),
            Err(ReadError::Unsupported(_))
        ));
        assert!(matches!(
            ssl_mode(Some("verify-full")),
            Err(ReadError::InvalidSpec(_))
        ));
    }
}
