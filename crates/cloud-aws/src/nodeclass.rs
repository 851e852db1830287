//! What an `Ec2NodeClass` turns into: EC2 filters for its selector terms, the subnets, security
//! groups and AMIs they resolve to, the launch template the instances start from, and the hash
//! that tells whether a launched instance still matches its class (drift).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    Filter, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateInstanceNetworkInterfaceSpecificationRequest, LaunchTemplatesMonitoringRequest,
    RequestLaunchTemplateData, VolumeType,
};
use ballast_api::nodes::{AmiSelectorTerm, Ec2NodeClassSpec, SelectorTerm};
use base64::Engine as _;
use serde::Serialize;

/// A subnet the class may launch into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub zone: String,
    pub free_ips: i64,
}

/// An image the class may launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ami {
    pub id: String,
    /// `amd64` or `arm64`.
    pub arch: String,
    /// ISO 8601, as EC2 reports it.
    pub created: String,
}

/// A class's selectors, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    pub subnets: Vec<Subnet>,
    pub security_groups: Vec<String>,
    /// The newest image per architecture.
    pub amis: BTreeMap<String, Ami>,
}

impl Resolved {
    /// The subnet used in each zone: the one with the most free addresses (then the lowest id).
    pub fn subnet_per_zone(&self) -> BTreeMap<String, &Subnet> {
        let mut out: BTreeMap<String, &Subnet> = BTreeMap::new();
        for s in &self.subnets {
            match out.get(&s.zone) {
                Some(b)
                    if (b.free_ips, std::cmp::Reverse(&b.id))
                        >= (s.free_ips, std::cmp::Reverse(&s.id)) => {}
                _ => {
                    out.insert(s.zone.clone(), s);
                }
            }
        }
        out
    }
}

/// EC2's architecture names → Kubernetes'.
pub fn k8s_arch(ec2: &str) -> Option<&'static str> {
    match ec2 {
        "x86_64" => Some("amd64"),
        "arm64" => Some("arm64"),
        _ => None,
    }
}

fn tag_filters(tags: &BTreeMap<String, String>) -> Vec<Filter> {
    tags.iter()
        .map(|(k, v)| {
            if v == "*" {
                Filter::builder().name("tag-key").values(k).build()
            } else {
                Filter::builder().name(format!("tag:{k}")).values(v).build()
            }
        })
        .collect()
}

/// Filters of one subnet or security-group selector term (its fields must all match).
/// `id_filter` is `subnet-id` or `group-id`; `name_filter` `tag:Name` or `group-name`.
pub fn selector_filters(term: &SelectorTerm, id_filter: &str, name_filter: &str) -> Vec<Filter> {
    let mut f = vec![];
    if let Some(id) = &term.id {
        f.push(Filter::builder().name(id_filter).values(id).build());
    }
    if let Some(n) = &term.name {
        f.push(Filter::builder().name(name_filter).values(n).build());
    }
    if let Some(t) = &term.tags {
        f.extend(tag_filters(t));
    }
    f
}

/// How one AMI selector term is asked for: image ids, owners, filters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AmiQuery {
    pub image_ids: Vec<String>,
    pub owners: Vec<String>,
    pub filters: Vec<Filter>,
}

/// The query of one AMI selector term. Aliases (`al2023@latest`) are resolved through SSM
/// public parameters on AWS, which this provider does not call: they are refused with a message
/// that says what to use instead.
pub fn ami_query(term: &AmiSelectorTerm, index: usize) -> Result<AmiQuery, String> {
    if let Some(a) = &term.alias {
        return Err(format!(
            "amiSelectorTerms[{index}].alias {a:?}: aliases need SSM parameter lookups, which the aws provider does not do; select images by id, name (and owner) or tags"
        ));
    }
    let mut q = AmiQuery::default();
    if let Some(id) = &term.id {
        q.image_ids.push(id.clone());
    }
    if let Some(n) = &term.name {
        q.filters
            .push(Filter::builder().name("name").values(n).build());
    }
    if let Some(o) = &term.owner {
        q.owners.push(o.clone());
    }
    if let Some(t) = &term.tags {
        q.filters.extend(tag_filters(t));
    }
    if q.image_ids.is_empty() && q.filters.is_empty() {
        return Err(format!(
            "amiSelectorTerms[{index}]: needs an id, a name or tags"
        ));
    }
    q.filters
        .push(Filter::builder().name("state").values("available").build());
    Ok(q)
}

