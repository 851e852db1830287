//! A container's resource policy: whether it is sized, which resources, and the caps.
//!
//! The policy whose `containerName` equals the container's wins over the `"*"` one. `mode: Off`
//! leaves the container out. `controlledResources` (default cpu and memory) says which resources
//! get a recommendation. `minAllowed`/`maxAllowed` cap target and both bounds; the target before
//! capping is kept as `uncappedTarget`. `controlledValues` only matters when requests are applied
//! (whether limits follow): [`scaled_limit`] says how.

use ballast_api::common::parse_quantity;
use ballast_api::vertical::{
    ContainerResourcePolicy, ContainerScalingMode, ControlledValues, VerticalAutoscalerSpec,
};

use crate::error::Error;
use crate::estimate::Estimate;

/// A resource the core sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Cpu,
    Memory,
}

impl Resource {
    /// The Kubernetes resource name.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
        }
    }
}

/// The parsed policy of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPolicy {
    /// False: `mode: Off`, no recommendation.
    pub enabled: bool,
    pub cpu: bool,
    pub memory: bool,
    /// (min, max) allowed per resource, base units.
    pub cpu_range: (Option<f64>, Option<f64>),
    pub memory_range: (Option<f64>, Option<f64>),
    pub controlled_values: ControlledValues,
    /// `containerName` of the policy used ("*" or the container's), None for the default.
    pub source: Option<String>,
}

impl Default for ContainerPolicy {
    fn default() -> ContainerPolicy {
        ContainerPolicy {
            enabled: true,
            cpu: true,
            memory: true,
            cpu_range: (None, None),
            memory_range: (None, None),
            controlled_values: ControlledValues::RequestsAndLimits,
            source: None,
        }
    }
}

/// The policy of `container` in the object `name`.
pub fn container_policy(
    spec: &VerticalAutoscalerSpec,
    name: &str,
    container: &str,
) -> Result<ContainerPolicy, Error> {
    let policies = spec
        .resource_policy
        .as_ref()
        .map(|p| p.container_policies.as_slice())
        .unwrap_or_default();
    let exact = policies
        .iter()
        .position(|p| p.container_name.as_deref() == Some(container));
    match exact {
        Some(index) => parse(&policies[index], name, index),
        None => fallback_policy(spec, name),
    }
}

/// The policy of a container no policy names: the `"*"` one, or the default.
pub fn fallback_policy(
    spec: &VerticalAutoscalerSpec,
    name: &str,
) -> Result<ContainerPolicy, Error> {
    let policies = spec
        .resource_policy
        .as_ref()
        .map(|p| p.container_policies.as_slice())
        .unwrap_or_default();
    let wildcard = policies
        .iter()
        .position(|p| matches!(p.container_name.as_deref(), None | Some("*")));
    match wildcard {
        Some(index) => parse(&policies[index], name, index),
        None => Ok(ContainerPolicy::default()),
    }
}

fn parse(p: &ContainerResourcePolicy, name: &str, index: usize) -> Result<ContainerPolicy, Error> {
    let field = |leaf: &str| format!("spec.resourcePolicy.containerPolicies[{index}].{leaf}");
    let mut out = ContainerPolicy {
        enabled: p.mode != Some(ContainerScalingMode::Off),
        controlled_values: p.controlled_values.unwrap_or_default(),
        source: Some(p.container_name.clone().unwrap_or_else(|| "*".into())),
        ..ContainerPolicy::default()
    };
    if !p.controlled_resources.is_empty() {
        out.cpu = p.controlled_resources.iter().any(|r| r == "cpu");
        out.memory = p.controlled_resources.iter().any(|r| r == "memory");
    }
    let read =
        |list: &Option<ballast_api::vertical::ResourceList>, leaf: &str, resource: &str| match list
            .as_ref()
            .and_then(|l| l.get(resource))
        {
            None => Ok(None),
            Some(q) => parse_quantity(&q.0).map(Some).map_err(|e| {
                Error::invalid(name, &field(&format!("{leaf}.{resource}")), e.to_string())
            }),
        };
    out.cpu_range = (
        read(&p.min_allowed, "minAllowed", "cpu")?,
        read(&p.max_allowed, "maxAllowed", "cpu")?,
    );
    out.memory_range = (
        read(&p.min_allowed, "minAllowed", "memory")?,
        read(&p.max_allowed, "maxAllowed", "memory")?,
    );
    for (range, resource) in [(out.cpu_range, "cpu"), (out.memory_range, "memory")] {
        if let (Some(min), Some(max)) = range
            && min > max
        {
            return Err(Error::invalid(
                name,
                &field(&format!("minAllowed.{resource}")),
                format!("{min} exceeds maxAllowed {max}"),
            ));
        }
    }
    Ok(out)
}

impl ContainerPolicy {
    /// Whether `resource` gets a recommendation.
    pub fn controls(&self, resource: Resource) -> bool {
        self.enabled
            && match resource {
                Resource::Cpu => self.cpu,
                Resource::Memory => self.memory,
            }
    }

