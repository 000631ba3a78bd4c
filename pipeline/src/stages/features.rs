//! The model's features per summary row, computed on the cluster from the summaries and
//! the category indices (looked up, or joined: see [`Indices`]).
//!
//! - [`FeatureSet::Seed`]: the notebook's
//!   `[unixInterval, computerIndex, accountIndex, accountTypeIndex, processIndex, count]`.
//! - [`FeatureSet::RarityOnly`]: the event count and the rarity features, without the label
//!   codes and the interval (see EVALUATION.md).
//! - [`FeatureSet::Rarity`]: the seed features plus four rarity features computed by aggregations over
//!   the training window's summaries (on the cluster, written once to scratch by
//!   [`write_rarity_totals`] and joined to whichever rows are featured, never collected):
//!   the log number of summary rows of the (Account, Process) pair, log P(process | account)
//!   and log P(process | computer) by events, and the log share of hosts running the
//!   process. Label codes carry no notion of rarity; these do.
//! - [`FeatureSet::Evidence`]: the event count, the rarity features, and the command-line
//!   novelty, lineage and first-seen features of [`super::evidence`], joined from the
//!   groups' evidence table.

use std::sync::Arc;

use arrow::{
    array::{Array, AsArray, RecordBatch},
    compute::cast,
    datatypes::{DataType, Float64Type, TimestampMicrosecondType},
};
use datafusion::{logical_expr::ScalarUDF, prelude::SessionContext};
use procforest_core::{
    schema::{
        ACCOUNT, ACCOUNT_TYPE, COMPUTER, COUNT, FIRST_SEEN_FEATURES, GROUP_KEYS, INTERVAL,
        LINEAGE_FEATURES, NOVELTY_FEATURES, PROCESS, RARITY_FEATURES, SEED_FEATURES, TableName,
        category_index::{INDEX, VALUE},
        table::{
            GROUP_EVIDENCE, RARITY_ACCOUNTS, RARITY_ALL_HOSTS, RARITY_HOST_PROCESSES, RARITY_HOSTS,
            RARITY_PAIRS, RARITY_PROCESS_HOSTS, SUMMARIES, category_index,
        },
    },
    udf::{CategoryIndexUdf, category_index_name},
};

use super::{categories::Indices, evidence, quote, same_key_sql, summaries::write};
use crate::{
    error::{Context, PipelineError, Result},
    scratch::{Scratch, register_parquet},
};

/// The family of a feature (see [`FeatureSet::families`]).
pub fn family_of(feature: &str) -> &'static str {
    if NOVELTY_FEATURES.contains(&feature) {
        "novelty"
    } else if LINEAGE_FEATURES.contains(&feature) {
        "lineage"
    } else if FIRST_SEEN_FEATURES.contains(&feature) {
        "first seen"
    } else if RARITY_FEATURES.contains(&feature) || feature == SEED_FEATURES[5] {
        "rarity"
    } else {
        "categories"
    }
}

/// The model's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureSet {
    /// The notebook's six features.
    Seed,
    /// The notebook's features plus pair and host-level rarity.
    Rarity,
    /// The event count and the rarity features only: no label codes, no interval.
    RarityOnly,
    /// The event count, the rarity features and the groups' evidence.
    Evidence,
}

