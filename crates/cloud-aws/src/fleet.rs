//! One launch = one `CreateFleet` of type `instant` for one instance: the NodeClaim's offerings
//! become the fleet's overrides (instance type + subnet of the zone), cheapest first, and the
//! response says which instance was launched and which overrides failed, and why.

use std::collections::{BTreeMap, BTreeSet};

use ballast_cloud::{LaunchOffering, OfferingKey};

use crate::nodeclass::{Ami, Resolved};

/// Most overrides in one fleet request.
pub const MAX_OVERRIDES: usize = 60;

/// One override of the fleet request.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: OfferingKey,
    pub subnet: String,
    /// The image of the instance type's architecture.
    pub ami: String,
    pub arch: String,
    pub price: f64,
    /// 0 for the cheapest: EC2 tries the lowest number first (`prioritized`).
    pub priority: f64,
}

/// What one fleet request launches from.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub capacity_type: String,
    pub overrides: Vec<Override>,
    /// Offerings of the request left out, and why (no subnet in the zone, no image for the
    /// architecture, another capacity type).
    pub left_out: Vec<(OfferingKey, String)>,
}

/// Plans a fleet from the offerings (cheapest first, as the controller hands them over). One
/// fleet has one capacity type: that of the cheapest offering the class can launch. The other
/// capacity type's offerings are tried by the controller if this fleet fails.
pub fn plan(offerings: &[LaunchOffering], resolved: &Resolved) -> Plan {
    let subnets = resolved.subnet_per_zone();
    let mut left_out = vec![];
    let mut usable: Vec<(&LaunchOffering, String, &Ami, String)> = vec![];
    for o in offerings {
        let arch = o
            .instance_type
            .labels
            .get("kubernetes.io/arch")
            .cloned()
            .unwrap_or_else(|| "amd64".into());
        let Some(subnet) = subnets.get(&o.zone) else {
            left_out.push((
                o.key(),
                format!("no subnet of the node class in {}", o.zone),
            ));
            continue;
        };
        let Some(ami) = resolved.amis.get(&arch) else {
            left_out.push((o.key(), format!("no image of the node class for {arch}")));
            continue;
        };
        usable.push((o, subnet.id.clone(), ami, arch));
    }
    let capacity_type = usable
        .first()
        .map(|(o, ..)| o.capacity_type.clone())
        .unwrap_or_else(|| "on-demand".into());
    let mut overrides = vec![];
    let mut seen = BTreeSet::new();
    for (o, subnet, ami, arch) in usable {
        if o.capacity_type != capacity_type {
            left_out.push((o.key(), format!("not in this {capacity_type} fleet")));
            continue;
        }
        if !seen.insert(o.key()) {
            continue;
        }
        if overrides.len() == MAX_OVERRIDES {
            left_out.push((
                o.key(),
                format!("beyond the first {MAX_OVERRIDES} offerings"),
            ));
            continue;
        }
        overrides.push(Override {
            key: o.key(),
            subnet,
            ami: ami.id.clone(),
            arch,
            price: o.price,
            priority: overrides.len() as f64,
        });
    }
    Plan {
        capacity_type,
        overrides,
        left_out,
    }
}

/// Fleet error codes that mean "this offering cannot be had now": the offering is marked
/// unavailable and the next one is tried.
pub const CAPACITY_ERRORS: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientCapacity",
    "UnfulfillableCapacity",
    "Unsupported",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
    "VcpuLimitExceeded",
    "InsufficientFreeAddressesInSubnet",
];

/// An error entry of the fleet response.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetError {
    pub instance_type: Option<String>,
    pub subnet: Option<String>,
    pub code: String,
    pub message: String,
}

/// The offerings the fleet's errors are about (capacity errors only), with `code: message`.
/// An error naming only a subnet or only a type covers every override that matches it.
pub fn failed_offerings(plan: &Plan, errors: &[FleetError]) -> Vec<(OfferingKey, String)> {
    let mut out: BTreeMap<OfferingKey, String> = BTreeMap::new();
    for e in errors
        .iter()
        .filter(|e| CAPACITY_ERRORS.contains(&e.code.as_str()))
    {
        for o in &plan.overrides {
            let type_ok = e
                .instance_type
                .as_ref()
                .is_none_or(|t| *t == o.key.instance_type);
            let subnet_ok = e.subnet.as_ref().is_none_or(|s| *s == o.subnet);
            if type_ok && subnet_ok && (e.instance_type.is_some() || e.subnet.is_some()) {
                out.entry(o.key.clone())
                    .or_insert_with(|| format!("{}: {}", e.code, e.message));
            }
        }
    }
    out.into_iter().collect()
}

