//! Plans and streams in process: `tokenlake.Dataset(lake=…)` reads the batches the server
//! would send, assembled by the same `tokenlake-plan` code (`prepare`, `RankStream`).
//!
//! A stream runs on a producer thread of its own that assembles up to `prefetch` batches
//! ahead of the trainer, as the server's producers do; each batch's tokens reach Python
//! without a copy (`TokenBuffer`, read by numpy through `__array_interface__`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tokenlake_plan::{
    CacheMode, Cancel, Cursor, MicroBatch, PlanOptions, PlanReport, PlanSummary, PreparedPlan,
    Progress, RankSpec, RankStream, Recipe,
};

use crate::{run, to_py};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativePlan>()?;
    m.add_class::<NativeStream>()?;
    m.add_class::<TokenBuffer>()?;
    m.add_function(wrap_pyfunction!(open_plan, m)?)?;
    m.add_function(wrap_pyfunction!(cursor_shift, m)?)?;
    m.add_function(wrap_pyfunction!(cursor_consumed, m)?)?;
    m.add_function(wrap_pyfunction!(xxh3_64, m)?)?;
    Ok(())
}

/// The plan of a recipe over a lake version, opened (built where the cache lacks it).
#[pyclass(module = "tokenlake._native", frozen)]
pub struct NativePlan {
    /// None once forgotten in a forked child (see `forget`).
    inner: Mutex<Option<Arc<Opened>>>,
}

struct Opened {
    prepared: PreparedPlan,
    summary: PlanSummary,
}

/// Loads `recipe_toml` (named `recipe_name` in messages) and opens its plan over `lake` (a
/// path or URI; the recipe's own when None) at `version` (a number or tag).
#[pyfunction]
#[pyo3(signature = (recipe_toml, recipe_name, lake=None, version=None, cache_dir=None, cache_mode=None, storage_options=Vec::new()))]
#[allow(clippy::too_many_arguments)]
fn open_plan(
    py: Python<'_>,
    recipe_toml: &str,
    recipe_name: &str,
    lake: Option<String>,
    version: Option<String>,
    cache_dir: Option<PathBuf>,
    cache_mode: Option<String>,
    storage_options: Vec<String>,
) -> PyResult<NativePlan> {
    let recipe = Recipe::parse(recipe_toml, recipe_name).map_err(|e| to_py(e.into()))?;
    let version = version
        .map(|v| {
            v.parse::<tokenlake_lake::VersionSpec>()
                .map_err(|e| anyhow::anyhow!("version {v:?}: {e}"))
        })
        .transpose()
        .map_err(to_py)?;
    let cache_mode = match cache_mode.as_deref() {
        None => CacheMode::default(),
        Some(m) => m
            .parse::<CacheMode>()
            .map_err(|e| to_py(anyhow::anyhow!("cache_mode: {e}")))?,
    };
    let storage = tokenlake_lake::StorageOptions::from_pairs(&storage_options)
        .map_err(|e| to_py(anyhow::anyhow!("storage_options: {e}")))?;
    let options = PlanOptions {
        lake,
        version,
        cache_dir,
        storage,
        cache_mode,
        ..PlanOptions::default()
    };
    let cancel = Cancel::new();
    let progress = Arc::new(Progress::with_cancel(cancel.clone()));
    let opened = run(
        py,
        async move {
            let prepared = tokenlake_plan::prepare(&recipe, &options, &progress).await?;
            let summary = PlanSummary::new(&recipe, &prepared.plan);
            anyhow::Ok(Opened { prepared, summary })
        },
        // Planning stops at its next check and keeps nothing half-built.
        move || cancel.cancel(),
        true,
    )?;
    Ok(NativePlan {
        inner: Mutex::new(Some(Arc::new(opened))),
    })
}

impl NativePlan {
    fn opened(&self) -> PyResult<Arc<Opened>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| PyRuntimeError::new_err("this plan was opened in another process"))
    }
}

#[pymethods]
impl NativePlan {
    /// The plan's id, as cursors and the server name it.
    #[getter]
    fn id(&self) -> PyResult<String> {
        Ok(self.opened()?.prepared.plan.id().hex())
    }

    #[getter]
    fn lake(&self) -> PyResult<String> {
        Ok(self.opened()?.prepared.lake.clone())
    }

    #[getter]
    fn version(&self) -> PyResult<u64> {
        Ok(self.opened()?.prepared.version)
    }

