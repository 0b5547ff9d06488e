//! Input files: format detection by content, and a streaming reader of documents with their
//! line (or row) numbers. A line that cannot be read as a document is reported as rejected, with
//! the reason; an input that cannot be read at all is an error.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::{IngestError, IngestProgress, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    JsonLines(Compression),
    Parquet,
}

/// An input file that was opened, recognised and (for Parquet) checked for the text column.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub path: PathBuf,
    pub format: InputFormat,
    pub size: u64,
}

/// Which fields of a record hold what.
#[derive(Debug, Clone)]
pub(crate) struct FieldNames {
    pub text: String,
    pub id: String,
    pub url: String,
    pub lang: String,
    pub source: Option<String>,
}

/// One document as read from an input, before tokenization.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawDoc {
    pub id: Option<String>,
    pub text: String,
    pub url: Option<String>,
    pub lang: Option<String>,
    pub source: Option<String>,
}

/// One line or row: a document, or why it is not one.
#[derive(Debug)]
pub(crate) struct Record {
    pub line: u64,
    pub doc: std::result::Result<RawDoc, String>,
}

/// Opens `path`, recognises its format from its first bytes (Parquet `PAR1`, gzip, zstd,
/// otherwise JSON lines) and checks what can be checked before reading it.
pub fn probe_input(path: &Path, text_field: &str) -> Result<InputSpec> {
    let input_err = |reason: String| IngestError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let (format, size) = sniff_format(path)?;
    if format == InputFormat::Parquet {
        let file = File::open(path).map_err(|e| input_err(format!("cannot open it: {e}")))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| input_err(format!("not a readable Parquet file: {e}")))?;
        let schema = builder.schema();
        let field = schema.field_with_name(text_field).map_err(|_| {
            input_err(format!(
                "has no column {text_field:?} (columns: {}); pass --text-field",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if !matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return Err(input_err(format!(
                "column {text_field:?} is {}, not a string column",
                field.data_type()
            )));
        }
    }
    Ok(InputSpec {
        path: path.to_path_buf(),
        format,
        size,
    })
}

/// Recognises a file's format from its first bytes (Parquet `PAR1`, gzip, zstd, otherwise JSON
/// lines); returns it with the file's size.
pub(crate) fn sniff_format(path: &Path) -> Result<(InputFormat, u64)> {
    let input_err = |reason: String| IngestError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| input_err(format!("cannot open it: {e}")))?;
    if !meta.is_file() {
        return Err(input_err("not a regular file".into()));
    }
    let mut file = File::open(path).map_err(|e| input_err(format!("cannot open it: {e}")))?;
    let mut magic = [0u8; 4];
    let n =
        read_up_to(&mut file, &mut magic).map_err(|e| input_err(format!("cannot read it: {e}")))?;
    let format = match &magic[..n] {
        b"PAR1" => InputFormat::Parquet,
        [0x1f, 0x8b, ..] => InputFormat::JsonLines(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd] => InputFormat::JsonLines(Compression::Zstd),
        _ => InputFormat::JsonLines(Compression::None),
    };
    Ok((format, meta.len()))
}

/// The decompressed bytes of a JSON lines input read through `inner`.
pub(crate) fn decompressed<'r>(
    path: &Path,
    compression: Compression,
    inner: impl Read + 'r,
) -> Result<Box<dyn Read + 'r>> {
    Ok(match compression {
        Compression::None => Box::new(inner),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(inner)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(inner).map_err(|source| {
                IngestError::Read {
                    path: path.to_path_buf(),
                    line: 0,
                    source,
                }
            })?)
        }
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Counts the bytes read from the file underneath any decompressor, for progress.
struct CountingReader<R> {
    inner: R,
    progress: Arc<IngestProgress>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        IngestProgress::add(&self.progress.input_bytes_read, n as u64);
        Ok(n)
    }
}

/// Reads every record of `input` in order and hands it to `each`; stops early with
/// [`IngestError::Interrupted`] once `cancel` is set.
pub(crate) fn read_records(
    input: &InputSpec,
    fields: &FieldNames,
    progress: &Arc<IngestProgress>,
    cancel: &AtomicBool,
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    let file = File::open(&input.path).map_err(|source| IngestError::Read {
        path: input.path.clone(),
        line: 0,
        source,
    })?;
    let counted = CountingReader {
        inner: file,
        progress: progress.clone(),
    };
    match input.format {
        InputFormat::JsonLines(compression) => {
            let reader = decompressed(&input.path, compression, counted)?;
            read_json_lines(
                &input.path,
                BufReader::with_capacity(1 << 20, reader),
                fields,
                cancel,
                each,
            )
        }
        InputFormat::Parquet => read_parquet(&input.path, fields, cancel, each),
    }
}

