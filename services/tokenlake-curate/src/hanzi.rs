//! Traditional → Simplified Chinese, character by character, from OpenCC's character table
//! (`data/ts_characters.txt`). Character conversion is what corpus cleaning needs (one script
//! for de-duplication and perplexity); OpenCC's phrase tables, which pick regional words,
//! are left out.

use std::collections::HashMap;
use std::sync::OnceLock;

fn table() -> &'static HashMap<char, char> {
    static TABLE: OnceLock<HashMap<char, char>> = OnceLock::new();
    TABLE.get_or_init(|| {
        include_str!("../data/ts_characters.txt")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut chars = l.chars();
                let t = chars.next()?;
                (chars.next() == Some('\t')).then_some(())?;
                Some((t, chars.next()?))
            })
            .collect()
    })
}

/// `text` with every Traditional character that has a Simplified form replaced by it.
pub fn to_simplified(text: &str) -> String {
    let table = table();
    text.chars()
        .map(|c| table.get(&c).copied().unwrap_or(c))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn traditional_characters_become_simplified() {
        assert_eq!(
            super::to_simplified("數據清洗與訓練，ok"),
            "数据清洗与训练，ok"
        );
        assert!(super::table().len() > 4000);
    }
}
