//! `procforest evaluate`: detection quality against ground-truth labels, per feature set.
//!
//! Runs the job once per feature set on a labelled table (a generated table's labels, or
//! the bundled sample's heuristic ones), keeps every scored group of the report window and
//! compares with the labelled groups: the share flagged, precision and recall of the report,
//! precision at k, and the ROC-AUC and PR-AUC of the score.

use std::collections::{BTreeMap, HashMap};

use arrow::{
    array::{Array, AsArray},
    datatypes::{Float64Type, Int8Type, Int64Type, TimestampMicrosecondType},
};
use chrono::DateTime;

use procforest_core::schema::{
    ACCOUNT, ACCOUNT_TYPE, COMPUTER, COUNT, INTERVAL, PREDICTION, PROCESS, SCORE,
};
use procforest_pipeline::{
    RunConfig,
    config::FeatureSet,
    error::{Context, PipelineError, Result},
    run,
};

use crate::{
    delta_writer::get_parquet,
    labels::{LABELS_PATH, Label, LabelKey, read_labels},
};

/// Whether benign events share a labelled group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupKind {
    /// Benign events share the group: only the command line or parent tell.
    Mixed,
    /// Only attack events.
    New,
}

impl GroupKind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            GroupKind::Mixed => "mixed",
            GroupKind::New => "new",
        }
    }
}

/// One scored group of the report window.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// scikit-learn's score (lower = more anomalous).
    pub score: f64,
    /// Predicted −1.
    pub flagged: bool,
    /// In the ground truth.
    pub labelled: bool,
    /// For a labelled group, whether benign events share it.
    pub kind: Option<GroupKind>,
}

/// Recall within one kind of replayed group.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct KindRecall {
    /// Groups of the kind in the report.
    pub groups: usize,
    /// Of which flagged.
    pub flagged: usize,
    /// `flagged / groups`.
    pub recall: f64,
}

/// Detection quality of one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// The run's name (a preset or a feature set).
    pub variant: String,
    /// Feature set.
    pub features: FeatureSet,
    /// Groups in the report window.
    pub groups: usize,
    /// Of which labelled.
    pub labelled: usize,
    /// Of which flagged (predicted −1).
    pub flagged: usize,
    /// `flagged / groups`.
    pub flagged_fraction: f64,
    /// Labelled among flagged.
    pub precision: f64,
    /// Flagged among labelled.
    pub recall: f64,
    /// Labelled among the k lowest scores, for k = 10, 50, 100.
    pub precision_at: BTreeMap<usize, f64>,
    /// Area under the ROC curve of the anomaly score (ties count half).
    pub roc_auc: f64,
    /// Average precision (area under the precision–recall curve, scikit-learn's definition).
    pub pr_auc: f64,
    /// Recall of the labelled groups per kind.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<GroupKind, KindRecall>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The metrics of judged groups. Scores order them (lowest first); ties share ranks.
pub fn metrics(variant: &str, features: FeatureSet, judged: &[Judged]) -> Metrics {
    let groups = judged.len();
    let labelled = judged.iter().filter(|j| j.labelled).count();
    let flagged = judged.iter().filter(|j| j.flagged).count();
    let hits = judged.iter().filter(|j| j.flagged && j.labelled).count();
    let mut order: Vec<&Judged> = judged.iter().collect();
    order.sort_by(|a, b| a.score.total_cmp(&b.score));
    let precision_at = [10, 50, 100]
        .into_iter()
        .map(|k| {
            let top = &order[..k.min(order.len())];
            (
                k,
                ratio(top.iter().filter(|j| j.labelled).count(), top.len()),
            )
        })
        .collect();
    Metrics {
        variant: variant.to_string(),
        features,
        groups,
        labelled,
        flagged,
        flagged_fraction: ratio(flagged, groups),
        precision: ratio(hits, flagged),
        recall: ratio(hits, labelled),
        precision_at,
        roc_auc: roc_auc(&order, labelled),
        pr_auc: average_precision(&order, labelled),
        kinds: kind_recalls(judged),
    }
}

fn kind_recalls(judged: &[Judged]) -> BTreeMap<GroupKind, KindRecall> {
    let mut kinds: BTreeMap<GroupKind, KindRecall> = BTreeMap::new();
    for j in judged {
        let Some(kind) = j.kind else { continue };
        let entry = kinds.entry(kind).or_insert(KindRecall {
            groups: 0,
            flagged: 0,
            recall: 0.0,
        });
        entry.groups += 1;
        entry.flagged += usize::from(j.flagged);
    }
    for k in kinds.values_mut() {
        k.recall = ratio(k.flagged, k.groups);
    }
    kinds
}

