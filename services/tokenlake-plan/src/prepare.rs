//! From a recipe to an opened plan: resolve the lake version, find or build the token cache,
//! then find or build the plan index. Everything built is kept in the cache directory and
//! reused by every rank and restart.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use tokenlake_lake::{
    Lake, LakeLocation, ObjectStorage, RequestCounts, StorageOptions, StorageUri, VersionSpec,
};
use xxhash_rust::xxh3::xxh3_64;

use crate::build::{build_plan, plan_dir_name};
use crate::cache_dir::{CacheHold, evict};
use crate::cursor::PlanId;
use crate::error::{PlanError, Result};
use crate::materialise::{VersionKey, selection_key, token_cache_for};
use crate::plan::Plan;
use crate::plan_index::{Layout, PagedTarget, PlanIndex};
use crate::publish::COMPLETE_MARKER;
use crate::recipe::Recipe;
use crate::store::TokenStore;
use crate::token_cache::TokenCache;
use crate::window::{Window, WindowOptions};
use tokenlake_lake::Progress;

/// What the command line may override in a recipe.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub lake: Option<String>,
    pub version: Option<VersionSpec>,
    /// Where token caches and plan indexes live: `<lake>/cache` by default for a local lake,
    /// [`default_remote_cache_dir`] for a remote one.
    pub cache_dir: Option<PathBuf>,
    /// Token caches beyond this many bytes are evicted, least recently used first.
    pub cache_max_bytes: Option<u64>,
    /// How to reach a remote lake (endpoint, credentials …).
    pub storage: StorageOptions,
    /// Counts the object-store requests made for the lake (benchmarks).
    pub request_counts: Option<Arc<RequestCounts>>,
    /// Whether the plan reads a full local token cache or a token store through a window.
    pub cache_mode: CacheMode,
    /// The window's bound, horizon and fetching (window mode).
    pub window: WindowOptions,
    /// Where token stores live: `<lake>/token-stores` by default, or any location (a bucket
    /// of their own); each store is a directory named by its selection under it.
    pub token_stores: Option<String>,
}

/// How a plan gets its tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// A window when the selection's token store is larger than the cache bound
    /// (`cache_max_bytes`), else a full local cache.
    #[default]
    Auto,
    /// The whole selection copied into the local cache before the first batch.
    Full,
    /// The selection's token store (`tokenlake materialise`), read ahead of each rank into a
    /// bounded window.
    Window,
}

impl std::str::FromStr for CacheMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<CacheMode, String> {
        match s {
            "auto" => Ok(CacheMode::Auto),
            "full" => Ok(CacheMode::Full),
            "window" => Ok(CacheMode::Window),
            other => Err(format!(
                "{other:?} is not a cache mode (auto, full or window)"
            )),
        }
    }
}

/// The node-local cache of remote lakes: `$TOKENLAKE_CACHE_DIR`, else `$XDG_CACHE_HOME/tokenlake`,
/// else `~/.cache/tokenlake`. Every rank and process of a user on the node shares it.
///
/// Never the shared temporary directory: any local user could plant entries there before us.
/// Without any of these variables it is an error that says what to set.
pub fn default_remote_cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("TOKENLAKE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("tokenlake"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("tokenlake")),
        None => Err(PlanError::NoCacheDir),
    }
}

/// An opened plan and where it came from.
pub struct PreparedPlan {
    pub plan: Plan,
    pub lake: String,
    pub version: u64,
    pub cache_dir: PathBuf,
    pub plan_dir: PathBuf,
    /// The plan's token cache and index, held against eviction while the plan is open (none
    /// for a plan that maps no cache directory's entries, as benchmarks' synthetic plans).
    pub hold: Option<CacheHold>,
    /// The token store the plan reads through its window, in window mode.
    pub store: Option<StorageUri>,
}

/// Resolves, materialises and builds (or reuses) the plan of `recipe`.
/// A recipe's lake version, resolved, and where its caches and token store live.
struct Resolved {
    location: LakeLocation,
    cache_dir: PathBuf,
    version: u64,
    dataset: lance::Dataset,
    key: VersionKey,
    width: tokenlake_schemas::TokenWidth,
    /// The selection's token store.
    store_root: StorageUri,
}