    /// Tokens per sample (the sequence length plus one, for the shifted labels).
    #[getter]
    fn sample_len(&self) -> PyResult<u64> {
        Ok(self.opened()?.prepared.plan.sample_len())
    }

    /// Bytes per token id (2 or 4).
    #[getter]
    fn token_width(&self) -> PyResult<usize> {
        Ok(self.opened()?.prepared.plan.token_width().bytes())
    }

    #[getter]
    fn total_samples(&self) -> PyResult<u64> {
        Ok(self.opened()?.prepared.plan.total_samples())
    }

    /// The report `tokenlake plan --json` prints, as JSON text.
    fn summary_json(&self) -> PyResult<String> {
        let o = self.opened()?;
        let report = PlanReport::new(&o.prepared, &o.summary);
        serde_json::to_string(&report).map_err(|e| to_py(e.into()))
    }

    /// The cursor after `consumed` global samples of this plan.
    fn cursor_at(&self, consumed: u64) -> PyResult<String> {
        Ok(self.opened()?.prepared.plan.cursor(consumed).to_string())
    }

    /// The global samples consumed at `cursor`; refused when another plan made it.
    fn consumed_at(&self, cursor: &str) -> PyResult<u64> {
        let o = self.opened()?;
        let cursor: Cursor = cursor.parse().map_err(|e| to_py(anyhow::Error::from(e)))?;
        o.prepared.plan.resume(&cursor).map_err(|e| to_py(e.into()))
    }

    /// Rank `rank` of `world`'s micro-batches from `cursor` (the start when empty), at most
    /// `max_steps` (0: to the plan's end), assembled up to `prefetch` ahead.
    #[pyo3(signature = (rank, world, micro_batch, cursor, max_steps, prefetch=4))]
    fn stream(
        &self,
        rank: u32,
        world: u32,
        micro_batch: u32,
        cursor: &str,
        max_steps: u64,
        prefetch: usize,
    ) -> PyResult<NativeStream> {
        let opened = self.opened()?;
        let spec = RankSpec::new(rank, world, micro_batch).map_err(|e| to_py(e.into()))?;
        let cursor: Option<Cursor> = if cursor.is_empty() {
            None
        } else {
            Some(cursor.parse().map_err(|e| to_py(anyhow::Error::from(e)))?)
        };
        // Refused here, not on the producer thread, so the caller sees it at once.
        RankStream::new(&opened.prepared.plan, spec, cursor.as_ref())
            .map_err(|e| to_py(e.into()))?;
        let (tx, rx) = bounded(prefetch.max(1));
        std::thread::Builder::new()
            .name(format!("tokenlake-rank-{rank}"))
            .spawn(move || produce(&opened, spec, cursor, max_steps, tx))
            .map_err(|e| PyRuntimeError::new_err(format!("starting a stream thread: {e}")))?;
        Ok(NativeStream {
            rx: Mutex::new(Some(rx)),
        })
    }

    /// Leaves this handle's plan alone for good. A forked child (a DataLoader worker) calls it
    /// on the handle it inherited: the parent's threads do not exist there, so dropping the
    /// plan could wait on them forever; the child opens its own.
    fn forget(&self) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        std::mem::forget(inner);
    }
}

/// One batch as the producer made it.
struct Produced {
    batch: MicroBatch,
    cursor: String,
    stages: Vec<String>,
    components: Vec<String>,
}

fn produce(
    opened: &Opened,
    spec: RankSpec,
    cursor: Option<Cursor>,
    max_steps: u64,
    tx: Sender<anyhow::Result<Produced>>,
) {
    // Window fetches spawn on the runtime of the thread that reads.
    let _runtime = crate::runtime().enter();
    let plan = &opened.prepared.plan;
    let mut stream = match RankStream::new(plan, spec, cursor.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Err(e.into()));
            return;
        }
    };
    let mut sent = 0u64;
    while max_steps == 0 || sent < max_steps {
        let mut batch = MicroBatch::default();
        let produced = match stream.next_batch(&mut batch) {
            Ok(false) => return,
            Ok(true) => Ok(Produced {
                stages: batch
                    .samples
                    .iter()
                    .map(|s| plan.stage_name(s.stage).to_string())
                    .collect(),
                components: batch
                    .samples
                    .iter()
                    .map(|s| plan.component_name(s.component).to_string())
                    .collect(),
                cursor: stream.cursor().to_string(),
                batch,
            }),
            Err(e) => Err(e.into()),
        };
        let failed = produced.is_err();
        // The reader went away (the dataset's iterator was dropped): stop.
        if tx.send(produced).is_err() || failed {
            return;
        }
        sent += 1;
    }
}

