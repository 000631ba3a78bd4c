//! Every scored summary row as Parquet (keys, features, score, prediction), for audit and
//! comparison ([`crate::RunConfig::scores_out`]).

use std::{fs::File, path::Path, sync::Arc};

use arrow::{
    array::{ArrayRef, Int8Array, RecordBatch},
    compute::cast,
    datatypes::{DataType, Field, Float64Type, Schema, SchemaRef, TimeUnit},
};
use parquet::arrow::ArrowWriter;
use procforest_core::schema::{
    ACCOUNT, ACCOUNT_TYPE, COMPUTER, COUNT, INTERVAL, PREDICTION, PROCESS, SCORE,
};

use crate::{
    error::{Context, PipelineError, Result},
    files::PendingFile,
    setting::Setting,
};

/// The audit file's schema for the feature `names`.
pub fn schema(names: &[&str]) -> SchemaRef {
    let mut fields = vec![
        Field::new(
            INTERVAL,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(COMPUTER, DataType::Utf8, true),
        Field::new(ACCOUNT, DataType::Utf8, true),
        Field::new(ACCOUNT_TYPE, DataType::Utf8, true),
        Field::new(PROCESS, DataType::Utf8, true),
        Field::new(COUNT, DataType::Int64, false),
    ];
    fields.extend(
        names
            .iter()
            .map(|f| Field::new(*f, DataType::Float64, false)),
    );
    fields.push(Field::new(SCORE, DataType::Float64, false));
    fields.push(Field::new(PREDICTION, DataType::Int8, false));
    Arc::new(Schema::new(fields))
}

/// Streams scored batches into a Parquet file.
pub struct ScoresWriter {
    schema: SchemaRef,
    pending: PendingFile,
    writer: ArrowWriter<File>,
    offset: f64,
    rows: u64,
}

impl ScoresWriter {
    /// Starts the file at `path`; `offset` decides the prediction.
    pub fn create(path: &Path, names: &[&str], offset: f64) -> Result<Self> {
        let schema = schema(names);
        let pending = PendingFile::new(path)?;
        let file = File::create(pending.path()).bad_setting(Setting::ScoresOut, path.display())?;
        let writer =
            ArrowWriter::try_new(file, schema.clone(), None).runtime("starting the scores file")?;
        Ok(Self {
            schema,
            pending,
            writer,
            offset,
            rows: 0,
        })
    }

    /// Appends the rows of a scored batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let schema = self.schema.clone();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields().iter().take(schema.fields().len() - 1) {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                PipelineError::runtime(format!("scored rows lack {}", field.name()))
            })?;
            columns.push(cast(column, field.data_type()).runtime("writing the scores file")?);
        }
        let scores = columns[columns.len() - 1].clone();
        let scores = arrow::array::AsArray::as_primitive::<Float64Type>(&scores);
        let prediction: Int8Array = scores
            .values()
            .iter()
            .map(|s| Some(if s - self.offset < 0.0 { -1 } else { 1 }))
            .collect();
        columns.push(Arc::new(prediction));
        let out = RecordBatch::try_new(schema, columns).runtime("writing the scores file")?;
        self.rows += out.num_rows() as u64;
        self.writer.write(&out).runtime("writing the scores file")
    }

    /// Finishes the file and moves it into place; returns the rows written.
    pub fn finish(self) -> Result<u64> {
        self.writer.close().runtime("finishing the scores file")?;
        self.pending.commit()?;
        Ok(self.rows)
    }
}
