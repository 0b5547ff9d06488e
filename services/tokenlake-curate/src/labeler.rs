//! The per-document stages of curation, in Ziya2's order: preprocess, identify the language,
//! score perplexity, compute rule signals, fingerprint for de-duplication. One [`Labeler`] per
//! worker thread; it keeps scratch buffers and the time spent in each stage.

use std::time::Instant;

use serde::Serialize;

use crate::config::Pipeline;
use crate::dedup::{Fingerprint, Fingerprinter};
use crate::lang::identify;
use crate::preprocess::preprocess;
use crate::rules::{RuleScorer, SIGNALS};

/// What the per-document stages say about one document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocLabels {
    pub lang: Option<String>,
    /// The detector's confidence; None when the language came from the input.
    pub lang_score: Option<f32>,
    pub encoding_repairs: u32,
    pub preprocess_changed: bool,
    /// None when there is no model for the language or the text has no words.
    pub ppl: Option<f32>,
    pub signals: [f32; SIGNALS.len()],
    pub rule_flags: u64,
}

/// Seconds spent in each stage, summed over documents (and threads).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageSeconds {
    pub preprocess: f64,
    pub language: f64,
    pub perplexity: f64,
    pub rules: f64,
    pub fingerprint: f64,
}

impl StageSeconds {
    pub fn add(&mut self, other: &StageSeconds) {
        self.preprocess += other.preprocess;
        self.language += other.language;
        self.perplexity += other.perplexity;
        self.rules += other.rules;
        self.fingerprint += other.fingerprint;
    }
}

pub struct Labeler<'p> {
    pipeline: &'p Pipeline,
    scorer: RuleScorer,
    fingerprinter: Fingerprinter,
    /// Time spent in each stage, over every document labelled so far.
    pub seconds: StageSeconds,
    /// Time spent in each stage on the last document.
    pub last: StageSeconds,
}

impl<'p> Labeler<'p> {
    pub fn new(pipeline: &'p Pipeline) -> Self {
        Labeler {
            pipeline,
            scorer: RuleScorer::with_toxic_words(pipeline.toxic.clone()),
            fingerprinter: Fingerprinter::default(),
            seconds: StageSeconds::default(),
            last: StageSeconds::default(),
        }
    }

    /// Labels one document. `declared_lang` is the language its input gave, which is kept;
    /// without one the detector decides.
    pub fn label(
        &mut self,
        declared_lang: Option<&str>,
        url: Option<&str>,
        text: &str,
        with_fingerprint: bool,
    ) -> (DocLabels, Option<Fingerprint>) {
        let t0 = Instant::now();
        let pre = preprocess(text, &self.pipeline.config.preprocess);
        let text = pre.text.as_ref();
        let t1 = Instant::now();
        let (lang, lang_score) = match declared_lang.filter(|l| !l.is_empty()) {
            Some(l) => (Some(l.to_string()), None),
            None => match identify(text) {
                Some((l, score)) => (Some(l.to_string()), Some(score)),
                None => (None, None),
            },
        };
        let t2 = Instant::now();
        let ppl = lang
            .as_deref()
            .and_then(|l| self.pipeline.models.get(l))
            .and_then(|m| m.perplexity(text))
            .map(|p| p as f32);
        let t3 = Instant::now();
        let signals = self.scorer.signals(text);
        let rule_flags = signals.flags(&self.pipeline.config.rules);
        let t4 = Instant::now();
        let fingerprint = with_fingerprint.then(|| self.fingerprinter.fingerprint(url, text));
        let t5 = Instant::now();
        self.last = StageSeconds {
            preprocess: (t1 - t0).as_secs_f64(),
            language: (t2 - t1).as_secs_f64(),
            perplexity: (t3 - t2).as_secs_f64(),
            rules: (t4 - t3).as_secs_f64(),
            fingerprint: (t5 - t4).as_secs_f64(),
        };
        self.seconds.add(&self.last);
        let mut values = [0f32; SIGNALS.len()];
        for (v, s) in values.iter_mut().zip(signals.values) {
            *v = s as f32;
        }
        (
            DocLabels {
                lang,
                lang_score,
                encoding_repairs: pre.encoding_repairs,
                preprocess_changed: pre.changed,
                ppl,
                signals: values,
                rule_flags,
            },
            fingerprint,
        )
    }
}

/// `quality_tier` of every document from its language and perplexity: within each language,
/// documents are ranked by perplexity (ties by position), the first `tiers[0]` of them are 0
/// (high), up to `tiers[1]` 1 (medium), the rest 2 (low). No perplexity, no tier.
pub fn quality_tiers(
    langs: &[Option<String>],
    ppl: &[Option<f32>],
    tiers: [f64; 2],
) -> Vec<Option<u8>> {
    quality_tiers_by(|i| langs[i].as_deref(), ppl, tiers)
}

/// [`quality_tiers`] with each document's language given by `lang(row)` (any key that names a
/// language: a commit over a big lake keeps two bytes per document, not a string).
pub fn quality_tiers_by<K: std::hash::Hash + Eq>(
    lang: impl Fn(usize) -> Option<K>,
    ppl: &[Option<f32>],
    tiers: [f64; 2],
) -> Vec<Option<u8>> {
    let mut by_lang: std::collections::HashMap<K, Vec<usize>> = std::collections::HashMap::new();
    for (i, p) in ppl.iter().enumerate() {
        if let (Some(l), Some(_)) = (lang(i), p) {
            by_lang.entry(l).or_default().push(i);
        }
    }
    let mut out = vec![None; ppl.len()];
    for rows in by_lang.values_mut() {
        rows.sort_by(|&a, &b| {
            let (pa, pb) = (
                ppl[a].unwrap_or(f32::INFINITY),
                ppl[b].unwrap_or(f32::INFINITY),
            );
            pa.total_cmp(&pb).then(a.cmp(&b))
        });
        let n = rows.len() as f64;
        for (rank, &row) in rows.iter().enumerate() {
            let at = rank as f64 / n;
            out[row] = Some(if at < tiers[0] {
                0
            } else if at < tiers[1] {
                1
            } else {
                2
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_percentiles_within_each_language() {
        let langs: Vec<Option<String>> = [
            "en", "en", "en", "en", "en", "en", "en", "en", "en", "en", "zh", "zh",
        ]
        .iter()
        .map(|l| Some(l.to_string()))
        .collect();
        let mut ppl: Vec<Option<f32>> = (0..10).map(|i| Some(100.0 - i as f32)).collect();
        ppl.extend([Some(5.0), Some(9000.0)]);
        let tiers = quality_tiers(&langs, &ppl, [0.3, 0.6]);
        // English: the three lowest perplexities (rows 9, 8, 7) are high.
        assert_eq!(&tiers[7..10], &[Some(0), Some(0), Some(0)]);
        assert_eq!(&tiers[4..7], &[Some(1), Some(1), Some(1)]);
        assert_eq!(&tiers[0..4], &[Some(2); 4]);
        // Chinese is ranked on its own: its lower perplexity is high, whatever English does.
        assert_eq!(&tiers[10..], &[Some(0), Some(1)]);
        let none = quality_tiers(&[Some("en".into()), None], &[None, Some(3.0)], [0.3, 0.6]);
        assert_eq!(none, [None, None]);
    }
}
