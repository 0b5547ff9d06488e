//! Language identification (Ziya2's DP stage) with whichlang, a linear model over character
//! n-grams (16 languages, among them English and Mandarin; no dependencies, microseconds per
//! document). Codes are ISO 639-1 (`en`, `zh`, …).
//!
//! whichlang gives a label, not a probability, so the score says how consistently the text
//! reads as that language: the share of its pieces (up to eight runs of lines of similar
//! size) whose own detection agrees, with pieces weighted by length. A clean monolingual text
//! scores 1; a page that mixes languages, or too little text to tell, scores lower.
//!
//! Two corrections for technical text, where a character-n-gram model is easily misled:
//! - Chinese technical prose carries much Latin (commands, identifiers, English terms), so a
//!   text with at least one Han character per ten Latin letters (about one per two English
//!   words), and no kana or hangul to speak of, is Chinese;
//! - markup and code skew Latin-script texts towards the wrong language (reStructuredText
//!   headings read as French), while their prose still uses its function words, so when at
//!   least five stop words of the common Latin-script languages occur and one language has
//!   most of them, that language wins.

const PIECES: usize = 8;

/// Letters of a text by script: all of them, and the Han, kana and hangul among them.
#[derive(Default)]
struct Scripts {
    letters: usize,
    han: usize,
    kana: usize,
    hangul: usize,
}

impl Scripts {
    fn of(text: &str) -> Scripts {
        let mut s = Scripts::default();
        for c in text.chars().filter(|c| c.is_alphabetic()) {
            s.letters += 1;
            match c as u32 {
                0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F => {
                    s.han += 1
                }
                0x3040..=0x30FF => s.kana += 1,
                0xAC00..=0xD7AF => s.hangul += 1,
                _ => {}
            }
        }
        s
    }

    /// At least one Han character per ten Latin letters, and next to no kana or hangul.
    fn is_chinese(&self) -> bool {
        let latin = self.letters - self.han - self.kana - self.hangul;
        self.han > 0
            && self.han * 10 >= latin
            && self.kana * 20 < self.han
            && self.hangul * 20 < self.han
    }
}

/// The language of `text` (with `scripts` its letter counts).
fn label(text: &str, scripts: &Scripts) -> &'static str {
    if scripts.is_chinese() {
        "zh"
    } else {
        stop_word_vote(text).unwrap_or_else(|| iso_639_1(whichlang::detect_language(text)))
    }
}

/// The detected language and a score in [0, 1]; `None` when the text has no letters.
pub fn identify(text: &str) -> Option<(&'static str, f32)> {
    let scripts = Scripts::of(text);
    if scripts.letters == 0 {
        return None;
    }
    let whole = label(text, &scripts);

    // Agreement of the pieces, weighted by their length.
    let target = text.len().div_ceil(PIECES).max(200);
    let (mut agree, mut total) = (0usize, 0usize);
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        // Cut after a newline when there is one not far ahead.
        if let Some(nl) = text[end..].find('\n').filter(|&d| d < target) {
            end += nl + 1;
        }
        let piece = &text[start..end];
        let piece_scripts = Scripts::of(piece);
        if piece_scripts.letters > 0 {
            total += piece_scripts.letters;
            if label(piece, &piece_scripts) == whole {
                agree += piece_scripts.letters;
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
    let certainty = (scripts.letters as f32 / 50.0).min(1.0);
    Some((whole, score * certainty))
}

/// Function words of the Latin-script languages whichlang knows; frequent in any prose and
/// rare in the others (words shared by two languages are left out).
const STOP_WORDS: [(&str, &[&str]); 8] = [
    (
        "en",
        &[
            "the", "and", "of", "to", "is", "that", "for", "with", "this", "are", "be", "it", "or",
            "which", "not", "from", "by", "an", "can", "will",
        ],
    ),
    (
        "fr",
        &[
            "le", "les", "des", "et", "est", "une", "du", "dans", "pour", "qui", "sur", "pas",
            "au", "avec", "sont", "ce", "cette", "nous", "vous", "mais",
        ],
    ),
    (
        "de",
        &[
            "der", "die", "und", "das", "ist", "nicht", "mit", "den", "von", "zu", "ein", "eine",
            "auf", "sich", "dem", "auch", "werden", "wird", "oder", "sind",
        ],
    ),
    (
        "es",
        &[
            "el", "los", "las", "y", "es", "por", "una", "con", "para", "del", "se", "lo", "como",
            "pero", "sus", "más", "está", "son", "fue", "muy",
        ],
    ),
    (
        "it",
        &[
            "il", "di", "che", "è", "per", "una", "sono", "della", "gli", "con", "non", "del",
            "alla", "anche", "nel", "questo", "ma", "come", "delle", "essere",
        ],
    ),
    (
        "pt",
        &[
            "os", "uma", "não", "com", "para", "por", "mais", "como", "mas", "foi", "ao", "das",
            "dos", "são", "está", "também", "pelo", "pela", "isso", "ele",
        ],
    ),
    (
        "nl",
        &[
            "het", "een", "van", "en", "niet", "dat", "met", "voor", "zijn", "op", "ook", "aan",
            "maar", "wordt", "deze", "bij", "nog", "worden", "naar", "hij",
        ],
    ),
    (
        "sv",
        &[
            "och", "att", "det", "som", "är", "inte", "för", "med", "på", "av", "till", "den",
            "har", "ett", "om", "jag", "var", "men", "så", "vi",
        ],
    ),
];

/// Stop word → the languages (bits, in `STOP_WORDS` order) that use it.
fn stop_word_map() -> &'static std::collections::HashMap<&'static str, u8> {
    static MAP: std::sync::OnceLock<std::collections::HashMap<&'static str, u8>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = std::collections::HashMap::new();
        for (k, (_, words)) in STOP_WORDS.iter().enumerate() {
            for w in *words {
                *map.entry(*w).or_insert(0u8) |= 1 << k;
            }
        }
        map
    })
}

/// The language whose stop words make up at least 60 % of at least five stop-word hits.
fn stop_word_vote(text: &str) -> Option<&'static str> {
    let map = stop_word_map();
    let mut hits = [0usize; STOP_WORDS.len()];
    let mut total = 0usize;
    let mut lower = String::new();
    for word in text.split(|c: char| !c.is_alphabetic()) {
        let chars = if word.is_ascii() {
            word.len()
        } else {
            word.chars().count()
        };
        if !(2..=7).contains(&chars) {
            continue;
        }
        let key = if word.bytes().any(|b| b.is_ascii_uppercase()) || !word.is_ascii() {
            lower.clear();
            lower.extend(word.chars().flat_map(char::to_lowercase));
            lower.as_str()
        } else {
            word
        };
        if let Some(&langs) = map.get(key) {
            for (k, hit) in hits.iter_mut().enumerate() {
                if langs >> k & 1 == 1 {
                    *hit += 1;
                    total += 1;
                }
            }
        }
    }
    let (best, &n) = hits.iter().enumerate().max_by_key(|(_, n)| **n)?;
    (total >= 5 && n * 10 >= total * 6).then_some(STOP_WORDS[best].0)
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
        // Long texts are cut into pieces at character boundaries, whatever the script.
        let long = "数据清洗是训练大模型的第一步，去重和过滤同样重要。".repeat(40);
        let (lang, score) = identify(&long).unwrap();
        assert_eq!(lang, "zh");
        assert!(score > 0.99, "{score}");
    }
}
