//! Rule signals (Ziya2's rule-based filtering, RedPajama-V2's quality signals): every rule is a
//! named number per document, and every threshold a bit of `rule_flags` set when the document
//! fails it. The published rule sets (Gopher quality and repetition, C4, FineWeb) follow
//! datatrove's definitions (its word splitting, punctuation sets and line handling), so their
//! `keep_*` columns agree with datatrove's keep/drop decisions; Ziya2's classes (privacy, HTML
//! remnants, advertising, toxic words) are our own detectors.
//!
//! Signals never depend on thresholds, so a recipe can change its mind with SQL on the signal
//! columns; the flags and `keep_*` columns record the thresholds of the pipeline file.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::punctuation::{PUNCTUATION, TERMINAL_PUNCTUATION};
use crate::rule_words::{for_each_rule_word, is_space};

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

    /// The `rule_flags` of the document under `t`.
    pub fn flags(&self, t: &RuleSettings) -> u64 {
        let v = |s: Sig| self.get(s);
        let mut f = 0u64;
        let mut check = |cond: bool, bit: u64| {
            if cond {
                f |= bit;
            }
        };
        let words = v(Sig::GopherWords);
        check(
            words < t.gopher_min_words,
            const { bit("gopher_too_few_words") },
        );
        check(
            words > t.gopher_max_words,
            const { bit("gopher_too_many_words") },
        );
        // With no words the remaining Gopher checks have nothing to measure.
        if words > 0.0 {
            let mean = v(Sig::GopherMeanWordLength);
            check(
                mean < t.gopher_min_mean_word_length,
                const { bit("gopher_mean_word_too_short") },
            );
            check(
                mean > t.gopher_max_mean_word_length,
                const { bit("gopher_mean_word_too_long") },
            );
            check(
                v(Sig::GopherHashRatio) > t.gopher_max_symbol_ratio,
                const { bit("gopher_too_many_hashes") },
            );
            check(
                v(Sig::GopherEllipsisRatio) > t.gopher_max_symbol_ratio,
                const { bit("gopher_too_many_ellipses") },
            );
            check(
                v(Sig::GopherBulletLines) > t.gopher_max_bullet_lines,
                const { bit("gopher_too_many_bullet_lines") },
            );
            check(
                v(Sig::GopherEllipsisLines) > t.gopher_max_ellipsis_lines,
                const { bit("gopher_too_many_ellipsis_lines") },
            );
            check(
                v(Sig::GopherAlphaWords) < t.gopher_min_alpha_words,
                const { bit("gopher_too_few_alpha_words") },
            );
        }
        check(
            v(Sig::GopherStopWords) < t.gopher_min_stop_words,
            const { bit("gopher_too_few_stop_words") },
        );

        check(self.empty, const { bit("repetition_empty") });
        if !self.empty {
            check(
                v(Sig::RepDupParaFrac) > t.repetition_max_dup_para_frac,
                const { bit("repetition_dup_para_frac") },
            );
            check(
                v(Sig::RepDupParaChars) > t.repetition_max_dup_para_chars,
                const { bit("repetition_dup_para_chars") },
            );
            check(
                v(Sig::RepDupLineFrac) > t.repetition_max_dup_line_frac,
                const { bit("repetition_dup_line_frac") },
            );
            check(
                v(Sig::RepDupLineChars) > t.repetition_max_dup_line_chars,
                const { bit("repetition_dup_line_chars") },
            );
            let top = [Sig::RepTop2, Sig::RepTop3, Sig::RepTop4];
            let top_bits: [u64; 3] = const {
                [
                    bit("repetition_top_2gram"),
                    bit("repetition_top_3gram"),
                    bit("repetition_top_4gram"),
                ]
            };
            for ((s, max), name) in top
                .iter()
                .zip(t.repetition_max_top_ngram_chars)
                .zip(top_bits)
            {
                check(v(*s) > max, name);
            }
            let dup = [
                Sig::RepDup5,
                Sig::RepDup6,
                Sig::RepDup7,
                Sig::RepDup8,
                Sig::RepDup9,
                Sig::RepDup10,
            ];
            let dup_bits: [u64; 6] = const {
                [
                    bit("repetition_dup_5gram"),
                    bit("repetition_dup_6gram"),
                    bit("repetition_dup_7gram"),
                    bit("repetition_dup_8gram"),
                    bit("repetition_dup_9gram"),
                    bit("repetition_dup_10gram"),
                ]
            };
            for ((s, max), name) in dup
                .iter()
                .zip(t.repetition_max_dup_ngram_chars)
                .zip(dup_bits)
            {
                check(v(*s) > max, name);
            }
        }

        check(v(Sig::C4LoremIpsum) > 0.0, const { bit("c4_lorem_ipsum") });
        check(
            v(Sig::C4CurlyBracket) > 0.0,
            const { bit("c4_curly_bracket") },
        );
        check(
            v(Sig::C4Sentences) < t.c4_min_sentences,
            const { bit("c4_too_few_sentences") },
        );

        check(self.blank, const { bit("fineweb_empty") });
        if !self.blank {
            check(
                v(Sig::FwLinePunct) < t.fineweb_min_line_punct,
                const { bit("fineweb_line_punct") },
            );
            check(
                v(Sig::FwShortLines) > t.fineweb_max_short_lines,
                const { bit("fineweb_short_lines") },
            );
            check(
                v(Sig::FwDupLineChars) > t.fineweb_max_dup_line_chars,
                const { bit("fineweb_dup_line_chars") },
            );
            check(
                v(Sig::FwNewlineWords) > t.fineweb_max_newline_words,
                const { bit("fineweb_list_ratio") },
            );
        }

        check(
            v(Sig::ZiyaPrivacy) > t.ziya2_max_privacy,
            const { bit("ziya2_privacy") },
        );
        check(
            v(Sig::ZiyaHtml) > t.ziya2_max_html,
            const { bit("ziya2_html") },
        );
        check(
            v(Sig::ZiyaAds) > t.ziya2_max_ads,
            const { bit("ziya2_advertising") },
        );
        check(
            v(Sig::ZiyaToxic) > t.ziya2_max_toxic,
            const { bit("ziya2_toxic") },
        );
        f
    }
}

