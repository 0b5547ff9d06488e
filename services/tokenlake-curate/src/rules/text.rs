//! Python's and datatrove's text handling, as the published rule sets measure with it: line
//! splitting, stripping, duplicate elements, runs of newlines, punctuation classes.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::punctuation::{PUNCTUATION, TERMINAL_PUNCTUATION};
use crate::rule_words::is_space;

use super::document::HashBuild;

pub(super) fn punctuation_set() -> &'static HashSet<char> {
    static SET: OnceLock<HashSet<char>> = OnceLock::new();
    SET.get_or_init(|| {
        PUNCTUATION
            .chars()
            .chain(TERMINAL_PUNCTUATION.chars())
            .collect()
    })
}

/// The ASCII part of [`punctuation_set`], for the common case without a set lookup.
pub(super) const PUNCTUATION_ASCII: [bool; 256] = {
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

pub(super) fn terminal_set() -> &'static HashSet<char> {
    static SET: OnceLock<HashSet<char>> = OnceLock::new();
    SET.get_or_init(|| TERMINAL_PUNCTUATION.chars().collect())
}

/// Python's `str.splitlines`: every line break Python knows, `\r\n` as one, no trailing empty
/// line.
pub(super) fn python_splitlines(text: &str) -> Vec<&str> {
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
pub(super) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// datatrove's `find_duplicates`: elements that repeat an earlier one, and their characters.
pub(super) fn find_duplicates<'a>(elements: impl Iterator<Item = &'a str>) -> (usize, usize) {
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
pub(super) fn is_punct_char(c: char) -> bool {
    (c.is_ascii_punctuation() && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~'))
        || matches!(c as u32,
            0x00A1 | 0x00A7 | 0x00AB | 0x00B6 | 0x00B7 | 0x00BB | 0x00BF
            | 0x2010..=0x2027 | 0x2030..=0x205E | 0x3001..=0x3003 | 0x3008..=0x3011
            | 0x3014..=0x301F | 0xFF01..=0xFF03 | 0xFF05..=0xFF0A | 0xFF0C..=0xFF0F
            | 0xFF1A | 0xFF1B | 0xFF1F | 0xFF20 | 0xFF3B..=0xFF3D | 0xFF3F | 0xFF5B | 0xFF5D
            | 0xFF5F..=0xFF65)
}

/// Splits at runs of at least `min` newlines (`re.split(r"\n{min,}", text)`).
pub(super) fn split_runs(text: &str, min: usize) -> Vec<&str> {
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
