//! `procforest run`: Delta events → daily summaries → isolation forest → anomalies.
//!
//! Phases, each timed in the manifest: `snapshot` (open and resolve the table; Ballista
//! starts meanwhile), `summaries` (scan and aggregate on Ballista, written to scratch and
//! digested as written), `indexing` (category indices and totals, and the training
//! sample's rows, from those digests on the driver), `sample` (their features), `fit` (on
//! the driver), `score` (on the executors) and `outputs`. Nothing is written to the user's
//! outputs before every phase succeeded.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
    time::Instant,
};

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use datafusion::{datasource::file_format::options::ParquetReadOptions, prelude::SessionContext};
use futures::StreamExt;
use procforest_core::{
    events,
    key_counts::{KeyCountsTable, TimeWindow},
    scan::DeltaFilesTable,
    udf::ScoreUdf,
};

use crate::{
    context,
    error::{Context, JobError, Result},
    generate::{LABELS_PATH, read_labels},
    pipeline::{
        categories,
        features::{FeatureSet, SUMMARIES},
        scoring::{self, ScoredRow, Selection, sort_report},
        summaries::{
            self, CommandLines, HistoryCounts, Interval, SampleChoice, Sources, SummaryPlan,
            SummaryWindow, anomalies_command_lines, write_summaries,
        },
        training::{self, TrainingSample},
    },
    report::{check_labels, format_interval},
    scratch::{Scratch, ScratchTable, read_digests, register_parquet},
    sinks::{
        self,
        manifest::{KeyGaps, Manifest, ModelInfo, ReportWindow},
        scores_parquet::ScoresWriter,
    },
    source::{self, SnapshotChoice, TimeRange},
};

/// The registered table of the report's summary rows (for [`Sources::ByInterval`]).
const REPORT_ROWS: &str = "report_rows";

/// Most trees a model may have.
pub const MAX_TREES: usize = 1000;
/// Most rows per tree.
pub const MAX_SAMPLES: usize = 4096;
/// Most trees × rows per tree (bounds the model's size in the plan).
pub const MAX_TREE_ROWS: usize = 500_000;

/// Everything `run` needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunConfig {
    /// Table location; `None` = the bundled sample.
    pub table: Option<String>,
    /// Which snapshot.
    #[serde(skip)]
    pub snapshot: SnapshotChoice,
    /// Storage options for the table (never logged: values may be secrets).
    #[serde(skip)]
    pub storage_options: HashMap<String, String>,
    /// The as-of time: events after it are ignored; the report window ends here.
    pub as_of: AsOf,
    /// Report window length, microseconds.
    pub window_us: i64,
    /// Training history in days (`None` = all).
    pub train_days: Option<u32>,
    /// Summary interval.
    pub interval: Interval,
    /// The model's inputs.
    pub features: crate::pipeline::features::FeatureSet,
    /// Model settings.
    pub model: training::ModelSettings,
    /// Target partitions.
    pub partitions: usize,
    /// Scheduler URL (`None` = standalone).
    pub scheduler: Option<String>,
    /// Scratch location for intermediate results (`None` = a temporary folder).
    pub scratch: Option<String>,
    /// Outputs.
    pub outputs: Outputs,
}

/// The as-of time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AsOf {
    /// A given time.
    At(DateTime<Utc>),
    /// The end of the UTC day of the table's newest event (the default for the bundled
    /// sample, whose events are years old).
    EndOfNewestDay,
}

/// Where results go.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outputs {
    /// Print the console table.
    pub console: bool,
    /// JSON lines path, or `-` for stdout.
    pub json: Option<String>,
    /// Parquet audit of every scored row.
    pub scores_out: Option<PathBuf>,
    /// Delta table of anomalies.
    pub output_delta: Option<String>,
    /// Model JSON.
    pub model_out: Option<PathBuf>,
    /// Run manifest JSON.
    pub manifest: Option<PathBuf>,
    /// Azure Monitor delivery.
    pub monitor: Option<MonitorOutput>,
}

/// The Azure Monitor sink of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MonitorOutput {
    /// Where and how.
    pub settings: crate::sinks::azure_monitor::MonitorSettings,
    /// Dead-letter file (default in the current folder, named after the run).
    pub dead_letter: Option<PathBuf>,
}