/// Groups of equal score, most anomalous first: (labelled in group, size).
fn tie_groups(order: &[&Judged]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && order[j].score == order[i].score {
            j += 1;
        }
        out.push((order[i..j].iter().filter(|x| x.labelled).count(), j - i));
        i = j;
    }
    out
}

/// ROC-AUC with the most anomalous (lowest score) ranked first; ties count half.
fn roc_auc(order: &[&Judged], positives: usize) -> f64 {
    let negatives = order.len() - positives;
    if positives == 0 || negatives == 0 {
        return 0.0;
    }
    // Pairs (positive, negative) where the positive is more anomalous.
    let mut negatives_after = negatives as f64;
    let mut wins = 0.0;
    for (pos, size) in tie_groups(order) {
        let neg = (size - pos) as f64;
        negatives_after -= neg;
        wins += pos as f64 * (negatives_after + neg / 2.0);
    }
    wins / (positives as f64 * negatives as f64)
}

/// Average precision: Σ (recall_n − recall_{n−1}) · precision_n over score thresholds.
fn average_precision(order: &[&Judged], positives: usize) -> f64 {
    if positives == 0 {
        return 0.0;
    }
    let (mut seen, mut hits, mut ap) = (0usize, 0usize, 0.0);
    for (pos, size) in tie_groups(order) {
        seen += size;
        hits += pos;
        ap += (pos as f64 / positives as f64) * (hits as f64 / seen as f64);
    }
    ap
}

/// Runs each named configuration and measures it against its table's labels
/// ([`LABELS_PATH`] inside the table's folder, read from the first's table). A labelled
/// group is *mixed* when it holds more events than its label's attack events (benign
/// events share it), *new* otherwise.
pub async fn evaluate(variants: &[(String, RunConfig)]) -> Result<Vec<Metrics>> {
    let Some((_, first)) = variants.first() else {
        return Ok(Vec::new());
    };
    let labels = table_labels(first).await?;
    let positives: HashMap<LabelKey, i64> = labels
        .into_iter()
        .map(|l| (l.key, l.attack_events))
        .collect();
    let dir = tempfile::tempdir().runtime("creating a folder for scores")?;
    let mut out = Vec::new();
    for (i, (name, config)) in variants.iter().enumerate() {
        let mut config = config.clone();
        let scores = dir.path().join(i.to_string());
        config.scores_out = Some(scores.display().to_string());
        config.scores_format = procforest_pipeline::scores_out::ScoresFormat::Parquet;
        let report = run(&config).await?;
        let (start, end) = (report.first_interval_us, report.as_of.timestamp_micros());
        let judged = read_judged(&scores, &positives, start, end)?;
        out.push(metrics(name, config.features, &judged));
    }
    Ok(out)
}

/// The labels the table keeps beside its log ([`LABELS_PATH`]), read through the
/// table's own object store.
async fn table_labels(config: &RunConfig) -> Result<Vec<Label>> {
    let table = procforest_pipeline::source::open(
        &config.table,
        &config.snapshot,
        config.storage_options.clone(),
    )
    .await?;
    let Some(batches) = get_parquet(&table.table, LABELS_PATH).await? else {
        return Err(PipelineError::bad_input(format!(
            "the table has no labels ({LABELS_PATH}) to evaluate against"
        )));
    };
    read_labels(&batches).map_err(|e| PipelineError::bad_input(format!("{LABELS_PATH}: {e}")))
}

fn read_judged(
    path: &std::path::Path,
    positives: &HashMap<LabelKey, i64>,
    start_us: i64,
    end_us: i64,
) -> Result<Vec<Judged>> {
    let mut out = Vec::new();
    for batch in procforest_pipeline::scores_out::read_local(path)? {
        let b = batch?;
        let t = b
            .column_by_name(INTERVAL)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
        let score = b
            .column_by_name(SCORE)
            .and_then(|c| c.as_primitive_opt::<Float64Type>());
        let pred = b
            .column_by_name(PREDICTION)
            .and_then(|c| c.as_primitive_opt::<Int8Type>());
        let count = b
            .column_by_name(COUNT)
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        let (Some(t), Some(score), Some(pred), Some(count)) = (t, score, pred, count) else {
            return Err(PipelineError::runtime(
                "scores lack interval, score, prediction or count",
            ));
        };
        let s = |n: &str| b.column_by_name(n).and_then(|c| c.as_string_opt::<i32>());
        let (Some(c), Some(a), Some(at), Some(p)) =
            (s(COMPUTER), s(ACCOUNT), s(ACCOUNT_TYPE), s(PROCESS))
        else {
            return Err(PipelineError::runtime("scores lack their keys"));
        };
        let text = |arr: &arrow::array::StringArray, i: usize| {
            if arr.is_valid(i) {
                arr.value(i).to_string()
            } else {
                String::new()
            }
        };
        for i in 0..b.num_rows() {
            let interval = t.value(i);
            if interval < start_us || interval > end_us {
                continue;
            }
            let key = LabelKey {
                day: DateTime::from_timestamp_micros(interval)
                    .map(|d| d.date_naive())
                    .unwrap_or_default(),
                computer: text(c, i),
                account: text(a, i),
                account_type: text(at, i),
                process: text(p, i),
            };
            out.push(Judged {
                score: score.value(i),
                flagged: pred.value(i) == -1,
                labelled: positives.contains_key(&key),
                kind: positives.get(&key).map(|&attack_events| {
                    match count.value(i) > attack_events {
                        true => GroupKind::Mixed,
                        false => GroupKind::New,
                    }
                }),
            });
        }
    }
    Ok(out)
}

