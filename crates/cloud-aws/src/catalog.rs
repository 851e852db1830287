//! Instance types from what EC2 says about them, combined with prices.
//!
//! - Shape (vCPUs, memory, architecture, GPUs, ENI limits → max pods, spot support) comes from
//!   `DescribeInstanceTypes`; which zones offer a type from `DescribeInstanceTypeOfferings`.
//! - Spot prices come from `DescribeSpotPriceHistory` (the newest record per type and zone).
//! - On-demand prices are not in the EC2 API (they are in the separate Pricing API), so they come
//!   from a price file in the catalog format (`ballast_scheduling::catalog::CatalogFile`, for
//!   example `simulations/catalogs/aws-like.yaml`). A type the file does not price is left out.
//!   The file's spot prices are used only where the API has none for that type and zone.
//!
//! The result goes through `CatalogFile::instance_types`, so labels (`nodes.ballast.dev/
//! instance-family`, `-cpu`, ...) and kubelet overhead are exactly those of the kwok provider and
//! the simulator.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{ArchitectureType, InstanceTypeInfo, UsageClassType};
use ballast_scheduling::InstanceType;
use ballast_scheduling::catalog::{CatalogFile, CatalogType};

/// The label prefix of provider labels.
pub const LABEL_PREFIX: &str = "nodes.ballast.dev";

/// What Ballast needs of one `InstanceTypeInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Type {
    pub name: String,
    pub vcpu: i64,
    pub memory_mib: i64,
    /// `amd64` or `arm64`.
    pub arch: String,
    pub gpus: i64,
    pub gpu_name: Option<String>,
    pub max_pods: i64,
    pub spot: bool,
    pub on_demand: bool,
}

/// Pods a node can hold with the VPC CNI: one IP per pod on every ENI but its primary address,
/// plus 2 host-network pods.
pub fn eni_max_pods(max_enis: i64, ipv4_per_eni: i64) -> i64 {
    (max_enis * (ipv4_per_eni - 1) + 2).max(1)
}

impl Ec2Type {
    /// `None` (with why) for a type Ballast cannot run nodes on (no Linux architecture it knows,
    /// no vCPU or memory figures).
    pub fn from_sdk(t: &InstanceTypeInfo) -> Result<Ec2Type, String> {
        let name = t
            .instance_type()
            .map(|x| x.as_str().to_string())
            .ok_or("no instance type name")?;
        let archs = t
            .processor_info()
            .map(|p| p.supported_architectures())
            .unwrap_or_default();
        let arch = if archs.contains(&ArchitectureType::X8664) {
            "amd64"
        } else if archs.contains(&ArchitectureType::Arm64) {
            "arm64"
        } else {
            return Err(format!("{name}: no x86_64 or arm64 support ({archs:?})"));
        };
        let vcpu = t
            .v_cpu_info()
            .and_then(|v| v.default_v_cpus())
            .ok_or_else(|| format!("{name}: no vCPU count"))? as i64;
        let memory_mib = t
            .memory_info()
            .and_then(|m| m.size_in_mib())
            .ok_or_else(|| format!("{name}: no memory size"))?;
        let (gpus, gpu_name) = match t.gpu_info() {
            Some(g) => (
                g.gpus().iter().filter_map(|d| d.count()).sum::<i32>() as i64,
                g.gpus()
                    .first()
                    .and_then(|d| d.name())
                    .map(|n| n.to_ascii_lowercase()),
            ),
            None => (0, None),
        };
        let max_pods = match t.network_info() {
            Some(n) => match (
                n.maximum_network_interfaces(),
                n.ipv4_addresses_per_interface(),
            ) {
                (Some(e), Some(ips)) => eni_max_pods(e as i64, ips as i64),
                _ => 110,
            },
            None => 110,
        };
        let usage = t.supported_usage_classes();
        Ok(Ec2Type {
            name,
            vcpu,
            memory_mib,
            arch: arch.into(),
            gpus,
            gpu_name,
            max_pods,
            spot: usage.contains(&UsageClassType::Spot),
            on_demand: usage.is_empty() || usage.contains(&UsageClassType::OnDemand),
        })
    }
}

