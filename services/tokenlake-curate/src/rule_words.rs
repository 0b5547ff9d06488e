//! Words as the published rule sets count them. datatrove splits English with spaCy's blank
//! English tokenizer, so the rules' word counts, mean word lengths and n-grams depend on how
//! punctuation is split from words. This follows spaCy's rules for English closely enough to
//! agree with datatrove's keep/drop decisions (`tests/e2e/rules.rs` measures by how much):
//!
//! - text splits at whitespace, and whitespace is never a word;
//! - prefixes come off the front one at a time: quotes, brackets, punctuation, currency
//!   signs, `§ % = — – +` (a `+` only before a non-digit), and runs of dots or `…`;
//! - suffixes come off the back: the same punctuation and quotes, `'s`, contractions (`n't`,
//!   `'ll`, `'re`, `'ve`, `'m`, `'d`), `—`, `–`, `+` after a digit, and a `.` after a digit,
//!   a lower-case letter, punctuation or two upper-case letters (`etc.` splits, `U.S.` not);
//! - infixes split what remains: runs of dots or `…`, hyphens and `/ : < > =` between a
//!   letter or digit and a letter, `,` between letters, `+ - * ^` between digits, and a `.`
//!   between a lower-case and an upper-case letter;
//! - a piece that looks like a URL (a scheme, or `www.`) is one word.
//!
//! - symbols (box drawing, arrows, dingbats, emoji: Unicode's "other symbols") split off
//!   wherever they are.
//!
//! What is left out: spaCy's table of special cases (abbreviations such as `Mr.`, emoticons),
//! which is rare in prose.

/// Splits `text` into words, calling `each` with every one in order.
pub fn for_each_rule_word<'t>(text: &'t str, mut each: impl FnMut(&'t str)) {
    for piece in text.split(is_space).filter(|p| !p.is_empty()) {
        split_piece(piece, &mut each);
    }
}

pub fn rule_words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for_each_rule_word(text, |w| out.push(w));
    out
}

/// Python's `str.isspace` for the characters text holds in practice; spaCy splits on the same.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}')
}

fn split_piece<'t>(piece: &'t str, each: &mut impl FnMut(&'t str)) {
    if looks_like_url(piece) {
        // spaCy's URL match keeps the URL whole after trailing punctuation comes off.
        let core = piece.trim_end_matches(['.', ',', ')', ';', ':', '"', '\'', '!', '?']);
        if !core.is_empty() {
            each(core);
            let rest = &piece[core.len()..];
            for (i, c) in rest.char_indices() {
                each(&rest[i..i + c.len_utf8()]);
            }
            return;
        }
    }
    let mut rest = piece;
    let mut suffixes: Vec<&'t str> = Vec::new();
    loop {
        if rest.is_empty() {
            break;
        }
        if let Some(n) = prefix_len(rest) {
            each(&rest[..n]);
            rest = &rest[n..];
            continue;
        }
        if let Some(n) = suffix_len(rest) {
            suffixes.push(&rest[rest.len() - n..]);
            rest = &rest[..rest.len() - n];
            continue;
        }
        break;
    }
    if !rest.is_empty() {
        split_infixes(rest, each);
    }
    for s in suffixes.into_iter().rev() {
        each(s);
    }
}

fn looks_like_url(piece: &str) -> bool {
    let lower = piece.trim_start_matches(['(', '<', '"', '\'', '[']);
    (lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("www."))
        && lower.len() > 8
}

/// spaCy's LIST_PUNCT, LIST_QUOTES and the sharp/icon-free part of its prefix list.
fn is_split_punct(c: char) -> bool {
    matches!(
        c,
        ',' | ':'
            | ';'
            | '!'
            | '?'
            | '¿'
            | '؟'
            | '¡'
            | '('
            | ')'
            | '['
            | ']'
            | '{'
            | '}'
            | '<'
            | '>'
            | '_'
            | '#'
            | '*'
            | '&'
            | '。'
            | '？'
            | '！'
            | '，'
            | '、'
            | '；'
            | '：'
            | '～'
            | '·'
            | '।'
            | '،'
            | '۔'
            | '؛'
            | '٪'
    ) || is_quote(c)
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '\'' | '"'
            | '”'
            | '“'
            | '`'
            | '‘'
            | '´'
            | '’'
            | '‚'
            | '„'
            | '»'
            | '«'
            | '「'
            | '」'
            | '『'
            | '』'
            | '（'
            | '）'
            | '〔'
            | '〕'
            | '【'
            | '】'
            | '《'
            | '》'
            | '〈'
            | '〉'
            | '⟦'
            | '⟧'
    )
}

