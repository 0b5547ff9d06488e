//! The width of one stored token id, chosen once per lake from the tokenizer's vocabulary.

use std::fmt;
use std::str::FromStr;

use arrow_schema::DataType;

/// Token ids are stored as `list<u16>` when every id fits, halving the lake and the token cache;
/// otherwise as `list<u32>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenWidth {
    U16,
    U32,
}

impl TokenWidth {
    /// Picks the narrowest width that holds every id of a vocabulary of `vocab_size` entries
    /// (ids `0..vocab_size`).
    pub fn for_vocab_size(vocab_size: usize) -> Self {
        if vocab_size <= usize::from(u16::MAX) + 1 {
            TokenWidth::U16
        } else {
            TokenWidth::U32
        }
    }

    /// Bytes per token id.
    pub fn bytes(self) -> usize {
        match self {
            TokenWidth::U16 => 2,
            TokenWidth::U32 => 4,
        }
    }

    /// The Arrow type of one token id.
    pub fn arrow_type(self) -> DataType {
        match self {
            TokenWidth::U16 => DataType::UInt16,
            TokenWidth::U32 => DataType::UInt32,
        }
    }

    /// Whether `id` can be stored at this width.
    pub fn holds(self, id: u32) -> bool {
        match self {
            TokenWidth::U16 => id <= u32::from(u16::MAX),
            TokenWidth::U32 => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenWidth::U16 => "u16",
            TokenWidth::U32 => "u32",
        }
    }
}

impl fmt::Display for TokenWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenWidth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "u16" => Ok(TokenWidth::U16),
            "u32" => Ok(TokenWidth::U32),
            other => Err(format!(
                "unknown token width {other:?}, expected u16 or u32"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_follows_the_largest_id() {
        assert_eq!(TokenWidth::for_vocab_size(32_000), TokenWidth::U16);
        assert_eq!(TokenWidth::for_vocab_size(65_536), TokenWidth::U16);
        assert_eq!(TokenWidth::for_vocab_size(65_537), TokenWidth::U32);
        assert!(TokenWidth::U16.holds(65_535));
        assert!(!TokenWidth::U16.holds(65_536));
        assert_eq!("u32".parse::<TokenWidth>().unwrap(), TokenWidth::U32);
        assert!("u8".parse::<TokenWidth>().is_err());
    }
}
