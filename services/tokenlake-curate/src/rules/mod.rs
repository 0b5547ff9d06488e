//! Rule signals (Ziya2's rule-based filtering, RedPajama-V2's quality signals): every rule is a
//! named number per document, and every threshold a bit of `rule_flags` set when the document
//! fails it. The published rule sets (Gopher quality and repetition, C4, FineWeb) follow
//! datatrove's definitions (its word splitting, punctuation sets and line handling), so their
//! `keep_*` columns agree with datatrove's keep/drop decisions; Ziya2's classes (privacy, HTML
//! remnants, advertising, toxic words) are our own detectors.
//!
//! Signals never depend on thresholds, so a recipe can change its mind with SQL on the signal
//! columns; the flags and `keep_*` columns record the thresholds of the pipeline file.

//!
//! One module per rule set, each measuring its signals and deciding its checks: `gopher_quality`,
//! `gopher_repetition`, `c4`, `fineweb` and `ziya2`. `document` measures what they share once
//! (words, as datatrove splits them in `crate::rule_words`, and lines); `text` holds Python's and
//! datatrove's text handling; `toxic` the toxic word lists.

pub use thresholds::{CheckRule, Fails, check_rule};

mod c4;
mod document;
mod fineweb;
mod gopher_quality;
mod gopher_repetition;
mod text;
mod thresholds;
mod toxic;
mod ziya2;

use serde::{Deserialize, Serialize};

use document::{Document, WordIndex};
pub use toxic::ToxicWords;

/// Which published rule set (or Ziya2 class) a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSet {
    GopherQuality,
    GopherRepetition,
    C4,
    FineWeb,
    Ziya2,
}

impl RuleSet {
    pub const ALL: [RuleSet; 5] = [
        RuleSet::GopherQuality,
        RuleSet::GopherRepetition,
        RuleSet::C4,
        RuleSet::FineWeb,
        RuleSet::Ziya2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RuleSet::GopherQuality => "gopher_quality",
            RuleSet::GopherRepetition => "gopher_repetition",
            RuleSet::C4 => "c4",
            RuleSet::FineWeb => "fineweb",
            RuleSet::Ziya2 => "ziya2",
        }
    }

    /// The boolean column that is true when a document passes every check of the set.
    pub fn keep_column(self) -> &'static str {
        match self {
            RuleSet::GopherQuality => "keep_gopher_quality",
            RuleSet::GopherRepetition => "keep_gopher_repetition",
            RuleSet::C4 => "keep_c4",
            RuleSet::FineWeb => "keep_fineweb",
            RuleSet::Ziya2 => "keep_ziya2",
        }
    }
}

