//! Evidence: what a summary group's events say beyond their count — their command lines,
//! their parents, and whether the process is new where it ran. Computed on the cluster
//! from the training window's events, in jobs written to scratch:
//!
//! 1. [`evidence_lines`]: every event's command line reduced to its template
//!    ([`procforest_core::template`]), the events counted per interval × group × parent ×
//!    template ([`EVIDENCE_LINES`]), with the length and entropy of the group's longest
//!    and most random line — read straight from the files by key counts
//!    ([`Gathered::Evidence`]) when each holds one interval, where an interval's distinct
//!    lines are templated once; each row with its (process, template)'s events in the
//!    interval;
//! 2. [`counts_sql`]: those counted per interval × group × parent ([`EVIDENCE_PARENTS`])
//!    and per interval × group ([`EVIDENCE_GROUPS`]), with the interval's totals of the
//!    keys the features compare, each written once because the last step reads each
//!    several times;
//! 3. [`group_evidence_sql`]: one row per summary group ([`GROUP_EVIDENCE`]).
//!
//! The per-interval totals travel with the rows, and with them into the summaries table:
//! a feature's *elsewhere* is the window's total less the row's own interval's, so the
//! last step aggregates only the window's totals over the history's rows, and a night
//! with `--summaries` computes the per-interval ones for its new interval alone.
//!
//! Every feature compares a group's interval with the *other* intervals of the training
//! window (leave one interval out), so a training row and a report row are measured the
//! same way and the model learns how often normal groups look new. Within these history
//! statistics a null process, host or account counts as the empty one, and a null parent
//! or command line as the empty one.
//!
//! Per group, with *elsewhere* = events in the window's other intervals:
//! - `novel_template_share`: share of the group's events whose (process, template) has no
//!   event elsewhere;
//! - `log_rarest_template_events`: min over its templates of ln(1 + events elsewhere);
//! - `log_rarest_template_hosts`: min over its templates of ln(hosts that ran the process
//!   with that template, in the whole window);
//! - `longest_line_log2`: log2(1 + characters of its longest command line);
//! - `line_entropy`: the highest byte entropy of its command lines (bits per byte);
//! - `log_rarest_lineage_events`: min over its parents of ln(1 + events elsewhere of the
//!   (parent, process) pair, on any host);
//! - `lineage_new_on_host`: 1 if one of its (parent, process) pairs has no event elsewhere
//!   on this host, else 0;
//! - `process_new_on_host`: 1 if the process has no event elsewhere on this host;
//! - `process_new_for_account`: 1 if the account has no event elsewhere of the process.
//!
//! The group's novel templates (sorted) and its rarest parent are kept beside the
//! features, for the explanations.

use std::{collections::HashMap, sync::Arc};

use arrow::{
    array::{Array, AsArray, Float64Array, RecordBatch, StringArray},
    compute::cast as cast_array,
    datatypes::{DataType, Field, Float64Type, Schema, SchemaRef, TimestampMicrosecondType},
};
use datafusion::{
    functions::expr_fn::{character_length, coalesce},
    functions_aggregate::{
        expr_fn::{count, max},
        sum::sum_udaf,
    },
    logical_expr::{ExprFunctionExt, cast, expr::WindowFunction},
    prelude::{DataFrame, Expr, SessionContext, lit},
};
use procforest_core::{
    key_counts::{Gathered, KeyCountsTable, TimeWindow, evidence::INTERVAL_TOTALS},
    scan::{DeltaFilesTable, ResolvedTable},
    schema::{
        ACCOUNT, ACCOUNT_TYPE, COMMAND_LINE, COMPUTER, COUNT, FIRST_SEEN_FEATURES, GROUP_KEYS,
        INTERVAL, LINEAGE_FEATURES, NOVELTY_FEATURES, PARENT_PROCESS_NAME, PROCESS, TableName,
        evidence::{
            ENTROPY, INTERVAL_ACCOUNT_EVENTS, INTERVAL_HOST_EVENTS, INTERVAL_HOST_LINEAGE_EVENTS,
            INTERVAL_LINEAGE_EVENTS, INTERVAL_TEMPLATE_EVENTS, LONGEST, NOVEL_TEMPLATES, PARENT,
            RAREST_PARENT, TEMPLATE,
        },
        keys_as_views,
        table::{
            COMPUTED_LINES, EVIDENCE_COUNTS, EVIDENCE_EVENTS, EVIDENCE_GROUPS, EVIDENCE_LINES,
            EVIDENCE_PARENTS, GROUP_EVIDENCE,
        },
        time_type,
    },
    udf::{
        GROUP_SET_NAME, Group, GroupSetUdf, LineEntropyUdf, SORTED_DISTINCT_NAME,
        SortedDistinctUdf, TemplateUdf,
    },
};

