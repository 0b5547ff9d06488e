//! FineWeb (datatrove's `FineWebQualityFilter`): lines ending in punctuation, short lines,
//! characters in repeated lines, and newlines per word (its list ratio).

use super::document::Document;
use super::text::{find_duplicates, py_strip, terminal_set};
use super::{RuleSettings, Sig, Signals, Values, bit, flag};

/// Measures the document; returns whether it is blank (no line with anything but spaces).
pub(super) fn measure(doc: &Document, values: &mut Values) -> bool {
    let text = doc.text;
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
        values.set(Sig::FwLinePunct, per(punct_lines));
        values.set(
            Sig::FwShortLines,
            per(fw_lines.iter().filter(|l| l.chars().count() <= 30).count()),
        );
        let (_, dup_chars) = find_duplicates(fw_lines.iter().copied());
        let non_newline = doc.n_chars - text.matches('\n').count();
        values.set(
            Sig::FwDupLineChars,
            if non_newline == 0 {
                0.0
            } else {
                dup_chars as f64 / non_newline as f64
            },
        );
        values.set(
            Sig::FwNewlineWords,
            doc.per_word(text.matches('\n').count()),
        );
    }
    blank
}

pub(super) fn flags(s: &Signals, t: &RuleSettings) -> u64 {
    if s.blank {
        return const { bit("fineweb_empty") };
    }
    flag(
        s.get(Sig::FwLinePunct) < t.fineweb_min_line_punct,
        const { bit("fineweb_line_punct") },
    ) | flag(
        s.get(Sig::FwShortLines) > t.fineweb_max_short_lines,
        const { bit("fineweb_short_lines") },
    ) | flag(
        s.get(Sig::FwDupLineChars) > t.fineweb_max_dup_line_chars,
        const { bit("fineweb_dup_line_chars") },
    ) | flag(
        s.get(Sig::FwNewlineWords) > t.fineweb_max_newline_words,
        const { bit("fineweb_list_ratio") },
    )
}