/// The metrics as a readable table.
pub fn table(results: &[Metrics]) -> String {
    let s = format!(
        "{:<15} {:>7} {:>8} {:>8} {:>8} {:>9} {:>7} {:>6} {:>6} {:>6} {:>7} {:>7}\n",
        "variant",
        "groups",
        "labelled",
        "flagged",
        "flagged%",
        "precision",
        "recall",
        "p@10",
        "p@50",
        "p@100",
        "roc_auc",
        "pr_auc"
    );
    let kinds: Vec<GroupKind> = results
        .iter()
        .flat_map(|m| m.kinds.keys().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut s = s.trim_end().to_string();
    for kind in &kinds {
        s.push_str(&format!(" {:>11}", format!("{} recall", kind.name())));
    }
    s.push('\n');
    for m in results {
        s.push_str(&format!(
            "{:<15} {:>7} {:>8} {:>8} {:>7.1}% {:>9.3} {:>7.3} {:>6.2} {:>6.2} {:>6.2} {:>7.3} {:>7.3}\n",
            m.variant,
            m.groups,
            m.labelled,
            m.flagged,
            100.0 * m.flagged_fraction,
            m.precision,
            m.recall,
            m.precision_at[&10],
            m.precision_at[&50],
            m.precision_at[&100],
            m.roc_auc,
            m.pr_auc
        ));
        s.pop();
        for kind in &kinds {
            let cell = m.kinds.get(kind).map_or("-".to_string(), |k| {
                format!("{}/{} {:.2}", k.flagged, k.groups, k.recall)
            });
            s.push_str(&format!(" {cell:>11}"));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(score: f64, flagged: bool, labelled: bool) -> Judged {
        Judged {
            score,
            flagged,
            labelled,
            kind: None,
        }
    }

    /// Recall per kind counts the flagged among each kind's labelled groups.
    #[test]
    fn recall_is_counted_per_kind() {
        let judged = [
            (0.1, true, Some(GroupKind::Mixed)),
            (0.2, false, Some(GroupKind::Mixed)),
            (0.3, false, Some(GroupKind::Mixed)),
            (0.4, true, Some(GroupKind::New)),
            (0.5, true, None),
        ]
        .map(|(score, flagged, kind)| Judged {
            kind,
            ..j(score, flagged, kind.is_some())
        });
        let m = metrics("x", FeatureSet::Seed, &judged);
        let mixed = m.kinds[&GroupKind::Mixed];
        assert_eq!((mixed.groups, mixed.flagged), (3, 1));
        assert!((mixed.recall - 1.0 / 3.0).abs() < 1e-12);
        let new = m.kinds[&GroupKind::New];
        assert_eq!((new.groups, new.flagged, new.recall), (1, 1, 1.0));
    }

    #[test]
    fn metrics_by_hand() {
        // Lowest scores first: L, -, L, -, - (two labelled of five), three flagged.
        let judged = vec![
            j(-0.70, true, true),
            j(-0.65, true, false),
            j(-0.60, true, true),
            j(-0.45, false, false),
            j(-0.40, false, false),
        ];
        let m = metrics("seed", FeatureSet::Seed, &judged);
        assert_eq!((m.groups, m.labelled, m.flagged), (5, 2, 3));
        assert!((m.flagged_fraction - 0.6).abs() < 1e-12);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.recall, 1.0);
        assert!((m.precision_at[&10] - 0.4).abs() < 1e-12);
        // Positives rank 1 and 3 of 5: 5 of 6 (positive, negative) pairs are in order.
        assert!((m.roc_auc - 5.0 / 6.0).abs() < 1e-12);
        // AP = 1/2 · 1/1 + 1/2 · 2/3.
        assert!((m.pr_auc - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn ties_count_half() {
        let judged = vec![j(-0.5, true, true), j(-0.5, true, false)];
        let m = metrics("rarity", FeatureSet::Rarity, &judged);
        assert_eq!(m.roc_auc, 0.5);
        assert_eq!(m.pr_auc, 0.5);
        assert_eq!(m.precision_at[&10], 0.5);
    }
}
