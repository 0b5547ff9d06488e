//! The tokenizer a lake is built with: a Hugging Face `tokenizer.json`, identified by the
//! SHA-256 of its bytes, and a trainer for a byte-level BPE when a user has none yet.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;
use tokenlake_schemas::{LakeSchemaInfo, SCHEMA_VERSION, TokenWidth};

use crate::{IngestError, Result};

/// A loaded tokenizer with what the lake records about it.
pub struct LakeTokenizer {
    tokenizer: Tokenizer,
    json: Vec<u8>,
    sha256: String,
    /// One past the largest id the tokenizer can produce, added tokens included.
    vocab_size: usize,
}

impl std::fmt::Debug for LakeTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeTokenizer")
            .field("sha256", &self.sha256)
            .field("vocab_size", &self.vocab_size)
            .finish_non_exhaustive()
    }
}

impl LakeTokenizer {
    /// Loads `tokenizer.json`; the error names the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Self> {
        let json = std::fs::read(path).map_err(|e| IngestError::Tokenizer {
            path: path.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        })?;
        Self::from_json(json).map_err(|reason| IngestError::Tokenizer {
            path: path.to_path_buf(),
            reason,
        })
    }

    fn from_json(json: Vec<u8>) -> std::result::Result<Self, String> {
        let tokenizer = Tokenizer::from_bytes(&json)
            .map_err(|e| format!("not a Hugging Face tokenizer.json: {e}"))?;
        let vocab_size = tokenizer
            .get_vocab(true)
            .values()
            .max()
            .map(|max| *max as usize + 1)
            .ok_or("the tokenizer has an empty vocabulary")?;
        let sha256 = hex::encode(Sha256::digest(&json));
        Ok(LakeTokenizer {
            tokenizer,
            json,
            sha256,
            vocab_size,
        })
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn json(&self) -> &[u8] {
        &self.json
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn token_width(&self) -> TokenWidth {
        TokenWidth::for_vocab_size(self.vocab_size)
    }

    /// What a lake built with this tokenizer records in its schema.
    pub fn schema_info(&self) -> LakeSchemaInfo {
        LakeSchemaInfo {
            schema_version: SCHEMA_VERSION,
            token_width: self.token_width(),
            tokenizer_sha256: self.sha256.clone(),
            vocab_size: self.vocab_size,
        }
    }

    /// Token ids of one document, without special tokens: packing adds EOS between documents.
    pub fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("tokenizer failed: {e}"))
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> std::result::Result<String, String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| format!("tokenizer failed: {e}"))
    }
}

/// How to train a byte-level BPE tokenizer.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub vocab_size: usize,
    pub min_frequency: u64,
    /// Special tokens, given ids 0, 1, 2, … in this order.
    pub special_tokens: Vec<String>,
    pub out: PathBuf,
}

/// Trains a byte-level BPE (the GPT-2 / LLaMA-3 family of tokenizers) on `texts` and writes its
/// `tokenizer.json` to `options.out`. Deterministic for the same texts and options.
pub fn train_bpe<I, S>(texts: I, options: &TrainOptions) -> Result<LakeTokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
    use tokenizers::normalizers::unicode::NFC;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{AddedToken, TokenizerBuilder};

    let fail = |reason: String| IngestError::Tokenizer {
        path: options.out.clone(),
        reason,
    };
    if options.vocab_size < 256 + options.special_tokens.len() {
        return Err(IngestError::Options(format!(
            "vocabulary size {} is below the 256 byte tokens plus {} special tokens",
            options.vocab_size,
            options.special_tokens.len()
        )));
    }
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(options.vocab_size)
        .min_frequency(options.min_frequency)
        .special_tokens(
            options
                .special_tokens
                .iter()
                .map(|t| AddedToken::from(t.clone(), true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    // No prefix space: a document decodes back to exactly its text (as in LLaMA 3's tokenizer).
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(Some(NFC))
        .with_pre_tokenizer(Some(byte_level))
        .with_post_processor(Some(byte_level))
        .with_decoder(Some(byte_level))
        .build()
        .map_err(|e| fail(format!("building the tokenizer: {e}")))?;
    tokenizer
        .train(&mut trainer, texts)
        .map_err(|e| fail(format!("training: {e}")))?;
    let json = tokenizer
        .to_string(true)
        .map_err(|e| fail(format!("serialising: {e}")))?;
    // Written beside its name and renamed: a run stopped or failed on the way leaves no
    // half-written tokenizer.
    let partial = options.out.with_extension("json.partial");
    std::fs::write(&partial, &json)
        .and_then(|()| std::fs::rename(&partial, &options.out))
        .map_err(|e| fail(format!("cannot write it: {e}")))?;
    LakeTokenizer::from_json(json.into_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts() -> Vec<String> {
        (0..200)
            .map(|i| {
                format!(
                    "the quick brown fox {i} jumps over the lazy dog; 数据 {}",
                    i * 7
                )
            })
            .collect()
    }

    #[test]
    fn trained_tokenizer_round_trips_text_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let options = |name: &str| TrainOptions {
            vocab_size: 400,
            min_frequency: 2,
            special_tokens: vec!["<pad>".into(), "<s>".into(), "</s>".into()],
            out: dir.path().join(name),
        };
        let a = train_bpe(texts().into_iter(), &options("a.json")).unwrap();
        let b = train_bpe(texts().into_iter(), &options("b.json")).unwrap();
        assert_eq!(a.sha256(), b.sha256(), "training is deterministic");
        assert_eq!(a.token_width(), TokenWidth::U16);
        let text = "the lazy fox 数据 jumps";
        let ids = a.encode(text).unwrap();
        assert!(
            !ids.is_empty() && ids.iter().all(|&id| id > 2),
            "no special tokens"
        );
        assert_eq!(a.decode(&ids).unwrap(), text);

        let loaded = LakeTokenizer::load(&dir.path().join("a.json")).unwrap();
        assert_eq!(loaded.sha256(), a.sha256());
        assert_eq!(loaded.encode(text).unwrap(), ids);
    }

    #[test]
    fn bad_tokenizer_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, "{\"not\": \"a tokenizer\"}").unwrap();
        let err = LakeTokenizer::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("tokenizer.json") && err.contains("not a Hugging Face"),
            "{err}"
        );
        let missing = LakeTokenizer::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn large_vocabularies_need_u32_ids() {
        let vocab: serde_json::Map<String, serde_json::Value> = (0..70_000u32)
            .map(|i| (format!("w{i}"), serde_json::Value::from(i)))
            .collect();
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
        });
        let tok = LakeTokenizer::from_json(serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(tok.vocab_size(), 70_000);
        assert_eq!(tok.token_width(), TokenWidth::U32);
        assert_eq!(tok.encode("w69999 w1").unwrap(), vec![69_999, 1]);
    }
}