use super::{
    column, quote, same_key_sql,
    scoring::{self, ScoredRow},
    summaries::{
        MAX_GROUP_SET_BYTES, SummaryWindow, computed_only, event_time, group_by, keys_as_strings,
        partitions, window_filter, write,
    },
    with_hash_joins,
};
use crate::{
    error::{Context, Result},
    scratch::{Scratch, ScratchTable, register_parquet, register_parquet_filtered},
    summary_store::{EVIDENCE_KINDS, Kind},
};

/// Registers the training window's files for [`evidence_lines`]: as
/// [`EVIDENCE_COUNTS`], key counts gathering the evidence, when every file holds one
/// interval (as the summaries' key counts need); otherwise as [`EVIDENCE_EVENTS`], every
/// file scanned with `schema`'s keys read as string views. That scan has no per-file
/// intervals: declared as its partitioning under the evidence's projection, DataFusion
/// dropped them again at run time (a warning per job), and the evidence's aggregation
/// gains nothing from them since it groups by far more than the interval.
pub fn register_events(
    ctx: &SessionContext,
    resolved: &ResolvedTable,
    schema: &arrow::datatypes::Schema,
    interval_us: i64,
    window: TimeWindow,
) -> Result<()> {
    if KeyCountsTable::can_read(resolved, interval_us) {
        let counts = KeyCountsTable::try_new(resolved.clone(), interval_us, window)
            .runtime("building the evidence's key counts")?
            .gathering(Gathered::Evidence)
            .split_lone_intervals(partitions(ctx));
        ctx.register_table(EVIDENCE_COUNTS.as_str(), Arc::new(counts))
            .runtime("registering the evidence's key counts")?;
        return Ok(());
    }
    let scan = DeltaFilesTable::try_new(resolved.clone(), keys_as_views(schema))
        .runtime("building the evidence's scan")?;
    ctx.register_table(EVIDENCE_EVENTS.as_str(), Arc::new(scan))
        .runtime("registering the evidence's events")?;
    Ok(())
}

/// The [`EVIDENCE_LINES`] rows of the registered [`EVIDENCE_COUNTS`], or else of
/// [`EVIDENCE_EVENTS`]: see the module documentation. There every event's command line is
/// templated where it is read, and the events are then counted per template: grouping by
/// the lines themselves first (to template each distinct line once) held most of a day's
/// lines in the aggregation's hash table, since lines with GUIDs, process ids or temp
/// names are mostly distinct (BENCHMARKS.md).
pub async fn evidence_lines(ctx: &SessionContext, window: SummaryWindow) -> Result<DataFrame> {
    let counted = ctx
        .table_exist(EVIDENCE_COUNTS.as_str())
        .runtime("looking up the evidence's key counts")?;
    if counted {
        return ctx
            .table(EVIDENCE_COUNTS.as_str())
            .await
            .runtime("reading the evidence's key counts");
    }
    let (events, time) = event_time(ctx, EVIDENCE_EVENTS).await?;
    let keys = group_by(&window, &events, time.clone());
    let line = || column(COMMAND_LINE);
    let mut shaped = keys.clone();
    shaped.extend([
        coalesce(vec![column(PARENT_PROCESS_NAME), lit("")]).alias(PARENT),
        coalesce(vec![
            TemplateUdf::default()
                .into_udf()
                .call(vec![line(), column(ACCOUNT), column(COMPUTER)]),
            lit(""),
        ])
        .alias(TEMPLATE),
        coalesce(vec![
            cast(character_length(line()), DataType::Int64),
            lit(0i64),
        ])
        .alias(LONGEST),
        coalesce(vec![
            LineEntropyUdf::default().into_udf().call(vec![line()]),
            lit(0.0),
        ])
        .alias(ENTROPY),
    ]);
    let by_template: Vec<Expr> = [INTERVAL]
        .into_iter()
        .chain(GROUP_KEYS)
        .chain([PARENT, TEMPLATE])
        .map(column)
        .collect();
    events
        .filter(window_filter(&window, &time))
        .and_then(|df| df.select(shaped))
        .and_then(|df| {
            df.aggregate(
                by_template,
                vec![
                    count(lit(1)).alias(COUNT),
                    max(column(LONGEST)).alias(LONGEST),
                    max(column(ENTROPY)).alias(ENTROPY),
                ],
            )
        })
        .and_then(|df| {
            df.select(keys_as_strings(&[
                PARENT, TEMPLATE, COUNT, LONGEST, ENTROPY,
            ]))
        })
        .runtime("planning the evidence's command lines")
        .and_then(with_interval_totals)
}

