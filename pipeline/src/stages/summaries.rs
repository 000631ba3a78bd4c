//! Summaries: events → one row per interval × Computer × Account × AccountType × Process
//! with the event count; and, for the intervals of the report window only, the sorted
//! distinct command lines of each group (the notebook's `collect_set`, which drops nulls).
//!
//! The command lines come from the report window's files alone: folding them into the
//! main aggregate (`array_agg(DISTINCT …) FILTER …`) made DataFusion decode and sort every
//! command line of the whole history, several times the cost of the counts. When
//! every file holds one interval ([`Sources::ByInterval`]), the report's files give their
//! counts and command lines in one aggregation and the other files their counts, each
//! aggregated per partition without a shuffle; otherwise ([`Sources::Whole`]) all files give
//! counts and the report's files are aggregated again for their command lines.
//!
//! The history's counts, most of the work, are then read by
//! [`procforest_core::key_counts`] ([`HistoryCounts::KeyCounts`]): the keys as Parquet
//! dictionary indices, counted as numbers — a third of the CPU of DataFusion's `GROUP BY`
//! on strings, which remains for tables whose keys or times are partition values. The
//! report's rows are key counts too ([`REPORT_COUNTS`]), with each group's command lines
//! gathered in the same pass.
//!
//! [`write_summaries`] computes and writes them to the run's scratch (each partition its
//! own files), and each partition's writer digests its rows as it writes them (their
//! categories tallied, the training sample's candidates kept: see
//! [`procforest_core::partition_writer::digest`]), so that the driver indexes the categories and
//! picks the sample without another job. With a set contamination the report's command
//! lines are not gathered then, but after scoring, for the anomalies alone
//! ([`anomalies_command_lines`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::{
    datasource::provider_as_source,
    functions_aggregate::expr_fn::{array_agg, count},
    logical_expr::{ExprFunctionExt, LogicalPlanBuilder, cast, dml::InsertOp},
    prelude::{DataFrame, Expr, SessionContext, lit},
};
use procforest_core::{
    key_counts::{KeyCountsTable, TimeWindow},
    partition_writer::{ScratchSink, digest::DigestSpec},
    scan::{DeltaFilesTable, ResolvedTable, file_interval_column},
    schema::{
        ACCOUNT, ACCOUNT_TYPE, COMMAND_LINE, COMMAND_LINES, COMPUTER, COUNT, GROUP_KEYS, INTERVAL,
        PROCESS, TIME_GENERATED, TableName, keys_as_views,
        table::{
            EVENTS, HISTORY_COUNTS, HISTORY_EVENTS, REPORT_COUNTS, REPORT_EVENTS, STORED_SUMMARIES,
        },
        time_type,
    },
    udf::{Group, GroupSetUdf, SortedDistinctUdf},
};

use super::{column, time_literal};
use crate::{
    error::{Context, Result},
    scratch::{Scratch, ScratchTable},
};

/// The summary interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// UTC days.
    Day,
    /// UTC hours.
    Hour,
}

impl Interval {
    /// Length in microseconds.
    pub fn micros(self) -> i64 {
        match self {
            Interval::Day => 86_400_000_000,
            Interval::Hour => 3_600_000_000,
        }
    }
    /// The start of the interval holding `micros` (UTC).
    pub fn truncate(self, micros: i64) -> i64 {
        micros.div_euclid(self.micros()) * self.micros()
    }
}

/// What to summarise.
#[derive(Debug, Clone, Copy)]
pub struct SummaryWindow {
    /// Events after this (exclusive), if bounded.
    pub start_us: Option<i64>,
    /// Events up to this (inclusive).
    pub end_us: i64,
    /// First interval of the report (command lines are collected from here on).
    pub report_start_us: i64,
    /// Interval length.
    pub interval: Interval,
}

/// `TimeGenerated` as the standard timestamp type (cast if the table stores another unit).
pub(super) async fn event_time(
    ctx: &SessionContext,
    table: TableName,
) -> Result<(DataFrame, Expr)> {
    let events = ctx
        .table(table.as_str())
        .await
        .runtime(format!("reading {table}"))?;
    let time_is_standard = events
        .schema()
        .field_with_unqualified_name(TIME_GENERATED)
        .is_ok_and(|f| f.data_type() == &time_type());
    let time = if time_is_standard {
        column(TIME_GENERATED)
    } else {
        cast(column(TIME_GENERATED), time_type())
    };
    Ok((events, time))
}

