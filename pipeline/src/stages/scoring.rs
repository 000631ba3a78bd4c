//! Scoring: every summary row scored on the executors by the model carried in the plan;
//! the driver receives the report rows (or, for an audit, every row as a stream).

use std::{collections::BTreeMap, sync::Arc};

use arrow::{
    array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, StringArray, UInt32Array},
    compute::cast,
    datatypes::{DataType, Field, Float64Type, Int64Type, TimestampMicrosecondType},
};
use datafusion::{
    execution::SendableRecordBatchStream,
    logical_expr::ScalarUDF,
    prelude::{DataFrame, Expr, lit},
};
use procforest_core::{
    schema::{
        ACCOUNT, ACCOUNT_TYPE, COMMAND_LINES, COMPUTER, COUNT, GROUP_KEYS, INTERVAL, PROCESS, SCORE,
    },
    udf::Group,
};

use super::{column, time_literal};
use crate::error::{Context, PipelineError, Result};

/// The report's anomalies: rows of the intervals from `start_us` to `end_us` scoring below
/// `offset`.
#[derive(Debug, Clone, Copy)]
pub struct ReportRows {
    /// First report interval.
    pub start_us: i64,
    /// As-of time.
    pub end_us: i64,
    /// The model's offset.
    pub offset: f64,
}

impl ReportRows {
    /// The report's intervals (filtered first, so that only their rows are featured and
    /// scored).
    fn intervals(&self) -> Expr {
        column(INTERVAL)
            .gt_eq(time_literal(self.start_us))
            .and(column(INTERVAL).lt_eq(time_literal(self.end_us)))
    }

    /// Scores below the offset.
    fn flagged(&self) -> Expr {
        (column(SCORE) - lit(self.offset)).lt(lit(0.0))
    }
}

/// The report groups' scores counted in bins of [`ScoreHistogram::BIN_WIDTH`]: what a
/// report page draws beside the threshold. The same bins whether the plan counts them or
/// the driver does from every score.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ScoreHistogram {
    /// Groups per bin: bin `b` holds the scores in `[b·w, (b+1)·w)`.
    #[serde(serialize_with = "serialize_bins")]
    pub bins: BTreeMap<i64, u64>,
}

impl ScoreHistogram {
    /// Width of a bin (a forest's scores lie in (−1, 0); scores by families, down to
    /// about −18, make up to some 1,800 bins, which the HTML page draws as wider bars).
    pub const BIN_WIDTH: f64 = 0.01;

    /// The bin of `score`.
    pub fn bin(score: f64) -> i64 {
        (score / Self::BIN_WIDTH).floor() as i64
    }

    /// The start of bin `bin`.
    pub fn bin_start(bin: i64) -> f64 {
        bin as f64 * Self::BIN_WIDTH
    }

    /// Counts one score.
    pub fn add(&mut self, score: f64) {
        *self.bins.entry(Self::bin(score)).or_default() += 1;
    }

    /// Groups counted.
    pub fn groups(&self) -> u64 {
        self.bins.values().sum()
    }
}

/// Bins as `[{"from": start, "groups": n}, …]`, readable without knowing the width.
fn serialize_bins<S: serde::Serializer>(
    bins: &BTreeMap<i64, u64>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_seq(bins.iter().map(|(&bin, &groups)| {
        serde_json::json!({"from": ScoreHistogram::bin_start(bin), "groups": groups})
    }))
}

/// Counts the scores of the report's groups on the executors (one more small job beside
/// the anomalies': the report's rows are scored twice, not gathered).
pub async fn score_histogram(
    features: DataFrame,
    names: &[&str],
    score: ScalarUDF,
    report: ReportRows,
) -> Result<ScoreHistogram> {
    let score = score.call(names.iter().map(|f| column(f)).collect());
    let bin = datafusion::functions::expr_fn::floor(score / lit(ScoreHistogram::BIN_WIDTH));
    let batches = features
        .filter(report.intervals())
        .and_then(|df| {
            df.aggregate(
                vec![datafusion::logical_expr::cast(bin, DataType::Int64).alias("bin")],
                vec![datafusion::functions_aggregate::expr_fn::count(lit(1)).alias("groups")],
            )
        })
        .runtime("planning the score histogram")?
        .collect()
        .await
        .runtime("counting the report's scores")?;
    let mut histogram = ScoreHistogram::default();
    for batch in &batches {
        let bins = batch_column(batch, "bin")?.as_primitive::<Int64Type>();
        let groups = batch_column(batch, "groups")?.as_primitive::<Int64Type>();
        for (bin, groups) in bins.iter().zip(groups.iter()) {
            let (Some(bin), Some(groups)) = (bin, groups) else {
                continue;
            };
            *histogram.bins.entry(bin).or_default() += groups as u64;
        }
    }
    Ok(histogram)
}