/// The evidence's rows of earlier runs read instead of computed (`--summaries`: see
/// [`crate::summary_store`]); [`EVIDENCE_EVENTS`] then holds only the files of the
/// intervals computed.
#[derive(Debug, Clone)]
pub struct KeptEvidence {
    /// The data files of the rows of the intervals read, per kind of
    /// [`crate::summary_store::EVIDENCE_KINDS`] (command lines, parents, groups).
    pub files: Vec<Vec<String>>,
    /// The intervals computed from the events.
    pub counted: Vec<i64>,
    /// Whether any file is read to compute them.
    pub compute: bool,
}

impl KeptEvidence {
    /// The stored files of `kind`'s rows.
    fn files_of(&self, kind: Kind) -> &[String] {
        let position = EVIDENCE_KINDS.iter().position(|k| *k == kind);
        position
            .and_then(|i| self.files.get(i))
            .map_or(&[], Vec::as_slice)
    }
}

/// Computes the evidence's counts on the cluster: [`evidence_lines`], and from them
/// [`counts_sql`]'s, each written to scratch and registered ([`EVIDENCE_LINES`],
/// [`EVIDENCE_PARENTS`], [`EVIDENCE_GROUPS`]) for [`write_group_evidence`]. With `kept`,
/// only the computed intervals' rows are computed, and each table is registered over
/// them and the stored rows' files, where they are.
pub async fn write_evidence_counts(
    ctx: &SessionContext,
    window: SummaryWindow,
    scratch: &Scratch,
    kept: Option<&KeptEvidence>,
) -> Result<()> {
    let lines = match kept {
        None => evidence_lines(ctx, window).await?,
        Some(kept) => {
            let computed = match kept.compute {
                true => Some(evidence_lines(ctx, window).await?),
                false => None,
            };
            // The files read may hold events of intervals read from the table too.
            computed_only(ctx, computed, Some(&kept.counted), &computed_lines_schema())?
        }
    };
    let stored = |kind: Kind| kept.map_or(&[][..], |kept| kept.files_of(kind));
    let computed_lines = write_and_register(ctx, lines, scratch, COMPUTED_LINES, &[]).await?;
    // The stored rows keep only the totals the groups' evidence reads.
    register_parquet_filtered(
        ctx,
        EVIDENCE_LINES,
        &[&[computed_lines.dir.clone()][..], stored(Kind::Lines)].concat(),
        &stored_lines_columns(&computed_lines.schema),
    )?;
    // The parents' and groups' counts of the computed intervals' command-line rows.
    let counts = |name: TableName, by_parent: bool, kind: Kind| async move {
        let df = ctx
            .sql(&counts_sql(by_parent, COMPUTED_LINES))
            .await
            .runtime(format!("planning {name}"))?;
        write_and_register(ctx, df, scratch, name, stored(kind)).await
    };
    futures::future::try_join(
        counts(EVIDENCE_PARENTS, true, Kind::Parents),
        counts(EVIDENCE_GROUPS, false, Kind::Groups),
    )
    .await?;
    Ok(())
}