/// Thresholds of every check, and extra word lists; the defaults are the published thresholds
/// (datatrove's defaults) and Ziya2's "none tolerated" for its classes. A pipeline file's
/// `[rules]` overrides any of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSettings {
    pub gopher_min_words: f64,
    pub gopher_max_words: f64,
    pub gopher_min_mean_word_length: f64,
    pub gopher_max_mean_word_length: f64,
    pub gopher_max_symbol_ratio: f64,
    pub gopher_max_bullet_lines: f64,
    pub gopher_max_ellipsis_lines: f64,
    pub gopher_min_alpha_words: f64,
    pub gopher_min_stop_words: f64,
    pub repetition_max_dup_para_frac: f64,
    pub repetition_max_dup_para_chars: f64,
    pub repetition_max_dup_line_frac: f64,
    pub repetition_max_dup_line_chars: f64,
    /// Top 2-, 3- and 4-gram character fractions.
    pub repetition_max_top_ngram_chars: [f64; 3],
    /// Duplicated 5- to 10-gram character fractions.
    pub repetition_max_dup_ngram_chars: [f64; 6],
    pub c4_min_sentences: f64,
    pub fineweb_min_line_punct: f64,
    pub fineweb_max_short_lines: f64,
    pub fineweb_max_dup_line_chars: f64,
    pub fineweb_max_newline_words: f64,
    pub ziya2_max_privacy: f64,
    pub ziya2_max_html: f64,
    pub ziya2_max_ads: f64,
    pub ziya2_max_toxic: f64,
    /// Extra toxic word lists (one term per line), added to the built-in one.
    pub toxic_words: Vec<std::path::PathBuf>,
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            gopher_min_words: 50.0,
            gopher_max_words: 100_000.0,
            gopher_min_mean_word_length: 3.0,
            gopher_max_mean_word_length: 10.0,
            gopher_max_symbol_ratio: 0.1,
            gopher_max_bullet_lines: 0.9,
            gopher_max_ellipsis_lines: 0.3,
            gopher_min_alpha_words: 0.8,
            gopher_min_stop_words: 2.0,
            repetition_max_dup_para_frac: 0.3,
            repetition_max_dup_para_chars: 0.2,
            repetition_max_dup_line_frac: 0.3,
            repetition_max_dup_line_chars: 0.2,
            repetition_max_top_ngram_chars: [0.20, 0.18, 0.16],
            repetition_max_dup_ngram_chars: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10],
            c4_min_sentences: 5.0,
            fineweb_min_line_punct: 0.12,
            fineweb_max_short_lines: 0.67,
            fineweb_max_dup_line_chars: 0.01,
            fineweb_max_newline_words: 0.3,
            ziya2_max_privacy: 0.0,
            ziya2_max_html: 3.0,
            ziya2_max_ads: 0.0,
            ziya2_max_toxic: 0.0,
            toxic_words: Vec::new(),
        }
    }
}

/// Whether a signal is a count (stored as u32) or a ratio (stored as f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    Count,
    Ratio,
}

/// One signal column: its name, set, kind and what it measures.
#[derive(Debug, Clone, Copy)]
pub struct SignalDef {
    pub column: &'static str,
    pub set: RuleSet,
    pub kind: SignalKind,
    pub description: &'static str,
}

macro_rules! signals {
    ($($idx:ident = $column:literal, $set:ident, $kind:ident, $description:literal;)*) => {
        /// Index of each signal in [`Signals::values`] and [`SIGNALS`].
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Sig { $($idx),* }

        pub const SIGNALS: &[SignalDef] = &[
            $(SignalDef {
                column: $column,
                set: RuleSet::$set,
                kind: SignalKind::$kind,
                description: $description,
            }),*
        ];
    };
}

