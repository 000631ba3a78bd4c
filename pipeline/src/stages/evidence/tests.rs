//! The evidence of hand-built events, each value worked out by hand in the comments.

use std::{collections::BTreeMap, sync::Arc};

use arrow::{
    array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray},
    datatypes::{Field, Float64Type, Schema},
};
use datafusion::prelude::SessionContext;
use procforest_core::{
    schema::{TIME_GENERATED, time_type},
    udf::byte_entropy,
};

use super::*;
use crate::stages::summaries::Interval;

const DAY: i64 = 86_400_000_000;
const EXPLORER: &str = r"C:\Windows\explorer.exe";
const WSCRIPT: &str = r"C:\Windows\System32\wscript.exe";
const CMD: &str = r"C:\Windows\System32\cmd.exe";
const NTDS_LINE: &str = r#"ntdsutil "ac i ntds" ifm"#;

/// (day, host, account, process, parent, command line) per event.
type Event = (
    i64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// The events:
/// - G1 = day 0, h1, alice, cmd.exe: `dir 12345`, `dir 67890` from explorer;
/// - G2 = day 1, h1, alice, cmd.exe: `dir 111111` from explorer, `calc` from wscript;
/// - G3 = day 0, h2, bob, cmd.exe: `calc` from explorer;
/// - G4 = day 1, h1, alice, ntdsutil.exe: the ntdsutil line and a null line, from cmd.
const EVENTS: [Event; 7] = [
    (
        0,
        "h1",
        r"CORP\alice",
        "cmd.exe",
        EXPLORER,
        Some("cmd.exe /c dir 12345"),
    ),
    (
        0,
        "h1",
        r"CORP\alice",
        "cmd.exe",
        EXPLORER,
        Some("cmd.exe /c dir 67890"),
    ),
    (
        1,
        "h1",
        r"CORP\alice",
        "cmd.exe",
        EXPLORER,
        Some("cmd.exe /c dir 111111"),
    ),
    (
        1,
        "h1",
        r"CORP\alice",
        "cmd.exe",
        WSCRIPT,
        Some("cmd.exe /c calc"),
    ),
    (
        0,
        "h2",
        r"CORP\bob",
        "cmd.exe",
        EXPLORER,
        Some("cmd.exe /c calc"),
    ),
    (1, "h1", r"CORP\alice", "ntdsutil.exe", CMD, Some(NTDS_LINE)),
    (1, "h1", r"CORP\alice", "ntdsutil.exe", CMD, None),
];

fn events_batch() -> RecordBatch {
    let strings = |f: &dyn Fn(&Event) -> Option<&'static str>| {
        Arc::new(StringArray::from(EVENTS.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let times: Vec<i64> = EVENTS.iter().map(|e| e.0 * DAY + 3_600_000_000).collect();
    let columns = vec![
        Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")) as ArrayRef,
        strings(&|e| Some(e.1)),
        strings(&|e| Some(e.2)),
        strings(&|_| Some("User")),
        strings(&|e| Some(e.3)),
        strings(&|e| Some(e.4)),
        strings(&|e| e.5),
    ];
    let mut fields = vec![Field::new(TIME_GENERATED, time_type(), false)];
    for name in GROUP_KEYS
        .into_iter()
        .chain([PARENT_PROCESS_NAME, COMMAND_LINE])
    {
        fields.push(Field::new(name, DataType::Utf8, true));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// The evidence per group, keyed by (day, host, process): feature values by name, the
/// novel templates and the rarest parent.
type Evidences = BTreeMap<(i64, String, String), (BTreeMap<String, f64>, Vec<String>, String)>;

/// The hand-built events' group evidence, as SQL over them.
async fn group_evidence_frame() -> DataFrame {
    let ctx = evidence_counts().await;
    ctx.sql(&group_evidence_sql(None)).await.unwrap()
}

/// A session with the hand-built events' evidence counts registered.
async fn evidence_counts() -> SessionContext {
    let ctx = SessionContext::new();
    ctx.register_batch(EVIDENCE_EVENTS.as_str(), events_batch())
        .unwrap();
    let window = SummaryWindow {
        start_us: None,
        end_us: 2 * DAY,
        report_start_us: DAY,
        interval: Interval::Day,
    };
    let lines = evidence_lines(&ctx, window)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    ctx.register_batch(
        EVIDENCE_LINES.as_str(),
        arrow::compute::concat_batches(&lines[0].schema(), &lines).unwrap(),
    )
    .unwrap();
    for (name, by_parent) in [(EVIDENCE_PARENTS, true), (EVIDENCE_GROUPS, false)] {
        let rows = ctx
            .sql(&counts_sql(by_parent, EVIDENCE_LINES))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let rows = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
        ctx.register_batch(name.as_str(), rows).unwrap();
    }
    ctx.register_udf(procforest_core::udf::SortedDistinctUdf::default().into_udf());
    ctx
}

/// The rows of `df` as sorted lines of text.
async fn sorted_text(df: DataFrame) -> Vec<String> {
    let batches = df.collect().await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let mut lines: Vec<String> = text.lines().skip(3).map(str::to_string).collect();
    lines.retain(|l| !l.starts_with('+'));
    lines.sort();
    lines
}

#[tokio::test]
async fn the_wanted_groups_get_the_evidence_every_group_gets() {
    let ctx = evidence_counts().await;
    let all = sorted_text(ctx.sql(&group_evidence_sql(None)).await.unwrap()).await;
    // The report (day 1) and one group of day 0, the sample's.
    let every = ctx
        .sql(&group_evidence_sql(None))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let day0 = super::scoring::groups_of(&every)
        .unwrap()
        .into_iter()
        .find(|g| g.0 == 0)
        .unwrap();
    let wanted = Wanted {
        report_start_us: DAY,
        sample: vec![day0.clone()],
    };
    let filter = wanted.filter(&ctx).unwrap().unwrap();
    let some = sorted_text(ctx.sql(&group_evidence_sql(Some(&filter))).await.unwrap()).await;
    let host = day0.1[0].clone().unwrap();
    let expected: Vec<String> = all
        .iter()
        .filter(|line| {
            line.contains("1970-01-02")
                || (line.contains("1970-01-01") && line.contains(&format!("| {host} ")))
        })
        .cloned()
        .collect();
    assert!(some.len() < all.len(), "{all:#?}");
    assert!(!some.is_empty());
    assert_eq!(some, expected);
}

async fn evidence_of_events() -> Evidences {
    let rows = group_evidence_frame().await.collect().await.unwrap();
    let mut evidence = Evidences::new();
    for batch in rows {
        let text = |name: &str, i: usize| {
            let column = batch.column_by_name(name).unwrap();
            let column = arrow::compute::cast(column, &DataType::Utf8).unwrap();
            column.as_string::<i32>().value(i).to_string()
        };
        let interval = batch
            .column_by_name(INTERVAL)
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .clone();
        let novel = batch
            .column_by_name(NOVEL_TEMPLATES)
            .unwrap()
            .as_list::<i32>()
            .clone();
        for i in 0..batch.num_rows() {
            let features = feature_columns()
                .map(|name| {
                    let values = batch
                        .column_by_name(name)
                        .unwrap()
                        .as_primitive::<Float64Type>();
                    (name.to_string(), values.value(i))
                })
                .collect();
            let templates = match novel.is_null(i) {
                true => Vec::new(),
                false => {
                    let list = novel.value(i);
                    let list = list.as_string::<i32>();
                    list.iter().map(|t| t.unwrap().to_string()).collect()
                }
            };
            let key = (interval.value(i) / DAY, text(COMPUTER, i), text(PROCESS, i));
            evidence.insert(key, (features, templates, text(RAREST_PARENT, i)));
        }
    }
    evidence
}

fn assert_features(evidence: &Evidences, group: (i64, &str, &str), expected: [f64; 9]) {
    let key = (group.0, group.1.to_string(), group.2.to_string());
    let (features, _, _) = &evidence[&key];
    for (name, want) in feature_columns().zip(expected) {
        let got = features[name];
        assert!(
            (got - want).abs() < 1e-12,
            "{group:?} {name}: {got} != {want}"
        );
    }
}

#[tokio::test]
async fn each_group_has_its_worked_out_evidence() {
    let evidence = evidence_of_events().await;
    assert_eq!(evidence.len(), 4, "one row per group");
    let ln = f64::ln;
    let log2 = |chars: usize| (1.0 + chars as f64).log2();
    // Templates of cmd.exe: `dir <n>` has 2 events on day 0 and 1 on day 1, on h1 only;
    // `calc` has 1 on day 0 (h2) and 1 on day 1 (h1). Pairs (cmd.exe, explorer): 3 events
    // on day 0 (2 on h1, 1 on h2), 1 on day 1 (h1); (cmd.exe, wscript): 1, day 1.
    let dir_entropy = byte_entropy(b"cmd.exe /c dir 12345");
    // G1: `dir <n>` has 1 event elsewhere; explorer's pair 1 elsewhere, and 1 on h1
    // elsewhere; cmd.exe ran on h1 and for alice on day 1 too.
    assert_features(
        &evidence,
        (0, "h1", "cmd.exe"),
        [
            0.0,
            ln(2.0),
            ln(1.0),
            log2(20),
            dir_entropy,
            ln(2.0),
            0.0,
            0.0,
            0.0,
        ],
    );
    // G2: `dir <n>` 2 elsewhere, `calc` 1 elsewhere on 2 hosts; wscript's pair is new
    // everywhere (ln 1 = 0) and so on h1.
    let calc_entropy = byte_entropy(b"cmd.exe /c calc");
    assert_features(
        &evidence,
        (1, "h1", "cmd.exe"),
        [
            0.0,
            ln(2.0),
            ln(1.0),
            log2(21),
            byte_entropy(b"cmd.exe /c dir 111111").max(calc_entropy),
            0.0,
            1.0,
            0.0,
            0.0,
        ],
    );
    // G3: `calc` 1 elsewhere on 2 hosts; explorer's pair 1 elsewhere (h1's day 1), none
    // on h2; cmd.exe is new on h2 and for bob.
    assert_features(
        &evidence,
        (0, "h2", "cmd.exe"),
        [
            0.0,
            ln(2.0),
            ln(2.0),
            log2(15),
            calc_entropy,
            ln(2.0),
            1.0,
            1.0,
            1.0,
        ],
    );
    // G4: both events' templates (the line's and the empty one) are new; so are the pair
    // and the process.
    assert_features(
        &evidence,
        (1, "h1", "ntdsutil.exe"),
        [
            1.0,
            0.0,
            0.0,
            log2(NTDS_LINE.len()),
            byte_entropy(NTDS_LINE.as_bytes()),
            0.0,
            1.0,
            1.0,
            1.0,
        ],
    );
    let (_, novel, rarest) = &evidence[&(1, "h1".into(), "ntdsutil.exe".into())];
    assert_eq!(
        novel,
        &["ntdsutil <str> ifm"],
        "the empty template is not shown"
    );
    assert_eq!(rarest, CMD);
    let (_, novel, rarest) = &evidence[&(1, "h1".into(), "cmd.exe".into())];
    assert!(novel.is_empty());
    assert_eq!(rarest, WSCRIPT, "the rarest of the group's two parents");
}

/// A reported row gets its group's evidence, and an analyst's line says what is new.
#[tokio::test]
async fn reported_rows_get_their_evidence_and_its_summary() {
    let row = |day: i64, process: &str| ScoredRow {
        interval_us: day * DAY,
        computer: Some("h1".into()),
        account: Some(r"CORP\alice".into()),
        account_type: Some("User".into()),
        process: Some(process.into()),
        count: 1,
        command_lines: Default::default(),
        features: vec![],
        explanation: vec![],
        score: 0.0,
        evidence: None,
    };
    let mut rows = vec![
        row(1, "ntdsutil.exe"),
        row(1, "cmd.exe"),
        row(5, "none.exe"),
    ];
    attach_evidence(&mut rows, group_evidence_frame().await)
        .await
        .unwrap();
    let ntds = rows[0].evidence.as_ref().unwrap();
    assert_eq!(
        ntds,
        &super::Evidence {
            novel_templates: vec!["ntdsutil <str> ifm".into()],
            novel_template_count: 1,
            rarest_parent: Some(CMD.into()),
            lineage_new_on_host: true,
            process_new_on_host: true,
            process_new_for_account: true,
        }
    );
    assert_eq!(
        ntds.summary(Some("ntdsutil.exe")),
        "process new on host; process new for account; cmd.exe → ntdsutil.exe new on host; \
         novel: ntdsutil <str> ifm"
    );
    let cmd = rows[1].evidence.as_ref().unwrap();
    assert_eq!(
        cmd.summary(Some("cmd.exe")),
        "wscript.exe → cmd.exe new on host"
    );
    assert!(rows[2].evidence.is_none(), "no such group");
}

#[test]
fn a_long_list_of_novel_templates_is_cut_and_counted() {
    let evidence = super::Evidence {
        novel_templates: vec!["a".into(), "b".into(), "c".into()],
        novel_template_count: 5,
        ..Default::default()
    };
    assert_eq!(evidence.summary(None), "novel: a | b | c (+2 more)");
    assert_eq!(super::Evidence::default().summary(None), "");
}
