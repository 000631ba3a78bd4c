//! The page's charts as inline SVG (no script draws them: they show with scripts off).

use std::{collections::BTreeMap, fmt::Write};

use procforest_pipeline::stages::scoring::ScoreHistogram;

use super::escape;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 36.0;
/// The score histogram's most bars and tick labels: a forest's scores fill (−1, 0) in
/// bins of 0.01, scores by families reach −18 (1,800 bins, and 180 labels a tenth apart).
const MAX_BARS: f64 = 60.0;
const MAX_TICKS: f64 = 8.0;

/// The smallest of 1, 2, 5 × 10^k that is at least `x` (positive).
fn nice_at_least(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= x)
        .unwrap_or(10.0 * power)
}

/// The report groups' score histogram with the threshold (the model's offset) as a
/// dashed line; bars wholly below it, whose groups are all flagged, drawn hot. Where the
/// scores spread wide, a bar gathers several bins (at most [`MAX_BARS`] bars).
pub fn score_histogram(histogram: &ScoreHistogram, offset: f64) -> String {
    let (Some((&first, _)), Some((&last, _))) = (
        histogram.bins.first_key_value(),
        histogram.bins.last_key_value(),
    ) else {
        return "<p class=\"note\">No report groups were scored.</p>".into();
    };
    let per_bar = nice_at_least(((last - first + 1) as f64 / MAX_BARS).max(1.0)) as i64;
    let width = ScoreHistogram::BIN_WIDTH * per_bar as f64;
    let mut bars: BTreeMap<i64, u64> = BTreeMap::new();
    for (&bin, &groups) in &histogram.bins {
        *bars.entry(bin.div_euclid(per_bar)).or_default() += groups;
    }
    let bar_start = |bar: i64| ScoreHistogram::bin_start(bar * per_bar);
    let low = bar_start(first.div_euclid(per_bar)).min(offset) - width;
    let high = (bar_start(last.div_euclid(per_bar)) + width).max(offset) + width;
    let most = bars.values().copied().max().unwrap_or(1).max(1);
    let x = |score: f64| LEFT + (score - low) / (high - low) * (WIDTH - LEFT - RIGHT);
    let y = |groups: u64| HEIGHT - BOTTOM - groups as f64 / most as f64 * (HEIGHT - TOP - BOTTOM);
    let mut svg = open_svg(
        "score-histogram",
        "Score distribution of the report's groups",
    );
    for (&bar, &groups) in &bars {
        let start = bar_start(bar);
        let hot = if start + width <= offset { " hot" } else { "" };
        let _ = write!(
            svg,
            "<rect class=\"bar{hot}\" data-groups=\"{groups}\" x=\"{:.1}\" y=\"{:.1}\" \
             width=\"{:.1}\" height=\"{:.1}\"><title>[{start:.2}, {:.2}): {groups} groups</title></rect>",
            x(start),
            y(groups),
            (x(start + width) - x(start) - 0.5).max(0.5),
            HEIGHT - BOTTOM - y(groups),
            start + width,
        );
    }
    axes(&mut svg, most);
    let step = nice_at_least((high - low) / MAX_TICKS);
    let decimals = (-step.log10()).ceil().max(0.0) as usize;
    for k in (low / step).ceil() as i64..=(high / step).floor() as i64 {
        let tick = k as f64 * step;
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{tick:.decimals$}</text>",
            x(tick),
            HEIGHT - BOTTOM + 14.0
        );
    }
    let _ = write!(
        svg,
        "<line class=\"threshold\" data-offset=\"{offset}\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1:.1}\"/>\
         <text x=\"{2:.1}\" y=\"{3:.1}\">threshold {offset:.3}</text>\
         <text x=\"{4:.1}\" y=\"{5:.1}\" text-anchor=\"middle\">score (lower is more anomalous)</text></svg>",
        x(offset),
        HEIGHT - BOTTOM,
        x(offset) + 4.0,
        TOP + 10.0,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 4.0,
    );
    svg
}

/// Horizontal bars, one per `(label, value)`, longest first as given.
pub fn bars(id: &str, title: &str, items: &[(String, u64)]) -> String {
    const ROW: f64 = 20.0;
    const LABEL: f64 = 220.0;
    if items.is_empty() {
        return String::new();
    }
    let most = items.iter().map(|(_, v)| *v).max().unwrap_or(1).max(1);
    let height = ROW * items.len() as f64 + 8.0;
    let mut svg = format!(
        "<svg id=\"{id}\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\">",
        escape(title)
    );
    for (i, (label, value)) in items.iter().enumerate() {
        let top = 4.0 + ROW * i as f64;
        let length = *value as f64 / most as f64 * (WIDTH - LABEL - 60.0);
        let shown: String = label.chars().take(34).collect();
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}<title>{}</title></text>\
             <rect class=\"bar\" x=\"{LABEL}\" y=\"{:.1}\" width=\"{length:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{value}</text>",
            LABEL - 6.0,
            top + 13.0,
            escape(&shown),
            escape(label),
            top + 2.0,
            ROW - 6.0,
            LABEL + length + 4.0,
            top + 13.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Vertical bars of anomalies per night, oldest first.
pub fn nights(series: &[(String, u64)]) -> String {
    let most = series.iter().map(|(_, v)| *v).max().unwrap_or(1).max(1);
    let slot = (WIDTH - LEFT - RIGHT) / series.len().max(1) as f64;
    let y = |n: u64| HEIGHT - BOTTOM - n as f64 / most as f64 * (HEIGHT - TOP - BOTTOM);
    let mut svg = open_svg("nights", "Anomalies per night");
    for (i, (night, n)) in series.iter().enumerate() {
        let x = LEFT + slot * i as f64;
        let _ = write!(
            svg,
            "<rect class=\"bar\" data-night=\"{night}\" data-anomalies=\"{n}\" x=\"{:.1}\" y=\"{:.1}\" \
             width=\"{:.1}\" height=\"{:.1}\"><title>{night}: {n} anomalies</title></rect>",
            x + 1.0,
            y(*n),
            (slot - 2.0).max(1.0),
            HEIGHT - BOTTOM - y(*n),
        );
        if i % 5 == 0 || i + 1 == series.len() {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + slot / 2.0,
                HEIGHT - BOTTOM + 14.0,
                night.get(5..).unwrap_or(night),
            );
        }
    }
    axes(&mut svg, most);
    svg.push_str("</svg>");
    svg
}

fn open_svg(id: &str, label: &str) -> String {
    format!(
        "<svg id=\"{id}\" role=\"img\" aria-label=\"{label}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\">"
    )
}

/// The x axis line and the y axis with its largest value.
fn axes(svg: &mut String, most: u64) {
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{0}\" y1=\"{1}\" y2=\"{1}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{1}\"/>\
         <text x=\"{2}\" y=\"{3}\" text-anchor=\"end\">{most}</text>\
         <text x=\"{2}\" y=\"{1}\" text-anchor=\"end\">0</text>",
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        LEFT - 4.0,
        TOP + 4.0,
    );
}
