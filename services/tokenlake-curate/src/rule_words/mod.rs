//! Words as the published rule sets count them. datatrove splits English with spaCy's blank
//! English tokenizer, so the rules' word counts, mean word lengths and n-grams depend on how
//! punctuation is split from words. This follows spaCy's rules for English closely enough to
//! agree with datatrove's keep/drop decisions (`tests/e2e/rules.rs` measures by how much):
//!
//! - text splits at whitespace, and whitespace is never a word;
//! - prefixes come off the front one at a time: quotes, brackets, punctuation, currency
//!   signs, `§ % = — – +` (a `+` only before a non-digit), and runs of dots or `…`;
//! - suffixes come off the back: the same punctuation and quotes (with `……`, the Chinese
//!   ellipsis, as one mark), `'s`, contractions (`n't`, `'ll`, `'re`, `'ve`, `'m`, `'d`), `—`,
//!   `–`, `+` after a digit, a unit after a digit (`5km` is `5` `km`, `10%` is `10` `%`), and a
//!   `.` after a digit, a lower-case letter, punctuation or two upper-case letters (`etc.`
//!   splits, `U.S.` not);
//! - infixes split what remains: runs of dots or `…`, hyphens (`-`, `–`, `—`, `--`, `---`, `——`,
//!   `~`, the first that a letter follows) and `/ : < > =` between a letter or digit and a
//!   letter, `,` between letters, `+ - * ^` between digits, and a `.` between a lower-case and
//!   an upper-case letter;
//! - what is left once the affixes are off is one word when it looks like a URL, an e-mail
//!   address or a domain name (spaCy's URL_MATCH).
//!
//! - symbols (box drawing, arrows, dingbats, emoji: Unicode's "other symbols") split off
//!   wherever they are.
//!
//! What is left out: spaCy's table of special cases (abbreviations such as `Mr.`, emoticons),
//! which is rare in prose.

mod classes;
mod url;

use classes::{
    HYPHENS, UNITS, is_alpha, is_currency, is_icon, is_lower, is_quote, is_split_punct, is_uncased,
    is_upper,
};
use url::url_match;

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
        // What is left once the affixes are off is one word when it looks like a URL, an
        // e-mail address or a domain name (spaCy's URL_MATCH), else it splits at infixes.
        if url_match(rest) {
            each(rest);
        } else {
            split_infixes(rest, each);
        }
    }
    for s in suffixes.into_iter().rev() {
        each(s);
    }
}

/// Bytes of the longest unit.
const LONGEST_UNIT: usize = 10;

