//! The cloud-provider trait: how the node controllers launch, find and delete instances, and
//! where the instance catalog comes from.
//!
//! Implemented by `ballast-cloud-kwok` (kwok `Node`s for local clusters and the test bed) and,
//! later, `ballast-cloud-aws` (EC2). The trait knows nothing of kube-runtime: a provider gets a
//! [`LaunchRequest`] (the `NodeClaim` object and the offerings it may launch as, cheapest first)
//! and answers with an [`Instance`] or a [`CloudError`].
//!
//! Insufficient capacity: a provider that cannot get an offering returns
//! [`CloudError::InsufficientCapacity`] naming the offerings that failed. The controller records
//! them in [`UnavailableOfferings`] (for a while), retries the launch with the offerings left, and
//! masks them from the catalog the provisioner solves with, so the next NodeClaim picks another
//! offering.
//!
//! `fake` (feature `fake`, for tests only): an in-memory provider that keeps these contracts and
//! can be told to fail.
//!
//! [`interruption`]: what an EC2 interruption message from the interruption queue says and what
//! to do about it (pure; the controller's queue loop calls it).

#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod interruption;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;

use ballast_api::nodes::NodeClaim;
use ballast_scheduling::{InstanceType, Resources};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// One (instance type, zone, capacity type) triple.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferingKey {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
}

impl OfferingKey {
    pub fn new(instance_type: &str, zone: &str, capacity_type: &str) -> Self {
        OfferingKey {
            instance_type: instance_type.into(),
            zone: zone.into(),
            capacity_type: capacity_type.into(),
        }
    }
}

impl fmt::Display for OfferingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.instance_type, self.zone, self.capacity_type
        )
    }
}

/// An offering a NodeClaim may launch as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchOffering {
    pub instance_type: InstanceType,
    pub zone: String,
    pub capacity_type: String,
    /// $ per hour.
    pub price: f64,
}

impl LaunchOffering {
    pub fn key(&self) -> OfferingKey {
        OfferingKey::new(&self.instance_type.name, &self.zone, &self.capacity_type)
    }
}

/// What the controller asks a provider to launch.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// The NodeClaim (name, uid, labels, taints, startup taints, nodeClassRef, requirements).
    pub node_claim: NodeClaim,
    /// The offerings it may launch as, cheapest first, none known to be unavailable. A provider
    /// takes the first it can get (or lets the cloud choose among them, price-ordered).
    pub offerings: Vec<LaunchOffering>,
}

/// A cloud instance Ballast launched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// What the node's `spec.providerID` will be (`kwok://name`, `aws:///zone/i-...`).
    pub provider_id: String,
    /// The node name the instance registers as, when known in advance.
    pub node_name: Option<String>,
    /// The NodeClaim it was launched for (from the provider's ownership tags or labels).
    pub node_claim: Option<String>,
    /// The NodePool of that NodeClaim.
    pub node_pool: Option<String>,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    pub image_id: Option<String>,
    pub capacity: Resources,
    pub allocatable: Resources,
    /// When the instance was launched.
    pub created: Option<Timestamp>,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudError {
    /// None of these offerings has capacity right now: mark them unavailable and try others.
    #[error("insufficient capacity for {}: {message}", join(offerings))]
    InsufficientCapacity {
        offerings: Vec<OfferingKey>,
        message: String,
    },
    /// No such instance (already gone).
    #[error("instance {provider_id} not found")]
    NotFound { provider_id: String },
    /// The NodeClaim's node class is missing, invalid or not ready: retry later.
    #[error("node class: {0}")]
    NodeClass(String),
    /// The cloud API kept throttling the call (`RequestLimitExceeded`, `Throttling`) after the
    /// provider's own bounded retries with backoff: retry later.
    #[error("throttled: {operation} still refused after {attempts} attempt(s): {message}")]
    Throttled {
        operation: String,
        attempts: u32,
        message: String,
    },
    /// A transient error: retry with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl CloudError {
    /// Every [`CloudError::code`], in declaration order.
    pub const CODES: [&'static str; 6] = [
        "insufficient_capacity",
        "not_found",
        "node_class",
        "throttled",
        "transient",
        "other",
    ];

    /// The kind of error as a short snake_case word (`insufficient_capacity`, `not_found`,
    /// `node_class`, `throttled`, `transient`, `other`): a bounded metric label, never a message.
    pub fn code(&self) -> &'static str {
        let i = match self {
            CloudError::InsufficientCapacity { .. } => 0,
            CloudError::NotFound { .. } => 1,
            CloudError::NodeClass(_) => 2,
            CloudError::Throttled { .. } => 3,
            CloudError::Transient(_) => 4,
            CloudError::Other(_) => 5,
        };
        Self::CODES[i]
    }
}

