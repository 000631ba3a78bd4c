//! The scorer alone, for `bench/run.py`: fits 100 trees of `max_samples=100` on rows shaped
//! like procforest's features (a day, four category codes, a count), scores them on one
//! thread, and prints `{"rows", "seconds", "rows_per_second"}` (best of five).
//!
//! `cargo run --release -p procforest-iforest --example score_speed -- [ROWS]`

use std::time::Instant;

use iforest::{IsolationForestParams, MaxSamples};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROWS must be a number"))
        .unwrap_or(1_000_000);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let skewed = |rng: &mut ChaCha8Rng, power: i32, scale: f64| {
        (rng.random::<f64>().powi(power) * scale).floor()
    };
    let mut columns: Vec<Vec<f64>> = (0..6).map(|_| Vec::with_capacity(rows)).collect();
    for _ in 0..rows {
        columns[0].push((1_790_000_000 + 86_400 * rng.random_range(0..30)) as f64);
        columns[1].push(skewed(&mut rng, 3, 1000.0));
        columns[2].push(skewed(&mut rng, 3, 4000.0));
        columns[3].push(rng.random_range(0..2) as f64);
        columns[4].push(skewed(&mut rng, 4, 600.0));
        columns[5].push(skewed(&mut rng, 8, 500.0) + 1.0);
    }
    let model = IsolationForestParams::default()
        .max_samples(MaxSamples::Count(100))
        .seed(42)
        .fit(&columns)
        .expect("a forest");
    let mut scores = vec![0.0; rows];
    let best = (0..5)
        .map(|_| {
            let started = Instant::now();
            model.flat().score_into(&columns, &mut scores);
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "{{\"rows\": {rows}, \"seconds\": {best}, \"rows_per_second\": {}}}",
        rows as f64 / best
    );
}