/// spaCy's LIST_ICONS: Unicode "other symbols" (So) but the degree sign, which split off
/// wherever they are. The blocks that hold them: box drawing, block elements, geometric
/// shapes, arrows, technical and miscellaneous symbols, dingbats, braille, enclosed
/// alphanumerics, emoji.
fn is_icon(c: char) -> bool {
    // Most characters are below the first symbol: one comparison for them.
    if (c as u32) < 0xA6 {
        return false;
    }
    matches!(c as u32,
        0x00A6 | 0x00A9 | 0x00AE | 0x0482 | 0x058D | 0x058E | 0x060E | 0x060F
        | 0x2100..=0x2101 | 0x2103..=0x2106 | 0x2108 | 0x2109 | 0x2114 | 0x2116 | 0x2117
        | 0x211E..=0x2123 | 0x2125 | 0x2127 | 0x2129 | 0x212E | 0x213A | 0x213B | 0x214A
        | 0x214C | 0x214D | 0x214F | 0x218A | 0x218B
        | 0x2195..=0x2199 | 0x219C..=0x219F | 0x21A1 | 0x21A2 | 0x21A4 | 0x21A5
        | 0x21A7..=0x21AD | 0x21AF..=0x21CD | 0x21D0 | 0x21D1 | 0x21D3 | 0x21D5..=0x21F3
        | 0x2300..=0x2307 | 0x230C..=0x231F | 0x2322..=0x2328 | 0x232B..=0x237B
        | 0x237D..=0x239A | 0x23B4..=0x23DB | 0x23E2..=0x23FF
        | 0x2400..=0x2426 | 0x2440..=0x244A | 0x249C..=0x24E9
        | 0x2500..=0x25B6 | 0x25B8..=0x25C0 | 0x25C2..=0x25F7 | 0x2600..=0x266E
        | 0x2670..=0x2767 | 0x2794..=0x27BF | 0x2800..=0x28FF | 0x2B00..=0x2B2F
        | 0x2B45 | 0x2B46 | 0x2B4D..=0x2B73 | 0x2B76..=0x2B95 | 0x2B97..=0x2BFF
        | 0x2CE5..=0x2CEA | 0x2E80..=0x2E99 | 0x2E9B..=0x2EF3 | 0x2F00..=0x2FD5
        | 0x2FF0..=0x2FFB | 0x3004 | 0x3012 | 0x3013 | 0x3020 | 0x3036 | 0x3037
        | 0x303E | 0x303F | 0x3190 | 0x3191 | 0x3196..=0x319F | 0x31C0..=0x31E3
        | 0x3200..=0x321E | 0x322A..=0x3247 | 0x3250 | 0x3260..=0x327F | 0x328A..=0x32B0
        | 0x32C0..=0x33FF | 0x4DC0..=0x4DFF | 0xFFE4 | 0xFFE8 | 0xFFED | 0xFFEE
        | 0xFFFC | 0xFFFD | 0x1F000..=0x1F0FF | 0x1F10D..=0x1F1AD | 0x1F1E6..=0x1F202
        | 0x1F210..=0x1F23B | 0x1F240..=0x1F248 | 0x1F250 | 0x1F251 | 0x1F260..=0x1F265
        | 0x1F300..=0x1F3FA | 0x1F400..=0x1F6D7 | 0x1F6DC..=0x1F6EC | 0x1F6F0..=0x1F6FC
        | 0x1F700..=0x1F776 | 0x1F77B..=0x1F7D9 | 0x1F7E0..=0x1F7EB | 0x1F7F0
        | 0x1F800..=0x1F80B | 0x1F810..=0x1F847 | 0x1F850..=0x1F859 | 0x1F860..=0x1F887
        | 0x1F890..=0x1F8AD | 0x1F8B0 | 0x1F8B1 | 0x1F900..=0x1FA53 | 0x1FA60..=0x1FA6D
        | 0x1FA70..=0x1FA7C | 0x1FA80..=0x1FA88 | 0x1FA90..=0x1FABD | 0x1FABF..=0x1FAC5
        | 0x1FACE..=0x1FADB | 0x1FAE0..=0x1FAE8 | 0x1FAF0..=0x1FAF8 | 0x1FB00..=0x1FB92
        | 0x1FB94..=0x1FBCA)
}

fn is_currency(c: char) -> bool {
    matches!(c, '$' | '£' | '€' | '¥' | '฿' | '₽' | '₴' | '₹' | '₩' | '¢')
}

/// Length in bytes of a run of two or more dots, or of one `…`, at the start of `s`.
fn ellipsis_len(s: &str) -> Option<usize> {
    if s.starts_with('…') {
        return Some('…'.len_utf8());
    }
    let dots = s.bytes().take_while(|&b| b == b'.').count();
    (dots >= 2).then_some(dots)
}

fn prefix_len(s: &str) -> Option<usize> {
    if let Some(n) = ellipsis_len(s) {
        return Some(n);
    }
    let mut chars = s.chars();
    let c = chars.next()?;
    let next = chars.next();
    let split = match c {
        '§' | '%' | '=' | '—' | '–' => true,
        '+' => !next.is_some_and(|n| n.is_ascii_digit()),
        c => is_split_punct(c) || is_currency(c) || is_icon(c),
    };
    // A lone character is a word, not a prefix of nothing.
    (split && s.len() > c.len_utf8()).then_some(c.len_utf8())
}

