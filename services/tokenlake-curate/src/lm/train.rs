//! The trainer: interpolated modified Kneser-Ney (KenLM's `lmplz`), written as ARPA.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use super::{BOS, EOS, LmError, NEVER, UNK};
use crate::words::for_each_word;

/// Trains an interpolated modified Kneser-Ney model of `order` from sentences and writes it
/// as ARPA. Collect sentences with [`Trainer::add_text`] (one sentence per non-empty line).
pub struct Trainer {
    order: usize,
    vocab: HashMap<String, u32>,
    words: Vec<String>,
    /// Raw counts of every order, `counts[n - 1]`.
    counts: Vec<HashMap<Vec<u32>, u64>>,
    sentences: u64,
}

impl Trainer {
    pub fn new(order: usize) -> Result<Trainer, LmError> {
        if !(2..=6).contains(&order) {
            return Err(LmError::Order(order));
        }
        let mut t = Trainer {
            order,
            vocab: HashMap::new(),
            words: Vec::new(),
            counts: vec![HashMap::new(); order],
            sentences: 0,
        };
        for w in [UNK, BOS, EOS] {
            t.intern(w);
        }
        Ok(t)
    }

    fn intern(&mut self, w: &str) -> u32 {
        if let Some(&id) = self.vocab.get(w) {
            return id;
        }
        let id = self.words.len() as u32;
        self.vocab.insert(w.to_string(), id);
        self.words.push(w.to_string());
        id
    }

    pub fn sentences(&self) -> u64 {
        self.sentences
    }

    /// Adds every non-empty line of `text` as a sentence.
    pub fn add_text(&mut self, text: &str) {
        let mut ids: Vec<u32> = Vec::new();
        for line in text.lines() {
            ids.clear();
            ids.push(1); // <s>
            let mut words = Vec::new();
            for_each_word(line, |w| words.push(w.to_string()));
            if words.is_empty() {
                continue;
            }
            for w in &words {
                let id = self.intern(w);
                ids.push(id);
            }
            ids.push(2); // </s>
            self.sentences += 1;
            for n in 1..=self.order {
                for gram in ids.windows(n) {
                    // <s> alone is counted once per sentence, as a context only.
                    *self.counts[n - 1].entry(gram.to_vec()).or_insert(0) += 1;
                }
            }
        }
    }