signals! {
    GopherWords = "gopher_word_count", GopherQuality, Count,
        "words with a character that is not punctuation";
    GopherMeanWordLength = "gopher_mean_word_length", GopherQuality, Ratio,
        "mean length in characters of those words";
    GopherHashRatio = "gopher_hash_ratio", GopherQuality, Ratio,
        "'#' characters per word";
    GopherEllipsisRatio = "gopher_ellipsis_ratio", GopherQuality, Ratio,
        "'...' and '…' per word";
    GopherBulletLines = "gopher_bullet_lines", GopherQuality, Ratio,
        "fraction of lines starting with '•' or '-'";
    GopherEllipsisLines = "gopher_ellipsis_lines", GopherQuality, Ratio,
        "fraction of lines ending with '...' or '…'";
    GopherAlphaWords = "gopher_alpha_words", GopherQuality, Ratio,
        "fraction of words with an alphabetic character";
    GopherStopWords = "gopher_stop_words", GopherQuality, Count,
        "distinct stop words (the, be, to, of, and, that, have, with)";
    RepDupParaFrac = "repetition_dup_para_frac", GopherRepetition, Ratio,
        "fraction of paragraphs that repeat an earlier one";
    RepDupParaChars = "repetition_dup_para_chars", GopherRepetition, Ratio,
        "characters in repeated paragraphs per character";
    RepDupLineFrac = "repetition_dup_line_frac", GopherRepetition, Ratio,
        "fraction of lines that repeat an earlier one";
    RepDupLineChars = "repetition_dup_line_chars", GopherRepetition, Ratio,
        "characters in repeated lines per character";
    RepTop2 = "repetition_top_2gram_chars", GopherRepetition, Ratio,
        "characters of the most frequent word 2-gram per character";
    RepTop3 = "repetition_top_3gram_chars", GopherRepetition, Ratio,
        "the same for 3-grams";
    RepTop4 = "repetition_top_4gram_chars", GopherRepetition, Ratio,
        "the same for 4-grams";
    RepDup5 = "repetition_dup_5gram_chars", GopherRepetition, Ratio,
        "characters in repeated word 5-grams per character";
    RepDup6 = "repetition_dup_6gram_chars", GopherRepetition, Ratio, "the same for 6-grams";
    RepDup7 = "repetition_dup_7gram_chars", GopherRepetition, Ratio, "the same for 7-grams";
    RepDup8 = "repetition_dup_8gram_chars", GopherRepetition, Ratio, "the same for 8-grams";
    RepDup9 = "repetition_dup_9gram_chars", GopherRepetition, Ratio, "the same for 9-grams";
    RepDup10 = "repetition_dup_10gram_chars", GopherRepetition, Ratio, "the same for 10-grams";
    C4LoremIpsum = "c4_lorem_ipsum", C4, Count,
        "1 when a kept line contains 'lorem ipsum'";
    C4CurlyBracket = "c4_curly_bracket", C4, Count,
        "1 when a kept line contains '{'";
    C4Sentences = "c4_sentences", C4, Count,
        "sentences in the lines C4 keeps (terminal punctuation, at least 3 words)";
    C4JavascriptLines = "c4_javascript_lines", C4, Count,
        "lines C4 drops for mentioning javascript";
    C4PolicyLines = "c4_policy_lines", C4, Count,
        "lines C4 drops for cookie, privacy or terms-of-use phrases";
    FwLinePunct = "fineweb_line_punct", FineWeb, Ratio,
        "fraction of non-blank lines ending with terminal punctuation";
    FwShortLines = "fineweb_short_lines", FineWeb, Ratio,
        "fraction of non-blank lines of at most 30 characters";
    FwDupLineChars = "fineweb_dup_line_chars", FineWeb, Ratio,
        "characters in repeated lines per non-newline character";
    FwNewlineWords = "fineweb_newline_words", FineWeb, Ratio,
        "newlines per word";
    ZiyaPrivacy = "ziya2_privacy", Ziya2, Count,
        "e-mail addresses and phone numbers";
    ZiyaHtml = "ziya2_html", Ziya2, Count,
        "HTML tags and character entities";
    ZiyaAds = "ziya2_ads", Ziya2, Count,
        "advertising and boilerplate phrases (cookie banners, calls to buy, link bars)";
    ZiyaToxic = "ziya2_toxic", Ziya2, Count,
        "words from the toxic word lists";
}

/// The checks, one bit of `rule_flags` each (bit = position); a set bit means the document
/// fails the check. Positions never change between releases; new checks are appended.
#[derive(Debug, Clone, Copy)]
pub struct CheckDef {
    pub name: &'static str,
    pub set: RuleSet,
}

pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        name: "gopher_too_few_words",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "gopher_too_many_words",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "gopher_mean_word_too_short",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "gopher_mean_word_too_long",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "gopher_too_many_hashes",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "gopher_too_many_ellipses",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "gopher_too_many_bullet_lines",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "gopher_too_many_ellipsis_lines",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "gopher_too_few_alpha_words",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "gopher_too_few_stop_words",
        set: RuleSet::GopherQuality,
    },
    CheckDef {
        name: "repetition_empty",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_para_frac",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_para_chars",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_line_frac",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_line_chars",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_top_2gram",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_top_3gram",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_top_4gram",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_5gram",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_6gram",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_7gram",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_8gram",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_9gram",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "repetition_dup_10gram",
        set: RuleSet::GopherRepetition,
    },
    CheckDef {
        name: "c4_lorem_ipsum",
        set: RuleSet::C4,
    },
    CheckDef {
        name: "c4_curly_bracket",
        set: RuleSet::C4,
    },
    CheckDef {
        name: "c4_too_few_sentences",
        set: RuleSet::C4,
    },
    CheckDef {
        name: "fineweb_empty",
        set: RuleSet::FineWeb,
    },
    CheckDef {
        name: "fineweb_line_punct",
        set: RuleSet::FineWeb,
    },
    CheckDef {
        name: "fineweb_short_lines",
        set: RuleSet::FineWeb,
    },
    CheckDef {
        name: "fineweb_dup_line_chars",
        set: RuleSet::FineWeb,
    },
    CheckDef {
        name: "fineweb_list_ratio",
        set: RuleSet::FineWeb,
    },
    CheckDef {
        name: "ziya2_privacy",
        set: RuleSet::Ziya2,
    },
    CheckDef {
        name: "ziya2_html",
        set: RuleSet::Ziya2,
    },
    CheckDef {
        name: "ziya2_advertising",
        set: RuleSet::Ziya2,
    },
    CheckDef {
        name: "ziya2_toxic",
        set: RuleSet::Ziya2,
    },
];

