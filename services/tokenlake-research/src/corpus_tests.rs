//! Contamination and similarity on the shared corpus (`make_corpus.py`), which plants exact-ish
//! and near copies of its documents and says which in its truth file: with excerpts of the
//! copied originals as the target set, the originals and their planted copies must be the
//! documents flagged. `TOKENLAKE_CORPUS` names its `corpus.jsonl.gz` (the truth file beside it);
//! without it `tests/run.sh` skips the test, and run alone it fails saying what it needs.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Value;

use crate::similarity::{NgramOverlap, SimilarityModel, TfIdfSimilarity};

fn read_jsonl(path: &Path) -> Vec<Value> {
    let file = std::fs::File::open(path).unwrap();
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    reader
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

/// About 300 characters from the middle third of `text`: a "test question" taken from it.
fn excerpt(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let start = chars.len() / 3;
    chars[start..(start + 300).min(chars.len())]
        .iter()
        .collect()
}

/// Lowercased runs of letters and digits, and each Han character: the terms the contamination
/// check reads, as strings.
fn plain_terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        let han = matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF);
        if han || !c.is_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if han {
                out.push(c.to_string());
            }
        } else {
            word.extend(c.to_lowercase());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

mod needs_corpus {
    use super::*;

    #[test]
    #[ignore = "needs the shared corpus: TOKENLAKE_CORPUS (tests/run.sh)"]
    fn planted_copies_of_the_targets_are_flagged_in_the_shared_corpus() {
        let corpus = std::env::var_os("TOKENLAKE_CORPUS")
        .map(PathBuf::from)
        .expect("this test needs TOKENLAKE_CORPUS (tests/run.sh sets it where the shared corpus builder is found, and skips the test where it is not)");
        let docs = read_jsonl(&corpus);
        let truth = read_jsonl(&PathBuf::from(format!("{}.truth.jsonl", corpus.display())));
        let index: HashMap<&str, usize> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d["id"].as_str().unwrap(), i))
            .collect();
        // Copies per original, from the truth file.
        let mut copies: HashMap<usize, Vec<usize>> = HashMap::new();
        for t in &truth {
            if let Some(of) = t["dup_of"].as_str() {
                copies
                    .entry(index[of])
                    .or_default()
                    .push(index[t["id"].as_str().unwrap()]);
            }
        }
        // The first 40 originals long enough to excerpt are the target set.
        let mut originals: Vec<usize> = copies
            .keys()
            .copied()
            .filter(|&i| docs[i]["text"].as_str().unwrap().chars().count() >= 900)
            .collect();
        originals.sort_unstable();
        originals.truncate(40);
        let targets: Vec<String> = originals
            .iter()
            .map(|&i| excerpt(docs[i]["text"].as_str().unwrap()))
            .collect();
        let expected: BTreeSet<usize> = originals
            .iter()
            .flat_map(|&i| std::iter::once(i).chain(copies[&i].iter().copied()))
            .collect();

        let overlap = NgramOverlap::new(&targets);
        let model = TfIdfSimilarity::new(&targets);
        let scored: Vec<(u32, f32)> = docs
            .par_iter()
            .map(|d| {
                let text = d["text"].as_str().unwrap();
                (overlap.count(text), model.score(text))
            })
            .collect();
        let flagged: BTreeSet<usize> = (0..docs.len()).filter(|&i| scored[i].0 > 0).collect();
        let found = expected.intersection(&flagged).count();
        let recall = found as f64 / expected.len() as f64;
        let precision = found as f64 / flagged.len().max(1) as f64;
        // How well the similarity score alone ranks them: the chance that an original or copy
        // scores above another document (ROC AUC).
        let mut others: Vec<f32> = (0..docs.len())
            .filter(|i| !expected.contains(i))
            .map(|i| scored[i].1)
            .collect();
        others.sort_by(f32::total_cmp);
        let auc = expected
            .iter()
            .map(|&i| others.partition_point(|&o| o < scored[i].1) as f64 / others.len() as f64)
            .sum::<f64>()
            / expected.len() as f64;
        eprintln!(
            "{} targets; {} originals and copies, {found} flagged (recall {recall:.3}); {} flagged in \
         all ({precision:.3} of them planted; the rest are natural copies); similarity AUC {auc:.3}",
            targets.len(),
            expected.len(),
            flagged.len()
        );
        assert!(recall >= 0.95, "recall {recall:.3}");
        // Documents flagged beyond the planted copies must really share 13 terms in a row with a
        // target (the corpus has natural copies: the same header in every architecture's bindings,
        // translations quoting English): checked on strings, without the hashes.
        let target_grams: BTreeSet<Vec<String>> = targets
            .iter()
            .flat_map(|t| {
                plain_terms(t)
                    .windows(13)
                    .map(<[String]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect();
        for &i in flagged.difference(&expected) {
            let terms = plain_terms(docs[i]["text"].as_str().unwrap());
            assert!(
                terms.windows(13).any(|w| target_grams.contains(w)),
                "{} is flagged but shares no 13 terms with a target",
                docs[i]["id"]
            );
        }
        assert!(auc >= 0.95, "similarity AUC {auc:.3}");
    }
}
