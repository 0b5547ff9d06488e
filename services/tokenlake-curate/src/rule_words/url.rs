//! spaCy's `URL_MATCH`: what stays one word once its affixes are off.

use super::classes::is_lower;

/// spaCy's `URL_MATCH`, which keeps a piece whole: an optional scheme (`[\w+.-]{2,}://`), an
/// optional user part ending in `@`, then a public IPv4 address or a domain name (labels of
/// letters, digits, `-` and `_`, and a top-level label of two to 63 lower-case letters, which
/// for spaCy include uncased scripts: `数据.例如` is a "domain"), an optional port and an
/// optional path.
pub(super) fn url_match(s: &str) -> bool {
    // Hosts, domain or IPv4, have a dot: most words have none and stop here (this runs for
    // every word of every document).
    if !s.contains('.') {
        return false;
    }
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
pub(super) fn host_port_path(s: &str) -> bool {
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
pub(super) fn is_domain(host: &str) -> bool {
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
pub(super) fn is_public_ipv4(host: &str) -> bool {
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
