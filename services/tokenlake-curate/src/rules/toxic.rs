//! Toxic word lists, Ziya2's toxic class.

use std::collections::HashSet;

use super::document::HashBuild;

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
        t.add_list(include_str!("../../data/toxic_words.txt"));
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

    pub(super) fn contains_word(&self, w: &str) -> bool {
        if self.words.is_empty() || w.len() > 32 || w.len() < self.shortest {
            return false;
        }
        self.words.contains(w)
            || ((!w.is_ascii() || w.bytes().any(|b| b.is_ascii_uppercase()))
                && self.words.contains(&w.to_lowercase()))
    }

    pub(super) fn cjk_matches(&self, text: &str) -> usize {
        if self.cjk_terms.is_empty() || text.is_ascii() {
            return 0;
        }
        self.cjk_terms
            .iter()
            .map(|t| text.matches(t.as_str()).count())
            .sum()
    }
}