/// The start of the UTC interval holding `time`, as integer arithmetic on microseconds
/// (floored, so times before 1970 fall in the right interval). DataFusion's
/// `date_trunc('day', …)` on a UTC timestamp goes through time-zone conversion and string
/// formatting per row: it was over half the cost of the whole aggregation.
fn interval_start(interval: Interval, time: Expr) -> Expr {
    let micros = cast(time, DataType::Int64);
    let length = lit(interval.micros());
    let into_interval = ((micros.clone() % length.clone()) + length.clone()) % length;
    cast(micros - into_interval, time_type())
}

/// The grouping of a summary: the interval, then the four keys. The interval is the scan's
/// file-interval column when it has one (see [`procforest_core::scan`]): the same value,
/// known per file, and the aggregation then needs no shuffle.
pub(super) fn group_by(window: &SummaryWindow, events: &DataFrame, time: Expr) -> Vec<Expr> {
    let file_interval = file_interval_column(window.interval.micros());
    let interval = if events
        .schema()
        .field_with_unqualified_name(&file_interval)
        .is_ok()
    {
        column(&file_interval)
    } else {
        interval_start(window.interval, time)
    };
    vec![
        interval.alias(INTERVAL),
        column(COMPUTER),
        column(ACCOUNT),
        column(ACCOUNT_TYPE),
        column(PROCESS),
    ]
}

/// How the history's summaries are computed when the files are interval-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryCounts {
    /// Read straight from the files, the keys as dictionary indices ([`HISTORY_COUNTS`]).
    KeyCounts,
    /// DataFusion's `GROUP BY` over [`HISTORY_EVENTS`] (a key or the time is a partition
    /// column, so not in the files).
    GroupBy,
}

/// Whose command lines the report gathers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineGathering {
    /// Every report group's, aggregated with the summaries (contamination `auto` flags
    /// most of the report: reading them all at once is cheapest).
    ReportGroups,
    /// Only the anomalies', in a pass over the report's files after scoring (a set
    /// contamination bounds how many groups are flagged: the summaries then count the
    /// report like the history, and no task holds the whole day's command lines).
    Anomalies,
}

/// Which event tables the summaries are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sources {
    /// Every file holds one interval's events: [`HISTORY_EVENTS`] (intervals before the
    /// report) gives counts, [`REPORT_EVENTS`] (the report's intervals) counts and
    /// command lines in the same pass. No group spans both, and no file is read twice.
    ByInterval,
    /// Otherwise: [`EVENTS`] gives the counts, and [`REPORT_EVENTS`] (the files that may
    /// hold report events) the command lines, in a second aggregation.
    Whole,
}

/// The time filter of the summaries: after the window's start, up to its end.
pub(super) fn window_filter(window: &SummaryWindow, time: &Expr) -> Expr {
    let mut filter = time.clone().lt_eq(time_literal(window.end_us));
    if let Some(start) = window.start_us {
        filter = filter.and(time.clone().gt(time_literal(start)));
    }
    filter
}

/// The summaries (interval, keys, `count`) of the registered `table`.
pub async fn summaries(
    ctx: &SessionContext,
    table: TableName,
    window: SummaryWindow,
) -> Result<DataFrame> {
    let (events, time) = event_time(ctx, table).await?;
    events
        .filter(window_filter(&window, &time))
        .and_then(|df| {
            let keys = group_by(&window, &df, time);
            df.aggregate(keys, vec![count(lit(1)).alias(COUNT)])
        })
        .and_then(|df| df.select(keys_as_strings(&[COUNT])))
        .runtime("planning summaries")
}

/// The partitions `ctx` plans: key counts share a lone interval out across them.
pub(super) fn partitions(ctx: &SessionContext) -> usize {
    ctx.copied_config().target_partitions()
}

/// The summaries (interval, keys, `count`) of the registered [`HISTORY_COUNTS`].
pub async fn key_counts(ctx: &SessionContext) -> Result<DataFrame> {
    ctx.table(HISTORY_COUNTS.as_str())
        .await
        .runtime("reading the history's key counts")
}

/// The report's summaries without command lines (interval, keys, `count`): from the
/// registered [`REPORT_COUNTS`] when `key_counts`, else from [`REPORT_EVENTS`]; for
/// [`Sources::ByInterval`] with [`LineGathering::Anomalies`].
pub async fn report_counts(
    ctx: &SessionContext,
    window: SummaryWindow,
    key_counts: bool,
) -> Result<DataFrame> {
    if key_counts {
        return report_key_counts(ctx).await;
    }
    summaries(ctx, REPORT_EVENTS, window).await
}

