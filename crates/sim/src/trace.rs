//! Load over time and batch pod lists.

use crate::scenario::{BatchSource, LoadSpec, ScenarioError};
use ballast_scheduling::model::{Resources, Toleration};
use std::path::{Path, PathBuf};

/// A time series read from a CSV file, linearly interpolated.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// (seconds, value), sorted by time.
    pub points: Vec<(f64, f64)>,
    /// Loop with this period (the last point's time), if set.
    pub period: Option<f64>,
}

impl Trace {
    /// Reads `time,value` rows; a first row that does not parse is a header. A time is seconds
    /// from the start or `HH:MM[:SS]`, or an instant (RFC 3339, or Unix seconds as exports from
    /// Prometheus or CloudWatch give them), counted from the first row's; one trace uses one kind.
    pub fn read_csv(path: &Path, repeat: bool, scale: f64) -> Result<Trace, ScenarioError> {
        let text = crate::bundle::read(path)?;
        let mut points = Vec::new();
        // The first row's instant, when the rows give instants.
        let mut first_instant: Option<f64> = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut cols = line.split(',');
            let (t, v) = (
                cols.next().unwrap_or("").trim(),
                cols.next().unwrap_or("").trim(),
            );
            let time = match (parse_instant(t), first_instant) {
                (Some(at), Some(first)) => Some(at - first),
                (Some(at), None) if points.is_empty() => {
                    first_instant = Some(at);
                    Some(0.0)
                }
                (None, Some(_)) if parse_time(t).is_none() => None,
                (Some(_), None) | (None, Some(_)) => {
                    return Err(ScenarioError::invalid(
                        path,
                        format!("line {}", i + 1),
                        format!("{t:?}: a trace's times are all instants or all offsets"),
                    ));
                }
                (None, None) => parse_time(t),
            };
            let parsed = time.zip(v.parse::<f64>().ok());
            match parsed {
                Some((t, v)) => points.push((t, v * scale)),
                None if points.is_empty() && i == 0 => continue, // header
                None => {
                    return Err(ScenarioError::invalid(
                        path,
                        format!("line {}", i + 1),
                        format!(
                            "{line:?} is not `time,value` (time: {TIME_FORMATS}; value: a \
                             number)"
                        ),
                    ));
                }
            }
        }
        if points.is_empty() {
            return Err(ScenarioError::invalid(path, "(trace)", "no points"));
        }
        if points.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err(ScenarioError::invalid(
                path,
                "(trace)",
                "times must not go back",
            ));
        }
        let period = if repeat {
            points.last().map(|p| p.0).filter(|p| *p > 0.0)
        } else {
            None
        };
        Ok(Trace { points, period })
    }

    pub fn at(&self, t: f64) -> f64 {
        let t = match self.period {
            Some(p) => t.rem_euclid(p),
            None => t,
        };
        let pts = &self.points;
        if t <= pts[0].0 {
            return pts[0].1;
        }
        let i = pts.partition_point(|p| p.0 <= t);
        if i >= pts.len() {
            return pts[pts.len() - 1].1;
        }
        let (t0, v0) = pts[i - 1];
        let (t1, v1) = pts[i];
        if t1 <= t0 {
            v1
        } else {
            v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        }
    }
}

/// The time formats a trace accepts, as its errors name them.
pub const TIME_FORMATS: &str = "seconds from the start (90), HH:MM or HH:MM:SS, Unix seconds \
     (1714521600) or RFC 3339 (2024-05-01T00:00:00Z)";

/// Unix seconds of an instant: RFC 3339, or a number from 10⁹ on (Unix seconds: 2001 and
/// later; no offset from a trace's start is that large).
fn parse_instant(s: &str) -> Option<f64> {
    if let Ok(x) = s.parse::<f64>() {
        return (x >= 1e9).then_some(x);
    }
    let at: jiff::Timestamp = s.parse().ok()?;
    Some(at.as_millisecond() as f64 / 1000.0)
}

/// Seconds, or `HH:MM` / `HH:MM:SS` of a day.
fn parse_time(s: &str) -> Option<f64> {
    if let Ok(x) = s.parse::<f64>() {
        return Some(x);
    }
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let mut secs = 0.0;
    for (i, p) in parts.iter().enumerate() {
        let n: f64 = p.parse().ok()?;
        secs += n * [3600.0, 60.0, 1.0][i];
    }
    Some(secs)
}

