//! The fake keeps the trait's contracts and fails when told.

use std::collections::BTreeMap;

use ballast_api::nodes::{NodeClaim, labels};
use ballast_scheduling::{InstanceType, Offering, Resources};

use super::*;

fn catalog() -> Vec<InstanceType> {
    let offering = |zone: &str, capacity_type: &str, price: f64, available: bool| Offering {
        zone: zone.into(),
        capacity_type: capacity_type.into(),
        price,
        available,
    };
    vec![InstanceType {
        name: "m.large".into(),
        capacity: Resources::cpu_mem(2000, 8 << 30).with("pods", 29),
        overhead: Resources::cpu_mem(100, 0),
        labels: BTreeMap::new(),
        offerings: vec![
            offering("a", "spot", 0.03, true),
            offering("b", "spot", 0.02, false),
            offering("a", "on-demand", 0.09, true),
        ],
    }]
}

fn offer(zone: &str, capacity_type: &str) -> LaunchOffering {
    LaunchOffering {
        instance_type: catalog().remove(0),
        zone: zone.into(),
        capacity_type: capacity_type.into(),
        price: 0.0,
    }
}

fn request(claim: &str, offerings: Vec<LaunchOffering>) -> LaunchRequest {
    let mut c = NodeClaim::new(claim, Default::default());
    c.metadata.labels = Some(BTreeMap::from([(
        labels::NODEPOOL.to_string(),
        "general".to_string(),
    )]));
    LaunchRequest {
        node_claim: c,
        offerings,
    }
}

#[test]
fn create_is_idempotent_per_node_claim() {
    let cloud = FakeCloud::new(catalog());
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    cloud.set_now(now);
    let first = ready(cloud.create(&request("c1", vec![offer("a", "spot")]))).unwrap();
    assert_eq!(first.instance_type, "m.large");
    assert_eq!(first.node_claim.as_deref(), Some("c1"));
    assert_eq!(first.node_pool.as_deref(), Some("general"));
    assert_eq!(
        first.allocatable,
        Resources::cpu_mem(1900, 8 << 30).with("pods", 29)
    );
    assert_eq!(first.created, Some(now));
    // Again, even with other offerings: the same instance.
    let again = ready(cloud.create(&request("c1", vec![offer("a", "on-demand")]))).unwrap();
    assert_eq!(again, first);
    let other = ready(cloud.create(&request("c2", vec![offer("a", "spot")]))).unwrap();
    assert_ne!(other.provider_id, first.provider_id);
    assert_eq!(ready(cloud.list()).unwrap().len(), 2);
    assert_eq!(cloud.calls(Operation::Create), 3);
}

#[test]
fn unavailable_offerings_are_insufficient_capacity() {
    let cloud = FakeCloud::new(catalog());
    // Marked unavailable in the catalog.
    let err = ready(cloud.create(&request("c1", vec![offer("b", "spot"), offer("a", "spot")])));
    assert_eq!(
        err,
        Err(CloudError::InsufficientCapacity {
            offerings: vec![OfferingKey::new("m.large", "b", "spot")],
            message: "fake cloud: no capacity for this offering".into(),
        })
    );
    // Out of capacity by script, then back.
    let key = OfferingKey::new("m.large", "a", "spot");
    cloud.no_capacity(key.clone());
    let err = ready(cloud.create(&request("c1", vec![offer("a", "spot")]))).unwrap_err();
    assert!(
        matches!(err, CloudError::InsufficientCapacity { ref offerings, .. } if offerings == std::slice::from_ref(&key))
    );
    cloud.capacity_back(&key);
    assert!(ready(cloud.create(&request("c1", vec![offer("a", "spot")]))).is_ok());
    // No offering at all names none.
    let err = ready(cloud.create(&request("c2", vec![]))).unwrap_err();
    assert!(
        matches!(err, CloudError::InsufficientCapacity { ref offerings, .. } if offerings.is_empty())
    );
    assert!(cloud.running().len() == 1, "failed launches launch nothing");
}

