//! Digests: what a write of summary rows learns of them while writing them, so that the
//! driver needs no further job over the summaries before it trains.
//!
//! Each partition of a digested write ([`DigestSpec`]) tallies, for each key column, the
//! summary rows, events and report-window rows of every value it meets (null included), and
//! keeps the rows with the [`DigestSpec::sample_rows`] smallest sample keys
//! ([`crate::udf::sample_key`]). After its Parquet file it writes both as Arrow IPC files
//! into the digest folder. The driver reads them all ([`read`]): summary rows are unique
//! and each lies in one partition, so the tallies add up to the category counts and totals
//! of all summaries, and the training sample (the rows with the smallest keys of all) is
//! among the rows the partitions kept — a partition drops a row only when it holds
//! `sample_rows` rows with smaller keys. The driver so receives up to `sample_rows` rows
//! per partition (trees × max samples each): with very large models, keep the partitions
//! modest.

use std::{collections::HashMap, sync::Arc};

use arrow::{
    array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt64Array},
    compute::{cast, filter_record_batch},
    datatypes::{DataType, Field, Int64Type, Schema, SchemaRef},
    ipc::{reader::FileReader, writer::FileWriter},
};
use datafusion::common::{DataFusionError, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, path::Path};

use crate::{
    schema::GROUP_KEYS,
    schema::{COUNT, INTERVAL},
    udf::sample_keys,
};

/// The sample-key column of the kept rows.
pub const SAMPLE_KEY: &str = "sample_key";

/// What a digested write gathers, and where it puts it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DigestSpec {
    /// The folder of the digests: a URL ending with `/`.
    pub dir: String,
    /// The sample key's seed.
    pub seed: u64,
    /// How many rows the training sample takes (each partition keeps as many).
    pub sample_rows: usize,
    /// The report window's first interval (microseconds).
    pub report_start_us: i64,
    /// The report window's last interval (microseconds, inclusive).
    pub report_end_us: i64,
}

/// One category's tally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Summary rows holding it.
    pub groups: u64,
    /// Their events (the sum of their counts).
    pub events: u64,
    /// Those of them in the report window.
    pub report_groups: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.groups += other.groups;
        self.events += other.events;
        self.report_groups += other.report_groups;
    }
}

/// One key column's values and their tallies.
#[derive(Debug, Default)]
struct ValueTallies {
    values: HashMap<String, Tally, foldhash::fast::FixedState>,
    null: Tally,
}

impl ValueTallies {
    fn add(&mut self, value: Option<&str>, tally: Tally) {
        match value {
            None => self.null.add(tally),
            Some(v) => match self.values.get_mut(v) {
                Some(t) => t.add(tally),
                None => {
                    self.values.insert(v.to_string(), tally);
                }
            },
        }
    }
}

/// A partition's digest while its rows are written; see the [module documentation](self).
#[derive(Debug)]
pub struct Digest {
    spec: DigestSpec,
    tallies: Vec<ValueTallies>,
    kept: KeptRows,
}

/// The rows with the smallest sample keys seen so far: every row at or below `threshold`,
/// cut back to about `limit` rows whenever twice as many pile up.
#[derive(Debug)]
struct KeptRows {
    limit: usize,
    threshold: u64,
    batches: Vec<RecordBatch>,
    rows: usize,
}

impl KeptRows {
    fn add(&mut self, batch: RecordBatch) -> Result<()> {
        if self.limit == 0 {
            return Ok(());
        }
        let batch = at_most(batch, self.threshold)?;
        if batch.num_rows() > 0 {
            self.rows += batch.num_rows();
            self.batches.push(batch);
        }
        if self.rows >= 2 * self.limit {
            self.cut()?;
        }
        Ok(())
    }

    /// Keeps the rows whose key is at most the `limit`-th smallest (found from the keys
    /// alone; only the rows kept are copied).
    fn cut(&mut self) -> Result<()> {
        if self.rows <= self.limit {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(self.rows);
        for batch in &self.batches {
            keys.extend_from_slice(sample_key_column(batch)?.values());
        }
        let (_, nth, _) = keys.select_nth_unstable(self.limit - 1);
        self.threshold = *nth;
        let batches = std::mem::take(&mut self.batches);
        for batch in batches {
            let batch = at_most(batch, self.threshold)?;
            if batch.num_rows() > 0 {
                self.batches.push(batch);
            }
        }
        self.rows = self.batches.iter().map(RecordBatch::num_rows).sum();
        Ok(())
    }
}

/// The rows of `batch` whose sample key is at most `threshold`.
fn at_most(batch: RecordBatch, threshold: u64) -> Result<RecordBatch> {
    if threshold == u64::MAX {
        return Ok(batch);
    }
    let keys = sample_key_column(&batch)?;
    let below: BooleanArray = keys
        .values()
        .iter()
        .map(|&k| Some(k <= threshold))
        .collect();
    Ok(filter_record_batch(&batch, &below)?)
}

fn sample_key_column(batch: &RecordBatch) -> Result<&UInt64Array> {
    batch
        .column_by_name(SAMPLE_KEY)
        .and_then(|c| c.as_primitive_opt())
        .ok_or_else(|| DataFusionError::Internal(format!("digest rows without {SAMPLE_KEY}")))
}

/// A column of a summaries batch by name.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Plan(format!("a digested write needs column {name}")))
}

