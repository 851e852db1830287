//! The EC2 cloud provider (`--provider aws`).
//!
//! - Instance types: `DescribeInstanceTypes` (shape), `DescribeInstanceTypeOfferings` (zones),
//!   `DescribeAvailabilityZones`, `DescribeSpotPriceHistory` (spot prices, newest per type and
//!   zone), and on-demand prices from a price file in the catalog format, since the EC2 API has
//!   none (see [`catalog`]). Cached for `catalog_ttl`; offerings that failed with insufficient
//!   capacity are masked for `unavailable_ttl`.
//! - Launch: the NodeClaim's `Ec2NodeClass` is resolved (subnets, security groups, images by
//!   their selector terms), a launch template per image is ensured, and one `CreateFleet` of type
//!   `instant` asks for one instance with the offerings as overrides, cheapest first (on-demand:
//!   `prioritized` in that order; spot: `price-capacity-optimized`). Capacity errors in the fleet
//!   response (`InsufficientInstanceCapacity`, `Unsupported`, ...) mark those offerings
//!   unavailable; when no instance was launched the call fails with
//!   [`CloudError::InsufficientCapacity`] naming them, and the controller tries the offerings left.
//! - Ownership: instances, volumes and fleets carry the tags in [`tags`] (cluster, NodePool,
//!   NodeClaim, node class and its hash); `list` finds the cluster's instances by tag.
//! - Delete: `TerminateInstances`; an instance that is gone is [`CloudError::NotFound`].
//!   Provider IDs are `aws:///<zone>/<instance-id>`.
//! - Every call is retried on throttling and transient errors with bounded backoff ([`retry`]);
//!   when the attempts run out, throttling surfaces as [`CloudError::Throttled`]. A CreateFleet
//!   that failed in a way that may hide a launch (timeout, connection lost, 5xx) is not sent
//!   again when an instance tagged for the NodeClaim is found: that instance is adopted.
//!
//! The HTTPS client is rustls with ring, built here; no `aws-config`: the region, the endpoint
//! (`--aws-endpoint`, e.g. moto on the test bed) and static credentials are given by the caller.

pub mod catalog;
pub mod fleet;
pub mod nodeclass;
pub mod retry;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::primitives::DateTime;
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, Filter, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest,
    FleetOnDemandAllocationStrategy, FleetType, InstanceLifecycleType, InstanceStateName,
    InstanceType as SdkInstanceType, LocationType, OnDemandOptionsRequest, ResourceType,
    SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification,
    TargetCapacitySpecificationRequest,
};
use ballast_api::nodes::{Ec2NodeClass, Ec2NodeClassSpec, NodeClaim, labels};
use ballast_cloud::{
    CloudError, CloudProvider, Instance, LaunchOffering, LaunchRequest, OfferingKey,
    UnavailableOfferings,
};
use ballast_scheduling::catalog::CatalogFile;
use ballast_scheduling::{InstanceType, Resources};
use jiff::{SignedDuration, Timestamp};

use crate::catalog::{CatalogInputs, Ec2Type, SpotRecord};
use crate::nodeclass::{Ami, Resolved, Subnet};
use crate::retry::{ApiError, Once, RetryOptions, call, call_once};

/// Provider IDs look like `aws:///<zone>/<instance-id>`.
pub const PROVIDER_ID_PREFIX: &str = "aws:///";

/// Tags Ballast puts on what it launches.
pub mod tags {
    /// The cluster (`--cluster-name`): what `list` and garbage collection look at.
    pub const CLUSTER: &str = "nodes.ballast.dev/cluster";
    /// The NodePool.
    pub const NODEPOOL: &str = ballast_api::nodes::labels::NODEPOOL;
    /// The NodeClaim the instance was launched for.
    pub const NODECLAIM: &str = "nodes.ballast.dev/nodeclaim";
    /// The `Ec2NodeClass`.
    pub const NODECLASS: &str = "nodes.ballast.dev/ec2nodeclass";
    /// The class's static hash at launch (drift).
    pub const NODECLASS_HASH: &str = "nodes.ballast.dev/ec2nodeclass-hash";
    /// EC2's display name: the NodeClaim's name.
    pub const NAME: &str = "Name";
}

/// `aws:///us-east-1a/i-0abc` → (`us-east-1a`, `i-0abc`).
pub fn parse_provider_id(provider_id: &str) -> Option<(&str, &str)> {
    let rest = provider_id.strip_prefix(PROVIDER_ID_PREFIX)?;
    let (zone, id) = rest.split_once('/')?;
    (!zone.is_empty() && id.starts_with("i-") && !id.contains('/')).then_some((zone, id))
}