/// What a run produced.
pub struct RunOutcome {
    /// The anomalies, in report order.
    pub anomalies: Vec<ScoredRow>,
    /// The manifest.
    pub manifest: Manifest,
    /// The table's ground-truth labels, if it has them.
    pub labels: Option<Vec<crate::generate::Label>>,
    /// First report interval and as-of time, microseconds.
    pub report_window: (i64, i64),
}

struct Phases {
    times: BTreeMap<&'static str, f64>,
    current: Option<(&'static str, Instant)>,
}

impl Phases {
    fn new() -> Self {
        Self {
            times: BTreeMap::new(),
            current: None,
        }
    }
    fn start(&mut self, name: &'static str) {
        self.stop();
        tracing::info!(phase = name, "starting");
        self.current = Some((name, Instant::now()));
    }
    fn stop(&mut self) {
        if let Some((name, t)) = self.current.take() {
            *self.times.entry(name).or_default() += t.elapsed().as_secs_f64();
        }
    }
}

fn new_run_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Runs the job; see the module documentation.
pub async fn run(config: &RunConfig) -> Result<RunOutcome> {
    validate(config)?;
    let started_at = Utc::now();
    let run_id = new_run_id();
    let mut phases = Phases::new();

    // Snapshot: open, check, resolve the files of the training window. Ballista starts
    // (standalone) or is reached meanwhile: neither waits for the other.
    phases.start("snapshot");
    let connecting = context::connect(
        config.scheduler.as_deref(),
        config.partitions,
        HashMap::new(),
    );
    let (snapshot, session) = futures::future::try_join(snapshot(config), connecting).await?;
    let Snapshot {
        table,
        counted,
        report_files,
        ..
    } = &snapshot;
    let (sources, train_start_us, as_of_us) =
        (snapshot.sources, snapshot.train_start_us, snapshot.as_of_us);
    let interval_us = config.interval.micros();

    // Summaries on Ballista, written to scratch.
    phases.start("summaries");
    let ctx = &session.ctx;
    // The history's counts straight from the files' dictionaries when the keys and times
    // are in the files (not partition values).
    let history_counts = match sources {
        Sources::ByInterval if KeyCountsTable::can_read(counted, interval_us) => {
            Some(HistoryCounts::KeyCounts)
        }
        Sources::ByInterval => Some(HistoryCounts::GroupBy),
        Sources::Whole => None,
    };
    let counted_name = match history_counts {
        Some(HistoryCounts::KeyCounts) => {
            let window = TimeWindow {
                after_us: train_start_us,
                until_us: as_of_us,
            };
            let counts = KeyCountsTable::try_new(counted.clone(), interval_us, window)
                .runtime("building the history's key counts")?;
            ctx.register_table(summaries::HISTORY_COUNTS, Arc::new(counts))
                .runtime("registering the history's key counts")?;
            None
        }
        Some(HistoryCounts::GroupBy) => Some(summaries::HISTORY_EVENTS),
        None => Some(summaries::EVENTS),
    };
    // With a set contamination only the anomalies' command lines are gathered, after
    // scoring; the report is then counted like the history.
    let command_lines = match config.model.contamination {
        Some(_) => CommandLines::Anomalies,
        None => CommandLines::ReportGroups,
    };
    // The report's rows are key counts too where the history's are, with every group's
    // command lines when those are gathered now.
    let report_key_counts = history_counts == Some(HistoryCounts::KeyCounts)
        && KeyCountsTable::can_read(report_files, interval_us);
    if report_key_counts {
        let window = TimeWindow {
            after_us: train_start_us,
            until_us: as_of_us,
        };
        let counts = KeyCountsTable::try_new(report_files.clone(), interval_us, window)
            .runtime("building the report's key counts")?;
        let counts = match command_lines {
            CommandLines::ReportGroups => counts.with_command_lines(),
            CommandLines::Anomalies => counts,
        };
        ctx.register_table(summaries::REPORT_COUNTS, Arc::new(counts))
            .runtime("registering the report's key counts")?;
    }
    let scans = counted_name
        .map(|name| (name, counted.clone()))
        .into_iter()
        .chain([(summaries::REPORT_EVENTS, report_files.clone())]);
    for (name, files) in scans {
        let scan = DeltaFilesTable::try_new(files, events::keys_as_views(&table.schema))
            .runtime(format!("building the scan of {name}"))?
            .with_file_intervals(interval_us);
        ctx.register_table(name, Arc::new(scan))
            .runtime(format!("registering {name}"))?;
    }
    let scratch = Scratch::new(config.scratch.as_deref(), &run_id)?;
    let setup = Setup {
        config,
        run_id,
        started_at,
        phases,
        plan: SummaryPlan {
            sources,
            history_counts,
            command_lines,
            report_key_counts,
        },
        snapshot,
    };
    // A standalone scheduler or executor that stops ends the run: its jobs would wait
    // for it forever.
    let outcome = tokio::select! {
        outcome = compute(setup, ctx, &scratch) => outcome,
        reason = session.standalone_stopped() => Err(JobError::runtime(reason)),
    };
    // The scratch folder and standalone's work folder are removed side by side.
    let mut session = session;
    let removing_work_dir = session.remove_work_dir();
    scratch.cleanup(Some(&session.ctx)).await;
    if let Some(removing) = removing_work_dir {
        let _ = removing.await;
    }
    outcome
}

/// The table as this run reads it (see [`snapshot`]).
struct Snapshot {
    /// The bundled sample's folder, when it is the table (removed when dropped).
    _bundled: Option<tempfile::TempDir>,
    table: source::EventTable,
    as_of: DateTime<Utc>,
    as_of_us: i64,
    train_start_us: Option<i64>,
    report_start_us: i64,
    /// Every file of the training window.
    resolved: procforest_core::scan::ResolvedTable,
    pruning: source::Pruning,
    sources: Sources,
    /// The files whose events are counted (the history's, or all).
    counted: procforest_core::scan::ResolvedTable,
    /// The report window's files.
    report_files: procforest_core::scan::ResolvedTable,
    labels: Option<Vec<crate::generate::Label>>,
}

/// Opens the table, resolves the files of the training window and of the report window,
/// and reads the table's ground-truth labels if it has them.
async fn snapshot(config: &RunConfig) -> Result<Snapshot> {
    let bundled = match &config.table {
        Some(_) => None,
        None => Some(crate::sample::materialize_bundled()?),
    };
    let location = match (&config.table, &bundled) {
        (Some(t), _) => t.clone(),
        (None, Some(dir)) => dir.path().display().to_string(),
        (None, None) => unreachable!("bundled sample materialised above"),
    };
    let table = source::open(&location, &config.snapshot, config.storage_options.clone()).await?;
    let as_of = match config.as_of {
        AsOf::At(t) => t,
        AsOf::EndOfNewestDay => source::end_of_newest_day(&table)?,
    };
    let as_of_us = as_of.timestamp_micros();
    let train_start_us = config
        .train_days
        .map(|d| as_of_us - d as i64 * 86_400_000_000);
    let report_start_us = config.interval.truncate(as_of_us - config.window_us + 1);
    let range = TimeRange {
        start: train_start_us.and_then(DateTime::from_timestamp_micros),
        end: as_of,
    };
    let (resolved, pruning) = source::resolve(&table, range)?;
    if resolved.files.is_empty() {
        return Err(no_events(config, as_of, &location));
    }
    // Interval-aligned files split into history and report; otherwise the report window's
    // files are resolved again, for its command lines alone (time ranges are exclusive at
    // the start).
    let interval_us = config.interval.micros();
    let (sources, counted, report_files) =
        match resolved.split_at_interval(interval_us, report_start_us) {
            Some((history, report)) => (Sources::ByInterval, history, report),
            None => {
                let (report, _) = source::resolve(
                    &table,
                    TimeRange {
                        start: DateTime::from_timestamp_micros(report_start_us - 1),
                        end: as_of,
                    },
                )?;
                (Sources::Whole, resolved.clone(), report)
            }
        };
    let labels = match crate::delta_io::get_parquet(&table.table, LABELS_PATH).await {
        Ok(Some(batches)) => Some(read_labels(&batches).map_err(JobError::runtime)?),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("ignoring unreadable labels: {e}");
            None
        }
    };
    Ok(Snapshot {
        _bundled: bundled,
        table,
        as_of,
        as_of_us,
        train_start_us,
        report_start_us,
        resolved,
        pruning,
        sources,
        counted,
        report_files,
        labels,
    })
}

