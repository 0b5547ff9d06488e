//! `tokenlake export`: the documents of one lake version, all of them, those a filter selects,
//! or each component of a recipe, written as Megatron-Core's indexed dataset, JSON lines or
//! Parquet. Files appear under their names only when every one of them is complete: an error or
//! an interrupt leaves no partial export behind.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use futures::StreamExt;
use serde::Serialize;
use tokenlake_lake::{Lake, VersionSpec};
use tokenlake_plan::Recipe;
use tokenlake_schemas::columns;

use crate::error::{ExportError, Result};
use crate::megatron::MegatronWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Megatron-Core's indexed dataset: `PREFIX.bin` and `PREFIX.idx`.
    Megatron,
    /// One JSON object per document and line: `PREFIX.jsonl`.
    Jsonl,
    /// `PREFIX.parquet`, zstd-compressed.
    Parquet,
}

impl ExportFormat {
    fn extensions(self) -> &'static [&'static str] {
        match self {
            ExportFormat::Megatron => &["bin", "idx"],
            ExportFormat::Jsonl => &["jsonl"],
            ExportFormat::Parquet => &["parquet"],
        }
    }
}

/// One output: the documents `filter` selects (all without one), written under the export's
/// prefix, suffixed `_NAME` when named.
#[derive(Debug, Clone)]
pub struct Selection {
    pub name: Option<String>,
    pub filter: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub version: VersionSpec,
    pub selections: Vec<Selection>,
    pub format: ExportFormat,
    /// Path prefix of the files written.
    pub out: PathBuf,
    /// Megatron only: a token appended to every document (the end-of-document separator).
    pub eos: Option<u32>,
}