impl FeatureSet {
    /// Feature names, in the model's column order.
    pub fn names(self) -> Vec<&'static str> {
        match self {
            FeatureSet::Seed => SEED_FEATURES.to_vec(),
            FeatureSet::Rarity => SEED_FEATURES
                .iter()
                .chain(RARITY_FEATURES.iter())
                .copied()
                .collect(),
            FeatureSet::RarityOnly => std::iter::once(SEED_FEATURES[5])
                .chain(RARITY_FEATURES.iter().copied())
                .collect(),
            FeatureSet::Evidence => std::iter::once(SEED_FEATURES[5])
                .chain(RARITY_FEATURES.iter().copied())
                .chain(evidence::feature_columns())
                .collect(),
        }
    }

    /// The set's features grouped into families, as column indices in model order, each
    /// family in the order its first feature comes: the categories (interval and label
    /// codes), rarity (the event count and the rarity features), command-line novelty,
    /// lineage and first seen. `--scoring families` fits a forest per family.
    pub fn families(self) -> Vec<Vec<usize>> {
        let mut families: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, name) in self.names().into_iter().enumerate() {
            let family = family_of(name);
            match families.iter_mut().find(|(f, _)| *f == family) {
                Some((_, members)) => members.push(i),
                None => families.push((family, vec![i])),
            }
        }
        families.into_iter().map(|(_, members)| members).collect()
    }

    /// Every set, in documentation order.
    pub const ALL: [FeatureSet; 4] = [
        FeatureSet::Seed,
        FeatureSet::Rarity,
        FeatureSet::RarityOnly,
        FeatureSet::Evidence,
    ];

    /// The set by its name ([`FeatureSet::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|set| set.name() == name)
    }

    /// The set's name (`seed`, `rarity`, `rarity-only`).
    pub fn name(self) -> &'static str {
        match self {
            FeatureSet::Seed => "seed",
            FeatureSet::Rarity => "rarity",
            FeatureSet::RarityOnly => "rarity-only",
            FeatureSet::Evidence => "evidence",
        }
    }

    /// Whether the features aggregate over all summary rows (the rarity features), not
    /// only the row itself and the category indices.
    pub fn aggregates_summaries(self) -> bool {
        match self {
            FeatureSet::Seed => false,
            FeatureSet::Rarity | FeatureSet::RarityOnly | FeatureSet::Evidence => true,
        }
    }

    /// Whether the features need the groups' evidence ([`super::evidence`]), computed
    /// from every event's parent and command line.
    pub fn needs_evidence(self) -> bool {
        self == FeatureSet::Evidence
    }

    /// SQL of the features of every row of the registered `summaries`.
    pub fn sql(self, indices: Indices) -> String {
        self.sql_over(SUMMARIES, indices)
    }

    /// SQL of the features of the rows of `rows`, a registered table of summary rows
    /// (`summaries` or a subset of it): category indices and rarity are those of all
    /// `summaries`, whatever rows are featured.
    pub fn sql_over(self, rows: TableName, indices: Indices) -> String {
        match self {
            FeatureSet::Seed => features_sql(rows, indices),
            FeatureSet::Rarity | FeatureSet::RarityOnly => rarity_sql(rows, indices),
            FeatureSet::Evidence => evidence_sql(rows, indices),
        }
    }
}

