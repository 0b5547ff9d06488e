//! Target sets for similarity and contamination: test questions as JSON lines or Parquet.
//!
//! A target's text is the named fields (`--field`), or else every string in the record, nested
//! ones included, joined by newlines (a JSON object's in key order; order does not matter to
//! the scores): a multiple-choice question is its question and its
//! choices, and a record need not follow any one benchmark's field names.

use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

/// Why a target file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("target file {path}: {message}")]
pub struct TargetError {
    pub path: String,
    pub message: String,
}

/// The target texts of `path` (`.parquet` by name, JSON lines, plain or gzip, otherwise).
pub fn load_targets(path: &Path, fields: &[String]) -> Result<Vec<String>, TargetError> {
    let fail = |message: String| TargetError {
        path: path.display().to_string(),
        message,
    };
    let name = path.to_string_lossy().to_ascii_lowercase();
    let texts = if name.ends_with(".parquet") {
        load_parquet(path, fields).map_err(fail)?
    } else {
        load_jsonl(path, fields, name.ends_with(".gz")).map_err(fail)?
    };
    let texts: Vec<String> = texts.into_iter().filter(|t| !t.trim().is_empty()).collect();
    if texts.is_empty() {
        return Err(fail(match fields {
            [] => "holds no text: no record has a string value".into(),
            _ => format!("holds no text in the fields {}", fields.join(", ")),
        }));
    }
    Ok(texts)
}

fn load_jsonl(path: &Path, fields: &[String], gzip: bool) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut texts = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: cannot be read: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
        let mut parts = Vec::new();
        if fields.is_empty() {
            strings_in(&value, &mut parts);
        } else {
            for f in fields {
                if let Some(v) = value.get(f) {
                    strings_in(v, &mut parts);
                }
            }
        }
        texts.push(parts.join("\n"));
    }
    Ok(texts)
}

fn strings_in(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

fn load_parquet(path: &Path, fields: &[String]) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("not Parquet: {e}"))?;
    let schema = reader.schema().clone();
    for f in fields {
        if schema.field_with_name(f).is_err() {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(format!("has no column {f:?} (it has {})", names.join(", ")));
        }
    }
    let mut texts = Vec::new();
    for batch in reader.build().map_err(|e| format!("not Parquet: {e}"))? {
        let batch = batch.map_err(|e| format!("cannot be read: {e}"))?;
        texts.extend(batch_texts(&batch, fields));
    }
    Ok(texts)
}

/// Each row's string columns (the named ones, or all), joined by newlines.
fn batch_texts(batch: &RecordBatch, fields: &[String]) -> Vec<String> {
    let columns: Vec<&dyn Array> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| fields.is_empty() || fields.contains(f.name()))
        .map(|(_, c)| c.as_ref())
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            let mut parts = Vec::new();
            for c in &columns {
                strings_at(*c, row, &mut parts);
            }
            parts.join("\n")
        })
        .collect()
}

fn strings_at(array: &dyn Array, row: usize, out: &mut Vec<String>) {
    if array.is_null(row) {
        return;
    }
    match array.data_type() {
        DataType::Utf8 => out.push(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => out.push(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => out.push(array.as_string_view().value(row).to_string()),
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            (0..items.len()).for_each(|i| strings_at(items.as_ref(), i, out));
        }
        DataType::LargeList(_) => {
            let items = array.as_list::<i64>().value(row);
            (0..items.len()).for_each(|i| strings_at(items.as_ref(), i, out));
        }
        DataType::Struct(_) => {
            for c in array.as_struct().columns() {
                strings_at(c.as_ref(), row, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_give_every_string_or_the_named_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(
            &path,
            "{\"question\": \"2+2?\", \"choices\": [\"3\", \"4\"], \"answer\": 1}\n\n{\"question\": \"Capital of France?\"}\n",
        )
        .unwrap();
        assert_eq!(
            load_targets(&path, &[]).unwrap(),
            vec!["3\n4\n2+2?", "Capital of France?"]
        );
        assert_eq!(
            load_targets(&path, &["question".into()]).unwrap(),
            vec!["2+2?", "Capital of France?"]
        );
    }

    #[test]
    fn empty_unreadable_and_malformed_files_are_refused_with_where() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "\n").unwrap();
        let err = load_targets(&empty, &[]).unwrap_err().to_string();
        assert!(
            err.contains("empty.jsonl") && err.contains("no text"),
            "{err}"
        );
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, "{\"q\": \"ok\"}\n{not json\n").unwrap();
        let err = load_targets(&bad, &[]).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("not JSON"), "{err}");
        let err = load_targets(&dir.path().join("missing.jsonl"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be read"), "{err}");
        let not_parquet = dir.path().join("x.parquet");
        std::fs::write(&not_parquet, "nope").unwrap();
        let err = load_targets(&not_parquet, &[]).unwrap_err().to_string();
        assert!(err.contains("not Parquet"), "{err}");
    }

    #[test]
    fn parquet_rows_join_their_string_columns() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let batch = RecordBatch::try_from_iter([
            (
                "question",
                Arc::new(arrow_array::StringArray::from(vec![
                    "Why is the sky blue?",
                    "Who?",
                ])) as arrow_array::ArrayRef,
            ),
            (
                "id",
                Arc::new(arrow_array::Int64Array::from(vec![1, 2])) as arrow_array::ArrayRef,
            ),
        ])
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        assert_eq!(
            load_targets(&path, &[]).unwrap(),
            vec!["Why is the sky blue?", "Who?"]
        );
        let err = load_targets(&path, &["prompt".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column \"prompt\""), "{err}");
    }
}
