//! An in-memory [`CloudProvider`] for unit tests of the code that calls a provider (the node
//! controllers' launch, termination and garbage collection), built only with the `fake` feature
//! so the product never ships it.
//!
//! It keeps the trait's contracts, so a test of a caller learns what a real provider would do:
//!
//! - `create` is idempotent per NodeClaim (by name): launching again for a NodeClaim whose
//!   instance exists returns that instance, whatever offerings are asked for;
//! - `create` takes the request's first offering, like the kwok provider; when that offering is
//!   marked unavailable in the fake's catalog (`available: false`) or has no capacity
//!   ([`FakeCloud::no_capacity`]), the answer is `InsufficientCapacity` naming it, and the caller
//!   is to try the rest; a request without offerings names none;
//! - `delete` of an unknown or deleted instance is `NotFound`; `get` of one is `None`;
//! - `list` returns the instances launched for this cluster only (those
//!   [`FakeCloud::insert_foreign`] adds belong to another cluster: `get` and `delete` still see
//!   them, as a cloud API would).
//!
//! It is scriptable: [`FakeCloud::fail_next`] makes the next N calls of an operation fail with a
//! given [`CloudError`] (before anything else is done, so a failed `create` launches nothing),
//! [`FakeCloud::lingering`] keeps a deleted instance visible to `get` for some reads (an instance
//! shutting down), and [`FakeCloud::set_now`] is the launch time of what it creates. Every call
//! is counted by operation ([`FakeCloud::calls`]).
//!
//! No tokio, no clock: the futures are ready at once, so any executor (or none: a test may poll
//! them with a no-op waker) runs them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use ballast_api::nodes::{NodeClaim, labels};
use ballast_scheduling::InstanceType;
use jiff::Timestamp;

use crate::{CloudError, CloudProvider, Instance, LaunchOffering, LaunchRequest, OfferingKey};

/// A provider call, for scripting failures and counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    InstanceTypes,
    Create,
    Delete,
    Get,
    List,
    IsDrifted,
}

/// The in-memory provider (see the module's contracts).
#[derive(Debug)]
pub struct FakeCloud {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    types: Vec<InstanceType>,
    /// By provider ID: the instance and whether it was launched for this cluster.
    instances: BTreeMap<String, (Instance, bool)>,
    /// Deleted instances `get` still returns, with the reads left.
    lingering: BTreeMap<String, (Instance, usize)>,
    linger_reads: usize,
    no_capacity: Vec<OfferingKey>,
    failures: BTreeMap<Operation, VecDeque<CloudError>>,
    calls: BTreeMap<Operation, usize>,
    drifted: BTreeMap<String, String>,
    launched: u64,
    now: Option<Timestamp>,
}