impl Resolved {
    /// Resolves `recipe`'s lake and version, checking its special tokens against the lake's
    /// vocabulary.
    async fn of(recipe: &Recipe, options: &PlanOptions) -> Result<Resolved> {
        let lake_arg = options
            .lake
            .clone()
            .or_else(|| recipe.lake.clone())
            .ok_or_else(|| PlanError::Recipe {
                path: recipe.path.clone(),
                line: None,
                message: "no lake: set `lake = \"…\"` in the recipe or pass --lake".into(),
            })?;
        // A relative path is relative to the working directory, like every path on the
        // command line.
        let mut location = LakeLocation::parse(&lake_arg)?.with_options(options.storage.clone());
        if let Some(counts) = &options.request_counts {
            location = location.with_request_counts(counts.clone());
        }
        // Before the lake is read: a run that has nowhere safe to cache stops at once.
        let cache_dir = match (&options.cache_dir, location.local_root()) {
            (Some(dir), _) => dir.clone(),
            (None, Some(root)) => root.join("cache"),
            (None, None) => default_remote_cache_dir()?,
        };
        let lake = Lake::open(&location).await?;
        let spec = options
            .version
            .clone()
            .unwrap_or_else(|| recipe.version.clone());
        let version = lake.resolve(&spec).await?;
        let dataset = lake.checkout(&VersionSpec::Number(version)).await?;
        let info = lake.schema_info()?;
        for (key, token) in [
            ("eos_token", recipe.eos_token),
            ("pad_token", recipe.pad_token),
        ] {
            if token as usize >= info.vocab_size {
                return Err(PlanError::Recipe {
                    path: recipe.path.clone(),
                    line: None,
                    message: format!(
                        "{key} {token} is not an id of the lake's vocabulary (0..{})",
                        info.vocab_size
                    ),
                });
            }
        }
        let key = VersionKey::of(&location.to_string(), &dataset);
        let stores = match &options.token_stores {
            Some(uri) => StorageUri::parse(uri)?,
            None => location.root().join("token-stores"),
        };
        let store_root = stores.join(&selection_key(recipe, &key, info.token_width));
        Ok(Resolved {
            location,
            cache_dir,
            version,
            dataset,
            key,
            width: info.token_width,
            store_root,
        })
    }

    /// The store that holds the selection's token store: the lake's own (counted, for
    /// benchmarks) when stores live in the lake.
    fn storage(&self, options: &PlanOptions) -> Result<ObjectStorage> {
        Ok(match &options.token_stores {
            None => self.location.storage()?,
            Some(_) => ObjectStorage::for_uri(&self.store_root, self.location.options())?,
        })
    }
}

/// Resolves, materialises and builds (or reuses) the plan of `recipe`.
pub async fn prepare(
    recipe: &Recipe,
    options: &PlanOptions,
    progress: &Progress,
) -> Result<PreparedPlan> {
    let resolved = Resolved::of(recipe, options).await?;
    prepare_resolved(recipe, options, resolved, progress).await
}

/// The token store a plan reads through a window under `options.cache_mode`: none for a full
/// local cache (full mode, or auto mode with no store or one within the cache's bound).
async fn windowed_store(resolved: &Resolved, options: &PlanOptions) -> Result<Option<TokenStore>> {
    if options.cache_mode == CacheMode::Full {
        return Ok(None);
    }
    let store = TokenStore::open(&resolved.storage(options)?, &resolved.store_root).await?;
    let windowed = match (&store, options.cache_mode) {
        (None, CacheMode::Window) => {
            return Err(PlanError::NoTokenStore {
                uri: resolved.store_root.to_string(),
            });
        }
        (Some(store), CacheMode::Auto) => options
            .cache_max_bytes
            .is_some_and(|bound| store.manifest.token_bytes() > bound),
        (store, _) => store.is_some(),
    };
    Ok(store.filter(|_| windowed))
}