#[test]
fn unknown_instances_are_not_found_and_deleted_ones_gone() {
    let cloud = FakeCloud::new(catalog());
    let i = ready(cloud.create(&request("c1", vec![offer("a", "spot")]))).unwrap();
    assert_eq!(
        ready(cloud.delete("fake:///a/i-999999")),
        Err(CloudError::NotFound {
            provider_id: "fake:///a/i-999999".into()
        })
    );
    assert_eq!(ready(cloud.get("fake:///a/i-999999")), Ok(None));
    assert_eq!(ready(cloud.delete(&i.provider_id)), Ok(()));
    assert_eq!(ready(cloud.get(&i.provider_id)), Ok(None));
    assert!(matches!(
        ready(cloud.delete(&i.provider_id)),
        Err(CloudError::NotFound { .. })
    ));
}

#[test]
fn a_deleted_instance_can_linger_for_some_reads() {
    let cloud = FakeCloud::new(catalog());
    cloud.lingering(2);
    let i = ready(cloud.create(&request("c1", vec![offer("a", "spot")]))).unwrap();
    ready(cloud.delete(&i.provider_id)).unwrap();
    assert!(ready(cloud.get(&i.provider_id)).unwrap().is_some());
    assert!(ready(cloud.get(&i.provider_id)).unwrap().is_some());
    assert_eq!(ready(cloud.get(&i.provider_id)), Ok(None));
    assert!(
        ready(cloud.list()).unwrap().is_empty(),
        "list shows running ones only"
    );
}

#[test]
fn list_shows_this_clusters_instances_only() {
    let cloud = FakeCloud::new(catalog());
    let ours = ready(cloud.create(&request("c1", vec![offer("a", "spot")]))).unwrap();
    let foreign = Instance {
        provider_id: "fake:///a/i-other".into(),
        node_claim: Some("someone-elses".into()),
        ..ours.clone()
    };
    cloud.insert_foreign(foreign.clone());
    let listed: Vec<String> = ready(cloud.list())
        .unwrap()
        .into_iter()
        .map(|i| i.provider_id)
        .collect();
    assert_eq!(listed, vec![ours.provider_id]);
    assert_eq!(ready(cloud.get(&foreign.provider_id)), Ok(Some(foreign)));
    // A claim of the same name as another cluster's instance's still launches its own.
    let mine = ready(cloud.create(&request("someone-elses", vec![offer("a", "spot")]))).unwrap();
    assert_ne!(mine.provider_id, "fake:///a/i-other");
}

#[test]
fn scripted_failures_come_first_and_run_out() {
    let cloud = FakeCloud::new(catalog());
    cloud.fail_next(
        Operation::Create,
        2,
        CloudError::Transient("throttled".into()),
    );
    cloud.fail_next(Operation::List, 1, CloudError::Other("boom".into()));
    let req = request("c1", vec![offer("a", "spot")]);
    assert_eq!(
        ready(cloud.create(&req)),
        Err(CloudError::Transient("throttled".into()))
    );
    assert!(
        cloud.running().is_empty(),
        "a failed create launches nothing"
    );
    assert!(ready(cloud.create(&req)).is_err());
    assert!(ready(cloud.create(&req)).is_ok());
    assert_eq!(ready(cloud.list()), Err(CloudError::Other("boom".into())));
    assert_eq!(ready(cloud.list()).unwrap().len(), 1);
    assert_eq!(cloud.calls(Operation::Create), 3);
    assert_eq!(cloud.calls(Operation::List), 2);
    assert_eq!(cloud.calls(Operation::Delete), 0);
}

#[test]
fn drift_is_answered_per_node_claim() {
    let cloud = FakeCloud::new(catalog());
    cloud.drift("c1", "image changed");
    let c1 = request("c1", vec![]).node_claim;
    let c2 = request("c2", vec![]).node_claim;
    assert_eq!(
        ready(cloud.is_drifted(&c1)),
        Ok(Some("image changed".into()))
    );
    assert_eq!(ready(cloud.is_drifted(&c2)), Ok(None));
    assert_eq!(
        ready(cloud.instance_types()).unwrap()[0].name,
        "m.large".to_string()
    );
}