/// Most summary rows that later jobs read in one partition (see [`one_partition`]).
const ONE_PARTITION_GROUPS: u64 = 250_000;

/// The session, planning every later job in one partition: for small summaries, each job
/// is then one stage (no exchange between partial and final aggregates, no merge of sorted
/// partitions), and a stage costs more to schedule than such a table takes to read. The
/// results do not depend on it.
fn one_partition(ctx: &SessionContext) -> SessionContext {
    let mut state = ctx.state();
    state.config_mut().options_mut().execution.target_partitions = 1;
    SessionContext::new_with_state(state)
}

/// What [`run`] resolved before the cluster work.
struct Setup<'a> {
    config: &'a RunConfig,
    run_id: String,
    started_at: DateTime<Utc>,
    phases: Phases,
    /// How the summaries are computed.
    plan: SummaryPlan,
    snapshot: Snapshot,
}

/// The phases on the cluster, then the outputs.
async fn compute(setup: Setup<'_>, ctx: &SessionContext, scratch: &Scratch) -> Result<RunOutcome> {
    let Setup {
        config,
        run_id,
        started_at,
        mut phases,
        plan,
        snapshot,
    } = setup;
    let Snapshot {
        table,
        resolved,
        pruning,
        labels,
        as_of,
        as_of_us,
        train_start_us,
        report_start_us,
        ..
    } = snapshot;
    let location = table.location.clone();
    let ctx = ctx.clone();
    let window = SummaryWindow {
        start_us: train_start_us,
        end_us: as_of_us,
        report_start_us,
        interval: config.interval,
    };
    let sample_size = config.model.trees * config.model.max_samples;
    let sample_choice = SampleChoice {
        seed: config.model.seed,
        rows: sample_size,
    };
    let written = write_summaries(&ctx, plan, window, sample_choice, scratch)
        .await
        .map_err(|e| scan_error(e, &resolved))?;
    let groups = written.groups;
    if groups == 0 {
        return Err(no_events(config, as_of, &location));
    }
    let ctx = if groups <= ONE_PARTITION_GROUPS {
        one_partition(&ctx)
    } else {
        ctx
    };
    register_parquet(
        &ctx,
        SUMMARIES,
        &written.counts_dirs,
        &written.counts_schema,
    )?;

    // Category indices and totals, and the training sample's rows, from the digests the
    // summaries' writers left.
    phases.start("indexing");
    let digests = read_digests(&ctx, &written.digest_dirs).await?;
    let census = categories::Census::from_digests(&digests)?;
    let sample_rows = training::sample_rows(&digests, sample_size, &written.counts_schema)?;
    drop(digests);
    let indices = categories::register(
        &ctx,
        &census,
        &scratch.path("categories"),
        categories::MAX_LOOKUP_BYTES,
    )
    .await?;
    let names = config.features.names();
    // The report rows' features, planned on another core while the driver samples and
    // fits (they do not depend on the model). The report's rows have their own folder
    // when the files are interval-aligned: scoring then reads them alone, not every
    // summary row (the features' category indices and rarity still come from all of
    // them). With every score written out, all rows are scored instead.
    let report_features = match (&config.outputs.scores_out, &written.report_dir) {
        (None, Some(report_dir)) => Some(tokio::spawn(features_of(
            ctx.clone(),
            config.features,
            indices,
            REPORT_ROWS,
            report_dir.clone(),
            written.counts_schema.clone(),
        ))),
        _ => None,
    };

    // The training sample's features, and the fit.
    phases.start("sample");
    // The report groups' command lines, when small, read on the core the driver's
    // single-threaded sample and fit leave idle: they do not depend on the model, and
    // read while the executors score they slowed the scoring job.
    let prefetching = tokio::spawn({
        let (ctx, lines) = (ctx.clone(), written.lines.clone());
        async move { prefetch_command_lines(&ctx, lines.as_ref(), PREFETCH_LINES_BYTES).await }
    });
    let sample = match (config.features, indices) {
        // The seed features with looked-up indices: computed on the driver directly.
        (FeatureSet::Seed, categories::Indices::Lookups) => {
            let lookups = categories::lookups(&ctx)?;
            TrainingSample {
                columns: crate::pipeline::features::seed_features(&sample_rows, &lookups)?,
            }
        }
        _ => {
            let sample_features = training_features(
                &ctx,
                config,
                indices,
                sample_rows,
                &written.counts_schema,
                &scratch.path("training-rows"),
            )
            .await?;
            training::gather(sample_features, &names, config.model.seed, sample_size).await?
        }
    };
    phases.start("fit");
    let model = training::fit(&sample, &config.model)?;
    for w in model.warnings() {
        tracing::warn!("{w}");
    }
    let offset = model.offset();
    let udf = ScoreUdf::new(model);
    // The model the plans score with, whose flattened form and explanation tables are
    // built on an idle core while the scoring job is planned and sent.
    let model = udf.shared_model();
    tokio::task::spawn_blocking({
        let model = Arc::clone(&model);
        move || model.prepare()
    });
    let model_info = ModelInfo {
        hash: udf.model_hash().to_string(),
        trees: model.trees().len(),
        max_samples: model.max_samples(),
        offset,
        training_rows: sample.rows(),
        warnings: model.warnings().to_vec(),
        payload_bytes: udf.payload().len(),
    };

    // Scoring on the executors.
    phases.start("score");
    let selection = if config.outputs.scores_out.is_some() {
        Selection::All
    } else {
        Selection::Report {
            start_us: report_start_us,
            end_us: as_of_us,
            offset,
        }
    };
    let mut scores_writer = match &config.outputs.scores_out {
        Some(path) => Some(ScoresWriter::create(path, &names, offset)?),
        None => None,
    };
    let scored = match report_features {
        Some(planned) => planned.await.runtime("planning the report's features")??,
        None => ctx
            .sql(&config.features.sql(indices))
            .await
            .runtime("planning features")?,
    };
    let scoring = async {
        let mut stream = scoring::score(scored, &names, udf, selection).await?;
        let mut anomalies = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.runtime("scoring")?;
            if let Some(w) = scores_writer.as_mut() {
                w.write(&batch)?;
            }
            anomalies.extend(scoring::rows(&batch, &names)?.into_iter().filter(|r| {
                r.interval_us >= report_start_us
                    && r.interval_us <= as_of_us
                    && r.score - offset < 0.0
            }));
        }
        Ok(anomalies)
    };
    let prefetched = async { prefetching.await.runtime("reading command lines")? };
    let (mut anomalies, prefetched) = futures::future::try_join(scoring, prefetched).await?;
    sort_report(&mut anomalies);
    // Which features isolated each reported group (a walk of every tree per row), on other
    // threads while the command lines are read.
    let explaining = (!anomalies.is_empty()).then(|| {
        let columns: Vec<Vec<f64>> = (0..names.len())
            .map(|j| anomalies.iter().map(|r| r.features[j]).collect())
            .collect();
        let model = Arc::clone(&model);
        tokio::task::spawn_blocking(move || model.explain(&columns))
    });
    let lines = match (prefetched, &written.lines) {
        (Some(lines), _) => Some(lines),
        (None, Some(lines)) => Some(read_command_lines(&ctx, lines).await?),
        (None, None) if anomalies.is_empty() => None,
        (None, None) => {
            let lines = anomalies_command_lines(&ctx, &anomalies, window, scratch).await?;
            Some(read_command_lines(&ctx, &lines).await?)
        }
    };
    if let Some(lines) = lines {
        scoring::attach_command_lines(&mut anomalies, lines).await?;
    }
    if let Some(explaining) = explaining {
        let shares = explaining
            .await
            .runtime("explaining anomalies")?
            .runtime("explaining anomalies")?;
        for (row, share) in anomalies.iter_mut().zip(shares) {
            row.explanation = share;
        }
    }

    // Outputs, all or nothing (files are renamed into place when complete).
    phases.start("outputs");
    let label_check = labels.as_ref().map(|l| {
        let first = DateTime::from_timestamp_micros(report_start_us)
            .map(|t| t.date_naive())
            .unwrap_or_default();
        check_labels(&anomalies, l, first, as_of.date_naive())
    });
    if let Some(w) = scores_writer.take() {
        w.finish()?;
    }
    if let Some(path) = &config.outputs.model_out {
        sinks::write_file(path, model.to_json().as_bytes())?;
    }
    match config.outputs.json.as_deref() {
        None => {}
        Some("-") => sinks::json_lines::write(&anomalies, &names, &mut std::io::stdout().lock())?,
        Some(path) => {
            let mut bytes = Vec::new();
            sinks::json_lines::write(&anomalies, &names, &mut bytes)?;
            sinks::write_file(path.as_ref(), &bytes)?;
        }
    }
    if let Some(location) = &config.outputs.output_delta {
        sinks::anomaly_delta::write(
            location,
            &anomalies,
            &sinks::anomaly_delta::RunKey {
                feature_names: &names,
                as_of,
                run_id: &run_id,
                model_hash: &model_info.hash,
            },
        )
        .await?;
    }
    if config.outputs.console {
        if anomalies.is_empty() {
            println!(
                "no anomalies in ({}, {}]",
                format_interval(as_of_us - config.window_us),
                format_interval(as_of_us)
            );
        } else {
            print!(
                "{}",
                sinks::console::render(&anomalies, &names, sinks::console::terminal_width())
            );
        }
    }
    let mut monitor_failure = None;
    let mut monitor_report = None;
    if let Some(monitor) = &config.outputs.monitor {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let records: Vec<_> = anomalies
            .iter()
            .map(|r| {
                crate::sinks::azure_monitor::MonitorRecord::from_row(
                    r,
                    &names,
                    &run_id,
                    &model_info.hash,
                    &now,
                )
            })
            .collect();
        let total = records.len();
        let dead_letter = monitor
            .dead_letter
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("procforest-dead-letter-{run_id}.jsonl")));
        let result = crate::sinks::azure_monitor::deliver_or_dead_letter(
            &monitor.settings,
            records,
            &dead_letter,
        )
        .await;
        monitor_report = Some(match &result {
            Ok(delivered) => serde_json::json!({"records": total, "delivered": delivered}),
            Err(e) => serde_json::json!({
                "records": total,
                "dead_letter": dead_letter.display().to_string(),
                "error": e.message,
            }),
        });
        monitor_failure = result.err();
    }
    phases.stop();
    let manifest = Manifest {
        run_id,
        procforest_version: env!("CARGO_PKG_VERSION"),
        started_at: started_at.to_rfc3339(),
        finished_at: Utc::now().to_rfc3339(),
        table: match &config.table {
            Some(t) => t.clone(),
            None => "(bundled sample)".into(),
        },
        table_version: table.version,
        files: pruning,
        summary_sources: plan.sources,
        history_counts: plan.history_counts,
        command_lines: plan.command_lines,
        events: census.events,
        groups,
        report_groups: census.report_groups,
        categories: census
            .indices
            .iter()
            .map(|index| (index.key.to_string(), index.values.len() as u64))
            .collect(),
        null_or_empty_keys: census
            .indices
            .iter()
            .map(|index| {
                let gaps = KeyGaps {
                    null: index.rows_of(None),
                    empty: index.rows_of(Some("")),
                };
                (index.key.to_string(), gaps)
            })
            .collect(),
        model: model_info,
        anomalies: anomalies.len(),
        report_window: ReportWindow {
            start: format_interval(as_of_us - config.window_us),
            end: format_interval(as_of_us),
            first_interval: format_interval(report_start_us),
        },
        labels: label_check,
        phases: phases.times,
        settings: serde_json::to_value(config).runtime("recording settings")?,
        azure_monitor: monitor_report,
    };
    if let Some(path) = &config.outputs.manifest {
        let json = serde_json::to_vec_pretty(&manifest).runtime("writing the manifest")?;
        sinks::write_file(path, &json)?;
    }
    if let Some(e) = monitor_failure {
        eprintln!("{}", manifest.summary());
        return Err(e);
    }
    Ok(RunOutcome {
        anomalies,
        manifest,
        labels,
        report_window: (report_start_us, as_of_us),
    })
}

