//! One eviction through the Eviction API (`pods/eviction`): the API server checks the PDBs and
//! refuses with 429 when one would be broken, which is an answer, not an error.

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, EvictParams};

use crate::scale::error_text;

/// What became of an eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evicted {
    /// The pod is being deleted.
    Yes,
    /// A PodDisruptionBudget refused it (the API server's message); try again next pass.
    Blocked(String),
    /// The pod was already gone.
    Gone,
    /// Any other error, in words.
    Failed(String),
}

/// Evicts `namespace/name` through `client` (one that does not retry 429s itself).
pub async fn evict(client: &Client, namespace: &str, name: &str) -> Evicted {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.evict(name, &EvictParams::default()).await {
        Ok(_) => Evicted::Yes,
        Err(kube::Error::Api(s)) if s.code == 404 => Evicted::Gone,
        // 429: a PDB allows no disruption now; 500 "…disruption budget…": more than one PDB
        // selects the pod (the API server will not choose).
        Err(kube::Error::Api(s))
            if s.code == 429 || (s.code == 500 && s.message.contains("isruption")) =>
        {
            Evicted::Blocked(s.message.clone())
        }
        Err(e) => Evicted::Failed(error_text(&e)),
    }
}