/// The schema of the kept rows: the interval (as written), the keys, the count, the key.
fn kept_schema(interval: &Field) -> SchemaRef {
    let mut fields = vec![interval.clone()];
    fields.extend(GROUP_KEYS.map(|k| Field::new(k, DataType::Utf8, true)));
    fields.push(Field::new(COUNT, DataType::Int64, false));
    fields.push(Field::new(SAMPLE_KEY, DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// Column names of the category tallies.
const KEY: &str = "key";
const VALUE: &str = "value";
const GROUPS: &str = "groups";
const EVENTS: &str = "events";
const REPORT_GROUPS: &str = "report_groups";

fn tallies_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(KEY, DataType::Utf8, false),
        Field::new(VALUE, DataType::Utf8, true),
        Field::new(GROUPS, DataType::UInt64, false),
        Field::new(EVENTS, DataType::UInt64, false),
        Field::new(REPORT_GROUPS, DataType::UInt64, false),
    ]))
}

impl Digest {
    /// An empty digest.
    pub fn new(spec: DigestSpec) -> Self {
        Self {
            kept: KeptRows {
                limit: spec.sample_rows,
                threshold: u64::MAX,
                batches: Vec::new(),
                rows: 0,
            },
            tallies: GROUP_KEYS.iter().map(|_| ValueTallies::default()).collect(),
            spec,
        }
    }

    /// Takes in a batch of summary rows (with [`INTERVAL`], the keys and [`COUNT`]; other
    /// columns are ignored).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let interval = column(batch, INTERVAL)?;
        let interval_field = batch.schema().field_with_name(INTERVAL)?.clone();
        let micros = cast(interval, &DataType::Int64)?;
        let micros = micros.as_primitive::<Int64Type>();
        let counts = cast(column(batch, COUNT)?, &DataType::Int64)?;
        let counts = counts.as_primitive::<Int64Type>();
        let keys = GROUP_KEYS
            .iter()
            .map(|k| cast(column(batch, k)?, &DataType::Utf8).map_err(Into::into))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let row_tallies: Vec<Tally> = (0..rows)
            .map(|r| {
                let in_report = micros.is_valid(r)
                    && (self.spec.report_start_us..=self.spec.report_end_us)
                        .contains(&micros.value(r));
                Tally {
                    groups: 1,
                    events: if counts.is_valid(r) {
                        counts.value(r).max(0) as u64
                    } else {
                        0
                    },
                    report_groups: in_report as u64,
                }
            })
            .collect();
        for (tallies, values) in self.tallies.iter_mut().zip(&keys) {
            let values = values.as_string::<i32>();
            for (r, tally) in row_tallies.iter().enumerate() {
                tallies.add(values.is_valid(r).then(|| values.value(r)), *tally);
            }
        }
        let mut parts = vec![interval.clone()];
        parts.extend(keys.iter().cloned());
        let sample_keys = sample_keys(self.spec.seed, &parts, rows)?;
        let mut columns = parts;
        columns.push(Arc::new(counts.clone()));
        columns.push(Arc::new(sample_keys));
        let kept = RecordBatch::try_new(kept_schema(&interval_field), columns)?;
        self.kept.add(kept)
    }

    /// The digest's two tables: the category tallies, and the kept rows (no batch when no
    /// row came in).
    fn finish(mut self) -> Result<(RecordBatch, Vec<RecordBatch>)> {
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut counts = Vec::new();
        for (key, column) in GROUP_KEYS.iter().zip(self.tallies) {
            let nulls = (column.null.groups > 0).then_some((None, column.null));
            let all = column.values.into_iter().map(|(v, t)| (Some(v), t));
            for (value, tally) in all.chain(nulls) {
                keys.push(*key);
                values.push(value);
                counts.push(tally);
            }
        }
        let field = |f: fn(&Tally) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from_iter_values(counts.iter().map(f)))
        };
        let tallies = RecordBatch::try_new(
            tallies_schema(),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(StringArray::from(values)),
                field(|t| t.groups),
                field(|t| t.events),
                field(|t| t.report_groups),
            ],
        )?;
        self.kept.cut()?;
        Ok((tallies, self.kept.batches))
    }

    /// Writes the digest into its folder in `store` as `tallies-<name>.arrow` and (when a
    /// row came in) `sample-<name>.arrow`.
    pub async fn write(self, store: &dyn ObjectStore, name: &str) -> Result<()> {
        let (_, dir) = crate::scan::store_and_path(&self.spec.dir)?;
        let (tallies, kept) = self.finish()?;
        let tables = std::iter::once(("tallies", vec![tallies]))
            .chain((!kept.is_empty()).then_some(("sample", kept)));
        for (what, batches) in tables {
            let path = dir.clone().join(format!("{what}-{name}.arrow"));
            store.put(&path, to_ipc(&batches)?.into()).await?;
        }
        Ok(())
    }
}