/// The registered [`REPORT_COUNTS`]: the report's key counts, with each group's command
/// lines when registered so ([`report_summaries`]' columns).
async fn report_key_counts(ctx: &SessionContext) -> Result<DataFrame> {
    ctx.table(REPORT_COUNTS.as_str())
        .await
        .runtime("reading the report's key counts")
}

/// The report's summaries with their command lines (interval, keys, `count`,
/// `command_lines`) from the registered [`REPORT_EVENTS`], in one aggregation; for
/// [`Sources::ByInterval`], where those files hold the report's intervals only, when key
/// counts cannot read them.
pub async fn report_summaries(ctx: &SessionContext, window: SummaryWindow) -> Result<DataFrame> {
    let (events, time) = event_time(ctx, REPORT_EVENTS).await?;
    let lines = array_agg(column(COMMAND_LINE))
        .filter(column(COMMAND_LINE).is_not_null())
        .build()
        .runtime("planning the report's command lines")?
        .alias(COMMAND_LINES);
    events
        .filter(window_filter(&window, &time))
        .and_then(|df| {
            let keys = group_by(&window, &df, time);
            df.aggregate(keys, vec![count(lit(1)).alias(COUNT), lines])
        })
        .and_then(|df| df.select(distinct_sorted_lines(&[COUNT])))
        .runtime("planning the report's summaries")
}

/// The interval, the keys as plain strings, and `extra`. The scan reads the keys as
/// string views (see [`procforest_core::schema::keys_as_views`]); an aggregate's views
/// point into buffers shared by all its output batches, which Ballista's shuffle would
/// then write out in full with every batch.
pub(super) fn keys_as_strings(extra: &[&str]) -> Vec<Expr> {
    let mut select = vec![column(INTERVAL)];
    select.extend(
        GROUP_KEYS
            .into_iter()
            .map(|key| cast(column(key), DataType::Utf8).alias(key)),
    );
    select.extend(extra.iter().copied().map(column));
    select
}

/// The interval, the keys, `extra`, and each group's command lines made distinct and
/// sorted (cheaper per group afterwards than an `array_agg(DISTINCT …)`, and cheaper in
/// one function of ours than in `array_sort(array_distinct(…))`).
fn distinct_sorted_lines(extra: &[&str]) -> Vec<Expr> {
    let mut select = keys_as_strings(extra);
    select.push(
        SortedDistinctUdf::default()
            .into_udf()
            .call(vec![column(COMMAND_LINES)])
            .alias(COMMAND_LINES),
    );
    select
}

/// The sorted distinct command lines (interval, keys, `command_lines`) of the report
/// window's groups, from the registered [`REPORT_EVENTS`] table (the report window's
/// files): of every group, for [`Sources::Whole`] with [`LineGathering::ReportGroups`]; of
/// the groups `only` finds (a [`procforest_core::udf::GroupSetUdf`]: the anomalies') with
/// [`LineGathering::Anomalies`].
pub async fn command_lines(
    ctx: &SessionContext,
    window: SummaryWindow,
    only: Option<datafusion::logical_expr::ScalarUDF>,
) -> Result<DataFrame> {
    let (events, time) = event_time(ctx, REPORT_EVENTS).await?;
    let mut filter = time
        .clone()
        .gt_eq(time_literal(window.report_start_us))
        .and(time.clone().lt_eq(time_literal(window.end_us)))
        .and(column(COMMAND_LINE).is_not_null());
    let keys = group_by(&window, &events, time);
    if let Some(only) = only {
        filter = filter.and(only.call(keys.iter().map(|k| k.clone().unalias()).collect()));
    }
    // All of a group's command lines, made distinct and sorted per group afterwards: an
    // `array_agg(DISTINCT …)` would cost Ballista an extra aggregation stage and shuffle.
    let all = array_agg(column(COMMAND_LINE)).alias(COMMAND_LINES);
    events
        .filter(filter)
        .and_then(|df| df.aggregate(keys, vec![all]))
        .and_then(|df| df.select(distinct_sorted_lines(&[])))
        .runtime("planning command lines")
}

/// Computes `df` (on the cluster, or on the driver for a driver-side session) and writes
/// it as Parquet under scratch folder `dir` (a URL ending with `/`: [`Scratch::path`]), each
/// partition its own files where it was computed ([`procforest_core::partition_writer`]); returns
/// the number of rows written.
pub async fn write(df: DataFrame, dir: &str, what: &str) -> Result<u64> {
    write_digested(df, dir, what, None).await
}

