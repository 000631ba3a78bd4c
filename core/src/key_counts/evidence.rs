//! The evidence's command-line rows counted straight from the files: per interval × group
//! × parent × command-line template, the events, the characters of the longest line and
//! the highest byte entropy, and the interval's events of the row's (process, template)
//! on any host — the rows `pipeline`'s evidence stage otherwise computes with a DataFusion
//! aggregation over every event and a window over its rows ([`super::Gathered::Evidence`]).
//!
//! Templating is most of that cost, and a day repeats its lines: here each distinct line
//! of an interval is templated once, without names ([`LineTemplate`]), and a row uses
//! that template unless its user's or host's name could change it; only those rows (a
//! few percent) are templated with their names, once per (line, account, computer).
//! The result is the same, row for row, as templating every event.
//!
//! Each row also carries the interval's totals the parents' and groups' counts compare
//! (per (process, parent), (host, process, parent), (host, process) and (account,
//! process)): every one includes the process, so a partition holding an interval's rows
//! of a process (the whole interval, or its share of the processes) sums them alone, and
//! the pipeline needs no window (a sort of every row) to find them.

use std::{collections::HashMap, hash::Hash, sync::Arc};

use arrow::{
    array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringBuilder},
    datatypes::{DataType, Field, SchemaRef},
};
use datafusion::common::Result;

use super::{
    count::key_columns,
    line_ids::LineIds,
    value_ids::{NULL_ID, ValueIds},
};
use crate::{
    schema::{
        COUNT,
        evidence::{
            ENTROPY, INTERVAL_ACCOUNT_EVENTS, INTERVAL_HOST_EVENTS, INTERVAL_HOST_LINEAGE_EVENTS,
            INTERVAL_LINEAGE_EVENTS, INTERVAL_TEMPLATE_EVENTS, LONGEST, PARENT, TEMPLATE,
        },
    },
    template::{LineTemplate, Name, host_name, template, user_name},
    udf::byte_entropy,
};

/// The evidence rows' schema: [`INTERVAL`](crate::schema::INTERVAL), the four keys
/// (null where the event has none), [`PARENT`] (empty for a null parent), [`TEMPLATE`]
/// (empty for a null line), [`COUNT`], [`LONGEST`] (characters; 0 for a null line),
/// [`ENTROPY`] (bits per byte; 0 for a null line), and the interval's totals of the row's
/// keys ([`INTERVAL_TOTALS`]; a null key as the empty one).
pub fn schema() -> SchemaRef {
    super::keyed_schema([
        Field::new(PARENT, DataType::Utf8, false),
        Field::new(TEMPLATE, DataType::Utf8, false),
        Field::new(COUNT, DataType::Int64, false),
        Field::new(LONGEST, DataType::Int64, false),
        Field::new(ENTROPY, DataType::Float64, false),
        Field::new(INTERVAL_TEMPLATE_EVENTS, DataType::Int64, false),
        Field::new(INTERVAL_LINEAGE_EVENTS, DataType::Int64, false),
        Field::new(INTERVAL_HOST_LINEAGE_EVENTS, DataType::Int64, false),
        Field::new(INTERVAL_HOST_EVENTS, DataType::Int64, false),
        Field::new(INTERVAL_ACCOUNT_EVENTS, DataType::Int64, false),
    ])
}

/// The interval totals each row carries, in [`schema`]'s order: the events in the row's
/// interval of its (process, template), (process, parent), (host, process, parent),
/// (host, process) and (account, process).
pub const INTERVAL_TOTALS: [&str; 5] = [
    INTERVAL_TEMPLATE_EVENTS,
    INTERVAL_LINEAGE_EVENTS,
    INTERVAL_HOST_LINEAGE_EVENTS,
    INTERVAL_HOST_EVENTS,
    INTERVAL_ACCOUNT_EVENTS,
];

/// What the evidence needs of one distinct command line.
struct LineFacts {
    line: LineTemplate,
    /// The number of its template without names.
    template: u32,
    chars: i64,
    entropy: f64,
}