/// Command-line rows with their interval's totals ([`INTERVAL_TOTALS`]): the
/// events in the row's interval of its (process, template), (process, parent), (host,
/// process, parent), (host, process) and (account, process), a null key as the empty one
/// — what key counts add as they write an interval's rows; windows here, over rows of any
/// interval.
fn with_interval_totals(lines: DataFrame) -> Result<DataFrame> {
    let key = |name: &str| coalesce(vec![column(name), lit("")]);
    let (host, account, process) = (key(COMPUTER), key(ACCOUNT), key(PROCESS));
    let by: [Vec<Expr>; 5] = [
        vec![process.clone(), column(TEMPLATE)],
        vec![process.clone(), column(PARENT)],
        vec![host.clone(), process.clone(), column(PARENT)],
        vec![host, process.clone()],
        vec![account, process],
    ];
    // One window each: DataFusion plans a frame's windows together only when they share
    // their partitioning.
    by.into_iter()
        .zip(INTERVAL_TOTALS)
        .try_fold(lines, |lines, (by, name)| {
            let by = [column(INTERVAL)].into_iter().chain(by).collect();
            Expr::from(WindowFunction::new(sum_udaf(), vec![column(COUNT)]))
                .partition_by(by)
                .build()
                .and_then(|total| lines.window(vec![total.alias(name)]))
        })
        .runtime("planning the command lines' totals per interval")
}

/// The interval totals the computed command-line rows carry for the parents' and groups'
/// counts alone: those the stored rows ([`Kind::Lines`]) do not keep.
fn counts_only_totals() -> impl Iterator<Item = &'static str> {
    let stored = Kind::Lines.schema();
    INTERVAL_TOTALS
        .into_iter()
        .filter(move |name| stored.field_with_name(name).is_err())
}

/// The computed command-line rows' columns: the stored ones and [`counts_only_totals`].
fn computed_lines_schema() -> SchemaRef {
    let totals = counts_only_totals().map(|name| Field::new(name, DataType::Int64, false));
    let fields: Vec<Field> = Kind::Lines
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .chain(totals)
        .collect();
    Arc::new(Schema::new(fields))
}

/// `schema` without [`counts_only_totals`].
fn stored_lines_columns(schema: &SchemaRef) -> SchemaRef {
    let dropped: Vec<&str> = counts_only_totals().collect();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| !dropped.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

/// Writes `df` to scratch and registers it as `name`, beside the `stored` files.
async fn write_and_register(
    ctx: &SessionContext,
    df: DataFrame,
    scratch: &Scratch,
    name: TableName,
    stored: &[String],
) -> Result<ScratchTable> {
    let table = ScratchTable {
        dir: scratch.path(name.as_str()),
        schema: Arc::new(df.schema().as_arrow().clone()),
    };
    write(df, &table.dir, name.as_str()).await?;
    let sources = [&[table.dir.clone()][..], stored].concat();
    register_parquet_filtered(ctx, name, &sources, &table.schema)?;
    Ok(table)
}

/// The groups whose evidence a run needs: the report's, and the training sample's.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The report's first interval (microseconds).
    pub report_start_us: i64,
    /// The training sample's groups.
    pub sample: Vec<Group>,
}

impl Wanted {
    /// The SQL condition on a row's interval and keys that it is wanted, with the
    /// function it calls registered in `ctx`; `None` (every group) when the sample's
    /// groups are too many to carry in the plan.
    fn filter(&self, ctx: &SessionContext) -> Result<Option<String>> {
        let in_sample = GroupSetUdf::new(&self.sample).runtime("the training sample's groups")?;
        if in_sample.payload().len() > MAX_GROUP_SET_BYTES {
            return Ok(None);
        }
        ctx.register_udf(in_sample.into_udf());
        let keys = [COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS]
            .map(quote)
            .join(", ");
        let i = quote(INTERVAL);
        Ok(Some(format!(
            "(CAST({i} AS BIGINT) >= {start} OR {GROUP_SET_NAME}({i}, {keys}))",
            start = self.report_start_us
        )))
    }
}