fn validate(config: &RunConfig) -> Result<()> {
    if config.model.trees == 0 {
        return Err(JobError::bad_input("--trees must be at least 1"));
    }
    if config.model.max_samples == 0 {
        return Err(JobError::bad_input("--max-samples must be at least 1"));
    }
    // The model rides in every task of the scoring stage: keep it well under gRPC's
    // 16 MiB messages (about 26 bytes per training row per tree, 13 MB at the limit).
    if config.model.trees > MAX_TREES
        || config.model.max_samples > MAX_SAMPLES
        || config.model.trees * config.model.max_samples > MAX_TREE_ROWS
    {
        return Err(JobError::bad_input(format!(
            "--trees {} × --max-samples {} is too large: at most {MAX_TREES} trees, \
             {MAX_SAMPLES} samples per tree and {MAX_TREE_ROWS} in all",
            config.model.trees, config.model.max_samples
        )));
    }
    if let Some(c) = config.model.contamination
        && !(c > 0.0 && c <= 0.5)
    {
        return Err(JobError::bad_input(format!(
            "--contamination {c} is not in (0, 0.5]"
        )));
    }
    if config.window_us <= 0 {
        return Err(JobError::bad_input("--window must be positive"));
    }
    if config.partitions == 0 {
        return Err(JobError::bad_input("--partitions must be at least 1"));
    }
    if config.train_days == Some(0) {
        return Err(JobError::bad_input("--train-days must be at least 1"));
    }
    Ok(())
}

