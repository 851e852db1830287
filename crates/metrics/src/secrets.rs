//! Credentials from the Secret named by a metric's `credentialsRef`, read through the kube
//! client in the autoscaler's namespace and cached for a short time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::cache::Cache;
use crate::error::ReadError;

/// The string values of one Secret.
#[derive(Debug)]
pub struct SecretData {
    namespace: String,
    name: String,
    values: BTreeMap<String, Result<String, ()>>,
}

impl SecretData {
    /// A Secret's data as read (for tests and callers that already hold the Secret).
    pub fn new(namespace: &str, name: &str, data: BTreeMap<String, Vec<u8>>) -> SecretData {
        let values = data
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).map_err(|_| ())))
            .collect();
        SecretData {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            values,
        }
    }

    fn error(&self, message: String) -> ReadError {
        ReadError::Secret {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            message,
        }
    }

    /// The value of `key`, if the Secret has it (an error if it is not UTF-8).
    pub fn get(&self, key: &str) -> Result<Option<&str>, ReadError> {
        match self.values.get(key) {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v.as_str())),
            Some(Err(())) => Err(self.error(format!("key {key:?} is not UTF-8 text"))),
        }
    }

    /// The value of `key`, or an error naming the Secret and the key.
    pub fn require(&self, key: &str) -> Result<&str, ReadError> {
        self.get(key)?
            .ok_or_else(|| self.error(format!("has no key {key:?}")))
    }

    /// `key "KEY" of Secret NAMESPACE/NAME`, for messages.
    pub fn describe_key(&self, key: &str) -> String {
        format!("key {key:?} of Secret {}/{}", self.namespace, self.name)
    }

    /// An error about this Secret (e.g. a key combination that makes no sense).
    pub fn invalid(&self, message: impl Into<String>) -> ReadError {
        self.error(message.into())
    }
}

pub(crate) struct Secrets {
    client: Client,
    cache: Cache<Arc<SecretData>>,
}

impl Secrets {
    pub(crate) fn new(client: Client, ttl: Duration, capacity: usize) -> Secrets {
        Secrets {
            client,
            cache: Cache::new(capacity, ttl),
        }
    }

    /// The Secret `namespace/name`, from the cache when read less than `ttl` ago.
    pub(crate) async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<SecretData>, ReadError> {
        let key = format!("{namespace}/{name}");
        if let Some(s) = self.cache.get_fresh(&key) {
            return Ok(s);
        }
        let err = |message: String| ReadError::Secret {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message,
        };
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| err(format!("cannot read it: {e}")))?
            .ok_or_else(|| err("not found".into()))?;
        let data = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let data = Arc::new(SecretData::new(namespace, name, data));
        self.cache.replace(&key, data.clone());
        Ok(data)
    }
}
