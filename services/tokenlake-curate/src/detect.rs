//! Detectors for Ziya2's rule classes that no published rule set covers: personal data
//! (e-mail addresses, phone numbers), HTML remnants, and advertising or boilerplate phrases.
//! Hand-written scanners rather than regular expressions: they run on every document and
//! each is one pass over the bytes.

/// E-mail addresses and phone numbers in `text`.
pub fn privacy_matches(text: &str) -> usize {
    emails(text) + phone_numbers(text)
}

fn is_local_part(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_part(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// `local@domain.tld` with a letter-only top-level domain of two or more letters.
fn emails(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut count = 0;
    for (at, _) in text.match_indices('@') {
        let local = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| is_local_part(b))
            .count();
        let domain_len = bytes[at + 1..]
            .iter()
            .take_while(|&&b| is_domain_part(b))
            .count();
        if local == 0 || domain_len == 0 {
            continue;
        }
        let domain = text[at + 1..at + 1 + domain_len].trim_end_matches(['.', '-']);
        let Some((host, tld)) = domain.rsplit_once('.') else {
            continue;
        };
        if !host.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()) {
            count += 1;
        }
    }
    count
}

/// Digit runs that read as phone numbers: 10 to 15 digits joined only by single spaces,
/// dashes, dots or parentheses, starting with `+`, `(` or a digit, and not part of a longer
/// number, a word or a time of day (hex constants, version strings and timestamps rarely fit).
fn phone_numbers(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let starts = (b == b'+' || b == b'(' || b.is_ascii_digit())
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || matches!(bytes[i - 1], b'.' | b'_' | b'-' | b'/' | b':')));
        if !starts {
            i += 1;
            continue;
        }
        let (mut j, mut digits, mut groups, mut last_sep) = (i, 0, 0, true);
        let mut sep_run = 0; // separators in a row: at most two, like ") " or " ("
        // Phone numbers group their digits in twos and more (a country code may be one digit);
        // version strings and dotted numbers do not.
        let (mut group_len, mut short_groups) = (0, 0);
        let plus = b == b'+';
        if plus {
            j += 1;
        }
        while j < bytes.len() {
            let c = bytes[j];
            if c.is_ascii_digit() {
                if last_sep {
                    if groups > 1 && group_len < 2 {
                        short_groups += 1;
                    }
                    groups += 1;
                    group_len = 0;
                }
                group_len += 1;
                digits += 1;
                last_sep = false;
                sep_run = 0;
            } else if matches!(c, b' ' | b'-' | b'.' | b'(' | b')') && sep_run < 2 {
                last_sep = true;
                sep_run += 1;
            } else {
                break;
            }
            j += 1;
        }
        let followed_by_word = bytes
            .get(j)
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'_' | b':'));
        // One unbroken run of digits is an ID or a number, not a phone number, unless it is
        // written with a country code.
        if groups > 1 && group_len < 2 {
            short_groups += 1;
        }
        if (10..=15).contains(&digits)
            && (groups >= 2 || plus)
            && groups <= 6
            && short_groups == 0
            && !followed_by_word
        {
            count += 1;
        }
        i = j.max(i + 1);
    }
    count
}

const HTML_TAGS: [&str; 36] = [
    "a", "abbr", "article", "b", "body", "br", "button", "div", "em", "footer", "form", "h1", "h2",
    "h3", "h4", "head", "header", "hr", "html", "i", "iframe", "img", "input", "li", "link",
    "meta", "nav", "p", "script", "section", "span", "strong", "style", "table", "td", "ul",
];

