//! C4 (datatrove's `C4QualityFilter`), line by line: lines kept for their terminal
//! punctuation and length, `lorem ipsum`, curly brackets, javascript and policy lines, and the
//! sentences in what is kept.

use crate::rule_words::{for_each_rule_word, is_space};

use super::document::Document;
use super::text::{is_punct_char, py_strip, terminal_set};
use super::{RuleSettings, Sig, Signals, Values, bit, flag};

const POLICY_PHRASES: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

pub(super) fn measure(doc: &Document, values: &mut Values) {
    let (mut sentences_kept, mut javascript, mut policy) = (0usize, 0usize, 0usize);
    let (mut lorem, mut curly) = (false, false);
    for line in &doc.lines {
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
    values.set(Sig::C4LoremIpsum, f64::from(u8::from(lorem)));
    values.set(Sig::C4CurlyBracket, f64::from(u8::from(curly)));
    values.set(Sig::C4Sentences, sentences_kept as f64);
    values.set(Sig::C4JavascriptLines, javascript as f64);
    values.set(Sig::C4PolicyLines, policy as f64);
}

pub(super) fn flags(s: &Signals, t: &RuleSettings) -> u64 {
    flag(
        s.get(Sig::C4LoremIpsum) > 0.0,
        const { bit("c4_lorem_ipsum") },
    ) | flag(
        s.get(Sig::C4CurlyBracket) > 0.0,
        const { bit("c4_curly_bracket") },
    ) | flag(
        s.get(Sig::C4Sentences) < t.c4_min_sentences,
        const { bit("c4_too_few_sentences") },
    )
}

/// Sentences in `line` as spaCy's sentencizer counts them: a new sentence starts at the first
/// word that is not punctuation after a sentence-final mark.
pub(super) fn sentences(line: &str) -> usize {
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
pub(super) fn remove_citations(line: &str) -> std::borrow::Cow<'_, str> {
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