/// [`write()`], each partition also writing its digest as `digest` says (when set).
pub async fn write_digested(
    df: DataFrame,
    dir: &str,
    what: &str,
    digest: Option<DigestSpec>,
) -> Result<u64> {
    let mut sink = ScratchSink::try_new(dir, Arc::new(df.schema().as_arrow().clone()))
        .runtime(format!("writing {what} to {dir}"))?;
    if let Some(spec) = digest {
        sink = sink
            .with_digest(spec)
            .runtime(format!("digesting {what}"))?;
    }
    insert(df, sink, what).await
}

/// The digests of `df`'s rows as `spec` says, each partition's written where it is
/// computed; the rows themselves are stored elsewhere already (folder `dir` stays
/// empty). Returns the rows taken.
async fn digest_only(df: DataFrame, dir: &str, spec: DigestSpec, what: &str) -> Result<u64> {
    let sink = ScratchSink::try_new(dir, Arc::new(df.schema().as_arrow().clone()))
        .and_then(|sink| sink.with_digest(spec))
        .runtime(format!("digesting {what}"))?
        .digest_only();
    insert(df, sink, what).await
}

/// Computes `df` into `sink`; returns the rows it took.
async fn insert(df: DataFrame, sink: ScratchSink, what: &str) -> Result<u64> {
    let (state, plan) = df.into_parts();
    let insert = LogicalPlanBuilder::insert_into(
        plan,
        "scratch",
        provider_as_source(Arc::new(sink)),
        InsertOp::Append,
    )
    .and_then(|builder| builder.build())
    .runtime(format!("planning {what}"))?;
    let written = DataFrame::new(state, insert)
        .collect()
        .await
        .runtime(format!("computing {what}"))?;
    Ok(rows_written(&written))
}

/// The row count an insert reports.
fn rows_written(batches: &[arrow::record_batch::RecordBatch]) -> u64 {
    use arrow::array::AsArray;
    batches
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_primitive_opt::<arrow::datatypes::UInt64Type>()
                .map(|c| c.values().iter().sum::<u64>())
        })
        .sum()
}

/// How the summaries are computed.
#[derive(Debug, Clone, Copy)]
pub struct SummaryPlan {
    /// Which event tables.
    pub sources: Sources,
    /// How the history is counted (interval-aligned files).
    pub history_counts: Option<HistoryCounts>,
    /// Whose command lines are gathered.
    pub command_lines: LineGathering,
    /// The report counted by key counts ([`REPORT_COUNTS`]), with its command lines when
    /// [`LineGathering::ReportGroups`].
    pub report_key_counts: bool,
}

impl SummaryPlan {
    /// The one place the summaries' strategy is chosen, from the files to read and when
    /// the report's command lines are wanted: interval-aligned files (`split` holds the
    /// history's and the report's apart) are counted by interval, the history by key counts
    /// when the keys and times are in the files; the report by key counts when both can
    /// be. With a set contamination only the anomalies' command lines are gathered, after
    /// scoring, and the report is counted like the history.
    pub fn choose(files: &SummaryFiles, interval_us: i64, contamination_set: bool) -> Self {
        let history_counts = match files.sources {
            Sources::ByInterval if KeyCountsTable::can_read(&files.counted, interval_us) => {
                Some(HistoryCounts::KeyCounts)
            }
            Sources::ByInterval => Some(HistoryCounts::GroupBy),
            Sources::Whole => None,
        };
        let command_lines = match contamination_set {
            true => LineGathering::Anomalies,
            false => LineGathering::ReportGroups,
        };
        let report_key_counts = history_counts == Some(HistoryCounts::KeyCounts)
            && KeyCountsTable::can_read(&files.report, interval_us);
        SummaryPlan {
            sources: files.sources,
            history_counts,
            command_lines,
            report_key_counts,
        }
    }