const CONTRACTIONS: [&str; 12] = [
    "n't", "n’t", "'s", "’s", "'ll", "’ll", "'re", "’re", "'ve", "’ve", "'m", "'d",
];

fn suffix_len(s: &str) -> Option<usize> {
    if s.len() < 2 || (!s.is_ascii() && s.chars().nth(1).is_none()) {
        return None;
    }
    // A run of dots or `…` at the end.
    if s.ends_with('…') {
        return Some('…'.len_utf8());
    }
    let dots = s.bytes().rev().take_while(|&b| b == b'.').count();
    if dots >= 2 && dots < s.len() {
        return Some(dots);
    }
    // Contractions are ASCII letters after an apostrophe; compared without allocating, and
    // only for pieces with an apostrophe near their end.
    let tail_start = s.len().saturating_sub(5);
    let has_apostrophe = s.as_bytes()[tail_start..]
        .iter()
        .any(|&b| b == b'\'' || b == 0x99);
    for c in CONTRACTIONS.iter().filter(|_| has_apostrophe) {
        if s.len() > c.len() && s.is_char_boundary(s.len() - c.len()) {
            let tail = &s[s.len() - c.len()..];
            if tail.eq_ignore_ascii_case(c) {
                let before = s[..s.len() - c.len()].chars().next_back();
                if before.is_some_and(char::is_alphabetic) {
                    return Some(c.len());
                }
            }
        }
    }
    let mut rev = s.chars().rev();
    let last = rev.next()?;
    let before = rev.next();
    let split = match last {
        '—' | '–' => true,
        '+' => before.is_some_and(|b| b.is_ascii_digit()),
        '.' => match before {
            Some(b) if b.is_ascii_digit() || b.is_lowercase() => true,
            Some(b) if matches!(b, '%' | '²' | '-' | '+') || is_split_punct(b) => true,
            Some(b) if b.is_uppercase() => rev.next().is_some_and(char::is_uppercase),
            _ => false,
        },
        c if is_currency(c) => before.is_some_and(|b| b.is_ascii_digit()),
        c => is_split_punct(c) || is_icon(c),
    };
    split.then_some(last.len_utf8())
}

/// Splits the core of a piece at its infixes.
fn split_infixes<'t>(s: &'t str, each: &mut impl FnMut(&'t str)) {
    // Most pieces are plain words: nothing that can be an infix, nothing to split.
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'\'')
    {
        each(s);
        return;
    }
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut start = 0; // byte offset of the current word
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let prev = i.checked_sub(1).map(|p| chars[p].1);
        let next = chars.get(i + 1).map(|n| n.1);
        // The length in chars of an infix starting here, if there is one.
        let infix = if let Some(n) = ellipsis_len(&s[at..]).filter(|_| i > 0) {
            Some(s[at..at + n].chars().count())
        } else {
            let between = |p: Option<char>,
                           n: Option<char>,
                           left: fn(char) -> bool,
                           right: fn(char) -> bool| {
                p.is_some_and(left) && n.is_some_and(right)
            };
            let alpha = |c: char| c.is_alphabetic();
            let alnum = |c: char| c.is_alphanumeric();
            let digit = |c: char| c.is_ascii_digit();
            let hit = match c {
                '-' | '–' | '—' => {
                    between(prev, next, alnum, alpha)
                        || (c == '-'
                            && between(prev, next, digit, |n| n.is_ascii_digit() || n == '-'))
                }
                '/' | ':' | '<' | '>' | '=' => between(prev, next, alnum, alpha),
                ',' => between(prev, next, alpha, alpha),
                '+' | '*' | '^' => between(prev, next, digit, |n| n.is_ascii_digit() || n == '-'),
                '.' => between(
                    prev,
                    next,
                    |p| p.is_lowercase() || is_quote(p),
                    |n| n.is_uppercase() || is_quote(n),
                ),
                c => is_icon(c),
            };
            hit.then_some(1)
        };
        match infix {
            Some(len) if i > 0 => {
                if start < at {
                    each(&s[start..at]);
                }
                let end = chars.get(i + len).map_or(s.len(), |n| n.0);
                each(&s[at..end]);
                start = end;
                i += len;
            }
            _ => i += 1,
        }
    }
    if start < s.len() {
        each(&s[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_comes_off_words_as_spacy_does() {
        assert_eq!(
            rule_words("Hello, world! (It's \"fine\") U.S. costs $5.00..."),
            [
                "Hello", ",", "world", "!", "(", "It", "'s", "\"", "fine", "\"", ")", "U.S.",
                "costs", "$", "5.00", "..."
            ]
        );
        assert_eq!(
            rule_words("don't well-known 3-4 a/b see https://example.org/x."),
            [
                "do",
                "n't",
                "well",
                "-",
                "known",
                "3",
                "-",
                "4",
                "a",
                "/",
                "b",
                "see",
                "https://example.org/x",
                "."
            ]
        );
        assert_eq!(rule_words("  \n\t "), Vec::<&str>::new());
        assert_eq!(rule_words("# ## -"), ["#", "#", "#", "-"]);
    }
}