/// [`group_evidence_sql`] over the registered evidence counts ([`write_evidence_counts`]),
/// for the `wanted` groups (every group when `None`), written and registered as
/// [`GROUP_EVIDENCE`].
pub async fn write_group_evidence(
    ctx: &SessionContext,
    scratch: &Scratch,
    wanted: Option<&Wanted>,
) -> Result<ScratchTable> {
    let filter = match wanted {
        Some(wanted) => wanted.filter(ctx)?,
        None => None,
    };
    ctx.register_udf(SortedDistinctUdf::default().into_udf());
    let groups = ctx
        .sql(&group_evidence_sql(filter.as_deref()))
        .await
        .runtime("planning the groups' evidence")?;
    let groups = match filter {
        Some(_) => with_hash_joins(groups),
        None => groups,
    };
    let table = ScratchTable {
        dir: scratch.path("evidence"),
        schema: Arc::new(groups.schema().as_arrow().clone()),
    };
    write(groups, &table.dir, "the groups' evidence").await?;
    register_parquet(
        ctx,
        GROUP_EVIDENCE,
        std::slice::from_ref(&table.dir),
        &table.schema,
    )?;
    Ok(table)
}

/// The evidence's columns that are features, in model order.
pub fn feature_columns() -> impl Iterator<Item = &'static str> {
    NOVELTY_FEATURES
        .into_iter()
        .chain(LINEAGE_FEATURES)
        .chain(FIRST_SEEN_FEATURES)
}

/// SQL of [`EVIDENCE_PARENTS`] (`by_parent`) or [`EVIDENCE_GROUPS`] from the registered
/// `lines` (computed command-line rows, with every interval total: [`with_interval_totals`]):
/// the interval, the keys, their history keys (null as empty: `kc`, `ka`, `kp`), the parent
/// when `by_parent`, the events, and the interval's totals the features compare —
/// [`INTERVAL_LINEAGE_EVENTS`] and [`INTERVAL_HOST_LINEAGE_EVENTS`] per parent, else
/// [`INTERVAL_HOST_EVENTS`] and [`INTERVAL_ACCOUNT_EVENTS`]. Materialized once: the
/// evidence's SQL reads each several times.
pub fn counts_sql(by_parent: bool, lines: TableName) -> String {
    let (c, a, p, n) = (
        quote(COMPUTER),
        quote(ACCOUNT),
        quote(PROCESS),
        quote(COUNT),
    );
    let keys = [INTERVAL, COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS]
        .map(quote)
        .join(", ");
    let parent = match by_parent {
        true => format!(", {}", quote(PARENT)),
        false => String::new(),
    };
    let (kc, ka, kp) = (
        format!("coalesce({c}, '')"),
        format!("coalesce({a}, '')"),
        format!("coalesce({p}, '')"),
    );
    // Every line row of an output row has the same totals (their keys are the output
    // row's, or part of them), carried from the lines: no window, no sort.
    let carried = |name: &str| format!("CAST(max({q}) AS BIGINT) AS {q}", q = quote(name));
    let totals = match by_parent {
        true => [INTERVAL_LINEAGE_EVENTS, INTERVAL_HOST_LINEAGE_EVENTS].map(carried),
        false => [INTERVAL_HOST_EVENTS, INTERVAL_ACCOUNT_EVENTS].map(carried),
    };
    format!(
        "SELECT {keys}, {kc} AS kc, {ka} AS ka, {kp} AS kp{parent}, \
         CAST(sum({n}) AS BIGINT) AS {n}, {totals} FROM {lines} GROUP BY {keys}{parent}",
        totals = totals.join(", "),
    )
}