    /// Registers the tables this plan reads in `ctx`: key counts or explicit-file scans
    /// of `files`, for the time window `(after_us, until_us]`.
    pub fn register(
        &self,
        ctx: &SessionContext,
        files: &SummaryFiles,
        schema: &arrow::datatypes::Schema,
        interval_us: i64,
        window: TimeWindow,
    ) -> Result<()> {
        let counted_scan = match self.history_counts {
            Some(HistoryCounts::KeyCounts) => {
                let counts = KeyCountsTable::try_new(files.counted.clone(), interval_us, window)
                    .runtime("building the history's key counts")?
                    .split_lone_intervals(partitions(ctx));
                ctx.register_table(HISTORY_COUNTS.as_str(), Arc::new(counts))
                    .runtime("registering the history's key counts")?;
                None
            }
            Some(HistoryCounts::GroupBy) => Some(HISTORY_EVENTS),
            None => Some(EVENTS),
        };
        if self.report_key_counts {
            let counts = KeyCountsTable::try_new(files.report.clone(), interval_us, window)
                .runtime("building the report's key counts")?
                .split_lone_intervals(partitions(ctx));
            let counts = match self.command_lines {
                LineGathering::ReportGroups => counts.with_command_lines(),
                LineGathering::Anomalies => counts,
            };
            ctx.register_table(REPORT_COUNTS.as_str(), Arc::new(counts))
                .runtime("registering the report's key counts")?;
        }
        let scans = counted_scan
            .map(|name| (name, files.counted.clone()))
            .into_iter()
            .chain([(REPORT_EVENTS, files.report.clone())]);
        for (name, resolved) in scans {
            let scan = DeltaFilesTable::try_new(resolved, keys_as_views(schema))
                .runtime(format!("building the scan of {name}"))?
                .with_file_intervals(interval_us);
            ctx.register_table(name.as_str(), Arc::new(scan))
                .runtime(format!("registering {name}"))?;
        }
        Ok(())
    }
}

/// The files the summaries read: split at the report's first interval when every file
/// holds one interval ([`Sources::ByInterval`]); otherwise every file of the training
/// window is counted and the report window's files are read again for command lines.
#[derive(Debug, Clone)]
pub struct SummaryFiles {
    /// Whether the files are interval-aligned.
    pub sources: Sources,
    /// The files whose events are counted (the history's, or all).
    pub counted: ResolvedTable,
    /// The report window's files.
    pub report: ResolvedTable,
}

/// The training sample's choice, which the summaries' digests prepare.
#[derive(Debug, Clone, Copy)]
pub struct SampleChoice {
    /// The sample key's seed.
    pub seed: u64,
    /// Rows in the sample.
    pub rows: usize,
}

/// What [`write_summaries`] wrote to scratch.
pub struct WrittenSummaries {
    /// Summary rows.
    pub groups: u64,
    /// Folders holding the counts: the report's folder too for [`Sources::ByInterval`].
    pub counts_dirs: Vec<String>,
    /// The folders of the counts' digests.
    pub digest_dirs: Vec<String>,
    /// Schema of the counts.
    pub counts_schema: SchemaRef,
    /// The folder of the report's own summary rows (for [`Sources::ByInterval`]).
    pub report_dir: Option<String>,
    /// The report groups' command lines ([`LineGathering::ReportGroups`]; the anomalies'
    /// are gathered after scoring otherwise).
    pub lines: Option<ScratchTable>,
}

