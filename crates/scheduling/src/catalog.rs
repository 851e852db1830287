//! Instance catalog files: a compact, hand-writable list of instance types with on-demand and
//! spot prices, turned into [`InstanceType`]s with kubelet overhead taken off.
//!
//! The same file feeds the simulator, the benchmarks and the kwok cloud provider.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Kind, ModelError};
use crate::model::{InstanceType, Offering, Resources, labels as wk};
use crate::quantity::parse_units;

/// A catalog file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogFile {
    pub zones: Vec<String>,
    /// Prefix of provider labels (instance-family, -size, -cpu ...); Ballast's own domain by default.
    #[serde(default = "default_prefix")]
    pub label_prefix: String,
    pub types: Vec<CatalogType>,
}

fn default_prefix() -> String {
    "nodes.ballast.dev".into()
}

/// One instance type of a catalog file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogType {
    /// `family.size`, e.g. `m6i.2xlarge`.
    pub name: String,
    pub vcpu: i64,
    /// Memory, a quantity ("16Gi").
    pub memory: String,
    /// Max pods (ENI limit on AWS).
    pub pods: i64,
    #[serde(default = "default_arch")]
    pub arch: String,
    #[serde(default)]
    pub gpus: i64,
    #[serde(default)]
    pub gpu_name: Option<String>,
    /// On-demand $ per hour (same in every zone).
    pub on_demand: f64,
    /// Spot $ per hour by zone; zones left out have no spot offering.
    #[serde(default)]
    pub spot: BTreeMap<String, f64>,
    /// Offerings known to be out of capacity, as `zone/capacity-type`.
    #[serde(default)]
    pub unavailable: Vec<String>,
    /// How often the provider reclaims this type's spot instances: a band of the provider's
    /// advisor (`"<5%"` ... `">20%"`), interruptions per instance-day (a number), or either per
    /// zone (`{us-east-1a: "5-10%"}`). Only the simulator reads it (`docs/simulator.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_interruptions: Option<InterruptionRate>,
}

/// How often spot instances of a type are interrupted, as a catalog writes it. What the bands
/// stand for is the simulator's to say (`ballast_sim::spot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InterruptionRate {
    /// Interruptions per instance-day (the hazard of one running instance).
    PerDay(f64),
    /// A frequency band: the share of instances interrupted over a month.
    Band(String),
    /// A rate per zone; zones left out are never interrupted.
    ByZone(BTreeMap<String, InterruptionRate>),
}

fn default_arch() -> String {
    "amd64".into()
}

/// Kubelet reservations for a node: the usual cloud formula. CPU: 6% of the first core, 1% of
/// the second, 0.5% of the third and fourth, 0.25% of the rest; memory: 11 MiB per pod + 255 MiB;
/// plus a 100 MiB hard eviction threshold.
pub fn kubelet_overhead(vcpu: i64, max_pods: i64) -> Resources {
    let cores = vcpu.max(0);
    let mut milli: f64 = 0.0;
    for c in 1..=cores {
        milli += match c {
            1 => 60.0,
            2 => 10.0,
            3 | 4 => 5.0,
            _ => 2.5,
        };
    }
    let mem = (11 * max_pods + 255 + 100) << 20;
    Resources::cpu_mem(milli.ceil() as i64, mem)
}

impl CatalogFile {
    /// Expands the file into instance types, validating every field.
    pub fn instance_types(&self) -> Result<Vec<InstanceType>, ModelError> {
        let mut out = vec![];
        let p = &self.label_prefix;
        for t in &self.types {
            let e =
                |field: &str, why: String| ModelError::new(Kind::InstanceType, &t.name, field, why);
            let (family, size) = t
                .name
                .split_once('.')
                .ok_or_else(|| e("name", "expected family.size".into()))?;
            if t.vcpu <= 0 {
                return Err(e("vcpu", format!("{} is not positive", t.vcpu)));
            }
            if t.pods <= 0 {
                return Err(e("pods", format!("{} is not positive", t.pods)));
            }
            let memory = parse_units(&t.memory).map_err(|q| e("memory", q.to_string()))?;
            if !t.on_demand.is_finite() || t.on_demand <= 0.0 {
                return Err(e("onDemand", format!("{} is not a price", t.on_demand)));
            }
            let mut capacity = Resources::cpu_mem(t.vcpu * 1000, memory)
                .with("pods", t.pods)
                .with("ephemeral-storage", 20 << 30);
            if t.gpus > 0 {
                capacity.set("nvidia.com/gpu", t.gpus);
            }
            let category: String = family
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            let generation: String = family
                .chars()
                .skip_while(|c| c.is_ascii_alphabetic())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            let mut labels = BTreeMap::new();
            labels.insert(wk::ARCH.to_string(), t.arch.clone());
            labels.insert(wk::OS.to_string(), "linux".to_string());
            labels.insert(format!("{p}/instance-family"), family.to_string());
            labels.insert(format!("{p}/instance-size"), size.to_string());
            labels.insert(format!("{p}/instance-category"), category);
            labels.insert(format!("{p}/instance-generation"), generation);
            labels.insert(format!("{p}/instance-cpu"), t.vcpu.to_string());
            labels.insert(format!("{p}/instance-memory"), (memory >> 20).to_string());
            labels.insert(format!("{p}/instance-gpu-count"), t.gpus.to_string());
            if let Some(g) = &t.gpu_name {
                labels.insert(format!("{p}/instance-gpu-name"), g.clone());
            }
            let mut offerings = vec![];
            for z in &self.zones {
                let avail = |ct: &str| !t.unavailable.iter().any(|u| u == &format!("{z}/{ct}"));
                offerings.push(Offering {
                    zone: z.clone(),
                    capacity_type: "on-demand".into(),
                    price: t.on_demand,
                    available: avail("on-demand"),
                });
                if let Some(&sp) = t.spot.get(z) {
                    if !sp.is_finite() || sp <= 0.0 {
                        return Err(e(&format!("spot.{z}"), format!("{sp} is not a price")));
                    }
                    offerings.push(Offering {
                        zone: z.clone(),
                        capacity_type: "spot".into(),
                        price: sp,
                        available: avail("spot"),
                    });
                }
            }
            for z in t.spot.keys() {
                if !self.zones.contains(z) {
                    return Err(e("spot", format!("zone {z} is not in the catalog's zones")));
                }
            }
            out.push(InstanceType {
                name: t.name.clone(),
                capacity,
                overhead: kubelet_overhead(t.vcpu, t.pods),
                labels,
                offerings,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_formula() {
        let o = kubelet_overhead(2, 29);
        assert_eq!(o.cpu_millis, 70);
        assert_eq!(o.memory_bytes, (11 * 29 + 355) << 20);
        assert_eq!(kubelet_overhead(8, 58).cpu_millis, 60 + 10 + 10 + 10);
    }

    #[test]
    fn rejects_bad_rows() {
        let f = CatalogFile {
            zones: vec!["a".into()],
            label_prefix: default_prefix(),
            types: vec![CatalogType {
                name: "nodot".into(),
                vcpu: 2,
                memory: "4Gi".into(),
                pods: 29,
                arch: "amd64".into(),
                gpus: 0,
                gpu_name: None,
                on_demand: 0.1,
                spot: BTreeMap::new(),
                unavailable: vec![],
                spot_interruptions: None,
            }],
        };
        let err = f.instance_types().unwrap_err();
        assert!(
            err.to_string().contains("nodot") && err.to_string().contains("name"),
            "{err}"
        );
    }
}