/// Batches of one schema as an Arrow IPC file (`batches` is not empty).
fn to_ipc(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let Some(first) = batches.first() else {
        return Ok(bytes);
    };
    let mut writer = FileWriter::try_new(&mut bytes, &first.schema())?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(bytes)
}

fn from_ipc(bytes: impl AsRef<[u8]>, what: &Path) -> Result<Vec<RecordBatch>> {
    let context = |e: arrow::error::ArrowError| {
        DataFusionError::Execution(format!("reading the digest {what}: {e}"))
    };
    FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(context)?
        .map(|b| b.map_err(context))
        .collect()
}

/// Every digest of a folder, read back.
#[derive(Debug, Default)]
pub struct Digests {
    tallies: Vec<RecordBatch>,
    sample: Vec<RecordBatch>,
}

/// The category tallies and totals of digested summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tallies {
    /// Each key column's values (null included) and their tallies, in [`GROUP_KEYS`]
    /// order, each column's values in no particular order.
    pub categories: Vec<Vec<(Option<String>, Tally)>>,
    /// All summary rows' tally (the events of all, the report's rows).
    pub total: Tally,
}

impl Digests {
    /// The tallies of every partition added up.
    pub fn tallies(&self) -> Result<Tallies> {
        let mut columns: Vec<HashMap<Option<String>, Tally>> =
            GROUP_KEYS.iter().map(|_| HashMap::new()).collect();
        for batch in &self.tallies {
            let strings = |name| -> Result<&StringArray> {
                column(batch, name)?
                    .as_string_opt()
                    .ok_or_else(|| DataFusionError::Internal(format!("digest column {name}")))
            };
            let numbers = |name| -> Result<&UInt64Array> {
                column(batch, name)?
                    .as_primitive_opt()
                    .ok_or_else(|| DataFusionError::Internal(format!("digest column {name}")))
            };
            let (keys, values) = (strings(KEY)?, strings(VALUE)?);
            let (groups, events, report) =
                (numbers(GROUPS)?, numbers(EVENTS)?, numbers(REPORT_GROUPS)?);
            for r in 0..batch.num_rows() {
                let Some(i) = GROUP_KEYS.iter().position(|k| *k == keys.value(r)) else {
                    return Err(DataFusionError::Internal(format!(
                        "digest of an unknown key column {}",
                        keys.value(r)
                    )));
                };
                let value = values.is_valid(r).then(|| values.value(r).to_string());
                columns[i].entry(value).or_default().add(Tally {
                    groups: groups.value(r),
                    events: events.value(r),
                    report_groups: report.value(r),
                });
            }
        }
        let mut total = Tally::default();
        if let Some(first) = columns.first() {
            for tally in first.values() {
                total.add(*tally);
            }
        }
        Ok(Tallies {
            categories: columns
                .into_iter()
                .map(|c| c.into_iter().collect())
                .collect(),
            total,
        })
    }

    /// The rows every partition kept (with [`SAMPLE_KEY`]): a superset of the training
    /// sample.
    pub fn kept_rows(&self) -> &[RecordBatch] {
        &self.sample
    }

    /// The kept rows that can be among the `rows` with the smallest keys of all: those at
    /// or below the `rows`-th smallest key kept (every row when fewer were kept).
    pub fn candidates(&self, rows: usize) -> Result<Vec<RecordBatch>> {
        let mut keys = Vec::new();
        for batch in &self.sample {
            keys.extend_from_slice(sample_key_column(batch)?.values());
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        if keys.len() <= rows {
            return Ok(self.sample.clone());
        }
        let (_, nth, _) = keys.select_nth_unstable(rows - 1);
        let threshold = *nth;
        self.sample
            .iter()
            .map(|batch| at_most(batch.clone(), threshold))
            .collect()
    }

    /// Adds another folder's digests.
    pub fn extend(&mut self, other: Digests) {
        self.tallies.extend(other.tallies);
        self.sample.extend(other.sample);
    }
}

/// Reads the digests of folder `dir` (a path in `store`).
pub async fn read(store: &dyn ObjectStore, dir: &Path) -> Result<Digests> {
    let files: Vec<Path> = store
        .list(Some(dir))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await?;
    let tables: Vec<(Path, Vec<RecordBatch>)> = futures::stream::iter(files)
        .map(|path| async move {
            let bytes = store.get(&path).await?.bytes().await?;
            let batches = from_ipc(bytes, &path)?;
            Ok::<_, DataFusionError>((path, batches))
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let mut digests = Digests::default();
    for (path, batches) in tables {
        match path.filename() {
            Some(name) if name.starts_with("tallies-") => digests.tallies.extend(batches),
            Some(name) if name.starts_with("sample-") => digests.sample.extend(batches),
            _ => {
                return Err(DataFusionError::Execution(format!(
                    "unexpected file {path} among digests"
                )));
            }
        }
    }
    Ok(digests)
}

#[cfg(test)]
mod tests;
