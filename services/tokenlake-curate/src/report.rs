//! The evaluation report as a page a person would rather look at than read: SVG plots (bar
//! charts and histograms, drawn here; no plotting dependency) and one self-contained HTML
//! file that embeds them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct RateMetric {
    pub name: String,
    pub description: String,
    pub docs: u64,
    pub per_mille: f64,
    pub complies: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub count: u64,
    pub mean: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub lake: String,
    pub version: u64,
    pub lake_docs: u64,
    pub sampled: u64,
    pub seed: u64,
    /// Whether the version carried curation labels (else the sample was labelled now).
    pub curated: bool,
    pub max_per_mille: f64,
    /// Ziya2's Table 1 rates and the duplicate rate, each with its verdict.
    pub rates: Vec<RateMetric>,
    pub compliant: bool,
    /// Perplexity by language (only where a model scored it).
    pub perplexity: BTreeMap<String, Distribution>,
    /// Why there is no perplexity, when there is none (no model for any sampled language).
    pub perplexity_note: Option<String>,
    /// Sampled documents per language in each quality tier (high, medium, low), where the
    /// version's curation assigned tiers.
    pub quality_tiers: BTreeMap<String, [u64; 3]>,
    /// Flesch reading ease of English documents; words per sentence of every document.
    pub flesch_reading_ease: Option<Distribution>,
    pub words_per_sentence: Option<Distribution>,
    pub languages: BTreeMap<String, u64>,
    pub tokens: Option<Distribution>,
    pub chars: Option<Distribution>,
    /// Source → rule set → documents failing it, per thousand.
    pub rule_failures_by_source: BTreeMap<String, BTreeMap<String, f64>>,
    /// Check name → documents failing it, per thousand.
    pub check_failures: BTreeMap<String, f64>,
    pub files: Vec<String>,
}

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;
const PALETTE: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars, one per label; `limit` draws a dashed line (a compliance threshold).
pub fn bar_chart(title: &str, bars: &[(String, f64)], unit: &str, limit: Option<f64>) -> String {
    let height = TOP + BOTTOM + 22.0 * bars.len().max(1) as f64;
    let max = bars
        .iter()
        .map(|b| b.1)
        .chain(limit)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let scale = (W - LEFT - RIGHT - 60.0) / max;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="18" font-size="14" font-weight="bold">{}</text>"#,
        10,
        escape(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = TOP + 22.0 * i as f64;
        let over = limit.is_some_and(|l| *value > l);
        let color = if over { "#e15759" } else { PALETTE[0] };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{LEFT}" y="{}" width="{:.1}" height="16" fill="{color}"/><text x="{:.1}" y="{}">{} {}</text>"#,
            LEFT - 6.0,
            y + 12.0,
            escape(label),
            y,
            (value * scale).max(0.5),
            LEFT + value * scale + 4.0,
            y + 12.0,
            format_number(*value),
            escape(unit)
        );
    }
    if let Some(l) = limit {
        let x = LEFT + l * scale;
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#333" stroke-dasharray="4 3"/><text x="{x:.1}" y="{}" font-size="11">limit {}</text>"##,
            TOP - 4.0,
            height - BOTTOM + 4.0,
            height - BOTTOM + 18.0,
            format_number(l)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of `series` (name, values), on a log10 axis when `log` (values ≤ 0 dropped).
/// A histogram of each series over 30 shared bins; `why_empty` is drawn instead where there is
/// no value, so an empty plot says why it is empty.
pub fn histogram(
    title: &str,
    series: &[(String, Vec<f64>)],
    x_label: &str,
    log: bool,
    why_empty: &str,
) -> String {
    let bins = 30usize;
    let tf = |v: f64| if log { v.log10() } else { v };
    let all: Vec<f64> = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .map(tf)
        .collect();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    if all.is_empty() {
        // Wrapped by hand: SVG text does not wrap.
        let mut y = 60;
        let mut line = String::new();
        for word in why_empty.split_whitespace() {
            if line.len() + word.len() > 90 {
                let _ = write!(svg, r#"<text x="20" y="{y}">{}</text>"#, escape(&line));
                y += 18;
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        let _ = write!(
            svg,
            r#"<text x="20" y="{y}">{}</text></svg>"#,
            escape(&line)
        );
        return svg;
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|(_, values)| {
            let mut c = vec![0usize; bins];
            for v in values
                .iter()
                .filter(|v| v.is_finite() && (!log || **v > 0.0))
            {
                let b = (((tf(*v) - lo) / width) as usize).min(bins - 1);
                c[b] += 1;
            }
            c
        })
        .collect();
    let peak = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let (x0, plot_w, plot_h) = (60.0, W - 60.0 - RIGHT, H - TOP - BOTTOM);
    let bar_w = plot_w / bins as f64 / series.len().max(1) as f64;
    for (s, c) in counts.iter().enumerate() {
        for (b, &n) in c.iter().enumerate() {
            let h = plot_h * n as f64 / peak;
            let x = x0 + plot_w * b as f64 / bins as f64 + bar_w * s as f64;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}" fill-opacity="0.85"/>"#,
                TOP + plot_h - h,
                bar_w.max(0.5),
                PALETTE[s % PALETTE.len()]
            );
        }
    }
    let axis_y = TOP + plot_h;
    let shown = |v: f64| format_number(if log { 10f64.powf(v) } else { v });
    let _ = write!(
        svg,
        r##"<line x1="{x0}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#333"/><text x="{x0}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="middle">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"##,
        x0 + plot_w,
        axis_y + 16.0,
        shown(lo),
        x0 + plot_w,
        axis_y + 16.0,
        shown(hi),
        x0 + plot_w / 2.0,
        axis_y + 32.0,
        escape(&format!(
            "{x_label}{}",
            if log { " (log scale)" } else { "" }
        )),
        x0 - 6.0,
        TOP + 10.0,
        peak as usize
    );
    for (s, (name, values)) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{} ({})</text>"#,
            W - 170.0,
            TOP + 16.0 * s as f64,
            PALETTE[s % PALETTE.len()],
            W - 155.0,
            TOP + 9.0 + 16.0 * s as f64,
            escape(name),
            values.len()
        );
    }
    svg.push_str("</svg>");
    svg
}

