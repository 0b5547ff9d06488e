//! Words for fingerprints: runs of letters and digits, lower-cased; every CJK ideograph, kana
//! or hangul syllable is a word of its own, since those scripts do not separate words with
//! spaces. Punctuation, symbols and whitespace only separate words, so two texts that differ
//! only in them have the same words.

/// Calls `each` with every word of `text`, in order.
pub fn for_each_word(text: &str, mut each: impl FnMut(&str)) {
    let mut word = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                each(&word);
                word.clear();
            }
            let mut buf = [0u8; 4];
            each(c.encode_utf8(&mut buf));
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            each(&word);
            word.clear();
        }
    }
    if !word.is_empty() {
        each(&word);
    }
}

pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(text, |w| out.push(w.to_string()));
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF        // hiragana, katakana
        | 0x3400..=0x4DBF      // CJK extension A
        | 0x4E00..=0x9FFF      // CJK unified ideographs
        | 0xAC00..=0xD7AF      // hangul syllables
        | 0xF900..=0xFAFF      // CJK compatibility ideographs
        | 0x20000..=0x2FA1F) // CJK extensions B–F and supplements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_case_and_spacing_do_not_make_words() {
        assert_eq!(
            words("Hello,  World!\n--  it's 2024."),
            ["hello", "world", "it", "s", "2024"]
        );
        assert_eq!(words("数据 清洗abc"), ["数", "据", "清", "洗", "abc"]);
        assert_eq!(words(" \t…"), Vec::<String>::new());
    }
}
