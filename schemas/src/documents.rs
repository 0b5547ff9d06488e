//! The documents table: one row per document, described in `docs/documents-table.md`.
//!
//! The columns written at ingest are fixed here. Label columns (quality, rule signals,
//! duplicates, attributes) are added later as new Lance versions by schema evolution, so
//! [`DocumentsSchema::check`] accepts extra columns and only insists on the ingest columns.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::TokenWidth;

/// Version of the ingest columns' layout, kept in the schema metadata so that a later release
/// can recognise (and migrate) lakes written by this one.
pub const SCHEMA_VERSION: u32 = 1;

/// Column names of the documents table.
pub mod columns {
    /// u64, stable across re-ingests: xxh3 of source + the input's id, or of source + text.
    pub const DOC_ID: &str = "doc_id";
    pub const SOURCE: &str = "source";
    pub const LANG: &str = "lang";
    pub const URL: &str = "url";
    pub const TEXT: &str = "text";
    pub const TOKENS: &str = "tokens";
    pub const N_TOKENS: &str = "n_tokens";
    pub const N_CHARS: &str = "n_chars";
    pub const INGEST_ID: &str = "ingest_id";
    pub const INPUT_PATH: &str = "input_path";
    pub const INPUT_ROW: &str = "input_row";

    /// Label columns of `tokenlake curate` (added as a new version, never at ingest).
    /// u64: the doc_id of the cluster's keeper (the earliest document in ingest order).
    pub const DUP_CLUSTER: &str = "dup_cluster";
    /// bool: a copy of an earlier document.
    pub const IS_DUP: &str = "is_dup";
    /// utf8, null for keepers: url, exact, simhash or minhash.
    pub const DUP_KIND: &str = "dup_kind";
    /// f32: how consistently the text reads as `lang`, 0–1.
    pub const LANG_SCORE: &str = "lang_score";
    /// u32: mojibake sequences and U+FFFD characters preprocessing repairs or drops.
    pub const ENCODING_REPAIRS: &str = "encoding_repairs";
    /// bool: whether preprocessing changes the text.
    pub const PREPROCESS_CHANGED: &str = "preprocess_changed";
    /// f32: perplexity under the pipeline's n-gram model for `lang`.
    pub const PPL: &str = "ppl";
    /// u8: 0 high, 1 medium, 2 low (perplexity percentile within the language).
    pub const QUALITY_TIER: &str = "quality_tier";
    /// u64: one bit per failed rule check.
    pub const RULE_FLAGS: &str = "rule_flags";
    // The rule signals' columns and the `keep_*` columns are named by the rule sets that
    // define them (`tokenlake_curate::rules::SIGNALS`, `RuleSet::keep_column`).
}