/// A client token for CreateFleet: the same for a retry of the same request (EC2 then answers
/// with the first request's result), different once the overrides change.
pub fn client_token(claim_uid: &str, plan: &Plan) -> String {
    let mut key = format!("{claim_uid}\n{}", plan.capacity_type);
    for o in &plan.overrides {
        key.push_str(&format!("\n{}/{}", o.key, o.subnet));
    }
    format!("ballast-{:016x}", crate::nodeclass::fnv64(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeclass::Subnet;
    use ballast_scheduling::{InstanceType, Resources};

    fn offering(t: &str, arch: &str, zone: &str, ct: &str, price: f64) -> LaunchOffering {
        LaunchOffering {
            instance_type: InstanceType {
                name: t.into(),
                capacity: Resources::cpu_mem(2000, 4 << 30),
                overhead: Resources::default(),
                labels: BTreeMap::from([("kubernetes.io/arch".to_string(), arch.to_string())]),
                offerings: vec![],
            },
            zone: zone.into(),
            capacity_type: ct.into(),
            price,
        }
    }

    fn resolved() -> Resolved {
        Resolved {
            subnets: vec![
                Subnet {
                    id: "subnet-a".into(),
                    zone: "us-east-1a".into(),
                    free_ips: 100,
                },
                Subnet {
                    id: "subnet-b".into(),
                    zone: "us-east-1b".into(),
                    free_ips: 100,
                },
            ],
            security_groups: vec!["sg-1".into()],
            amis: BTreeMap::from([(
                "amd64".to_string(),
                Ami {
                    id: "ami-x86".into(),
                    arch: "amd64".into(),
                    created: "2025".into(),
                },
            )]),
        }
    }

    #[test]
    fn overrides_keep_price_order_and_one_capacity_type() {
        let offerings = vec![
            offering("c6i.large", "amd64", "us-east-1a", "on-demand", 0.085),
            offering("m6g.large", "arm64", "us-east-1a", "on-demand", 0.086),
            offering("c6i.large", "amd64", "us-east-1c", "on-demand", 0.087),
            offering("m6i.large", "amd64", "us-east-1b", "on-demand", 0.096),
            offering("c6i.xlarge", "amd64", "us-east-1a", "spot", 0.1),
        ];
        let p = plan(&offerings, &resolved());
        assert_eq!(p.capacity_type, "on-demand");
        let o: Vec<(String, &str, f64)> = p
            .overrides
            .iter()
            .map(|o| (o.key.to_string(), o.subnet.as_str(), o.priority))
            .collect();
        assert_eq!(
            o,
            vec![
                (
                    "c6i.large/us-east-1a/on-demand".to_string(),
                    "subnet-a",
                    0.0
                ),
                (
                    "m6i.large/us-east-1b/on-demand".to_string(),
                    "subnet-b",
                    1.0
                ),
            ]
        );
        let why: BTreeMap<String, String> = p
            .left_out
            .iter()
            .map(|(k, w)| (k.to_string(), w.clone()))
            .collect();
        assert!(why["m6g.large/us-east-1a/on-demand"].contains("no image"));
        assert!(why["c6i.large/us-east-1c/on-demand"].contains("no subnet"));
        assert!(why["c6i.xlarge/us-east-1a/spot"].contains("not in this on-demand fleet"));
        let spot_first = plan(&offerings[4..], &resolved());
        assert_eq!(spot_first.capacity_type, "spot");
        assert_eq!(spot_first.overrides.len(), 1);
    }

    #[test]
    fn fleet_errors_name_offerings() {
        let offerings = vec![
            offering("c6i.large", "amd64", "us-east-1a", "on-demand", 0.085),
            offering("c6i.large", "amd64", "us-east-1b", "on-demand", 0.085),
            offering("m6i.large", "amd64", "us-east-1b", "on-demand", 0.096),
        ];
        let p = plan(&offerings, &resolved());
        let errs = vec![
            FleetError {
                instance_type: Some("c6i.large".into()),
                subnet: Some("subnet-a".into()),
                code: "InsufficientInstanceCapacity".into(),
                message: "no capacity in 1a".into(),
            },
            FleetError {
                instance_type: Some("m6i.large".into()),
                subnet: None,
                code: "Unsupported".into(),
                message: "not here".into(),
            },
            FleetError {
                instance_type: Some("c6i.large".into()),
                subnet: Some("subnet-b".into()),
                code: "InvalidLaunchTemplateId.NotFound".into(),
                message: "not a capacity error".into(),
            },
        ];
        let f: Vec<(String, String)> = failed_offerings(&p, &errs)
            .into_iter()
            .map(|(k, w)| (k.to_string(), w))
            .collect();
        assert_eq!(
            f,
            vec![
                (
                    "c6i.large/us-east-1a/on-demand".to_string(),
                    "InsufficientInstanceCapacity: no capacity in 1a".to_string()
                ),
                (
                    "m6i.large/us-east-1b/on-demand".to_string(),
                    "Unsupported: not here".to_string()
                ),
            ]
        );
        let t1 = client_token("uid-1", &p);
        assert_eq!(t1, client_token("uid-1", &p));
        assert!(t1.len() <= 64);
        let fewer = plan(&offerings[1..], &resolved());
        assert_ne!(t1, client_token("uid-1", &fewer));
    }
}
