//! Replays usage series in virtual time to measure an estimator.
//!
//! Each series is one single-container workload. Every `step` the recommender runs on the history
//! seen so far; each later sample is scored against the current target once the warm-up is over:
//! relative slack `max(0, target − usage) ÷ target`, and whether usage is above the target (CPU:
//! throttling; memory: an OOM kill). A pod's requests start at the first target after the warm-up;
//! a later recommendation whose bounds no longer hold the requests (of either resource) evicts the
//! pod, as the VPA updater decides, and the requests become the new target.

use ballast_api::vertical::{EstimatorMode, VerticalAutoscalerSpec};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use statrs::statistics::Statistics;

use crate::aggregate::ContainerState;
use crate::error::Error;
use crate::recommend::{ResourceRecommendation, TrackedContainer, recommend_with};
use crate::series::Series;
use crate::settings::Settings;

/// How a replay runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayOptions {
    /// Seconds between two recommendations.
    pub step_seconds: i64,
    /// Seconds from a series' first sample before scoring starts.
    pub warmup_seconds: i64,
    /// Seconds between samples of the series (sets the confidence's samples per day).
    pub sample_seconds: i64,
    /// Keep the per-pod floors (25m, 250Mi); false sets them to zero in both modes, to compare
    /// the estimators alone.
    pub floors: bool,
}

impl Default for ReplayOptions {
    /// A recommendation every 5 minutes, one day of warm-up, 5-minute samples.
    fn default() -> ReplayOptions {
        ReplayOptions {
            step_seconds: 300,
            warmup_seconds: 86_400,
            sample_seconds: 300,
            floors: true,
        }
    }
}

/// Sums over the scored samples of one or more series.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    pub series: usize,
    pub samples: u64,
    pub cpu_slack_sum: f64,
    pub memory_slack_sum: f64,
    pub cpu_over: u64,
    pub memory_over: u64,
    pub evictions: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.series += other.series;
        self.samples += other.samples;
        self.cpu_slack_sum += other.cpu_slack_sum;
        self.memory_slack_sum += other.memory_slack_sum;
        self.cpu_over += other.cpu_over;
        self.memory_over += other.memory_over;
        self.evictions += other.evictions;
    }

    /// Mean relative CPU slack over the scored samples.
    pub fn cpu_slack(&self) -> f64 {
        self.cpu_slack_sum / self.samples.max(1) as f64
    }

    /// Mean relative memory slack over the scored samples.
    pub fn memory_slack(&self) -> f64 {
        self.memory_slack_sum / self.samples.max(1) as f64
    }

    /// Mean of the CPU and memory slack.
    pub fn slack(&self) -> f64 {
        [self.cpu_slack(), self.memory_slack()].iter().mean()
    }

    /// Share of scored samples with CPU usage above the target.
    pub fn cpu_over_share(&self) -> f64 {
        self.cpu_over as f64 / self.samples.max(1) as f64
    }

    /// Share of scored samples with memory usage above the target.
    pub fn memory_over_share(&self) -> f64 {
        self.memory_over as f64 / self.samples.max(1) as f64
    }
}

/// The applied requests and the latest recommendation of a replayed pod.
#[derive(Default)]
struct Pod {
    cpu: Option<ResourceRecommendation>,
    memory: Option<ResourceRecommendation>,
    requests: Option<(f64, f64)>,
}

impl Pod {
    /// Takes a new recommendation; true when it evicts the pod.
    fn update(&mut self, cpu: ResourceRecommendation, memory: ResourceRecommendation) -> bool {
        self.cpu = Some(cpu);
        self.memory = Some(memory);
        let outside = |request: f64, r: &ResourceRecommendation| {
            request < r.lower_bound || request > r.upper_bound
        };
        match self.requests {
            None => {
                self.requests = Some((cpu.target, memory.target));
                false
            }
            Some((c, m)) if outside(c, &cpu) || outside(m, &memory) => {
                self.requests = Some((cpu.target, memory.target));
                true
            }
            Some(_) => false,
        }
    }
}