/// The rarity features of `rows` joined with their groups' evidence (the registered
/// [`GROUP_EVIDENCE`], one row per summary group).
fn evidence_sql(rows: TableName, indices: Indices) -> String {
    let on = std::iter::once(format!("base.{i} = e.{i}", i = quote(INTERVAL)))
        .chain(
            GROUP_KEYS
                .iter()
                .map(|k| same_key_sql(&format!("base.{}", quote(k)), &format!("e.{}", quote(k)))),
        )
        .collect::<Vec<_>>()
        .join(" AND ");
    let evidence = evidence::feature_columns()
        .map(|name| format!("e.{}", quote(name)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT base.*, {evidence} FROM ({rarity}) base JOIN {table} e ON {on}",
        rarity = rarity_sql(rows, indices),
        table = GROUP_EVIDENCE,
    )
}

/// The totals over every summary row the rarity features compare a row with: each
/// table's name and SQL (the aliases [`rarity_sql`] joins them by). The first two read
/// every summary row; the others sum or count their rows ([`derived_rarity_totals`]).
fn rarity_totals() -> [(TableName, String); 2] {
    let (c, a, p, n) = (
        quote(COMPUTER),
        quote(ACCOUNT),
        quote(PROCESS),
        quote(COUNT),
    );
    [
        (
            RARITY_PAIRS,
            format!(
                "SELECT {a}, {p}, CAST(count(*) AS DOUBLE) AS pair_groups, \
                 CAST(sum({n}) AS DOUBLE) AS pair_events FROM {SUMMARIES} GROUP BY {a}, {p}"
            ),
        ),
        (
            RARITY_HOST_PROCESSES,
            format!(
                "SELECT {c}, {p}, CAST(sum({n}) AS DOUBLE) AS host_process_events \
                 FROM {SUMMARIES} GROUP BY {c}, {p}"
            ),
        ),
    ]
}

/// The rarity totals worked out from [`rarity_totals`]' small tables rather than from
/// every summary row again: an account's events are its pairs' (exact: integer sums
/// far below 2^53 in doubles), a computer's its processes', and a process's distinct
/// computers the non-null computers of its (computer, process) rows.
fn derived_rarity_totals() -> [(TableName, String); 4] {
    let (c, a, p) = (quote(COMPUTER), quote(ACCOUNT), quote(PROCESS));
    [
        (
            RARITY_ACCOUNTS,
            format!(
                "SELECT {a}, sum(pair_events) AS account_events FROM {RARITY_PAIRS} \
                 GROUP BY {a}"
            ),
        ),
        (
            RARITY_HOSTS,
            format!(
                "SELECT {c}, sum(host_process_events) AS host_events \
                 FROM {RARITY_HOST_PROCESSES} GROUP BY {c}"
            ),
        ),
        (
            RARITY_PROCESS_HOSTS,
            format!(
                "SELECT {p}, CAST(count({c}) AS DOUBLE) AS process_hosts \
                 FROM {RARITY_HOST_PROCESSES} GROUP BY {p}"
            ),
        ),
        (
            RARITY_ALL_HOSTS,
            format!(
                "SELECT CAST(count(DISTINCT {c}) AS DOUBLE) AS all_hosts \
                 FROM {RARITY_HOST_PROCESSES}"
            ),
        ),
    ]
}

/// Computes the rarity features' totals ([`rarity_totals`], then
/// [`derived_rarity_totals`]) from the registered [`SUMMARIES`] once, on the cluster,
/// into scratch, and registers them: the training sample's features and the report's
/// (and every row's, for `--scores-out`) then join these small tables instead of each
/// aggregating every summary row again.
pub async fn write_rarity_totals(ctx: &SessionContext, scratch: &Scratch) -> Result<()> {
    let write_each = |totals: Vec<(TableName, String)>| {
        futures::future::try_join_all(totals.into_iter().map(|(table, sql)| async move {
            let what = format!("the rarity totals {table}");
            let totals = ctx.sql(&sql).await.runtime(format!("planning {what}"))?;
            let schema = Arc::new(totals.schema().as_arrow().clone());
            let dir = scratch.path(table.as_str());
            write(totals, &dir, &what).await?;
            register_parquet(ctx, table, &[dir], &schema)
        }))
    };
    write_each(rarity_totals().into()).await?;
    write_each(derived_rarity_totals().into()).await?;
    Ok(())
}

/// The rarity features over the seed view of `rows`: the registered totals
/// ([`write_rarity_totals`]) joined on their keys (null-safe, see [`same_key_sql`]).
fn rarity_sql(rows: TableName, indices: Indices) -> String {
    let (c, a, p) = (quote(COMPUTER), quote(ACCOUNT), quote(PROCESS));
    let r = RARITY_FEATURES;
    let on = |table: &str, keys: &[&String]| {
        keys.iter()
            .map(|k| same_key_sql(&format!("seed.{k}"), &format!("{table}.{k}")))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    format!(
        "WITH seed AS ({seed}) \
         SELECT seed.*, \
         ln(1.0 + pair.pair_groups) AS {r0}, \
         ln(pair.pair_events / acct.account_events) AS {r1}, \
         ln(hostproc.host_process_events / host.host_events) AS {r2}, \
         ln(procpop.process_hosts / hosts.all_hosts) AS {r3} \
         FROM seed \
         JOIN {RARITY_PAIRS} pair ON {pair_on} \
         JOIN {RARITY_ACCOUNTS} acct ON {acct_on} \
         JOIN {RARITY_HOST_PROCESSES} hostproc ON {hostproc_on} \
         JOIN {RARITY_HOSTS} host ON {host_on} \
         JOIN {RARITY_PROCESS_HOSTS} procpop ON {procpop_on} \
         CROSS JOIN {RARITY_ALL_HOSTS} hosts",
        seed = features_sql(rows, indices),
        pair_on = on("pair", &[&a, &p]),
        acct_on = on("acct", &[&a]),
        hostproc_on = on("hostproc", &[&c, &p]),
        host_on = on("host", &[&c]),
        procpop_on = on("procpop", &[&p]),
        r0 = quote(r[0]),
        r1 = quote(r[1]),
        r2 = quote(r[2]),
        r3 = quote(r[3]),
    )
}

/// SQL of the seed features of the summary rows of the registered table `rows`, from the
/// key indices (joined, or looked up: see [`Indices`]): the keys, `count` and the seed
/// features as `DOUBLE`.
pub fn features_sql(rows: TableName, indices: Indices) -> String {
    let aliases = ["c", "a", "t", "p"];
    let joins: Vec<String> = match indices {
        Indices::Lookups => Vec::new(),
        Indices::Tables => GROUP_KEYS
            .iter()
            .zip(aliases)
            .map(|(key, alias)| {
                format!(
                    "JOIN {table} {alias} ON {on}",
                    table = category_index(key),
                    on = same_key_sql(
                        &format!("s.{}", quote(key)),
                        &format!("{alias}.{}", quote(VALUE))
                    ),
                )
            })
            .collect(),
    };
    let index = |alias: &str| {
        let key = GROUP_KEYS[aliases.iter().position(|a| *a == alias).expect("alias")];
        match indices {
            Indices::Tables => format!("CAST({alias}.{} AS DOUBLE)", quote(INDEX)),
            Indices::Lookups => format!("{}(s.{})", category_index_name(key), quote(key)),
        }
    };
    let f = SEED_FEATURES;
    format!(
        "SELECT s.{interval}, s.{computer}, s.{account}, s.{account_type}, s.{process}, \
         s.{count}, \
         CAST(date_part('epoch', s.{interval}) AS DOUBLE) AS {f0}, \
         {c} AS {f1}, {a} AS {f2}, {t} AS {f3}, {p} AS {f4}, \
         CAST(s.{count} AS DOUBLE) AS {f5} \
         FROM {rows} s {joins}",
        rows = quote(rows.as_str()),
        interval = quote(INTERVAL),
        computer = quote(COMPUTER),
        account = quote(ACCOUNT),
        account_type = quote(ACCOUNT_TYPE),
        process = quote(PROCESS),
        count = quote(COUNT),
        c = index("c"),
        a = index("a"),
        t = index("t"),
        p = index("p"),
        f0 = quote(f[0]),
        f1 = quote(f[1]),
        f2 = quote(f[2]),
        f3 = quote(f[3]),
        f4 = quote(f[4]),
        f5 = quote(f[5]),
        joins = joins.join(" "),
    )
}

/// The seed features of summary rows (the summaries' columns), computed on the driver
/// exactly as [`features_sql`] computes them with looked-up indices: one column per
/// feature in [`SEED_FEATURES`] order, the rows in their given order. `lookups` are the
/// four key columns' [`CategoryIndexUdf`]s in [`GROUP_KEYS`] order. For the training
/// sample: its ten thousand rows cost less to compute than SQL costs to plan (a test
/// checks both give the same numbers). A null or non-finite feature is an error, as
/// everywhere the sample is gathered.
pub fn seed_features(rows: &[RecordBatch], lookups: &[Arc<ScalarUDF>]) -> Result<Vec<Vec<f64>>> {
    let lookups = lookups
        .iter()
        .map(|udf| {
            CategoryIndexUdf::from_udf(udf).ok_or_else(|| {
                PipelineError::runtime(format!("{} is not a category index lookup", udf.name()))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if lookups.len() != GROUP_KEYS.len() {
        return Err(PipelineError::runtime(
            "one category index lookup per key expected",
        ));
    }
    let total = rows.iter().map(RecordBatch::num_rows).sum();
    let mut columns = vec![Vec::with_capacity(total); SEED_FEATURES.len()];
    for batch in rows {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| PipelineError::runtime(format!("the sample has no column {name}")))
        };
        let interval = column(INTERVAL)?;
        let interval = interval
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| {
                PipelineError::runtime(format!(
                    "the sample's {INTERVAL} is {}",
                    interval.data_type()
                ))
            })?;
        // `date_part('epoch', …)` of a microsecond timestamp.
        let epoch = interval.unary::<_, Float64Type>(|us| us as f64 / 1_000_000_f64);
        let mut features = vec![epoch];
        for (key, lookup) in GROUP_KEYS.iter().zip(&lookups) {
            features.push(
                lookup
                    .indices_of(column(key)?.as_ref())
                    .runtime(format!("the sample's {key} index"))?,
            );
        }
        let count = cast(column(COUNT)?, &DataType::Float64).runtime("the sample's count")?;
        features.push(count.as_primitive::<Float64Type>().clone());
        for ((slot, values), name) in columns.iter_mut().zip(&features).zip(SEED_FEATURES) {
            super::training::push_feature(slot, name, values)?;
        }
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use arrow::util::pretty::pretty_format_batches;

    use super::*;
    use crate::stages::categories::{
        register,
        tests::{census_of, summaries_with_gaps},
    };

    /// The test summaries, their census and a folder (kept while the tuple lives) for the
    /// indices, as a URL.
    async fn summaries_and_census() -> (
        datafusion::prelude::SessionContext,
        crate::stages::categories::Census,
        tempfile::TempDir,
        String,
    ) {
        let ctx = summaries_with_gaps();
        let census = census_of(&ctx, 0, 1).await;
        let folder = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(folder.path())
            .unwrap()
            .to_string();
        (ctx, census, folder, url)
    }

    /// An `ORDER BY` list of the interval and the keys, each `direction` (`""` or
    /// `" DESC"`), nulls first.
    fn key_order(direction: &str) -> String {
        [INTERVAL, COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS]
            .map(|c| format!("{}{direction} NULLS FIRST", quote(c)))
            .join(", ")
    }

    /// A scratch for the rarity totals in the test's folder `dir` (a URL).
    fn test_scratch(dir: &str) -> Scratch {
        Scratch::new(Some(dir), "rarity-totals").unwrap()
    }

    /// The rarity features, from the totals written once, equal the ones counted here row
    /// by row over every summary row: null keys equal only each other, the empty string
    /// only itself, and a computer's absence (null) counts no host.
    #[tokio::test]
    async fn rarity_features_count_every_summary_row() {
        let (ctx, census, _dir, dir) = summaries_and_census().await;
        let indices = register(&ctx, &census, &dir, usize::MAX).await.unwrap();
        write_rarity_totals(&ctx, &test_scratch(&dir))
            .await
            .unwrap();
        let order = key_order("");
        let collect = |sql: String| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
            }
        };
        let rows = collect(format!("SELECT * FROM {SUMMARIES} ORDER BY {order}")).await;
        let featured = collect(format!(
            "SELECT * FROM ({}) ORDER BY {order}",
            FeatureSet::Rarity.sql(indices)
        ))
        .await;
        let text = |name: &str| -> Vec<Option<String>> {
            let column = cast(rows.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
            let column = column.as_string::<i32>();
            (0..column.len())
                .map(|i| column.is_valid(i).then(|| column.value(i).to_string()))
                .collect()
        };
        let (hosts, accounts, processes) = (text(COMPUTER), text(ACCOUNT), text(PROCESS));
        let counts = cast(rows.column_by_name(COUNT).unwrap(), &DataType::Float64).unwrap();
        let counts = counts.as_primitive::<Float64Type>().values().to_vec();
        let all = 0..rows.num_rows();
        let events = |matching: &dyn Fn(usize) -> bool| -> f64 {
            all.clone()
                .filter(|&j| matching(j))
                .map(|j| counts[j])
                .sum()
        };
        let distinct_hosts = |matching: &dyn Fn(usize) -> bool| -> f64 {
            let set: std::collections::BTreeSet<&String> = all
                .clone()
                .filter(|&j| matching(j))
                .filter_map(|j| hosts[j].as_ref())
                .collect();
            set.len() as f64
        };
        for i in all.clone() {
            let pair = |j: usize| accounts[j] == accounts[i] && processes[j] == processes[i];
            let pair_rows = all.clone().filter(|&j| pair(j)).count() as f64;
            let expected = [
                (1.0 + pair_rows).ln(),
                (events(&pair) / events(&|j| accounts[j] == accounts[i])).ln(),
                (events(&|j| hosts[j] == hosts[i] && processes[j] == processes[i])
                    / events(&|j| hosts[j] == hosts[i]))
                .ln(),
                (distinct_hosts(&|j| processes[j] == processes[i]) / distinct_hosts(&|_| true))
                    .ln(),
            ];
            for (name, expected) in RARITY_FEATURES.iter().zip(expected) {
                let got = featured
                    .column_by_name(name)
                    .unwrap()
                    .as_primitive::<Float64Type>()
                    .value(i);
                assert!(
                    got == expected || (got - expected).abs() < 1e-12,
                    "row {i} {name}: {got} != {expected}"
                );
            }
        }
        assert_eq!(featured.num_rows(), rows.num_rows(), "every row featured");
    }

    /// The features are the same whether the indices are joined or looked up, nulls and
    /// empty values included.
    #[tokio::test]
    async fn lookups_give_the_features_joins_give() {
        let (ctx, census, _dir, dir) = summaries_and_census().await;
        assert_eq!(
            register(&ctx, &census, &dir, 0).await.unwrap(),
            Indices::Tables
        );
        assert_eq!(
            register(&ctx, &census, &dir, usize::MAX).await.unwrap(),
            Indices::Lookups
        );
        write_rarity_totals(&ctx, &test_scratch(&dir))
            .await
            .unwrap();
        let order = key_order("");
        for set in [FeatureSet::Seed, FeatureSet::Rarity] {
            let mut shown = Vec::new();
            for indices in [Indices::Tables, Indices::Lookups] {
                let sql = format!("SELECT * FROM ({}) ORDER BY {order}", set.sql(indices));
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                shown.push(pretty_format_batches(&batches).unwrap().to_string());
            }
            assert_eq!(shown[0], shown[1], "{set:?}");
            assert_eq!(
                shown[0].lines().count(),
                7 + 4,
                "{set:?}: every row featured"
            );
        }
    }

    /// The driver's seed features equal the SQL's bit for bit, in the rows' order, nulls
    /// and empty values included; a value missing from an index is an error naming it.
    #[tokio::test]
    async fn the_driver_computes_the_seed_features_the_sql_computes() {
        let (ctx, census, _dir, dir) = summaries_and_census().await;
        register(&ctx, &census, &dir, usize::MAX).await.unwrap();
        let order = key_order(" DESC");
        let rows = ctx
            .sql(&format!("SELECT * FROM {SUMMARIES} ORDER BY {order}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let sql = format!(
            "SELECT * FROM ({}) ORDER BY {order}",
            FeatureSet::Seed.sql(Indices::Lookups)
        );
        let featured = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let featured = arrow::compute::concat_batches(&featured[0].schema(), &featured).unwrap();
        let lookups = crate::stages::categories::lookups(&ctx).unwrap();
        let computed = seed_features(&rows, &lookups).unwrap();
        assert_eq!(computed[0].len(), 7, "every row featured");
        for (name, values) in SEED_FEATURES.iter().zip(&computed) {
            let expected = featured
                .column_by_name(name)
                .unwrap()
                .as_primitive::<Float64Type>();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(values), bits(expected.values()), "{name}");
        }

        let unknown = RecordBatch::try_new(
            rows[0].schema(),
            rows[0]
                .columns()
                .iter()
                .zip(rows[0].schema().fields())
                .map(|(column, field)| match field.name().as_str() {
                    PROCESS => {
                        let values = vec![Some("never-seen.exe"); column.len()];
                        cast(&arrow::array::StringArray::from(values), field.data_type()).unwrap()
                    }
                    _ => column.clone(),
                })
                .collect(),
        )
        .unwrap();
        let error = seed_features(&[unknown], &lookups).unwrap_err();
        assert!(error.to_string().contains("never-seen.exe"), "{error}");
    }
}
