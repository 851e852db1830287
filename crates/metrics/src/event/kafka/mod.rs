//! Kafka consumer-group lag, read with a small client of our own over the `kafka-protocol` wire
//! messages (ApiVersions, SASL, Metadata, FindCoordinator, OffsetFetch, ListOffsets) on tokio,
//! with TLS on rustls. The arithmetic is pure and lives in [`lag`]; this module gathers the offsets
//! and remembers each source's committed offsets between reads (for `excludePersistentLag`).
//!
//! Each read opens its connections and closes them at its end: a lag read every sync period costs
//! a handshake (and a SASL login) per broker involved, which keeps no state that could go stale.

pub mod admin;
pub(crate) mod lag;
mod offsets;
mod scram;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use ballast_api::horizontal::{KafkaSasl, KafkaSource};

use crate::cache::Cache;
use crate::error::ReadError;
use crate::event::tls::{TlsMaterial, Verification, client_config};
use crate::secrets::SecretData;
use lag::{LagRules, committed_offsets};
use offsets::{Brokers, Query};
use scram::ScramHash;
use wire::{Login, Security, WireError};

pub(crate) struct KafkaReader {
    /// Committed offsets of the previous read, per source (bootstrap servers, group, topic).
    pub(crate) previous: Cache<Arc<lag::Committed>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

/// The SASL mechanism: the Secret's `sasl` key when it has one, else `kafka.sasl`.
fn sasl(src: &KafkaSource, secret: Option<&SecretData>) -> Result<KafkaSasl, ReadError> {
    let Some(s) = secret else {
        return Ok(src.sasl.unwrap_or_default());
    };
    match s.get("sasl")?.map(str::trim) {
        None => Ok(src.sasl.unwrap_or_default()),
        Some("none" | "") => Ok(KafkaSasl::None),
        Some("plaintext") => Ok(KafkaSasl::Plaintext),
        Some("scram_sha256") => Ok(KafkaSasl::ScramSha256),
        Some("scram_sha512") => Ok(KafkaSasl::ScramSha512),
        Some(other) => Err(s.invalid(format!(
            "key \"sasl\" is {other:?}: use none, plaintext, scram_sha256 or scram_sha512"
        ))),
    }
}

/// TLS on or off: the Secret's `tls` key (`enable`/`disable`) when it has one, else
/// `kafka.enableTls`.
fn tls_enabled(src: &KafkaSource, secret: Option<&SecretData>) -> Result<bool, ReadError> {
    let spec = src.enable_tls == Some(true);
    let Some(s) = secret else { return Ok(spec) };
    match s.get("tls")?.map(str::trim) {
        None => Ok(spec),
        Some("enable") => Ok(true),
        Some("disable") => Ok(false),
        Some(other) => Err(s.invalid(format!("key \"tls\" is {other:?}: use enable or disable"))),
    }
}

/// The TLS settings and SASL login of `src` with its Secret.
fn security(src: &KafkaSource, secret: Option<&SecretData>) -> Result<Security, ReadError> {
    let login = match sasl(src, secret)? {
        KafkaSasl::None => None,
        mechanism => {
            let s = secret.ok_or_else(|| {
                ReadError::InvalidSpec(format!(
                    "kafka.sasl {mechanism:?} needs a credentialsRef whose Secret holds username and password"
                ))
            })?;
            let (user, password) = (s.require("username")?.to_owned(), s.require("password")?);
            let password = password.to_owned();
            Some(match mechanism {
                KafkaSasl::Plaintext => Login::Plain { user, password },
                KafkaSasl::ScramSha256 => Login::Scram {
                    hash: ScramHash::Sha256,
                    user,
                    password,
                },
                _ => Login::Scram {
                    hash: ScramHash::Sha512,
                    user,
                    password,
                },
            })
        }
    };
    let tls = if tls_enabled(src, secret)? {
        let material = match secret {
            Some(s) => TlsMaterial::from_secret(s)?,
            None => TlsMaterial::default(),
        };
        let verification = match src.unsafe_ssl {
            Some(true) => Verification::None,
            _ => Verification::Full,
        };
        Some(Arc::new(client_config(verification, &material)?))
    } else {
        None
    };
    Ok(Security { tls, login })
}

/// A wire error as a read error; a refused login names the Secret that holds the credentials.
fn read_error(e: WireError, secret: Option<&SecretData>) -> ReadError {
    match e {
        WireError::Connect { endpoint, message } => ReadError::Connect { endpoint, message },
        WireError::Login { .. } => match secret {
            Some(s) => s.invalid(format!(
                "its username and password (keys \"username\", \"password\") were refused: {e}"
            )),
            None => ReadError::Source(e.to_string()),
        },
        WireError::Broker { .. } => ReadError::Source(e.to_string()),
    }
}

/// The rules of `src`, checked.
fn rules(src: &KafkaSource, per_replica_target: Option<f64>) -> Result<LagRules, ReadError> {
    let rules = LagRules {
        offset_reset_policy: src.offset_reset_policy.unwrap_or_default(),
        scale_to_zero_on_invalid_offset: src.scale_to_zero_on_invalid_offset == Some(true),
        allow_idle_consumers: src.allow_idle_consumers == Some(true),
        limit_to_partitions_with_lag: src.limit_to_partitions_with_lag == Some(true),
        exclude_persistent_lag: src.exclude_persistent_lag == Some(true),
        per_replica_target,
    };
    if rules.allow_idle_consumers && rules.limit_to_partitions_with_lag {
        return Err(ReadError::InvalidSpec(
            "kafka.allowIdleConsumers and kafka.limitToPartitionsWithLag cannot both be true"
                .into(),
        ));
    }
    if src.bootstrap_servers.iter().all(|s| s.trim().is_empty()) {
        return Err(ReadError::InvalidSpec(
            "kafka.bootstrapServers is empty".into(),
        ));
    }
    if src.consumer_group.trim().is_empty() {
        return Err(ReadError::InvalidSpec(
            "kafka.consumerGroup is empty".into(),
        ));
    }
    if src.partition_limitation.is_some() && src.topic.is_none() {
        return Err(ReadError::InvalidSpec(
            "kafka.partitionLimitation needs kafka.topic".into(),
        ));
    }
    Ok(rules)
}

impl KafkaReader {
    /// The lag of `src` (the metric value, capped as [`lag`] says); `per_replica_target` is the
    /// metric's AverageValue target, if it has one.
    pub(crate) async fn read(
        &self,
        src: &KafkaSource,
        per_replica_target: Option<f64>,
        secret: Option<&SecretData>,
    ) -> Result<f64, ReadError> {
        let rules = rules(src, per_replica_target)?;
        let security = security(src, secret)?;
        let servers: Vec<String> = src
            .bootstrap_servers
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let query = Query {
            group: &src.consumer_group,
            topic: src.topic.as_deref().filter(|t| !t.is_empty()),
            partitions: src.partition_limitation.as_deref(),
            need_earliest: rules.offset_reset_policy
                == ballast_api::horizontal::KafkaOffsetResetPolicy::Earliest,
        };
        let partitions = async {
            let mut brokers =
                Brokers::connect(&servers, security, self.connect_timeout, self.read_timeout)
                    .await?;
            brokers.offsets(&query).await
        }
        .await
        .map_err(|e| read_error(e, secret))?;
        let key = format!(
            "{}/{}/{}/{:?}",
            servers.join(","),
            src.consumer_group,
            query.topic.unwrap_or("*"),
            query.partitions
        );
        let previous = self.previous.get(&key).unwrap_or_default();
        let lag = lag::lag(&partitions, &previous, &rules);
        self.previous
            .replace(&key, Arc::new(committed_offsets(&partitions)));
        tracing::debug!(
            group = %src.consumer_group,
            total = lag.total,
            partitions = lag.partitions,
            with_lag = lag.partitions_with_lag,
            cap = ?lag.replica_cap,
            value = lag.value,
            "kafka lag"
        );
        Ok(lag.value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn secret(pairs: &[(&str, &str)]) -> SecretData {
        let data: BTreeMap<String, Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        SecretData::new("jobs", "kafka", data)
    }

    #[test]
    fn the_secret_chooses_sasl_and_tls_over_the_spec() {
        let src = KafkaSource {
            sasl: Some(KafkaSasl::Plaintext),
            enable_tls: Some(true),
            ..Default::default()
        };
        assert_eq!(sasl(&src, None).unwrap(), KafkaSasl::Plaintext);
        let s = secret(&[("sasl", "scram_sha512"), ("tls", "disable")]);
        assert_eq!(sasl(&src, Some(&s)).unwrap(), KafkaSasl::ScramSha512);
        assert!(!tls_enabled(&src, Some(&s)).unwrap());
        let bad = secret(&[("sasl", "gssapi")]);
        let err = sasl(&src, Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("secret jobs/kafka: key \"sasl\""), "{err}");
    }

    #[test]
    fn sasl_needs_a_username_and_password() {
        let src = KafkaSource {
            sasl: Some(KafkaSasl::ScramSha256),
            ..Default::default()
        };
        let err = security(&src, None).err().unwrap().to_string();
        assert!(err.contains("needs a credentialsRef"), "{err}");
        let s = secret(&[("username", "u")]);
        let err = security(&src, Some(&s)).err().unwrap().to_string();
        assert!(err.contains("has no key \"password\""), "{err}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let s = secret(&[("cert", "x")]);
        let err = TlsMaterial::from_secret(&s).err().unwrap().to_string();
        assert!(err.contains("has no key tls.key (or key)"), "{err}");
    }

    #[test]
    fn contradictory_rules_are_refused() {
        let src = KafkaSource {
            bootstrap_servers: vec!["b:9092".into()],
            consumer_group: "g".into(),
            allow_idle_consumers: Some(true),
            limit_to_partitions_with_lag: Some(true),
            ..Default::default()
        };
        assert!(matches!(rules(&src, None), Err(ReadError::InvalidSpec(_))));
    }
}
