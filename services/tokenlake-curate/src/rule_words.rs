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

/// spaCy's `URL_MATCH`, which keeps a piece whole: an optional scheme (`[\w+.-]{2,}://`), an
/// optional user part ending in `@`, then a public IPv4 address or a domain name (labels of
/// letters, digits, `-` and `_`, and a top-level label of two to 63 lower-case letters, which
/// for spaCy include uncased scripts: `数据.例如` is a "domain"), an optional port and an
/// optional path.
fn url_match(s: &str) -> bool {
    let mut rest = s;
    if let Some(at) = rest.find("://") {
        let scheme = &rest[..at];
        if scheme.chars().count() >= 2
            && scheme
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))
        {
            rest = &rest[at + 3..];
        }
    }
    // The user part is any non-empty text up to an `@`; the regex tries each `@`.
    host_port_path(rest)
        || rest
            .match_indices('@')
            .any(|(at, _)| at > 0 && host_port_path(&rest[at + 1..]))
}

/// A host (public IPv4 address or domain name), an optional `:port` of 2 to 5 digits and an
/// optional path starting with `/`, `?` or `#`, and nothing else.
fn host_port_path(s: &str) -> bool {
    let host_end = s.find([':', '/', '?', '#']).unwrap_or(s.len());
    let (host, mut tail) = s.split_at(host_end);
    if !(is_public_ipv4(host) || is_domain(host)) {
        return false;
    }
    if let Some(port) = tail.strip_prefix(':') {
        let digits = port.bytes().take_while(u8::is_ascii_digit).count();
        if !(2..=5).contains(&digits) {
            return false;
        }
        tail = &port[digits..];
    }
    tail.is_empty() || tail.starts_with(['/', '?', '#'])
}

/// One or more labels followed by `.`, then a top-level label of 2 to 63 lower-case letters.
fn is_domain(host: &str) -> bool {
    let Some((labels, top)) = host.rsplit_once('.') else {
        return false;
    };
    let top_len = top.chars().count();
    let label_char = |c: char| c.is_ascii_alphanumeric() || c as u32 >= 0xA1 && c as u32 <= 0xFFFF;
    (2..=63).contains(&top_len)
        && top.chars().all(is_lower)
        && labels.split('.').all(|label| {
            let n = label.chars().count();
            (1..=64).contains(&n)
                && label.chars().next().is_some_and(label_char)
                && label.chars().next_back().is_some_and(label_char)
                && label.chars().all(|c| label_char(c) || c == '_' || c == '-')
        })
}

