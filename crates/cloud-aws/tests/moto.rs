//! The EC2 provider against the REAL moto server of the test bed (`tests/testbed.sh up moto`),
//! through the real SDK. Faults moto never produces (throttling, insufficient capacity) come from
//! the fault proxy of `ballast_testbed::ec2_faults`, which sits in front of moto and forwards
//! everything else.
//!
//! Every test uses its own cluster name, so the ownership tags keep the tests (and other users of
//! the shared moto) apart; moto is never reset.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use aws_sdk_ec2::types::Filter;
use ballast_api::nodes::{
    AmiSelectorTerm, Ec2NodeClassSpec, NodeClaim, NodeClaimSpec, NodeClaimStatus,
    NodeClassReference, SelectorTerm, labels,
};
use ballast_cloud::{CloudError, CloudProvider, LaunchOffering, LaunchRequest, OfferingKey};
use ballast_cloud_aws::catalog::load_prices;
use ballast_cloud_aws::retry::RetryOptions;
use ballast_cloud_aws::{
    AwsOptions, AwsProvider, NodeClasses, StaticCredentials, parse_provider_id, tags,
};
use ballast_scheduling::InstanceType;
use ballast_testbed::ec2_faults::{Ec2FaultProxy, Fault, HangUp, ServerError};
use ballast_testbed::{service_or_skip, testbed_or_skip};

fn prices() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../simulations/catalogs/aws-like.yaml"
    ))
}

fn unique(prefix: &str) -> String {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(std::time::SystemTime::now());
    format!("{prefix}-{:08x}", r as u32)
}

/// A class that selects moto's default VPC subnets of `zones`, its `default` security group and
/// the newest Amazon Linux 2 images.
fn class(zones_subnets: &[String]) -> Ec2NodeClassSpec {
    Ec2NodeClassSpec {
        subnet_selector_terms: zones_subnets
            .iter()
            .map(|s| SelectorTerm {
                id: Some(s.clone()),
                ..Default::default()
            })
            .collect(),
        security_group_selector_terms: vec![SelectorTerm {
            name: Some("default".into()),
            ..Default::default()
        }],
        ami_selector_terms: vec![AmiSelectorTerm {
            name: Some("amzn2-ami-hvm-2.0.*-gp2".into()),
            owner: Some("amazon".into()),
            ..Default::default()
        }],
        instance_profile: Some("ballast-nodes".into()),
        tags: BTreeMap::from([("team".to_string(), "autoscaling".to_string())]),
        ..Default::default()
    }
}

struct Setup {
    cluster: String,
    moto: String,
    /// zone → subnet id of moto's default VPC.
    subnets: BTreeMap<String, String>,
}

async fn setup(moto: &str, prefix: &str) -> Result<Setup> {
    let subnets = ballast_testbed::services::moto_default_subnets(moto).await?;
    ensure!(subnets.len() >= 3, "moto's default subnets: {subnets:?}");
    Ok(Setup {
        cluster: unique(prefix),
        moto: moto.into(),
        subnets,
    })
}

fn provider(
    endpoint: &str,
    cluster: &str,
    classes: BTreeMap<String, Ec2NodeClassSpec>,
    retry: RetryOptions,
) -> Result<AwsProvider> {
    provider_timed(endpoint, cluster, classes, retry, Duration::from_secs(30))
}

/// [`provider`] whose calls give up an attempt after `attempt_timeout`.
fn provider_timed(
    endpoint: &str,
    cluster: &str,
    classes: BTreeMap<String, Ec2NodeClassSpec>,
    retry: RetryOptions,
    attempt_timeout: Duration,
) -> Result<AwsProvider> {
    let mut o = AwsOptions::new(
        "us-east-1",
        cluster,
        StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        },
    );
    o.endpoint = Some(endpoint.into());
    o.retry = retry;
    o.attempt_timeout = attempt_timeout;
    AwsProvider::new(
        o,
        load_prices(prices()).map_err(anyhow::Error::msg)?,
        NodeClasses::Fixed(classes),
    )
    .map_err(anyhow::Error::msg)
}

impl Setup {
    fn subnet(&self, zone: &str) -> String {
        self.subnets[zone].clone()
    }

