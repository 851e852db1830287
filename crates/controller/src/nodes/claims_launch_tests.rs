//! Launches against the in-memory provider: insufficient capacity moves on to the next offering,
//! other errors end the launch, and launching again for a NodeClaim finds its instance.

use std::collections::BTreeMap;

use ballast_api::nodes::NodeClaim;
use ballast_cloud::fake::{FakeCloud, Operation, ready};
use ballast_cloud::{CloudError, LaunchOffering, OfferingKey};
use ballast_scheduling::{InstanceType, Offering, Resources};

use super::{LaunchFailure, Refusal, launch_through, offerings_for};

fn catalog() -> Vec<InstanceType> {
    let t = |name: &str, offers: &[(&str, &str, f64)]| InstanceType {
        name: name.into(),
        capacity: Resources::cpu_mem(2000, 4 << 30).with("pods", 29),
        overhead: Resources::default(),
        labels: BTreeMap::new(),
        offerings: offers
            .iter()
            .map(|(zone, capacity_type, price)| Offering {
                zone: zone.to_string(),
                capacity_type: capacity_type.to_string(),
                price: *price,
                available: true,
            })
            .collect(),
    };
    vec![
        t(
            "a.large",
            &[("z1", "spot", 0.03), ("z1", "on-demand", 0.09)],
        ),
        t("b.large", &[("z2", "spot", 0.04)]),
    ]
}

fn claim(name: &str) -> NodeClaim {
    NodeClaim::new(name, Default::default())
}

/// Launches `name` from every offering of the catalog; the refusals met on the way.
fn launch(cloud: &FakeCloud, name: &str) -> (Result<String, LaunchFailure>, Vec<Refusal>) {
    let c = claim(name);
    let offerings: Vec<LaunchOffering> = offerings_for(&c, &catalog());
    let mut refusals = vec![];
    let got = ready(launch_through(cloud, &c, offerings, |r: &Refusal| {
        refusals.push(r.clone())
    }));
    (
        got.map(|i| i.instance_type + "/" + &i.zone + "/" + &i.capacity_type),
        refusals,
    )
}

#[test]
fn the_cheapest_offering_with_capacity_is_launched() {
    let cloud = FakeCloud::new(catalog());
    let (got, refusals) = launch(&cloud, "c1");
    assert_eq!(got, Ok("a.large/z1/spot".to_string()));
    assert!(refusals.is_empty());
}

#[test]
fn insufficient_capacity_moves_to_the_next_offering_and_is_told_at_once() {
    let cloud = FakeCloud::new(catalog());
    cloud.no_capacity(OfferingKey::new("a.large", "z1", "spot"));
    cloud.no_capacity(OfferingKey::new("b.large", "z2", "spot"));
    let (got, refusals) = launch(&cloud, "c1");
    assert_eq!(got, Ok("a.large/z1/on-demand".to_string()));
    let refused: Vec<String> = refusals.iter().map(Refusal::names).collect();
    assert_eq!(refused, vec!["a.large/z1/spot", "b.large/z2/spot"]);
    assert_eq!(cloud.calls(Operation::Create), 3);
}

#[test]
fn every_offering_refused_is_no_offerings_with_the_reasons() {
    let cloud = FakeCloud::new(catalog());
    for (t, z, c) in [
        ("a.large", "z1", "spot"),
        ("a.large", "z1", "on-demand"),
        ("b.large", "z2", "spot"),
    ] {
        cloud.no_capacity(OfferingKey::new(t, z, c));
    }
    let (got, refusals) = launch(&cloud, "c1");
    let Err(LaunchFailure::NoOfferings(why)) = got else {
        panic!("expected no offerings, got {got:?}")
    };
    assert!(
        why.starts_with("no available offering satisfies the NodeClaim's requirements (a.large/z1/spot: fake cloud: no capacity"),
        "{why}"
    );
    assert_eq!(refusals.len(), 3);
    assert!(cloud.running().is_empty());
}

#[test]
fn a_refusal_naming_no_offering_refuses_the_first_tried() {
    let cloud = FakeCloud::new(catalog());
    cloud.fail_next(
        Operation::Create,
        1,
        CloudError::InsufficientCapacity {
            offerings: vec![],
            message: "InsufficientInstanceCapacity".into(),
        },
    );
    let (got, refusals) = launch(&cloud, "c1");
    assert_eq!(got, Ok("b.large/z2/spot".to_string()));
    assert_eq!(
        refusals,
        vec![Refusal {
            offerings: vec![OfferingKey::new("a.large", "z1", "spot")],
            message: "InsufficientInstanceCapacity".into(),
        }]
    );
}

#[test]
fn other_errors_end_the_launch_to_be_retried() {
    let cloud = FakeCloud::new(catalog());
    for (error, words) in [
        (
            CloudError::Transient("connection reset".into()),
            "transient: connection reset",
        ),
        (
            CloudError::NodeClass("not ready".into()),
            "node class: not ready",
        ),
    ] {
        cloud.fail_next(Operation::Create, 1, error);
        let (got, refusals) = launch(&cloud, "c1");
        assert_eq!(got, Err(LaunchFailure::Retry(words.to_string())));
        assert!(refusals.is_empty());
    }
    assert!(cloud.running().is_empty(), "nothing launched");
    // The next reconcile launches.
    assert_eq!(launch(&cloud, "c1").0, Ok("a.large/z1/spot".to_string()));
}

#[test]
fn launching_again_for_a_node_claim_finds_its_instance() {
    let cloud = FakeCloud::new(catalog());
    // Launched, but the answer was lost (a crash before the status was written): the next
    // reconcile launches again, now with the cheapest offering out of capacity.
    let (first, _) = launch(&cloud, "c1");
    cloud.no_capacity(OfferingKey::new("a.large", "z1", "spot"));
    let (again, _) = launch(&cloud, "c1");
    assert_eq!(first, Ok("a.large/z1/spot".to_string()));
    assert_eq!(again, first);
    assert_eq!(cloud.running().len(), 1, "one instance for one NodeClaim");
}