/// A dotted IPv4 address outside the private, loopback and link-local ranges, with spaCy's
/// bounds on the first octet (1 to 223) and the last (1 to 254).
fn is_public_ipv4(host: &str) -> bool {
    let octets: Vec<&str> = host.split('.').collect();
    if octets.len() != 4
        || octets
            .iter()
            .any(|o| o.is_empty() || o.len() > 3 || !o.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let n: Vec<u32> = octets.iter().map(|o| o.parse().unwrap_or(999)).collect();
    let no_leading_zero = |o: &str| !o.starts_with('0');
    let private = n[0] == 10
        || n[0] == 127
        || (n[0] == 169 && n[1] == 254)
        || (n[0] == 192 && n[1] == 168)
        || (n[0] == 172 && (16..=31).contains(&n[1]));
    !private
        && (1..=223).contains(&n[0])
        && no_leading_zero(octets[0])
        && n[1] <= 255
        && n[2] <= 255
        && (1..=254).contains(&n[3])
        && no_leading_zero(octets[3])
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

/// spaCy's uncased letters (`_uncased` in its character classes): scripts without case, and
/// the CJK punctuation and symbols spaCy files with them (`、`, `。`, `《`, `》` …). spaCy's
/// patterns count each as a letter, and as lower-case and upper-case alike, so `内核.我们`
/// splits at its `.` as `word.Word` does.
fn is_uncased(c: char) -> bool {
    let c = c as u32;
    c >= 0x0591
        && matches!(c,
            0x1200..=0x137F | 0x0980..=0x09FF | 0x0591..=0x05F4 | 0xFB1D..=0xFB4F
            | 0x0620..=0x064A | 0x066E..=0x06D5 | 0x06E5..=0x06FF | 0x0750..=0x077F
            | 0x08A0..=0x08BD | 0xFB50..=0xFBB1 | 0xFBD3..=0xFD3D | 0xFD50..=0xFDC7
            | 0xFDF0..=0xFDFB | 0xFE70..=0xFEFC | 0x1EE00..=0x1EEBB | 0x0D80..=0x0DFF
            | 0x0900..=0x097F | 0x0C80..=0x0CFF | 0x0B80..=0x0BFF | 0x0C00..=0x0C7F
            | 0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3040..=0x309F | 0x30A0..=0x30FF
            | 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2EBEF | 0x2E80..=0x2FFF
            | 0x3000..=0x303F | 0x31C0..=0x31EF | 0x3200..=0x33FF | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F | 0x1F200..=0x1F2FF | 0x2F800..=0x2FA1F)
}

/// A letter as spaCy's `ALPHA` has it.
fn is_alpha(c: char) -> bool {
    c.is_alphabetic() || is_uncased(c)
}

/// A lower-case letter as spaCy's `ALPHA_LOWER` has it (uncased letters included).
fn is_lower(c: char) -> bool {
    c.is_lowercase() || is_uncased(c)
}

/// An upper-case letter as spaCy's `ALPHA_UPPER` has it (uncased letters included).
fn is_upper(c: char) -> bool {
    c.is_uppercase() || is_uncased(c)
}

/// spaCy's units (`LIST_UNITS`), which come off the end of a number. Its list runs the last
/// Cyrillic unit and the first Arabic one together (`тбكم`); so does this one, to agree.
const UNITS: [&str; 103] = [
    "km",
    "km²",
    "km³",
    "m",
    "m²",
    "m³",
    "dm",
    "dm²",
    "dm³",
    "cm",
    "cm²",
    "cm³",
    "mm",
    "mm²",
    "mm³",
    "ha",
    "µm",
    "nm",
    "yd",
    "in",
    "ft",
    "kg",
    "g",
    "mg",
    "µg",
    "t",
    "lb",
    "oz",
    "m/s",
    "km/h",
    "kmh",
    "mph",
    "hPa",
    "Pa",
    "mbar",
    "mb",
    "MB",
    "kb",
    "KB",
    "gb",
    "GB",
    "tb",
    "TB",
    "T",
    "G",
    "M",
    "K",
    "%",
    "км",
    "км²",
    "км³",
    "м",
    "м²",
    "м³",
    "дм",
    "дм²",
    "дм³",
    "см",
    "см²",
    "см³",
    "мм",
    "мм²",
    "мм³",
    "нм",
    "кг",
    "г",
    "мг",
    "м/с",
    "км/ч",
    "кПа",
    "Па",
    "мбар",
    "Кб",
    "КБ",
    "кб",
    "Мб",
    "МБ",
    "мб",
    "Гб",
    "ГБ",
    "гб",
    "Тб",
    "ТБ",
    "тбكم",
    "كم²",
    "كم³",
    "م",
    "م²",
    "م³",
    "سم",
    "سم²",
    "سم³",
    "مم",
    "مم²",
    "مم³",
    "كم",
    "غرام",
    "جرام",
    "جم",
    "كغ",
    "ملغ",
    "كوب",
    "اكواب",
];

/// spaCy's hyphens (`HYPHENS`), in the order its infix pattern tries them.
const HYPHENS: [&str; 7] = ["-", "–", "—", "--", "---", "——", "~"];

/// The length in bytes of the unit that ends `s` right after an ASCII digit, the longest
/// where several do (spaCy takes the leftmost suffix match).
fn unit_suffix_len(s: &str) -> Option<usize> {
    UNITS
        .iter()
        .filter(|u| {
            s.len() > u.len()
                && s.ends_with(*u)
                && s[..s.len() - u.len()]
                    .bytes()
                    .next_back()
                    .is_some_and(|b| b.is_ascii_digit())
        })
        .map(|u| u.len())
        .max()
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
