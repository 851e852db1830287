//! A container's state to and from `VerticalAutoscalerCheckpoint` status.
//!
//! The round trip is exact: weights, totals and costs are kept as they are (a JSON number holds
//! an `f64` exactly), times are whole seconds, so a restored state recommends the very same values.

use ballast_api::common::Time;
use ballast_api::vertical::{
    AdaptiveCheckpoint, CandidatesCheckpoint, HistogramCheckpoint,
    VerticalAutoscalerCheckpointStatus, WindowPeaksCheckpoint,
};
use jiff::Timestamp;

use crate::adaptive::{AdaptiveState, ModelSet};
use crate::aggregate::ContainerState;
use crate::error::Error;
use crate::histogram::DecayingHistogram;
use crate::settings::Settings;
use crate::window::WindowPeaks;

/// Format version written in `status.version`.
pub const VERSION: &str = "ballast/v1";

fn time(seconds: i64) -> Option<Time> {
    if seconds == 0 {
        return None;
    }
    Timestamp::from_second(seconds).ok().map(Time)
}

fn seconds(t: &Option<Time>) -> i64 {
    t.as_ref().map_or(0, |t| t.0.as_second())
}

fn save_histogram(h: &DecayingHistogram) -> HistogramCheckpoint {
    HistogramCheckpoint {
        reference_timestamp: time(h.reference()),
        bucket_weights: h.buckets().map(|(i, w)| (i.to_string(), w)).collect(),
        total_weight: h.total_weight(),
    }
}

fn restore_histogram(
    c: &HistogramCheckpoint,
    half_life: i64,
    object: &str,
    field: &str,
) -> Result<DecayingHistogram, Error> {
    let mut buckets = Vec::with_capacity(c.bucket_weights.len());
    for (key, weight) in &c.bucket_weights {
        let index: u16 = key
            .parse()
            .ok()
            .filter(|i| *i < crate::aggregate::CPU.count)
            .ok_or_else(|| {
                Error::invalid(
                    object,
                    &format!("{field}.bucketWeights"),
                    format!("{key:?} is not a bucket index (0..175)"),
                )
            })?;
        if !weight.is_finite() || *weight < 0.0 {
            return Err(Error::invalid(
                object,
                &format!("{field}.bucketWeights.{key}"),
                format!("{weight} is not a weight"),
            ));
        }
        buckets.push((index, *weight));
    }
    Ok(DecayingHistogram::from_parts(
        half_life,
        seconds(&c.reference_timestamp),
        &buckets,
        c.total_weight,
    ))
}

fn save_windows(w: &WindowPeaks) -> Option<WindowPeaksCheckpoint> {
    if w.is_empty() {
        return None;
    }
    let ((start, peak), _) = w.parts();
    Some(WindowPeaksCheckpoint {
        open_start: time(start),
        open_peak: peak,
        closed_peaks: w.closed_peaks().to_vec(),
    })
}

fn restore_windows(
    c: &Option<WindowPeaksCheckpoint>,
    object: &str,
    field: &str,
) -> Result<WindowPeaks, Error> {
    let Some(c) = c else {
        return Ok(WindowPeaks::new());
    };
    let peaks = std::iter::once(&c.open_peak).chain(&c.closed_peaks);
    if let Some(bad) = peaks.into_iter().find(|p| !p.is_finite() || **p < 0.0) {
        return Err(Error::invalid(
            object,
            field,
            format!("{bad} is not a usage peak"),
        ));
    }
    let open = seconds(&c.open_start);
    let closed: Vec<(i64, f64)> = c
        .closed_peaks
        .iter()
        .enumerate()
        .map(|(j, p)| (open - (j as i64 + 1) * crate::window::WINDOW_SECONDS, *p))
        .collect();
    Ok(WindowPeaks::from_parts((open, c.open_peak), &closed))
}

fn save_models(m: &ModelSet) -> CandidatesCheckpoint {
    CandidatesCheckpoint {
        limits: m.limits.clone(),
        costs: m.costs.clone(),
        chosen: m.chosen as u32,
        last_sample: time(m.last_sample),
        last_refresh: time(m.last_refresh),
    }
}