/// The bits of `rule_flags` that belong to `set`.
pub fn set_mask(set: RuleSet) -> u64 {
    CHECKS
        .iter()
        .enumerate()
        .filter(|(_, c)| c.set == set)
        .fold(0, |m, (bit, _)| m | 1 << bit)
}

/// The `rule_flags` bit of the check `name`; a const fn, so [`Signals::flags`] finds its bits
/// at compile time (and an unknown name fails the build).
pub(crate) const fn bit(name: &str) -> u64 {
    let mut at = 0;
    while at < CHECKS.len() {
        let (a, b) = (CHECKS[at].name.as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut i = 0;
            while i < a.len() && a[i] == b[i] {
                i += 1;
            }
            if i == a.len() {
                return 1 << at;
            }
        }
        at += 1;
    }
    panic!("no check of that name")
}

/// Every signal of one document, indexed by [`Sig`].
#[derive(Debug, Clone, PartialEq)]
pub struct Signals {
    pub values: [f64; SIGNALS.len()],
    /// Whether the text is empty (or whitespace only, for FineWeb).
    empty: bool,
    blank: bool,
}

impl Signals {
    pub fn get(&self, s: Sig) -> f64 {
        self.values[s as usize]
    }

    /// The `rule_flags` of the document under `t`: each rule set's failed checks.
    pub fn flags(&self, t: &RuleSettings) -> u64 {
        gopher_quality::flags(self, t)
            | gopher_repetition::flags(self, t)
            | c4::flags(self, t)
            | fineweb::flags(self, t)
            | ziya2::flags(self, t)
    }
}

/// `bit` when `cond` holds, else nothing.
fn flag(cond: bool, bit: u64) -> u64 {
    if cond { bit } else { 0 }
}

/// The signal values being measured, written by each rule set's module.
struct Values([f64; SIGNALS.len()]);

impl Values {
    fn set(&mut self, s: Sig, v: f64) {
        self.0[s as usize] = v;
    }
}

/// Whether a document with `flags` passes every check of `set`.
pub fn keeps(flags: u64, set: RuleSet) -> bool {
    flags & set_mask(set) == 0
}

/// Computes signals; holds scratch buffers so that a worker thread reuses its allocations.
#[derive(Default)]
pub struct RuleScorer {
    words: WordIndex,
    toxic: ToxicWords,
}

impl RuleScorer {
    pub fn with_toxic_words(toxic: ToxicWords) -> Self {
        RuleScorer {
            toxic,
            ..RuleScorer::default()
        }
    }