pub fn provider_id(zone: &str, instance_id: &str) -> String {
    format!("{PROVIDER_ID_PREFIX}{zone}/{instance_id}")
}

/// Static credentials (the standard environment variables, or given).
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl StaticCredentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and (optional) `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(StaticCredentials {
            access_key_id: var("AWS_ACCESS_KEY_ID")
                .ok_or("AWS_ACCESS_KEY_ID is not set (the aws provider reads static credentials from the environment)")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")
                .ok_or("AWS_SECRET_ACCESS_KEY is not set")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// How the provider reaches EC2 and behaves.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    pub region: String,
    /// Another endpoint than the region's (moto on the test bed: `http://127.0.0.1:25000`).
    pub endpoint: Option<String>,
    pub credentials: StaticCredentials,
    /// Value of the `nodes.ballast.dev/cluster` tag: the instances this provider owns.
    pub cluster: String,
    pub retry: RetryOptions,
    /// How long instance types and prices are reused before they are read again.
    pub catalog_ttl: Duration,
    /// How long an offering that failed with insufficient capacity stays masked.
    pub unavailable_ttl: Duration,
    /// Timeout of one attempt of one call.
    pub attempt_timeout: Duration,
}

impl AwsOptions {
    pub fn new(region: &str, cluster: &str, credentials: StaticCredentials) -> Self {
        AwsOptions {
            region: region.into(),
            endpoint: None,
            credentials,
            cluster: cluster.into(),
            retry: RetryOptions::default(),
            catalog_ttl: Duration::from_secs(300),
            unavailable_ttl: Duration::from_secs(180),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

/// Where `Ec2NodeClass`es come from: the API server, or a fixed set (tests, tools).
pub enum NodeClasses {
    Kube(kube::Client),
    Fixed(BTreeMap<String, Ec2NodeClassSpec>),
}

/// The EC2 provider.
pub struct AwsProvider {
    ec2: Client,
    opts: AwsOptions,
    prices: CatalogFile,
    classes: NodeClasses,
    catalog: Mutex<Option<(StdInstant, Arc<Vec<InstanceType>>)>>,
    unavailable: UnavailableOfferings,
    templates: Mutex<BTreeSet<String>>,
}

/// The SDK client: rustls on ring, no SDK retries (ours are in [`retry`]), static credentials.
pub fn ec2_client(opts: &AwsOptions) -> Result<Client, String> {
    use aws_sdk_ec2::config::retry::RetryConfig;
    use aws_sdk_ec2::config::timeout::TimeoutConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    if opts.region.is_empty() {
        return Err("the AWS region is empty".into());
    }
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let c = &opts.credentials;
    let mut b = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(opts.region.clone()))
        .credentials_provider(Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "ballast-static",
        ))
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(opts.attempt_timeout)
                .build(),
        );
    if let Some(e) = &opts.endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(format!("--aws-endpoint {e:?}: not an http(s) URL"));
        }
        b = b.endpoint_url(e.trim_end_matches('/'));
    }
    Ok(Client::from_conf(b.build()))
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

fn gone(state: Option<&InstanceStateName>) -> bool {
    matches!(
        state,
        Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
    )
}

fn timestamp(t: Option<&DateTime>) -> Option<Timestamp> {
    t.and_then(|d| Timestamp::from_second(d.secs()).ok())
}

impl AwsProvider {
    /// A provider. `prices` is the price file (catalog format).
    pub fn new(
        opts: AwsOptions,
        prices: CatalogFile,
        classes: NodeClasses,
    ) -> Result<Self, String> {
        if opts.cluster.is_empty() {
            return Err("the cluster name (ownership tag) is empty".into());
        }
        Ok(AwsProvider {
            ec2: ec2_client(&opts)?,
            opts,
            prices,
            classes,
            catalog: Mutex::default(),
            unavailable: UnavailableOfferings::new(),
            templates: Mutex::default(),
        })
    }

    /// The SDK client (tests use it to look at what was launched).
    pub fn client(&self) -> &Client {
        &self.ec2
    }

    pub fn options(&self) -> &AwsOptions {
        &self.opts
    }

    /// Offerings this provider saw fail with insufficient capacity.
    pub fn unavailable(&self) -> &UnavailableOfferings {
        &self.unavailable
    }

    /// Drops the cached instance types (the next call reads them again).
    pub fn invalidate_catalog(&self) {
        *self.catalog.lock().expect("catalog lock") = None;
    }