/// The id [`prepare`] would give `recipe`'s plan, without building its plan index: the token
/// cache is opened (or built, as [`prepare`] would), or the token store's manifest read in
/// window mode; the index is the part that grows with the lake and the budget (28 bytes per
/// document and epoch). Recipes over one selection that differ only in
/// weights, budgets or seed share that cache, so identifying many of them costs one cache
/// and a hash each.
pub async fn identify(
    recipe: &Recipe,
    options: &PlanOptions,
    progress: &Progress,
) -> Result<PlanId> {
    let resolved = Resolved::of(recipe, options).await?;
    if let Some(store) = windowed_store(&resolved, options).await? {
        return Ok(plan_id_over(recipe, store.manifest.cache.fingerprint));
    }
    let cancel = progress.cancel_token().flag();
    let cache = token_cache_for(
        recipe,
        &resolved.dataset,
        &resolved.key,
        resolved.width,
        &resolved.cache_dir,
        progress,
        cancel,
    )
    .await?;
    Ok(plan_id(recipe, &cache))
}

/// [`prepare`] once the lake version is resolved.
async fn prepare_resolved(
    recipe: &Recipe,
    options: &PlanOptions,
    resolved: Resolved,
    progress: &Progress,
) -> Result<PreparedPlan> {
    let cancel = progress.cancel_token().flag();
    let windowed = windowed_store(&resolved, options).await?;
    let Resolved {
        location,
        cache_dir,
        version,
        dataset,
        key,
        width,
        store_root,
    } = resolved;
    if let Some(store) = windowed {
        let (plan, plan_dir) =
            open_windowed(recipe, &store, options.window, &cache_dir, progress).await?;
        let hold = CacheHold::new(&[&plan_dir])?;
        return Ok(PreparedPlan {
            plan,
            lake: location.to_string(),
            version,
            cache_dir,
            plan_dir,
            hold: Some(hold),
            store: Some(store_root),
        });
    }
    let cache =
        token_cache_for(recipe, &dataset, &key, width, &cache_dir, progress, cancel).await?;
    let tokens_dir = cache.dir().to_path_buf();
    let (plan, plan_dir) = open_or_build(recipe, cache, &cache_dir, progress)?;
    // Held while the plan is open: no eviction removes what it maps.
    let hold = CacheHold::new(&[&tokens_dir, &plan_dir])?;
    if let Some(max_bytes) = options.cache_max_bytes {
        let eviction = evict(&cache_dir, max_bytes, &[&tokens_dir, &plan_dir])?;
        if !eviction.evicted.is_empty() {
            tracing::info!(
                evicted = eviction.evicted.len(),
                freed_bytes = eviction.evicted_bytes,
                kept_bytes = eviction.kept_bytes,
                "token cache over its bound"
            );
        }
    }
    Ok(PreparedPlan {
        plan,
        lake: location.to_string(),
        version,
        cache_dir,
        plan_dir,
        hold: Some(hold),
        store: None,
    })
}

