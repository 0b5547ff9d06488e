//! Label files: one row per document, a `doc_id` and label columns (e.g. human ratings of
//! coherence or toxicity), as JSON lines (plain, gzip, zstd) or Parquet. Read whole into one
//! Arrow batch for `Lake::add_label_columns`; label files hold scalars, a few bytes per document.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use tokenlake_schemas::columns;

use crate::input::{InputFormat, decompressed, sniff_format};
use crate::{IngestError, Result};

/// Reads a label file into one batch: `doc_id` (u64) first, then the label columns in name
/// order. JSON types map to Boolean, Int64, Float64 (integers and decimals mixed) and Utf8.
pub fn read_label_file(path: &Path) -> Result<RecordBatch> {
    let (format, _) = sniff_format(path)?;
    let batch = match format {
        InputFormat::JsonLines(compression) => {
            let file =
                File::open(path).map_err(|e| input_err(path, format!("cannot open it: {e}")))?;
            let reader = BufReader::new(decompressed(path, compression, file)?);
            read_json_labels(path, reader)?
        }
        InputFormat::Parquet => read_parquet_labels(path)?,
    };
    if batch.num_rows() == 0 {
        return Err(input_err(path, "holds no labels".into()));
    }
    if batch.num_columns() < 2 {
        return Err(input_err(
            path,
            "has no label columns besides doc_id".into(),
        ));
    }
    Ok(batch)
}

fn input_err(path: &Path, reason: String) -> IngestError {
    IngestError::Input {
        path: path.to_path_buf(),
        reason,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Str => "a string",
        }
    }
}

/// One label column being read: its kind, the line that fixed it, and one value per row.
struct ColumnState {
    kind: Option<(Kind, u64)>,
    values: Vec<Value>,
}