    /// Estimates the model and writes it as ARPA, n-grams sorted by their words so that the
    /// same text always gives the same file.
    // Kept as one function: modified Kneser-Ney in the order KenLM's lmplz computes it (counts,
    // discounts, interpolation, back-off), which reads best as one derivation.
    pub fn write_arpa(&self, out: &mut impl Write) -> Result<(), LmError> {
        if self.sentences == 0 {
            return Err(LmError::Empty);
        }
        let order = self.order;
        // Adjusted counts: the highest order keeps raw counts; a lower-order n-gram counts its
        // distinct left extensions (continuation counts), unless it starts with <s>, which has
        // none and keeps its raw count.
        let mut adjusted: Vec<HashMap<Vec<u32>, u64>> = vec![HashMap::new(); order];
        adjusted[order - 1] = self.counts[order - 1].clone();
        for n in (1..order).rev() {
            let mut a: HashMap<Vec<u32>, u64> = HashMap::new();
            for gram in self.counts[n].keys() {
                *a.entry(gram[1..].to_vec()).or_insert(0) += 1;
            }
            for (gram, &c) in &self.counts[n - 1] {
                if gram[0] == 1 {
                    a.insert(gram.clone(), c);
                }
            }
            adjusted[n - 1] = a;
        }
        // <s> is never predicted: it leaves the unigram distribution.
        adjusted[0].remove(&vec![1u32]);

        // Discounts per order from counts of counts (Chen & Goodman).
        let discounts: Vec<[f64; 3]> = adjusted
            .iter()
            .map(|a| {
                let mut t = [0f64; 5];
                for &c in a.values() {
                    if (1..=4).contains(&c) {
                        t[c as usize] += 1.0;
                    }
                }
                let y = t[1] / (t[1] + 2.0 * t[2]);
                let d = [
                    1.0 - 2.0 * y * t[2] / t[1],
                    2.0 - 3.0 * y * t[3] / t[2],
                    3.0 - 4.0 * y * t[4] / t[3],
                ];
                // Tiny corpora lack some counts of counts; fall back to the usual values.
                let fallback = [0.5, 1.0, 1.5];
                let mut out = [0.0; 3];
                for k in 0..3 {
                    out[k] = if d[k].is_finite() && d[k] > 0.0 && d[k] < (k + 1) as f64 {
                        d[k]
                    } else {
                        fallback[k]
                    };
                }
                out
            })
            .collect();
        let discount = |n: usize, c: u64| match c {
            0 => 0.0,
            1 => discounts[n - 1][0],
            2 => discounts[n - 1][1],
            _ => discounts[n - 1][2],
        };

        // Per context: total adjusted count and the discounted mass (the interpolation weight
        // numerator), for every order.
        let mut context_stats: Vec<HashMap<Vec<u32>, (f64, f64)>> = vec![HashMap::new(); order];
        for n in 1..=order {
            let stats = &mut context_stats[n - 1];
            for (gram, &c) in &adjusted[n - 1] {
                let e = stats.entry(gram[..n - 1].to_vec()).or_insert((0.0, 0.0));
                e.0 += c as f64;
                e.1 += discount(n, c);
            }
        }

        // Interpolated probabilities, lowest order first.
        let vocab_size = (self.words.len() - 1) as f64; // every word but <s>
        let mut probs: Vec<HashMap<Vec<u32>, f64>> = vec![HashMap::new(); order];
        {
            let (total, mass) = context_stats[0][&Vec::new()];
            let uniform = mass / total / vocab_size;
            for id in 0..self.words.len() as u32 {
                if id == 1 {
                    continue;
                }
                let c = adjusted[0].get(&vec![id]).copied().unwrap_or(0);
                let p = (c as f64 - discount(1, c)) / total + uniform;
                probs[0].insert(vec![id], p);
            }
        }
        for n in 2..=order {
            let mut p_n = HashMap::with_capacity(adjusted[n - 1].len());
            for (gram, &c) in &adjusted[n - 1] {
                let (total, mass) = context_stats[n - 1][&gram[..n - 1]];
                let lower = probs[n - 2][&gram[1..]];
                let p = (c as f64 - discount(n, c)) / total + mass / total * lower;
                p_n.insert(gram.clone(), p);
            }
            probs[n - 1] = p_n;
        }

        // Back-off weight of a context: the interpolation weight of what follows it.
        let backoff = |gram: &Vec<u32>| -> Option<f64> {
            let n = gram.len();
            if n >= order {
                return None;
            }
            Some(match context_stats[n].get(gram) {
                Some((total, mass)) => (mass / total).log10(),
                None => 0.0,
            })
        };
        let bos_gram: Vec<u32> = vec![1];
        let mut text = String::new();
        text.push_str("\\data\\\n");
        let mut sorted: Vec<Vec<(String, &Vec<u32>)>> = Vec::with_capacity(order);
        for n in 1..=order {
            let mut grams: Vec<(String, &Vec<u32>)> = probs[n - 1]
                .keys()
                .map(|g| {
                    let words: Vec<&str> = g
                        .iter()
                        .map(|&id| self.words[id as usize].as_str())
                        .collect();
                    (words.join(" "), g)
                })
                .collect();
            if n == 1 {
                grams.push((BOS.to_string(), &bos_gram));
            }
            grams.sort();
            let _ = writeln!(text, "ngram {n}={}", grams.len());
            sorted.push(grams);
        }
        for (n, grams) in sorted.iter().enumerate() {
            let _ = write!(text, "\n\\{}-grams:\n", n + 1);
            for (words, gram) in grams {
                let p = if *gram == &bos_gram {
                    f64::from(NEVER)
                } else {
                    probs[n][*gram].log10()
                };
                match backoff(gram) {
                    Some(b) => {
                        let _ = writeln!(text, "{p:.6}\t{words}\t{b:.6}");
                    }
                    None => {
                        let _ = writeln!(text, "{p:.6}\t{words}");
                    }
                }
            }
        }
        text.push_str("\n\\end\\\n");
        out.write_all(text.as_bytes())
            .map_err(|source| LmError::Io {
                path: "<output>".into(),
                source,
            })
    }
}