/// Plans the scoring of the `features` frame and starts streaming the report's anomalies
/// (without command lines: see [`attach_command_lines`]).
pub async fn score(
    features: DataFrame,
    names: &[&str],
    score: ScalarUDF,
    report: ReportRows,
) -> Result<SendableRecordBatchStream> {
    let score = score.call(names.iter().map(|f| column(f)).collect());
    let mut select = vec![
        column(INTERVAL),
        column(COMPUTER),
        column(ACCOUNT),
        column(ACCOUNT_TYPE),
        column(PROCESS),
        column(COUNT),
    ];
    select.extend(names.iter().map(|f| column(f)));
    select.push(score.alias(SCORE));
    let df = features
        .filter(report.intervals())
        .and_then(|df| df.select(select))
        .and_then(|df| df.filter(report.flagged()))
        .runtime("planning scoring")?;
    df.execute_stream().await.runtime("scoring")
}

/// A summary group's identity, borrowed: interval and keys.
type GroupRef<'a> = (i64, [Option<&'a str>; 4]);

/// Fills in the command lines of `rows` from `command_lines` (interval, keys,
/// `command_lines`: the report's groups), read by the driver itself. The report's rows are
/// all the driver holds and all that needs command lines; joining them on the cluster and
/// shipping the lists back through Ballista cost more than reading them here. `rows` are
/// distinct groups, as summaries are. The rows share their batch's lists when they are
/// most of it, and otherwise a compact copy of theirs (one copy of the text, not an
/// allocation per line): at most twice the reported text is kept.
pub async fn attach_command_lines(rows: &mut [ScoredRow], command_lines: DataFrame) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let found = {
        let wanted: std::collections::HashMap<GroupRef<'_>, usize, foldhash::fast::RandomState> =
            rows.iter()
                .enumerate()
                .map(|(i, r)| {
                    let key = [&r.computer, &r.account, &r.account_type, &r.process];
                    ((r.interval_us, key.map(|k| k.as_deref())), i)
                })
                .collect();
        let mut found = Vec::with_capacity(rows.len());
        let mut stream = command_lines
            .execute_stream()
            .await
            .runtime("reading command lines")?;
        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
            let batch = batch.runtime("reading command lines")?;
            let interval = cast(
                batch_column(&batch, INTERVAL)?,
                &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
            )
            .runtime("reading intervals")?;
            let interval = interval.as_primitive::<TimestampMicrosecondType>();
            let keys = GROUP_KEYS
                .iter()
                .map(|k| cast(batch_column(&batch, k)?, &DataType::Utf8).runtime("reading keys"))
                .collect::<Result<Vec<_>>>()?;
            let keys: Vec<_> = keys.iter().map(|k| k.as_string::<i32>()).collect();
            let (positions, targets): (Vec<u32>, Vec<usize>) = (0..batch.num_rows())
                .filter_map(|i| {
                    let key = [0, 1, 2, 3].map(|k| keys[k].is_valid(i).then(|| keys[k].value(i)));
                    let target = wanted.get(&(interval.value(i), key))?;
                    Some((i as u32, *target))
                })
                .unzip();
            if positions.is_empty() {
                continue;
            }
            let all = batch_column(&batch, COMMAND_LINES)?;
            if 2 * positions.len() >= batch.num_rows() {
                // Most of the batch is reported: its lists are shared as they are.
                let lists = string_lists(all)?;
                for (&i, r) in positions.iter().zip(targets) {
                    found.push((r, GroupLines::of_list(&lists, i as usize)));
                }
            } else {
                let taken = arrow::compute::take(all, &UInt32Array::from(positions), None)
                    .runtime("reading command lines")?;
                let lists = string_lists(&taken)?;
                for (j, r) in targets.into_iter().enumerate() {
                    found.push((r, GroupLines::of_list(&lists, j)));
                }
            }
        }
        found
    };
    for (r, lines) in found {
        rows[r].command_lines = lines;
    }
    Ok(())
}