fn restore_models(
    c: &CandidatesCheckpoint,
    count: usize,
    object: &str,
    field: &str,
) -> Result<ModelSet, Error> {
    if c.limits.len() != count || c.costs.len() != count || c.chosen as usize >= count {
        return Err(Error::invalid(
            object,
            field,
            format!("expected {count} candidates (limits, costs and a chosen index below it)"),
        ));
    }
    Ok(ModelSet {
        limits: c.limits.clone(),
        costs: c.costs.clone(),
        chosen: c.chosen as usize,
        last_sample: seconds(&c.last_sample),
        last_refresh: seconds(&c.last_refresh),
    })
}

/// The checkpoint status of `state`, written at `now`.
pub fn save(state: &ContainerState, now: Timestamp) -> VerticalAutoscalerCheckpointStatus {
    let adaptive = state.adaptive().map(|a| {
        let (cpu_short, memory_short) = a.short_histograms();
        let (cpu, memory) = a.model_sets();
        AdaptiveCheckpoint {
            cpu_short_histogram: save_histogram(cpu_short),
            memory_short_histogram: save_histogram(memory_short),
            cpu_windows: save_windows(&a.cpu_windows),
            memory_windows: save_windows(&a.memory_windows),
            cpu: save_models(cpu),
            memory: save_models(memory),
        }
    });
    VerticalAutoscalerCheckpointStatus {
        last_update_time: Some(Time(now)),
        version: Some(VERSION.to_string()),
        cpu_histogram: Some(save_histogram(&state.cpu)),
        memory_histogram: Some(save_histogram(&state.memory)),
        first_sample_start: time(state.first_sample),
        last_sample_start: time(state.last_sample),
        total_samples_count: state.samples as i64,
        memory_peak: Some(state.memory_peak).filter(|p| *p > 0.0),
        memory_interval_end: time(state.memory_window_end),
        adaptive,
    }
}

/// The state saved in `status` of the checkpoint `object`, with the half-lives of `settings`.
/// A checkpoint without Adaptive state restored in Adaptive mode starts its candidates afresh.
pub fn restore(
    status: &VerticalAutoscalerCheckpointStatus,
    settings: &Settings,
    object: &str,
) -> Result<ContainerState, Error> {
    let mut state = ContainerState::new(settings);
    if let Some(c) = &status.cpu_histogram {
        state.cpu = restore_histogram(
            c,
            settings.cpu.half_life_seconds,
            object,
            "status.cpuHistogram",
        )?;
    }
    if let Some(c) = &status.memory_histogram {
        state.memory = restore_histogram(
            c,
            settings.memory.half_life_seconds,
            object,
            "status.memoryHistogram",
        )?;
    }
    state.first_sample = seconds(&status.first_sample_start);
    state.last_sample = seconds(&status.last_sample_start);
    state.samples = status.total_samples_count.max(0) as u64;
    state.memory_peak = status.memory_peak.unwrap_or(0.0);
    state.memory_window_end = seconds(&status.memory_interval_end);
    if let (Some(a), Some(c)) = (state.adaptive.as_mut(), &status.adaptive) {
        **a = restore_adaptive(c, settings, object)?;
    }
    Ok(state)
}

fn restore_adaptive(
    c: &AdaptiveCheckpoint,
    settings: &Settings,
    object: &str,
) -> Result<AdaptiveState, Error> {
    let mut a = AdaptiveState::new(settings);
    let f = "status.adaptive";
    a.cpu_short = restore_histogram(
        &c.cpu_short_histogram,
        a.cpu_short.half_life(),
        object,
        &format!("{f}.cpuShortHistogram"),
    )?;
    a.memory_short = restore_histogram(
        &c.memory_short_histogram,
        a.memory_short.half_life(),
        object,
        &format!("{f}.memoryShortHistogram"),
    )?;
    a.cpu_windows = restore_windows(&c.cpu_windows, object, &format!("{f}.cpuWindows"))?;
    a.memory_windows = restore_windows(&c.memory_windows, object, &format!("{f}.memoryWindows"))?;
    a.cpu = restore_models(&c.cpu, a.cpu.limits.len(), object, &format!("{f}.cpu"))?;
    a.memory = restore_models(
        &c.memory,
        a.memory.limits.len(),
        object,
        &format!("{f}.memory"),
    )?;
    Ok(a)
}
