//! What an ingest is asked to do: its lake, inputs, tokenizer, fields and the optional text
//! transform and shard.

use std::path::PathBuf;

use tokenlake_lake::LakeLocation;

use crate::shard::ShardOptions;

/// Rewrites a text, or returns None to keep it.
pub type TextFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// See [`IngestOptions::text_transform`].
#[derive(Clone)]
pub struct TextTransform(pub std::sync::Arc<TextFn>);

impl std::fmt::Debug for TextTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextTransform")
    }
}

/// What to ingest, from where, and how to read it.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub lake: LakeLocation,
    pub inputs: Vec<PathBuf>,
    /// How each input is named in commit properties and rejects; the paths when `None`.
    /// Remote inputs staged to local files keep their URIs here.
    pub input_names: Option<Vec<String>>,
    /// Source name of every document, unless `source_field` names a field that has one.
    pub source: String,
    pub source_field: Option<String>,
    pub tokenizer: PathBuf,
    pub text_field: String,
    pub id_field: String,
    pub url_field: String,
    pub lang_field: String,
    pub keep_text: bool,
    /// Rewrites each text before it is tokenized and stored (curation's preprocessing);
    /// returns None to keep the text as it is. The doc_id is taken from the text as read, so
    /// a document keeps its identity whatever preprocessing does.
    pub text_transform: Option<TextTransform>,
    /// Where rejected lines go (a local file); by default `<lake>/rejects/<ingest id>.jsonl`,
    /// uploaded there after the run when the lake is remote.
    pub rejects: Option<PathBuf>,
    /// A chunk (the unit of parallel tokenization and of one Arrow batch) ends at this many
    /// documents or this many bytes of text, whichever comes first.
    pub chunk_docs: usize,
    pub chunk_bytes: usize,
    /// One shard of a sharded ingest: write without committing and leave the shard's results
    /// for `tokenlake commit` (see [`crate::shard`]).
    pub shard: Option<ShardOptions>,
}

impl IngestOptions {
    /// Options with the usual field names and chunk sizes.
    pub fn new(lake: LakeLocation, inputs: Vec<PathBuf>, source: &str, tokenizer: PathBuf) -> Self {
        IngestOptions {
            lake,
            inputs,
            input_names: None,
            source: source.to_string(),
            source_field: None,
            tokenizer,
            text_field: "text".into(),
            id_field: "id".into(),
            url_field: "url".into(),
            lang_field: "lang".into(),
            keep_text: true,
            text_transform: None,
            rejects: None,
            chunk_docs: 1024,
            chunk_bytes: 8 << 20,
            shard: None,
        }
    }
}
