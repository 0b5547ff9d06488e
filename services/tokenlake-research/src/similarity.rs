//! Ziya2's third data attribute, SIM: how close training documents are to downstream test
//! sets, and the sharper question behind it, whether a test set leaked into the training data.
//!
//! - [`TfIdfSimilarity`] scores a document by its highest cosine similarity to any target
//!   (test question) over TF-IDF vectors of word unigrams and bigrams, IDF taken over the
//!   targets. It is one [`SimilarityModel`]; an embedding model plugs in behind the same trait.
//! - [`NgramOverlap`] counts the distinct 13-grams a document shares with the targets, the
//!   contamination test of GPT-3 and its successors: one shared 13-gram is rarely chance.
//!
//! Both see text as the same terms, the words de-duplication fingerprints too
//! (`tokenlake_curate::words`): lowercased runs of letters and digits, and each CJK ideograph,
//! kana or hangul syllable on its own (those scripts have no spaces; a character is their
//! nearest thing to a word). Punctuation and spacing are ignored, so reformatted copies still
//! match.

use std::collections::{HashMap, HashSet};

use xxhash_rust::xxh3::xxh3_64;

/// Length of the contamination n-grams, in terms.
pub const CONTAMINATION_N: usize = 13;
/// Targets shorter than [`CONTAMINATION_N`] terms count whole, if at least this long (shorter
/// ones would match by chance).
pub const MIN_SHORT_TARGET: usize = 8;

/// A document's closeness to a target set, in `[0, 1]`.
pub trait SimilarityModel: Send + Sync {
    /// What the scores mean, recorded with the labels.
    fn describe(&self) -> String;
    fn score(&self, text: &str) -> f32;
}

/// Hashes of `text`'s terms, in order: the words fingerprints use
/// (`tokenlake_curate::words`, the one word splitter outside the datatrove-parity rules).
pub fn terms(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    tokenlake_curate::words::for_each_word(text, |w| out.push(xxh3_64(w.as_bytes())));
    out
}

/// Unigram and bigram features of a term sequence with their counts.
fn features(terms: &[u64]) -> HashMap<u64, u32> {
    let mut counts = HashMap::with_capacity(terms.len() * 2);
    for &t in terms {
        *counts.entry(t).or_insert(0) += 1;
    }
    for w in terms.windows(2) {
        // Distinct from any unigram hash by construction of the mix.
        let bigram = w[0].rotate_left(17) ^ w[1].wrapping_mul(0x9E37_79B9_7F4A_7C15);
        *counts.entry(bigram).or_insert(0) += 1;
    }
    counts
}

/// Sublinear term frequency, as in scikit-learn's `sublinear_tf`.
fn tf(count: u32) -> f32 {
    1.0 + (count as f32).ln()
}

/// TF-IDF cosine to the nearest target.
///
/// Exact for every target that shares a feature rarer than [`TfIdfSimilarity::CANDIDATE_DF`]
/// with the document; targets that share only features most targets have (function words)
/// are not candidates, which keeps a document's cost proportional to its rare features
/// rather than to the size of the target set. Such targets score low anyway, as those
/// features carry the lowest IDF.
pub struct TfIdfSimilarity {
    /// Target count.
    n: usize,
    /// Feature → IDF, for features some target has.
    idf: HashMap<u64, f32>,
    /// IDF of a feature no target has.
    unseen_idf: f32,
    /// Each target's unit vector, as feature → weight.
    targets: Vec<HashMap<u64, f32>>,
    /// Feature → targets with it, for features rare enough to select candidates.
    postings: HashMap<u64, Vec<u32>>,
}

impl TfIdfSimilarity {
    /// Features in more than this share of the targets (and more than 64 of them) do not
    /// select candidates.
    pub const CANDIDATE_DF: f64 = 0.05;