impl ExportOptions {
    /// One selection per component of `recipe`, at the recipe's version, with its EOS token.
    pub fn for_recipe(recipe: &Recipe, format: ExportFormat, out: PathBuf) -> ExportOptions {
        ExportOptions {
            version: recipe.version.clone(),
            selections: recipe
                .components
                .iter()
                .map(|c| Selection {
                    name: Some(c.name.clone()),
                    filter: Some(c.filter.clone()),
                })
                .collect(),
            format,
            out,
            eos: Some(recipe.eos_token),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportedSelection {
    pub name: Option<String>,
    pub filter: Option<String>,
    /// The files' common prefix (Megatron's `--data-path` names a dataset by it).
    pub prefix: String,
    pub files: Vec<String>,
    pub documents: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub lake: String,
    pub version: u64,
    pub format: ExportFormat,
    pub outputs: Vec<ExportedSelection>,
}

impl ExportSummary {
    /// Per stage of `recipe`, Megatron's `--data-path` blend of the exported components:
    /// `WEIGHT PREFIX …` for the components the stage draws from.
    pub fn megatron_blends(&self, recipe: &Recipe) -> Vec<(String, String)> {
        recipe
            .stages
            .iter()
            .map(|stage| {
                let parts: Vec<String> = recipe
                    .components
                    .iter()
                    .zip(&stage.weights)
                    .filter(|(_, w)| **w > 0.0)
                    .filter_map(|(c, w)| {
                        let out = self
                            .outputs
                            .iter()
                            .find(|o| o.name.as_deref() == Some(c.name.as_str()))?;
                        Some(format!("{w} {}", out.prefix))
                    })
                    .collect();
                (stage.name.clone(), parts.join(" "))
            })
            .collect()
    }
}

/// Files written under `.partial` names, removed unless published.
struct PartialFiles {
    /// (partial, final) pairs.
    files: Vec<(PathBuf, PathBuf)>,
    published: bool,
}

impl PartialFiles {
    fn add(&mut self, path: PathBuf) -> PathBuf {
        let mut partial = path.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        self.files.push((partial.clone(), path));
        partial
    }

    fn publish(mut self) -> Result<()> {
        for (partial, path) in &self.files {
            std::fs::rename(partial, path).map_err(ExportError::io(path))?;
        }
        self.published = true;
        Ok(())
    }
}

impl Drop for PartialFiles {
    fn drop(&mut self) {
        if !self.published {
            for (partial, _) in &self.files {
                let _ = std::fs::remove_file(partial);
            }
        }
    }
}

// Kept as one function: open the outputs, write every component's documents, publish: the order
// keeps partial files unpublished.
pub async fn export(
    lake: &Lake,
    options: &ExportOptions,
    progress: &tokenlake_lake::Progress,
) -> Result<ExportSummary> {
    if options.selections.is_empty() {
        return Err(ExportError::Invalid {
            message: "nothing to export: no selection".into(),
        });
    }
    if options.eos.is_some() && options.format != ExportFormat::Megatron {
        return Err(ExportError::Invalid {
            message: "an end-of-document token is only appended to Megatron exports".into(),
        });
    }
    let dataset = lake.checkout(&options.version).await?;
    let version = dataset.version().version;
    let width = lake.schema_info()?.token_width;
    if let Some(parent) = options.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(ExportError::io(parent))?;
    }
    let mut partials = PartialFiles {
        files: Vec::new(),
        published: false,
    };
    let mut outputs = Vec::new();
    for selection in &options.selections {
        let prefix = match &selection.name {
            Some(name) => format!("{}_{name}", options.out.display()),
            None => options.out.display().to_string(),
        };
        let files: Vec<String> = options
            .format
            .extensions()
            .iter()
            .map(|ext| format!("{prefix}.{ext}"))
            .collect();
        let columns: &[&str] = match options.format {
            ExportFormat::Megatron => &[columns::TOKENS],
            _ => &[
                columns::DOC_ID,
                columns::SOURCE,
                columns::LANG,
                columns::URL,
                columns::TEXT,
                columns::N_TOKENS,
                columns::TOKENS,
            ],
        };
        let described = || match (&selection.name, &selection.filter) {
            (Some(name), Some(filter)) => format!("component {name} ({filter})"),
            (None, Some(filter)) => format!("filter {filter:?}"),
            _ => "the export".to_string(),
        };
        let (rows, mut batches) = lake
            .scan_version_stream(&dataset, columns, selection.filter.as_deref())
            .await
            .map_err(|e| ExportError::Invalid {
                message: format!("{}: {e}", described()),
            })?;
        if rows == 0 {
            return Err(ExportError::Invalid {
                message: format!(
                    "{} selects no documents at version {version} of lake {}",
                    described(),
                    lake.location()
                ),
            });
        }
        progress.total.fetch_add(rows, Ordering::Relaxed);
        let paths: Vec<PathBuf> = files
            .iter()
            .map(|f| partials.add(PathBuf::from(f)))
            .collect();
        let mut sink = Sink::create(options.format, &paths, width, options.eos)?;
        while let Some(batch) = batches.next().await {
            if progress.is_cancelled() {
                return Err(ExportError::Interrupted);
            }
            let batch = batch?;
            sink.write(&batch)?;
            progress
                .done
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        }
        let (documents, tokens) = sink.finish()?;
        outputs.push(ExportedSelection {
            name: selection.name.clone(),
            filter: selection.filter.clone(),
            prefix,
            files,
            documents,
            tokens,
        });
    }
    if progress.is_cancelled() {
        return Err(ExportError::Interrupted);
    }
    partials.publish()?;
    Ok(ExportSummary {
        lake: lake.location().to_string(),
        version,
        format: options.format,
        outputs,
    })
}

/// Where the batches of one selection go.
enum Sink {
    Megatron {
        writer: MegatronWriter,
        idx: PathBuf,
    },
    Jsonl {
        writer: arrow_json::LineDelimitedWriter<std::io::BufWriter<std::fs::File>>,
        path: PathBuf,
        counted: Counted,
    },
    Parquet {
        /// Made at the first batch, from its schema (the scan's, which the writer checks).
        writer: Option<parquet::arrow::ArrowWriter<std::fs::File>>,
        path: PathBuf,
        counted: Counted,
    },
}

/// Documents and tokens written by a table format (Megatron's writer counts its own, EOS
/// included).
#[derive(Default)]
struct Counted {
    documents: u64,
    tokens: u64,
}

impl Counted {
    fn add(&mut self, batch: &RecordBatch) {
        self.documents += batch.num_rows() as u64;
        self.tokens += batch_tokens(batch);
    }
}

impl Sink {
    fn create(
        format: ExportFormat,
        paths: &[PathBuf],
        width: tokenlake_schemas::TokenWidth,
        eos: Option<u32>,
    ) -> Result<Sink> {
        let path = &paths[0];
        Ok(match format {
            ExportFormat::Megatron => Sink::Megatron {
                writer: MegatronWriter::create(path, width, eos)?,
                idx: paths[1].clone(),
            },
            ExportFormat::Jsonl => {
                let file = std::fs::File::create(path).map_err(ExportError::io(path))?;
                Sink::Jsonl {
                    // Explicit nulls: every line has every field, as readers of a table expect.
                    writer: arrow_json::WriterBuilder::new()
                        .with_explicit_nulls(true)
                        .build(std::io::BufWriter::with_capacity(1 << 20, file)),
                    path: path.clone(),
                    counted: Counted::default(),
                }
            }
            ExportFormat::Parquet => Sink::Parquet {
                writer: None,
                path: path.clone(),
                counted: Counted::default(),
            },
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Sink::Megatron { writer, .. } => {
                let lists = batch.column(0).as_list::<i32>();
                for row in 0..lists.len() {
                    let ids = lists.value(row);
                    match ids.data_type() {
                        arrow_schema::DataType::UInt16 => writer.push(
                            ids.as_primitive::<UInt16Type>()
                                .values()
                                .iter()
                                .map(|&t| u32::from(t)),
                        )?,
                        _ => writer
                            .push(ids.as_primitive::<UInt32Type>().values().iter().copied())?,
                    }
                }
            }
            Sink::Jsonl {
                writer,
                path,
                counted,
            } => {
                writer
                    .write(batch)
                    .map_err(|e| ExportError::format(path)(e.to_string()))?;
                counted.add(batch);
            }
            Sink::Parquet {
                writer,
                path,
                counted,
            } => {
                if writer.is_none() {
                    let file = std::fs::File::create(&*path).map_err(ExportError::io(path))?;
                    let properties = parquet::file::properties::WriterProperties::builder()
                        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                        .build();
                    *writer = Some(
                        parquet::arrow::ArrowWriter::try_new(
                            file,
                            batch.schema(),
                            Some(properties),
                        )
                        .map_err(|e| ExportError::format(path)(e.to_string()))?,
                    );
                }
                writer
                    .as_mut()
                    .expect("made above")
                    .write(batch)
                    .map_err(|e| ExportError::format(path)(e.to_string()))?;
                counted.add(batch);
            }
        }
        Ok(())
    }

    /// Completes the files; returns documents and tokens written.
    fn finish(self) -> Result<(u64, u64)> {
        match self {
            Sink::Megatron { writer, idx } => {
                let counts = (writer.documents(), writer.tokens());
                writer.finish(&idx)?;
                Ok(counts)
            }
            Sink::Jsonl {
                mut writer,
                path,
                counted,
            } => {
                writer
                    .finish()
                    .map_err(|e| ExportError::format(&path)(e.to_string()))?;
                let mut file = writer.into_inner();
                std::io::Write::flush(&mut file).map_err(ExportError::io(&path))?;
                Ok((counted.documents, counted.tokens))
            }
            Sink::Parquet {
                writer,
                path,
                counted,
            } => {
                if let Some(writer) = writer {
                    writer
                        .close()
                        .map_err(|e| ExportError::format(&path)(e.to_string()))?;
                }
                Ok((counted.documents, counted.tokens))
            }
        }
    }
}

fn batch_tokens(batch: &RecordBatch) -> u64 {
    batch
        .column_by_name(columns::N_TOKENS)
        .map(|c| {
            c.as_primitive::<UInt32Type>()
                .values()
                .iter()
                .map(|&n| u64::from(n))
                .sum()
        })
        .unwrap_or(0)
}