/// Keys of the Arrow schema metadata that describe how a lake's tokens were made.
pub mod metadata_keys {
    pub const SCHEMA_VERSION: &str = "tokenlake.schema_version";
    pub const TOKEN_WIDTH: &str = "tokenlake.token_width";
    pub const TOKENIZER_SHA256: &str = "tokenlake.tokenizer_sha256";
    pub const VOCAB_SIZE: &str = "tokenlake.vocab_size";
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("documents table has no column {column:?}; is this a tokenlake lake?")]
    MissingColumn { column: &'static str },
    #[error("documents table column {column:?} is {found}, expected {expected}")]
    WrongType {
        column: &'static str,
        found: DataType,
        expected: String,
    },
    #[error("documents table schema metadata lacks {key:?}; the lake was not written by tokenlake")]
    MissingMetadata { key: &'static str },
    #[error("documents table schema metadata {key:?} = {value:?} is invalid: {reason}")]
    BadMetadata {
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// What a lake's schema says about its tokens: fixed by the first ingest, checked by every
/// later one so that one lake never mixes tokenizers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeSchemaInfo {
    pub schema_version: u32,
    pub token_width: TokenWidth,
    pub tokenizer_sha256: String,
    pub vocab_size: usize,
}

impl LakeSchemaInfo {
    fn to_metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            (
                metadata_keys::SCHEMA_VERSION.to_string(),
                self.schema_version.to_string(),
            ),
            (
                metadata_keys::TOKEN_WIDTH.to_string(),
                self.token_width.to_string(),
            ),
            (
                metadata_keys::TOKENIZER_SHA256.to_string(),
                self.tokenizer_sha256.clone(),
            ),
            (
                metadata_keys::VOCAB_SIZE.to_string(),
                self.vocab_size.to_string(),
            ),
        ])
    }

    fn from_metadata(metadata: &HashMap<String, String>) -> Result<Self, SchemaError> {
        let get = |key: &'static str| {
            metadata
                .get(key)
                .ok_or(SchemaError::MissingMetadata { key })
        };
        let bad = |key: &'static str, value: &str, reason: String| SchemaError::BadMetadata {
            key,
            value: value.to_string(),
            reason,
        };
        let version = get(metadata_keys::SCHEMA_VERSION)?;
        let schema_version: u32 = version
            .parse()
            .map_err(|e| bad(metadata_keys::SCHEMA_VERSION, version, format!("{e}")))?;
        if schema_version > SCHEMA_VERSION {
            return Err(bad(
                metadata_keys::SCHEMA_VERSION,
                version,
                format!("this tokenlake reads schema versions up to {SCHEMA_VERSION}; upgrade it"),
            ));
        }
        let width = get(metadata_keys::TOKEN_WIDTH)?;
        let token_width = width
            .parse()
            .map_err(|e| bad(metadata_keys::TOKEN_WIDTH, width, e))?;
        let vocab = get(metadata_keys::VOCAB_SIZE)?;
        let vocab_size = vocab
            .parse()
            .map_err(|e| bad(metadata_keys::VOCAB_SIZE, vocab, format!("{e}")))?;
        // The digest names a side file (`tokenizers/<sha256>.json`): anything but 64 hex digits
        // could lead a path out of the lake.
        let sha = get(metadata_keys::TOKENIZER_SHA256)?;
        if !is_sha256_hex(sha) {
            return Err(bad(
                metadata_keys::TOKENIZER_SHA256,
                sha,
                "not a SHA-256 digest (64 hexadecimal digits)".into(),
            ));
        }
        Ok(LakeSchemaInfo {
            schema_version,
            token_width,
            tokenizer_sha256: sha.clone(),
            vocab_size,
        })
    }
}

/// Whether `s` is a SHA-256 digest in hex: what a tokenizer's side-file name must be.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Builds and checks the Arrow schema of the documents table.
pub struct DocumentsSchema;

impl DocumentsSchema {
    /// The field of one token id inside the `tokens` list.
    pub fn token_item_field(width: TokenWidth) -> Arc<Field> {
        Arc::new(Field::new("item", width.arrow_type(), false))
    }

    /// Whether `name` is one of the columns every ingest writes (not a label column).
    pub fn is_ingest_column(name: &str) -> bool {
        use columns::*;
        [
            DOC_ID, SOURCE, LANG, URL, TEXT, TOKENS, N_TOKENS, N_CHARS, INGEST_ID, INPUT_PATH,
            INPUT_ROW,
        ]
        .contains(&name)
    }

    /// The schema an ingest writes, with `info` in its metadata.
    pub fn ingest_schema(info: &LakeSchemaInfo) -> SchemaRef {
        use columns::*;
        let fields = vec![
            Field::new(DOC_ID, DataType::UInt64, false),
            Field::new(SOURCE, DataType::Utf8, false),
            Field::new(LANG, DataType::Utf8, true),
            Field::new(URL, DataType::Utf8, true),
            Field::new(TEXT, DataType::Utf8, true),
            Field::new(
                TOKENS,
                DataType::List(Self::token_item_field(info.token_width)),
                false,
            ),
            Field::new(N_TOKENS, DataType::UInt32, false),
            Field::new(N_CHARS, DataType::UInt32, false),
            Field::new(INGEST_ID, DataType::Utf8, false),
            Field::new(INPUT_PATH, DataType::Utf8, false),
            Field::new(INPUT_ROW, DataType::UInt64, false),
        ];
        Arc::new(Schema::new_with_metadata(fields, info.to_metadata()))
    }

