//! The rejects file: one JSON line per input line that could not be ingested, with where it
//! came from and why. Created only when there is something to reject.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::{IngestError, Result};

#[derive(Debug, Serialize)]
pub(crate) struct RejectRecord<'a> {
    pub input: &'a str,
    /// 1-based line of a JSON lines input, or 1-based row of a Parquet input.
    pub line: u64,
    pub reason: &'a str,
}

pub(crate) struct RejectsWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    count: u64,
}

impl RejectsWriter {
    pub fn new(path: PathBuf) -> Self {
        RejectsWriter {
            path,
            out: None,
            count: 0,
        }
    }

    pub fn write(&mut self, record: &RejectRecord<'_>) -> Result<()> {
        let err = |source| IngestError::Rejects {
            path: self.path.clone(),
            source,
        };
        if self.out.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            self.out = Some(BufWriter::new(File::create(&self.path).map_err(err)?));
        }
        let out = self.out.as_mut().expect("opened above");
        serde_json::to_writer(&mut *out, record).map_err(|e| err(e.into()))?;
        out.write_all(b"\n").map_err(err)?;
        self.count += 1;
        Ok(())
    }

    /// Flushes the file; returns its path when anything was rejected.
    pub fn finish(mut self) -> Result<Option<PathBuf>> {
        if let Some(mut out) = self.out.take() {
            out.flush().map_err(|source| IngestError::Rejects {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok((self.count > 0).then_some(self.path))
    }
}
