//! Spot interruptions in a run: the scenario's settings, the catalog's rates read as
//! interruptions per instance-day, and the draws of when a spot node is interrupted.
//!
//! Off unless the scenario sets `settings.spotInterruptions`: then a spot node is interrupted at
//! the times its `schedule` gives, and (with `random: true`) at a time drawn when it launches
//! from an exponential law of its offering's rate (a constant hazard: memoryless, as a per-day
//! rate implies). Draws come from their own generator seeded by the scenario's `seed`, so
//! enabling interruptions does not move the start-up jitter, and the same seed gives the same
//! interruptions.
//!
//! A band is the provider's advisor's "frequency of interruption": the share of a type's spot
//! instances interrupted over the trailing month. A band stands for its middle (`<5%` for 2.5%,
//! `5-10%` for 7.5% ... and the open `>20%` for 22.5%, as wide as the others), turned into a
//! constant hazard over a 30-day month: `per day = −ln(1 − share) ÷ 30`.

use crate::scenario::ScenarioError;
use ballast_scheduling::catalog::{CatalogFile, InterruptionRate};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// `settings.spotInterruptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpotInterruptions {
    /// Interrupt spot nodes at random, at their offering's rate (the catalog's
    /// `spotInterruptions`, else `defaultRate`).
    #[serde(default)]
    pub random: bool,
    /// The rate of spot offerings the catalog gives none; absent: those are never interrupted
    /// at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_rate: Option<InterruptionRate>,
    /// Interruptions at given times, whatever the rates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<ScheduledInterruption>,
    /// Seconds from the warning to the instance's end (EC2 gives two minutes).
    #[serde(default = "two_minutes")]
    pub notice_seconds: f64,
}

fn two_minutes() -> f64 {
    120.0
}

/// `count` spot nodes (the oldest first) matching the filters, interrupted `at` a time of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduledInterruption {
    /// When, from the start (a duration: `90m`).
    pub at: String,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

fn one() -> u32 {
    1
}
fn is_one(n: &u32) -> bool {
    *n == 1
}

/// The advisor's bands and the share of instances each stands for (its middle).
const BANDS: [(&str, f64); 5] = [
    ("<5%", 0.025),
    ("5-10%", 0.075),
    ("10-15%", 0.125),
    ("15-20%", 0.175),
    (">20%", 0.225),
];

/// Days in the month a band is measured over.
const MONTH_DAYS: f64 = 30.0;

/// Interruptions per instance-day of `rate` in `zone`; `None` when the rate leaves the zone out.
pub fn per_day(rate: &InterruptionRate, zone: &str) -> Result<Option<f64>, String> {
    match rate {
        InterruptionRate::PerDay(x) if x.is_finite() && *x >= 0.0 => Ok(Some(*x)),
        InterruptionRate::PerDay(x) => Err(format!("{x} is not a rate (interruptions per day)")),
        InterruptionRate::Band(b) => {
            let share = BANDS
                .iter()
                .find(|(name, _)| name == &b.trim())
                .map(|(_, share)| *share)
                .ok_or_else(|| {
                    let names: Vec<&str> = BANDS.iter().map(|(n, _)| *n).collect();
                    format!(
                        "{b:?} is not a band (one of {}) nor a number of interruptions per day",
                        names.join(", ")
                    )
                })?;
            Ok(Some(-(1.0 - share).ln() / MONTH_DAYS))
        }
        InterruptionRate::ByZone(zones) => match zones.get(zone) {
            Some(InterruptionRate::ByZone(_)) => {
                Err(format!("{zone}: a zone's rate is a band or a number"))
            }
            Some(r) => per_day(r, zone),
            None => Ok(None),
        },
    }
}

/// Every spot offering's rate per instance-day, by (instance type, zone): the catalog's, else
/// `default`. An offering left out is never interrupted at random.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpotRates {
    per_day: BTreeMap<(String, String), f64>,
}

impl SpotRates {
    /// Reads the rates of `catalog` (written in `file`, `field` the catalog's place there), the
    /// error naming the type's field.
    pub fn read(
        catalog: &CatalogFile,
        default: Option<&InterruptionRate>,
        file: &Path,
        field: &str,
    ) -> Result<SpotRates, ScenarioError> {
        let mut per_day_of = BTreeMap::new();
        for (i, t) in catalog.types.iter().enumerate() {
            let at = format!("{field}types[{i}].spotInterruptions");
            if let Some(InterruptionRate::ByZone(zones)) = &t.spot_interruptions
                && let Some(z) = zones.keys().find(|z| !catalog.zones.contains(z))
            {
                return Err(ScenarioError::invalid(
                    file,
                    at,
                    format!("zone {z} is not in the catalog's zones"),
                ));
            }
            for zone in t.spot.keys() {
                let own = match &t.spot_interruptions {
                    Some(r) => {
                        per_day(r, zone).map_err(|m| ScenarioError::invalid(file, &at, m))?
                    }
                    None => None,
                };
                // The default was checked for every zone with the settings.
                let rate = own.or_else(|| default.and_then(|d| per_day(d, zone).ok().flatten()));
                if let Some(r) = rate {
                    per_day_of.insert((t.name.clone(), zone.clone()), r);
                }
            }
        }
        Ok(SpotRates {
            per_day: per_day_of,
        })
    }

    /// Interruptions per instance-day of the spot offering of `instance_type` in `zone`.
    pub fn of(&self, instance_type: &str, zone: &str) -> Option<f64> {
        self.per_day
            .get(&(instance_type.to_string(), zone.to_string()))
            .copied()
    }
}