fn no_events(config: &RunConfig, as_of: DateTime<Utc>, location: &str) -> JobError {
    let window = match config.train_days {
        Some(d) => format!("in the {d} days up to --as-of {}", as_of.to_rfc3339()),
        None => format!("at or before --as-of {}", as_of.to_rfc3339()),
    };
    JobError::bad_input(format!(
        "--table {location}: no events {window} (is --as-of before all data?)"
    ))
}

/// A failed scan: if a data file is not what the log says (missing or truncated), that is
/// bad input naming the file; anything else is a runtime failure.
fn scan_error(error: JobError, resolved: &procforest_core::scan::ResolvedTable) -> JobError {
    let lower = error.message.to_lowercase();
    if !(lower.contains("parquet") || lower.contains("not found") || lower.contains("eof")) {
        return error;
    }
    for file in &resolved.files {
        let Ok(url) = url::Url::parse(&file.url) else {
            continue;
        };
        if url.scheme() != "file" {
            continue;
        }
        let Ok(path) = url.to_file_path() else {
            continue;
        };
        match std::fs::metadata(&path) {
            Err(_) => {
                return JobError::bad_input(format!(
                    "data file {} is missing (the Delta log lists it)",
                    path.display()
                ));
            }
            Ok(m) if m.len() != file.size => {
                return JobError::bad_input(format!(
                    "data file {} has {} bytes but the Delta log says {}: truncated or replaced",
                    path.display(),
                    m.len(),
                    file.size
                ));
            }
            Ok(_) => {}
        }
    }
    error
}