/// HTML tags (`<div …>`, `</p>`, `<br/>`) of common elements, comments and character entities.
pub fn html_matches(text: &str) -> usize {
    let mut count = 0;
    for (at, _) in text.match_indices('<') {
        let rest = &text[at + 1..];
        if rest.starts_with("!--") || rest.starts_with("!DOCTYPE") || rest.starts_with("!doctype") {
            count += 1;
            continue;
        }
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let name_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let name = rest[..name_len].to_ascii_lowercase();
        let after = rest.as_bytes().get(name_len);
        let closes = matches!(after, Some(b'>' | b' ' | b'/' | b'\n'));
        if closes && HTML_TAGS.binary_search(&name.as_str()).is_ok() {
            // With a space after the name, a tag has attributes (`=`) before its `>`.
            let tail = &rest[name_len..];
            let attributes = tail
                .find('>')
                .filter(|&end| end < 400)
                .is_some_and(|end| tail[..end].contains('='));
            if tail.starts_with('>') || tail.starts_with("/>") || attributes {
                count += 1;
            }
        }
    }
    for entity in [
        "&nbsp;", "&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&copy;", "&raquo;",
    ] {
        count += text.matches(entity).count();
    }
    count
}

const AD_PHRASES: [&str; 24] = [
    "click here",
    "buy now",
    "order now",
    "shop now",
    "add to cart",
    "free shipping",
    "limited time offer",
    "special offer",
    "best price",
    "discount code",
    "promo code",
    "subscribe now",
    "sign up now",
    "call now",
    "act now",
    "this website uses cookies",
    "accept all cookies",
    "we use cookies",
    "sponsored content",
    "advertisement",
    "立即购买",
    "点击这里",
    "限时优惠",
    "免费领取",
];

/// Phrases by their first byte (ASCII lower-cased), so one pass over the text finds them all.
fn phrases_by_first_byte() -> &'static [Vec<&'static str>; 256] {
    static TABLE: std::sync::OnceLock<[Vec<&'static str>; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: [Vec<&'static str>; 256] = std::array::from_fn(|_| Vec::new());
        for p in AD_PHRASES {
            table[p.as_bytes()[0] as usize].push(p);
        }
        table
    })
}

/// Advertising and boilerplate phrases (case-insensitive, at the start of a word, or anywhere
/// for Chinese), and navigation bars (lines of ` | `-separated links that start with "Home").
pub fn advertising_matches(text: &str) -> usize {
    let table = phrases_by_first_byte();
    let bytes = text.as_bytes();
    let mut phrases = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let candidates = &table[b.to_ascii_lowercase() as usize];
        if candidates.is_empty() || (b.is_ascii() && i > 0 && bytes[i - 1].is_ascii_alphanumeric())
        {
            continue;
        }
        for p in candidates {
            if bytes.len() - i >= p.len()
                && bytes[i..i + p.len()].eq_ignore_ascii_case(p.as_bytes())
            {
                phrases += 1;
            }
        }
    }
    let nav_bars = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            (l.starts_with("Home |") || l.starts_with("Home »") || l.starts_with("Home >"))
                && l.matches(" | ").count() + l.matches(" » ").count() + l.matches(" > ").count()
                    >= 3
        })
        .count();
    phrases + nav_bars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_found_and_code_numbers_are_not() {
        assert_eq!(
            privacy_matches("Contact: john.doe42@example.com, phone +1 (555) 017-1234"),
            2
        );
        assert_eq!(
            privacy_matches("write to ops@tokenlake.dev or call 030 1234 5678"),
            2
        );
        assert_eq!(
            privacy_matches("let mask = 0x8080_8080_8080_8080; id 12345678901234"),
            0
        );
        assert_eq!(
            privacy_matches("version 1.2.3.4.5.6.7.8.9.10, @decorator, user@host"),
            0
        );
        assert_eq!(privacy_matches("2024-01-15 12:30:45.123456"), 0);
    }

    #[test]
    fn html_tags_are_counted_and_comparisons_are_not() {
        assert_eq!(
            html_matches("<div class=\"nav\"><a href=\"/\">Home</a></div>"),
            4
        );
        assert_eq!(html_matches("if a <b and c> d { x &lt; y }"), 1);
        assert_eq!(html_matches("Vec<T> and a < b, Option<String>"), 0);
    }

    #[test]
    fn boilerplate_is_counted() {
        assert_eq!(
            advertising_matches("This website uses cookies. Accept all cookies"),
            2
        );
        assert_eq!(
            advertising_matches("Home | News | Sport | Weather\nbody text"),
            1
        );
        assert_eq!(advertising_matches("The home | directory is a path."), 0);
    }
}