fn join(keys: &[OfferingKey]) -> String {
    keys.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A cloud provider. Implementations must be cheap to call concurrently (`&self`) and keep their
/// own caches; every method is called from the controllers' tasks.
pub trait CloudProvider: Send + Sync + 'static {
    /// Short name (`kwok`, `aws`), used in logs and events.
    fn name(&self) -> &str;

    /// Every instance type with its offerings (price, availability as the cloud reports it).
    fn instance_types(&self) -> impl Future<Output = Result<Vec<InstanceType>, CloudError>> + Send;

    /// Launches one instance for the NodeClaim from one of the offerings. Must be idempotent per
    /// NodeClaim: launching again for a NodeClaim whose instance exists returns that instance.
    fn create(
        &self,
        request: &LaunchRequest,
    ) -> impl Future<Output = Result<Instance, CloudError>> + Send;

    /// Terminates the instance (`NotFound` when it is already gone).
    fn delete(&self, provider_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The instance, or `None` when it is gone (terminated instances count as gone).
    fn get(
        &self,
        provider_id: &str,
    ) -> impl Future<Output = Result<Option<Instance>, CloudError>> + Send;

    /// Every instance this provider launched for the cluster (for garbage collection).
    fn list(&self) -> impl Future<Output = Result<Vec<Instance>, CloudError>> + Send;

    /// Cloud-side drift of a launched NodeClaim (image, subnets...): `Some(why)` when drifted.
    fn is_drifted(
        &self,
        _claim: &NodeClaim,
    ) -> impl Future<Output = Result<Option<String>, CloudError>> + Send {
        async { Ok(None) }
    }
}

/// Offerings that recently failed with insufficient capacity, until a deadline each.
#[derive(Debug, Default)]
pub struct UnavailableOfferings {
    until: Mutex<BTreeMap<OfferingKey, Timestamp>>,
}

impl UnavailableOfferings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the offerings unavailable for `ttl` from `now`.
    pub fn mark(&self, keys: &[OfferingKey], now: Timestamp, ttl: SignedDuration) {
        let until = now.checked_add(ttl).unwrap_or(Timestamp::MAX);
        let mut m = self.until.lock().expect("unavailable offerings lock");
        for k in keys {
            m.insert(k.clone(), until);
        }
    }

    /// Whether the offering is marked unavailable at `now`.
    pub fn is_unavailable(&self, key: &OfferingKey, now: Timestamp) -> bool {
        self.until
            .lock()
            .expect("unavailable offerings lock")
            .get(key)
            .is_some_and(|u| now < *u)
    }

    /// The offerings marked unavailable at `now` (expired marks are dropped).
    pub fn current(&self, now: Timestamp) -> Vec<OfferingKey> {
        let mut m = self.until.lock().expect("unavailable offerings lock");
        m.retain(|_, u| now < *u);
        m.keys().cloned().collect()
    }

    /// Sets `available = false` on every offering marked unavailable at `now`.
    pub fn apply(&self, types: &mut [InstanceType], now: Timestamp) {
        let marked = self.current(now);
        if marked.is_empty() {
            return;
        }
        for t in types.iter_mut() {
            for o in &mut t.offerings {
                if marked.iter().any(|k| {
                    k.instance_type == t.name
                        && k.zone == o.zone
                        && k.capacity_type == o.capacity_type
                }) {
                    o.available = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_scheduling::Offering;

    #[test]
    fn marks_expire_and_apply_to_the_catalog() {
        let u = UnavailableOfferings::new();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let k = OfferingKey::new("m.large", "a", "spot");
        u.mark(std::slice::from_ref(&k), t0, SignedDuration::from_secs(180));
        assert!(u.is_unavailable(&k, t0));
        assert!(!u.is_unavailable(&OfferingKey::new("m.large", "b", "spot"), t0));
        let mut types = vec![InstanceType {
            name: "m.large".into(),
            capacity: Resources::cpu_mem(2000, 8 << 30),
            overhead: Resources::default(),
            labels: Default::default(),
            offerings: vec![
                Offering {
                    zone: "a".into(),
                    capacity_type: "spot".into(),
                    price: 0.03,
                    available: true,
                },
                Offering {
                    zone: "a".into(),
                    capacity_type: "on-demand".into(),
                    price: 0.09,
                    available: true,
                },
            ],
        }];
        u.apply(&mut types, t0);
        assert!(!types[0].offerings[0].available);
        assert!(types[0].offerings[1].available);
        let later = t0.checked_add(SignedDuration::from_secs(181)).unwrap();
        assert!(!u.is_unavailable(&k, later));
        assert!(u.current(later).is_empty());
    }

    #[test]
    fn throttled_names_the_operation_and_attempts() {
        let e = CloudError::Throttled {
            operation: "CreateFleet".into(),
            attempts: 4,
            message: "RequestLimitExceeded: Request limit exceeded.".into(),
        };
        assert_eq!(
            e.to_string(),
            "throttled: CreateFleet still refused after 4 attempt(s): RequestLimitExceeded: Request limit exceeded."
        );
    }

    #[test]
    fn codes_are_bounded_words() {
        let errors = [
            CloudError::InsufficientCapacity {
                offerings: vec![],
                message: "m".into(),
            },
            CloudError::NotFound {
                provider_id: "kwok://n".into(),
            },
            CloudError::NodeClass("missing".into()),
            CloudError::Throttled {
                operation: "CreateFleet".into(),
                attempts: 1,
                message: "m".into(),
            },
            CloudError::Transient("t".into()),
            CloudError::Other("o".into()),
        ];
        let codes: Vec<&str> = errors.iter().map(CloudError::code).collect();
        assert_eq!(codes, CloudError::CODES);
    }

    #[test]
    fn insufficient_capacity_names_the_offerings() {
        let e = CloudError::InsufficientCapacity {
            offerings: vec![OfferingKey::new("c.xlarge", "z1", "spot")],
            message: "no capacity".into(),
        };
        assert_eq!(
            e.to_string(),
            "insufficient capacity for c.xlarge/z1/spot: no capacity"
        );
    }
}