    fn provider_at(
        &self,
        endpoint: &str,
        zones: &[&str],
        retry: RetryOptions,
    ) -> Result<AwsProvider> {
        let subnets: Vec<String> = zones.iter().map(|z| self.subnet(z)).collect();
        provider(
            endpoint,
            &self.cluster,
            BTreeMap::from([("default".to_string(), class(&subnets))]),
            retry,
        )
    }

    fn provider(&self, zones: &[&str]) -> Result<AwsProvider> {
        self.provider_at(&self.moto, zones, RetryOptions::default())
    }
}

fn claim(name: &str) -> NodeClaim {
    let mut c = NodeClaim::new(
        name,
        NodeClaimSpec {
            node_class_ref: NodeClassReference {
                group: "nodes.ballast.dev".into(),
                kind: "Ec2NodeClass".into(),
                name: "default".into(),
            },
            ..Default::default()
        },
    );
    c.metadata.uid = Some(format!("uid-{name}"));
    c.metadata.labels = Some(BTreeMap::from([(
        labels::NODEPOOL.to_string(),
        "general".to_string(),
    )]));
    c
}

/// The offerings of these types (cheapest first), as the controller would hand them over.
fn offerings(types: &[InstanceType], names: &[&str], capacity_type: &str) -> Vec<LaunchOffering> {
    let mut out: Vec<LaunchOffering> = types
        .iter()
        .filter(|t| names.contains(&t.name.as_str()))
        .flat_map(|t| {
            t.offerings
                .iter()
                .filter(|o| o.available && o.capacity_type == capacity_type)
                .map(|o| LaunchOffering {
                    instance_type: t.clone(),
                    zone: o.zone.clone(),
                    capacity_type: o.capacity_type.clone(),
                    price: o.price,
                })
        })
        .collect();
    out.sort_by(|a, b| {
        a.price
            .total_cmp(&b.price)
            .then_with(|| a.instance_type.name.cmp(&b.instance_type.name))
            .then_with(|| a.zone.cmp(&b.zone))
    });
    out
}

async fn tags_of(p: &AwsProvider, provider_id: &str) -> Result<BTreeMap<String, String>> {
    let (_, id) = parse_provider_id(provider_id).context("provider id")?;
    let out = p
        .client()
        .describe_instances()
        .instance_ids(id)
        .send()
        .await?;
    let i = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .context("instance described")?;
    Ok(i.tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect())
}

#[tokio::test]
async fn instance_types_come_from_ec2_and_the_price_file() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let s = setup(&moto, "types").await?;
    let p = s.provider(&["us-east-1a"])?;
    let types = p.instance_types().await?;
    let c = types
        .iter()
        .find(|t| t.name == "c6i.large")
        .context("c6i.large described")?;
    ensure!(
        c.capacity.cpu_millis == 2000,
        "cpu {}",
        c.capacity.cpu_millis
    );
    ensure!(c.capacity.memory_bytes == 4096 << 20);
    ensure!(
        c.capacity.get("pods") == 29,
        "ENI max pods: {}",
        c.capacity.get("pods")
    );
    ensure!(c.labels["nodes.ballast.dev/instance-family"] == "c6i");
    let od: Vec<(&str, f64)> = c
        .offerings
        .iter()
        .filter(|o| o.capacity_type == "on-demand")
        .map(|o| (o.zone.as_str(), o.price))
        .collect();
    // Zones from DescribeInstanceTypeOfferings (moto offers c6i.large in 1a–1d and 1f, not 1e);
    // the on-demand price from the file.
    ensure!(
        od.iter().all(|(_, p)| *p == 0.085) && od.iter().any(|(z, _)| *z == "us-east-1d"),
        "{od:?}"
    );
    ensure!(!od.iter().any(|(z, _)| *z == "us-east-1e"), "{od:?}");
    // Spot prices from DescribeSpotPriceHistory (moto's are a constant 0.00001), not the file.
    let spot: Vec<f64> = c
        .offerings
        .iter()
        .filter(|o| o.capacity_type == "spot")
        .map(|o| o.price)
        .collect();
    ensure!(
        !spot.is_empty() && spot.iter().all(|p| *p == 0.00001),
        "{spot:?}"
    );
    let g = types
        .iter()
        .find(|t| t.name == "g4dn.xlarge")
        .context("g4dn.xlarge")?;
    ensure!(g.capacity.get("nvidia.com/gpu") == 1);
    ensure!(g.labels["nodes.ballast.dev/instance-gpu-name"] == "t4");
    eprintln!(
        "{} instance types, c6i.large offerings {:?}",
        types.len(),
        c.offerings.len()
    );
    Ok(())
}