fn read_json_labels(path: &Path, reader: impl BufRead) -> Result<RecordBatch> {
    let mut ids: Vec<u64> = Vec::new();
    let mut columns: BTreeMap<String, ColumnState> = BTreeMap::new();
    for (index, line) in reader.lines().enumerate() {
        let n = index as u64 + 1;
        let at = |reason: String| input_err(path, format!("line {n}: {reason}"));
        let line = line.map_err(|source| IngestError::Read {
            path: path.to_path_buf(),
            line: n,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let Value::Object(object) =
            serde_json::from_str::<Value>(&line).map_err(|e| at(format!("not JSON: {e}")))?
        else {
            return Err(at("not a JSON object".into()));
        };
        let id = object
            .get(columns::DOC_ID)
            .and_then(Value::as_u64)
            .ok_or_else(|| at("doc_id is missing or not an unsigned integer".into()))?;
        let row = ids.len();
        ids.push(id);
        for (name, value) in object {
            if name == columns::DOC_ID {
                continue;
            }
            let kind = match &value {
                Value::Null => None,
                Value::Bool(_) => Some(Kind::Bool),
                Value::Number(v) if v.is_i64() => Some(Kind::Int),
                Value::Number(v) if v.is_u64() => {
                    return Err(at(format!(
                        "{name} = {v} does not fit a signed 64-bit integer"
                    )));
                }
                Value::Number(_) => Some(Kind::Float),
                Value::String(_) => Some(Kind::Str),
                Value::Array(_) | Value::Object(_) => {
                    return Err(at(format!(
                        "{name} holds a list or object; labels are single values"
                    )));
                }
            };
            let column = columns.entry(name.clone()).or_insert_with(|| ColumnState {
                kind: None,
                values: Vec::new(),
            });
            if let Some(kind) = kind {
                column.kind = Some(match column.kind {
                    None => (kind, n),
                    Some((have, _)) if have == kind => column.kind.expect("set"),
                    Some((Kind::Int, first)) if kind == Kind::Float => (Kind::Float, first),
                    Some((Kind::Float, first)) if kind == Kind::Int => (Kind::Float, first),
                    Some((have, first)) => {
                        return Err(at(format!(
                            "{name} is {} here but {} on line {first}",
                            kind.name(),
                            have.name()
                        )));
                    }
                });
            }
            column.values.resize(row, Value::Null);
            column.values.push(value);
        }
    }
    let mut fields = vec![Field::new(columns::DOC_ID, DataType::UInt64, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(ids.clone()))];
    for (name, mut column) in columns {
        column.values.resize(ids.len(), Value::Null);
        let Some((kind, _)) = column.kind else {
            return Err(input_err(
                path,
                format!("column {name:?} is null on every line"),
            ));
        };
        let values = column.values.iter();
        let array: ArrayRef = match kind {
            Kind::Bool => Arc::new(values.map(Value::as_bool).collect::<BooleanArray>()),
            Kind::Int => Arc::new(values.map(Value::as_i64).collect::<Int64Array>()),
            Kind::Float => Arc::new(values.map(Value::as_f64).collect::<Float64Array>()),
            Kind::Str => Arc::new(values.map(Value::as_str).collect::<StringArray>()),
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(IngestError::Batch)
}

fn read_parquet_labels(path: &Path) -> Result<RecordBatch> {
    let parquet_err = |source| IngestError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|e| input_err(path, format!("cannot open it: {e}")))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .map_err(parquet_err)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(IngestError::Batch)?;
    let batch =
        arrow_select::concat::concat_batches(&schema, &batches).map_err(IngestError::Batch)?;
    let id_column = batch
        .column_by_name(columns::DOC_ID)
        .ok_or_else(|| input_err(path, "has no doc_id column".into()))?;
    let ids = match id_column.data_type() {
        DataType::UInt64 => id_column.clone(),
        DataType::Int64 => {
            let signed = id_column
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("Int64");
            if let Some(bad) = signed.iter().flatten().find(|&v| v < 0) {
                return Err(input_err(path, format!("doc_id {bad} is negative")));
            }
            arrow_cast::cast(id_column, &DataType::UInt64).map_err(IngestError::Batch)?
        }
        other => {
            return Err(input_err(
                path,
                format!("doc_id is {other}, not an unsigned integer"),
            ));
        }
    };
    if ids.null_count() > 0 {
        return Err(input_err(path, "doc_id has nulls".into()));
    }
    let mut fields = vec![Field::new(columns::DOC_ID, DataType::UInt64, false)];
    let mut arrays = vec![ids];
    let mut rest: Vec<(&Arc<Field>, &ArrayRef)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| f.name() != columns::DOC_ID)
        .collect();
    rest.sort_by(|a, b| a.0.name().cmp(b.0.name()));
    for (field, array) in rest {
        if !(field.data_type().is_primitive()
            || matches!(
                field.data_type(),
                DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8
            ))
        {
            return Err(input_err(
                path,
                format!(
                    "column {:?} is {}; labels are numbers, booleans or strings",
                    field.name(),
                    field.data_type()
                ),
            ));
        }
        fields.push(Field::new(field.name(), field.data_type().clone(), true));
        arrays.push(array.clone());
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(IngestError::Batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let path = dir.join("labels.jsonl");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn json_labels_get_types_and_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "{\"doc_id\": 7, \"score\": 1, \"ok\": true}\n\n{\"doc_id\": 9, \"score\": 0.5, \"note\": \"x\"}\n",
        );
        let batch = read_label_file(&path).unwrap();
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["doc_id", "note", "ok", "score"]);
        assert_eq!(
            batch.column(3).data_type(),
            &DataType::Float64,
            "integers and decimals mix as numbers"
        );
        assert_eq!(batch.column(2).null_count(), 1);
        assert_eq!(batch.column(1).null_count(), 1);
    }

    #[test]
    fn bad_label_files_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        for (text, says) in [
            (
                "{\"doc_id\": 1, \"a\": 1}\n{\"doc_id\": 2, \"a\": \"x\"}\n",
                "line 2: a is a string here but an integer on line 1",
            ),
            ("{\"doc_id\": -1, \"a\": 1}\n", "line 1: doc_id"),
            ("{\"doc_id\": 1, \"a\": [1]}\n", "line 1: a holds a list"),
            ("{\"doc_id\": 1, \"a\": null}\n", "null on every line"),
            ("{\"doc_id\": 1}\n", "no label columns"),
            ("{\"doc_id\": 1, \"a\": 1}\nnot json\n", "line 2: not JSON"),
        ] {
            let err = read_label_file(&write(dir.path(), text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