/// The load of a workload at `t` seconds after the start; `weekday` is 0 = Monday.
pub fn load_at(
    spec: &LoadSpec,
    trace: Option<&Trace>,
    t: f64,
    start_day_seconds: f64,
    start_weekday: u8,
) -> f64 {
    match spec {
        LoadSpec::Constant { value } => *value,
        LoadSpec::Diurnal {
            min,
            max,
            trough_hour,
            weekend_factor,
        } => {
            let abs = start_day_seconds + t;
            let hour = (abs / 3600.0).rem_euclid(24.0);
            let phase = (hour - trough_hour) / 24.0 * std::f64::consts::TAU;
            let v = min + (max - min) * (1.0 - phase.cos()) / 2.0;
            let day = (start_weekday as i64 + (abs / 86400.0).floor() as i64).rem_euclid(7);
            if day >= 5 { v * weekend_factor } else { v }
        }
        LoadSpec::Trace { .. } => trace.map_or(0.0, |tr| tr.at(t)),
        LoadSpec::Steps { points } => {
            let mut v = points.first().map_or(0.0, |p| p.1);
            for (pt, pv) in points {
                if *pt <= t {
                    v = *pv;
                } else {
                    break;
                }
            }
            v
        }
    }
}

/// A pod that arrives on its own at `arrive` and finishes `run_seconds` after it starts
/// running (or leaves at `leave` whatever happened).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPod {
    pub name: String,
    pub requests: Resources,
    pub tolerations: Vec<Toleration>,
    pub node_selector: std::collections::BTreeMap<String, String>,
    pub arrive: f64,
    pub run_seconds: f64,
}