#[tokio::test]
async fn launch_tag_list_get_and_terminate() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let s = setup(&moto, "launch").await?;
    let p = s.provider(&["us-east-1a", "us-east-1b"])?;
    let types = p.instance_types().await?;
    let c = claim("general-launch");
    // Cheapest first: c6i.large ($0.085) before m6i.large ($0.096); only zones with a subnet.
    let req = LaunchRequest {
        node_claim: c.clone(),
        offerings: offerings(&types, &["c6i.large", "m6i.large"], "on-demand"),
    };
    let i = p.create(&req).await?;
    ensure!(i.instance_type == "c6i.large", "{i:?}");
    ensure!(
        i.zone == "us-east-1a" && i.capacity_type == "on-demand",
        "{i:?}"
    );
    ensure!(
        i.provider_id.starts_with("aws:///us-east-1a/i-"),
        "{}",
        i.provider_id
    );
    ensure!(i.capacity.cpu_millis == 2000 && i.image_id.is_some());
    let t = tags_of(&p, &i.provider_id).await?;
    for (k, v) in [
        (tags::CLUSTER, s.cluster.as_str()),
        (tags::NODEPOOL, "general"),
        (tags::NODECLAIM, "general-launch"),
        (tags::NODECLASS, "default"),
        (tags::NAME, "general-launch"),
        ("team", "autoscaling"),
    ] {
        ensure!(t.get(k).map(String::as_str) == Some(v), "tag {k}: {t:?}");
    }
    ensure!(t.get(tags::NODECLASS_HASH).is_some_and(|h| h.len() == 16));
    // One launch template, named after the cluster and the class.
    let lts = p
        .client()
        .describe_launch_templates()
        .filters(
            Filter::builder()
                .name(format!("tag:{}", tags::CLUSTER))
                .values(&s.cluster)
                .build(),
        )
        .send()
        .await?;
    let names: Vec<&str> = lts
        .launch_templates()
        .iter()
        .filter_map(|l| l.launch_template_name())
        .collect();
    ensure!(
        names.len() == 1 && names[0].starts_with(&format!("ballast/{}/default/", s.cluster)),
        "{names:?}"
    );
    // Idempotent per NodeClaim.
    let again = p.create(&req).await?;
    ensure!(again.provider_id == i.provider_id, "{again:?}");
    let listed = p.list().await?;
    ensure!(
        listed.len() == 1 && listed[0].provider_id == i.provider_id,
        "{listed:?}"
    );
    ensure!(listed[0].node_claim.as_deref() == Some("general-launch"));
    ensure!(listed[0].node_pool.as_deref() == Some("general"));
    ensure!(listed[0].created.is_some());
    let got = p.get(&i.provider_id).await?.context("get")?;
    ensure!(got.instance_type == "c6i.large" && got.capacity.cpu_millis == 2000);
    // A spot launch: lifecycle spot.
    let spot = p
        .create(&LaunchRequest {
            node_claim: claim("general-spot"),
            offerings: offerings(&types, &["m6i.large"], "spot"),
        })
        .await?;
    ensure!(spot.capacity_type == "spot", "{spot:?}");
    let got = p.get(&spot.provider_id).await?.context("get spot")?;
    ensure!(got.capacity_type == "spot", "{got:?}");
    ensure!(p.list().await?.len() == 2);
    // Terminate: gone for get and list; terminating again is fine; an unknown id is NotFound.
    p.delete(&i.provider_id).await?;
    p.delete(&spot.provider_id).await?;
    ensure!(p.get(&i.provider_id).await?.is_none());
    ensure!(p.list().await?.is_empty());
    p.delete(&i.provider_id).await?;
    let missing = "aws:///us-east-1a/i-0123456789abcdef0";
    ensure!(matches!(
        p.delete(missing).await,
        Err(CloudError::NotFound { .. })
    ));
    ensure!(p.get(missing).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_surfaces_typed() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let s = setup(&moto, "throttle").await?;
    let proxy = Ec2FaultProxy::start(&moto).await?;
    let retry = RetryOptions {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    };
    let p = s.provider_at(proxy.url(), &["us-east-1a"], retry)?;
    // Three throttled answers, then moto's: the call succeeds on its fourth attempt.
    proxy.throttle(3, Some("DescribeInstances"));
    let listed = p.list().await?;
    ensure!(listed.is_empty(), "{listed:?}");
    ensure!(proxy.throttled() == 3, "throttled {}", proxy.throttled());
    ensure!(proxy.requests("DescribeInstances") == 4);
    // A launch throttled on CreateFleet retries the same request and launches once.
    let types = p.instance_types().await?;
    proxy.throttle(2, Some("CreateFleet"));
    let i = p
        .create(&LaunchRequest {
            node_claim: claim("general-throttled"),
            offerings: offerings(&types, &["c6i.large"], "on-demand"),
        })
        .await?;
    ensure!(
        proxy.requests("CreateFleet") == 3,
        "{}",
        proxy.requests("CreateFleet")
    );
    ensure!(p.list().await?.len() == 1);
    // Throttled past the budget: the typed error, naming the operation and the attempts.
    proxy.throttle(100, None);
    match p.get(&i.provider_id).await {
        Err(CloudError::Throttled {
            operation,
            attempts,
            message,
        }) => {
            ensure!(
                operation == "DescribeInstances" && attempts == 4,
                "{operation} {attempts}"
            );
            ensure!(message.contains("RequestLimitExceeded"), "{message}");
        }
        other => anyhow::bail!("expected Throttled, got {other:?}"),
    }
    proxy.clear();
    p.delete(&i.provider_id).await?;
    Ok(())
}