/// Computes the summaries, and the report's command lines when every report group's are
/// gathered, on the cluster (two independent jobs at once) and writes them to scratch,
/// the counts digested for `sample`.
pub async fn write_summaries(
    ctx: &SessionContext,
    how: SummaryPlan,
    window: SummaryWindow,
    sample: SampleChoice,
    scratch: &Scratch,
    kept: Option<&Kept>,
) -> Result<WrittenSummaries> {
    // A folder's digests go to the folder beside it, `<folder>-digest/`.
    let digest = |dir: &str| DigestSpec {
        dir: format!("{}-digest/", dir.trim_end_matches('/')),
        seed: sample.seed,
        sample_rows: sample.rows,
        report_start_us: window.report_start_us,
        report_end_us: window.end_us,
    };
    let counts_dir = match how.sources {
        Sources::Whole => scratch.path("summaries"),
        Sources::ByInterval => scratch.path("history"),
    };
    let counts = match kept {
        Some(kept) => kept_counted(ctx, how, window, kept).await?,
        None => counted(ctx, how, window).await?,
    };
    // The report's counts (with their command lines or not) for interval-aligned files;
    // otherwise the report's command lines alone, when gathered now.
    let report = match (how.sources, how.command_lines) {
        (Sources::ByInterval, LineGathering::ReportGroups) => {
            let report = match how.report_key_counts {
                true => report_key_counts(ctx).await?,
                false => report_summaries(ctx, window).await?,
            };
            Some((report, scratch.path("report")))
        }
        (Sources::ByInterval, LineGathering::Anomalies) => Some((
            report_counts(ctx, window, how.report_key_counts).await?,
            scratch.path("report"),
        )),
        (Sources::Whole, LineGathering::ReportGroups) => Some((
            command_lines(ctx, window, None).await?,
            scratch.path(COMMAND_LINES),
        )),
        (Sources::Whole, LineGathering::Anomalies) => None,
    };
    let counts_schema = Arc::new(counts.schema().as_arrow().clone());
    let report = report.map(|(df, dir)| {
        let schema = Arc::new(df.schema().as_arrow().clone());
        (df, ScratchTable { dir, schema })
    });
    // The report's rows are summaries too when the files are interval-aligned.
    let report_digest = match (how.sources, &report) {
        (Sources::ByInterval, Some((_, table))) => Some(digest(&table.dir)),
        _ => None,
    };
    let counts_digest = digest(&counts_dir);
    let mut digest_dirs = vec![counts_digest.dir.clone()];
    digest_dirs.extend(report_digest.as_ref().map(|d| d.dir.clone()));
    let write_report = async {
        match &report {
            Some((df, table)) => {
                write_digested(df.clone(), &table.dir, "the report", report_digest).await
            }
            None => Ok(0),
        }
    };
    // The stored rows are read where they are; only their digests are written.
    let stored_dir = scratch.path("stored");
    let stored = match kept.filter(|kept| !kept.files.is_empty()) {
        Some(kept) => Some((stored_rows(ctx, kept).await?, digest(&stored_dir))),
        None => None,
    };
    digest_dirs.extend(stored.as_ref().map(|(_, spec)| spec.dir.clone()));
    let digest_stored = async {
        match stored {
            Some((df, spec)) => digest_only(df, &stored_dir, spec, "the stored summaries").await,
            None => Ok(0),
        }
    };
    let write_counts = write_digested(counts, &counts_dir, "summaries", Some(counts_digest));
    let (counted, report_rows, stored_rows) =
        futures::future::try_join3(write_counts, write_report, digest_stored).await?;
    let report = report.map(|(_, table)| table);
    let report_dir = match how.sources {
        Sources::ByInterval => report.as_ref().map(|table| table.dir.clone()),
        Sources::Whole => None,
    };
    let mut counts_dirs = vec![counts_dir];
    counts_dirs.extend(kept.iter().flat_map(|kept| kept.files.iter().cloned()));
    let mut groups = counted + stored_rows;
    if let Some(dir) = &report_dir {
        counts_dirs.push(dir.clone());
        groups += report_rows;
    }
    Ok(WrittenSummaries {
        groups,
        counts_dirs,
        digest_dirs,
        counts_schema,
        report_dir,
        lines: match how.command_lines {
            LineGathering::ReportGroups => report,
            LineGathering::Anomalies => None,
        },
    })
}

/// The counts of the registered event tables: every interval's ([`Sources::Whole`]) or
/// the history's ([`Sources::ByInterval`]).
async fn counted(
    ctx: &SessionContext,
    how: SummaryPlan,
    window: SummaryWindow,
) -> Result<DataFrame> {
    match (how.sources, how.history_counts) {
        (Sources::Whole, _) => summaries(ctx, EVENTS, window).await,
        (Sources::ByInterval, Some(HistoryCounts::KeyCounts)) => key_counts(ctx).await,
        (Sources::ByInterval, _) => summaries(ctx, HISTORY_EVENTS, window).await,
    }
}

/// Summary rows of earlier runs read instead of counted (`--summaries`: see
/// [`crate::summary_store`]).
#[derive(Debug, Clone)]
pub struct Kept {
    /// The data files holding the rows of the intervals read.
    pub files: Vec<String>,
    /// The intervals counted from the events (with [`Sources::Whole`], the events' counts
    /// are kept to these: the files read may hold other intervals' events too).
    pub counted: Vec<i64>,
    /// Whether the history has files to count (else only the stored rows are read).
    pub count_history: bool,
}

/// The counts of the intervals `kept` says are counted, in the stored rows' schema.
async fn kept_counted(
    ctx: &SessionContext,
    how: SummaryPlan,
    window: SummaryWindow,
    kept: &Kept,
) -> Result<DataFrame> {
    let counted = match kept.count_history {
        true => Some(counted(ctx, how, window).await?),
        false => None,
    };
    // Files holding several intervals hold events of intervals read from the table too.
    let keep_to = (how.sources == Sources::Whole).then_some(kept.counted.as_slice());
    computed_only(ctx, counted, keep_to, &crate::summary_store::rows_schema())
}

