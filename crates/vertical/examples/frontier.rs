//! Prints what a perfect estimator and uniform window-peak rules reach on a folder of usage
//! series (the development traces' format), per half (series at even and at odd positions in
//! name order), with the VPA default floors and with small ones; `--modes` adds both estimator
//! modes of `ballast evaluate vertical` with the small floors (1m, 10Mi).
//!
//! `cargo run --release -p ballast-vertical --example frontier -- DIR [--modes]`

use std::error::Error;
use std::io::Read;

use ballast_api::vertical::EstimatorMode;
use ballast_vertical::evaluate::{ReplayOptions, halves, replay, settings_for};
use ballast_vertical::frontier::{Score, Usage, floor_bound, window_peak};
use ballast_vertical::series::{Series, parse};

const MIB: f64 = 1024.0 * 1024.0;
const DAY: i64 = 86_400;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.iter().find(|a| !a.starts_with("--")) else {
        return Err("usage: frontier DIR [--modes]".into());
    };
    let series = load(dir)?;
    let (even, odd) = halves(&series);
    for (label, half) in [("even positions", &even), ("odd positions", &odd)] {
        println!("== series at {label}: {}", half.len());
        bounds(half);
        windows(half);
        if args.iter().any(|a| a == "--modes") {
            modes(half)?;
        }
    }
    Ok(())
}

fn line(what: &str, s: &Score) {
    println!(
        "{what:<44} slack {:>5.1}%  over {:>6.3}%  idle {:>5.1}%",
        100.0 * s.slack(),
        100.0 * s.over_share(),
        100.0 * s.idle_share()
    );
}

fn bounds(half: &[Series]) {
    for floor in [0.001, 0.025] {
        let s = floor_bound(half, Usage::Cpu, floor, DAY);
        line(
            &format!("cpu    max(usage, {}m), knows the future", floor * 1e3),
            &s,
        );
    }
    for floor in [10.0, 250.0] {
        let s = floor_bound(half, Usage::Memory, floor * MIB, DAY);
        line(
            &format!("memory max(usage, {floor}Mi), knows the future"),
            &s,
        );
    }
}

fn windows(half: &[Series]) {
    let grid = [
        (Usage::Cpu, "cpu   ", [0.001, 0.025], ["1m", "25m"]),
        (
            Usage::Memory,
            "memory",
            [10.0 * MIB, 250.0 * MIB],
            ["10Mi", "250Mi"],
        ),
    ];
    for (usage, name, floors, floor_names) in grid {
        for (floor, floor_name) in floors.into_iter().zip(floor_names) {
            for k in [3, 12, 48, 288, 864, 2016] {
                for margin in [0.1, 0.25, 0.5] {
                    let s = window_peak(half, usage, k, margin, floor, DAY);
                    let what = format!(
                        "{name} peak of {k} samples x{:.2}, floor {floor_name}",
                        1.0 + margin
                    );
                    line(&what, &s);
                }
            }
        }
    }
}

fn modes(half: &[Series]) -> Result<(), Box<dyn Error>> {
    let options = ReplayOptions::default();
    for mode in [EstimatorMode::Percentile, EstimatorMode::Adaptive] {
        let settings = ballast_vertical::Settings {
            pod_min_cpu: 0.001,
            pod_min_memory: 10.0 * MIB,
            ..settings_for(mode, &options)
        };
        let mut t = ballast_vertical::evaluate::Tally::default();
        for s in half {
            let r = replay(s, &settings, &options)?;
            t.samples += r.samples;
            t.cpu_slack_sum += r.cpu_slack_sum;
            t.memory_slack_sum += r.memory_slack_sum;
            t.cpu_over += r.cpu_over;
            t.memory_over += r.memory_over;
            t.evictions += r.evictions;
        }
        println!(
            "{mode:?} floors 1m/10Mi: cpu slack {:.1}% memory slack {:.1}% slack {:.1}% cpu over {:.2}% memory over {:.3}% evictions {}",
            100.0 * t.cpu_slack(),
            100.0 * t.memory_slack(),
            100.0 * t.slack(),
            100.0 * t.cpu_over_share(),
            100.0 * t.memory_over_share(),
            t.evictions
        );
    }
    Ok(())
}

fn load(dir: &str) -> Result<Vec<Series>, Box<dyn Error>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".csv.gz") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&p)?).read_to_string(&mut text)?;
        out.push(parse(&p.display().to_string(), &text)?);
    }
    Ok(out)
}
