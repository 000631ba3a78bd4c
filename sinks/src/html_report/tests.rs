use procforest_pipeline::stages::scoring::{GroupLines, ScoreHistogram};

use super::*;

fn row(computer: &str, process: &str, score: f64, lines: &[&str]) -> ScoredRow {
    ScoredRow {
        interval_us: 1_764_201_600_000_000,
        computer: Some(computer.into()),
        account: Some("CONTOSO\\alice".into()),
        account_type: Some("User".into()),
        process: Some(process.into()),
        count: 3,
        command_lines: lines.iter().collect::<GroupLines>(),
        features: vec![1.0, 2.0],
        explanation: vec![0.25, 0.75],
        score,
        evidence: None,
    }
}

#[test]
fn text_is_escaped_for_elements_and_attributes() {
    assert_eq!(
        escape(r#"<script>alert("x" & 'y')</script>"#),
        "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
    );
}

#[test]
fn a_row_escapes_its_keys_and_lines_and_highlights_its_largest_share() {
    let mut page = String::new();
    let row = row("<host>", "cmd.exe", -0.61, &["cmd /c \"echo <b>\""]);
    anomaly_row(&mut page, &row, &["a", "b"]);
    assert!(page.contains("&lt;host&gt;") && !page.contains("<host>"));
    assert!(page.contains("<code>cmd /c &quot;echo &lt;b&gt;&quot;</code>"));
    assert!(page.contains("1 command line</summary>"));
    // The second feature's share (0.75) is the largest: full width; the first a third.
    let top = page.find("share top").unwrap();
    assert!(page[top..].starts_with("share top\" style=\"width:100%\""));
    assert!(page.contains("class=\"share\" style=\"width:33%\""));
    assert!(page.contains("data-v=\"-0.61\""));
}

#[test]
fn long_command_lines_are_cut_and_counted() {
    let long = "x".repeat(MAX_LINE_CHARS + 10);
    let many: Vec<String> = (0..MAX_LINES + 3).map(|i| format!("line {i:03}")).collect();
    let mut lines: Vec<&str> = many.iter().map(String::as_str).collect();
    lines.push(&long);
    let mut page = String::new();
    command_lines(&mut page, &row("h", "p", -0.6, &lines));
    assert_eq!(page.matches("<code>").count(), MAX_LINES);
    assert!(page.contains(&format!("+{} more", lines.len() - MAX_LINES)));
    let mut page = String::new();
    command_lines(&mut page, &row("h", "p", -0.6, &[&long]));
    assert!(page.contains(&format!("{}…</code>", "x".repeat(MAX_LINE_CHARS))));
}

#[test]
fn top_counts_rank_hosts_and_processes_by_anomalies() {
    let rows = [
        row("b", "cmd.exe", -0.7, &[]),
        row("a", "cmd.exe", -0.7, &[]),
        row("b", "net.exe", -0.6, &[]),
    ];
    assert_eq!(
        top_counts(&rows, 0),
        vec![("b".to_string(), 2), ("a".to_string(), 1)]
    );
    assert_eq!(
        top_counts(&rows, 1),
        vec![("cmd.exe".to_string(), 2), ("net.exe".to_string(), 1)]
    );
}

#[test]
fn the_histogram_draws_every_bin_and_the_threshold_with_the_flagged_bins_hot() {
    let mut histogram = ScoreHistogram::default();
    for score in [-0.72, -0.715, -0.55, -0.41, -0.405, -0.40] {
        histogram.add(score);
    }
    let svg = charts::score_histogram(&histogram, -0.5);
    assert_eq!(svg.matches("<rect").count(), histogram.bins.len());
    let drawn: u64 = svg
        .split("data-groups=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse::<u64>().unwrap())
        .sum();
    assert_eq!(drawn, 6);
    // Bins below −0.5 (−0.72, −0.55) are hot; the others are not.
    assert_eq!(svg.matches("class=\"bar hot\"").count(), 2);
    assert!(svg.contains("class=\"threshold\" data-offset=\"-0.5\""));
}

/// Scores by families spread over −18 … 0: the chart gathers bins into at most 60 bars,
/// keeps every group, draws hot only bars wholly below the threshold, and labels a few
/// ticks.
#[test]
fn a_wide_histogram_is_drawn_in_few_bars_and_ticks() {
    let mut histogram = ScoreHistogram::default();
    let scores: Vec<f64> = (0..5_000)
        .map(|i| -18.0 * (i as f64 / 5_000.0).powi(3))
        .collect();
    for &score in &scores {
        histogram.add(score);
    }
    assert!(histogram.bins.len() > 500);
    let offset = -6.75;
    let svg = charts::score_histogram(&histogram, offset);
    let bars = svg.matches("<rect").count();
    assert!((20..=60).contains(&bars), "{bars} bars");
    let attribute = |s: &str, name: &str| -> f64 {
        let from = s.find(name).unwrap() + name.len() + 2;
        s[from..from + s[from..].find('"').unwrap()]
            .parse()
            .unwrap()
    };
    let rects: Vec<&str> = svg.split("<rect").skip(1).collect();
    let drawn: f64 = rects.iter().map(|r| attribute(r, "data-groups")).sum();
    assert_eq!(drawn as usize, scores.len());
    // A bar is hot exactly when every score it holds is below the threshold.
    let below = scores.iter().filter(|&&s| s < offset).count() as f64;
    let hot: f64 = rects
        .iter()
        .filter(|r| r.starts_with(" class=\"bar hot\""))
        .map(|r| attribute(r, "data-groups"))
        .sum();
    assert!(hot > 0.0 && hot <= below, "hot {hot}, below {below}");
    let labels = svg.matches("text-anchor=\"middle\">").count() - 1;
    assert!((3..=10).contains(&labels), "{labels} tick labels");
}

#[test]
fn bins_hold_their_scores() {
    for score in [-0.999, -0.5, -0.4999, -0.01, -0.0001] {
        let bin = ScoreHistogram::bin(score);
        assert!(ScoreHistogram::bin_start(bin) <= score, "{score}");
        assert!(score < ScoreHistogram::bin_start(bin + 1), "{score}");
    }
}

#[test]
fn nights_draw_one_bar_per_night() {
    let series: Vec<(String, u64)> = (1..=30).map(|d| (format!("2026-11-{d:02}"), d)).collect();
    let svg = charts::nights(&series);
    assert_eq!(svg.matches("data-night=").count(), 30);
    assert!(svg.contains("data-night=\"2026-11-30\" data-anomalies=\"30\""));
}