/// Instances tagged for a NodeClaim in moto, in any state (terminated ones included).
async fn launched_for(p: &AwsProvider, claim: &str) -> Result<Vec<String>> {
    let out = p
        .client()
        .describe_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{}", tags::NODECLAIM))
                .values(claim)
                .build(),
        )
        .filters(
            Filter::builder()
                .name(format!("tag:{}", tags::CLUSTER))
                .values(&p.options().cluster)
                .build(),
        )
        .send()
        .await?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect())
}

#[tokio::test]
async fn a_launch_whose_answer_is_lost_launches_once() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let s = setup(&moto, "lost").await?;
    let proxy = Ec2FaultProxy::start(&moto).await?;
    let retry = RetryOptions {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    };
    // An attempt is given up after 2 s.
    let p = provider_timed(
        proxy.url(),
        &s.cluster,
        BTreeMap::from([("default".to_string(), class(&[s.subnet("us-east-1a")]))]),
        retry,
        Duration::from_secs(2),
    )?;
    let types = p.instance_types().await?;
    // moto launched, the answer was lost (the connection closed after it; then a 500 from a
    // server that had acted, played here by a timeout after moto's answer): the instance found by
    // its NodeClaim tag is adopted, never launched again.
    let lost = [
        ("lost-hang-up", Fault::HangUp(HangUp::AfterAnswer)),
        ("lost-timeout", Fault::Delay(Duration::from_secs(4))),
    ];
    for (name, fault) in lost {
        let before = proxy.forwarded("CreateFleet");
        proxy.inject(fault, Some("CreateFleet"), Some(1));
        let i = p
            .create(&LaunchRequest {
                node_claim: claim(name),
                offerings: offerings(&types, &["c6i.large"], "on-demand"),
            })
            .await?;
        let all = launched_for(&p, name).await?;
        let (_, id) = parse_provider_id(&i.provider_id).context("providerID")?;
        ensure!(
            all == [id.to_string()],
            "{name}: launched {all:?}, answered {}",
            i.provider_id
        );
        ensure!(
            proxy.forwarded("CreateFleet") == before + 1,
            "{name}: one CreateFleet reached EC2"
        );
        p.delete(&i.provider_id).await?;
    }
    // Refused before EC2 acted (connection closed before forwarding, 500, 503): retried, one
    // launch.
    for (name, fault) in [
        ("lost-before", Fault::HangUp(HangUp::BeforeForward)),
        ("lost-500", Fault::ServerError(ServerError::Internal)),
        ("lost-503", Fault::ServerError(ServerError::Unavailable)),
    ] {
        proxy.inject(fault, Some("CreateFleet"), Some(2));
        let i = p
            .create(&LaunchRequest {
                node_claim: claim(name),
                offerings: offerings(&types, &["c6i.large"], "on-demand"),
            })
            .await?;
        let all = launched_for(&p, name).await?;
        ensure!(all.len() == 1, "{name}: launched {all:?}");
        p.delete(&i.provider_id).await?;
    }
    Ok(())
}

