//! `tokenlake eval` (Ziya2's DE stage): a deterministic sample of a version, measured as
//! Ziya2's Table 1 does (privacy, toxic, advertising and HTML rates), with the distributions a
//! person checks before training (perplexity, readability, languages, lengths), rule failures
//! by source and duplicate rates, a compliance verdict for each rate, and an HTML report with
//! SVG plots.
//!
//! A curated version is measured by its stored labels; an uncurated one is labelled on the
//! sample with the pipeline given (duplicates then cannot be measured and are reported so).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt8Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use tokenlake_lake::{Lake, LakeError, Progress, VersionSpec};
use tokenlake_schemas::columns;

use crate::config::Pipeline;
use crate::curate::label_columns::{PPL, QUALITY_TIER, RULE_FLAGS};
use crate::labeler::Labeler;
use crate::report;
pub use crate::report::{Distribution, EvalReport, RateMetric};
use crate::rules::{CHECKS, RuleSet, keeps};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("writing the report to {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("version {version} of lake {lake} has no documents to evaluate")]
    Empty { lake: String, version: u64 },
    #[error("interrupted: no report was written")]
    Interrupted,
}

pub struct EvalOptions {
    pub version: VersionSpec,
    pub fraction: f64,
    pub min_docs: usize,
    pub seed: u64,
    /// A rate complies when it is at most this many per thousand documents.
    pub max_per_mille: f64,
    /// Labels an uncurated sample.
    pub pipeline: Pipeline,
}

fn distribution(values: &mut [f64]) -> Option<Distribution> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Some(Distribution {
        count: values.len() as u64,
        mean: values.iter().sum::<f64>() / values.len() as f64,
        p10: at(0.1),
        p50: at(0.5),
        p90: at(0.9),
    })
}

/// Syllables of an English word by vowel groups (the usual heuristic of readability tools).
fn syllables(word: &str) -> usize {
    let w = word.to_lowercase();
    let mut count = 0;
    let mut previous_vowel = false;
    for c in w.chars() {
        let vowel = matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
        if vowel && !previous_vowel {
            count += 1;
        }
        previous_vowel = vowel;
    }
    if w.ends_with('e') && !w.ends_with("le") && count > 1 {
        count -= 1;
    }
    count.max(1)
}

/// Words per sentence and, for English, Flesch reading ease
/// (206.835 − 1.015 · words/sentences − 84.6 · syllables/words).
fn readability(text: &str, english: bool) -> Option<(f64, Option<f64>)> {
    let sentences = text
        .split(['.', '!', '?', '。', '！', '？', '\n'])
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .count();
    let mut words = 0usize;
    let mut syl = 0usize;
    crate::words::for_each_word(text, |w| {
        words += 1;
        if english {
            syl += syllables(w);
        }
    });
    if sentences == 0 || words == 0 {
        return None;
    }
    let wps = words as f64 / sentences as f64;
    let flesch = english.then(|| 206.835 - 1.015 * wps - 84.6 * syl as f64 / words as f64);
    Some((wps, flesch))
}

/// Per-document facts the report needs.
struct Doc {
    source: String,
    lang: Option<String>,
    ppl: Option<f64>,
    /// The stored quality tier (0 high, 1 medium, 2 low) of a curated version.
    tier: Option<u8>,
    flags: u64,
    is_dup: Option<bool>,
    tokens: u32,
    chars: u32,
    text: String,
}