/// `recipe`'s plan over `store`, read through a window: the plan index published beside the
/// store, or built here from the store's record table.
async fn open_windowed(
    recipe: &Recipe,
    store: &TokenStore,
    window: WindowOptions,
    cache_dir: &Path,
    progress: &Progress,
) -> Result<(Plan, PathBuf)> {
    let data = store.manifest.cache.clone();
    let id = plan_id_over(recipe, data.fingerprint);
    let name = plan_dir_name(&id);
    let dir = cache_dir.join("plans").join(&name);
    let width = data.width().map_err(|reason| PlanError::CacheCorrupt {
        path: store.root.to_string(),
        reason,
    })?;
    let window = Arc::new(Window::new(
        store.chunks(),
        store.manifest.chunk_bytes,
        width.bytes(),
        window,
    )?);
    if dir.join(COMPLETE_MARKER).is_file() {
        return Ok((Plan::open_windowed(&dir, data, window)?, dir));
    }
    // Published with page checksums: read the pages the first steps need at once and the rest
    // in the background (`plan_index.rs`), so the first batch does not wait for the index.
    if let Some(published) = store.published_plan(&name).await? {
        let tmp = crate::publish::temp_dir_for(&dir)?;
        let at = PagedTarget {
            tmp: tmp.clone(),
            target: dir.clone(),
            manifest: published.manifest.to_vec(),
        };
        let opened = PlanIndex::paged(
            published.source,
            Layout {
                len: published.len,
                page: crate::plan_index::PAGE,
                sums: &published.sums,
            },
            at,
            *window.options(),
            &window.runtime(),
            true,
        )
        .and_then(|index| {
            let published_at = store.root.join(&format!("plans/{name}/{COMPLETE_MARKER}"));
            Plan::open_paged(
                Path::new(&published_at.to_string()),
                &published.manifest,
                index,
                data.clone(),
                window.clone(),
            )
        });
        if opened.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        return Ok((opened?, dir));
    }
    let cancel = progress.cancel_token().flag();
    progress.start("downloading the plan index", 0);
    if !store.download_plan(&name, &dir, cancel).await? {
        // Nobody published it yet: build it over the store's records. Without the tokens it
        // holds no piece checksums (its window fetches parts of documents whole), so it is
        // kept on this node, not published over a better one `materialise` may publish.
        let index_dir = cache_dir
            .join("store-indexes")
            .join(format!("{:016x}", data.fingerprint));
        let built = async {
            let cache = match TokenCache::open_index(&index_dir) {
                Ok(cache) => cache,
                Err(_) => {
                    progress.start("downloading the token store's records", 0);
                    let _ = std::fs::remove_dir_all(&index_dir);
                    store.download_index(&index_dir).await?
                }
            };
            // Synchronous, as in full mode (`open_or_build`): callers run prepares off
            // the async threads.
            build_plan(recipe, &cache, id, &dir, progress)
        }
        .await;
        // The records are the size of the selection's index, not its tokens: not kept.
        let _ = std::fs::remove_dir_all(&index_dir);
        built?;
    }
    Ok((Plan::open_windowed(&dir, data, window)?, dir))
}

/// Fills `recipe`'s full token cache (as [`prepare`] in full mode) and publishes it as the
/// selection's token store, with the plan index beside it: what window-mode nodes read.
pub async fn materialise(
    recipe: &Recipe,
    options: &PlanOptions,
    chunk_bytes: u64,
    progress: &Progress,
) -> Result<(PreparedPlan, TokenStore)> {
    let full = PlanOptions {
        cache_mode: CacheMode::Full,
        ..options.clone()
    };
    let resolved = Resolved::of(recipe, &full).await?;
    let (storage, root) = (resolved.storage(options)?, resolved.store_root.clone());
    let prepared = prepare_resolved(recipe, &full, resolved, progress).await?;
    let cache = prepared
        .plan
        .token_cache()
        .expect("a full-mode plan reads a local cache");
    let store = TokenStore::publish(cache, &storage, &root, chunk_bytes, progress).await?;
    publish_plan_of(&store, &prepared.plan_dir).await?;
    Ok((prepared, store))
}

/// Publishes the plan index in `dir` beside `store`.
async fn publish_plan_of(store: &TokenStore, dir: &Path) -> Result<()> {
    let name = dir.file_name().expect("named").to_string_lossy();
    store.publish_plan(&name, dir).await
}