/// The stored summary rows of `kept`, registered as [`STORED_SUMMARIES`].
async fn stored_rows(ctx: &SessionContext, kept: &Kept) -> Result<DataFrame> {
    let schema = crate::summary_store::rows_schema();
    crate::scratch::register_parquet(ctx, STORED_SUMMARIES, &kept.files, &schema)?;
    let stored = ctx
        .table(STORED_SUMMARIES.as_str())
        .await
        .runtime(format!("reading {STORED_SUMMARIES}"))?;
    conform(stored, &schema)
}

/// The rows `computed` (if any) holds of the intervals `keep_to` lists (of every
/// interval when `None`), in `schema`; no rows when nothing was computed.
pub(crate) fn computed_only(
    ctx: &SessionContext,
    computed: Option<DataFrame>,
    keep_to: Option<&[i64]>,
    schema: &SchemaRef,
) -> Result<DataFrame> {
    let Some(df) = computed else {
        return no_rows(ctx, schema);
    };
    let df = match keep_to {
        Some(intervals) => {
            let intervals = intervals.iter().map(|&s| time_literal(s)).collect();
            df.filter(column(INTERVAL).in_list(intervals, false))
                .runtime("planning the computed intervals")?
        }
        None => df,
    };
    conform(df, schema)
}

/// A frame of `schema` without rows (typed nulls, filtered out).
fn no_rows(ctx: &SessionContext, schema: &SchemaRef) -> Result<DataFrame> {
    let nulls = schema
        .fields()
        .iter()
        .map(|f| {
            cast(
                lit(datafusion::scalar::ScalarValue::Null),
                f.data_type().clone(),
            )
            .alias(f.name())
        })
        .collect::<Vec<_>>();
    ctx.read_empty()
        .and_then(|df| df.select(nulls))
        .and_then(|df| df.filter(lit(false)))
        .runtime("planning no summary rows")
}

/// `df`'s columns of `schema`, cast to its types.
fn conform(df: DataFrame, schema: &SchemaRef) -> Result<DataFrame> {
    let select = schema
        .fields()
        .iter()
        .map(|f| cast(column(f.name()), f.data_type().clone()).alias(f.name()))
        .collect::<Vec<_>>();
    df.select(select).runtime("planning the summaries' columns")
}

/// Most bytes of anomalies' groups the plan may carry to find their command lines; beyond
/// it every report group's are gathered (and the anomalies' picked on the driver).
pub const MAX_GROUP_SET_BYTES: usize = 4 << 20;

/// The anomalies' command lines ([`LineGathering::Anomalies`]): the report's events
/// filtered by a function that carries the anomalies' groups in the plan (no join, no
/// shuffle), aggregated and written to scratch on the cluster.
pub async fn anomalies_command_lines(
    ctx: &SessionContext,
    groups: &[Group],
    window: SummaryWindow,
    scratch: &Scratch,
) -> Result<ScratchTable> {
    let in_groups = GroupSetUdf::new(groups).runtime("the anomalies' groups")?;
    let only = (in_groups.payload().len() <= MAX_GROUP_SET_BYTES).then(|| in_groups.into_udf());
    let lines = command_lines(ctx, window, only).await?;
    let table = ScratchTable {
        dir: scratch.path("anomaly-command-lines"),
        schema: Arc::new(lines.schema().as_arrow().clone()),
    };
    write(lines, &table.dir, "the anomalies' command lines").await?;
    Ok(table)
}