fn read_json_lines(
    path: &Path,
    mut reader: impl BufRead,
    fields: &FieldNames,
    cancel: &AtomicBool,
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted);
        }
        buf.clear();
        line += 1;
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| IngestError::Read {
                path: path.to_path_buf(),
                line,
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        each(Record {
            line,
            doc: parse_json_line(&buf, fields),
        })?;
    }
}

/// Parses one JSON line into a document, or says why it is not one.
pub(crate) fn parse_json_line(
    bytes: &[u8],
    fields: &FieldNames,
) -> std::result::Result<RawDoc, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("not a JSON object".into());
    };
    let text = match object.remove(&fields.text) {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => return Err(format!("missing text field {:?}", fields.text)),
        Some(other) => {
            return Err(format!(
                "text field {:?} is a {}, not a string",
                fields.text,
                json_kind(&other)
            ));
        }
    };
    let mut optional = |name: &str| -> std::result::Result<Option<String>, String> {
        match object.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(format!(
                "field {name:?} is a {}, not a string or number",
                json_kind(&other)
            )),
        }
    };
    Ok(RawDoc {
        id: optional(&fields.id)?,
        url: optional(&fields.url)?,
        lang: optional(&fields.lang)?,
        source: match &fields.source {
            Some(name) => optional(name)?,
            None => None,
        },
        text,
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn read_parquet(
    path: &Path,
    fields: &FieldNames,
    cancel: &AtomicBool,
    each: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    let parquet_err = |source| IngestError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| IngestError::Read {
        path: path.to_path_buf(),
        line: 0,
        source,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_err)?
        .with_batch_size(1024)
        .build()
        .map_err(parquet_err)?;
    let mut row = 0u64;
    for batch in reader {
        if cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted);
        }
        let batch = batch.map_err(|e| parquet_err(e.into()))?;
        let column = |name: &str| -> Result<Option<ArrayRef>> {
            let Some(array) = batch.column_by_name(name) else {
                return Ok(None);
            };
            arrow_cast::cast(array, &DataType::Utf8)
                .map(Some)
                .map_err(|e| IngestError::Input {
                    path: path.to_path_buf(),
                    reason: format!("column {name:?} cannot be read as text: {e}"),
                })
        };
        let text = column(&fields.text)?.ok_or_else(|| IngestError::Input {
            path: path.to_path_buf(),
            reason: format!("has no column {:?}", fields.text),
        })?;
        let id = column(&fields.id)?;
        let url = column(&fields.url)?;
        let lang = column(&fields.lang)?;
        let source = match &fields.source {
            Some(name) => column(name)?,
            None => None,
        };
        for i in 0..batch.num_rows() {
            row += 1;
            let doc = if text.is_null(i) {
                Err(format!("text column {:?} is null", fields.text))
            } else {
                Ok(RawDoc {
                    text: string_at(&text, i).unwrap_or_default(),
                    id: id.as_ref().and_then(|a| string_at(a, i)),
                    url: url.as_ref().and_then(|a| string_at(a, i)),
                    lang: lang.as_ref().and_then(|a| string_at(a, i)),
                    source: source.as_ref().and_then(|a| string_at(a, i)),
                })
            };
            each(Record { line: row, doc })?;
        }
    }
    Ok(())
}

fn string_at(array: &ArrayRef, i: usize) -> Option<String> {
    array
        .is_valid(i)
        .then(|| array.as_string::<i32>().value(i).to_string())
}

/// Texts of the first `max_docs` readable documents of `paths`, for training a tokenizer;
/// lines that are not documents are skipped.
pub fn read_texts(paths: &[PathBuf], text_field: &str, max_docs: usize) -> Result<Vec<String>> {
    let fields = FieldNames {
        text: text_field.to_string(),
        id: String::new(),
        url: String::new(),
        lang: String::new(),
        source: None,
    };
    let progress = Arc::new(IngestProgress::default());
    let never = AtomicBool::new(false);
    let mut texts = Vec::new();
    for path in paths {
        let spec = probe_input(path, text_field)?;
        let result = read_records(&spec, &fields, &progress, &never, &mut |record| {
            if texts.len() >= max_docs {
                // Stops reading this input early; not an error for the caller.
                return Err(IngestError::Interrupted);
            }
            if let Ok(doc) = record.doc {
                texts.push(doc.text);
            }
            Ok(())
        });
        match result {
            Ok(()) | Err(IngestError::Interrupted) => {}
            Err(err) => return Err(err),
        }
        if texts.len() >= max_docs {
            break;
        }
    }
    Ok(texts)
}