impl FakeCloud {
    /// A cloud offering these instance types, with no instance yet.
    pub fn new(types: Vec<InstanceType>) -> FakeCloud {
        FakeCloud {
            state: Mutex::new(State {
                types,
                instances: BTreeMap::new(),
                lingering: BTreeMap::new(),
                linger_reads: 0,
                no_capacity: vec![],
                failures: BTreeMap::new(),
                calls: BTreeMap::new(),
                drifted: BTreeMap::new(),
                launched: 0,
                now: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; read on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `n` calls of `op` fail with `error` (added after failures already scripted).
    pub fn fail_next(&self, op: Operation, n: usize, error: CloudError) {
        let mut s = self.state();
        let queue = s.failures.entry(op).or_default();
        queue.extend(std::iter::repeat_n(error, n));
    }

    /// `create` answers `InsufficientCapacity` for this offering until told otherwise.
    pub fn no_capacity(&self, key: OfferingKey) {
        let mut s = self.state();
        if !s.no_capacity.contains(&key) {
            s.no_capacity.push(key);
        }
    }

    /// The offering has capacity again.
    pub fn capacity_back(&self, key: &OfferingKey) {
        self.state().no_capacity.retain(|k| k != key);
    }

    /// From now on, a deleted instance is still returned by the next `reads` calls of `get` for
    /// it (shutting down), then gone.
    pub fn lingering(&self, reads: usize) {
        self.state().linger_reads = reads;
    }

    /// The launch time of instances created from now on (none until set).
    pub fn set_now(&self, now: Timestamp) {
        self.state().now = Some(now);
    }

    /// `is_drifted` answers `why` for this NodeClaim (by name).
    pub fn drift(&self, claim: &str, why: &str) {
        self.state().drifted.insert(claim.into(), why.into());
    }

    /// Adds an instance launched for this cluster (one launched earlier, or an orphan).
    pub fn insert(&self, instance: Instance) {
        self.state()
            .instances
            .insert(instance.provider_id.clone(), (instance, true));
    }

    /// Adds an instance of another cluster: `list` does not show it.
    pub fn insert_foreign(&self, instance: Instance) {
        self.state()
            .instances
            .insert(instance.provider_id.clone(), (instance, false));
    }

    /// Every instance running (this cluster's and others'), by provider ID.
    pub fn running(&self) -> Vec<Instance> {
        self.state()
            .instances
            .values()
            .map(|(i, _)| i.clone())
            .collect()
    }

    /// Calls of `op` so far, failed ones included.
    pub fn calls(&self, op: Operation) -> usize {
        self.state().calls.get(&op).copied().unwrap_or(0)
    }

    /// Counts the call and takes a scripted failure, if any.
    fn enter(&self, op: Operation) -> Result<MutexGuard<'_, State>, CloudError> {
        let mut s = self.state();
        *s.calls.entry(op).or_default() += 1;
        match s.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(s),
        }
    }
}

impl State {
    fn unavailable(&self, o: &LaunchOffering) -> bool {
        let key = o.key();
        self.no_capacity.contains(&key)
            || self.types.iter().any(|t| {
                t.name == key.instance_type
                    && t.offerings.iter().any(|x| {
                        x.zone == key.zone && x.capacity_type == key.capacity_type && !x.available
                    })
            })
    }

    fn launch(&mut self, claim: &NodeClaim, name: &str, o: &LaunchOffering) -> Instance {
        self.launched += 1;
        let instance = Instance {
            provider_id: format!("fake:///{}/i-{:06}", o.zone, self.launched),
            node_name: Some(name.to_string()),
            node_claim: Some(name.to_string()),
            node_pool: claim
                .metadata
                .labels
                .as_ref()
                .and_then(|l| ballast_scheduling::aliases::get(l, labels::NODEPOOL).cloned()),
            instance_type: o.instance_type.name.clone(),
            zone: o.zone.clone(),
            capacity_type: o.capacity_type.clone(),
            image_id: None,
            capacity: o.instance_type.capacity.clone(),
            allocatable: o.instance_type.allocatable(),
            created: self.now,
        };
        self.instances
            .insert(instance.provider_id.clone(), (instance.clone(), true));
        instance
    }
}

impl CloudProvider for FakeCloud {
    fn name(&self) -> &str {
        "fake"
    }

    async fn instance_types(&self) -> Result<Vec<InstanceType>, CloudError> {
        Ok(self.enter(Operation::InstanceTypes)?.types.clone())
    }

    async fn create(&self, request: &LaunchRequest) -> Result<Instance, CloudError> {
        let mut s = self.enter(Operation::Create)?;
        let claim = &request.node_claim;
        let name = claim
            .metadata
            .name
            .clone()
            .ok_or_else(|| CloudError::Other("NodeClaim without a name".into()))?;
        let existing = s
            .instances
            .values()
            .find(|(i, ours)| *ours && i.node_claim.as_deref() == Some(name.as_str()));
        if let Some((i, _)) = existing {
            return Ok(i.clone());
        }
        let Some(first) = request.offerings.first() else {
            return Err(CloudError::InsufficientCapacity {
                offerings: vec![],
                message: format!("NodeClaim {name}: no offering to launch"),
            });
        };
        if s.unavailable(first) {
            return Err(CloudError::InsufficientCapacity {
                offerings: vec![first.key()],
                message: "fake cloud: no capacity for this offering".into(),
            });
        }
        Ok(s.launch(claim, &name, first))
    }

    async fn delete(&self, provider_id: &str) -> Result<(), CloudError> {
        let mut s = self.enter(Operation::Delete)?;
        let Some((instance, _)) = s.instances.remove(provider_id) else {
            return Err(CloudError::NotFound {
                provider_id: provider_id.into(),
            });
        };
        if s.linger_reads > 0 {
            let reads = s.linger_reads;
            s.lingering.insert(provider_id.into(), (instance, reads));
        }
        Ok(())
    }

    async fn get(&self, provider_id: &str) -> Result<Option<Instance>, CloudError> {
        let mut s = self.enter(Operation::Get)?;
        if let Some((i, _)) = s.instances.get(provider_id) {
            return Ok(Some(i.clone()));
        }
        let Some((instance, reads)) = s.lingering.get_mut(provider_id) else {
            return Ok(None);
        };
        let instance = instance.clone();
        *reads -= 1;
        if *reads == 0 {
            s.lingering.remove(provider_id);
        }
        Ok(Some(instance))
    }

    async fn list(&self) -> Result<Vec<Instance>, CloudError> {
        let s = self.enter(Operation::List)?;
        Ok(s.instances
            .values()
            .filter(|(_, ours)| *ours)
            .map(|(i, _)| i.clone())
            .collect())
    }

    async fn is_drifted(&self, claim: &NodeClaim) -> Result<Option<String>, CloudError> {
        let s = self.enter(Operation::IsDrifted)?;
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        Ok(s.drifted.get(name).cloned())
    }
}

/// The output of a future that is ready at once (every call of [`FakeCloud`] is), without an
/// executor. Panics if the future is not ready: a test that needs to wait needs a runtime.
pub fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the future waits for something: run it on a runtime"),
    }
}

#[cfg(test)]
#[path = "fake_tests.rs"]
mod tests;
