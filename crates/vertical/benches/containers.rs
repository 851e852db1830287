//! 10,000 tracked containers: samples ingested per second on one core, and bytes per container.
//!
//! Each container first gets eight days of 5-minute samples (a spread of levels, deterministic),
//! then each iteration adds one CPU and one memory sample to every container. The figures printed
//! before the criterion output are bytes per container (the state's own size plus its heap).

use ballast_api::vertical::EstimatorMode;
use ballast_vertical::{ContainerState, Settings};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const CONTAINERS: usize = 10_000;
const WARM_SAMPLES: i64 = 8 * 288;
const START: i64 = 1_700_000_000;

/// A deterministic usage level for container `c` at sample `i` (cores, bytes).
fn usage(c: usize, i: i64) -> (f64, f64) {
    let mut x =
        (c as u64).wrapping_mul(6364136223846793005) ^ (i as u64).wrapping_mul(1442695040888963407);
    x ^= x >> 29;
    let noise = (x % 1000) as f64 / 1000.0;
    let level = 0.02 * (1 + c % 200) as f64;
    (
        level * (0.5 + noise),
        5e7 * (1 + c % 80) as f64 * (0.8 + 0.4 * noise),
    )
}

fn warm(mode: EstimatorMode) -> Vec<ContainerState> {
    let settings = Settings {
        mode,
        ..Settings::default()
    };
    (0..CONTAINERS)
        .map(|c| {
            let mut s = ContainerState::new(&settings);
            for i in 0..WARM_SAMPLES {
                let (cpu, memory) = usage(c, i);
                s.add_cpu(START + 300 * i, cpu, 0.5);
                s.add_memory(START + 300 * i, memory);
            }
            s
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    for mode in [EstimatorMode::Percentile, EstimatorMode::Adaptive] {
        let mut states = warm(mode);
        let bytes: usize = states.iter().map(ContainerState::footprint_bytes).sum();
        let max = states
            .iter()
            .map(ContainerState::footprint_bytes)
            .max()
            .unwrap_or(0);
        println!(
            "{mode:?}: {CONTAINERS} containers, {:.0} bytes per container on average, {max} at most, {:.1} MiB in all",
            bytes as f64 / CONTAINERS as f64,
            bytes as f64 / 1048576.0
        );
        let mut group = c.benchmark_group(format!("ingest_{mode:?}"));
        group.throughput(Throughput::Elements(2 * CONTAINERS as u64));
        let mut i = WARM_SAMPLES;
        group.bench_function("one cpu and one memory sample per container", |b| {
            b.iter(|| {
                i += 1;
                for (n, s) in states.iter_mut().enumerate() {
                    let (cpu, memory) = usage(n, i);
                    s.add_cpu(START + 300 * i, black_box(cpu), 0.5);
                    s.add_memory(START + 300 * i, black_box(memory));
                }
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = ingest
}
criterion_main!(benches);