    async fn read_catalog(&self) -> Result<Vec<InstanceType>, CloudError> {
        let r = &self.opts.retry;
        let names: Vec<String> = self.prices.types.iter().map(|t| t.name.clone()).collect();
        let mut ec2_types = vec![];
        for chunk in names.chunks(100) {
            let mut token: Option<String> = None;
            loop {
                let req = self
                    .ec2
                    .describe_instance_types()
                    .filters(filter("instance-type", chunk.iter().cloned()))
                    .set_next_token(token.clone());
                let out = call(r, "DescribeInstanceTypes", || req.clone().send()).await?;
                for t in out.instance_types() {
                    match Ec2Type::from_sdk(t) {
                        Ok(t) => ec2_types.push(t),
                        Err(why) => tracing::debug!("instance type left out: {why}"),
                    }
                }
                token = out.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        let azs = call(r, "DescribeAvailabilityZones", || {
            self.ec2.describe_availability_zones().send()
        })
        .await?;
        let zones: Vec<String> = azs
            .availability_zones()
            .iter()
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter(|z| z.state().is_none_or(|s| s.as_str() == "available"))
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect();
        let described: Vec<String> = ec2_types.iter().map(|t| t.name.clone()).collect();
        let mut offered = BTreeSet::new();
        let mut spot_records = vec![];
        for chunk in described.chunks(100) {
            let mut token: Option<String> = None;
            loop {
                let req = self
                    .ec2
                    .describe_instance_type_offerings()
                    .location_type(LocationType::AvailabilityZone)
                    .filters(filter("instance-type", chunk.iter().cloned()))
                    .set_next_token(token.clone());
                let out = call(r, "DescribeInstanceTypeOfferings", || req.clone().send()).await?;
                for o in out.instance_type_offerings() {
                    if let (Some(t), Some(z)) = (o.instance_type(), o.location()) {
                        offered.insert((t.as_str().to_string(), z.to_string()));
                    }
                }
                token = out.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            let spot_types: Vec<SdkInstanceType> = ec2_types
                .iter()
                .filter(|t| t.spot && chunk.contains(&t.name))
                .map(|t| SdkInstanceType::from(t.name.as_str()))
                .collect();
            if spot_types.is_empty() {
                continue;
            }
            let mut token: Option<String> = None;
            loop {
                let req = self
                    .ec2
                    .describe_spot_price_history()
                    .set_instance_types(Some(spot_types.clone()))
                    .product_descriptions("Linux/UNIX")
                    .product_descriptions("Linux/UNIX (Amazon VPC)")
                    .start_time(DateTime::from_secs(Timestamp::now().as_second()))
                    .set_next_token(token.clone());
                let out = call(r, "DescribeSpotPriceHistory", || req.clone().send()).await?;
                for p in out.spot_price_history() {
                    let (Some(t), Some(z), Some(price)) =
                        (p.instance_type(), p.availability_zone(), p.spot_price())
                    else {
                        continue;
                    };
                    let Ok(price) = price.parse::<f64>() else {
                        continue;
                    };
                    spot_records.push(SpotRecord {
                        instance_type: t.as_str().to_string(),
                        zone: z.to_string(),
                        price,
                        timestamp: p.timestamp().map(|d| d.secs()).unwrap_or(0),
                    });
                }
                token = out
                    .next_token()
                    .map(str::to_string)
                    .filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }
        let inputs = CatalogInputs {
            types: ec2_types,
            zones,
            offered,
            spot: catalog::latest_spot_prices(&spot_records),
        };
        let (types, skipped) = catalog::build(&inputs, &self.prices);
        for s in &skipped {
            tracing::debug!("instance type left out: {s}");
        }
        tracing::info!(
            types = types.len(),
            zones = inputs.zones.len(),
            spot_prices = inputs.spot.len(),
            left_out = skipped.len(),
            "EC2 instance types read"
        );
        if types.is_empty() {
            return Err(CloudError::Other(format!(
                "no instance type of the price file is offered in {} ({})",
                self.opts.region,
                skipped.join("; ")
            )));
        }
        Ok(types)
    }

    async fn cached_catalog(&self) -> Result<Arc<Vec<InstanceType>>, CloudError> {
        if let Some((at, types)) = self.catalog.lock().expect("catalog lock").as_ref()
            && at.elapsed() < self.opts.catalog_ttl
        {
            return Ok(types.clone());
        }
        let types = Arc::new(self.read_catalog().await?);
        *self.catalog.lock().expect("catalog lock") = Some((StdInstant::now(), types.clone()));
        Ok(types)
    }

    async fn node_class(
        &self,
        claim: &NodeClaim,
    ) -> Result<(String, Ec2NodeClassSpec), CloudError> {
        let r = &claim.spec.node_class_ref;
        if r.kind != "Ec2NodeClass" {
            return Err(CloudError::NodeClass(format!(
                "the aws provider launches only Ec2NodeClass nodes, not {} {}",
                r.kind, r.name
            )));
        }
        let spec = match &self.classes {
            NodeClasses::Fixed(m) => m.get(&r.name).cloned(),
            NodeClasses::Kube(c) => kube::Api::<Ec2NodeClass>::all(c.clone())
                .get_opt(&r.name)
                .await
                .map_err(|e| {
                    CloudError::Transient(format!("reading Ec2NodeClass {}: {e}", r.name))
                })?
                .map(|c| c.spec),
        };
        spec.map(|s| (r.name.clone(), s))
            .ok_or_else(|| CloudError::NodeClass(format!("Ec2NodeClass {} not found", r.name)))
    }

    /// Resolves a class's subnets, security groups and images.
    pub async fn resolve(
        &self,
        class: &str,
        spec: &Ec2NodeClassSpec,
    ) -> Result<Resolved, CloudError> {
        let r = &self.opts.retry;
        let bad = |why: String| CloudError::NodeClass(format!("Ec2NodeClass {class}: {why}"));
        if spec.instance_profile.is_none() {
            return Err(bad(
                "spec.role: the aws provider does not manage IAM instance profiles; set spec.instanceProfile".into(),
            ));
        }
        let mut subnets: BTreeMap<String, Subnet> = BTreeMap::new();
        for (i, term) in spec.subnet_selector_terms.iter().enumerate() {
            let f = nodeclass::selector_filters(term, "subnet-id", "tag:Name");
            if f.is_empty() {
                return Err(bad(format!(
                    "subnetSelectorTerms[{i}]: needs an id, a name or tags"
                )));
            }
            let req = self.ec2.describe_subnets().set_filters(Some(f));
            let out = call(r, "DescribeSubnets", || req.clone().send()).await?;
            for s in out.subnets() {
                if let (Some(id), Some(zone)) = (s.subnet_id(), s.availability_zone()) {
                    subnets.insert(
                        id.to_string(),
                        Subnet {
                            id: id.into(),
                            zone: zone.into(),
                            free_ips: s.available_ip_address_count().unwrap_or(0) as i64,
                        },
                    );
                }
            }
        }
        if subnets.is_empty() {
            return Err(bad("subnetSelectorTerms select no subnet".into()));
        }
        let mut sgs = BTreeSet::new();
        for (i, term) in spec.security_group_selector_terms.iter().enumerate() {
            let f = nodeclass::selector_filters(term, "group-id", "group-name");
            if f.is_empty() {
                return Err(bad(format!(
                    "securityGroupSelectorTerms[{i}]: needs an id, a name or tags"
                )));
            }
            let req = self.ec2.describe_security_groups().set_filters(Some(f));
            let out = call(r, "DescribeSecurityGroups", || req.clone().send()).await?;
            sgs.extend(
                out.security_groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string)),
            );
        }
        if sgs.is_empty() {
            return Err(bad(
                "securityGroupSelectorTerms select no security group".into()
            ));
        }
        if spec.ami_selector_terms.is_empty() {
            return Err(bad("amiSelectorTerms: at least one term is needed".into()));
        }
        let mut images = vec![];
        for (i, term) in spec.ami_selector_terms.iter().enumerate() {
            let q = nodeclass::ami_query(term, i).map_err(bad)?;
            let req = self
                .ec2
                .describe_images()
                .set_image_ids((!q.image_ids.is_empty()).then_some(q.image_ids))
                .set_owners((!q.owners.is_empty()).then_some(q.owners))
                .set_filters(Some(q.filters));
            let out = call(r, "DescribeImages", || req.clone().send()).await?;
            for img in out.images() {
                let arch = img
                    .architecture()
                    .and_then(|a| nodeclass::k8s_arch(a.as_str()));
                if let (Some(id), Some(arch)) = (img.image_id(), arch) {
                    images.push(Ami {
                        id: id.into(),
                        arch: arch.into(),
                        created: img.creation_date().unwrap_or_default().into(),
                    });
                }
            }
        }
        let amis = nodeclass::newest_per_arch(images);
        if amis.is_empty() {
            return Err(bad(
                "amiSelectorTerms select no available x86_64 or arm64 image".into(),
            ));
        }
        Ok(Resolved {
            subnets: subnets.into_values().collect(),
            security_groups: sgs.into_iter().collect(),
            amis,
        })
    }

    async fn ensure_launch_template(
        &self,
        class: &str,
        spec: &Ec2NodeClassSpec,
        resolved: &Resolved,
        ami: &str,
    ) -> Result<String, CloudError> {
        let hash = nodeclass::static_hash(spec);
        let name = nodeclass::launch_template_name(
            &self.opts.cluster,
            class,
            ami,
            &resolved.security_groups,
            &hash,
        );
        if self
            .templates
            .lock()
            .expect("templates lock")
            .contains(&name)
        {
            return Ok(name);
        }
        let data = nodeclass::launch_template_data(spec, ami, &resolved.security_groups)
            .map_err(|e| CloudError::NodeClass(format!("Ec2NodeClass {class}: spec.{e}")))?;
        let lt_tags = TagSpecification::builder()
            .resource_type(ResourceType::LaunchTemplate)
            .tags(
                Tag::builder()
                    .key(tags::CLUSTER)
                    .value(&self.opts.cluster)
                    .build(),
            )
            .tags(Tag::builder().key(tags::NODECLASS).value(class).build())
            .tags(
                Tag::builder()
                    .key(tags::NODECLASS_HASH)
                    .value(&hash)
                    .build(),
            )
            .build();
        let req = self
            .ec2
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(data)
            .tag_specifications(lt_tags);
        match call(&self.opts.retry, "CreateLaunchTemplate", || {
            req.clone().send()
        })
        .await
        {
            Ok(_) => {
                tracing::info!(launch_template = %name, nodeclass = class, "launch template created")
            }
            Err(e) if e.code_is("InvalidLaunchTemplateName.AlreadyExistsException") => {}
            Err(e) => return Err(e.into()),
        }
        self.templates
            .lock()
            .expect("templates lock")
            .insert(name.clone());
        Ok(name)
    }

    fn instance_tags(&self, claim: &NodeClaim, class: &str, spec: &Ec2NodeClassSpec) -> Vec<Tag> {
        let name = claim.metadata.name.clone().unwrap_or_default();
        let pool = claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::NODEPOOL))
            .cloned()
            .unwrap_or_default();
        let mut m: BTreeMap<String, String> = spec.tags.clone();
        for (k, v) in [
            (tags::CLUSTER, self.opts.cluster.clone()),
            (tags::NODEPOOL, pool),
            (tags::NODECLAIM, name.clone()),
            (tags::NODECLASS, class.to_string()),
            (tags::NODECLASS_HASH, nodeclass::static_hash(spec)),
            (tags::NAME, name),
        ] {
            m.insert(k.to_string(), v);
        }
        m.into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }

