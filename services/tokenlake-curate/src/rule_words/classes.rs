//! spaCy's character classes and lists, as its English tokenizer (and so datatrove) uses them:
//! punctuation and quotes, icons, uncased letters, units, hyphens and currency signs. Tables,
//! kept apart from the splitting rules that read them.

/// spaCy's LIST_PUNCT, LIST_QUOTES and the sharp/icon-free part of its prefix list.
pub(super) fn is_split_punct(c: char) -> bool {
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

pub(super) fn is_quote(c: char) -> bool {
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
pub(super) fn is_icon(c: char) -> bool {
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
pub(super) fn is_uncased(c: char) -> bool {
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
pub(super) fn is_alpha(c: char) -> bool {
    c.is_alphabetic() || is_uncased(c)
}

/// A lower-case letter as spaCy's `ALPHA_LOWER` has it (uncased letters included).
pub(super) fn is_lower(c: char) -> bool {
    c.is_lowercase() || is_uncased(c)
}

/// An upper-case letter as spaCy's `ALPHA_UPPER` has it (uncased letters included).
pub(super) fn is_upper(c: char) -> bool {
    c.is_uppercase() || is_uncased(c)
}

/// spaCy's units (`LIST_UNITS`), which come off the end of a number. Its list runs the last
/// Cyrillic unit and the first Arabic one together (`тбكم`); so does this one, to agree.
pub(super) const UNITS: [&str; 103] = [
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
pub(super) const HYPHENS: [&str; 7] = ["-", "–", "—", "--", "---", "——", "~"];

pub(super) fn is_currency(c: char) -> bool {
    matches!(c, '$' | '£' | '€' | '¥' | '฿' | '₽' | '₴' | '₹' | '₩' | '¢')
}