/// SQL of one row per summary group of the registered [`EVIDENCE_LINES`],
/// [`EVIDENCE_PARENTS`] and [`EVIDENCE_GROUPS`] — of the groups whose rows meet
/// `wanted` (a condition on the interval and keys: [`Wanted::filter`]) when given —:
/// the interval, the keys, the features ([`feature_columns`]), [`NOVEL_TEMPLATES`] and
/// [`RAREST_PARENT`]. Each table's rows are filtered once, where the wanted groups'
/// rows are read; the history's totals come from every row. Needs
/// `procforest_sorted_distinct` registered. No aggregate has an `ORDER BY` (each made
/// DataFusion sort every joined row): the novel templates are gathered and then sorted
/// per group, and the rarest parent is the minimum of its zero-padded count elsewhere
/// followed by its path (ties by path), the padding cut off again.
pub fn group_evidence_sql(wanted: Option<&str>) -> String {
    let (c, a, t, p, n, i) = (
        quote(COMPUTER),
        quote(ACCOUNT),
        quote(ACCOUNT_TYPE),
        quote(PROCESS),
        quote(COUNT),
        quote(INTERVAL),
    );
    let (parent, template) = (quote(PARENT), quote(TEMPLATE));
    let keys = format!("{i}, {c}, {a}, {t}, {p}");
    let keys_of = |table: &str| {
        [INTERVAL, COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS]
            .map(|k| format!("{table}.{}", quote(k)))
            .join(", ")
    };
    let same_group =
        |x: &str, y: &str| {
            std::iter::once(format!("{x}.{i} = {y}.{i}"))
                .chain(GROUP_KEYS.iter().map(|k| {
                    same_key_sql(&format!("{x}.{}", quote(k)), &format!("{y}.{}", quote(k)))
                }))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
    // The rows of `table` whose groups' evidence is wanted.
    let only_wanted = |table: TableName| match wanted {
        Some(filter) => format!("(SELECT * FROM {table} WHERE {filter})"),
        None => table.to_string(),
    };
    // Totals of `by` (history keys) over the whole window, as `<name>`; `extra`
    // aggregates more. A row's own interval's total is one of its columns.
    let totals_with = |name: &str, from: &str, by: &[&str], extra: &str| {
        let keys = by.join(", ");
        format!("{name} AS (SELECT {keys}, sum({n}) AS events{extra} FROM {from} GROUP BY {keys})")
    };
    let totals = |name: &str, from: &str, by: &[&str]| totals_with(name, from, by, "");
    let joined = |left: &str, name: &str, by: &[&str]| {
        let on = by
            .iter()
            .map(|k| format!("{left}.{k} = {name}.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!("JOIN {name} ON {on}")
    };
    // The events of `name`'s key in the window's other intervals than `left`'s row's.
    let elsewhere = |name: &str, left: &str, own: &str| {
        format!("CAST({name}.events - {left}.{} AS DOUBLE)", quote(own))
    };
    let only_here =
        |name: &str, left: &str, own: &str| format!("{name}.events = {left}.{}", quote(own));
    let f = |name: &str| quote(name);
    let lines_of = |name: &str, lines: &str| {
        format!(
            "{name} AS (SELECT {keys}, coalesce({c}, '') AS kc, coalesce({a}, '') AS ka, \
             coalesce({p}, '') AS kp, {parent}, {template}, {n}, {longest}, {entropy}, \
             {here} FROM {lines})",
            longest = quote(LONGEST),
            entropy = quote(ENTROPY),
            here = quote(INTERVAL_TEMPLATE_EVENTS),
        )
    };
    let ctes = [
        lines_of("l", EVIDENCE_LINES.as_str()),
        lines_of("lw", &only_wanted(EVIDENCE_LINES)),
        // One aggregation for a template's events and hosts: DataFusion counts the
        // distinct hosts by grouping on them too, and sums the events on the way.
        totals_with(
            "tpl",
            "l",
            &["kp", &template],
            ", count(DISTINCT kc) AS hosts",
        ),
        format!(
            "novelty AS (SELECT {keys_l}, \
             CAST(sum(CASE WHEN {tpl_only_here} THEN l.{n} ELSE 0 END) AS DOUBLE) \
             / CAST(sum(l.{n}) AS DOUBLE) AS {f0}, \
             min(ln(1.0 + {tpl_elsewhere})) AS {f1}, \
             min(ln(CAST(tpl.hosts AS DOUBLE))) AS {f2}, \
             log2(1.0 + CAST(max(l.{longest}) AS DOUBLE)) AS {f3}, \
             max(l.{entropy}) AS {f4}, \
             array_agg(l.{template}) \
             FILTER (WHERE {tpl_only_here} AND l.{template} <> '') AS {novel} \
             FROM lw l {tpl_join} GROUP BY {keys_l})",
            keys_l = keys_of("l"),
            tpl_elsewhere = elsewhere("tpl", "l", INTERVAL_TEMPLATE_EVENTS),
            tpl_only_here = only_here("tpl", "l", INTERVAL_TEMPLATE_EVENTS),
            tpl_join = joined("l", "tpl", &["kp", &template]),
            longest = quote(LONGEST),
            entropy = quote(ENTROPY),
            novel = quote(NOVEL_TEMPLATES),
            f0 = f(NOVELTY_FEATURES[0]),
            f1 = f(NOVELTY_FEATURES[1]),
            f2 = f(NOVELTY_FEATURES[2]),
            f3 = f(NOVELTY_FEATURES[3]),
            f4 = f(NOVELTY_FEATURES[4]),
        ),
        totals("pp", EVIDENCE_PARENTS.as_str(), &["kp", &parent]),
        totals("hpp", EVIDENCE_PARENTS.as_str(), &["kc", "kp", &parent]),
        format!(
            "lineage AS (SELECT {keys_gp}, \
             min(ln(1.0 + {pp_elsewhere})) AS {f0}, \
             max(CASE WHEN {hpp_only_here} THEN 1.0 ELSE 0.0 END) AS {f1}, \
             substr(min(lpad(CAST(CAST({pp_elsewhere} AS BIGINT) AS VARCHAR), 20, '0') \
             || gp.{parent}), 21) AS {rarest} \
             FROM {wanted_parents} gp {pp_join} {hpp_join} GROUP BY {keys_gp})",
            wanted_parents = only_wanted(EVIDENCE_PARENTS),
            keys_gp = keys_of("gp"),
            pp_elsewhere = elsewhere("pp", "gp", INTERVAL_LINEAGE_EVENTS),
            hpp_only_here = only_here("hpp", "gp", INTERVAL_HOST_LINEAGE_EVENTS),
            pp_join = joined("gp", "pp", &["kp", &parent]),
            hpp_join = joined("gp", "hpp", &["kc", "kp", &parent]),
            rarest = quote(RAREST_PARENT),
            f0 = f(LINEAGE_FEATURES[0]),
            f1 = f(LINEAGE_FEATURES[1]),
        ),
        totals("hp", EVIDENCE_GROUPS.as_str(), &["kc", "kp"]),
        totals("ap", EVIDENCE_GROUPS.as_str(), &["ka", "kp"]),
        format!(
            "first_seen AS (SELECT {keys_g}, \
             CASE WHEN {hp_only_here} THEN 1.0 ELSE 0.0 END AS {f0}, \
             CASE WHEN {ap_only_here} THEN 1.0 ELSE 0.0 END AS {f1} \
             FROM {wanted_groups} g {hp_join} {ap_join})",
            wanted_groups = only_wanted(EVIDENCE_GROUPS),
            keys_g = keys_of("g"),
            hp_join = joined("g", "hp", &["kc", "kp"]),
            hp_only_here = only_here("hp", "g", INTERVAL_HOST_EVENTS),
            ap_only_here = only_here("ap", "g", INTERVAL_ACCOUNT_EVENTS),
            ap_join = joined("g", "ap", &["ka", "kp"]),
            f0 = f(FIRST_SEEN_FEATURES[0]),
            f1 = f(FIRST_SEEN_FEATURES[1]),
        ),
    ];
    let features = feature_columns()
        .map(|name| match name {
            _ if NOVELTY_FEATURES.contains(&name) => format!("novelty.{}", f(name)),
            _ if LINEAGE_FEATURES.contains(&name) => format!("lineage.{}", f(name)),
            _ => format!("first_seen.{}", f(name)),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH {ctes} SELECT {keys_n}, {features}, \
         {sorted_distinct}(novelty.{novel}) AS {novel}, lineage.{rarest} \
         FROM novelty JOIN lineage ON {on_lineage} JOIN first_seen ON {on_first_seen}",
        ctes = ctes.join(", "),
        keys_n = keys_of("novelty"),
        novel = quote(NOVEL_TEMPLATES),
        rarest = quote(RAREST_PARENT),
        sorted_distinct = SORTED_DISTINCT_NAME,
        on_lineage = same_group("novelty", "lineage"),
        on_first_seen = same_group("novelty", "first_seen"),
    )
}

/// Novel templates an anomaly shows (the rest are counted).
pub const SHOWN_TEMPLATES: usize = 3;

/// What a reported group's evidence shows an analyst.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Evidence {
    /// Its first templates (sorted) never seen for the process in another interval.
    pub novel_templates: Vec<String>,
    /// How many novel templates it has in all.
    pub novel_template_count: usize,
    /// The parent of its rarest (parent, process) pair.
    pub rarest_parent: Option<String>,
    /// Whether one of its (parent, process) pairs is new on the host.
    pub lineage_new_on_host: bool,
    /// Whether the process is new on the host.
    pub process_new_on_host: bool,
    /// Whether the process is new for the account.
    pub process_new_for_account: bool,
}

impl Evidence {
    /// One line for people: `new on host; new for account; parent → process new on host;
    /// novel: t1 | t2 (+n more)`; empty when nothing is new.
    pub fn summary(&self, process: Option<&str>) -> String {
        let mut parts = Vec::new();
        if self.process_new_on_host {
            parts.push("process new on host".to_string());
        }
        if self.process_new_for_account {
            parts.push("process new for account".to_string());
        }
        if let (true, Some(parent)) = (self.lineage_new_on_host, &self.rarest_parent) {
            let parent = parent.rsplit('\\').next().unwrap_or(parent);
            let child = process.unwrap_or("(null)");
            parts.push(format!("{parent} → {child} new on host"));
        }
        if !self.novel_templates.is_empty() {
            let more = self.novel_template_count - self.novel_templates.len();
            let mut novel = format!("novel: {}", self.novel_templates.join(" | "));
            if more > 0 {
                novel.push_str(&format!(" (+{more} more)"));
            }
            parts.push(novel);
        }
        parts.join("; ")
    }
}

/// Attaches each reported row's [`Evidence`] from `groups` (the [`GROUP_EVIDENCE`] rows,
/// read by the driver; rows of other groups are skipped).
pub async fn attach_evidence(rows: &mut [ScoredRow], groups: DataFrame) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let wanted: HashMap<(i64, [Option<String>; 4]), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.group(), i))
        .collect();
    let mut stream = groups
        .execute_stream()
        .await
        .runtime("reading the groups' evidence")?;
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        let batch = batch.runtime("reading the groups' evidence")?;
        for (target, evidence) in evidence_rows(&batch, &wanted)? {
            rows[target].evidence = Some(evidence);
        }
    }
    Ok(())
}