/// Reads every document of `paths` with the ingest's default field names (`id`, `url`, `lang`
/// parsed as an ingest parses them) and hands each text to `each`, counting input bytes in
/// `progress`: the read-and-parse floor under any ingest, which `tokenlake bench ingest`
/// measures. Lines that are not documents are skipped.
pub fn for_each_text(
    paths: &[PathBuf],
    text_field: &str,
    progress: &Arc<IngestProgress>,
    each: &mut dyn FnMut(String),
) -> Result<()> {
    let fields = FieldNames {
        text: text_field.to_string(),
        id: "id".into(),
        url: "url".into(),
        lang: "lang".into(),
        source: None,
    };
    let never = AtomicBool::new(false);
    for path in paths {
        let spec = probe_input(path, text_field)?;
        read_records(&spec, &fields, progress, &never, &mut |record| {
            if let Ok(doc) = record.doc {
                each(doc.text);
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Only used by tests to build Parquet inputs.
#[cfg(test)]
pub(crate) fn write_parquet(path: &Path, batch: &arrow_array::RecordBatch) {
    let file = File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use std::io::Write;

    fn fields() -> FieldNames {
        FieldNames {
            text: "text".into(),
            id: "id".into(),
            url: "url".into(),
            lang: "lang".into(),
            source: None,
        }
    }

    #[test]
    fn json_lines_give_documents_or_reasons() {
        let f = fields();
        let doc = parse_json_line(br#"{"id": 7, "text": "hi", "url": "u"}"#, &f).unwrap();
        assert_eq!(doc.id.as_deref(), Some("7"));
        assert_eq!(doc.url.as_deref(), Some("u"));
        assert_eq!(doc.text, "hi");
        let reason = |line: &[u8]| parse_json_line(line, &f).unwrap_err();
        assert!(reason(b"{\"text\": ").starts_with("bad JSON"));
        assert_eq!(reason(br#"{"body": "x"}"#), "missing text field \"text\"");
        assert_eq!(
            reason(br#"{"text": 3}"#),
            "text field \"text\" is a number, not a string"
        );
        assert_eq!(reason(b"[1]"), "not a JSON object");
        assert_eq!(reason(b"{\"text\": \"\xff\"}"), "invalid UTF-8 at byte 10");
        assert!(reason(br#"{"text": "x", "id": [1]}"#).contains("\"id\""));
    }

    fn collect(spec: &InputSpec, fields: &FieldNames) -> Vec<Record> {
        let mut out = Vec::new();
        read_records(
            spec,
            fields,
            &Arc::new(IngestProgress::default()),
            &AtomicBool::new(false),
            &mut |r| {
                out.push(r);
                Ok(())
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn compressed_json_lines_are_recognised_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let body = "{\"text\": \"a\"}\n\n{\"text\": 1}\r\n{\"text\": \"c\"}";
        let plain = dir.path().join("plain.data");
        std::fs::write(&plain, body).unwrap();
        let gz = dir.path().join("x.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
        enc.write_all(body.as_bytes()).unwrap();
        enc.finish().unwrap();
        let zst = dir.path().join("x.jsonl.zst");
        std::fs::write(&zst, zstd::encode_all(body.as_bytes(), 3).unwrap()).unwrap();

        for (path, want) in [
            (&plain, InputFormat::JsonLines(Compression::None)),
            (&gz, InputFormat::JsonLines(Compression::Gzip)),
            (&zst, InputFormat::JsonLines(Compression::Zstd)),
        ] {
            let spec = probe_input(path, "text").unwrap();
            assert_eq!(spec.format, want);
            let records = collect(&spec, &fields());
            let lines: Vec<u64> = records.iter().map(|r| r.line).collect();
            assert_eq!(
                lines,
                vec![1, 3, 4],
                "blank lines are skipped, numbering is kept"
            );
            assert!(records[1].doc.is_err());
            assert_eq!(records[2].doc.as_ref().unwrap().text, "c");
        }
    }

    #[test]
    fn parquet_inputs_cast_ids_and_reject_null_texts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs.parquet");
        let batch = RecordBatch::try_from_iter([
            (
                "body",
                Arc::new(StringArray::from(vec![Some("one"), None, Some("three")])) as ArrayRef,
            ),
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        ])
        .unwrap();
        write_parquet(&path, &batch);

        let err = probe_input(&path, "text").unwrap_err().to_string();
        assert!(
            err.contains("no column \"text\"") && err.contains("body"),
            "{err}"
        );

        let spec = probe_input(&path, "body").unwrap();
        assert_eq!(spec.format, InputFormat::Parquet);
        let mut f = fields();
        f.text = "body".into();
        let out = collect(&spec, &f);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].doc.as_ref().unwrap().id.as_deref(), Some("1"));
        assert!(out[1].doc.is_err());
        assert_eq!(out[2].line, 3);
    }

    #[test]
    fn missing_inputs_are_named() {
        let err = probe_input(Path::new("/nonexistent/input.jsonl"), "text")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/input.jsonl") && err.contains("cannot open"),
            "{err}"
        );
    }
}