/// The features (`features`) of the summary rows in scratch folder `dir` (a subset of the
/// summaries, of `schema`), registered as table `name`.
async fn features_of(
    ctx: SessionContext,
    features: crate::pipeline::features::FeatureSet,
    indices: categories::Indices,
    name: &'static str,
    dir: String,
    schema: SchemaRef,
) -> Result<datafusion::prelude::DataFrame> {
    register_parquet(&ctx, name, &[dir], &schema)?;
    ctx.sql(&features.sql_over(name, indices))
        .await
        .runtime("planning features")
}

/// The features of the training sample's rows (see [`training::sample_rows`]) when they
/// need more than the rows and the category lookups: computed on the cluster from the rows
/// written (through the driver's own session) to scratch folder `dir` (the rarity
/// features aggregate over all summaries; large indices are joined as tables). The seed
/// features with looked-up indices are computed on the driver instead
/// ([`crate::pipeline::features::seed_features`]).
async fn training_features(
    ctx: &SessionContext,
    config: &RunConfig,
    indices: categories::Indices,
    rows: Vec<arrow::record_batch::RecordBatch>,
    schema: &SchemaRef,
    dir: &str,
) -> Result<datafusion::prelude::DataFrame> {
    let name = training::TRAINING_ROWS;
    let rows = crate::pipeline::driver_session(ctx)
        .read_batches(rows)
        .runtime("writing the training sample")?;
    summaries::write(rows, dir, "the training sample").await?;
    register_parquet(ctx, name, &[dir.to_string()], schema)?;
    ctx.sql(&config.features.sql_over(name, indices))
        .await
        .runtime("planning the training sample's features")
}