    async fn describe(
        &self,
        ids: Vec<String>,
        filters: Vec<Filter>,
    ) -> Result<Vec<aws_sdk_ec2::types::Instance>, ApiError> {
        let mut out = vec![];
        let mut token: Option<String> = None;
        loop {
            let req = self
                .ec2
                .describe_instances()
                .set_instance_ids((!ids.is_empty()).then(|| ids.clone()))
                .set_filters((!filters.is_empty()).then(|| filters.clone()))
                .set_next_token(token.clone());
            let page = call(&self.opts.retry, "DescribeInstances", || req.clone().send()).await?;
            for r in page.reservations() {
                out.extend(r.instances().iter().cloned());
            }
            token = page
                .next_token()
                .map(str::to_string)
                .filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    fn owned_filters(&self) -> Vec<Filter> {
        vec![
            filter(
                &format!("tag:{}", tags::CLUSTER),
                [self.opts.cluster.clone()],
            ),
            filter("tag-key", [tags::NODEPOOL]),
            filter(
                "instance-state-name",
                ["pending", "running", "stopping", "stopped"],
            ),
        ]
    }

    /// What Ballast knows of an EC2 instance (`None` for one without id or zone).
    pub fn to_instance(
        &self,
        i: &aws_sdk_ec2::types::Instance,
        types: &[InstanceType],
    ) -> Option<Instance> {
        let id = i.instance_id()?;
        let zone = i.placement()?.availability_zone()?;
        let t = i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let shape = types.iter().find(|x| x.name == t);
        let tags = i.tags();
        Some(Instance {
            provider_id: provider_id(zone, id),
            node_name: i
                .private_dns_name()
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            node_claim: tag(tags, tags::NODECLAIM).map(str::to_string),
            node_pool: tag(tags, tags::NODEPOOL).map(str::to_string),
            instance_type: t,
            zone: zone.into(),
            capacity_type: match i.instance_lifecycle() {
                Some(InstanceLifecycleType::Spot) => "spot".into(),
                _ => "on-demand".into(),
            },
            image_id: i.image_id().map(str::to_string),
            capacity: shape.map(|s| s.capacity.clone()).unwrap_or_default(),
            allocatable: shape
                .map(|s| s.allocatable())
                .unwrap_or_else(Resources::default),
            created: timestamp(i.launch_time()),
        })
    }

    /// The live instance launched for a NodeClaim, if any.
    pub async fn find_by_claim(&self, claim: &str) -> Result<Option<Instance>, CloudError> {
        let mut f = self.owned_filters();
        f.push(filter(&format!("tag:{}", tags::NODECLAIM), [claim]));
        let found = self.describe(vec![], f).await?;
        let types = self.cached_catalog().await.unwrap_or_default();
        Ok(found
            .iter()
            .filter(|i| !gone(i.state().and_then(|s| s.name())))
            .filter_map(|i| self.to_instance(i, &types))
            .min_by(|a, b| a.provider_id.cmp(&b.provider_id)))
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<Instance, CloudError> {
        let claim = &request.node_claim;
        let name = claim
            .metadata
            .name
            .clone()
            .ok_or_else(|| CloudError::Other("NodeClaim without a name".into()))?;
        let (class, spec) = self.node_class(claim).await?;
        let resolved = self.resolve(&class, &spec).await?;
        let now = Timestamp::now();
        let offerings: Vec<LaunchOffering> = request
            .offerings
            .iter()
            .filter(|o| !self.unavailable.is_unavailable(&o.key(), now))
            .cloned()
            .collect();
        if offerings.is_empty() {
            return Err(CloudError::InsufficientCapacity {
                offerings: request.offerings.iter().map(LaunchOffering::key).collect(),
                message: "every offering failed with insufficient capacity in the last minutes"
                    .into(),
            });
        }
        let plan = fleet::plan(&offerings, &resolved);
        if plan.overrides.is_empty() {
            let why: Vec<String> = plan
                .left_out
                .iter()
                .take(5)
                .map(|(k, w)| format!("{k}: {w}"))
                .collect();
            return Err(CloudError::InsufficientCapacity {
                offerings: request.offerings.iter().map(LaunchOffering::key).collect(),
                message: format!(
                    "Ec2NodeClass {class} can launch none of the offerings ({})",
                    why.join("; ")
                ),
            });
        }
        let mut configs = vec![];
        for (arch, ami) in &resolved.amis {
            let overrides: Vec<FleetLaunchTemplateOverridesRequest> = plan
                .overrides
                .iter()
                .filter(|o| &o.arch == arch)
                .map(|o| {
                    FleetLaunchTemplateOverridesRequest::builder()
                        .instance_type(SdkInstanceType::from(o.key.instance_type.as_str()))
                        .subnet_id(&o.subnet)
                        .priority(o.priority)
                        .build()
                })
                .collect();
            if overrides.is_empty() {
                continue;
            }
            let lt = self
                .ensure_launch_template(&class, &spec, &resolved, &ami.id)
                .await?;
            configs.push(
                FleetLaunchTemplateConfigRequest::builder()
                    .launch_template_specification(
                        FleetLaunchTemplateSpecificationRequest::builder()
                            .launch_template_name(lt)
                            .version("$Latest")
                            .build(),
                    )
                    .set_overrides(Some(overrides))
                    .build(),
            );
        }
        let instance_tags = self.instance_tags(claim, &class, &spec);
        let tag_specs: Vec<TagSpecification> = [
            ResourceType::Instance,
            ResourceType::Volume,
            ResourceType::Fleet,
        ]
        .into_iter()
        .map(|rt| {
            TagSpecification::builder()
                .resource_type(rt)
                .set_tags(Some(instance_tags.clone()))
                .build()
        })
        .collect();
        let spot = plan.capacity_type == "spot";
        let mut req = self
            .ec2
            .create_fleet()
            .r#type(FleetType::Instant)
            .client_token(fleet::client_token(
                claim.metadata.uid.as_deref().unwrap_or(&name),
                &plan,
            ))
            .target_capacity_specification(
                TargetCapacitySpecificationRequest::builder()
                    .total_target_capacity(1)
                    .default_target_capacity_type(if spot {
                        DefaultTargetCapacityType::Spot
                    } else {
                        DefaultTargetCapacityType::OnDemand
                    })
                    .build(),
            )
            .set_launch_template_configs(Some(configs))
            .set_tag_specifications(Some(tag_specs));
        req = if spot {
            req.spot_options(
                SpotOptionsRequest::builder()
                    .allocation_strategy(SpotAllocationStrategy::PriceCapacityOptimized)
                    .build(),
            )
        } else {
            req.on_demand_options(
                OnDemandOptionsRequest::builder()
                    .allocation_strategy(FleetOnDemandAllocationStrategy::Prioritized)
                    .build(),
            )
        };
        // A lost answer (timeout, connection closed, 5xx) may hide a launch: the instance found
        // by its NodeClaim tag is the answer, so a retry never launches a second one (EC2 also
        // honours the client token; moto does not).
        let sent = call_once(
            &self.opts.retry,
            "CreateFleet",
            || req.clone().send(),
            || async { self.find_by_claim(&name).await.ok().flatten() },
        )
        .await?;
        let out = match sent {
            Once::Answered(out) => out,
            Once::Found(i) => {
                tracing::info!(nodeclaim = %name, instance = %i.provider_id, "CreateFleet's answer was lost; the instance launched for the NodeClaim is adopted");
                return Ok(i);
            }
        };
        let errors: Vec<fleet::FleetError> = out
            .errors()
            .iter()
            .map(|e| {
                let o = e
                    .launch_template_and_overrides()
                    .and_then(|l| l.overrides());
                fleet::FleetError {
                    instance_type: o
                        .and_then(|o| o.instance_type())
                        .map(|t| t.as_str().to_string()),
                    subnet: o.and_then(|o| o.subnet_id()).map(str::to_string),
                    code: e.error_code().unwrap_or("Unknown").to_string(),
                    message: e.error_message().unwrap_or_default().to_string(),
                }
            })
            .collect();
        let failed = fleet::failed_offerings(&plan, &errors);
        if !failed.is_empty() {
            let keys: Vec<OfferingKey> = failed.iter().map(|(k, _)| k.clone()).collect();
            let ttl = SignedDuration::try_from(self.opts.unavailable_ttl)
                .unwrap_or(SignedDuration::from_secs(180));
            self.unavailable.mark(&keys, now, ttl);
            for (k, why) in &failed {
                tracing::info!(nodeclaim = %name, offering = %k, "offering unavailable: {why}");
            }
        }
        let launched = out.instances().iter().find_map(|fi| {
            let id = fi.instance_ids().first()?;
            let o = fi
                .launch_template_and_overrides()
                .and_then(|l| l.overrides());
            let t = fi
                .instance_type()
                .or_else(|| o.and_then(|o| o.instance_type()))
                .map(|t| t.as_str().to_string())?;
            let subnet = o.and_then(|o| o.subnet_id()).map(str::to_string);
            let planned = plan.overrides.iter().find(|p| {
                p.key.instance_type == t && subnet.as_ref().is_none_or(|s| *s == p.subnet)
            })?;
            Some((id.clone(), planned.clone()))
        });
        let Some((id, planned)) = launched else {
            if !failed.is_empty() {
                return Err(CloudError::InsufficientCapacity {
                    offerings: failed.iter().map(|(k, _)| k.clone()).collect(),
                    message: failed
                        .iter()
                        .map(|(k, w)| format!("{k}: {w}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
            let why: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect();
            return Err(CloudError::Other(format!(
                "CreateFleet launched no instance for NodeClaim {name}{}",
                if why.is_empty() {
                    " and reported no error".to_string()
                } else {
                    format!(": {}", why.join("; "))
                }
            )));
        };
        let offering = offerings
            .iter()
            .find(|o| o.key() == planned.key)
            .expect("planned offerings come from the request");
        tracing::info!(nodeclaim = %name, instance = %id, offering = %planned.key, price = planned.price, "EC2 instance launched");
        Ok(Instance {
            provider_id: provider_id(&planned.key.zone, &id),
            node_name: None,
            node_claim: Some(name),
            node_pool: claim
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::NODEPOOL).cloned()),
            instance_type: planned.key.instance_type.clone(),
            zone: planned.key.zone.clone(),
            capacity_type: planned.key.capacity_type.clone(),
            image_id: Some(planned.ami.clone()),
            capacity: offering.instance_type.capacity.clone(),
            allocatable: offering.instance_type.allocatable(),
            created: Some(now),
        })
    }

    async fn describe_one(
        &self,
        provider_id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::Instance>, CloudError> {
        let Some((_, id)) = parse_provider_id(provider_id) else {
            return Ok(None);
        };
        match self.describe(vec![id.to_string()], vec![]).await {
            Ok(v) => Ok(v
                .into_iter()
                .find(|i| i.instance_id() == Some(id) && !gone(i.state().and_then(|s| s.name())))),
            Err(e)
                if e.code_is("InvalidInstanceID.NotFound")
                    || e.code_is("InvalidInstanceID.Malformed") =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl CloudProvider for AwsProvider {
    fn name(&self) -> &str {
        "aws"
    }

    async fn instance_types(&self) -> Result<Vec<InstanceType>, CloudError> {
        let mut types = self.cached_catalog().await?.as_ref().clone();
        self.unavailable.apply(&mut types, Timestamp::now());
        Ok(types)
    }

    async fn create(&self, request: &LaunchRequest) -> Result<Instance, CloudError> {
        let name = request
            .node_claim
            .metadata
            .name
            .clone()
            .ok_or_else(|| CloudError::Other("NodeClaim without a name".into()))?;
        // Idempotent per NodeClaim: an instance already tagged for it is the answer.
        if let Some(i) = self.find_by_claim(&name).await? {
            return Ok(i);
        }
        self.launch(request).await
    }

    async fn delete(&self, provider_id: &str) -> Result<(), CloudError> {
        let not_found = || CloudError::NotFound {
            provider_id: provider_id.into(),
        };
        let (_, id) = parse_provider_id(provider_id).ok_or_else(not_found)?;
        let req = self.ec2.terminate_instances().instance_ids(id);
        match call(&self.opts.retry, "TerminateInstances", || {
            req.clone().send()
        })
        .await
        {
            Ok(out) => {
                let was = out
                    .terminating_instances()
                    .iter()
                    .find(|c| c.instance_id() == Some(id))
                    .and_then(|c| c.previous_state())
                    .and_then(|s| s.name())
                    .map(|s| s.as_str().to_string());
                tracing::info!(instance = id, previous_state = ?was, "EC2 instance terminated");
                Ok(())
            }
            Err(e)
                if e.code_is("InvalidInstanceID.NotFound")
                    || e.code_is("InvalidInstanceID.Malformed") =>
            {
                Err(not_found())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&self, provider_id: &str) -> Result<Option<Instance>, CloudError> {
        let Some(i) = self.describe_one(provider_id).await? else {
            return Ok(None);
        };
        let types = self.cached_catalog().await.unwrap_or_default();
        Ok(self.to_instance(&i, &types))
    }

    async fn list(&self) -> Result<Vec<Instance>, CloudError> {
        let found = self.describe(vec![], self.owned_filters()).await?;
        let types = self.cached_catalog().await.unwrap_or_default();
        Ok(found
            .iter()
            .filter(|i| !gone(i.state().and_then(|s| s.name())))
            .filter_map(|i| self.to_instance(i, &types))
            .collect())
    }

    async fn is_drifted(&self, claim: &NodeClaim) -> Result<Option<String>, CloudError> {
        let Some(pid) = claim.status.as_ref().and_then(|s| s.provider_id.clone()) else {
            return Ok(None);
        };
        let Some(i) = self.describe_one(&pid).await? else {
            return Ok(None);
        };
        let (class, spec) = self.node_class(claim).await?;
        let hash = nodeclass::static_hash(&spec);
        if let Some(h) = tag(i.tags(), tags::NODECLASS_HASH)
            && h != hash
        {
            return Ok(Some(format!(
                "Ec2NodeClass {class} changed since launch (hash {h} → {hash})"
            )));
        }
        let resolved = self.resolve(&class, &spec).await?;
        if let Some(img) = i.image_id()
            && !resolved.amis.values().any(|a| a.id == img)
        {
            return Ok(Some(format!(
                "image {img} is no longer selected by Ec2NodeClass {class}"
            )));
        }
        if let Some(s) = i.subnet_id()
            && !resolved.subnets.iter().any(|x| x.id == s)
        {
            return Ok(Some(format!(
                "subnet {s} is no longer selected by Ec2NodeClass {class}"
            )));
        }
        let sgs: BTreeSet<&str> = i
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id())
            .collect();
        let want: BTreeSet<&str> = resolved
            .security_groups
            .iter()
            .map(String::as_str)
            .collect();
        // An instance that reports no security groups (moto's fleet instances) is not judged.
        if !sgs.is_empty() && sgs != want {
            return Ok(Some(format!(
                "security groups {sgs:?} differ from those Ec2NodeClass {class} selects ({want:?})"
            )));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids() {
        assert_eq!(
            parse_provider_id("aws:///us-east-1a/i-0123"),
            Some(("us-east-1a", "i-0123"))
        );
        assert_eq!(
            provider_id("us-east-1a", "i-0123"),
            "aws:///us-east-1a/i-0123"
        );
        for bad in [
            "kwok://n1",
            "aws:///i-0123",
            "aws:///us-east-1a/",
            "aws:///z/x-1",
            "aws:///z/i-1/x",
            "aws:////i-1",
        ] {
            assert_eq!(parse_provider_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn client_options_are_checked() {
        let creds = StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        };
        let mut o = AwsOptions::new("us-east-1", "c1", creds.clone());
        o.endpoint = Some("127.0.0.1:25000".into());
        assert!(ec2_client(&o).unwrap_err().contains("not an http(s) URL"));
        let o = AwsOptions::new("", "c1", creds.clone());
        assert!(ec2_client(&o).unwrap_err().contains("region"));
        let e = AwsProvider::new(
            AwsOptions::new("us-east-1", "", creds),
            CatalogFile {
                zones: vec![],
                label_prefix: "x".into(),
                types: vec![],
            },
            NodeClasses::Fixed(BTreeMap::new()),
        )
        .err()
        .unwrap();
        assert!(e.contains("cluster name"), "{e}");
        assert!(!format!("{:?}", StaticCredentials::from_env().ok()).contains("secret"));
    }
}