/// The rates of a variant: the catalog's (written in `catalog_at`: file and field prefix), else
/// the settings' `defaultRate`, after checking the settings of the scenario at `path`.
pub fn rates(
    settings: &crate::scenario::Settings,
    catalog: &CatalogFile,
    path: &Path,
    catalog_at: &(std::path::PathBuf, &str),
) -> Result<SpotRates, ScenarioError> {
    let default = match &settings.spot_interruptions {
        Some(s) => {
            check(s, catalog, path)?;
            s.default_rate.as_ref()
        }
        None => None,
    };
    SpotRates::read(catalog, default, &catalog_at.0, catalog_at.1)
}

/// Checks the settings of a scenario read from `file`: each scheduled time a duration, the
/// default rate one for every zone of `catalog`.
fn check(
    settings: &SpotInterruptions,
    catalog: &CatalogFile,
    file: &Path,
) -> Result<(), ScenarioError> {
    if let Some(d) = &settings.default_rate {
        for z in &catalog.zones {
            per_day(d, z).map_err(|m| {
                ScenarioError::invalid(file, "settings.spotInterruptions.defaultRate", m)
            })?;
        }
    }
    for (i, s) in settings.schedule.iter().enumerate() {
        ballast_api::common::parse_duration_seconds(&s.at).map_err(|e| {
            ScenarioError::invalid(
                file,
                format!("settings.spotInterruptions.schedule[{i}].at"),
                e.to_string(),
            )
        })?;
    }
    if !settings.notice_seconds.is_finite() || settings.notice_seconds < 0.0 {
        return Err(ScenarioError::invalid(
            file,
            "settings.spotInterruptions.noticeSeconds",
            format!("{} is not a number of seconds", settings.notice_seconds),
        ));
    }
    Ok(())
}

/// The generator of interruption times: its own stream of the scenario's seed, so the start-up
/// jitter draws the same numbers with interruptions on or off.
pub(crate) fn generator(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    rng
}

/// Seconds until an instance with `per_day` interruptions per day is interrupted: an
/// exponential draw (`None` when the rate is 0).
pub(crate) fn draw_seconds(rng: &mut ChaCha8Rng, per_day: f64) -> Option<f64> {
    use rand::RngExt;
    if per_day <= 0.0 {
        return None;
    }
    // 1 − u lies in (0, 1]: its logarithm is finite.
    let u: f64 = rng.random::<f64>();
    Some(-(1.0 - u).ln() / per_day * 86_400.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_numbers_read_as_rates_per_day() {
        let band = |b: &str| per_day(&InterruptionRate::Band(b.into()), "a");
        // A band's middle share over 30 days: 1 − e^(−30 × rate) gives it back.
        for (b, share) in [("<5%", 0.025), ("5-10%", 0.075), (">20%", 0.225)] {
            let r = band(b).unwrap().unwrap();
            assert!((1.0 - (-30.0 * r).exp() - share).abs() < 1e-12, "{b}: {r}");
        }
        assert_eq!(per_day(&InterruptionRate::PerDay(0.5), "a"), Ok(Some(0.5)));
        let e = band("7%").unwrap_err();
        assert!(e.contains("\"7%\"") && e.contains("5-10%"), "{e}");
        assert!(per_day(&InterruptionRate::PerDay(-1.0), "a").is_err());
        let zoned = InterruptionRate::ByZone(BTreeMap::from([(
            "a".to_string(),
            InterruptionRate::PerDay(2.0),
        )]));
        assert_eq!(per_day(&zoned, "a"), Ok(Some(2.0)));
        assert_eq!(per_day(&zoned, "b"), Ok(None));
    }

    #[test]
    fn catalog_rates_name_the_bad_field() {
        let catalog: CatalogFile = serde_yaml::from_str(
            "zones: [a, b]\ntypes:\n- {name: m.large, vcpu: 2, memory: 8Gi, pods: 29, onDemand: 0.1, spot: {a: 0.03, b: 0.04}, spotInterruptions: {a: \"5-10%\", b: 1}}\n- {name: m.xlarge, vcpu: 4, memory: 16Gi, pods: 58, onDemand: 0.2, spot: {a: 0.06}}\n",
        )
        .unwrap();
        let rates = SpotRates::read(&catalog, None, Path::new("c.yaml"), "").unwrap();
        assert_eq!(rates.of("m.large", "b"), Some(1.0));
        assert!(rates.of("m.large", "a").is_some());
        assert_eq!(rates.of("m.xlarge", "a"), None);
        let with_default = SpotRates::read(
            &catalog,
            Some(&InterruptionRate::PerDay(3.0)),
            Path::new("c.yaml"),
            "",
        )
        .unwrap();
        assert_eq!(with_default.of("m.xlarge", "a"), Some(3.0));
        let mut bad = catalog.clone();
        bad.types[1].spot_interruptions = Some(InterruptionRate::Band("often".into()));
        let e = SpotRates::read(&bad, None, Path::new("c.yaml"), "catalog.")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.yaml: catalog.types[1].spotInterruptions: \"often\""),
            "{e}"
        );
        bad.types[1].spot_interruptions = Some(InterruptionRate::ByZone(BTreeMap::from([(
            "z".to_string(),
            InterruptionRate::PerDay(1.0),
        )])));
        let e = SpotRates::read(&bad, None, Path::new("c.yaml"), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("zone z is not in the catalog's zones"), "{e}");
    }

    #[test]
    fn draws_are_seeded_and_follow_the_rate() {
        let draws = |seed| {
            let mut rng = generator(seed);
            (0..4000)
                .map(|_| draw_seconds(&mut rng, 2.0).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        // The mean of an exponential law of 2 a day is half a day (within 5% over 4,000 draws).
        let mean = draws(7).iter().sum::<f64>() / 4000.0;
        assert!((mean - 43_200.0).abs() < 0.05 * 43_200.0, "{mean}");
        assert_eq!(draw_seconds(&mut generator(1), 0.0), None);
    }
}