/// The newest image per architecture.
pub fn newest_per_arch(images: impl IntoIterator<Item = Ami>) -> BTreeMap<String, Ami> {
    let mut out: BTreeMap<String, Ami> = BTreeMap::new();
    for a in images {
        match out.get(&a.arch) {
            Some(b) if (&b.created, &b.id) >= (&a.created, &a.id) => {}
            _ => {
                out.insert(a.arch.clone(), a);
            }
        }
    }
    out
}

/// The fields of a class that shape an instance but are not resolved from EC2 at launch time:
/// a change in any of them drifts the instances launched before.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Static<'a> {
    ami_family: &'a Option<String>,
    role: &'a Option<String>,
    instance_profile: &'a Option<String>,
    kubelet: &'a Option<ballast_api::nodes::KubeletConfiguration>,
    block_device_mappings: &'a Vec<ballast_api::nodes::BlockDeviceMapping>,
    user_data: &'a Option<String>,
    tags: &'a BTreeMap<String, String>,
    detailed_monitoring: &'a Option<bool>,
    associate_public_ip_address: &'a Option<bool>,
    metadata_options: &'a Option<ballast_api::nodes::MetadataOptions>,
}

/// FNV-1a, 64 bits: stable across processes and versions (the standard hasher is not).
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The static hash of a class (16 hex digits).
pub fn static_hash(spec: &Ec2NodeClassSpec) -> String {
    let s = Static {
        ami_family: &spec.ami_family,
        role: &spec.role,
        instance_profile: &spec.instance_profile,
        kubelet: &spec.kubelet,
        block_device_mappings: &spec.block_device_mappings,
        user_data: &spec.user_data,
        tags: &spec.tags,
        detailed_monitoring: &spec.detailed_monitoring,
        associate_public_ip_address: &spec.associate_public_ip_address,
        metadata_options: &spec.metadata_options,
    };
    let json = serde_json::to_vec(&s).unwrap_or_default();
    format!("{:016x}", fnv64(&json))
}

/// The launch template's name: one per cluster, class, image, security groups and static hash,
/// so a change of any of them makes a new template and never edits one in use.
pub fn launch_template_name(
    cluster: &str,
    class: &str,
    ami: &str,
    security_groups: &[String],
    hash: &str,
) -> String {
    let mut sgs = security_groups.to_vec();
    sgs.sort();
    let key = format!("{cluster}\n{class}\n{ami}\n{}\n{hash}", sgs.join(","));
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect()
    };
    format!(
        "ballast/{}/{}/{:016x}",
        clean(cluster),
        clean(class),
        fnv64(key.as_bytes())
    )
}

fn volume_gib(q: &str) -> Result<i32, String> {
    let bytes = ballast_scheduling::quantity::parse_units(q).map_err(|e| e.to_string())?;
    let gib = (bytes + (1 << 30) - 1) >> 30;
    i32::try_from(gib.max(1)).map_err(|_| format!("{q} is too large"))
}