fn format_number(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The report's plots, by file stem.
pub fn plots(
    report: &EvalReport,
    ppl_by_lang: &BTreeMap<String, Vec<f64>>,
    tokens: &[f64],
    flesch: &[f64],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rates: Vec<(String, f64)> = report
        .rates
        .iter()
        .map(|r| (r.name.clone(), r.per_mille))
        .collect();
    out.push((
        "rates".to_string(),
        bar_chart(
            "Rates per 1000 documents (Ziya2 Table 1)",
            &rates,
            "‰",
            Some(report.max_per_mille),
        ),
    ));
    let series: Vec<(String, Vec<f64>)> = ppl_by_lang
        .iter()
        .map(|(l, v)| (l.clone(), v.clone()))
        .collect();
    out.push((
        "perplexity".into(),
        histogram(
            "Perplexity by language",
            &series,
            "perplexity",
            true,
            report.perplexity_note.as_deref().unwrap_or("no values"),
        ),
    ));
    out.push((
        "lengths".into(),
        histogram(
            "Document lengths",
            &[("documents".into(), tokens.to_vec())],
            "tokens",
            true,
            "no documents",
        ),
    ));
    out.push((
        "readability".into(),
        histogram(
            "Flesch reading ease (English)",
            &[("en".into(), flesch.to_vec())],
            "reading ease (higher is easier)",
            false,
            "no English documents in the sample",
        ),
    ));
    let langs: Vec<(String, f64)> = report
        .languages
        .iter()
        .map(|(l, n)| (l.clone(), *n as f64))
        .collect();
    out.push((
        "languages".into(),
        bar_chart("Languages", &langs, "docs", None),
    ));
    for (source, sets) in &report.rule_failures_by_source {
        let bars: Vec<(String, f64)> = sets.iter().map(|(s, v)| (s.clone(), *v)).collect();
        out.push((
            format!(
                "rules-{}",
                source.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            ),
            bar_chart(
                &format!("Rule-set failures, source {source}"),
                &bars,
                "‰",
                None,
            ),
        ));
    }
    out
}

fn dist_row(name: &str, d: &Option<Distribution>) -> String {
    match d {
        Some(d) => format!(
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            escape(name),
            d.count,
            d.mean,
            d.p10,
            d.p50,
            d.p90
        ),
        None => format!(
            "<tr><td>{}</td><td colspan=5>no values</td></tr>",
            escape(name)
        ),
    }
}

pub fn html(report: &EvalReport, plots: &[(String, String)]) -> String {
    let mut h = String::new();
    let verdict = if report.compliant {
        "compliant"
    } else {
        "NOT compliant"
    };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tokenlake eval: {lake} v{v}</title>\
         <style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}.ok{{color:#2a7a2a}}.bad{{color:#c0392b;font-weight:bold}}\
         svg{{display:block;margin:1em 0}}</style></head><body>\
         <h1>Evaluation of {lake}, version {v}</h1>\
         <p>{sampled} of {docs} documents sampled (seed {seed}); labels {how}. \
         Verdict: <span class=\"{cls}\">{verdict}</span> (limit {limit} per 1000).</p>",
        lake = escape(&report.lake),
        v = report.version,
        sampled = report.sampled,
        docs = report.lake_docs,
        seed = report.seed,
        how = if report.curated {
            "from the lake's curation"
        } else {
            "computed on the sample (the version is not curated; duplicates not measured)"
        },
        cls = if report.compliant { "ok" } else { "bad" },
        limit = report.max_per_mille,
    );
    h.push_str("<h2>Rates</h2><table><tr><th>metric</th><th>documents</th><th>per 1000</th><th>verdict</th><th>what</th></tr>");
    for r in &report.rates {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            escape(&r.name),
            r.docs,
            r.per_mille,
            if r.complies { "ok" } else { "bad" },
            if r.complies { "complies" } else { "exceeds" },
            escape(&r.description)
        );
    }
    h.push_str("</table>");
    h.push_str("<h2>Distributions</h2><table><tr><th>measure</th><th>documents</th><th>mean</th><th>p10</th><th>median</th><th>p90</th></tr>");
    for (lang, d) in &report.perplexity {
        h.push_str(&dist_row(&format!("perplexity ({lang})"), &Some(d.clone())));
    }
    h.push_str(&dist_row(
        "Flesch reading ease (en)",
        &report.flesch_reading_ease,
    ));
    h.push_str(&dist_row("words per sentence", &report.words_per_sentence));
    h.push_str(&dist_row("tokens", &report.tokens));
    h.push_str(&dist_row("characters", &report.chars));
    h.push_str("</table>");
    if let Some(note) = &report.perplexity_note {
        let _ = write!(h, "<p>{}</p>", escape(note));
    }
    h.push_str("<h2>Quality tiers (sampled documents by perplexity tier)</h2>");
    if report.quality_tiers.is_empty() {
        h.push_str(
            "<p>no quality tiers: tiers are perplexity percentiles within a language, assigned \
             by curation with an n-gram model for that language</p>",
        );
    } else {
        h.push_str("<table><tr><th>language</th><th>high</th><th>medium</th><th>low</th></tr>");
        for (lang, [high, medium, low]) in &report.quality_tiers {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{high}</td><td>{medium}</td><td>{low}</td></tr>",
                escape(lang)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Plots</h2>");
    for (_, svg) in plots {
        h.push_str(svg);
    }
    h.push_str("<h2>Checks failed (per 1000 sampled documents)</h2><table><tr><th>check</th><th>per 1000</th></tr>");
    for (name, v) in report.check_failures.iter().filter(|(_, v)| **v > 0.0) {
        let _ = write!(h, "<tr><td>{}</td><td>{v:.1}</td></tr>", escape(name));
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_well_formed_svg_and_escape_labels() {
        let svg = bar_chart(
            "a < b",
            &[("x&y".into(), 2.0), ("z".into(), 0.5)],
            "‰",
            Some(1.0),
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &lt; b") && svg.contains("x&amp;y"));
        assert!(svg.contains("#e15759"), "the bar over the limit is red");
        let hist = histogram(
            "h",
            &[("en".into(), vec![1.0, 10.0, 100.0])],
            "ppl",
            true,
            "none",
        );
        assert_eq!(hist.matches("<rect").count(), 30 + 1);
        let empty = histogram("h", &[], "x", false, "no model for en, so no <values>");
        assert!(
            empty.contains("no model for en, so no &lt;values&gt;"),
            "{empty}"
        );
    }
}
