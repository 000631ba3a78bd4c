//! The model's features per summary row, the notebook's
//! `[unixInterval, computerIndex, accountIndex, accountTypeIndex, processIndex, count]`,
//! joined on the cluster from the summaries and the category indices.

use procforest_core::events::{
    ACCOUNT, ACCOUNT_TYPE, COMPUTER, GROUP_KEYS, PROCESS, SEED_FEATURES,
};

use super::{
    categories::{INDEX, VALUE, table_name},
    quote,
    summaries::{COMMAND_LINES, COUNT, INTERVAL},
};

/// SQL of the `features` view over the registered `summaries` and key indices: the keys,
/// `count`, `command_lines` and the features as `DOUBLE`.
pub fn features_sql() -> String {
    let aliases = ["c", "a", "t", "p"];
    let joins: Vec<String> = GROUP_KEYS
        .iter()
        .zip(aliases)
        .map(|(key, alias)| {
            format!(
                "JOIN {table} {alias} ON s.{k} IS NOT DISTINCT FROM {alias}.{value}",
                table = table_name(key),
                value = quote(VALUE),
                k = quote(key),
            )
        })
        .collect();
    let index = |alias: &str| format!("CAST({alias}.{} AS DOUBLE)", quote(INDEX));
    let f = SEED_FEATURES;
    format!(
        "SELECT s.{interval}, s.{computer}, s.{account}, s.{account_type}, s.{process}, \
         s.{count}, s.{command_lines}, \
         CAST(date_part('epoch', s.{interval}) AS DOUBLE) AS {f0}, \
         {c} AS {f1}, {a} AS {f2}, {t} AS {f3}, {p} AS {f4}, \
         CAST(s.{count} AS DOUBLE) AS {f5} \
         FROM summaries s {joins}",
        interval = quote(INTERVAL),
        computer = quote(COMPUTER),
        account = quote(ACCOUNT),
        account_type = quote(ACCOUNT_TYPE),
        process = quote(PROCESS),
        count = quote(COUNT),
        command_lines = quote(COMMAND_LINES),
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