    pub fn new(targets: &[String]) -> TfIdfSimilarity {
        let n = targets.len();
        let target_features: Vec<HashMap<u64, u32>> =
            targets.iter().map(|t| features(&terms(t))).collect();
        let mut df: HashMap<u64, u32> = HashMap::new();
        for f in &target_features {
            for &k in f.keys() {
                *df.entry(k).or_insert(0) += 1;
            }
        }
        // scikit-learn's smoothed IDF: ln((1 + n) / (1 + df)) + 1.
        let idf_of = |df: u32| ((1.0 + n as f32) / (1.0 + df as f32)).ln() + 1.0;
        let idf: HashMap<u64, f32> = df.iter().map(|(&k, &d)| (k, idf_of(d))).collect();
        let cap = ((n as f64 * Self::CANDIDATE_DF) as u32).max(64);
        let mut postings: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut vectors = Vec::with_capacity(n);
        for (i, f) in target_features.into_iter().enumerate() {
            let mut v: HashMap<u64, f32> = f.iter().map(|(&k, &c)| (k, tf(c) * idf[&k])).collect();
            normalise(&mut v);
            for &k in v.keys() {
                if df[&k] <= cap {
                    postings.entry(k).or_default().push(i as u32);
                }
            }
            vectors.push(v);
        }
        TfIdfSimilarity {
            n,
            idf,
            unseen_idf: idf_of(0),
            targets: vectors,
            postings,
        }
    }

    /// The document's unit TF-IDF vector.
    fn vector(&self, text: &str) -> HashMap<u64, f32> {
        let mut v: HashMap<u64, f32> = features(&terms(text))
            .into_iter()
            .map(|(k, c)| {
                (
                    k,
                    tf(c) * self.idf.get(&k).copied().unwrap_or(self.unseen_idf),
                )
            })
            .collect();
        normalise(&mut v);
        v
    }
}

fn normalise(v: &mut HashMap<u64, f32>) {
    let norm = v.values().map(|w| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.values_mut().for_each(|w| *w /= norm);
    }
}

impl SimilarityModel for TfIdfSimilarity {
    fn describe(&self) -> String {
        format!(
            "max cosine over {} targets of TF-IDF vectors (word unigrams and bigrams, Han characters as words, IDF over the targets)",
            self.n
        )
    }

    fn score(&self, text: &str) -> f32 {
        let doc = self.vector(text);
        let mut candidates: HashSet<u32> = HashSet::new();
        for k in doc.keys() {
            if let Some(ts) = self.postings.get(k) {
                candidates.extend(ts);
            }
        }
        candidates
            .into_iter()
            .map(|t| {
                let target = &self.targets[t as usize];
                // Iterate the smaller vector (targets are usually short questions).
                let (small, large) = if target.len() <= doc.len() {
                    (target, &doc)
                } else {
                    (&doc, target)
                };
                small
                    .iter()
                    .filter_map(|(k, w)| large.get(k).map(|x| w * x))
                    .sum::<f32>()
            })
            .fold(0.0f32, f32::max)
            .clamp(0.0, 1.0)
    }
}

/// Distinct n-grams of the targets, to count a document's shared ones.
pub struct NgramOverlap {
    grams: HashSet<u64>,
    /// Gram lengths present: [`CONTAMINATION_N`], and those of shorter whole targets.
    lengths: Vec<usize>,
}

impl NgramOverlap {
    pub fn new(targets: &[String]) -> NgramOverlap {
        let mut grams = HashSet::new();
        let mut lengths = HashSet::new();
        for t in targets {
            let terms = terms(t);
            let n = if terms.len() >= CONTAMINATION_N {
                CONTAMINATION_N
            } else if terms.len() >= MIN_SHORT_TARGET {
                terms.len()
            } else {
                continue;
            };
            lengths.insert(n);
            grams.extend(rolling_hashes(&terms, n));
        }
        let mut lengths: Vec<usize> = lengths.into_iter().collect();
        lengths.sort_unstable();
        NgramOverlap { grams, lengths }
    }