fn string_lists(array: &ArrayRef) -> Result<ListArray> {
    let lists = cast(
        array,
        &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
    )
    .runtime("reading command lines")?;
    Ok(lists.as_list::<i32>().clone())
}

fn strings(array: &ArrayRef) -> Result<Vec<Option<String>>> {
    let array = cast(array, &DataType::Utf8).runtime("reading strings")?;
    let array = array.as_string::<i32>();
    Ok((0..array.len())
        .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
        .collect())
}

pub(super) fn batch_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| PipelineError::runtime(format!("scored rows have no column {name}")))
}

/// The groups (interval and keys) of summary rows.
pub fn groups_of(batches: &[RecordBatch]) -> Result<Vec<Group>> {
    let mut groups = Vec::new();
    for batch in batches {
        let interval = cast(
            batch_column(batch, INTERVAL)?,
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
        )
        .runtime("reading intervals")?;
        let interval = interval.as_primitive::<TimestampMicrosecondType>();
        let mut keys = Vec::new();
        for key in [COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS] {
            keys.push(strings(batch_column(batch, key)?)?.into_iter());
        }
        for i in 0..batch.num_rows() {
            let key = std::array::from_fn(|k| keys[k].next().flatten());
            groups.push((interval.value(i), key));
        }
    }
    Ok(groups)
}

/// Reads scored rows out of a batch.
pub fn rows(batch: &RecordBatch, names: &[&str]) -> Result<Vec<ScoredRow>> {
    let interval = cast(
        batch_column(batch, INTERVAL)?,
        &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
    )
    .runtime("reading intervals")?;
    let interval = interval.as_primitive::<TimestampMicrosecondType>();
    let computer = strings(batch_column(batch, COMPUTER)?)?;
    let account = strings(batch_column(batch, ACCOUNT)?)?;
    let account_type = strings(batch_column(batch, ACCOUNT_TYPE)?)?;
    let process = strings(batch_column(batch, PROCESS)?)?;
    let count = cast(batch_column(batch, COUNT)?, &DataType::Int64).runtime("reading counts")?;
    let count = count.as_primitive::<Int64Type>();
    let features: Vec<ArrayRef> = names
        .iter()
        .map(|f| cast(batch_column(batch, f)?, &DataType::Float64).runtime("reading features"))
        .collect::<Result<_>>()?;
    let score = batch_column(batch, SCORE)?.as_primitive::<Float64Type>();
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        out.push(ScoredRow {
            interval_us: interval.value(i),
            computer: computer[i].clone(),
            account: account[i].clone(),
            account_type: account_type[i].clone(),
            process: process[i].clone(),
            count: count.value(i),
            command_lines: GroupLines::default(),
            features: features
                .iter()
                .map(|f| f.as_primitive::<Float64Type>().value(i))
                .collect(),
            score: score.value(i),
            explanation: Vec::new(),
            evidence: None,
        });
    }
    Ok(out)
}

/// A group's distinct command lines, sorted: a slice of a string array that the rows read
/// from the same batch share.
#[derive(Debug, Clone, Default)]
pub struct GroupLines(Option<StringArray>);

impl GroupLines {
    /// List `i` of `lists` (none if the list is null); nulls inside are skipped.
    pub(crate) fn of_list(lists: &ListArray, i: usize) -> Self {
        Self(
            lists
                .is_valid(i)
                .then(|| lists.value(i).as_string::<i32>().clone()),
        )
    }

    /// The lines, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|lines| lines.iter().flatten())
    }

    /// The lines joined by `separator`.
    pub fn join(&self, separator: &str) -> String {
        self.iter().collect::<Vec<_>>().join(separator)
    }
}

impl<S: AsRef<str>> FromIterator<S> for GroupLines {
    fn from_iter<I: IntoIterator<Item = S>>(lines: I) -> Self {
        Self(Some(StringArray::from_iter_values(lines)))
    }
}