/// Replays one series with `settings`.
pub fn replay(
    series: &Series,
    settings: &Settings,
    options: &ReplayOptions,
) -> Result<Tally, Error> {
    let spec = VerticalAutoscalerSpec::default();
    let mut state = ContainerState::new(settings);
    let mut tally = Tally {
        series: 1,
        ..Tally::default()
    };
    let Some(first) = series.points.first() else {
        return Ok(tally);
    };
    let score_from = first.at + options.warmup_seconds;
    let mut next = first.at;
    let mut pod = Pod::default();
    for p in &series.points {
        if p.at >= next {
            next = p.at + options.step_seconds;
            let now = Timestamp::from_second(p.at).map_err(|e| Error::Series {
                file: series.name.clone(),
                line: 0,
                why: format!("timestamp {}: {e}", p.at),
            })?;
            let tracked = [TrackedContainer {
                name: "main",
                state: &state,
            }];
            let r = recommend_with(&spec, &series.name, settings, &tracked, now)?;
            if let Some(c) = r.containers.first()
                && let (Some(cpu), Some(memory)) = (c.cpu, c.memory)
                && p.at >= score_from
                && pod.update(cpu, memory)
            {
                tally.evictions += 1;
            }
        }
        if p.at >= score_from
            && let (Some(cpu), Some(memory)) = (pod.cpu, pod.memory)
        {
            tally.samples += 1;
            tally.cpu_slack_sum += slack(cpu.target, p.cpu);
            tally.memory_slack_sum += slack(memory.target, p.memory);
            tally.cpu_over += u64::from(p.cpu > cpu.target);
            tally.memory_over += u64::from(p.memory > memory.target);
        }
        state.add_cpu(p.at, p.cpu, 0.0);
        state.add_memory(p.at, p.memory);
    }
    Ok(tally)
}

/// Relative slack of one sample: `max(0, target − usage) ÷ target`, 0 for a target of 0.
pub(crate) fn slack(target: f64, usage: f64) -> f64 {
    if target <= 0.0 {
        return 0.0;
    }
    ((target - usage) / target).max(0.0)
}

/// The settings of a mode for series sampled every `options.sample_seconds`.
pub fn settings_for(mode: EstimatorMode, options: &ReplayOptions) -> Settings {
    let defaults = Settings::default();
    let floor = |v: f64| if options.floors { v } else { 0.0 };
    Settings {
        mode,
        samples_per_day: 86_400.0 / options.sample_seconds.max(1) as f64,
        pod_min_cpu: floor(defaults.pod_min_cpu),
        pod_min_memory: floor(defaults.pod_min_memory),
        ..defaults
    }
}

/// One mode's figures over every series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeResult {
    pub mode: EstimatorMode,
    pub tally: Tally,
}

/// Replays every series in both modes.
pub fn evaluate(series: &[Series], options: &ReplayOptions) -> Result<Vec<ModeResult>, Error> {
    let mut out = Vec::new();
    for mode in [EstimatorMode::Percentile, EstimatorMode::Adaptive] {
        let settings = settings_for(mode, options);
        let mut tally = Tally::default();
        for s in series {
            tally.add(&replay(s, &settings, options)?);
        }
        out.push(ModeResult { mode, tally });
    }
    Ok(out)
}

/// The series at even positions (0, 2, 4, … in the given order) and those at odd positions: the
/// Adaptive mode's cost weights were tuned on the even half of the development traces, so the odd
/// half shows whether they hold on series they were not fitted to.
pub fn halves(series: &[Series]) -> (Vec<Series>, Vec<Series>) {
    let pick = |parity: usize| {
        series
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, s)| s.clone())
            .collect()
    };
    (pick(0), pick(1))
}

/// The results as a plain-text table, with the Adaptive mode's change against Percentile.
pub fn table(results: &[ModeResult]) -> String {
    let mut out = format!(
        "{:<11} {:>6} {:>9} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}\n",
        "mode",
        "series",
        "samples",
        "cpu slack",
        "mem slack",
        "slack",
        "cpu over",
        "mem over",
        "evictions"
    );
    for r in results {
        let t = &r.tally;
        out.push_str(&format!(
            "{:<11} {:>6} {:>9} {:>9.1}% {:>9.1}% {:>9.1}% {:>8.2}% {:>8.3}% {:>9}\n",
            format!("{:?}", r.mode),
            t.series,
            t.samples,
            100.0 * t.cpu_slack(),
            100.0 * t.memory_slack(),
            100.0 * t.slack(),
            100.0 * t.cpu_over_share(),
            100.0 * t.memory_over_share(),
            t.evictions
        ));
    }
    if let [base, ours] = results {
        let change = |a: f64, b: f64| if a > 0.0 { 100.0 * (b - a) / a } else { 0.0 };
        out.push_str(&format!(
            "{:?} vs {:?}: slack {:+.1}% (cpu {:+.1}%, memory {:+.1}%), cpu overruns {:+.1}%, memory overruns {:+.1}%, evictions {:+.1}%\n",
            ours.mode,
            base.mode,
            change(base.tally.slack(), ours.tally.slack()),
            change(base.tally.cpu_slack(), ours.tally.cpu_slack()),
            change(base.tally.memory_slack(), ours.tally.memory_slack()),
            change(base.tally.cpu_over_share(), ours.tally.cpu_over_share()),
            change(base.tally.memory_over_share(), ours.tally.memory_over_share()),
            change(base.tally.evictions as f64, ours.tally.evictions as f64),
        ));
    }
    out
}