/// One spot price record.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotRecord {
    pub instance_type: String,
    pub zone: String,
    pub price: f64,
    /// Seconds since the epoch.
    pub timestamp: i64,
}

/// The newest price per (instance type, zone).
pub fn latest_spot_prices(records: &[SpotRecord]) -> BTreeMap<(String, String), f64> {
    let mut newest: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
    for r in records {
        if !r.price.is_finite() || r.price <= 0.0 {
            continue;
        }
        let k = (r.instance_type.clone(), r.zone.clone());
        match newest.get(&k) {
            Some((t, _)) if *t >= r.timestamp => {}
            _ => {
                newest.insert(k, (r.timestamp, r.price));
            }
        }
    }
    newest.into_iter().map(|(k, (_, p))| (k, p)).collect()
}

/// Everything the catalog is built from.
#[derive(Debug, Clone, Default)]
pub struct CatalogInputs {
    pub types: Vec<Ec2Type>,
    /// Available zones of the region.
    pub zones: Vec<String>,
    /// (type, zone) pairs EC2 offers; empty: every type in every zone.
    pub offered: BTreeSet<(String, String)>,
    /// Newest spot price per (type, zone).
    pub spot: BTreeMap<(String, String), f64>,
}

/// The instance types, and a note for every type that was left out.
pub fn build(inputs: &CatalogInputs, prices: &CatalogFile) -> (Vec<InstanceType>, Vec<String>) {
    let priced: BTreeMap<&str, &CatalogType> =
        prices.types.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut skipped = vec![];
    let mut out = vec![];
    for t in &inputs.types {
        let Some(p) = priced.get(t.name.as_str()) else {
            continue;
        };
        let zones: Vec<String> = inputs
            .zones
            .iter()
            .filter(|z| {
                inputs.offered.is_empty()
                    || inputs.offered.contains(&(t.name.clone(), (*z).clone()))
            })
            .cloned()
            .collect();
        if zones.is_empty() {
            skipped.push(format!("{}: not offered in any available zone", t.name));
            continue;
        }
        let mut spot = BTreeMap::new();
        if t.spot {
            for z in &zones {
                let api = inputs.spot.get(&(t.name.clone(), z.clone())).copied();
                if let Some(price) = api.or_else(|| p.spot.get(z).copied()) {
                    spot.insert(z.clone(), price);
                }
            }
        }
        let file = CatalogFile {
            zones: zones.clone(),
            label_prefix: LABEL_PREFIX.into(),
            types: vec![CatalogType {
                name: t.name.clone(),
                vcpu: t.vcpu,
                memory: format!("{}Mi", t.memory_mib),
                pods: t.max_pods,
                arch: t.arch.clone(),
                gpus: t.gpus,
                gpu_name: t.gpu_name.clone(),
                on_demand: p.on_demand,
                spot,
                unavailable: vec![],
                spot_interruptions: None,
            }],
        };
        match file.instance_types() {
            Ok(mut types) => {
                let mut it = types.remove(0);
                if !t.on_demand {
                    it.offerings.retain(|o| o.capacity_type != "on-demand");
                }
                if it.offerings.is_empty() {
                    skipped.push(format!("{}: no offering", t.name));
                } else {
                    out.push(it);
                }
            }
            Err(e) => skipped.push(format!("{}: {e}", t.name)),
        }
    }
    for p in &prices.types {
        if !inputs.types.iter().any(|t| t.name == p.name) {
            skipped.push(format!(
                "{}: in the price file but not described by EC2 in this region",
                p.name
            ));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    (out, skipped)
}

/// Reads a price file (the catalog format, YAML or JSON).
pub fn load_prices(path: &std::path::Path) -> Result<CatalogFile, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse_prices(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a price file and checks every price.
pub fn parse_prices(text: &str) -> Result<CatalogFile, String> {
    let cat: CatalogFile = serde_yaml::from_str(text)
        .map_err(|e| format!("not a price file (catalog format): {e}"))?;
    for t in &cat.types {
        if !t.on_demand.is_finite() || t.on_demand <= 0.0 {
            return Err(format!(
                "types[{}].onDemand: {} is not a price",
                t.name, t.on_demand
            ));
        }
        for (z, p) in &t.spot {
            if !p.is_finite() || *p <= 0.0 {
                return Err(format!("types[{}].spot.{z}: {p} is not a price", t.name));
            }
        }
    }
    Ok(cat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{
        GpuDeviceInfo, GpuInfo, InstanceType as SdkType, MemoryInfo, NetworkInfo, ProcessorInfo,
        VCpuInfo,
    };

    fn info(
        name: &str,
        vcpu: i32,
        mib: i64,
        arch: ArchitectureType,
        enis: i32,
        ips: i32,
    ) -> InstanceTypeInfo {
        InstanceTypeInfo::builder()
            .instance_type(SdkType::from(name))
            .v_cpu_info(VCpuInfo::builder().default_v_cpus(vcpu).build())
            .memory_info(MemoryInfo::builder().size_in_mib(mib).build())
            .processor_info(
                ProcessorInfo::builder()
                    .supported_architectures(arch)
                    .build(),
            )
            .network_info(
                NetworkInfo::builder()
                    .maximum_network_interfaces(enis)
                    .ipv4_addresses_per_interface(ips)
                    .build(),
            )
            .supported_usage_classes(UsageClassType::OnDemand)
            .supported_usage_classes(UsageClassType::Spot)
            .build()
    }

    fn prices() -> CatalogFile {
        parse_prices(
            "zones: [z-ignored]\ntypes:\n  - {name: c6i.large, vcpu: 2, memory: 4Gi, pods: 29, onDemand: 0.085, spot: {us-east-1a: 0.03, us-east-1b: 0.031}}\n  - {name: m6g.large, vcpu: 2, memory: 8Gi, pods: 29, onDemand: 0.077}\n  - {name: x9.nowhere, vcpu: 2, memory: 8Gi, pods: 29, onDemand: 1.0}\n",
        )
        .unwrap()
    }

    #[test]
    fn shape_from_describe_instance_types() {
        let t =
            Ec2Type::from_sdk(&info("c6i.large", 2, 4096, ArchitectureType::X8664, 3, 10)).unwrap();
        assert_eq!(
            (t.vcpu, t.memory_mib, t.arch.as_str(), t.max_pods),
            (2, 4096, "amd64", 29)
        );
        assert!(t.spot && t.on_demand);
        let g = info("g4dn.xlarge", 4, 16384, ArchitectureType::X8664, 3, 10).to_owned();
        let g = InstanceTypeInfo::builder()
            .set_instance_type(g.instance_type().cloned())
            .set_v_cpu_info(g.v_cpu_info().cloned())
            .set_memory_info(g.memory_info().cloned())
            .set_processor_info(g.processor_info().cloned())
            .gpu_info(
                GpuInfo::builder()
                    .gpus(GpuDeviceInfo::builder().name("T4").count(1).build())
                    .build(),
            )
            .build();
        let g = Ec2Type::from_sdk(&g).unwrap();
        assert_eq!(
            (g.gpus, g.gpu_name.as_deref(), g.max_pods),
            (1, Some("t4"), 110)
        );
        let mac = info("mac1.metal", 12, 32768, ArchitectureType::X8664Mac, 8, 30);
        assert!(Ec2Type::from_sdk(&mac).unwrap_err().contains("mac1.metal"));
        assert_eq!(eni_max_pods(4, 15), 58);
    }

    #[test]
    fn newest_spot_price_wins() {
        let r = |t: &str, z: &str, p: f64, ts: i64| SpotRecord {
            instance_type: t.into(),
            zone: z.into(),
            price: p,
            timestamp: ts,
        };
        let m = latest_spot_prices(&[
            r("a", "z1", 0.5, 100),
            r("a", "z1", 0.4, 200),
            r("a", "z1", 0.9, 150),
            r("a", "z2", 0.7, 1),
            r("b", "z1", f64::NAN, 1),
        ]);
        assert_eq!(m[&("a".to_string(), "z1".to_string())], 0.4);
        assert_eq!(m[&("a".to_string(), "z2".to_string())], 0.7);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn types_are_priced_zoned_and_labelled() {
        let inputs = CatalogInputs {
            types: vec![
                Ec2Type::from_sdk(&info("c6i.large", 2, 4096, ArchitectureType::X8664, 3, 10))
                    .unwrap(),
                Ec2Type::from_sdk(&info("m6g.large", 2, 8192, ArchitectureType::Arm64, 3, 10))
                    .unwrap(),
                Ec2Type::from_sdk(&info("t3.nano", 2, 512, ArchitectureType::X8664, 2, 2)).unwrap(),
            ],
            zones: vec![
                "us-east-1a".into(),
                "us-east-1b".into(),
                "us-east-1c".into(),
            ],
            offered: [
                ("c6i.large", "us-east-1a"),
                ("c6i.large", "us-east-1b"),
                ("m6g.large", "us-east-1c"),
                ("t3.nano", "us-east-1a"),
            ]
            .iter()
            .map(|(t, z)| (t.to_string(), z.to_string()))
            .collect(),
            spot: BTreeMap::from([
                (("c6i.large".to_string(), "us-east-1a".to_string()), 0.02),
                (("m6g.large".to_string(), "us-east-1c".to_string()), 0.025),
            ]),
        };
        let (types, skipped) = build(&inputs, &prices());
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        // t3.nano has no price: left out silently; x9.nowhere is priced but unknown to EC2.
        assert_eq!(names, vec!["c6i.large", "m6g.large"]);
        assert!(
            skipped.iter().any(|s| s.contains("x9.nowhere")),
            "{skipped:?}"
        );
        let c = &types[0];
        let offers: Vec<(String, String, f64)> = c
            .offerings
            .iter()
            .map(|o| (o.zone.clone(), o.capacity_type.clone(), o.price))
            .collect();
        // API spot price in 1a, the file's in 1b; no offering in 1c (not offered there).
        assert_eq!(
            offers,
            vec![
                ("us-east-1a".into(), "on-demand".into(), 0.085),
                ("us-east-1a".into(), "spot".into(), 0.02),
                ("us-east-1b".into(), "on-demand".into(), 0.085),
                ("us-east-1b".into(), "spot".into(), 0.031),
            ]
        );
        assert_eq!(c.capacity.cpu_millis, 2000);
        assert_eq!(c.capacity.memory_bytes, 4096 << 20);
        assert_eq!(c.labels["nodes.ballast.dev/instance-family"], "c6i");
        assert_eq!(c.labels["kubernetes.io/arch"], "amd64");
        let g = &types[1];
        assert_eq!(g.labels["kubernetes.io/arch"], "arm64");
        assert_eq!(g.offerings.len(), 2);
    }

    #[test]
    fn bad_price_files_name_the_field() {
        let e = parse_prices(
            "zones: []\ntypes:\n  - {name: a.b, vcpu: 1, memory: 1Gi, pods: 4, onDemand: -1}\n",
        )
        .unwrap_err();
        assert!(e.contains("types[a.b].onDemand"), "{e}");
        let e = parse_prices("zones: []\ntypes:\n  - {name: a.b, vcpu: 1, memory: 1Gi, pods: 4, onDemand: 1, spot: {z: 0}}\n")
            .unwrap_err();
        assert!(e.contains("types[a.b].spot.z"), "{e}");
        assert!(
            parse_prices("types: 3")
                .unwrap_err()
                .contains("not a price file")
        );
    }
}
