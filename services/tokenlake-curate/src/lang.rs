//! Language identification (Ziya2's DP stage) with whichlang, a linear model over character
//! n-grams (16 languages, among them English and Mandarin; no dependencies, microseconds per
//! document). Codes are ISO 639-1 (`en`, `zh`, …).
//!
//! whichlang gives a label, not a probability, so the score says how consistently the text
//! reads as that language: the share of its pieces (up to eight runs of lines of similar
//! size) whose own detection agrees, with pieces weighted by length. A clean monolingual text
//! scores 1; a page that mixes languages, or too little text to tell, scores lower.
//!
//! One correction for Chinese: technical Chinese prose carries much Latin (identifiers,
//! English terms), so a text whose letters are at least a fifth Han, with no kana or hangul
//! to speak of, is Chinese.

const PIECES: usize = 8;

/// The detected language and a score in [0, 1]; `None` when the text has no letters.
pub fn identify(text: &str) -> Option<(&'static str, f32)> {
    let (mut letters, mut han, mut kana, mut hangul) = (0usize, 0usize, 0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        match c as u32 {
            0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F => han += 1,
            0x3040..=0x30FF => kana += 1,
            0xAC00..=0xD7AF => hangul += 1,
            _ => {}
        }
    }
    if letters == 0 {
        return None;
    }
    let chinese = |han: usize, kana: usize, hangul: usize, letters: usize| {
        han * 5 >= letters && kana * 20 < han.max(1) && hangul * 20 < han.max(1)
    };
    let label = |t: &str| iso_639_1(whichlang::detect_language(t));
    let whole = if chinese(han, kana, hangul, letters) {
        "zh"
    } else {
        label(text)
    };

    // Agreement of the pieces, weighted by their length.
    let target = text.len().div_ceil(PIECES).max(200);
    let (mut agree, mut total) = (0usize, 0usize);
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        // Cut after a newline when there is one ahead, else at a char boundary.
        if let Some(nl) = text[end..].find('\n').filter(|&d| d < target) {
            end += nl + 1;
        }
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let piece = &text[start..end];
        let (mut l, mut h, mut k, mut g) = (0, 0, 0, 0);
        for c in piece.chars().filter(|c| c.is_alphabetic()) {
            l += 1;
            match c as u32 {
                0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F => h += 1,
                0x3040..=0x30FF => k += 1,
                0xAC00..=0xD7AF => g += 1,
                _ => {}
            }
        }
        if l > 0 {
            let said = if chinese(h, k, g, l) {
                "zh"
            } else {
                label(piece)
            };
            total += l;
            if said == whole {
                agree += l;
            }
        }
        start = end;
    }
    let score = if total == 0 {
        0.0
    } else {
        agree as f32 / total as f32
    };
    // Short texts are hard to tell apart: below 50 letters the score is scaled down.
    let certainty = (letters as f32 / 50.0).min(1.0);
    Some((whole, score * certainty))
}

fn iso_639_1(lang: whichlang::Lang) -> &'static str {
    use whichlang::Lang::*;
    match lang {
        Ara => "ar",
        Cmn => "zh",
        Deu => "de",
        Eng => "en",
        Fra => "fr",
        Hin => "hi",
        Ita => "it",
        Jpn => "ja",
        Kor => "ko",
        Nld => "nl",
        Por => "pt",
        Rus => "ru",
        Spa => "es",
        Swe => "sv",
        Tur => "tr",
        Vie => "vi",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_and_chinese_prose_including_mixed_technical_chinese() {
        let en = identify(
            "The scheduler keeps a tree of runnable tasks ordered by their virtual runtime, so \
             that the next task to run is always found quickly.",
        )
        .unwrap();
        assert_eq!(en.0, "en");
        assert!(en.1 > 0.9, "{en:?}");
        assert_eq!(identify("数据清洗是训练大模型的第一步。").unwrap().0, "zh");
        let mixed =
            "使用 cargo build --release 编译 tokenlake，然后运行 tokenlake ingest 命令导入数据。";
        assert_eq!(identify(mixed).unwrap().0, "zh");
        assert_eq!(
            identify("これは日本語の文章です。漢字とかなが混ざっています。")
                .unwrap()
                .0,
            "ja"
        );
        assert_eq!(
            identify("Der Hund läuft schnell über die Straße und bellt laut.")
                .unwrap()
                .0,
            "de"
        );
        assert_eq!(identify("1234 5678 !!!"), None);
    }
}
