//! The evaluation report as a page a person would rather look at than read: its plots (drawn by
//! [`crate::svg`]) and one self-contained HTML file that embeds them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::svg::{bar_chart, escape, histogram};

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
