//! From a lake version to a token cache: each component's filter selects rows (cached per
//! version and filter as a roaring bitmap of Lance row addresses), then one scan of their union
//! copies the tokens into the cache.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use futures::TryStreamExt;
use lance::Dataset;
use roaring::RoaringTreemap;
use tokenlake_schemas::{TokenWidth, columns};
use xxhash_rust::xxh3::Xxh3;

use crate::cache_dir::{EntryLock, touch};
use crate::error::{PlanError, Result};
use crate::publish::{COMPLETE_MARKER, write_file};
use crate::recipe::Recipe;
use crate::token_cache::{ComponentSelection, TokenCache, TokenCacheBuilder};
use tokenlake_lake::Progress;

const ROW_ADDR: &str = "_rowaddr";

/// Identifies one committed version of one lake for cache keys: its location, number and
/// commit time (a lake deleted and re-created at the same place gets new commit times).
#[derive(Debug, Clone)]
pub struct VersionKey {
    pub location: String,
    pub version: u64,
    pub committed_nanos: i64,
}

impl VersionKey {
    pub fn of(location: &str, dataset: &Dataset) -> Self {
        let v = dataset.version();
        VersionKey {
            location: location.to_string(),
            version: v.version,
            committed_nanos: v.timestamp.timestamp_nanos_opt().unwrap_or(0),
        }
    }

    fn hash_into(&self, h: &mut Xxh3) {
        h.update(self.location.as_bytes());
        h.update(&[0]);
        h.update(&self.version.to_le_bytes());
        h.update(&self.committed_nanos.to_le_bytes());
    }
}

/// The name of `recipe`'s selection at this version: the directory of its local token cache
/// (`tokens/<key>`) and of its token store (`store.rs`). A different version, lake, token width,
/// cache format, filter or task gives a different name.
pub fn selection_key(recipe: &Recipe, key: &VersionKey, width: TokenWidth) -> String {
    let mut h = Xxh3::new();
    key.hash_into(&mut h);
    h.update(&[width.bytes() as u8]);
    h.update(&crate::token_cache::FORMAT.to_le_bytes());
    for c in &recipe.components {
        h.update(c.filter.as_bytes());
        h.update(&[0]);
        h.update(c.task.as_deref().unwrap_or("\0none").as_bytes());
        h.update(&[0]);
    }
    format!("{:016x}", h.digest())
}

/// Opens the token cache of `recipe`'s components at this version, building it when missing.
pub async fn token_cache_for(
    recipe: &Recipe,
    dataset: &Dataset,
    key: &VersionKey,
    width: TokenWidth,
    cache_root: &Path,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<TokenCache> {
    let dir = cache_root
        .join("tokens")
        .join(selection_key(recipe, key, width));
    if let Some(cache) = open_verified(&dir, None)? {
        return Ok(cache);
    }
    // One process per node fills the cache; the others wait here and then use its result.
    let filling = EntryLock::exclusive(&dir)?;
    if let Some(cache) = open_verified(&dir, Some(&filling))? {
        return Ok(cache);
    }

    check_task_expressions(recipe, dataset).await?;
    let mut selections = Vec::with_capacity(recipe.components.len());
    for (c, component) in recipe.components.iter().enumerate() {
        progress.start(&format!("selecting component {}", component.name), 0);
        let selection = selection(dataset, key, &component.filter, cache_root, cancel)
            .await
            .map_err(|e| filter_error(recipe, c, e))?;
        if selection.is_empty() {
            return Err(recipe.component_error(
                c,
                format!(
                    "filter {:?} selects no documents at version {}",
                    component.filter, key.version
                ),
            ));
        }
        selections.push(selection);
    }
    let mut union = RoaringTreemap::new();
    for s in &selections {
        union |= s;
    }
    let cache = copy_tokens(
        recipe,
        dataset,
        &selections,
        &union,
        width,
        &dir,
        progress,
        cancel,
        None,
    )
    .await?;
    touch(&dir);
    Ok(cache)
}

/// A component's filter that Lance could not run, reported against the component.
fn filter_error(recipe: &Recipe, c: usize, e: PlanError) -> PlanError {
    match e {
        PlanError::Lance { source, .. } => recipe.component_error(
            c,
            format!(
                "filter {:?} does not work on the documents table: {source}",
                recipe.components[c].filter
            ),
        ),
        other => other,
    }
}

/// The complete cache at `dir`, checked against its checksums; `None` when there is none yet
/// or it was damaged (then it is removed, to be filled again). `held` is this process's
/// exclusive lock on the entry when it has one: a second lock on the same entry from the same
/// process would wait for itself (file locks belong to open files, not processes).
fn open_verified(dir: &Path, held: Option<&EntryLock>) -> Result<Option<TokenCache>> {
    if !dir.join(COMPLETE_MARKER).is_file() {
        return Ok(None);
    }
    let opened = {
        let _reading = match held {
            Some(_) => None,
            None => Some(EntryLock::shared(dir)?),
        };
        TokenCache::open(dir).and_then(|cache| {
            // Hashing terabytes on every open would take minutes: the first open after a
            // fill checks the whole cache and records it; later opens check the record.
            if !verified_before(dir) {
                cache.verify()?;
                record_verified(dir);
            }
            Ok(cache)
        })
    };
    match opened {
        Ok(cache) => {
            touch(dir);
            Ok(Some(cache))
        }
        Err(PlanError::CacheCorrupt { path, reason }) => {
            tracing::warn!(%path, %reason, "discarding a damaged token cache; filling it again");
            let _lock = match held {
                Some(_) => None,
                None => Some(EntryLock::exclusive(dir)?),
            };
            let aside = dir.with_file_name(format!(
                ".{}.{}.corrupt.tmp",
                dir.file_name().expect("named").to_string_lossy(),
                std::process::id()
            ));
            if std::fs::rename(dir, &aside).is_ok() {
                let _ = std::fs::remove_dir_all(&aside);
            }
            Ok(None)
        }
        // Evicted between the check and the open: fill it again.
        Err(_) if !dir.join(COMPLETE_MARKER).is_file() => Ok(None),
        Err(other) => Err(other),
    }
}

const VERIFIED: &str = "verified.json";

/// What a verification saw of the cache's two large files: their sizes and modification times.
fn file_stamps(dir: &Path) -> Option<Vec<(u64, i128)>> {
    ["tokens.bin", "docs.bin"]
        .iter()
        .map(|name| {
            let meta = std::fs::metadata(dir.join(name)).ok()?;
            let modified = meta.modified().ok()?;
            let nanos = match modified.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_nanos() as i128,
                Err(e) => -(e.duration().as_nanos() as i128),
            };
            Some((meta.len(), nanos))
        })
        .collect()
}