#[tokio::test]
async fn insufficient_capacity_marks_the_offering_and_launches_the_next() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let s = setup(&moto, "ice").await?;
    let proxy = Ec2FaultProxy::start(&moto).await?;
    let p = s.provider_at(
        proxy.url(),
        &["us-east-1a", "us-east-1b"],
        RetryOptions::default(),
    )?;
    let types = p.instance_types().await?;
    let offers = offerings(&types, &["c6i.large", "m6i.large"], "on-demand");
    let first: Vec<String> = offers.iter().take(3).map(|o| o.key().to_string()).collect();
    ensure!(
        first
            == [
                "c6i.large/us-east-1a/on-demand",
                "c6i.large/us-east-1b/on-demand",
                "c6i.large/us-east-1c/on-demand"
            ],
        "{first:?}"
    );
    // No c6i.large capacity in us-east-1a: EC2 reports it in the fleet's errors and launches the
    // next override, c6i.large in us-east-1b.
    proxy.insufficient_capacity("c6i.large", Some(&s.subnet("us-east-1a")));
    let i = p
        .create(&LaunchRequest {
            node_claim: claim("general-ice"),
            offerings: offers.clone(),
        })
        .await?;
    ensure!(
        (i.instance_type.as_str(), i.zone.as_str()) == ("c6i.large", "us-east-1b"),
        "{i:?}"
    );
    ensure!(proxy.insufficient_answered() == 1);
    let now = jiff::Timestamp::now();
    let ice = OfferingKey::new("c6i.large", "us-east-1a", "on-demand");
    ensure!(p.unavailable().is_unavailable(&ice, now));
    ensure!(!p.unavailable().is_unavailable(
        &OfferingKey::new("c6i.large", "us-east-1b", "on-demand"),
        now
    ));
    let masked = p.instance_types().await?;
    let c = masked
        .iter()
        .find(|t| t.name == "c6i.large")
        .context("c6i.large")?;
    let o = c
        .offerings
        .iter()
        .find(|o| o.zone == "us-east-1a" && o.capacity_type == "on-demand")
        .context("offering")?;
    ensure!(!o.available, "the ICE offering is masked in the catalog");
    // Only the marked offering asked for: refused without a fleet request.
    let fleets = proxy.requests("CreateFleet");
    match p
        .create(&LaunchRequest {
            node_claim: claim("general-marked"),
            offerings: offers[..1].to_vec(),
        })
        .await
    {
        Err(CloudError::InsufficientCapacity { offerings, .. }) => {
            ensure!(offerings == vec![ice.clone()], "{offerings:?}")
        }
        other => anyhow::bail!("expected InsufficientCapacity, got {other:?}"),
    }
    ensure!(proxy.requests("CreateFleet") == fleets);
    // Nothing left: every override fails, no instance, the typed error names the offerings.
    proxy.insufficient_capacity("c6i.large", None);
    proxy.insufficient_capacity("m6i.large", None);
    match p
        .create(&LaunchRequest {
            node_claim: claim("general-none"),
            offerings: offers.clone(),
        })
        .await
    {
        Err(CloudError::InsufficientCapacity { offerings, message }) => {
            let names: Vec<String> = offerings.iter().map(|k| k.to_string()).collect();
            ensure!(
                names.contains(&"m6i.large/us-east-1a/on-demand".to_string()),
                "{names:?}"
            );
            ensure!(
                names.contains(&"c6i.large/us-east-1b/on-demand".to_string()),
                "{names:?}"
            );
            ensure!(
                message.contains("InsufficientInstanceCapacity"),
                "{message}"
            );
        }
        other => anyhow::bail!("expected InsufficientCapacity, got {other:?}"),
    }
    ensure!(p.find_by_claim("general-none").await?.is_none());
    proxy.clear();
    p.delete(&i.provider_id).await?;
    Ok(())
}

