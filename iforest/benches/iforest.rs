//! Fit and score benchmarks: 1 M rows × 6 features, 100 trees of `max_samples=100`.
//!
//! `cargo bench -p procforest-iforest`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iforest::{IsolationForestParams, MaxSamples};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rows shaped like procforest's features: a day, four category indices, a count.
fn job_like(rows: usize) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut col =
        |f: &mut dyn FnMut(&mut ChaCha8Rng) -> f64| (0..rows).map(|_| f(&mut rng)).collect();
    vec![
        col(&mut |r| (1_700_000_000 + 86_400 * r.random_range(0..30)) as f64),
        col(&mut |r| (r.random::<f64>().powi(3) * 2000.0).floor()),
        col(&mut |r| (r.random::<f64>().powi(3) * 5000.0).floor()),
        col(&mut |r| r.random_range(0..2) as f64),
        col(&mut |r| (r.random::<f64>().powi(4) * 800.0).floor()),
        col(&mut |r| (1.0 / (1.0 - r.random::<f64>())).floor()),
    ]
}

fn benches(c: &mut Criterion) {
    let rows = 1_000_000;
    let x = job_like(rows);
    let params = IsolationForestParams::default()
        .max_samples(MaxSamples::Count(100))
        .seed(42);
    let mut fit = c.benchmark_group("fit");
    fit.sample_size(10);
    fit.bench_function("1M_rows_100_trees_ms100", |b| {
        b.iter(|| params.fit(&x).unwrap())
    });
    fit.finish();

    let model = params.fit(&x).unwrap();
    let mut out = vec![0.0; rows];
    let mut score = c.benchmark_group("score");
    score
        .sample_size(10)
        .throughput(Throughput::Elements(rows as u64));
    score.bench_function("1M_rows_6_features_one_thread", |b| {
        b.iter(|| model.flat().score_into(&x, &mut out))
    });
    score.bench_function("1M_rows_6_features_recursive_walk", |b| {
        b.iter(|| model.score_samples_reference(&x).unwrap())
    });
    score.finish();
}

criterion_group!(iforest_benches, benches);
criterion_main!(iforest_benches);
