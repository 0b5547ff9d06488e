//! N-gram language models for automatic scoring (Ziya2's AS stage, CCNet's perplexity):
//! back-off models in the ARPA format KenLM reads and writes, a trainer (interpolated modified
//! Kneser-Ney, as KenLM's `lmplz`), and CCNet's document perplexity
//! 10^(−Σ log10 P / Σ (words + 1)), summed over the document's lines, each line a sentence
//! ending in `</s>`.
//!
//! Words are [`crate::words`]' words (letters and digits lower-cased, every CJK character a
//! word), so a model trained here and the documents it scores split text alike. A model
//! trained elsewhere (CCNet's Wikipedia models use SentencePiece pieces) loads and scores, but
//! its perplexities are only comparable with each other when its words are split the same way.

use std::collections::HashMap;
use std::io::BufRead;

use crate::words::for_each_word;

mod train;

pub use train::Trainer;

pub const BOS: &str = "<s>";
pub const EOS: &str = "</s>";
pub const UNK: &str = "<unk>";
/// log10 probability of `<s>`, which is never predicted (KenLM's convention).
const NEVER: f32 = -99.0;
/// log10 probability of a word a model without `<unk>` has not seen.
const UNKNOWN_FLOOR: f32 = -7.0;

#[derive(Debug, thiserror::Error)]
pub enum LmError {
    #[error("{path}: line {line}: {reason}")]
    Arpa {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("n-gram order {0} is not supported: train orders 2 to 6")]
    Order(usize),
    #[error("no training text: the reference corpus has no words")]
    Empty,
}

/// A back-off n-gram model.
#[derive(Debug, Clone)]
pub struct NgramModel {
    order: usize,
    vocab: HashMap<String, u32>,
    unk: Option<u32>,
    bos: u32,
    eos: u32,
    /// `tables[n - 1]`: n-gram key → (log10 probability, log10 back-off).
    tables: Vec<HashMap<u64, (f32, f32)>>,
}

/// Hash of a sequence of word ids (collisions are as likely as in a 64-bit hash).
fn key(ids: &[u32]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64 ^ ids.len() as u64;
    for &id in ids {
        h = (h ^ u64::from(id).wrapping_add(1)).wrapping_mul(0x0100_0000_01B3_u64 | 1 << 40);
        h ^= h >> 29;
    }
    h
}