    /// Every signal of `text`: its words once, then each rule set.
    pub fn signals(&mut self, text: &str) -> Signals {
        let counts = self.words.index(text, &self.toxic);
        let doc = Document::new(text, counts);
        let mut values = Values([0.0; SIGNALS.len()]);
        gopher_quality::measure(&doc, &mut values);
        gopher_repetition::measure(&doc, &mut self.words, &mut values);
        c4::measure(&doc, &mut values);
        let blank = fineweb::measure(&doc, &mut values);
        ziya2::measure(&doc, &self.toxic, &mut values);
        Signals {
            values: values.0,
            empty: text.is_empty(),
            blank,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::c4::{remove_citations, sentences};
    use super::text::{python_splitlines, split_runs};
    use super::*;

    fn flags_of(text: &str) -> u64 {
        RuleScorer::default()
            .signals(text)
            .flags(&RuleSettings::default())
    }

    const GOOD: &str = "The committee met on Tuesday to discuss the budget for the coming year. \
        Members agreed that the library should have longer opening hours, and that the park \
        needs new benches. The treasurer explained how the money would be raised and spent. \
        After a short break, the chair asked for comments from the public, and several residents \
        spoke about the traffic on the main road. The meeting ended with a vote, and the plan \
        was approved by a large majority of those present.";

    #[test]
    fn clean_prose_passes_every_published_rule_set() {
        let flags = flags_of(GOOD);
        for set in RuleSet::ALL {
            assert!(keeps(flags, set), "{set:?}: {flags:#x}");
        }
    }

    #[test]
    fn each_kind_of_junk_fails_its_rule() {
        let lorem = format!(
            "{}\n{GOOD}",
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(4)
        );
        assert!(!keeps(flags_of(&lorem), RuleSet::C4));
        let repeated = "the same line is here again and again.\n".repeat(20);
        assert!(!keeps(flags_of(&repeated), RuleSet::GopherRepetition));
        assert!(!keeps(flags_of(&repeated), RuleSet::FineWeb));
        assert!(!keeps(
            flags_of("too short to be a document."),
            RuleSet::GopherQuality
        ));
        let pii = format!("{GOOD}\nContact: jane.roe@example.com, phone +1 (555) 123-4567");
        assert!(!keeps(flags_of(&pii), RuleSet::Ziya2));
        assert!(keeps(flags_of(&pii), RuleSet::GopherQuality));
        let empty = flags_of("");
        for set in [
            RuleSet::GopherQuality,
            RuleSet::GopherRepetition,
            RuleSet::C4,
            RuleSet::FineWeb,
        ] {
            assert!(!keeps(empty, set), "{set:?}");
        }
    }

    #[test]
    fn signals_match_the_reference_definitions_on_small_cases() {
        let mut scorer = RuleScorer::default();
        let s = scorer.signals("a b\n\na b\nc d e\nc d e");
        // paragraphs: "a b", "a b\nc d e\nc d e" → none repeat; lines: a b, a b, c d e, c d e
        assert_eq!(s.get(Sig::RepDupParaFrac), 0.0);
        assert_eq!(s.get(Sig::RepDupLineFrac), 0.5);
        assert_eq!(s.get(Sig::RepDupLineChars), 8.0 / 20.0);
        // top 2-gram: "a b" ×2 and "c d" ×2, "d e" ×2: the first seen wins, 3 chars × 2
        assert_eq!(s.get(Sig::RepTop2), 6.0 / 20.0);
        assert_eq!(split_runs("\na\n\n\nb\n", 2), ["\na", "b\n"]);
        assert_eq!(python_splitlines("a\r\nb\n\nc\n"), ["a", "b", "", "c"]);
        assert_eq!(
            remove_citations("Paris[12] is big[citation needed]."),
            "Paris is big."
        );
        assert_eq!(sentences("One here. Two there! \"Three?\" Four"), 4);
    }

    #[test]
    fn check_bits_are_stable_and_grouped_by_set() {
        // Bit positions are part of the lake's data: a change here breaks stored flags.
        assert_eq!(bit("gopher_too_few_words"), 1);
        assert_eq!(bit("repetition_empty"), 1 << 10);
        assert_eq!(bit("c4_lorem_ipsum"), 1 << 24);
        assert_eq!(bit("fineweb_empty"), 1 << 27);
        assert_eq!(bit("ziya2_toxic"), 1 << 35);
        let all = RuleSet::ALL.iter().fold(0, |m, s| m | set_mask(*s));
        assert_eq!(all, (1u64 << CHECKS.len()) - 1);
        assert_eq!(SIGNALS.len(), Sig::ZiyaToxic as usize + 1);
    }
}
