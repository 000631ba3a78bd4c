//! The Microsoft Sentinel content (`deploy/azure/sentinel.json`), checked offline against
//! the anomalies table `deploy/azure/main.bicep` creates: the rule and the workbook read
//! only columns the table has, de-duplicate by `RecordId`, and map entities from columns
//! the rule's query projects, with identifiers Sentinel knows for each entity type.

use std::{collections::BTreeSet, path::PathBuf};

use serde_json::Value;

fn deploy(file: &str) -> String {
    let dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../deploy/azure");
    std::fs::read_to_string(dir.join(file)).unwrap()
}

/// The table's columns, from main.bicep's `{ name: 'X', type: 'y' }` entries.
fn table_columns() -> BTreeSet<String> {
    deploy("main.bicep")
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("{ name: '")?;
            let (name, rest) = rest.split_once('\'')?;
            rest.contains("type:").then(|| name.to_string())
        })
        .collect()
}

/// An ARM expression `[concat(...)]` of string literals and `parameters('tableName')`,
/// evaluated with the table's default name; a plain string as it is.
fn evaluate(expression: &str, table: &str) -> String {
    let Some(inner) = expression
        .strip_prefix("[concat(")
        .and_then(|e| e.strip_suffix(")]"))
    else {
        return expression.to_string();
    };
    let mut out = String::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("parameters('tableName')") {
            out.push_str(table);
            rest = after;
        } else if let Some(after) = rest.strip_prefix('\'') {
            // An ARM string literal: '' is a quote.
            let mut literal = String::new();
            let mut chars = after.char_indices().peekable();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                        literal.push('\'');
                        chars.next();
                        continue;
                    }
                    end = i + 1;
                    break;
                }
                literal.push(c);
            }
            out.push_str(&literal);
            rest = &after[end..];
        } else {
            panic!("unexpected expression part: {rest}");
        }
        rest = rest
            .trim_start()
            .strip_prefix(',')
            .unwrap_or(rest)
            .trim_start();
    }
    out
}

/// The columns a query's `project` keeps.
fn projected(query: &str) -> BTreeSet<String> {
    let project = query
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("| project "))
        .expect("the rule's query ends with a project");
    project.split(',').map(|c| c.trim().to_string()).collect()
}

/// Names a query makes with `extend X = ...` or `summarize X = ...`.
fn made(query: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for part in query.split([',', '\n']) {
        let part = part.trim();
        let part = part
            .strip_prefix("| extend ")
            .or_else(|| part.strip_prefix("| summarize "))
            .unwrap_or(part);
        if let Some((name, _)) = part.split_once(" = ")
            && name.chars().all(|c| c.is_ascii_alphanumeric())
        {
            names.insert(name.to_string());
        }
    }
    names
}

fn template() -> Value {
    serde_json::from_str(&deploy("sentinel.json")).unwrap()
}

fn resource<'a>(t: &'a Value, kind: &str) -> &'a Value {
    t["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn table_name(t: &Value) -> String {
    t["parameters"]["tableName"]["defaultValue"]
        .as_str()
        .unwrap()
        .to_string()
}

/// ISO 8601 durations of hours or days, in hours.
fn hours(duration: &str) -> u64 {
    if let Some(h) = duration
        .strip_prefix("PT")
        .and_then(|d| d.strip_suffix('H'))
    {
        return h.parse().unwrap();
    }
    let days = duration
        .strip_prefix('P')
        .and_then(|d| d.strip_suffix('D'))
        .unwrap_or_else(|| panic!("{duration}: not PTnH or PnD"));
    days.parse::<u64>().unwrap() * 24
}