/// One evidence row's tallies.
#[derive(Debug, Default, Clone, Copy)]
struct Tallies {
    events: i64,
    longest: i64,
    entropy: f64,
}

/// (group key, parent number, template number).
type RowKey = (u128, u32, u32);

/// One interval's evidence rows as they are counted.
#[derive(Default)]
pub(super) struct EvidenceTally {
    lines: LineIds,
    /// By line number − 1.
    facts: Vec<Option<LineFacts>>,
    templates: LineIds,
    /// Templates of lines a name could change, by (line, account, computer) numbers.
    named: HashMap<(u32, u32, u32), u32, foldhash::fast::FixedState>,
    rows: HashMap<RowKey, Tallies, foldhash::fast::FixedState>,
    /// Scratch: a batch's line numbers.
    row_lines: Vec<u32>,
}

/// The names a partition's accounts and computers put in templates, by value number
/// (computed on first use: a value is met in many rows).
#[derive(Default)]
pub(super) struct Names {
    users: Vec<Option<Option<Name>>>,
    hosts: Vec<Option<Option<Name>>>,
}

fn name_of<'a>(
    cache: &'a mut Vec<Option<Option<Name>>>,
    id: u32,
    value: Option<&str>,
    name: fn(&str) -> Option<String>,
) -> Option<&'a Name> {
    let i = id as usize;
    if cache.len() <= i {
        cache.resize(i + 1, None);
    }
    cache[i]
        .get_or_insert_with(|| value.and_then(name).map(Name::new))
        .as_ref()
}

/// One batch's columns, as the evidence reads them.
pub(super) struct EvidenceBatch<'a> {
    /// The rows' group keys (`Computer` in the highest 32 bits, `Account` next).
    pub keys: &'a [u128],
    /// The rows' parent numbers.
    pub parents: &'a [u32],
    /// The command lines (any string array, best a dictionary), when the file has them.
    pub lines: Option<&'a ArrayRef>,
    /// Whether row `i` is in the window.
    pub counted: &'a dyn Fn(usize) -> bool,
}

impl EvidenceTally {
    /// Counts a batch's rows; `ids` are the partition's numbers of the four keys, `parents`
    /// of the parents (a null parent counts as the empty one).
    pub(super) fn add(
        &mut self,
        batch: EvidenceBatch,
        ids: &[ValueIds; 4],
        parent_ids: &mut ValueIds,
        names: &mut Names,
    ) -> Result<()> {
        let mut row_lines = std::mem::take(&mut self.row_lines);
        match batch.lines {
            Some(lines) => self.lines.ids_into(lines, &mut row_lines)?,
            None => {
                row_lines.clear();
                row_lines.resize(batch.keys.len(), NULL_ID);
            }
        }
        let empty_parent = parent_ids.id("");
        let empty_template = self.templates.id("");
        for (i, (&key, &line)) in batch.keys.iter().zip(&row_lines).enumerate() {
            if !(batch.counted)(i) {
                continue;
            }
            let parent = match batch.parents[i] {
                NULL_ID => empty_parent,
                parent => parent,
            };
            let (template, chars, entropy) = match line {
                NULL_ID => (empty_template, 0, 0.0),
                line => self.line_evidence(line, key, ids, names),
            };
            let tallies = self.rows.entry((key, parent, template)).or_default();
            tallies.events += 1;
            tallies.longest = tallies.longest.max(chars);
            tallies.entropy = tallies.entropy.max(entropy);
        }
        self.row_lines = row_lines;
        Ok(())
    }

