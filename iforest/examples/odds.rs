//! Accuracy on the ODDS outlier benchmarks: fit on all rows, score all rows, ROC-AUC of the
//! score against the label, as in Liu, Ting & Zhou (2008) and scikit-learn's numbers.
//!
//! `cargo run --release -p procforest-iforest --example odds -- [--json] [--seeds N] DIR`
//!
//! Reads every `DIR/*.parquet` (float columns `x0…`, integer column `label`, 1 = outlier) and
//! reports per file: rows, dims, AUC mean and standard deviation over seeds 0–9 (or 0–N−1) with default
//! parameters, AUC with `max_samples=100, seed=42`, and fit and score times.

use std::{fs::File, path::Path, time::Instant};

use arrow::{
    array::{Array, AsArray},
    compute::cast,
    datatypes::{DataType, Float64Type, Int64Type},
};
use iforest::{IsolationForestParams, MaxSamples};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

type Error = Box<dyn std::error::Error>;

/// Feature columns and labels of one data set.
struct Dataset {
    columns: Vec<Vec<f64>>,
    labels: Vec<bool>,
}

fn read(path: &Path) -> Result<Dataset, Error> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?.build()?;
    let mut columns: Vec<Vec<f64>> = Vec::new();
    let mut labels = Vec::new();
    for batch in reader {
        let batch = batch?;
        let schema = batch.schema();
        let features: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| schema.field(i).name().starts_with('x'))
            .collect();
        if columns.is_empty() {
            columns = vec![Vec::new(); features.len()];
        }
        for (slot, &i) in columns.iter_mut().zip(&features) {
            let col = cast(batch.column(i), &DataType::Float64)?;
            slot.extend(col.as_primitive::<Float64Type>().values().iter());
        }
        let label = batch
            .column_by_name("label")
            .ok_or_else(|| format!("{}: no label column", path.display()))?;
        let label = cast(label, &DataType::Int64)?;
        let label = label.as_primitive::<Int64Type>();
        if label.null_count() > 0 {
            return Err(format!("{}: null labels", path.display()).into());
        }
        labels.extend(label.values().iter().map(|&v| v == 1));
    }
    Ok(Dataset { columns, labels })
}

/// ROC-AUC of `scores` (higher = more anomalous) against `labels`, ties counted half
/// (Mann–Whitney U with average ranks).
fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum_pos - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

struct Run {
    auc: f64,
    fit_s: f64,
    score_s: f64,
}

fn run(data: &Dataset, params: &IsolationForestParams) -> Result<Run, Error> {
    let t = Instant::now();
    let model = params.fit(&data.columns)?;
    let fit_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let scores = model.score_samples(&data.columns)?;
    let score_s = t.elapsed().as_secs_f64();
    let anomaly: Vec<f64> = scores.iter().map(|s| -s).collect();
    Ok(Run {
        auc: roc_auc(&anomaly, &data.labels),
        fit_s,
        score_s,
    })
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let seeds: u64 = match args.iter().position(|a| a == "--seeds") {
        Some(i) => args.get(i + 1).ok_or("--seeds needs a number")?.parse()?,
        None => 10,
    };
    let dir = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--seeds"))
        .map(|(_, a)| a)
        .ok_or("usage: odds [--json] [--seeds N] DIR")?;
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no .parquet files in {dir}").into());
    }
    if !json {
        println!(
            "{:<14} {:>8} {:>5} {:>8} {:>7} {:>9} {:>9} {:>10}",
            "dataset", "rows", "dims", "auc_mean", "auc_sd", "auc_ms100", "fit_ms", "score_ms"
        );
    }
    for path in files {
        let data = read(&path)?;
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let mut aucs = Vec::new();
        let (mut fit_s, mut score_s) = (0.0, 0.0);
        let n = seeds as f64;
        for seed in 0..seeds {
            let r = run(&data, &IsolationForestParams::default().seed(seed))?;
            aucs.push(r.auc);
            fit_s += r.fit_s / n;
            score_s += r.score_s / n;
        }
        let mean = aucs.iter().sum::<f64>() / n;
        let sd = (aucs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let ms100 = IsolationForestParams::default()
            .max_samples(MaxSamples::Count(100))
            .seed(42);
        let auc_ms100 = run(&data, &ms100)?.auc;
        let rows = data.labels.len();
        let dims = data.columns.len();
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "dataset": stem, "rows": rows, "dims": dims,
                    "auc_mean": mean, "auc_sd": sd, "auc_ms100": auc_ms100,
                })
            );
        } else {
            println!(
                "{stem:<14} {rows:>8} {dims:>5} {mean:>8.4} {sd:>7.4} {auc_ms100:>9.4} {:>9.1} {:>10.1}",
                fit_s * 1e3,
                score_s * 1e3
            );
        }
    }
    Ok(())
}
