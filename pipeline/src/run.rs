//! A run: Delta events → daily summaries → isolation forest → the report.
//!
//! [`run`] calls the stages in data-flow order, each timed in the manifest: `snapshot`
//! (open and resolve the table; Ballista starts meanwhile), `summaries` (scan and
//! aggregate on Ballista, written to scratch and digested as written), `indexing`
//! (category indices and totals, and the training sample's rows, from those digests on
//! the driver), `sample` (their features), `fit` (on the driver) and `score` (on the
//! executors), then explains the anomalies and attaches their command lines. Nothing the
//! user sees is written before every stage succeeded; the sinks deliver the [`Report`].

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use datafusion::{
    datasource::file_format::options::ParquetReadOptions,
    prelude::{DataFrame, SessionContext},
};
use futures::StreamExt;
use iforest::Model;
use procforest_cluster::Session;
use procforest_core::{
    key_counts::TimeWindow,
    scan::ResolvedTable,
    schema::{EVIDENCE_COLUMNS, INTERVAL, TableName, check_columns, table},
    udf::ScoreUdf,
};

use crate::{
    config::{AsOf, RunConfig},
    error::{Context, NoEventsWindow, PipelineError, Result},
    manifest::{KeyGaps, Manifest, ModelInfo, ReportWindow, SummariesTable},
    observer::{RunObserver, Unobserved},
    report::{Report, ScoredRow, format_interval, sort_report},
    scores_out::ScoresOut,
    scratch::{Scratch, ScratchTable, read_digests, register_parquet},
    source::{self, EventTable, Pruning, TimeRange},
    stages::{
        categories::{self, Census, Indices},
        column,
        evidence::{self, KeptEvidence, Wanted},
        features::{self, FeatureSet, seed_features},
        scoring::{self, ReportRows, ScoreHistogram},
        summaries::{
            Kept, SampleChoice, SummaryFiles, SummaryPlan, SummaryWindow, WrittenSummaries,
            anomalies_command_lines, write_summaries,
        },
        time_literal,
        training::{self, TrainingSample},
        with_hash_joins,
    },
    summary_store::{self, Computed, Incremental, Kind, SummaryStore},
};

