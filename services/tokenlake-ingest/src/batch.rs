//! Turns tokenized documents into Arrow record batches of the documents table.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt32Builder, UInt64Builder};
use arrow_array::{ArrayRef, ListArray, RecordBatch, UInt16Array, UInt32Array};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, SchemaRef};
use tokenlake_schemas::{DocumentsSchema, TokenWidth};

/// One document ready to be stored.
#[derive(Debug, Clone)]
pub(crate) struct DocRow {
    pub doc_id: u64,
    pub source: String,
    pub lang: Option<String>,
    pub url: Option<String>,
    pub text: Option<String>,
    pub tokens: Vec<u32>,
    pub n_chars: u32,
    pub input: usize,
    pub line: u64,
}

/// Builds one batch in the lake's schema. `inputs` are the names of the input files, indexed
/// by [`DocRow::input`]. Token ids must already fit `width` (checked when tokenizing).
pub(crate) fn build_batch(
    schema: &SchemaRef,
    width: TokenWidth,
    ingest_id: &str,
    inputs: &[String],
    rows: &[DocRow],
) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut doc_id = UInt64Builder::with_capacity(n);
    let mut source = StringBuilder::with_capacity(n, n * 8);
    let mut lang = StringBuilder::with_capacity(n, n * 2);
    let mut url = StringBuilder::with_capacity(n, n * 32);
    let text_bytes = rows
        .iter()
        .map(|r| r.text.as_ref().map_or(0, String::len))
        .sum();
    let mut text = StringBuilder::with_capacity(n, text_bytes);
    let mut n_tokens = UInt32Builder::with_capacity(n);
    let mut n_chars = UInt32Builder::with_capacity(n);
    let mut ingest = StringBuilder::with_capacity(n, n * ingest_id.len());
    let mut input_path = StringBuilder::with_capacity(n, n * 16);
    let mut input_row = UInt64Builder::with_capacity(n);
    let mut lengths = Vec::with_capacity(n);
    for r in rows {
        doc_id.append_value(r.doc_id);
        source.append_value(&r.source);
        lang.append_option(r.lang.as_deref());
        url.append_option(r.url.as_deref());
        text.append_option(r.text.as_deref());
        n_tokens.append_value(r.tokens.len() as u32);
        n_chars.append_value(r.n_chars);
        ingest.append_value(ingest_id);
        input_path.append_value(&inputs[r.input]);
        input_row.append_value(r.line);
        lengths.push(r.tokens.len());
    }
    let all_tokens = rows.iter().flat_map(|r| r.tokens.iter().copied());
    let values: ArrayRef = match width {
        TokenWidth::U16 => Arc::new(UInt16Array::from_iter_values(all_tokens.map(|t| t as u16))),
        TokenWidth::U32 => Arc::new(UInt32Array::from_iter_values(all_tokens)),
    };
    let tokens = ListArray::try_new(
        DocumentsSchema::token_item_field(width),
        OffsetBuffer::from_lengths(lengths),
        values,
        None,
    )?;
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(doc_id.finish()),
            Arc::new(source.finish()),
            Arc::new(lang.finish()),
            Arc::new(url.finish()),
            Arc::new(text.finish()),
            Arc::new(tokens),
            Arc::new(n_tokens.finish()),
            Arc::new(n_chars.finish()),
            Arc::new(ingest.finish()),
            Arc::new(input_path.finish()),
            Arc::new(input_row.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt16Type;
    use tokenlake_schemas::{LakeSchemaInfo, SCHEMA_VERSION};

    #[test]
    fn batches_match_the_documents_schema() {
        let info = LakeSchemaInfo {
            schema_version: SCHEMA_VERSION,
            token_width: TokenWidth::U16,
            tokenizer_sha256: "00".repeat(32),
            vocab_size: 100,
        };
        let schema = DocumentsSchema::ingest_schema(&info);
        let row = |id: u64, tokens: Vec<u32>| DocRow {
            doc_id: id,
            source: "en".into(),
            lang: None,
            url: Some("u".into()),
            text: None,
            tokens,
            n_chars: 3,
            input: 0,
            line: id,
        };
        let batch = build_batch(
            &schema,
            TokenWidth::U16,
            "ing-1",
            &["a.jsonl".into()],
            &[row(1, vec![5, 6, 7]), row(2, vec![]), row(3, vec![9])],
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 3);
        let tokens = batch.column(5).as_list::<i32>();
        assert_eq!(
            tokens.value(0).as_primitive::<UInt16Type>().values(),
            &[5, 6, 7]
        );
        assert_eq!(tokens.value(1).len(), 0);
        assert_eq!(tokens.value(2).as_primitive::<UInt16Type>().values(), &[9]);
        assert!(DocumentsSchema::check(&batch.schema()).is_ok());
    }
}