pub(crate) fn batch_pods(
    source: &BatchSource,
    resolve: &dyn Fn(&str) -> PathBuf,
    duration: f64,
    start: jiff::Timestamp,
) -> Result<Vec<BatchPod>, ScenarioError> {
    match source {
        BatchSource::Burst {
            name,
            at,
            count,
            requests,
            run_seconds,
            tolerations,
            node_selector,
        } => {
            let at_s = ballast_api::common::parse_duration_seconds(at).map_err(|e| {
                ScenarioError::invalid(Path::new("(scenario)"), "at", e.to_string())
            })?;
            Ok((0..*count)
                .map(|i| BatchPod {
                    name: format!("{name}-{i:05}"),
                    requests: requests.clone(),
                    tolerations: tolerations.clone(),
                    node_selector: node_selector.clone(),
                    arrive: at_s,
                    run_seconds: *run_seconds,
                })
                .collect())
        }
        BatchSource::Openb {
            path,
            from_seconds,
            limit,
            skip_gpu,
        } => {
            let _ = start;
            let p = resolve(path);
            let mut rdr = csv::Reader::from_reader(crate::bundle::open(&p)?);
            let headers = rdr
                .headers()
                .map_err(|e| ScenarioError::invalid(&p, "(csv header)", e.to_string()))?
                .clone();
            let col = |name: &str| -> Result<usize, ScenarioError> {
                headers
                    .iter()
                    .position(|h| h == name)
                    .ok_or_else(|| ScenarioError::invalid(&p, name, "column missing"))
            };
            let (c_name, c_cpu, c_mem, c_gpu, c_create, c_delete) = (
                col("name")?,
                col("cpu_milli")?,
                col("memory_mib")?,
                col("num_gpu")?,
                col("creation_time")?,
                col("deletion_time")?,
            );
            let mut pods = Vec::new();
            for (i, rec) in rdr.records().enumerate() {
                let rec = rec.map_err(|e| {
                    ScenarioError::invalid(&p, format!("row {}", i + 2), e.to_string())
                })?;
                let num = |c: usize| -> Result<f64, ScenarioError> {
                    rec.get(c).unwrap_or("").trim().parse::<f64>().map_err(|_| {
                        ScenarioError::invalid(
                            &p,
                            format!("row {} column {}", i + 2, &headers[c]),
                            "not a number",
                        )
                    })
                };
                if *skip_gpu && num(c_gpu)? > 0.0 {
                    continue;
                }
                let arrive = num(c_create)? - from_seconds;
                if arrive < 0.0 || arrive >= duration {
                    continue;
                }
                let leave = num(c_delete)? - from_seconds;
                let mut r = Resources::cpu_mem(num(c_cpu)? as i64, (num(c_mem)? as i64) << 20);
                let gpus = num(c_gpu)? as i64;
                if gpus > 0 {
                    r.set("nvidia.com/gpu", gpus);
                }
                r.pods = 0;
                pods.push(BatchPod {
                    name: rec.get(c_name).unwrap_or("pod").to_string(),
                    requests: r,
                    tolerations: vec![],
                    node_selector: Default::default(),
                    arrive,
                    run_seconds: (leave - arrive).max(1.0),
                });
            }
            pods.sort_by(|a, b| {
                a.arrive
                    .total_cmp(&b.arrive)
                    .then_with(|| a.name.cmp(&b.name))
            });
            if let Some(l) = limit {
                pods.truncate(*l);
            }
            Ok(pods)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_interpolate_and_repeat() {
        let t = Trace {
            points: vec![(0.0, 10.0), (100.0, 20.0), (200.0, 10.0)],
            period: Some(200.0),
        };
        assert_eq!(t.at(0.0), 10.0);
        assert_eq!(t.at(50.0), 15.0);
        assert_eq!(t.at(150.0), 15.0);
        assert_eq!(t.at(250.0), 15.0);
        let once = Trace { period: None, ..t };
        assert_eq!(once.at(1000.0), 10.0);
    }

    #[test]
    fn diurnal_peaks_twelve_hours_after_trough() {
        let spec = LoadSpec::Diurnal {
            min: 100.0,
            max: 500.0,
            trough_hour: 4.0,
            weekend_factor: 0.5,
        };
        assert!((load_at(&spec, None, 4.0 * 3600.0, 0.0, 0) - 100.0).abs() < 1e-9);
        assert!((load_at(&spec, None, 16.0 * 3600.0, 0.0, 0) - 500.0).abs() < 1e-9);
        // Saturday (day 5 from a Monday start) is halved.
        assert!((load_at(&spec, None, 5.0 * 86400.0 + 16.0 * 3600.0, 0.0, 0) - 250.0).abs() < 1e-9);
    }

    #[test]
    fn times_read_as_seconds_or_clock() {
        assert_eq!(parse_time("90"), Some(90.0));
        assert_eq!(parse_time("01:30"), Some(5400.0));
        assert_eq!(parse_time("00:00:30"), Some(30.0));
        assert_eq!(parse_time("noon"), None);
        assert_eq!(parse_instant("90"), None);
        assert_eq!(parse_instant("1714521600"), Some(1714521600.0));
        assert_eq!(parse_instant("2024-05-01T00:00:00Z"), Some(1714521600.0));
        assert_eq!(
            parse_instant("2024-05-01T02:00:30+02:00"),
            Some(1714521630.0)
        );
    }

    #[test]
    fn unix_and_rfc3339_rows_count_from_the_first() {
        let dir = std::env::temp_dir().join(format!("ballast-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let read = |name: &str, body: &str| {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            Trace::read_csv(&p, false, 1.0)
        };
        let unix = read("unix.csv", "time,value\n1714521600,1\n1714521660,3\n").unwrap();
        assert_eq!(unix.points, vec![(0.0, 1.0), (60.0, 3.0)]);
        assert_eq!(unix.at(30.0), 2.0);
        let iso = read(
            "iso.csv",
            "2024-05-01T00:00:00Z,1\n2024-05-01T00:02:00Z,5\n",
        )
        .unwrap();
        assert_eq!(iso.points, vec![(0.0, 1.0), (120.0, 5.0)]);
        let bad = read("bad.csv", "t,v\n0,1\n05/01/2024 00:01,2\n").unwrap_err();
        assert!(bad.to_string().contains("RFC 3339"), "{bad}");
        let mixed = read("mixed.csv", "1714521600,1\n60,2\n").unwrap_err();
        assert!(
            mixed.to_string().contains("all instants or all offsets"),
            "{mixed}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