/// A rank's stream of batches; iterating yields dicts (see `__next__`).
#[pyclass(module = "tokenlake._native", frozen)]
pub struct NativeStream {
    rx: Mutex<Option<Receiver<anyhow::Result<Produced>>>>,
}

#[pymethods]
impl NativeStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next batch: `tokens` (a buffer numpy reads without a copy), `indices`, `stages`,
    /// `components`, `epochs`, the spans (`span_doc_ids`, `span_offsets`, `span_lens`,
    /// `span_positions`; sample i's are `sample_spans[i]..sample_spans[i + 1]`), `step` and
    /// `cursor` (where the stream stands after this batch).
    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let mut guard = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(rx) = guard.as_ref() else {
            return Err(PyStopIteration::new_err(()));
        };
        let produced = loop {
            match py.detach(|| rx.recv_timeout(Duration::from_millis(100))) {
                Ok(p) => break p,
                Err(RecvTimeoutError::Timeout) => py.check_signals()?,
                Err(RecvTimeoutError::Disconnected) => {
                    *guard = None;
                    return Err(PyStopIteration::new_err(()));
                }
            }
        };
        let p = match produced {
            Ok(p) => p,
            Err(e) => {
                *guard = None;
                return Err(to_py(e));
            }
        };
        let b = p.batch;
        let d = PyDict::new(py);
        d.set_item("step", b.step)?;
        d.set_item("cursor", p.cursor)?;
        d.set_item(
            "indices",
            PyList::new(py, b.samples.iter().map(|s| s.index))?,
        )?;
        d.set_item(
            "epochs",
            PyList::new(py, b.samples.iter().map(|s| s.epoch))?,
        )?;
        d.set_item("stages", p.stages)?;
        d.set_item("components", p.components)?;
        d.set_item(
            "span_doc_ids",
            b.spans.iter().map(|s| s.doc_id).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "span_offsets",
            b.spans.iter().map(|s| s.offset).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "span_lens",
            b.spans.iter().map(|s| s.len).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "span_positions",
            b.spans.iter().map(|s| s.position).collect::<Vec<_>>(),
        )?;
        d.set_item("sample_spans", b.span_offsets)?;
        d.set_item("tokens", Py::new(py, TokenBuffer { bytes: b.tokens })?)?;
        Ok(d.unbind())
    }

    /// Stops the producer (it ends after the batch it is assembling).
    fn close(&self) {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// A batch's token bytes, owned by Rust and lent to numpy (`numpy.asarray(buffer)` is a view
/// that keeps the buffer alive) through the array interface, which needs no buffer protocol
/// and so works on every Python the package's one wheel supports.
#[pyclass(module = "tokenlake._native", frozen)]
pub struct TokenBuffer {
    bytes: Vec<u8>,
}

#[pymethods]
impl TokenBuffer {
    fn __len__(&self) -> usize {
        self.bytes.len()
    }

    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("shape", (self.bytes.len(),))?;
        d.set_item("typestr", "|u1")?;
        // read-only: the view must not change the tokens a checksum was taken of
        d.set_item("data", (self.bytes.as_ptr() as usize, true))?;
        d.set_item("version", 3)?;
        Ok(d)
    }
}

/// `cursor` moved by `samples` global samples (negative: back), for the position of a
/// DataLoader worker's next step; refused below the plan's start.
#[pyfunction]
pub fn cursor_shift(cursor: &str, samples: i64) -> PyResult<String> {
    let mut c: Cursor = cursor.parse().map_err(|e| to_py(anyhow::Error::from(e)))?;
    c.consumed = c.consumed.checked_add_signed(samples).ok_or_else(|| {
        to_py(anyhow::anyhow!(
            "cursor {cursor} cannot move by {samples} samples: it is at sample {}",
            c.consumed
        ))
    })?;
    Ok(c.to_string())
}

/// The global samples consumed at `cursor`.
#[pyfunction]
pub fn cursor_consumed(cursor: &str) -> PyResult<u64> {
    let c: Cursor = cursor.parse().map_err(|e| to_py(anyhow::Error::from(e)))?;
    Ok(c.consumed)
}

/// The XXH3-64 of `data`: the checksum `tokenlake stream --checksums` prints per sample and the
/// server sends per batch, so Python can compare with either.
#[pyfunction]
pub fn xxh3_64(data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(data)
}
