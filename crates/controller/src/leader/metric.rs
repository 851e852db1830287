//! The leader gauge: `<prefix>_leader` is 1 while this process leads and 0 while it stands by,
//! read from [`Leadership`] at each scrape (so it never lags the renew deadline).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Leadership;

/// A collector answering whether this process leads.
#[derive(Debug)]
struct LeaderGauge(Leadership);

impl Collector for LeaderGauge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(i64::from(self.0.is_leading()));
        let metric = encoder.encode_descriptor(
            "leader",
            "1 while this process leads (holds the Lease, or runs without leader election), 0 while it stands by.",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

/// Registers `<prefix>_leader` (e.g. `ballast_horizontal_leader`) in `registry`.
pub fn register(registry: &mut Registry, prefix: &str, leadership: Leadership) {
    registry
        .sub_registry_with_prefix(prefix)
        .register_collector(Box::new(LeaderGauge(leadership)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauge_follows_the_leadership() {
        let mut registry = Registry::default();
        register(&mut registry, "ballast_nodes", Leadership::always());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE ballast_nodes_leader gauge"), "{text}");
        assert!(text.contains("\nballast_nodes_leader 1\n"), "{text}");
        let mut registry = Registry::default();
        register(&mut registry, "ballast_nodes", Leadership::standby());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("\nballast_nodes_leader 0\n"), "{text}");
    }
}