/// The digests of the registered `summaries` (the features' input table) as a run
/// takes them: written to a temporary scratch folder with digests as `spec` says (its
/// folder set there), then read back.
#[cfg(test)]
pub(crate) async fn digests_of_registered(
    ctx: &SessionContext,
    spec: DigestSpec,
) -> procforest_core::partition_writer::digest::Digests {
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| {
        url::Url::from_directory_path(dir.path().join(name))
            .unwrap()
            .to_string()
    };
    let spec = DigestSpec {
        dir: url("digest"),
        ..spec
    };
    let rows = ctx
        .table(procforest_core::schema::table::SUMMARIES.as_str())
        .await
        .unwrap();
    write_digested(rows, &url("rows"), "summaries", Some(spec))
        .await
        .unwrap();
    crate::scratch::read_digests(ctx, &[url("digest")])
        .await
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_utc_and_handles_negative_times() {
        let day = Interval::Day;
        assert_eq!(day.truncate(86_400_000_000 + 5), 86_400_000_000);
        assert_eq!(day.truncate(-1), -86_400_000_000);
        assert_eq!(Interval::Hour.truncate(3_600_000_001), 3_600_000_000);
    }

    /// Events with their keys as string views, as the scan reads them, registered as
    /// `table` in a plain session.
    fn view_events(ctx: &SessionContext, table: &str) {
        use arrow::{
            array::{ArrayRef, StringViewArray, TimestampMicrosecondArray},
            datatypes::{Field, Schema},
            record_batch::RecordBatch,
        };
        use std::sync::Arc;
        let day = Interval::Day.micros();
        let times = [5, 6, day + 1, day + 2, day + 3];
        let keys = |v: [Option<&str>; 5]| Arc::new(StringViewArray::from(v.to_vec())) as ArrayRef;
        let long = "a-computer-name-longer-than-twelve-bytes";
        let mut columns: Vec<ArrayRef> = vec![Arc::new(
            TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC"),
        )];
        columns.push(keys([
            Some(long),
            Some(long),
            Some(long),
            Some("b"),
            Some(long),
        ]));
        columns.push(keys([Some("x"), Some("x"), Some("x"), Some("x"), None]));
        columns.push(keys([Some("User"); 5]));
        columns.push(keys([Some("cmd.exe"); 5]));
        columns.push(Arc::new(arrow::array::StringArray::from(vec![
            Some("c1"),
            Some("c2"),
            Some("c1"),
            None,
            Some("c3"),
        ])));
        let mut fields = vec![Field::new(TIME_GENERATED, time_type(), false)];
        for key in GROUP_KEYS {
            fields.push(Field::new(key, DataType::Utf8View, true));
        }
        fields.push(Field::new(COMMAND_LINE, DataType::Utf8, true));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        ctx.register_batch(table, batch).unwrap();
    }

    #[tokio::test]
    async fn keys_read_as_views_come_out_as_plain_strings() {
        let ctx = SessionContext::new();
        view_events(&ctx, "events");
        view_events(&ctx, REPORT_EVENTS.as_str());
        let window = SummaryWindow {
            start_us: None,
            end_us: 3 * Interval::Day.micros(),
            report_start_us: Interval::Day.micros(),
            interval: Interval::Day,
        };
        let counts = summaries(&ctx, EVENTS, window).await.unwrap();
        let report = report_summaries(&ctx, window).await.unwrap();
        for df in [&counts, &report] {
            for key in GROUP_KEYS {
                let field = df.schema().field_with_unqualified_name(key).unwrap();
                assert_eq!(field.data_type(), &DataType::Utf8, "{key}");
            }
        }
        let table = |df: DataFrame| async move {
            let select: Vec<Expr> = [INTERVAL, COMPUTER, ACCOUNT, COUNT]
                .into_iter()
                .chain(
                    df.schema()
                        .has_column_with_unqualified_name(COMMAND_LINES)
                        .then_some(COMMAND_LINES),
                )
                .map(column)
                .collect();
            let order = [INTERVAL, COMPUTER, ACCOUNT].map(|c| column(c).sort(true, true));
            let batches = df
                .select(select)
                .unwrap()
                .sort(order.to_vec())
                .unwrap()
                .collect()
                .await
                .unwrap();
            arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        };
        // Day 0: one group of two events; day 1: three groups, one with a null Account.
        let long = "a-computer-name-longer-than-twelve-bytes";
        let expected_counts = format!(
            "+----------------------+------------------------------------------+---------+-------+\n\
             | interval             | Computer                                 | Account | count |\n\
             +----------------------+------------------------------------------+---------+-------+\n\
             | 1970-01-01T00:00:00Z | {long} | x       | 2     |\n\
             | 1970-01-02T00:00:00Z | {long} |         | 1     |\n\
             | 1970-01-02T00:00:00Z | {long} | x       | 1     |\n\
             | 1970-01-02T00:00:00Z | b                                        | x       | 1     |\n\
             +----------------------+------------------------------------------+---------+-------+"
        );
        assert_eq!(table(counts).await, expected_counts);
        let report = table(report).await;
        let lines: Vec<&str> = report
            .lines()
            .skip(3)
            .filter_map(|l| l.rsplit('|').nth(1))
            .map(str::trim)
            .collect();
        assert_eq!(lines, ["[c1, c2]", "[c3]", "[c1]", ""], "{report}");
    }
}