/// One task of a sharded build: the documents `recipe` selects in the `shard`-th of `shards`
/// slices of the version's fragments, published as `shards/<shard>-of-<shards>/` under the
/// selection's store. A task run again after it published does nothing. Returns the shard's
/// store and the version it read.
pub async fn materialise_shard(
    recipe: &Recipe,
    options: &PlanOptions,
    shard: u32,
    shards: u32,
    chunk_bytes: u64,
    progress: &Progress,
) -> Result<(TokenStore, u64)> {
    if shards == 0 || shard >= shards {
        return Err(PlanError::Store(format!(
            "shard {shard} of {shards}: shards are numbered 0..{shards}"
        )));
    }
    let resolved = Resolved::of(recipe, options).await?;
    let storage = resolved.storage(options)?;
    let root = resolved
        .store_root
        .join(&crate::store::shard_prefix(shard, shards));
    if let Some(store) = TokenStore::open(&storage, &root).await? {
        return Ok((store, resolved.version));
    }
    // The shard's tokens pass through a local cache of the shard alone, removed after.
    let dir = resolved.cache_dir.join("store-shards").join(format!(
        "{}-{shard}-of-{shards}",
        resolved.store_root.as_uri().replace(['/', ':'], "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let cancel = progress.cancel_token().flag();
    let published = async {
        let cache = crate::materialise::shard_cache(
            recipe,
            &resolved.dataset,
            shard,
            shards,
            resolved.width,
            &dir,
            progress,
            cancel,
        )
        .await?;
        TokenStore::publish(&cache, &storage, &root, chunk_bytes, progress).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    published.map(|store| (store, resolved.version))
}

/// The last step of a sharded build: seals the shards' stores into the selection's store and
/// publishes its plan index, with its piece checksums (`piece_sums.rs`).
pub async fn seal(
    recipe: &Recipe,
    options: &PlanOptions,
    shards: u32,
    progress: &Progress,
) -> Result<(TokenStore, PlanId, u64)> {
    let resolved = Resolved::of(recipe, options).await?;
    let storage = resolved.storage(options)?;
    let components: Vec<(bool, String)> = recipe
        .components
        .iter()
        .map(|c| (c.task.is_some(), c.name.clone()))
        .collect();
    let work = resolved.cache_dir.join("store-seal").join(format!(
        "{:016x}",
        xxh3_64(resolved.store_root.as_uri().as_bytes())
    ));
    let _ = std::fs::remove_dir_all(&work);
    let sealed = async {
        let store = TokenStore::seal(
            &storage,
            &resolved.store_root,
            shards,
            &components,
            &work.join("index"),
        )
        .await?;
        for (c, component) in store.manifest.cache.components.iter().enumerate() {
            if component.docs == 0 {
                return Err(recipe.component_error(
                    c,
                    format!(
                        "filter {:?} selects no documents at version {}",
                        recipe.components[c].filter, resolved.version
                    ),
                ));
            }
        }
        let cache = match TokenCache::open_index(&work.join("index")) {
            Ok(cache) => cache,
            Err(_) => store.download_index(&work.join("index")).await?,
        };
        let id = plan_id_over(recipe, store.manifest.cache.fingerprint);
        // Built over the records alone, then given its piece checksums by one pass over the
        // store's chunks (no machine holds the tokens), so windows fetch exactly what samples
        // read; then published.
        let plan_dir = work.join("plans").join(plan_dir_name(&id));
        build_plan(recipe, &cache, id, &plan_dir, progress)?;
        crate::piece_sums::add_piece_checksums(
            &plan_dir,
            store.chunks(),
            store.manifest.chunk_bytes,
            progress,
        )
        .await?;
        publish_plan_of(&store, &plan_dir).await?;
        Ok((store, id, resolved.version))
    }
    .await;
    let _ = std::fs::remove_dir_all(&work);
    sealed
}

/// The identity of `recipe`'s plan over `cache`.
pub fn plan_id(recipe: &Recipe, cache: &TokenCache) -> PlanId {
    plan_id_over(recipe, cache.fingerprint())
}

/// The identity of `recipe`'s plan over the data of `fingerprint` (a token cache's, or a
/// store's).
fn plan_id_over(recipe: &Recipe, fingerprint: u64) -> PlanId {
    PlanId {
        data: fingerprint,
        recipe: xxh3_64(recipe.canonical().as_bytes()),
        seed: recipe.seed,
    }
}

/// Opens `recipe`'s plan over `cache` from `cache_dir/plans`, building it first when missing.
pub fn open_or_build(
    recipe: &Recipe,
    cache: TokenCache,
    cache_dir: &Path,
    progress: &Progress,
) -> Result<(Plan, PathBuf)> {
    let id = plan_id(recipe, &cache);
    let dir = cache_dir.join("plans").join(plan_dir_name(&id));
    if !dir.join(COMPLETE_MARKER).is_file() {
        build_plan(recipe, &cache, id, &dir, progress)?;
    }
    Ok((Plan::open(&dir, cache)?, dir))
}