/// Whether a document with `flags` passes every check of `set`.
pub fn keeps(flags: u64, set: RuleSet) -> bool {
    flags & set_mask(set) == 0
}

const STOP_WORDS: [&str; 8] = ["the", "be", "to", "of", "and", "that", "have", "with"];
const POLICY_PHRASES: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

fn punctuation_set() -> &'static HashSet<char> {
    static SET: OnceLock<HashSet<char>> = OnceLock::new();
    SET.get_or_init(|| {
        PUNCTUATION
            .chars()
            .chain(TERMINAL_PUNCTUATION.chars())
            .collect()
    })
}

/// The ASCII part of [`punctuation_set`], for the common case without a set lookup.
const PUNCTUATION_ASCII: [bool; 256] = {
    let mut table = [false; 256];
    let bytes = PUNCTUATION.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] < 0x80 {
            table[bytes[i] as usize] = true;
        }
        i += 1;
    }
    table
};

fn terminal_set() -> &'static HashSet<char> {
    static SET: OnceLock<HashSet<char>> = OnceLock::new();
    SET.get_or_init(|| TERMINAL_PUNCTUATION.chars().collect())
}

/// Python's `str.splitlines`: every line break Python knows, `\r\n` as one, no trailing empty
/// line.
fn python_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            lines.push(&text[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' && chars.peek().is_some_and(|&(_, n)| n == '\n') {
                chars.next();
                end += 1;
            }
            start = end;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Python's `str.strip()` (Unicode whitespace, as datatrove's rules strip).
fn py_strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// datatrove's `find_duplicates`: elements that repeat an earlier one, and their characters.
fn find_duplicates<'a>(elements: impl Iterator<Item = &'a str>) -> (usize, usize) {
    let mut seen: HashSet<&str, HashBuild> = HashSet::default();
    let (mut dups, mut chars) = (0, 0);
    for e in elements {
        if !seen.insert(e) {
            dups += 1;
            chars += e.chars().count();
        }
    }
    (dups, chars)
}