/// The length in bytes of the unit that ends `s` right after an ASCII digit (the leftmost
/// suffix match, as spaCy takes it).
fn unit_suffix_len(s: &str) -> Option<usize> {
    // No unit holds an ASCII digit, so the one that follows a digit is everything after the
    // last digit: one backward scan instead of a hundred `ends_with` (this runs for every word).
    // Only the last bytes can hold it: no unit is longer than `LONGEST_UNIT` bytes.
    let tail = s.len().saturating_sub(LONGEST_UNIT + 1);
    let last_digit = tail + s.as_bytes()[tail..].iter().rposition(u8::is_ascii_digit)?;
    let unit = &s[last_digit + 1..];
    (!unit.is_empty() && UNITS.contains(&unit)).then_some(unit.len())
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
    // `……` is one of spaCy's punctuation marks, and as the leftmost suffix match it comes off
    // whole; a run of dots or a single `…` otherwise.
    if s.ends_with("……") && s.len() > "……".len() {
        return Some("……".len());
    }
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
    if let Some(n) = unit_suffix_len(s) {
        return Some(n);
    }
    let mut rev = s.chars().rev();
    let last = rev.next()?;
    let before = rev.next();
    let split = match last {
        '—' | '–' => true,
        '+' => before.is_some_and(|b| b.is_ascii_digit()),
        '.' => match before {
            Some(b) if b.is_ascii_digit() || is_lower(b) => true,
            Some(b) if matches!(b, '%' | '²' | '-' | '+') || is_split_punct(b) => true,
            Some(b) if is_upper(b) => rev.next().is_some_and(is_upper),
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
        let mut infix_chars = 1;
        let infix = if let Some(n) = ellipsis_len(&s[at..]).filter(|_| i > 0) {
            Some(s[at..at + n].chars().count())
        } else {
            let between = |p: Option<char>,
                           n: Option<char>,
                           left: fn(char) -> bool,
                           right: fn(char) -> bool| {
                p.is_some_and(left) && n.is_some_and(right)
            };
            let alpha = is_alpha;
            let alnum = |c: char| c.is_alphanumeric() || is_uncased(c);
            let digit = |c: char| c.is_ascii_digit();
            let hit = match c {
                // An operator between digits comes first in spaCy's infixes.
                '-' if between(prev, next, digit, |n| n.is_ascii_digit() || n == '-') => true,
                '-' | '–' | '—' | '~' => {
                    // The first hyphen (of several lengths) that a letter follows.
                    let rest = &s[at..];
                    let hyphen = HYPHENS.iter().find(|h| {
                        rest.starts_with(*h) && rest[h.len()..].chars().next().is_some_and(alpha)
                    });
                    if let (true, Some(h)) = (prev.is_some_and(alnum), hyphen) {
                        infix_chars = h.chars().count();
                        true
                    } else {
                        false
                    }
                }
                '/' | ':' | '<' | '>' | '=' => between(prev, next, alnum, alpha),
                ',' => between(prev, next, alpha, alpha),
                '+' | '*' | '^' => between(prev, next, digit, |n| n.is_ascii_digit() || n == '-'),
                '.' => between(
                    prev,
                    next,
                    |p| is_lower(p) || is_quote(p),
                    |n| is_upper(n) || is_quote(n),
                ),
                c => is_icon(c),
            };
            hit.then_some(infix_chars)
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

    #[test]
    fn no_unit_is_longer_than_the_bytes_searched_for_it() {
        assert!(UNITS.iter().all(|u| u.len() <= LONGEST_UNIT));
        assert!(UNITS.iter().all(|u| !u.bytes().any(|b| b.is_ascii_digit())));
    }

    /// spaCy's own splits (datatrove's English word tokenizer) of Chinese prose and of the
    /// marks around it, as printed by spaCy 3: a run of Han characters between spaces and
    /// punctuation is one word, `……` at the end is one mark, `——` between words is one
    /// hyphen, and units come off numbers.
    #[test]
    fn chinese_prose_splits_as_spacy_splits_it() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Debian 是一个自由的操作系统，它使用 Linux 内核。我们",
                &[
                    "Debian",
                    "是一个自由的操作系统，它使用",
                    "Linux",
                    "内核。我们",
                ],
            ),
            ("中文……", &["中文", "……"]),
            ("好……好", &["好", "…", "…", "好"]),
            ("……好", &["…", "…", "好"]),
            ("中文——中文", &["中文", "——", "中文"]),
            ("a--b r--r--", &["a", "--", "b", "r", "--", "r--"]),
            (
                "a———b 2——3 5~6 x~y",
                &["a———b", "2——3", "5~6", "x", "~", "y"],
            ),
            (
                "具有2K 5km 10% 5km/h ATH10K 5B",
                &[
                    "具有2", "K", "5", "km", "10", "%", "5", "km/h", "ATH10", "K", "5B",
                ],
            ),
            ("好。。。", &["好", "。", "。", "。"]),
            ("（4字节）。", &["（", "4字节", "）", "。"]),
            ("中文:中文 中文(中文", &["中文", ":", "中文", "中文(中文"]),
            ("“引号”和「括号」", &["“", "引号”和「括号", "」"]),
            ("a.....b", &["a", ".....", "b"]),
            // `例如` is a "top-level domain" to spaCy's URL match, so `数据.例如` stays whole.
            (
                "数据.例如 拷贝. 等等.也许",
                &["数据.例如", "拷贝", ".", "等等.也许"],
            ),
            (
                "mail me at a.b@example.org",
                &["mail", "me", "at", "a.b@example.org"],
            ),
            (
                "https://git.kernel.org/上瀏覽。",
                &["https://git.kernel.org/上瀏覽", "。"],
            ),
            ("vmlinuz、/boot", &["vmlinuz、", "/", "boot"]),
            ("5km.", &["5", "km", "."]),
        ];
        for (text, words) in cases {
            assert_eq!(rule_words(text), *words, "{text}");
        }
    }
}