/// Most bytes of command-line files read ahead of scoring (see
/// [`prefetch_command_lines`]).
const PREFETCH_LINES_BYTES: u64 = 16 << 20;

/// The report groups' command lines read into memory, when they are gathered with the
/// summaries and their files hold at most `max_bytes` ([`PREFETCH_LINES_BYTES`]): they are
/// then read while the driver samples and fits (about 5 ms at 1 M events). Larger ones are
/// streamed after scoring, keeping only the anomalies' lines.
async fn prefetch_command_lines(
    ctx: &SessionContext,
    lines: Option<&ScratchTable>,
    max_bytes: u64,
) -> Result<Option<datafusion::prelude::DataFrame>> {
    let Some(lines) = lines else { return Ok(None) };
    if lines.bytes(ctx).await? > max_bytes {
        return Ok(None);
    }
    let frame = read_command_lines(ctx, lines).await?;
    let batches = frame.collect().await.runtime("reading command lines")?;
    crate::pipeline::driver_session(ctx)
        .read_batches(batches)
        .map(Some)
        .runtime("reading command lines")
}

/// The report's command lines in scratch, read by the driver itself (a plain DataFusion
/// session on the driver's object stores, not the cluster).
async fn read_command_lines(
    ctx: &SessionContext,
    lines: &ScratchTable,
) -> Result<datafusion::prelude::DataFrame> {
    crate::pipeline::driver_session(ctx)
        .read_parquet(
            &lines.dir,
            ParquetReadOptions::default().schema(&lines.schema),
        )
        .await
        .runtime("reading command lines")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::{
        array::{ArrayRef, Int64Array, RecordBatch, StringArray},
        util::pretty::pretty_format_batches,
    };

    use super::*;

    /// Small command-line files are read ahead, whole; larger ones are left to the stream
    /// after scoring.
    #[tokio::test]
    async fn command_lines_are_read_ahead_only_when_small() {
        let dir = tempfile::tempdir().unwrap();
        let batch = RecordBatch::try_from_iter([
            (
                "Computer",
                Arc::new(StringArray::from(vec![Some("h1"), None, Some("h3")])) as ArrayRef,
            ),
            (
                "count",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
        ])
        .unwrap();
        let file = std::fs::File::create(dir.path().join("part-0.parquet")).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let size = std::fs::metadata(dir.path().join("part-0.parquet"))
            .unwrap()
            .len();
        let lines = ScratchTable {
            dir: url::Url::from_directory_path(dir.path())
                .unwrap()
                .to_string(),
            schema: batch.schema(),
        };
        let ctx = SessionContext::new();
        assert_eq!(lines.bytes(&ctx).await.unwrap(), size);
        assert!(
            prefetch_command_lines(&ctx, None, u64::MAX)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            prefetch_command_lines(&ctx, Some(&lines), size - 1)
                .await
                .unwrap()
                .is_none()
        );
        let read = prefetch_command_lines(&ctx, Some(&lines), size)
            .await
            .unwrap()
            .expect("read ahead")
            .collect()
            .await
            .unwrap();
        assert_eq!(
            pretty_format_batches(&read).unwrap().to_string(),
            pretty_format_batches(&[batch]).unwrap().to_string()
        );
    }
}
