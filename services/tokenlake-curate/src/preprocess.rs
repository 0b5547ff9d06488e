//! Preprocessing (Ziya2's DP stage): encoding repairs, Unicode NFKC, invisible and control
//! characters removed, and optionally emoji removal and Traditional→Simplified Chinese.
//!
//! `ingest --pipeline` preprocesses texts before they are tokenized, so the lake stores the
//! clean text. `tokenlake curate` over documents already in the lake does not rewrite them
//! (tokens would change); it labels each document with what preprocessing would repair, and
//! identifies its language on the preprocessed text.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use unicode_normalization::{UnicodeNormalization, is_nfkc_quick};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreprocessOptions {
    /// Undo mojibake (UTF-8 read as Latin-1 or Windows-1252) and drop U+FFFD replacement
    /// characters left by undecodable bytes.
    pub repair_encoding: bool,
    pub nfkc: bool,
    /// Zero-width and bidirectional controls, soft hyphens, byte-order marks and control
    /// characters other than tab, newline and carriage return.
    pub strip_invisible: bool,
    pub remove_emoji: bool,
    pub traditional_to_simplified: bool,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        PreprocessOptions {
            repair_encoding: true,
            nfkc: true,
            strip_invisible: true,
            remove_emoji: false,
            traditional_to_simplified: false,
        }
    }
}

/// A preprocessed text and what was done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed<'t> {
    pub text: Cow<'t, str>,
    /// Mojibake sequences repaired plus replacement characters dropped.
    pub encoding_repairs: u32,
    /// Whether preprocessing changed the text at all.
    pub changed: bool,
}

pub fn preprocess<'t>(text: &'t str, options: &PreprocessOptions) -> Preprocessed<'t> {
    let mut repairs = 0u32;
    let mut out: Cow<'t, str> = Cow::Borrowed(text);
    if options.repair_encoding {
        if let Some((fixed, n)) = repair_mojibake(&out) {
            out = Cow::Owned(fixed);
            repairs += n;
        }
        let replacements = out.matches('\u{FFFD}').count() as u32;
        if replacements > 0 {
            out = Cow::Owned(out.replace('\u{FFFD}', ""));
            repairs += replacements;
        }
    }
    if options.strip_invisible && out.chars().any(is_invisible) {
        out = Cow::Owned(out.chars().filter(|&c| !is_invisible(c)).collect());
    }
    if options.nfkc && is_nfkc_quick(out.chars()) != unicode_normalization::IsNormalized::Yes {
        let normal: String = out.nfkc().collect();
        if normal != *out {
            out = Cow::Owned(normal);
        }
    }
    if options.remove_emoji && out.chars().any(is_emoji) {
        out = Cow::Owned(out.chars().filter(|&c| !is_emoji(c)).collect());
    }
    if options.traditional_to_simplified
        && out.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c))
    {
        let simplified = crate::hanzi::to_simplified(&out);
        if simplified != *out {
            out = Cow::Owned(simplified);
        }
    }
    let changed = matches!(out, Cow::Owned(_));
    Preprocessed {
        text: out,
        encoding_repairs: repairs,
        changed,
    }
}

pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
        || (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

pub fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF   // mahjong tiles to pictographs extended-A: flags, skin tones
        | 0x2600..=0x27BF   // miscellaneous symbols, dingbats
        | 0x2B50 | 0x2B55 | 0x2B06 | 0x2B07 | 0x2B1B | 0x2B1C
        | 0xFE0F) // emoji presentation selector
}

/// The Windows-1252 byte a character stands for, when it is one of that code page's
/// characters (Latin-1 for 0xA0–0xFF, the cp1252 specials for 0x80–0x9F).
fn cp1252_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if (0x80..=0xFF).contains(&u) {
        return Some(u as u8);
    }
    const SPECIALS: [(char, u8); 27] = [
        ('€', 0x80),
        ('‚', 0x82),
        ('ƒ', 0x83),
        ('„', 0x84),
        ('…', 0x85),
        ('†', 0x86),
        ('‡', 0x87),
        ('ˆ', 0x88),
        ('‰', 0x89),
        ('Š', 0x8A),
        ('‹', 0x8B),
        ('Œ', 0x8C),
        ('Ž', 0x8E),
        ('‘', 0x91),
        ('’', 0x92),
        ('“', 0x93),
        ('”', 0x94),
        ('•', 0x95),
        ('–', 0x96),
        ('—', 0x97),
        ('˜', 0x98),
        ('™', 0x99),
        ('š', 0x9A),
        ('›', 0x9B),
        ('œ', 0x9C),
        ('ž', 0x9E),
        ('Ÿ', 0x9F),
    ];
    SPECIALS.iter().find(|(s, _)| *s == c).map(|(_, b)| *b)
}

/// Repairs UTF-8 that was decoded as Windows-1252 (`cafÃ©` → `café`, `â€™` → `’`): a lead
/// character (Â–ô) followed by continuation characters that, as cp1252 bytes, form one valid
/// multi-byte UTF-8 character. Returns the repaired text and the number of repairs, or None
/// when there is nothing to repair.
fn repair_mojibake(text: &str) -> Option<(String, u32)> {
    if text.is_ascii() || !text.chars().any(|c| matches!(c, 'Â'..='ô')) {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut repairs = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let lead = cp1252_byte(c).filter(|b| (0xC2..=0xF4).contains(b));
        if let Some(lead) = lead {
            let need = match lead {
                0xC2..=0xDF => 1,
                0xE0..=0xEF => 2,
                _ => 3,
            };
            let mut bytes = vec![lead];
            for k in 1..=need {
                match chars.get(i + k).and_then(|&n| cp1252_byte(n)) {
                    Some(b) if (0x80..=0xBF).contains(&b) => bytes.push(b),
                    _ => break,
                }
            }
            if bytes.len() == need + 1
                && let Ok(s) = std::str::from_utf8(&bytes)
            {
                out.push_str(s);
                repairs += 1;
                i += need + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    (repairs > 0).then_some((out, repairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_normalises_and_strips() {
        let p = preprocess(
            "cafÃ© donâ€™t\u{200B}ｆｕｌｌ\u{7}wi\u{FFFD}de",
            &PreprocessOptions::default(),
        );
        assert_eq!(p.text, "café don’tfullwide");
        assert_eq!(p.encoding_repairs, 3);
        assert!(p.changed);
        // Real Latin-1 text is left alone: "Â" followed by a space is not a UTF-8 sequence.
        let p = preprocess("Â la carte, naïve résumé", &PreprocessOptions::default());
        assert_eq!(p.text, "Â la carte, naïve résumé");
        assert!(!p.changed);
    }

    #[test]
    fn optional_emoji_removal_and_simplified_chinese() {
        let options = PreprocessOptions {
            remove_emoji: true,
            traditional_to_simplified: true,
            ..PreprocessOptions::default()
        };
        let p = preprocess("數據清洗 👍🏽 ok ✅", &options);
        assert_eq!(p.text, "数据清洗  ok ");
        let plain = preprocess("數據 👍", &PreprocessOptions::default());
        assert_eq!(plain.text, "數據 👍");
    }
}