impl PartialEq for GroupLines {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl serde::Serialize for GroupLines {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// One scored summary row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoredRow {
    /// Interval start, microseconds since the epoch (UTC).
    pub interval_us: i64,
    /// `Computer`.
    pub computer: Option<String>,
    /// `Account`.
    pub account: Option<String>,
    /// `AccountType`.
    pub account_type: Option<String>,
    /// `Process`.
    pub process: Option<String>,
    /// Events in the group.
    pub count: i64,
    /// Distinct command lines, sorted (report rows only, from [`attach_command_lines`]).
    pub command_lines: GroupLines,
    /// Features, in the feature set's order.
    pub features: Vec<f64>,
    /// Each feature's share of the splits that isolated the row (report rows only).
    pub explanation: Vec<f64>,
    /// scikit-learn's `score_samples` value.
    pub score: f64,
    /// What the group's evidence shows (report rows of the evidence features only, from
    /// [`super::evidence::attach_evidence`]).
    pub evidence: Option<super::evidence::Evidence>,
}

impl ScoredRow {
    /// The row's summary group: interval and keys.
    pub fn group(&self) -> Group {
        let keys = [
            &self.computer,
            &self.account,
            &self.account_type,
            &self.process,
        ];
        (self.interval_us, keys.map(Clone::clone))
    }
}

/// The report's order: score ascending, then the keys (groups are distinct, so the order
/// is total). Sorts (score, position) pairs, looking at a row's keys only on equal scores,
/// then moves each row once: rows are large, and scattered in memory.
pub fn sort_report(rows: &mut Vec<ScoredRow>) {
    let mut order: Vec<(f64, usize)> = rows.iter().map(|r| r.score).zip(0..).collect();
    order.sort_unstable_by(|&(score_a, a), &(score_b, b)| {
        score_a.total_cmp(&score_b).then_with(|| {
            let (a, b) = (&rows[a], &rows[b]);
            a.interval_us
                .cmp(&b.interval_us)
                .then(a.computer.cmp(&b.computer))
                .then(a.account.cmp(&b.account))
                .then(a.account_type.cmp(&b.account_type))
                .then(a.process.cmp(&b.process))
        })
    });
    let mut slots: Vec<Option<ScoredRow>> = std::mem::take(rows).into_iter().map(Some).collect();
    rows.extend(order.into_iter().filter_map(|(_, i)| slots[i].take()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ListBuilder, StringBuilder};

    #[test]
    fn command_lines_skip_nulls_and_serialise_as_a_list() {
        let mut builder = ListBuilder::new(StringBuilder::new());
        builder.values().append_value("a");
        builder.values().append_null();
        builder.values().append_value("b c");
        builder.append(true);
        builder.append(false);
        builder.append(true);
        let lists = builder.finish();

        let first = GroupLines::of_list(&lists, 0);
        assert_eq!(first.iter().collect::<Vec<_>>(), ["a", "b c"]);
        assert_eq!(first.iter().count(), 2);
        assert_eq!(first.join(" | "), "a | b c");
        assert_eq!(serde_json::to_string(&first).unwrap(), r#"["a","b c"]"#);
        assert_eq!(first, ["a", "b c"].into_iter().collect());
        for empty in [
            GroupLines::of_list(&lists, 1),
            GroupLines::of_list(&lists, 2),
        ] {
            assert!(empty.iter().next().is_none());
            assert_eq!(empty.join(" | "), "");
            assert_eq!(serde_json::to_string(&empty).unwrap(), "[]");
            assert_eq!(empty, GroupLines::default());
        }
    }

    fn row(score: f64, interval_us: i64, computer: Option<&str>) -> ScoredRow {
        ScoredRow {
            interval_us,
            computer: computer.map(str::to_string),
            account: None,
            account_type: None,
            process: None,
            count: 1,
            command_lines: GroupLines::default(),
            features: vec![],
            explanation: vec![],
            score,
            evidence: None,
        }
    }

    #[test]
    fn the_report_is_ordered_by_score_then_keys() {
        let mut rows = vec![
            row(0.5, 0, Some("a")),
            row(0.1, 1, Some("b")),
            row(0.1, 1, Some("a")),
            row(0.1, 0, Some("z")),
            row(0.1, 1, None),
            row(-0.2, 9, Some("q")),
        ];
        sort_report(&mut rows);
        let order: Vec<_> = rows
            .iter()
            .map(|r| (r.score, r.interval_us, r.computer.as_deref()))
            .collect();
        assert_eq!(
            order,
            [
                (-0.2, 9, Some("q")),
                (0.1, 0, Some("z")),
                (0.1, 1, None),
                (0.1, 1, Some("a")),
                (0.1, 1, Some("b")),
                (0.5, 0, Some("a")),
            ]
        );
    }
}