/// Whether the cache was verified since its files last changed.
fn verified_before(dir: &Path) -> bool {
    let Ok(text) = std::fs::read(dir.join(VERIFIED)) else {
        return false;
    };
    let recorded: Option<Vec<(u64, i128)>> = serde_json::from_slice(&text).ok();
    recorded.is_some() && recorded == file_stamps(dir)
}

/// Records a successful verification (best effort: without it the next open verifies again).
fn record_verified(dir: &Path) {
    if let Some(stamps) = file_stamps(dir) {
        let tmp = temp_name(&dir.join(VERIFIED));
        let written = serde_json::to_vec(&stamps)
            .ok()
            .and_then(|bytes| write_file(&tmp, &bytes).ok())
            .and_then(|()| std::fs::rename(&tmp, dir.join(VERIFIED)).ok());
        if written.is_none() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Evaluates each task expression on one row, so that a bad one is reported against its
/// component before the long scan starts.
async fn check_task_expressions(recipe: &Recipe, dataset: &Dataset) -> Result<()> {
    for (c, component) in recipe.components.iter().enumerate() {
        let Some(task) = &component.task else {
            continue;
        };
        let probe = async {
            let mut scan = dataset.scan();
            scan.project_with_transform(&[("task", task.as_str())])?;
            scan.limit(Some(1), None)?;
            let mut stream = scan.try_into_stream().await?;
            while stream.try_next().await?.is_some() {}
            Ok::<_, lance::Error>(())
        };
        probe.await.map_err(|e| {
            recipe.component_error(
                c,
                format!(
                    "task {task:?} is not a column or SQL expression of the documents table: {e}"
                ),
            )
        })?;
    }
    Ok(())
}

/// Shard `shard` of `shards` of the selection: the token cache of the documents `recipe`
/// selects in a contiguous slice of the version's fragments (the `shard`-th of `shards` equal
/// slices by count), in `dir`. Components may select nothing in one shard.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn shard_cache(
    recipe: &Recipe,
    dataset: &Dataset,
    shard: u32,
    shards: u32,
    width: TokenWidth,
    dir: &Path,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<TokenCache> {
    check_task_expressions(recipe, dataset).await?;
    let all: Vec<lance::table::format::Fragment> = dataset
        .get_fragments()
        .iter()
        .map(|f| f.metadata().clone())
        .collect();
    let n = all.len() as u64;
    let (from, to) = (
        (n * u64::from(shard) / u64::from(shards)) as usize,
        (n * u64::from(shard + 1) / u64::from(shards)) as usize,
    );
    let fragments = all[from..to].to_vec();
    let mut selections = Vec::with_capacity(recipe.components.len());
    for (c, component) in recipe.components.iter().enumerate() {
        progress.start(&format!("selecting component {}", component.name), 0);
        let rows = scan_selection(dataset, &component.filter, Some(&fragments), cancel)
            .await
            .map_err(|e| filter_error(recipe, c, e))?;
        selections.push(rows);
    }
    let mut union = RoaringTreemap::new();
    for s in &selections {
        union |= s;
    }
    if fragments.is_empty() {
        // Nothing to scan: an empty shard (more shards than fragments).
        let builder = TokenCacheBuilder::new(dir, width)?;
        return builder.finish(
            recipe
                .components
                .iter()
                .map(|c| ComponentSelection {
                    members: Vec::new(),
                    groups: c.task.as_ref().map(|_| Vec::new()),
                })
                .collect(),
        );
    }
    copy_tokens(
        recipe,
        dataset,
        &selections,
        &union,
        width,
        dir,
        progress,
        cancel,
        Some(fragments),
    )
    .await
}

/// The rows `filter` selects at this version, from the selection cache or by a scan.
async fn selection(
    dataset: &Dataset,
    key: &VersionKey,
    filter: &str,
    cache_root: &Path,
    cancel: &AtomicBool,
) -> Result<RoaringTreemap> {
    let path = selection_path(cache_root, key, filter);
    if let Ok(bytes) = std::fs::read(&path) {
        return RoaringTreemap::deserialize_from(&bytes[..]).map_err(|e| PlanError::CacheCorrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        });
    }
    let rows = scan_selection(dataset, filter, None, cancel).await?;
    let mut bytes = Vec::with_capacity(rows.serialized_size());
    rows.serialize_into(&mut bytes)
        .map_err(PlanError::io("serialising a selection"))?;
    let dir = path.parent().expect("selection files live in a directory");
    std::fs::create_dir_all(dir).map_err(PlanError::io(format!("creating {}", dir.display())))?;
    let tmp = temp_name(&path);
    write_file(&tmp, &bytes)?;
    std::fs::rename(&tmp, &path).map_err(PlanError::io(format!("writing {}", path.display())))?;
    Ok(rows)
}

/// The rows `filter` selects, by a scan (of `fragments` only, when given).
async fn scan_selection(
    dataset: &Dataset,
    filter: &str,
    fragments: Option<&[lance::table::format::Fragment]>,
    cancel: &AtomicBool,
) -> Result<RoaringTreemap> {
    let context = format!("selecting rows where {filter}");
    let mut scan = dataset.scan();
    if let Some(fragments) = fragments {
        scan.with_fragments(fragments.to_vec());
    }
    scan.project(&[columns::DOC_ID])
        .map_err(PlanError::lance(&context))?;
    scan.filter(filter).map_err(PlanError::lance(&context))?;
    scan.with_row_address();
    let mut stream = scan
        .try_into_stream()
        .await
        .map_err(PlanError::lance(&context))?;
    let mut rows = RoaringTreemap::new();
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(PlanError::lance(&context))?
    {
        if cancel.load(Ordering::Relaxed) {
            return Err(PlanError::Cancelled);
        }
        rows.extend(
            column(&batch, ROW_ADDR)?
                .as_primitive::<UInt64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    Ok(rows)
}

/// A name beside `path` that no other writer uses, in this process or another: concurrent
/// prepares of different filters once shared `.<pid>.tmp`, so one filter's rows could be
/// renamed into another's selection file.
fn temp_name(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().expect("selection files are named");
    path.with_file_name(format!(
        ".{}.{}.{n}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ))
}

fn selection_path(cache_root: &Path, key: &VersionKey, filter: &str) -> PathBuf {
    let mut lake = Xxh3::new();
    lake.update(key.location.as_bytes());
    let mut f = Xxh3::new();
    f.update(filter.as_bytes());
    cache_root
        .join("selections")
        .join(format!("{:016x}", lake.digest()))
        .join(format!(
            "v{}-{}-{:016x}.roaring",
            key.version,
            key.committed_nanos,
            f.digest()
        ))
}

#[allow(clippy::too_many_arguments)]
// Kept as one function: one pass over the selected fragments that copies tokens and records offsets
// as it goes.
async fn copy_tokens(
    recipe: &Recipe,
    dataset: &Dataset,
    selections: &[RoaringTreemap],
    union: &RoaringTreemap,
    width: TokenWidth,
    dir: &Path,
    progress: &Progress,
    cancel: &AtomicBool,
    fragments: Option<Vec<lance::table::format::Fragment>>,
) -> Result<TokenCache> {
    let task_columns: Vec<String> = recipe
        .components
        .iter()
        .filter_map(|c| c.task.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut projection = vec![
        (columns::DOC_ID.to_string(), columns::DOC_ID.to_string()),
        (columns::TOKENS.to_string(), columns::TOKENS.to_string()),
    ];
    projection.extend(
        task_columns
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("_task_{i}"), t.clone())),
    );
    let filter = recipe
        .components
        .iter()
        .map(|c| format!("({})", c.filter))
        .collect::<Vec<_>>()
        .join(" OR ");
    let context = "copying the selected documents' tokens into the token cache";
    let mut scan = dataset.scan();
    if let Some(fragments) = fragments {
        scan.with_fragments(fragments);
    }
    scan.project_with_transform(&projection)
        .map_err(PlanError::lance(context))?;
    scan.filter(&filter).map_err(PlanError::lance(context))?;
    scan.with_row_address();
    let mut stream = scan
        .try_into_stream()
        .await
        .map_err(PlanError::lance(context))?;

    progress.start("copying tokens into the token cache", union.len());
    let mut builder = TokenCacheBuilder::new(dir, width)?;
    let mut pushed: Vec<(u64, u64)> = Vec::with_capacity(union.len() as usize);
    let mut tasks: Vec<Vec<Option<String>>> = vec![Vec::new(); task_columns.len()];
    while let Some(batch) = stream.try_next().await.map_err(PlanError::lance(context))? {
        if cancel.load(Ordering::Relaxed) {
            return Err(PlanError::Cancelled);
        }
        let addrs = column(&batch, ROW_ADDR)?
            .as_primitive::<UInt64Type>()
            .clone();
        let ids = column(&batch, columns::DOC_ID)?
            .as_primitive::<UInt64Type>()
            .clone();
        let tokens = column(&batch, columns::TOKENS)?.as_list::<i32>().clone();
        let values = tokens.values();
        let bytes: &[u8] = match width {
            TokenWidth::U16 => values
                .as_primitive::<UInt16Type>()
                .values()
                .inner()
                .as_slice(),
            TokenWidth::U32 => values
                .as_primitive::<UInt32Type>()
                .values()
                .inner()
                .as_slice(),
        };
        let task_values: Vec<arrow_array::StringArray> = task_columns
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let col = column(&batch, &format!("_task_{i}"))?;
                arrow_cast::cast(col, &DataType::Utf8)
                    .map(|a| a.as_string::<i32>().clone())
                    .map_err(|e| {
                        PlanError::InvalidRequest(format!("task {t:?} cannot be read as text: {e}"))
                    })
            })
            .collect::<Result<_>>()?;
        let offsets = tokens.value_offsets();
        let w = width.bytes();
        for row in 0..batch.num_rows() {
            let addr = addrs.value(row);
            if !union.contains(addr) {
                continue;
            }
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let index = builder.push(ids.value(row), &bytes[start * w..end * w])?;
            pushed.push((addr, index));
            for (t, values) in task_values.iter().enumerate() {
                tasks[t].push(values.is_valid(row).then(|| values.value(row).to_string()));
            }
        }
        progress.add(batch.num_rows() as u64);
    }
    pushed.sort_unstable();

    let mut components = Vec::with_capacity(selections.len());
    for (c, rows) in selections.iter().enumerate() {
        let mut members = Vec::with_capacity(rows.len() as usize);
        for addr in rows.iter() {
            let at = pushed.binary_search_by_key(&addr, |p| p.0).map_err(|_| {
                PlanError::InvalidRequest(format!(
                    "row {addr} of component {:?} vanished between two scans of the same version",
                    recipe.components[c].name
                ))
            })?;
            members.push(pushed[at].1);
        }
        let groups = recipe.components[c].task.as_ref().map(|t| {
            let column = task_columns.iter().position(|x| x == t).expect("projected");
            members
                .iter()
                .map(|&m| tasks[column][m as usize].clone())
                .collect()
        });
        components.push(ComponentSelection { members, groups });
    }
    progress.start("sorting the token cache", 0);
    builder.finish(components)
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| PlanError::InvalidRequest(format!("the scan returned no column {name:?}")))
}

const _: () = assert!(
    cfg!(target_endian = "little"),
    "token bytes are copied as little-endian"
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Two prepares writing selections at once (one server, two recipes) never share a
    /// temporary file, so neither can publish the other's rows.
    #[test]
    fn concurrent_selection_writes_never_share_a_temporary_file() {
        let dir = Path::new("/cache/selections/0123456789abcdef");
        let a = dir.join("v3-7-aaaaaaaaaaaaaaaa.roaring");
        let b = dir.join("v3-7-bbbbbbbbbbbbbbbb.roaring");
        let names: Vec<PathBuf> = std::thread::scope(|scope| {
            let writers: Vec<_> = [&a, &b, &a, &b]
                .into_iter()
                .map(|path| scope.spawn(move || temp_name(path)))
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let distinct: std::collections::HashSet<&PathBuf> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        for name in &names {
            assert_eq!(
                name.parent(),
                Some(dir),
                "beside the selection: one rename publishes it"
            );
            let file = name.file_name().unwrap().to_string_lossy();
            assert!(file.starts_with('.') && file.ends_with(".tmp"), "{file}");
        }
    }
}