impl NgramModel {
    pub fn order(&self) -> usize {
        self.order
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Number of n-grams of each order, lowest first.
    pub fn counts(&self) -> Vec<usize> {
        self.tables.iter().map(HashMap::len).collect()
    }

    fn id(&self, word: &str) -> Option<u32> {
        self.vocab.get(word).copied().or(self.unk)
    }

    /// log10 P(word | context), context most recent last.
    fn score(&self, context: &[Option<u32>], word: Option<u32>) -> f32 {
        let Some(word) = word else {
            return UNKNOWN_FLOOR;
        };
        let mut ids: Vec<u32> = Vec::with_capacity(self.order);
        let mut backoff = 0.0f32;
        let usable = context.len().min(self.order - 1);
        let context = &context[context.len() - usable..];
        // Only the most recent known words form a usable history.
        let known = context.iter().rev().take_while(|c| c.is_some()).count();
        let context: Vec<u32> = context[context.len() - known..]
            .iter()
            .map(|c| c.unwrap_or(0))
            .collect();
        for n in (1..=context.len() + 1).rev() {
            let history = &context[context.len() + 1 - n..];
            ids.clear();
            ids.extend_from_slice(history);
            ids.push(word);
            if let Some(&(p, _)) = self.tables[n - 1].get(&key(&ids)) {
                return backoff + p;
            }
            if n > 1
                && let Some(&(_, b)) = self.tables[n - 2].get(&key(history))
            {
                backoff += b;
            }
        }
        backoff + UNKNOWN_FLOOR
    }

    /// log10 probability of one sentence (its words, then `</s>`), and its word count.
    pub fn sentence_log10(&self, words: &[&str]) -> (f64, usize) {
        let mut context: Vec<Option<u32>> = vec![Some(self.bos)];
        let mut total = 0.0f64;
        for w in words {
            let id = self.id(w);
            total += f64::from(self.score(&context, id));
            context.push(id);
            if context.len() >= self.order {
                context.remove(0);
            }
        }
        total += f64::from(self.score(&context, Some(self.eos)));
        (total, words.len())
    }

    /// CCNet's perplexity of a document: each non-empty line a sentence. None for a text
    /// without words.
    pub fn perplexity(&self, text: &str) -> Option<f64> {
        let (mut log10, mut tokens) = (0.0f64, 0usize);
        let mut words: Vec<String> = Vec::new();
        for line in text.lines() {
            words.clear();
            for_each_word(line, |w| words.push(w.to_string()));
            if words.is_empty() {
                continue;
            }
            let refs: Vec<&str> = words.iter().map(String::as_str).collect();
            let (l, n) = self.sentence_log10(&refs);
            log10 += l;
            tokens += n + 1;
        }
        (tokens > 0).then(|| 10f64.powf(-log10 / tokens as f64))
    }

    /// Reads an ARPA file (KenLM's and SRILM's text format).
    // Kept as one function: the ARPA file's sections in file order, each checked where it is read
    // so that errors name their line.
    pub fn read_arpa(reader: impl BufRead, path: &str) -> Result<NgramModel, LmError> {
        let bad = |line: usize, reason: String| LmError::Arpa {
            path: path.to_string(),
            line,
            reason,
        };
        let mut declared: Vec<usize> = Vec::new();
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut tables: Vec<HashMap<u64, (f32, f32)>> = Vec::new();
        let mut section: Option<usize> = None; // order being read; 0 = \data\
        let mut ended = false;
        let mut ids: Vec<u32> = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(|source| LmError::Io {
                path: path.to_string(),
                source,
            })?;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line == "\\data\\" {
                section = Some(0);
                continue;
            }
            if line == "\\end\\" {
                ended = true;
                break;
            }
            if let Some(order) = line
                .strip_prefix('\\')
                .and_then(|l| l.strip_suffix("-grams:"))
            {
                let order: usize = order
                    .parse()
                    .map_err(|_| bad(n, format!("bad section header {line:?}")))?;
                if order == 0 || order > declared.len() {
                    return Err(bad(
                        n,
                        format!("section {line:?} is not declared in \\data\\"),
                    ));
                }
                section = Some(order);
                continue;
            }
            match section {
                None => {} // text before \data\ is a comment
                Some(0) => {
                    let count = line
                        .strip_prefix("ngram ")
                        .and_then(|l| l.split_once('='))
                        .and_then(|(o, c)| {
                            Some((
                                o.trim().parse::<usize>().ok()?,
                                c.trim().parse::<usize>().ok()?,
                            ))
                        });
                    let Some((order, count)) = count else {
                        return Err(bad(n, format!("expected `ngram N=COUNT`, found {line:?}")));
                    };
                    if order != declared.len() + 1 {
                        return Err(bad(
                            n,
                            format!("ngram orders must be declared in order; found {order}"),
                        ));
                    }
                    declared.push(count);
                    tables.push(HashMap::with_capacity(count));
                }
                Some(order) => {
                    let mut fields = line.split_whitespace();
                    let prob: f32 =
                        fields.next().and_then(|p| p.parse().ok()).ok_or_else(|| {
                            bad(n, format!("expected a log10 probability, found {line:?}"))
                        })?;
                    let words: Vec<&str> = fields.by_ref().take(order).collect();
                    if words.len() != order {
                        return Err(bad(
                            n,
                            format!("a {order}-gram needs {order} words: {line:?}"),
                        ));
                    }
                    let backoff: f32 = match fields.next() {
                        Some(b) => b
                            .parse()
                            .map_err(|_| bad(n, format!("bad back-off weight {b:?}")))?,
                        None => 0.0,
                    };
                    ids.clear();
                    for w in words {
                        let id = if order == 1 {
                            let next = vocab.len() as u32;
                            *vocab.entry(w.to_string()).or_insert(next)
                        } else {
                            *vocab
                                .get(w)
                                .ok_or_else(|| bad(n, format!("word {w:?} is not a unigram")))?
                        };
                        ids.push(id);
                    }
                    tables[order - 1].insert(key(&ids), (prob, backoff));
                }
            }
        }
        if !ended {
            return Err(bad(
                0,
                "no \\end\\ line: the file is truncated or not ARPA".into(),
            ));
        }
        if declared.is_empty() {
            return Err(bad(0, "no \\data\\ section".into()));
        }
        for (i, (table, count)) in tables.iter().zip(&declared).enumerate() {
            if table.len() != *count {
                return Err(bad(
                    0,
                    format!(
                        "\\data\\ declares {count} {}-grams but {} were read",
                        i + 1,
                        table.len()
                    ),
                ));
            }
        }
        let (Some(&bos), Some(&eos)) = (vocab.get(BOS), vocab.get(EOS)) else {
            return Err(bad(0, "the model has no <s> or </s> unigram".into()));
        };
        Ok(NgramModel {
            order: declared.len(),
            unk: vocab.get(UNK).copied(),
            vocab,
            bos,
            eos,
            tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(text: &str, order: usize) -> NgramModel {
        let mut t = Trainer::new(order).unwrap();
        t.add_text(text);
        let mut arpa = Vec::new();
        t.write_arpa(&mut arpa).unwrap();
        NgramModel::read_arpa(&arpa[..], "trained.arpa").unwrap()
    }

    const CORPUS: &str = "the cat sat on the mat\nthe dog sat on the log\nthe cat saw the dog\n\
        a dog and a cat sat together\nthe mat was on the floor\nthe log was in the garden\n";

    #[test]
    fn probabilities_of_each_context_sum_to_one() {
        let m = train(CORPUS, 3);
        let words: Vec<&str> = m
            .vocab
            .keys()
            .map(String::as_str)
            .filter(|w| *w != BOS)
            .collect();
        for context in [
            vec![BOS],
            vec!["the"],
            vec![BOS, "the"],
            vec!["on", "the"],
            vec!["zebra"],
        ] {
            let ids: Vec<Option<u32>> = context.iter().map(|w| m.id(w)).collect();
            let total: f64 = words
                .iter()
                .map(|w| 10f64.powf(f64::from(m.score(&ids, m.id(w)))))
                .sum();
            assert!((total - 1.0).abs() < 1e-3, "context {context:?}: {total}");
        }
    }

    #[test]
    fn in_domain_text_has_lower_perplexity_and_training_is_deterministic() {
        let m = train(CORPUS, 3);
        let seen = m.perplexity("the cat sat on the mat").unwrap();
        let unseen = m
            .perplexity("quantum flux capacitors oscillate wildly")
            .unwrap();
        assert!(seen < unseen / 5.0, "{seen} vs {unseen}");
        assert_eq!(m.perplexity("  \n!!"), None);
        let arpa = |text: &str| {
            let mut t = Trainer::new(3).unwrap();
            t.add_text(text);
            let mut out = Vec::new();
            t.write_arpa(&mut out).unwrap();
            out
        };
        assert_eq!(arpa(CORPUS), arpa(CORPUS));
    }

    #[test]
    fn reads_a_hand_written_arpa_model_and_backs_off() {
        let arpa = "\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1.0\t<unk>\n-99\t<s>\t-0.5\n\
                    -0.5\t</s>\n-0.3\ta\t-0.2\n\n\\2-grams:\n-0.1\t<s> a\n-0.4\ta </s>\n\n\\end\\\n";
        let m = NgramModel::read_arpa(arpa.as_bytes(), "hand.arpa").unwrap();
        // <s> a </s>: -0.1 + -0.4
        assert!((m.sentence_log10(&["a"]).0 - (-0.5)).abs() < 1e-6);
        // <s> b: b is <unk>, backs off from <s> (-0.5) to P(<unk>) = -1.0; then </s> after
        // <unk>: no bigram, <unk> has no back-off weight, so P(</s>) = -0.5.
        assert!((m.sentence_log10(&["b"]).0 - (-2.0)).abs() < 1e-6);
        let broken = "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n\n\\end\\\n";
        let err = NgramModel::read_arpa(broken.as_bytes(), "broken.arpa").unwrap_err();
        assert!(
            err.to_string().contains("declares 2 1-grams but 1"),
            "{err}"
        );
        let err =
            NgramModel::read_arpa("\\data\\\nngram 1=1\n".as_bytes(), "cut.arpa").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