    /// The template number, characters and entropy of line `line` run in group `key`.
    fn line_evidence(
        &mut self,
        line: u32,
        key: u128,
        ids: &[ValueIds; 4],
        names: &mut Names,
    ) -> (u32, i64, f64) {
        let i = line as usize - 1;
        if self.facts.len() <= i {
            self.facts.resize_with(i + 1, || None);
        }
        let text = self.lines.value(line).expect("a numbered line");
        let templates = &mut self.templates;
        let facts = self.facts[i].get_or_insert_with(|| LineFacts {
            template: templates.id(&template(text, None, None)),
            line: LineTemplate::new(text),
            chars: text.chars().count() as i64,
            entropy: byte_entropy(text.as_bytes()),
        });
        let computer = (key >> 96) as u32;
        let account = (key >> 64) as u32;
        let [computers, accounts, ..] = ids;
        let user = name_of(
            &mut names.users,
            account,
            accounts.value(account),
            user_name,
        );
        let named = user.is_some_and(|u| facts.line.could_replace(u))
            || name_of(
                &mut names.hosts,
                computer,
                computers.value(computer),
                host_name,
            )
            .is_some_and(|h| facts.line.could_replace(h));
        let template = match named {
            false => facts.template,
            true => *self
                .named
                .entry((line, account, computer))
                .or_insert_with(|| {
                    templates.id(&template(
                        text,
                        accounts.value(account),
                        computers.value(computer),
                    ))
                }),
        };
        (template, facts.chars, facts.entropy)
    }

    /// The interval's rows ([`schema`]), in key order, in batches of at most `batch_size`.
    pub(super) fn batches(
        self,
        interval_us: i64,
        ids: &[ValueIds; 4],
        parent_ids: &ValueIds,
        batch_size: usize,
    ) -> Result<Vec<RecordBatch>> {
        let mut rows: Vec<(RowKey, Tallies)> = self.rows.into_iter().collect();
        rows.sort_unstable_by_key(|(key, _)| *key);
        let [computers, accounts, _, processes] = ids;
        // A null key counts as the empty one.
        let host = |key: u128| computers.value((key >> 96) as u32).unwrap_or("");
        let account = |key: u128| accounts.value((key >> 64) as u32).unwrap_or("");
        let process = |key: u128| processes.value(key as u32).unwrap_or("");
        let totals: [Vec<i64>; 5] = [
            totals_by(&rows, |&(k, _, t)| (process(k), t)),
            totals_by(&rows, |&(k, p, _)| (process(k), p)),
            totals_by(&rows, |&(k, p, _)| (host(k), process(k), p)),
            totals_by(&rows, |&(k, _, _)| (host(k), process(k))),
            totals_by(&rows, |&(k, _, _)| (account(k), process(k))),
        ];
        let schema = schema();
        rows.chunks(batch_size)
            .enumerate()
            .map(|(c, chunk)| {
                let keys = chunk.iter().map(|((key, _, _), _)| *key);
                let mut columns = key_columns(interval_us, ids, keys);
                let parents = chunk.iter().map(|((_, p, _), _)| parent_ids.value(*p));
                columns.push(Arc::new(strings(parents)));
                let templates = chunk.iter().map(|((_, _, t), _)| self.templates.value(*t));
                columns.push(Arc::new(strings(templates)));
                let tallies = || chunk.iter().map(|(_, t)| t);
                columns.push(Arc::new(Int64Array::from_iter_values(
                    tallies().map(|t| t.events),
                )));
                columns.push(Arc::new(Int64Array::from_iter_values(
                    tallies().map(|t| t.longest),
                )));
                columns.push(Arc::new(Float64Array::from_iter_values(
                    tallies().map(|t| t.entropy),
                )));
                let rows = c * batch_size..c * batch_size + chunk.len();
                for total in &totals {
                    let values = total[rows.clone()].iter().copied();
                    columns.push(Arc::new(Int64Array::from_iter_values(values)));
                }
                Ok(RecordBatch::try_new(schema.clone(), columns)?)
            })
            .collect()
    }
}

/// Per row of `rows`, the events of every row with its `by` key.
fn totals_by<K: Hash + Eq>(rows: &[(RowKey, Tallies)], by: impl Fn(&RowKey) -> K) -> Vec<i64> {
    let mut sums: HashMap<K, i64, foldhash::fast::FixedState> = HashMap::default();
    for (key, tallies) in rows {
        *sums.entry(by(key)).or_default() += tallies.events;
    }
    rows.iter().map(|(key, _)| sums[&by(key)]).collect()
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> arrow::array::StringArray {
    let mut builder = StringBuilder::new();
    for value in values {
        builder.append_option(value);
    }
    builder.finish()
}