#[test]
fn the_analytics_rule_reads_the_table_and_maps_its_entities() {
    let t = template();
    let columns = table_columns();
    assert!(
        columns.contains("RecordId") && columns.contains("Score"),
        "{columns:?}"
    );
    let rule = resource(&t, "Microsoft.SecurityInsights/alertRules");
    assert_eq!(rule["kind"], "Scheduled");
    let p = &rule["properties"];
    let query = evaluate(
        t["variables"]["ruleQuery"].as_str().unwrap(),
        &table_name(&t),
    );
    assert_eq!(p["query"], "[variables('ruleQuery')]");
    // De-duplicated by RecordId, within its hour and against the days before.
    assert!(
        query.contains("summarize arg_max(TimeGenerated, *) by RecordId"),
        "{query}"
    );
    assert!(query.contains("where RecordId !in (alerted)"), "{query}");
    let frequency = hours(p["queryFrequency"].as_str().unwrap());
    let period = hours(p["queryPeriod"].as_str().unwrap());
    assert!(
        period >= frequency && period <= 14 * 24,
        "{frequency} h / {period} h"
    );
    assert!(
        query.contains(&format!("ago({frequency}h)")),
        "the window is the frequency"
    );
    assert_eq!(p["triggerOperator"], "GreaterThan");
    assert_eq!(p["triggerThreshold"], 0);
    assert_eq!(
        p["eventGroupingSettings"]["aggregationKind"],
        "AlertPerResult"
    );

    // What the query keeps is the table's columns or names it makes.
    let kept = projected(&query);
    let made = made(&query);
    for column in &kept {
        assert!(
            columns.contains(column) || made.contains(column),
            "the query keeps {column}, which neither the table has nor the query makes"
        );
    }
    // Entities: identifiers Sentinel has for each type, from kept columns.
    let identifiers = |entity: &str| -> &[&str] {
        match entity {
            "Host" => &[
                "HostName",
                "DnsDomain",
                "NetBiosName",
                "FullName",
                "NTDomain",
            ],
            "Account" => &[
                "Name",
                "FullName",
                "NTDomain",
                "UPNSuffix",
                "Sid",
                "DnsDomain",
            ],
            "Process" => &[
                "ProcessId",
                "CommandLine",
                "ElevationToken",
                "CreationTimeUtc",
            ],
            other => panic!("unexpected entity {other}"),
        }
    };
    let mut mapped = BTreeSet::new();
    for entity in p["entityMappings"].as_array().unwrap() {
        let kind = entity["entityType"].as_str().unwrap();
        mapped.insert(kind);
        for field in entity["fieldMappings"].as_array().unwrap() {
            let identifier = field["identifier"].as_str().unwrap();
            let column = field["columnName"].as_str().unwrap();
            assert!(
                identifiers(kind).contains(&identifier),
                "{kind}.{identifier}"
            );
            assert!(
                kept.contains(column),
                "{kind}.{identifier} from {column}, not kept"
            );
        }
    }
    assert_eq!(mapped, BTreeSet::from(["Host", "Account", "Process"]));
    for (_, column) in p["customDetails"].as_object().unwrap() {
        assert!(
            kept.contains(column.as_str().unwrap()),
            "custom detail {column}"
        );
    }
    for format in p["alertDetailsOverride"].as_object().unwrap().values() {
        for placeholder in format.as_str().unwrap().split("{{").skip(1) {
            let column = placeholder.split("}}").next().unwrap();
            assert!(kept.contains(column), "alert text uses {column}, not kept");
        }
    }
}

#[test]
fn the_workbook_charts_nights_hosts_processes_and_scores_from_the_table() {
    let t = template();
    let columns = table_columns();
    let workbook = resource(&t, "Microsoft.Insights/workbooks");
    assert_eq!(workbook["kind"], "shared");
    assert_eq!(workbook["properties"]["category"], "sentinel");
    assert_eq!(
        workbook["properties"]["serializedData"],
        "[string(variables('workbook'))]"
    );
    let data = &t["variables"]["workbook"];
    assert_eq!(data["version"], "Notebook/1.0");
    let table = table_name(&t);
    let mut charts = BTreeSet::new();
    for item in data["items"].as_array().unwrap() {
        if item["type"] != 3 {
            continue;
        }
        let content = &item["content"];
        let query = evaluate(content["query"].as_str().unwrap(), &table);
        assert!(query.starts_with(&table), "{query}");
        assert!(
            query.contains("summarize arg_max(TimeGenerated, *) by RecordId"),
            "{query}"
        );
        assert!(
            query.contains("{TimeRange}"),
            "the time picker applies: {query}"
        );
        // The columns it groups by are the table's.
        for by in query.split(" by ").skip(2) {
            let column = by
                .split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap();
            let made = made(&query);
            assert!(
                columns.contains(column)
                    || made.contains(column)
                    || column == "Night"
                    || column == "ScoreBin",
                "groups by {column}"
            );
        }
        charts.insert((
            item["name"].as_str().unwrap().to_string(),
            content["visualization"].as_str().unwrap().to_string(),
        ));
        if item["name"] == "score histogram" {
            assert!(query.contains("bin(Score, "), "{query}");
        }
    }
    let expected: BTreeSet<(String, String)> = [
        ("anomalies per night", "timechart"),
        ("top hosts", "table"),
        ("top processes", "table"),
        ("score histogram", "barchart"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(charts, expected);
}