/// spaCy's `is_punct` for the characters that matter: Unicode punctuation (categories P*).
fn is_punct_char(c: char) -> bool {
    (c.is_ascii_punctuation() && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~'))
        || matches!(c as u32,
            0x00A1 | 0x00A7 | 0x00AB | 0x00B6 | 0x00B7 | 0x00BB | 0x00BF
            | 0x2010..=0x2027 | 0x2030..=0x205E | 0x3001..=0x3003 | 0x3008..=0x3011
            | 0x3014..=0x301F | 0xFF01..=0xFF03 | 0xFF05..=0xFF0A | 0xFF0C..=0xFF0F
            | 0xFF1A | 0xFF1B | 0xFF1F | 0xFF20 | 0xFF3B..=0xFF3D | 0xFF3F | 0xFF5B | 0xFF5D
            | 0xFF5F..=0xFF65)
}

/// Sentences in `line` as spaCy's sentencizer counts them: a new sentence starts at the first
/// word that is not punctuation after a sentence-final mark.
fn sentences(line: &str) -> usize {
    let terminal = terminal_set();
    let mut count = 0;
    let mut seen_period = false;
    for_each_rule_word(line, |w| {
        let mut chars = w.chars();
        let single = chars.next().filter(|_| chars.next().is_none());
        let is_final = single.is_some_and(|c| terminal.contains(&c));
        if count == 0 {
            count = 1;
            seen_period = is_final;
        } else if seen_period && !is_final && !w.chars().all(is_punct_char) {
            count += 1;
            seen_period = false;
        } else if is_final {
            seen_period = true;
        }
    });
    count
}

/// `[12]`, `[]`, `[edit]` and `[citation needed]` removed, as C4 removes Wikipedia citations.
fn remove_citations(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('[') {
        return line.into();
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let digits = after
            .chars()
            .take_while(|c| c.is_numeric())
            .map(char::len_utf8)
            .sum::<usize>();
        let skip = if after[digits..].starts_with(']') {
            Some(digits + 1)
        } else if after.starts_with("edit]") {
            Some(5)
        } else if after.starts_with("citation needed]") {
            Some(16)
        } else {
            None
        };
        match skip {
            Some(n) => rest = &after[n..],
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.into()
}

/// A hasher for keys that are hashes already: one multiply spreads them over the table.
#[derive(Default, Clone, Copy)]
struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64(bytes);
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type HashBuild = std::hash::BuildHasherDefault<PreHashed>;

/// Polynomial hashing modulo the Mersenne prime 2^61 − 1: the hash of a concatenation comes
/// from its parts' hashes and lengths, so "ab"+"c" and "a"+"bc" hash alike, as the joined
/// strings datatrove compares are alike.
const M61: u64 = (1 << 61) - 1;
const BASE: u64 = 0x1F3D_5B79_A2C4_E6F1 % M61;

fn mul_mod(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    let r = (p as u64 & M61) + (p >> 61) as u64;
    if r >= M61 { r - M61 } else { r }
}

fn add_mod(a: u64, b: u64) -> u64 {
    let r = a + b;
    if r >= M61 { r - M61 } else { r }
}

/// Computes signals; holds scratch buffers so that a worker thread reuses its allocations.
#[derive(Default)]
pub struct RuleScorer {
    word_hashes: Vec<u64>,
    word_chars: Vec<u32>,
    /// Polynomial hash of the first k words' bytes, joined without spaces (k = index).
    prefix_poly: Vec<u64>,
    /// Bytes of the first k words.
    prefix_bytes: Vec<u32>,
    /// BASE to the power of each byte count up to the words' total.
    base_powers: Vec<u64>,
    ngram_counts: HashMap<u64, (u32, u32), HashBuild>,
    seen: HashSet<u64, HashBuild>,
    toxic: ToxicWords,
}

impl RuleScorer {
    pub fn with_toxic_words(toxic: ToxicWords) -> Self {
        RuleScorer {
            toxic,
            ..RuleScorer::default()
        }
    }

    pub fn signals(&mut self, text: &str) -> Signals {
        let mut values = [0.0f64; SIGNALS.len()];
        let mut set = |s: Sig, v: f64| values[s as usize] = v;
        let n_chars = text.chars().count();

        // Words, once, for every rule set.
        self.word_hashes.clear();
        self.word_chars.clear();
        self.prefix_poly.clear();
        self.prefix_poly.push(0);
        self.prefix_bytes.clear();
        self.prefix_bytes.push(0);
        let punct = punctuation_set();
        let (mut non_symbol, mut non_symbol_chars, mut alpha_words) = (0usize, 0usize, 0usize);
        let mut stop_seen = [false; STOP_WORDS.len()];
        let mut toxic = 0usize;
        let toxic_words = &self.toxic;
        let (hashes, lens) = (&mut self.word_hashes, &mut self.word_chars);
        let (prefix, prefix_bytes) = (&mut self.prefix_poly, &mut self.prefix_bytes);
        for_each_rule_word(text, |w| {
            let chars = w.chars().count();
            hashes.push(xxh3_64(w.as_bytes()));
            lens.push(chars as u32);
            let mut h = *prefix.last().unwrap_or(&0);
            for b in w.bytes() {
                h = add_mod(mul_mod(h, BASE), u64::from(b) + 1);
            }
            prefix.push(h);
            prefix_bytes.push(prefix_bytes.last().unwrap_or(&0) + w.len() as u32);
            let symbol_only = if w.is_ascii() {
                w.bytes().all(|b| PUNCTUATION_ASCII[b as usize])
            } else {
                w.chars().all(|c| punct.contains(&c))
            };
            if !symbol_only {
                non_symbol += 1;
                non_symbol_chars += chars;
            }
            if w.chars().any(char::is_alphabetic) {
                alpha_words += 1;
            }
            if let Some(i) = STOP_WORDS.iter().position(|s| *s == w) {
                stop_seen[i] = true;
            }
            if toxic_words.contains_word(w) {
                toxic += 1;
            }
        });
        let n_words = self.word_hashes.len();
        let per_word = |x: usize| {
            if n_words == 0 {
                0.0
            } else {
                x as f64 / n_words as f64
            }
        };

        // Gopher quality.
        set(Sig::GopherWords, non_symbol as f64);
        set(
            Sig::GopherMeanWordLength,
            if non_symbol == 0 {
                0.0
            } else {
                non_symbol_chars as f64 / non_symbol as f64
            },
        );
        set(Sig::GopherHashRatio, per_word(text.matches('#').count()));
        set(
            Sig::GopherEllipsisRatio,
            per_word(text.matches("...").count() + text.matches('…').count()),
        );
        let lines = python_splitlines(text);
        let per_line = |x: usize| {
            if lines.is_empty() {
                0.0
            } else {
                x as f64 / lines.len() as f64
            }
        };
        let bullets = lines
            .iter()
            .filter(|l| {
                let l = l.trim_start_matches(is_space);
                l.starts_with('•') || l.starts_with('-')
            })
            .count();
        set(Sig::GopherBulletLines, per_line(bullets));
        let ellipsis_lines = lines
            .iter()
            .filter(|l| {
                let l = l.trim_end_matches(is_space);
                l.ends_with("...") || l.ends_with('…')
            })
            .count();
        set(Sig::GopherEllipsisLines, per_line(ellipsis_lines));
        set(Sig::GopherAlphaWords, per_word(alpha_words));
        set(
            Sig::GopherStopWords,
            stop_seen.iter().filter(|s| **s).count() as f64,
        );

        // Gopher repetition.
        let empty = text.is_empty();
        if !empty {
            let per_char = |x: usize| x as f64 / n_chars as f64;
            let paragraphs = split_runs(py_strip(text), 2);
            let (dups, chars) = find_duplicates(paragraphs.iter().copied());
            set(Sig::RepDupParaFrac, dups as f64 / paragraphs.len() as f64);
            set(Sig::RepDupParaChars, per_char(chars));
            let line_runs = split_runs(text, 1);
            let (dups, chars) = find_duplicates(line_runs.iter().copied());
            set(Sig::RepDupLineFrac, dups as f64 / line_runs.len() as f64);
            set(Sig::RepDupLineChars, per_char(chars));
            for (n, s) in [(2, Sig::RepTop2), (3, Sig::RepTop3), (4, Sig::RepTop4)] {
                set(s, per_char(self.top_ngram_chars(n)));
            }
            for (n, s) in [
                (5, Sig::RepDup5),
                (6, Sig::RepDup6),
                (7, Sig::RepDup7),
                (8, Sig::RepDup8),
                (9, Sig::RepDup9),
                (10, Sig::RepDup10),
            ] {
                set(s, per_char(self.duplicated_ngram_chars(n)));
            }
        }

        // C4, line by line as datatrove's C4QualityFilter.
        let (mut sentences_kept, mut javascript, mut policy) = (0usize, 0usize, 0usize);
        let (mut lorem, mut curly) = (false, false);
        for line in &lines {
            let line = py_strip(line);
            let mut n_words = 0;
            let mut too_long = false;
            for w in line.split(is_space).filter(|w| !w.is_empty()) {
                n_words += 1;
                too_long |= w.chars().count() > 1000;
            }
            if too_long {
                continue;
            }
            let line = remove_citations(line);
            let ends = line.ends_with(['.', '?', '!', '"', '\'']) && !line.ends_with("...");
            if !ends || n_words < 3 {
                continue;
            }
            let lower = line.to_lowercase();
            if lower.contains("lorem ipsum") {
                lorem = true;
                break;
            }
            if lower.contains("javascript") {
                javascript += 1;
                continue;
            }
            if line.contains('{') {
                curly = true;
                break;
            }
            if POLICY_PHRASES.iter().any(|p| lower.contains(p)) {
                policy += 1;
                continue;
            }
            sentences_kept += sentences(&line);
        }
        set(Sig::C4LoremIpsum, f64::from(u8::from(lorem)));
        set(Sig::C4CurlyBracket, f64::from(u8::from(curly)));
        set(Sig::C4Sentences, sentences_kept as f64);
        set(Sig::C4JavascriptLines, javascript as f64);
        set(Sig::C4PolicyLines, policy as f64);

        // FineWeb.
        let fw_lines: Vec<&str> = text
            .split('\n')
            .filter(|l| !py_strip(l).is_empty())
            .collect();
        let blank = fw_lines.is_empty();
        if !blank {
            let per = |x: usize| x as f64 / fw_lines.len() as f64;
            let terminal = terminal_set();
            let punct_lines = fw_lines
                .iter()
                .filter(|l| l.chars().next_back().is_some_and(|c| terminal.contains(&c)))
                .count();
            set(Sig::FwLinePunct, per(punct_lines));
            set(
                Sig::FwShortLines,
                per(fw_lines.iter().filter(|l| l.chars().count() <= 30).count()),
            );
            let (_, dup_chars) = find_duplicates(fw_lines.iter().copied());
            let non_newline = n_chars - text.matches('\n').count();
            set(
                Sig::FwDupLineChars,
                if non_newline == 0 {
                    0.0
                } else {
                    dup_chars as f64 / non_newline as f64
                },
            );
            set(Sig::FwNewlineWords, per_word(text.matches('\n').count()));
        }

        // Ziya2's classes.
        set(
            Sig::ZiyaPrivacy,
            crate::detect::privacy_matches(text) as f64,
        );
        set(Sig::ZiyaHtml, crate::detect::html_matches(text) as f64);
        set(
            Sig::ZiyaAds,
            crate::detect::advertising_matches(text) as f64,
        );
        set(
            Sig::ZiyaToxic,
            (toxic + self.toxic.cjk_matches(text)) as f64,
        );

        Signals {
            values,
            empty,
            blank,
        }
    }

    /// datatrove's `find_top_duplicate` over `" ".join`ed word n-grams: characters of the most
    /// frequent n-gram times its count; ties go to the n-gram seen first.
    fn top_ngram_chars(&mut self, n: usize) -> usize {
        let words = self.word_hashes.len();
        if words < n {
            return 0;
        }
        self.ngram_counts.clear();
        self.ngram_counts.reserve(words);
        let mut best: Option<(u32, u32, usize)> = None; // count, first position, chars
        for i in 0..=words - n {
            let h = ngram_hash(&self.word_hashes[i..i + n]);
            let entry = self.ngram_counts.entry(h).or_insert((0, i as u32));
            entry.0 += 1;
            let (count, first) = *entry;
            let better = match best {
                None => true,
                Some((c, f, _)) => count > c || (count == c && first < f),
            };
            if better {
                let chars = self.word_chars[first as usize..first as usize + n]
                    .iter()
                    .map(|&c| c as usize)
                    .sum::<usize>()
                    + n
                    - 1;
                best = Some((count, first, chars));
            }
        }
        best.map_or(0, |(count, _, chars)| count as usize * chars)
    }

    /// datatrove's `find_all_duplicate`: walking the words, an n-gram (its words joined without
    /// spaces) seen before adds its characters and skips ahead by n.
    fn duplicated_ngram_chars(&mut self, n: usize) -> usize {
        let words = self.word_chars.len();
        if words < n {
            return 0;
        }
        // Powers of BASE for every byte count, once per document.
        let total = *self.prefix_bytes.last().unwrap_or(&0) as usize;
        if self.base_powers.len() <= total {
            if self.base_powers.is_empty() {
                self.base_powers.push(1);
            }
            while self.base_powers.len() <= total {
                let next = mul_mod(*self.base_powers.last().unwrap_or(&1), BASE);
                self.base_powers.push(next);
            }
        }
        self.seen.clear();
        self.seen.reserve(words);
        let mut repeated = 0;
        let mut i = 0;
        while i + n <= words {
            // The joined string's hash from the prefix hashes: P[i+n] − P[i]·BASE^bytes.
            let bytes = (self.prefix_bytes[i + n] - self.prefix_bytes[i]) as usize;
            let head = mul_mod(self.prefix_poly[i], self.base_powers[bytes]);
            let h = add_mod(self.prefix_poly[i + n], M61 - head);
            if self.seen.insert(h) {
                i += 1;
            } else {
                repeated += self.word_chars[i..i + n]
                    .iter()
                    .map(|&c| c as usize)
                    .sum::<usize>();
                i += n;
            }
        }
        repeated
    }
}

/// An n-gram of word hashes as one hash; the words are joined by single spaces, so equal
/// hash sequences are equal n-grams.
fn ngram_hash(words: &[u64]) -> u64 {
    words.iter().fold(words.len() as u64, |h, &w| {
        (h.rotate_left(23) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

/// Splits at runs of at least `min` newlines (`re.split(r"\n{min,}", text)`).
fn split_runs(text: &str, min: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            let run = bytes[i..].iter().take_while(|&&b| b == b'\n').count();
            if run >= min {
                parts.push(&text[start..i]);
                start = i + run;
            }
            i += run;
        } else {
            i += 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Toxic word lists: whole English words (lower-cased) and Chinese terms (substrings, since
/// Chinese has no spaces). The built-in lists are small and clear-cut; a pipeline file adds
/// the user's own.
#[derive(Debug, Clone)]
pub struct ToxicWords {
    words: HashSet<String, HashBuild>,
    /// Bytes of the shortest word, so shorter words skip the lookup.
    shortest: usize,
    cjk_terms: Vec<String>,
}

impl Default for ToxicWords {
    fn default() -> Self {
        let mut t = ToxicWords {
            words: HashSet::default(),
            shortest: usize::MAX,
            cjk_terms: Vec::new(),
        };
        t.add_list(include_str!("../data/toxic_words.txt"));
        t
    }
}

impl ToxicWords {
    /// Adds one term per line; `#` starts a comment.
    pub fn add_list(&mut self, list: &str) {
        for term in list
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
        {
            if term.is_empty() {
                continue;
            }
            if term.chars().any(|c| c as u32 >= 0x2E80) {
                self.cjk_terms.push(term.to_string());
            } else {
                let word = term.to_lowercase();
                self.shortest = self.shortest.min(word.len());
                self.words.insert(word);
            }
        }
    }

    fn contains_word(&self, w: &str) -> bool {
        if self.words.is_empty() || w.len() > 32 || w.len() < self.shortest {
            return false;
        }
        self.words.contains(w)
            || ((!w.is_ascii() || w.bytes().any(|b| b.is_ascii_uppercase()))
                && self.words.contains(&w.to_lowercase()))
    }

    fn cjk_matches(&self, text: &str) -> usize {
        if self.cjk_terms.is_empty() || text.is_ascii() {
            return 0;
        }
        self.cjk_terms
            .iter()
            .map(|t| text.matches(t.as_str()).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
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