    /// The (min, max) allowed of `resource`.
    pub fn range(&self, resource: Resource) -> (Option<f64>, Option<f64>) {
        match resource {
            Resource::Cpu => self.cpu_range,
            Resource::Memory => self.memory_range,
        }
    }

    /// `estimate` with every value inside [minAllowed, maxAllowed] of `resource`.
    pub fn cap(&self, resource: Resource, estimate: Estimate) -> Estimate {
        let (min, max) = self.range(resource);
        let clamp = |v: f64| {
            let v = min.map_or(v, |m| v.max(m));
            max.map_or(v, |m| v.min(m))
        };
        Estimate {
            target: clamp(estimate.target),
            lower: clamp(estimate.lower),
            upper: clamp(estimate.upper),
        }
    }
}

/// The limit to set with a new request: with RequestsAndLimits the original limit-to-request
/// ratio is kept; with RequestsOnly the original limit stays. None: no limit.
pub fn scaled_limit(
    controlled: ControlledValues,
    original_request: f64,
    original_limit: Option<f64>,
    new_request: f64,
) -> Option<f64> {
    let limit = original_limit?;
    match controlled {
        ControlledValues::RequestsOnly => Some(limit),
        ControlledValues::RequestsAndLimits if original_request > 0.0 => {
            Some(new_request * limit / original_request)
        }
        ControlledValues::RequestsAndLimits => Some(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_api::vertical::ResourcePolicy;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn spec(policies: Vec<ContainerResourcePolicy>) -> VerticalAutoscalerSpec {
        VerticalAutoscalerSpec {
            resource_policy: Some(ResourcePolicy {
                container_policies: policies,
            }),
            ..Default::default()
        }
    }

    fn list(pairs: &[(&str, &str)]) -> Option<ballast_api::vertical::ResourceList> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        )
    }

    #[test]
    fn exact_name_wins_over_wildcard() {
        let s = spec(vec![
            ContainerResourcePolicy {
                container_name: Some("*".into()),
                mode: Some(ContainerScalingMode::Off),
                ..Default::default()
            },
            ContainerResourcePolicy {
                container_name: Some("app".into()),
                controlled_resources: vec!["memory".into()],
                ..Default::default()
            },
        ]);
        let app = container_policy(&s, "web", "app").unwrap();
        assert!(app.controls(Resource::Memory) && !app.controls(Resource::Cpu));
        let sidecar = container_policy(&s, "web", "sidecar").unwrap();
        assert!(!sidecar.enabled);
        let none = container_policy(&VerticalAutoscalerSpec::default(), "web", "x").unwrap();
        assert_eq!(none, ContainerPolicy::default());
    }

    #[test]
    fn capping_table() {
        let s = spec(vec![ContainerResourcePolicy {
            min_allowed: list(&[("cpu", "100m")]),
            max_allowed: list(&[("cpu", "1"), ("memory", "1Gi")]),
            ..Default::default()
        }]);
        let p = container_policy(&s, "web", "app").unwrap();
        let e = |t, l, u| Estimate {
            target: t,
            lower: l,
            upper: u,
        };
        let cases = [
            (Resource::Cpu, e(0.5, 0.05, 2.0), e(0.5, 0.1, 1.0)),
            (Resource::Cpu, e(0.01, 0.01, 0.02), e(0.1, 0.1, 0.1)),
            (
                Resource::Memory,
                e(2e9, 1e8, 3e9),
                e(1073741824.0, 1e8, 1073741824.0),
            ),
        ];
        for (r, input, want) in cases {
            assert_eq!(p.cap(r, input), want, "{r:?}");
        }
    }

    #[test]
    fn bad_quantities_name_the_field() {
        let s = spec(vec![ContainerResourcePolicy {
            max_allowed: list(&[("cpu", "lots")]),
            ..Default::default()
        }]);
        let err = container_policy(&s, "web", "app").unwrap_err().to_string();
        assert!(
            err.contains("web: spec.resourcePolicy.containerPolicies[0].maxAllowed.cpu"),
            "{err}"
        );
        let s = spec(vec![ContainerResourcePolicy {
            min_allowed: list(&[("memory", "2Gi")]),
            max_allowed: list(&[("memory", "1Gi")]),
            ..Default::default()
        }]);
        assert!(container_policy(&s, "web", "app").is_err());
    }

    #[test]
    fn limits_follow_requests_when_asked() {
        let c = ControlledValues::RequestsAndLimits;
        assert_eq!(scaled_limit(c, 1.0, Some(2.0), 0.5), Some(1.0));
        assert_eq!(scaled_limit(c, 1.0, None, 0.5), None);
        assert_eq!(
            scaled_limit(ControlledValues::RequestsOnly, 1.0, Some(2.0), 0.5),
            Some(2.0)
        );
    }
}