    /// Checks that `schema` holds the ingest columns with their types (label columns may be
    /// present too) and returns what its metadata says about the tokens.
    pub fn check(schema: &Schema) -> Result<LakeSchemaInfo, SchemaError> {
        let info = LakeSchemaInfo::from_metadata(schema.metadata())?;
        let expected = Self::ingest_schema(&info);
        for want in expected.fields() {
            let name = static_column_name(want.name());
            let found = schema
                .field_with_name(want.name())
                .map_err(|_| SchemaError::MissingColumn { column: name })?;
            if !same_type(found.data_type(), want.data_type()) {
                return Err(SchemaError::WrongType {
                    column: name,
                    found: found.data_type().clone(),
                    expected: want.data_type().to_string(),
                });
            }
        }
        Ok(info)
    }
}

/// Compares types ignoring list item names and nullability, which storage layers may rewrite.
fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::List(x), DataType::List(y)) | (DataType::LargeList(x), DataType::List(y)) => {
            x.data_type() == y.data_type()
        }
        (DataType::LargeUtf8, DataType::Utf8) => true,
        _ => a == b,
    }
}

fn static_column_name(name: &str) -> &'static str {
    use columns::*;
    [
        DOC_ID, SOURCE, LANG, URL, TEXT, TOKENS, N_TOKENS, N_CHARS, INGEST_ID, INPUT_PATH,
        INPUT_ROW,
    ]
    .into_iter()
    .find(|c| *c == name)
    .unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(width: TokenWidth) -> LakeSchemaInfo {
        LakeSchemaInfo {
            schema_version: SCHEMA_VERSION,
            token_width: width,
            tokenizer_sha256: "ab".repeat(32),
            vocab_size: 8192,
        }
    }

    #[test]
    fn ingest_schema_round_trips_its_metadata() {
        for width in [TokenWidth::U16, TokenWidth::U32] {
            let schema = DocumentsSchema::ingest_schema(&info(width));
            assert_eq!(DocumentsSchema::check(&schema).unwrap(), info(width));
        }
    }

    #[test]
    fn label_columns_are_accepted_and_missing_ingest_columns_are_not() {
        let schema = DocumentsSchema::ingest_schema(&info(TokenWidth::U16));
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("perplexity", DataType::Float32, true)));
        let with_label = Schema::new_with_metadata(fields.clone(), schema.metadata().clone());
        assert!(DocumentsSchema::check(&with_label).is_ok());

        fields.retain(|f| f.name() != columns::N_TOKENS);
        let without = Schema::new_with_metadata(fields, schema.metadata().clone());
        let err = DocumentsSchema::check(&without).unwrap_err().to_string();
        assert!(err.contains("n_tokens"), "{err}");
    }

    #[test]
    fn a_tokenizer_digest_that_is_not_one_is_refused_before_it_names_a_path() {
        let schema = DocumentsSchema::ingest_schema(&info(TokenWidth::U16));
        for bad in ["../../../etc/passwd", "ab", &"zz".repeat(32)] {
            let mut metadata = schema.metadata().clone();
            metadata.insert(metadata_keys::TOKENIZER_SHA256.into(), bad.to_string());
            let hostile = Schema::new_with_metadata(schema.fields().clone(), metadata);
            let err = DocumentsSchema::check(&hostile).unwrap_err().to_string();
            assert!(
                err.contains("tokenizer_sha256") && err.contains("SHA-256"),
                "{err}"
            );
        }
    }

    #[test]
    fn metadata_from_a_newer_release_is_refused() {
        let schema = DocumentsSchema::ingest_schema(&info(TokenWidth::U16));
        let mut metadata = schema.metadata().clone();
        metadata.insert(metadata_keys::SCHEMA_VERSION.into(), "99".into());
        let newer = Schema::new_with_metadata(schema.fields().clone(), metadata);
        let err = DocumentsSchema::check(&newer).unwrap_err().to_string();
        assert!(err.contains("upgrade"), "{err}");
    }
}