/// The evidence of `batch`'s rows that `wanted` holds, with their positions there.
fn evidence_rows(
    batch: &RecordBatch,
    wanted: &HashMap<(i64, [Option<String>; 4]), usize>,
) -> Result<Vec<(usize, Evidence)>> {
    let column = |name: &str| scoring::batch_column(batch, name);
    let strings = |name: &str| -> Result<StringArray> {
        let array = cast_array(column(name)?, &DataType::Utf8).runtime("reading the evidence")?;
        Ok(array.as_string::<i32>().clone())
    };
    let interval = cast_array(column(INTERVAL)?, &time_type()).runtime("reading the evidence")?;
    let interval = interval.as_primitive::<TimestampMicrosecondType>();
    let keys = GROUP_KEYS.map(strings);
    let keys: Vec<StringArray> = keys.into_iter().collect::<Result<_>>()?;
    let flag = |name: &str| -> Result<Float64Array> {
        Ok(column(name)?.as_primitive::<Float64Type>().clone())
    };
    let (lineage_new, new_on_host, new_for_account) = (
        flag(LINEAGE_FEATURES[1])?,
        flag(FIRST_SEEN_FEATURES[0])?,
        flag(FIRST_SEEN_FEATURES[1])?,
    );
    let parents = strings(RAREST_PARENT)?;
    let novel = column(NOVEL_TEMPLATES)?.as_list::<i32>();
    let mut found = Vec::new();
    for i in 0..batch.num_rows() {
        let key =
            std::array::from_fn(|k| keys[k].is_valid(i).then(|| keys[k].value(i).to_string()));
        let Some(&target) = wanted.get(&(interval.value(i), key)) else {
            continue;
        };
        let templates: Vec<String> = match novel.is_valid(i) {
            true => novel
                .value(i)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect(),
            false => Vec::new(),
        };
        found.push((
            target,
            Evidence {
                novel_template_count: templates.len(),
                novel_templates: templates.into_iter().take(SHOWN_TEMPLATES).collect(),
                rarest_parent: parents.is_valid(i).then(|| parents.value(i).to_string()),
                lineage_new_on_host: lineage_new.value(i) == 1.0,
                process_new_on_host: new_on_host.value(i) == 1.0,
                process_new_for_account: new_for_account.value(i) == 1.0,
            },
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