/// Evaluates a sample of `options.version` into `out` (`report.html`, `report.json`, the
/// plots). `progress` counts the sampled documents as they are measured; cancelling it stops
/// the run before anything is written.
pub async fn evaluate(
    lake: &Lake,
    options: &EvalOptions,
    out: &Path,
    progress: &Progress,
) -> Result<EvalReport, EvalError> {
    let version = lake.resolve(&options.version).await?;
    let dataset = lake.checkout(&VersionSpec::Number(version)).await?;
    let schema = dataset.schema().clone();
    let lake_docs = dataset.count_rows(None).await.unwrap_or(0) as u64;
    if lake_docs == 0 {
        return Err(EvalError::Empty {
            lake: lake.location().to_string(),
            version,
        });
    }
    let n = ((lake_docs as f64 * options.fraction).ceil() as usize)
        .max(options.min_docs)
        .min(lake_docs as usize);
    let curated = schema.field(RULE_FLAGS).is_some();
    let mut wanted: Vec<String> = [
        columns::SOURCE,
        columns::LANG,
        columns::TEXT,
        columns::URL,
        columns::N_TOKENS,
        columns::N_CHARS,
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    if curated {
        wanted.extend(
            [PPL, QUALITY_TIER, RULE_FLAGS, columns::IS_DUP]
                .iter()
                .map(|c| c.to_string()),
        );
    }
    let sample = lake
        .sample(
            &VersionSpec::Number(version),
            None,
            n,
            options.seed,
            Some(wanted),
        )
        .await?;
    progress
        .total
        .store(sample.rows.num_rows() as u64, Ordering::Relaxed);
    let docs = read_docs(&sample.rows, curated, &options.pipeline, progress)?;
    write_report(lake, version, lake_docs, curated, options, &docs, out)
}

fn read_docs(
    rows: &RecordBatch,
    curated: bool,
    pipeline: &Pipeline,
    progress: &Progress,
) -> Result<Vec<Doc>, EvalError> {
    let col = |name: &str| rows.column_by_name(name).expect("sampled column");
    let source = col(columns::SOURCE).as_string::<i32>();
    let lang = col(columns::LANG).as_string::<i32>();
    let text = col(columns::TEXT).as_string::<i32>();
    let url = col(columns::URL).as_string::<i32>();
    let tokens = col(columns::N_TOKENS).as_primitive::<UInt32Type>();
    let chars = col(columns::N_CHARS).as_primitive::<UInt32Type>();
    // The stored labels of a curated version, looked up once.
    let stored = curated.then(|| {
        (
            col(PPL).as_primitive::<Float32Type>(),
            col(QUALITY_TIER).as_primitive::<UInt8Type>(),
            col(RULE_FLAGS).as_primitive::<UInt64Type>(),
            col(columns::IS_DUP).as_boolean(),
        )
    });
    let mut labeler = Labeler::new(pipeline);
    (0..rows.num_rows())
        .map(|i| {
            if i % 256 == 0 {
                if progress.is_cancelled() {
                    return Err(EvalError::Interrupted);
                }
                progress.done.store(i as u64, Ordering::Relaxed);
            }
            let body = if text.is_null(i) {
                String::new()
            } else {
                text.value(i).to_string()
            };
            let (l, ppl, tier, flags, is_dup) = if let Some((ppl, tier, flags, dup)) = stored {
                (
                    (!lang.is_null(i)).then(|| lang.value(i).to_string()),
                    (!ppl.is_null(i)).then(|| f64::from(ppl.value(i))),
                    (!tier.is_null(i)).then(|| tier.value(i)),
                    if flags.is_null(i) { 0 } else { flags.value(i) },
                    (!dup.is_null(i)).then(|| dup.value(i)),
                )
            } else {
                let declared = (!lang.is_null(i)).then(|| lang.value(i));
                let u = (!url.is_null(i)).then(|| url.value(i));
                let (labels, _) = labeler.label(declared, u, &body, false);
                // Tiers are percentiles over a whole language's documents: the sample alone
                // has none.
                (
                    labels.lang,
                    labels.ppl.map(f64::from),
                    None,
                    labels.rule_flags,
                    None,
                )
            };
            Ok(Doc {
                source: source.value(i).to_string(),
                lang: l,
                ppl,
                tier,
                flags,
                is_dup,
                tokens: tokens.value(i),
                chars: chars.value(i),
                text: body,
            })
        })
        .collect()
}

// Kept as one function: one metric of Ziya2's Table 1 after another, each a few lines, then the
// files.
fn write_report(
    lake: &Lake,
    version: u64,
    lake_docs: u64,
    curated: bool,
    options: &EvalOptions,
    docs: &[Doc],
    out: &Path,
) -> Result<EvalReport, EvalError> {
    let total = docs.len() as f64;
    let per_mille = |n: usize| 1000.0 * n as f64 / total.max(1.0);
    let mut rates = Vec::new();
    let mut rate = |name: &str, description: &str, n: usize| {
        let pm = per_mille(n);
        rates.push(RateMetric {
            name: name.to_string(),
            description: description.to_string(),
            docs: n as u64,
            per_mille: pm,
            complies: pm <= options.max_per_mille,
        });
    };
    for (name, check, description) in [
        (
            "privacy",
            "ziya2_privacy",
            "e-mail addresses or phone numbers",
        ),
        ("toxic", "ziya2_toxic", "words of the toxic lists"),
        (
            "advertising",
            "ziya2_advertising",
            "advertising or boilerplate phrases",
        ),
        (
            "html",
            "ziya2_html",
            "HTML tags or entities above the threshold",
        ),
    ] {
        let bit = crate::rules::bit(check);
        rate(
            name,
            description,
            docs.iter().filter(|d| d.flags & bit != 0).count(),
        );
    }
    if docs.iter().all(|d| d.is_dup.is_some()) {
        rate(
            "duplicates",
            "copies of an earlier document",
            docs.iter().filter(|d| d.is_dup == Some(true)).count(),
        );
    }
    let compliant = rates.iter().all(|r| r.complies);

    let mut perplexity = BTreeMap::new();
    let mut by_lang: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for d in docs {
        if let (Some(l), Some(p)) = (&d.lang, d.ppl) {
            by_lang.entry(l.clone()).or_default().push(p);
        }
    }
    for (l, values) in &mut by_lang {
        if let Some(dist) = distribution(values) {
            perplexity.insert(l.clone(), dist);
        }
    }
    let perplexity_note = perplexity.is_empty().then(|| {
        "no perplexity: no n-gram model scored these documents; train one per language \
         (`tokenlake lm train REFERENCE --out en.arpa`), name it under [perplexity] models in \
         the pipeline file and curate with it (`tokenlake curate LAKE --pipeline P.toml`)"
            .to_string()
    });
    let mut quality_tiers: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    for d in docs {
        if let (Some(l), Some(t)) = (&d.lang, d.tier) {
            quality_tiers.entry(l.clone()).or_default()[usize::from(t.min(2))] += 1;
        }
    }
    let (mut wps, mut flesch) = (Vec::new(), Vec::new());
    for d in docs {
        if let Some((w, f)) = readability(&d.text, d.lang.as_deref() == Some("en")) {
            wps.push(w);
            flesch.extend(f);
        }
    }
    let mut languages = BTreeMap::new();
    for d in docs {
        *languages
            .entry(d.lang.clone().unwrap_or_else(|| "?".into()))
            .or_insert(0u64) += 1;
    }
    let mut tokens: Vec<f64> = docs.iter().map(|d| f64::from(d.tokens)).collect();
    let mut chars: Vec<f64> = docs.iter().map(|d| f64::from(d.chars)).collect();
    let mut rule_failures_by_source: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut sources: BTreeMap<&str, Vec<&Doc>> = BTreeMap::new();
    for d in docs {
        sources.entry(&d.source).or_default().push(d);
    }
    for (source, members) in &sources {
        let row = RuleSet::ALL
            .iter()
            .map(|set| {
                let failing = members.iter().filter(|d| !keeps(d.flags, *set)).count();
                (
                    set.name().to_string(),
                    1000.0 * failing as f64 / members.len() as f64,
                )
            })
            .collect();
        rule_failures_by_source.insert(source.to_string(), row);
    }
    let check_failures = CHECKS
        .iter()
        .enumerate()
        .map(|(bit, c)| {
            let n = docs.iter().filter(|d| d.flags & (1 << bit) != 0).count();
            (c.name.to_string(), per_mille(n))
        })
        .collect();

    let mut report = EvalReport {
        lake: lake.location().to_string(),
        version,
        lake_docs,
        sampled: docs.len() as u64,
        seed: options.seed,
        curated,
        max_per_mille: options.max_per_mille,
        rates,
        compliant,
        perplexity,
        perplexity_note,
        quality_tiers,
        flesch_reading_ease: distribution(&mut flesch),
        words_per_sentence: distribution(&mut wps),
        languages,
        tokens: distribution(&mut tokens),
        chars: distribution(&mut chars),
        rule_failures_by_source,
        check_failures,
        files: Vec::new(),
    };

    std::fs::create_dir_all(out).map_err(|source| EvalError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let plots = report::plots(&report, &by_lang, &tokens, &flesch);
    let mut files = Vec::new();
    for (name, svg) in &plots {
        let file = format!("{name}.svg");
        write(&out.join(&file), svg)?;
        files.push(file);
    }
    files.push("report.html".into());
    files.push("report.json".into());
    report.files = files;
    write(&out.join("report.html"), &report::html(&report, &plots))?;
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    write(&out.join("report.json"), &json)?;
    Ok(report)
}

/// Writes a file whole (a temporary beside it, then a rename), so a reader never sees half.
fn write(path: &PathBuf, contents: &str) -> Result<(), EvalError> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, contents)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| EvalError::Write {
            path: path.display().to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readability_of_simple_and_hard_english() {
        let (wps, flesch) = readability("The cat sat. The dog ran.", true).unwrap();
        assert_eq!(wps, 3.0);
        assert!(flesch.unwrap() > 100.0);
        let hard = "Institutional interoperability necessitates comprehensive organizational \
                    standardization considerations.";
        assert!(readability(hard, true).unwrap().1.unwrap() < 0.0);
        assert_eq!(syllables("table"), 2);
        assert_eq!(syllables("make"), 1);
        assert_eq!(readability("!!!", false), None);
    }

    #[test]
    fn distributions_are_quantiles() {
        let mut v: Vec<f64> = (1..=11).map(f64::from).collect();
        let d = distribution(&mut v).unwrap();
        assert_eq!((d.p10, d.p50, d.p90, d.mean), (2.0, 6.0, 10.0, 6.0));
        assert!(distribution(&mut []).is_none());
    }
}
