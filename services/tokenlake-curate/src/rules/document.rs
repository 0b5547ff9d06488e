//! What every rule set reads of a document, measured once: its words (counted as datatrove
//! counts them, with the n-gram index Gopher repetition walks) and its lines.

use std::collections::{HashMap, HashSet};

use xxhash_rust::xxh3::xxh3_64;

use crate::rule_words::for_each_rule_word;

use super::text::{PUNCTUATION_ASCII, punctuation_set, python_splitlines};
use super::toxic::ToxicWords;

pub(super) const STOP_WORDS: [&str; 8] = ["the", "be", "to", "of", "and", "that", "have", "with"];

/// A document as the rule sets see it.
pub(super) struct Document<'t> {
    pub text: &'t str,
    /// Unicode scalar values.
    pub n_chars: usize,
    /// Python's `str.splitlines`.
    pub lines: Vec<&'t str>,
    pub words: WordCounts,
}

impl<'t> Document<'t> {
    pub fn new(text: &'t str, words: WordCounts) -> Self {
        Document {
            text,
            n_chars: text.chars().count(),
            lines: python_splitlines(text),
            words,
        }
    }

    /// `x` per word (0 without words).
    pub fn per_word(&self, x: usize) -> f64 {
        if self.words.words == 0 {
            0.0
        } else {
            x as f64 / self.words.words as f64
        }
    }
}

/// Counts from the one pass over the words.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WordCounts {
    pub words: usize,
    /// Words with a character that is not punctuation, and their characters.
    pub non_symbol: usize,
    pub non_symbol_chars: usize,
    /// Words with an alphabetic character.
    pub alpha_words: usize,
    /// Distinct stop words seen.
    pub stop_words: usize,
    /// Words of the toxic lists.
    pub toxic: usize,
}

/// The words of the current document, hashed, with scratch buffers a worker thread reuses.
#[derive(Default)]
pub(super) struct WordIndex {
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
}

impl WordIndex {
    /// Splits `text` into words (datatrove's splitting, `rule_words`), indexes them and counts
    /// what the rule sets need of them.
    pub fn index(&mut self, text: &str, toxic_words: &ToxicWords) -> WordCounts {
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
        WordCounts {
            words: self.word_hashes.len(),
            non_symbol,
            non_symbol_chars,
            alpha_words,
            stop_words: stop_seen.iter().filter(|s| **s).count(),
            toxic,
        }
    }

    /// datatrove's `find_top_duplicate` over `" ".join`ed word n-grams: characters of the most
    /// frequent n-gram times its count; ties go to the n-gram seen first.
    pub fn top_ngram_chars(&mut self, n: usize) -> usize {
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
    pub fn duplicated_ngram_chars(&mut self, n: usize) -> usize {
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
pub(super) fn ngram_hash(words: &[u64]) -> u64 {
    words.iter().fold(words.len() as u64, |h, &w| {
        (h.rotate_left(23) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

/// A hasher for keys that are hashes already: one multiply spreads them over the table.
#[derive(Default, Clone, Copy)]
pub(super) struct PreHashed(u64);

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

pub(super) type HashBuild = std::hash::BuildHasherDefault<PreHashed>;

/// Polynomial hashing modulo the Mersenne prime 2^61 − 1: the hash of a concatenation comes
/// from its parts' hashes and lengths, so "ab"+"c" and "a"+"bc" hash alike, as the joined
/// strings datatrove compares are alike.
pub(super) const M61: u64 = (1 << 61) - 1;
pub(super) const BASE: u64 = 0x1F3D_5B79_A2C4_E6F1 % M61;

pub(super) fn mul_mod(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    let r = (p as u64 & M61) + (p >> 61) as u64;
    if r >= M61 { r - M61 } else { r }
}

pub(super) fn add_mod(a: u64, b: u64) -> u64 {
    let r = a + b;
    if r >= M61 { r - M61 } else { r }
}