/// The launch template data of a class for one image. Errors name the class field.
pub fn launch_template_data(
    spec: &Ec2NodeClassSpec,
    ami: &str,
    security_groups: &[String],
) -> Result<RequestLaunchTemplateData, String> {
    let mut d = RequestLaunchTemplateData::builder().image_id(ami);
    match spec.associate_public_ip_address {
        Some(public) => {
            d = d.network_interfaces(
                LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                    .device_index(0)
                    .associate_public_ip_address(public)
                    .set_groups(Some(security_groups.to_vec()))
                    .build(),
            );
        }
        None => d = d.set_security_group_ids(Some(security_groups.to_vec())),
    }
    if let Some(p) = &spec.instance_profile {
        d = d.iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .name(p)
                .build(),
        );
    }
    if let Some(u) = &spec.user_data {
        d = d.user_data(base64::engine::general_purpose::STANDARD.encode(u));
    }
    if let Some(m) = spec.detailed_monitoring {
        d = d.monitoring(
            LaunchTemplatesMonitoringRequest::builder()
                .enabled(m)
                .build(),
        );
    }
    let mo = spec.metadata_options.clone().unwrap_or_default();
    let tokens = mo.http_tokens.as_deref().unwrap_or("required");
    let endpoint = mo.http_endpoint.as_deref().unwrap_or("enabled");
    for (field, v, ok) in [
        (
            "metadataOptions.httpTokens",
            tokens,
            ["required", "optional"],
        ),
        (
            "metadataOptions.httpEndpoint",
            endpoint,
            ["enabled", "disabled"],
        ),
    ] {
        if !ok.contains(&v) {
            return Err(format!("{field}: {v:?} is not one of {ok:?}"));
        }
    }
    d = d.metadata_options(
        LaunchTemplateInstanceMetadataOptionsRequest::builder()
            .http_tokens(LaunchTemplateHttpTokensState::from(tokens))
            .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::from(endpoint))
            .http_put_response_hop_limit(
                i32::try_from(mo.http_put_response_hop_limit.unwrap_or(1)).map_err(|_| {
                    "metadataOptions.httpPutResponseHopLimit: out of range".to_string()
                })?,
            )
            .build(),
    );
    for (i, b) in spec.block_device_mappings.iter().enumerate() {
        let field = format!("blockDeviceMappings[{i}]");
        let name = b
            .device_name
            .clone()
            .ok_or_else(|| format!("{field}.deviceName: required"))?;
        let mut m = LaunchTemplateBlockDeviceMappingRequest::builder().device_name(name);
        if let Some(e) = &b.ebs {
            let mut eb = LaunchTemplateEbsBlockDeviceRequest::builder();
            if let Some(q) = &e.volume_size {
                eb = eb.volume_size(
                    volume_gib(&q.0).map_err(|w| format!("{field}.ebs.volumeSize: {w}"))?,
                );
            }
            if let Some(t) = &e.volume_type {
                eb = eb.volume_type(VolumeType::from(t.as_str()));
            }
            if let Some(x) = e.iops {
                eb = eb
                    .iops(i32::try_from(x).map_err(|_| format!("{field}.ebs.iops: out of range"))?);
            }
            if let Some(x) = e.throughput {
                eb = eb.throughput(
                    i32::try_from(x)
                        .map_err(|_| format!("{field}.ebs.throughput: out of range"))?,
                );
            }
            eb = eb
                .set_encrypted(e.encrypted)
                .set_delete_on_termination(Some(e.delete_on_termination.unwrap_or(true)))
                .set_kms_key_id(e.kms_key_id.clone())
                .set_snapshot_id(e.snapshot_id.clone());
            m = m.ebs(eb.build());
        }
        d = d.block_device_mappings(m.build());
    }
    Ok(d.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_api::nodes::{BlockDeviceMapping, EbsVolume, MetadataOptions};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn names(f: &[Filter]) -> Vec<(String, Vec<String>)> {
        f.iter()
            .map(|f| (f.name().unwrap_or("").to_string(), f.values().to_vec()))
            .collect()
    }

    #[test]
    fn selector_terms_become_filters() {
        let t = SelectorTerm {
            id: None,
            name: Some("private".into()),
            tags: Some(BTreeMap::from([
                ("env".to_string(), "prod".to_string()),
                (
                    "kubernetes.io/role/internal-elb".to_string(),
                    "*".to_string(),
                ),
            ])),
        };
        assert_eq!(
            names(&selector_filters(&t, "subnet-id", "tag:Name")),
            vec![
                ("tag:Name".to_string(), vec!["private".to_string()]),
                ("tag:env".to_string(), vec!["prod".to_string()]),
                (
                    "tag-key".to_string(),
                    vec!["kubernetes.io/role/internal-elb".to_string()]
                ),
            ]
        );
        let id = SelectorTerm {
            id: Some("sg-1".into()),
            ..Default::default()
        };
        assert_eq!(
            names(&selector_filters(&id, "group-id", "group-name")),
            vec![("group-id".to_string(), vec!["sg-1".to_string()])]
        );
    }

    #[test]
    fn ami_terms() {
        let e = ami_query(
            &AmiSelectorTerm {
                alias: Some("al2023@latest".into()),
                ..Default::default()
            },
            2,
        )
        .unwrap_err();
        assert!(e.contains("amiSelectorTerms[2].alias"), "{e}");
        let q = ami_query(
            &AmiSelectorTerm {
                name: Some("amzn2-ami-hvm-*".into()),
                owner: Some("amazon".into()),
                ..Default::default()
            },
            0,
        )
        .unwrap();
        assert_eq!(q.owners, vec!["amazon"]);
        assert_eq!(names(&q.filters)[0].0, "name");
        assert!(
            ami_query(
                &AmiSelectorTerm {
                    owner: Some("self".into()),
                    ..Default::default()
                },
                1
            )
            .is_err()
        );
        let newest = newest_per_arch([
            Ami {
                id: "ami-1".into(),
                arch: "amd64".into(),
                created: "2024-01-01T00:00:00.000Z".into(),
            },
            Ami {
                id: "ami-2".into(),
                arch: "amd64".into(),
                created: "2025-01-01T00:00:00.000Z".into(),
            },
            Ami {
                id: "ami-3".into(),
                arch: "arm64".into(),
                created: "2020-01-01T00:00:00.000Z".into(),
            },
        ]);
        assert_eq!(newest["amd64"].id, "ami-2");
        assert_eq!(newest["arm64"].id, "ami-3");
        assert_eq!(k8s_arch("x86_64"), Some("amd64"));
        assert_eq!(k8s_arch("i386"), None);
    }

    #[test]
    fn subnet_with_most_free_addresses_per_zone() {
        let r = Resolved {
            subnets: vec![
                Subnet {
                    id: "subnet-b".into(),
                    zone: "a".into(),
                    free_ips: 10,
                },
                Subnet {
                    id: "subnet-a".into(),
                    zone: "a".into(),
                    free_ips: 10,
                },
                Subnet {
                    id: "subnet-c".into(),
                    zone: "a".into(),
                    free_ips: 5,
                },
                Subnet {
                    id: "subnet-d".into(),
                    zone: "b".into(),
                    free_ips: 1,
                },
            ],
            ..Default::default()
        };
        let m = r.subnet_per_zone();
        assert_eq!(m["a"].id, "subnet-a");
        assert_eq!(m["b"].id, "subnet-d");
    }

    #[test]
    fn hash_follows_static_fields_only() {
        let mut a = Ec2NodeClassSpec {
            instance_profile: Some("nodes".into()),
            ..Default::default()
        };
        let h = static_hash(&a);
        assert_eq!(h.len(), 16);
        assert_eq!(h, static_hash(&a.clone()));
        a.subnet_selector_terms.push(SelectorTerm {
            id: Some("subnet-1".into()),
            ..Default::default()
        });
        assert_eq!(
            h,
            static_hash(&a),
            "subnets are checked by resolution, not the hash"
        );
        a.user_data = Some("#!/bin/sh".into());
        assert_ne!(h, static_hash(&a));
        let n1 = launch_template_name(
            "c1",
            "default",
            "ami-1",
            &["sg-2".into(), "sg-1".into()],
            &h,
        );
        let n2 = launch_template_name(
            "c1",
            "default",
            "ami-1",
            &["sg-1".into(), "sg-2".into()],
            &h,
        );
        assert_eq!(n1, n2);
        assert!(n1.starts_with("ballast/c1/default/"), "{n1}");
        assert_ne!(
            n1,
            launch_template_name("c1", "default", "ami-2", &["sg-1".into()], &h)
        );
    }

    #[test]
    fn launch_template_data_from_the_class() {
        let spec = Ec2NodeClassSpec {
            instance_profile: Some("nodes".into()),
            user_data: Some("echo hi".into()),
            block_device_mappings: vec![BlockDeviceMapping {
                device_name: Some("/dev/xvda".into()),
                ebs: Some(EbsVolume {
                    volume_size: Some(Quantity("20Gi".into())),
                    volume_type: Some("gp3".into()),
                    ..Default::default()
                }),
                root_volume: Some(true),
            }],
            ..Default::default()
        };
        let d = launch_template_data(&spec, "ami-1", &["sg-1".into()]).unwrap();
        assert_eq!(d.image_id(), Some("ami-1"));
        assert_eq!(d.security_group_ids(), ["sg-1".to_string()]);
        assert_eq!(
            d.iam_instance_profile().and_then(|p| p.name()),
            Some("nodes")
        );
        assert_eq!(d.user_data(), Some("ZWNobyBoaQ=="));
        let m = d.metadata_options().unwrap();
        assert_eq!(
            m.http_tokens(),
            Some(&LaunchTemplateHttpTokensState::Required)
        );
        assert_eq!(m.http_put_response_hop_limit(), Some(1));
        let b = &d.block_device_mappings()[0];
        assert_eq!(b.ebs().and_then(|e| e.volume_size()), Some(20));
        assert_eq!(b.ebs().and_then(|e| e.delete_on_termination()), Some(true));
        let public = Ec2NodeClassSpec {
            associate_public_ip_address: Some(false),
            ..spec.clone()
        };
        let d = launch_template_data(&public, "ami-1", &["sg-1".into()]).unwrap();
        assert!(d.security_group_ids().is_empty());
        assert_eq!(d.network_interfaces()[0].groups(), ["sg-1".to_string()]);
        let bad = Ec2NodeClassSpec {
            metadata_options: Some(MetadataOptions {
                http_tokens: Some("sometimes".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = launch_template_data(&bad, "ami-1", &[]).unwrap_err();
        assert!(e.contains("metadataOptions.httpTokens"), "{e}");
        let nameless = Ec2NodeClassSpec {
            block_device_mappings: vec![BlockDeviceMapping::default()],
            ..Default::default()
        };
        let e = launch_template_data(&nameless, "ami-1", &[]).unwrap_err();
        assert!(e.contains("blockDeviceMappings[0].deviceName"), "{e}");
    }
}