#[tokio::test]
async fn drift_of_the_class_hash_and_image() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let s = setup(&moto, "drift").await?;
    let p = s.provider(&["us-east-1a"])?;
    let types = p.instance_types().await?;
    let mut c = claim("general-drift");
    let i = p
        .create(&LaunchRequest {
            node_claim: c.clone(),
            offerings: offerings(&types, &["c6i.large"], "on-demand"),
        })
        .await?;
    c.status = Some(NodeClaimStatus {
        provider_id: Some(i.provider_id.clone()),
        ..Default::default()
    });
    ensure!(
        p.is_drifted(&c).await?.is_none(),
        "not drifted right after launch"
    );
    let subnets = vec![s.subnet("us-east-1a")];
    let mut changed = class(&subnets);
    changed.user_data = Some("#!/bin/sh\necho changed".into());
    let q = provider(
        &moto,
        &s.cluster,
        BTreeMap::from([("default".to_string(), changed)]),
        RetryOptions::default(),
    )?;
    let why = q
        .is_drifted(&c)
        .await?
        .context("user data changed: drifted")?;
    ensure!(why.contains("changed since launch"), "{why}");
    let mut other_image = class(&subnets);
    other_image.ami_selector_terms = vec![AmiSelectorTerm {
        name: Some("amzn2-ami-kernel-5.10-hvm-*".into()),
        owner: Some("amazon".into()),
        ..Default::default()
    }];
    let q = provider(
        &moto,
        &s.cluster,
        BTreeMap::from([("default".to_string(), other_image)]),
        RetryOptions::default(),
    )?;
    let why = q.is_drifted(&c).await?.context("other image: drifted")?;
    ensure!(why.contains("no longer selected"), "{why}");
    let other_subnet = class(&[s.subnet("us-east-1b")]);
    let q = provider(
        &moto,
        &s.cluster,
        BTreeMap::from([("default".to_string(), other_subnet)]),
        RetryOptions::default(),
    )?;
    let why = q.is_drifted(&c).await?.context("other subnet: drifted")?;
    ensure!(why.contains("subnet"), "{why}");
    p.delete(&i.provider_id).await?;
    Ok(())
}

#[tokio::test]
async fn bad_node_classes_are_named() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let s = setup(&moto, "badclass").await?;
    let mut alias = class(&[s.subnet("us-east-1a")]);
    alias.ami_selector_terms = vec![AmiSelectorTerm {
        alias: Some("al2023@latest".into()),
        ..Default::default()
    }];
    let no_subnets = class(&["subnet-00000000000000000".to_string()]);
    let p = provider(
        &moto,
        &s.cluster,
        BTreeMap::from([
            ("alias".to_string(), alias),
            ("nosubnet".to_string(), no_subnets),
        ]),
        RetryOptions::default(),
    )?;
    let types = p.instance_types().await?;
    for (class_name, want) in [
        ("alias", "amiSelectorTerms[0].alias"),
        ("nosubnet", "subnetSelectorTerms select no subnet"),
        ("missing", "Ec2NodeClass missing not found"),
    ] {
        let mut c = claim(&format!("general-{class_name}"));
        c.spec.node_class_ref.name = class_name.into();
        match p
            .create(&LaunchRequest {
                node_claim: c,
                offerings: offerings(&types, &["c6i.large"], "on-demand"),
            })
            .await
        {
            Err(CloudError::NodeClass(m)) => ensure!(m.contains(want), "{class_name}: {m}"),
            other => anyhow::bail!("{class_name}: expected a NodeClass error, got {other:?}"),
        }
    }
    ensure!(p.list().await?.is_empty());
    Ok(())
}