    /// Targets too short to test ([`MIN_SHORT_TARGET`] terms) add nothing; this says whether
    /// any target could be tested at all.
    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// How many distinct n-grams of `text` some target has.
    pub fn count(&self, text: &str) -> u32 {
        let terms = terms(text);
        let mut seen = HashSet::new();
        for &n in &self.lengths {
            for h in rolling_hashes(&terms, n) {
                if self.grams.contains(&h) {
                    seen.insert((n, h));
                }
            }
        }
        seen.len() as u32
    }
}

/// Polynomial hashes (mod 2^64, odd base) of every window of `n` terms.
fn rolling_hashes(terms: &[u64], n: usize) -> impl Iterator<Item = u64> + '_ {
    const BASE: u64 = 0x100_0000_01B3;
    let top = (1..n).fold(1u64, |p, _| p.wrapping_mul(BASE));
    let mut h = 0u64;
    terms.iter().enumerate().filter_map(move |(i, &t)| {
        if i >= n {
            h = h.wrapping_sub(terms[i - n].wrapping_mul(top));
        }
        h = h.wrapping_mul(BASE).wrapping_add(t);
        (i + 1 >= n).then_some(h)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<String> {
        [
            "What is the boiling point of water at sea level in degrees Celsius, and why does it drop on a mountain?",
            "Which planet in the solar system has the largest number of confirmed moons as of this year?",
            "下列哪一个选项正确描述了光合作用在植物细胞中的主要场所和产物？",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn terms_ignore_case_punctuation_and_split_han_characters() {
        assert_eq!(terms("Hello, WORLD!"), terms("hello world"));
        assert_eq!(terms("光合作用").len(), 4);
        assert_eq!(terms("abc光合def").len(), 4);
    }

    #[test]
    fn a_copy_scores_one_and_an_unrelated_text_near_zero() {
        let model = TfIdfSimilarity::new(&targets());
        let copy = model.score(&targets()[1].to_uppercase());
        assert!((copy - 1.0).abs() < 1e-4, "{copy}");
        let unrelated = model.score("fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); }");
        assert!(unrelated < 0.05, "{unrelated}");
        // A paragraph around the question is closer than one about something else.
        let around = model.score(&format!(
            "Physics homework, chapter two. {} Show your reasoning.",
            targets()[0]
        ));
        let other = model
            .score("The committee met on Tuesday to discuss the budget for the new library wing.");
        assert!(around > 0.5 && other < around / 4.0, "{around} {other}");
    }

    #[test]
    fn thirteen_gram_overlap_counts_shared_windows_and_short_targets_whole() {
        let overlap = NgramOverlap::new(&targets());
        let leaked = format!(
            "Some preamble text here. {} And an answer follows.",
            targets()[0].replace(',', " ;")
        );
        // The first target has 21 terms: 9 windows of 13, all inside the leaked text.
        assert_eq!(overlap.count(&leaked), 9);
        assert_eq!(overlap.count("boiling point of water"), 0);
        // The Chinese target is 30 characters (terms), so it is tested by 13-character windows.
        assert!(overlap.count(&format!("题目：{}答案：叶绿体", targets()[2])) >= 13);
        // A 10-term target counts whole; 7 terms are too few to test.
        let short = NgramOverlap::new(&["one two three four five six seven eight nine ten".into()]);
        assert_eq!(
            short.count("zero one two three four five six seven eight nine ten eleven"),
            1
        );
        assert!(NgramOverlap::new(&["too short to test".into()]).is_empty());
    }

    #[test]
    fn rolling_hashes_equal_hashes_of_each_window() {
        let t: Vec<u64> = (1..=20).map(|i| i * 7919).collect();
        let rolled: Vec<u64> = rolling_hashes(&t, 13).collect();
        assert_eq!(rolled.len(), 8);
        for (i, h) in rolled.iter().enumerate() {
            assert_eq!(Some(*h), rolling_hashes(&t[i..i + 13], 13).next());
        }
    }
}
