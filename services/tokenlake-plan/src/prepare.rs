//! From a recipe to an opened plan: resolve the lake version, find or build the token cache,
//! then find or build the plan index. Everything built is kept in the cache directory and
//! reused by every rank and restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use tokenlake_lake::{Lake, LakeLocation, VersionSpec};
use xxhash_rust::xxh3::xxh3_64;

use crate::build::{build_plan, plan_dir_name};
use crate::cursor::PlanId;
use crate::error::{PlanError, Result};
use crate::materialise::{VersionKey, token_cache_for};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::publish::COMPLETE_MARKER;
use crate::recipe::Recipe;
use crate::token_cache::TokenCache;

/// What the command line may override in a recipe.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub lake: Option<String>,
    pub version: Option<VersionSpec>,
    /// Where token caches and plan indexes live; `<lake>/cache` by default.
    pub cache_dir: Option<PathBuf>,
}

/// An opened plan and where it came from.
pub struct PreparedPlan {
    pub plan: Plan,
    pub lake: String,
    pub version: u64,
    pub cache_dir: PathBuf,
    pub plan_dir: PathBuf,
}

/// Resolves, materialises and builds (or reuses) the plan of `recipe`.
pub async fn prepare(
    recipe: &Recipe,
    options: &PlanOptions,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<PreparedPlan> {
    let lake_arg = options
        .lake
        .clone()
        .or_else(|| recipe.lake.clone())
        .ok_or_else(|| PlanError::Recipe {
            path: recipe.path.clone(),
            line: None,
            message: "no lake: set `lake = \"…\"` in the recipe or pass --lake".into(),
        })?;
    // A relative path is relative to the working directory, like every path on the command line.
    let location = LakeLocation::parse(&lake_arg)?;
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
    let cache_dir = options
        .cache_dir
        .clone()
        .unwrap_or_else(|| location.root().join("cache"));
    let key = VersionKey::of(&location.to_string(), &dataset);
    let cache = token_cache_for(
        recipe,
        &dataset,
        &key,
        info.token_width,
        &cache_dir,
        progress,
        cancel,
    )
    .await?;
    let (plan, plan_dir) = open_or_build(recipe, cache, &cache_dir, progress, cancel)?;
    Ok(PreparedPlan {
        plan,
        lake: location.to_string(),
        version,
        cache_dir,
        plan_dir,
    })
}

/// The identity of `recipe`'s plan over `cache`.
pub fn plan_id(recipe: &Recipe, cache: &TokenCache) -> PlanId {
    PlanId {
        data: cache.fingerprint(),
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
    cancel: &AtomicBool,
) -> Result<(Plan, PathBuf)> {
    let id = plan_id(recipe, &cache);
    let dir = cache_dir.join("plans").join(plan_dir_name(&id));
    if !dir.join(COMPLETE_MARKER).is_file() {
        build_plan(recipe, &cache, id, &dir, progress, cancel)?;
    }
    Ok((Plan::open(&dir, cache)?, dir))
}