/// Seconds spent per phase; each start told to the run's observer.
struct Phases {
    times: BTreeMap<&'static str, f64>,
    current: Option<(&'static str, Instant)>,
    observer: Arc<dyn RunObserver>,
}

impl Phases {
    fn new(observer: Arc<dyn RunObserver>) -> Self {
        Self {
            times: BTreeMap::new(),
            current: None,
            observer,
        }
    }
    fn start(&mut self, name: &'static str) {
        self.stop();
        tracing::info!(phase = name, "starting");
        self.observer.phase_started(name);
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
pub async fn run(config: &RunConfig) -> Result<Report> {
    run_observed(config, Arc::new(Unobserved)).await
}

/// [`run`], telling `observer` of its phases and its scheduler.
///
/// On a cluster, a run that failed because an executor holding a finished job's results
/// was gone when the driver fetched them is run again, once: Ballista 55 recomputes lost
/// tasks only while a job runs, and its client fails the query at the fetch.
pub async fn run_observed(config: &RunConfig, observer: Arc<dyn RunObserver>) -> Result<Report> {
    match run_once(config, Arc::clone(&observer)).await {
        Err(e) if config.scheduler.is_some() && lost_at_fetch(&e) => {
            tracing::warn!(
                "an executor was lost before the driver fetched a job's results ({e}); \
                 running the job again, once"
            );
            run_once(config, observer).await
        }
        outcome => outcome,
    }
}

/// Whether a run failed fetching results from an executor that is gone (the scheduler
/// still answering: a lost scheduler is [`procforest_cluster::ClusterError::SchedulerLost`]).
fn lost_at_fetch(error: &PipelineError) -> bool {
    !matches!(error, PipelineError::Cluster(_))
        && error
            .to_string()
            .contains("Error connecting to Ballista scheduler or executor")
}

/// One attempt at the run.
async fn run_once(config: &RunConfig, observer: Arc<dyn RunObserver>) -> Result<Report> {
    config.validate()?;
    let started_at = Utc::now();
    let run_id = new_run_id();
    let mut phases = Phases::new(Arc::clone(&observer));

    phases.start("snapshot");
    let job_name = format!("procforest {run_id}");
    let connecting = procforest_cluster::connect(
        config.scheduler.as_deref(),
        config.partitions,
        Default::default(),
        &job_name,
    );
    let connecting = async { connecting.await.map_err(PipelineError::from) };
    let (snapshot, mut session) = futures::future::try_join(snapshot(config), connecting).await?;
    observer.connected(&session.scheduler_url, &session.job_name);

    phases.start("summaries");
    let interval_us = config.interval.micros();
    let plan = SummaryPlan::choose(
        &snapshot.files,
        interval_us,
        config.model.contamination.is_some(),
    );
    let window = TimeWindow {
        after_us: snapshot.train_start_us,
        until_us: snapshot.as_of_us,
    };
    plan.register(
        &session.ctx,
        &snapshot.files,
        &snapshot.table.schema,
        interval_us,
        window,
    )?;
    if let Some(files) = snapshot
        .evidence_files
        .as_ref()
        .filter(|f| !f.files.is_empty())
    {
        evidence::register_events(
            &session.ctx,
            files,
            &snapshot.table.schema,
            interval_us,
            window,
        )?;
    }
    let scores_out = match &config.scores_out {
        Some(location) => Some(ScoresOut::new(
            location,
            &run_id,
            config.scores_format,
            config.storage_options.clone(),
        )?),
        None => None,
    };
    let scratch = Scratch::new(config.scratch.as_deref(), &run_id)?;
    let keeping_alive = scratch.keep_alive(&session.ctx);
    scratch
        .remove_stale(&session.ctx, config.scratch_stale_after)
        .await;
    let run = Run {
        config,
        run_id,
        started_at,
        phases,
        plan,
        snapshot,
        scores_out: scores_out.clone(),
    };
    // A standalone scheduler or executor that stops ends the run: its jobs would wait
    // for it forever.
    let outcome = tokio::select! {
        outcome = run.compute(&session.ctx, &scratch) => outcome,
        reason = session.standalone_stopped() => Err(PipelineError::from(
            procforest_cluster::ClusterError::Standalone(reason),
        )),
    };
    if let (Err(_), Some(scores_out)) = (&outcome, &scores_out) {
        scores_out.abandon(&session.ctx).await;
    }
    keeping_alive.abort();
    remove_work_folders(&mut session, scratch).await;
    match outcome {
        // Only a runtime failure can be the scheduler's: bad input stays bad input.
        Err(e @ PipelineError::Runtime { .. }) => {
            let scheduler = config.scheduler.as_deref();
            match procforest_cluster::name_a_lost_scheduler(e, scheduler).await {
                Ok(e) => Err(e),
                Err(lost) => Err(PipelineError::from(lost)),
            }
        }
        other => other,
    }
}

/// Removes the scratch folder and standalone's work folder side by side.
async fn remove_work_folders(session: &mut Session, scratch: Scratch) {
    let removing_work_dir = session.remove_work_dir();
    scratch.cleanup(Some(&session.ctx)).await;
    if let Some(removing) = removing_work_dir {
        let _ = removing.await;
    }
}

/// The table as this run reads it (see [`snapshot`]).
struct Snapshot {
    table: EventTable,
    as_of: DateTime<Utc>,
    as_of_us: i64,
    train_start_us: Option<i64>,
    report_start_us: i64,
    /// Every file of the training window.
    resolved: ResolvedTable,
    pruning: Pruning,
    /// The files the summaries read.
    files: SummaryFiles,
    /// The summaries table's part, when given one.
    incremental: Option<Incremental>,
    /// The files the evidence reads (with the evidence features): every file of the
    /// training window, or with a summaries table those of the intervals computed.
    evidence_files: Option<ResolvedTable>,
}

/// Opens the table and resolves the files of the training window and of the report
/// window.
async fn snapshot(config: &RunConfig) -> Result<Snapshot> {
    let table = source::open(
        &config.table,
        &config.snapshot,
        config.storage_options.clone(),
    )
    .await?;
    if config.features.needs_evidence() {
        check_columns(&table.schema, EVIDENCE_COLUMNS).map_err(|e| {
            PipelineError::bad_setting(
                crate::setting::Setting::Features,
                format!(
                    "{}: {e}; the {} features read it",
                    config.table,
                    config.features.name()
                ),
            )
        })?;
    }
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
    let (resolved, pruning) = source::resolve(&table, range).await?;
    if resolved.files.is_empty() {
        return Err(no_events(config, as_of));
    }
    let incremental = match &config.summaries {
        Some(location) => {
            let mut store = SummaryStore::open(location, config.storage_options.clone()).await?;
            if config.rebuild_summaries {
                store.forget();
            }
            let window = (train_start_us, as_of_us);
            let lines = config.features.needs_evidence();
            Incremental::plan(
                store,
                &resolved,
                config.interval,
                window,
                report_start_us,
                lines,
            )?
        }
        None => None,
    };
    let mut files = summary_files(&table, &resolved, config, report_start_us, as_of).await?;
    // With a summaries table, only the files of the intervals computed are read.
    let of_intervals = |files: &ResolvedTable, intervals: &[i64]| {
        let window = (train_start_us, as_of_us);
        summary_store::files_of_intervals(files, intervals, config.interval, window)
    };
    if let Some(incremental) = &incremental {
        files.counted = of_intervals(&files.counted, &incremental.reuse.counts.counted);
    }
    let evidence_files = config.features.needs_evidence().then(|| {
        match incremental.as_ref().and_then(|i| i.reuse.evidence.as_ref()) {
            Some(evidence) => of_intervals(&resolved, &evidence.counted),
            None => resolved.clone(),
        }
    });
    Ok(Snapshot {
        table,
        as_of,
        as_of_us,
        train_start_us,
        report_start_us,
        resolved,
        pruning,
        files,
        incremental,
        evidence_files,
    })
}

/// Interval-aligned files split into history and report; otherwise the report window's
/// files are resolved again, for its command lines alone (time ranges are exclusive at
/// the start).
async fn summary_files(
    table: &EventTable,
    resolved: &ResolvedTable,
    config: &RunConfig,
    report_start_us: i64,
    as_of: DateTime<Utc>,
) -> Result<SummaryFiles> {
    let interval_us = config.interval.micros();
    if let Some((history, report)) = resolved.split_at_interval(interval_us, report_start_us) {
        return Ok(SummaryFiles {
            sources: crate::stages::summaries::Sources::ByInterval,
            counted: history,
            report,
        });
    }
    let report_range = TimeRange {
        start: DateTime::from_timestamp_micros(report_start_us - 1),
        end: as_of,
    };
    let (report, _) = source::resolve(table, report_range).await?;
    Ok(SummaryFiles {
        sources: crate::stages::summaries::Sources::Whole,
        counted: resolved.clone(),
        report,
    })
}

/// The rows of `intervals` in the registered `table` (written to scratch by this run),
/// in `kind`'s columns, gathered for the summaries table.
async fn computed_rows(
    ctx: &SessionContext,
    table: TableName,
    kind: Kind,
    intervals: &[i64],
) -> Result<Vec<arrow::record_batch::RecordBatch>> {
    let intervals = intervals.iter().map(|&s| time_literal(s)).collect();
    let columns: Vec<_> = kind
        .schema()
        .fields()
        .iter()
        .map(|f| column(f.name()))
        .collect();
    let what = format!("reading the computed rows of {table}");
    ctx.table(table.as_str())
        .await
        .and_then(|df| df.filter(column(INTERVAL).in_list(intervals, false)))
        .and_then(|df| df.select(columns))
        .runtime(&what)?
        .collect()
        .await
        .runtime(what)
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
struct Run<'a> {
    config: &'a RunConfig,
    run_id: String,
    started_at: DateTime<Utc>,
    phases: Phases,
    /// How the summaries are computed.
    plan: SummaryPlan,
    snapshot: Snapshot,
    /// Where every score goes, when asked.
    scores_out: Option<ScoresOut>,
}

/// The summaries' census and the training sample's rows, from their digests.
struct Indexed {
    census: Census,
    indices: Indices,
    sample_rows: Vec<arrow::record_batch::RecordBatch>,
}

/// What scoring brought back.
struct Scored {
    /// The report's anomalies, in report order.
    anomalies: Vec<ScoredRow>,
    /// The report groups' scores, when asked for.
    histogram: Option<ScoreHistogram>,
}

/// The fitted model, shared with the score UDF.
struct Fitted {
    model: Arc<Model>,
    info: ModelInfo,
}

impl Run<'_> {
    fn window(&self) -> SummaryWindow {
        SummaryWindow {
            start_us: self.snapshot.train_start_us,
            end_us: self.snapshot.as_of_us,
            report_start_us: self.snapshot.report_start_us,
            interval: self.config.interval,
        }
    }

    fn sample_size(&self) -> usize {
        self.config.model.trees * self.config.model.max_samples
    }

    /// The stages on the cluster, then the report.
    async fn compute(mut self, ctx: &SessionContext, scratch: &Scratch) -> Result<Report> {
        let written = self.summarise(ctx, scratch).await?;
        let ctx = &if written.groups <= ONE_PARTITION_GROUPS {
            one_partition(ctx)
        } else {
            ctx.clone()
        };
        register_parquet(
            ctx,
            table::SUMMARIES,
            &written.counts_dirs,
            &written.counts_schema,
        )?;

        self.phases.start("indexing");
        let indexed = self.index(ctx, &written, scratch).await?;
        // The rarity totals and the groups' evidence are independent jobs: submitted
        // together, the scheduler can run the totals' small stages beside the evidence's.
        let aggregates = self.config.features.aggregates_summaries();
        let rarity_totals = async {
            match aggregates {
                true => features::write_rarity_totals(ctx, scratch).await,
                false => Ok(()),
            }
        };
        let evidence = async {
            match self.config.features.needs_evidence() {
                true => {
                    self.phases.start("evidence");
                    let evidence = self
                        .group_evidence(ctx, &indexed.sample_rows, scratch)
                        .await?;
                    Ok(Some(evidence))
                }
                false => Ok(None),
            }
        };
        let (evidence, ()) = futures::future::try_join(evidence, rarity_totals).await?;
        let names = self.config.features.names();
        // The report rows' features, planned on another core while the driver samples
        // and fits (they do not depend on the model).
        let report_features = self.plan_report_features(ctx, &written, indexed.indices);

        self.phases.start("sample");
        // The report groups' command lines, when small, read on the core the driver's
        // single-threaded sample and fit leave idle: read while the executors score they
        // slowed the scoring job.
        let prefetching = tokio::spawn({
            let (ctx, lines) = (ctx.clone(), written.lines.clone());
            async move { prefetch_command_lines(&ctx, lines.as_ref(), PREFETCH_LINES_BYTES).await }
        });
        let sample = self
            .training_sample(ctx, indexed.indices, indexed.sample_rows, &written, scratch)
            .await?;

        self.phases.start("fit");
        let (udf, fitted) = fit(&sample, self.config)?;

        self.phases.start("score");
        let Scored {
            anomalies,
            histogram,
        } = self
            .score(
                ctx,
                report_features,
                indexed.indices,
                udf,
                fitted.info.offset,
                &names,
            )
            .await?;
        let prefetched = prefetching.await.runtime("reading command lines")??;
        let anomalies = self
            .explain_and_attach_lines(ctx, anomalies, &fitted, prefetched, &written, scratch)
            .await?;
        let anomalies = self
            .attach_evidence(ctx, anomalies, evidence.as_ref())
            .await?;
        let summaries_table = match &self.snapshot.incremental {
            Some(incremental) => {
                self.phases.start("store");
                Some(self.store_summaries(ctx, incremental).await?)
            }
            None => None,
        };
        if let Some(scores_out) = &self.scores_out {
            scores_out
                .commit(ctx, &self.config.features.names())
                .await?;
        }
        self.phases.stop();
        let mut manifest =
            self.manifest(&indexed.census, written.groups, fitted.info, &anomalies)?;
        manifest.score_histogram = histogram;
        manifest.summaries_table = summaries_table;
        Ok(Report {
            anomalies,
            feature_names: names,
            model: fitted.model,
            manifest,
            as_of: self.snapshot.as_of,
            first_interval_us: self.snapshot.report_start_us,
            window_us: (
                self.snapshot.as_of_us - self.config.window_us,
                self.snapshot.as_of_us,
            ),
        })
    }

    /// Summaries on Ballista, written to scratch.
    async fn summarise(&self, ctx: &SessionContext, scratch: &Scratch) -> Result<WrittenSummaries> {
        let sample = SampleChoice {
            seed: self.config.model.seed,
            rows: self.sample_size(),
        };
        let kept = self.snapshot.incremental.as_ref().map(|incremental| Kept {
            files: incremental.stored_files.clone(),
            counted: incremental.reuse.counts.counted.clone(),
            count_history: !self.snapshot.files.counted.files.is_empty(),
        });
        let kept_lines = self.snapshot.incremental.as_ref().and_then(|incremental| {
            let lines = incremental.reuse.evidence.as_ref()?;
            Some(KeptEvidence {
                files: incremental.stored_evidence.clone(),
                counted: lines.counted.clone(),
                // No file to read when every computed interval lost its events.
                compute: (self.snapshot.evidence_files.as_ref())
                    .is_some_and(|files| !files.files.is_empty()),
            })
        });
        let summaries = write_summaries(
            ctx,
            self.plan,
            self.window(),
            sample,
            scratch,
            kept.as_ref(),
        );
        let evidence = async {
            match self.config.features.needs_evidence() {
                true => {
                    evidence::write_evidence_counts(
                        ctx,
                        self.window(),
                        scratch,
                        kept_lines.as_ref(),
                    )
                    .await
                }
                false => Ok(()),
            }
        };
        let (written, ()) = futures::future::try_join(summaries, evidence)
            .await
            .map_err(|e| scan_error(e, &self.snapshot.resolved))?;
        if written.groups == 0 {
            return Err(no_events(self.config, self.snapshot.as_of));
        }
        Ok(written)
    }

    /// The groups' evidence, of the report's and the training sample's groups (of every
    /// group when every score is written), on the cluster.
    async fn group_evidence(
        &self,
        ctx: &SessionContext,
        sample_rows: &[arrow::record_batch::RecordBatch],
        scratch: &Scratch,
    ) -> Result<ScratchTable> {
        let wanted = match &self.scores_out {
            Some(_) => None,
            None => Some(Wanted {
                report_start_us: self.snapshot.report_start_us,
                sample: scoring::groups_of(sample_rows)?,
            }),
        };
        evidence::write_group_evidence(ctx, scratch, wanted.as_ref()).await
    }

    /// Writes the computed intervals' rows (read back from scratch) to the summaries
    /// table, replacing those intervals' rows, with every interval's fingerprint.
    async fn store_summaries(
        &self,
        ctx: &SessionContext,
        incremental: &Incremental,
    ) -> Result<SummariesTable> {
        let reuse = &incremental.reuse;
        let mut kinds = vec![(table::SUMMARIES, Kind::Counts, &reuse.counts.counted)];
        if let Some(lines) = &reuse.evidence {
            kinds.extend([
                (table::EVIDENCE_LINES, Kind::Lines, &lines.counted),
                (table::EVIDENCE_PARENTS, Kind::Parents, &lines.counted),
                (table::EVIDENCE_GROUPS, Kind::Groups, &lines.counted),
            ]);
        }
        let reading = kinds
            .into_iter()
            .map(|(table, kind, intervals)| async move {
                let rows = computed_rows(ctx, table, kind, intervals).await?;
                Ok::<_, PipelineError>((kind, rows))
            });
        let computed = Computed(futures::future::try_join_all(reading).await?);
        let state = incremental.state(
            &self.snapshot.resolved.table_url,
            self.snapshot.table.version,
            self.config.interval,
        );
        let saved = incremental.store.save(computed, reuse, &state).await?;
        Ok(SummariesTable {
            location: incremental.store.location().to_string(),
            rebuilt: reuse.rebuild,
            intervals_read: reuse.counts.stored.len(),
            intervals_counted: reuse.counts.counted.len(),
            intervals_dropped: reuse.counts.vanished.len(),
            line_intervals_read: reuse.evidence.as_ref().map(|l| l.stored.len()),
            line_intervals_computed: reuse.evidence.as_ref().map(|l| l.counted.len()),
            rows_written: saved.rows,
            version_written: saved.version,
        })
    }

    /// Category indices and totals, and the training sample's rows, from the digests the
    /// summaries' writers left.
    async fn index(
        &self,
        ctx: &SessionContext,
        written: &WrittenSummaries,
        scratch: &Scratch,
    ) -> Result<Indexed> {
        let digests = read_digests(ctx, &written.digest_dirs).await?;
        let census = Census::from_digests(&digests)?;
        let sample_rows =
            training::sample_rows(&digests, self.sample_size(), &written.counts_schema)?;
        drop(digests);
        let indices = categories::register(
            ctx,
            &census,
            &scratch.path("categories"),
            categories::MAX_LOOKUP_BYTES,
        )
        .await?;
        Ok(Indexed {
            census,
            indices,
            sample_rows,
        })
    }

    /// The report's rows have their own folder when the files are interval-aligned:
    /// scoring then reads them alone, not every summary row (the features' category
    /// indices and rarity still come from all of them).
    fn plan_report_features(
        &self,
        ctx: &SessionContext,
        written: &WrittenSummaries,
        indices: Indices,
    ) -> Option<tokio::task::JoinHandle<Result<DataFrame>>> {
        written.report_dir.as_ref().map(|report_dir| {
            tokio::spawn(features_of(
                ctx.clone(),
                self.config.features,
                indices,
                table::REPORT_ROWS,
                report_dir.clone(),
                written.counts_schema.clone(),
            ))
        })
    }

    /// The training sample's features: the seed features with looked-up indices computed
    /// on the driver directly, the others on the cluster.
    async fn training_sample(
        &self,
        ctx: &SessionContext,
        indices: Indices,
        sample_rows: Vec<arrow::record_batch::RecordBatch>,
        written: &WrittenSummaries,
        scratch: &Scratch,
    ) -> Result<TrainingSample> {
        if let (FeatureSet::Seed, Indices::Lookups) = (self.config.features, indices) {
            let lookups = categories::lookups(ctx)?;
            return Ok(TrainingSample {
                columns: seed_features(&sample_rows, &lookups)?,
            });
        }
        let sample_features = training_features(
            ctx,
            self.config.features,
            indices,
            sample_rows,
            &written.counts_schema,
            &scratch.path("training-rows"),
        )
        .await?;
        training::gather(
            sample_features,
            &self.config.features.names(),
            self.config.model.seed,
            self.sample_size(),
        )
        .await
    }

    /// Scores on the executors: the report's anomalies, brought back; beside them, when
    /// asked, the report groups' histogram and every row written by the executors.
    async fn score(
        &self,
        ctx: &SessionContext,
        report_features: Option<tokio::task::JoinHandle<Result<DataFrame>>>,
        indices: Indices,
        udf: ScoreUdf,
        offset: f64,
        names: &[&'static str],
    ) -> Result<Scored> {
        let report = ReportRows {
            start_us: self.snapshot.report_start_us,
            end_us: self.snapshot.as_of_us,
            offset,
        };
        let all_features = || async {
            ctx.sql(&self.config.features.sql(indices))
                .await
                .runtime("planning features")
        };
        let scored = match report_features {
            Some(planned) => planned.await.runtime("planning the report's features")??,
            None => all_features().await?,
        };
        let udf = udf.into_udf();
        let counting = self.config.score_histogram.then(|| {
            let (features, names, udf) = (scored.clone(), names.to_vec(), udf.clone());
            tokio::spawn(
                async move { scoring::score_histogram(features, &names, udf, report).await },
            )
        });
        let writing = match &self.scores_out {
            Some(scores_out) => {
                let (features, names) = (all_features().await?, names.to_vec());
                let (scores_out, udf) = (scores_out.clone(), udf.clone());
                Some(tokio::spawn(async move {
                    scores_out.write(features, &names, udf, offset).await
                }))
            }
            None => None,
        };
        let mut stream = scoring::score(scored, names, udf, report).await?;
        let mut anomalies = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.runtime("scoring")?;
            anomalies.extend(scoring::rows(&batch, names)?);
        }
        sort_report(&mut anomalies);
        let histogram = match counting {
            Some(counting) => Some(counting.await.runtime("counting the report's scores")??),
            None => None,
        };
        if let Some(writing) = writing {
            writing.await.runtime("writing every score")??;
        }
        Ok(Scored {
            anomalies,
            histogram,
        })
    }

    /// Which features isolated each reported group (a walk of every tree per row, on
    /// other threads), while the anomalies' command lines are read.
    async fn explain_and_attach_lines(
        &self,
        ctx: &SessionContext,
        mut anomalies: Vec<ScoredRow>,
        fitted: &Fitted,
        prefetched: Option<DataFrame>,
        written: &WrittenSummaries,
        scratch: &Scratch,
    ) -> Result<Vec<ScoredRow>> {
        let explaining = (!anomalies.is_empty()).then(|| {
            let features = self.config.features.names().len();
            let columns: Vec<Vec<f64>> = (0..features)
                .map(|j| anomalies.iter().map(|r| r.features[j]).collect())
                .collect();
            let model = Arc::clone(&fitted.model);
            tokio::task::spawn_blocking(move || model.explain(&columns))
        });
        let lines = match (prefetched, &written.lines) {
            (Some(lines), _) => Some(lines),
            (None, Some(lines)) => Some(read_command_lines(ctx, lines).await?),
            (None, None) if anomalies.is_empty() => None,
            (None, None) => {
                let groups: Vec<_> = anomalies.iter().map(ScoredRow::group).collect();
                let lines = anomalies_command_lines(ctx, &groups, self.window(), scratch).await?;
                Some(read_command_lines(ctx, &lines).await?)
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
        Ok(anomalies)
    }

    /// The report rows' evidence, read from the groups' evidence in scratch by the driver
    /// (the report's intervals only).
    async fn attach_evidence(
        &self,
        ctx: &SessionContext,
        mut anomalies: Vec<ScoredRow>,
        evidence: Option<&ScratchTable>,
    ) -> Result<Vec<ScoredRow>> {
        let Some(evidence) = evidence.filter(|_| !anomalies.is_empty()) else {
            return Ok(anomalies);
        };
        let report_start = crate::stages::time_literal(self.snapshot.report_start_us);
        let groups = crate::stages::driver_session(ctx)
            .read_parquet(
                &evidence.dir,
                ParquetReadOptions::default().schema(&evidence.schema),
            )
            .await
            .and_then(|df| df.filter(crate::stages::column(INTERVAL).gt_eq(report_start)))
            .runtime("reading the groups' evidence")?;
        evidence::attach_evidence(&mut anomalies, groups).await?;
        Ok(anomalies)
    }

    /// The run's manifest (the sinks add the outputs' phase and delivery results).
    fn manifest(
        &self,
        census: &Census,
        groups: u64,
        model: ModelInfo,
        anomalies: &[ScoredRow],
    ) -> Result<Manifest> {
        let (config, snapshot) = (self.config, &self.snapshot);
        Ok(Manifest {
            run_id: self.run_id.clone(),
            procforest_version: env!("CARGO_PKG_VERSION"),
            started_at: self.started_at.to_rfc3339(),
            finished_at: Utc::now().to_rfc3339(),
            table: config
                .table_label
                .clone()
                .unwrap_or_else(|| config.table.clone()),
            table_version: snapshot.table.version,
            files: snapshot.pruning.clone(),
            summary_sources: self.plan.sources,
            history_counts: self.plan.history_counts,
            command_lines: self.plan.command_lines,
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
            model,
            anomalies: anomalies.len(),
            score_histogram: None,
            report_window: ReportWindow {
                start: format_interval(snapshot.as_of_us - config.window_us),
                end: format_interval(snapshot.as_of_us),
                first_interval: format_interval(snapshot.report_start_us),
            },
            labels: None,
            label_summary: None,
            phases: self.phases.times.clone(),
            settings: serde_json::to_value(config).runtime("recording settings")?,
            azure_monitor: None,
            summaries_table: None,
        })
    }
}

/// Fits the model on the driver and shares it with the score UDF; its flattened form
/// and explanation tables are built on an idle core while the scoring job is planned.
fn fit(sample: &TrainingSample, config: &RunConfig) -> Result<(ScoreUdf, Fitted)> {
    let model = training::fit(sample, &config.model, &config.features.families())?;
    for w in model.warnings() {
        tracing::warn!("{w}");
    }
    let offset = model.offset();
    let udf = ScoreUdf::new(model);
    let model = udf.shared_model();
    tokio::task::spawn_blocking({
        let model = Arc::clone(&model);
        move || model.prepare()
    });
    let info = ModelInfo {
        hash: udf.model_hash().to_string(),
        trees: model.trees(),
        max_samples: model.max_samples(),
        offset,
        training_rows: sample.rows(),
        warnings: model.warnings(),
        payload_bytes: udf.payload().len(),
    };
    Ok((udf, Fitted { model, info }))
}

fn no_events(config: &RunConfig, as_of: DateTime<Utc>) -> PipelineError {
    PipelineError::NoEvents {
        location: config.table.clone(),
        window: NoEventsWindow {
            as_of: as_of.to_rfc3339(),
            train_days: config.train_days,
        },
    }
}

/// A failed scan: if a local data file is not what the log says (missing or truncated),
/// that is bad input naming the file; anything else stays a runtime failure.
fn scan_error(error: PipelineError, resolved: &ResolvedTable) -> PipelineError {
    if error.kind() != crate::error::ErrorKind::Runtime {
        return error;
    }
    // Checked on any runtime failure, not by the message: on a cluster the executors'
    // errors reach the driver as text. A stat per local file, only when the scan failed.
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
                return PipelineError::bad_input(format!(
                    "data file {} is missing (the Delta log lists it)",
                    path.display()
                ));
            }
            Ok(m) if m.len() != file.size => {
                return PipelineError::bad_input(format!(
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
    features: FeatureSet,
    indices: Indices,
    name: TableName,
    dir: String,
    schema: SchemaRef,
) -> Result<DataFrame> {
    register_parquet(&ctx, name, &[dir], &schema)?;
    let features = ctx
        .sql(&features.sql_over(name, indices))
        .await
        .runtime("planning features")?;
    Ok(with_hash_joins(features))
}

/// The features of the training sample's rows (see [`training::sample_rows`]) when they
/// need more than the rows and the category lookups: computed on the cluster from the rows
/// written (through the driver's own session) to scratch folder `dir` (the rarity
/// features aggregate over all summaries; large indices are joined as tables). The seed
/// features with looked-up indices are computed on the driver instead
/// ([`crate::stages::features::seed_features`]).
async fn training_features(
    ctx: &SessionContext,
    features: FeatureSet,
    indices: Indices,
    rows: Vec<arrow::record_batch::RecordBatch>,
    schema: &SchemaRef,
    dir: &str,
) -> Result<DataFrame> {
    let name = table::TRAINING_ROWS;
    let rows = crate::stages::driver_session(ctx)
        .read_batches(rows)
        .runtime("writing the training sample")?;
    crate::stages::summaries::write(rows, dir, "the training sample").await?;
    register_parquet(ctx, name, &[dir.to_string()], schema)?;
    let features = ctx
        .sql(&features.sql_over(name, indices))
        .await
        .runtime("planning the training sample's features")?;
    Ok(with_hash_joins(features))
}

/// Most bytes of command-line files read ahead of scoring (see
/// [`prefetch_command_lines`]).
const PREFETCH_LINES_BYTES: u64 = 16 << 20;

/// The report groups' command lines read into memory, when they are gathered with the
/// summaries and their files hold at most `max_bytes` ([`PREFETCH_LINES_BYTES`]): they are
/// then read while the driver samples and fits. Larger ones are
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
    crate::stages::driver_session(ctx)
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
    crate::stages::driver_session(ctx)
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
