//! What every service shares: the configured lakes (the only ones a request can name), and the
//! plans prepared so far. All ranks of a job ask for the same recipe at once; the first one
//! prepares the plan (building caches the cache directory lacks) and the others wait for it,
//! then all stream from the same mapped caches.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tokenlake_lake::{Lake, LakeLocation, VersionSpec};
use tokenlake_plan::{Cancel, PlanOptions, PreparedPlan, Progress, Recipe};
use tokenlake_schemas::proto::{PlanSource, plan_source};
use tokio::sync::OnceCell;
use tonic::{Code, Status};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::ServerConfig;
use crate::error::{invalid, service_status, status};
use crate::jobs::Jobs;

pub struct ServerState {
    pub config: ServerConfig,
    lakes: BTreeMap<String, LakeLocation>,
    pub plans: PlanRegistry,
    /// The streams open now, bounded in number per server and per token.
    pub streams: Arc<crate::stream::StreamAdmission>,
    /// The queries running now, bounded in number, on their own runtime.
    pub queries: crate::query::Queries,
    pub jobs: Jobs,
    /// Set when the server shuts down: streams end with UNAVAILABLE and their cursor.
    pub shutting_down: Arc<AtomicBool>,
}

impl ServerState {
    pub fn new(config: ServerConfig) -> Result<ServerState, crate::ServeError> {
        let mut lakes = BTreeMap::new();
        let storage = config.storage()?;
        for (name, uri) in &config.lakes {
            let location = LakeLocation::parse(uri)
                .map_err(|e| crate::ServeError::Invalid(format!("lake {name:?}: {e}")))?
                .with_options(storage.clone());
            lakes.insert(name.clone(), location);
        }
        let queries = crate::query::Queries::new(config.limits.max_queries).map_err(|e| {
            crate::ServeError::Invalid(format!("starting the query runtime: {e}"))
        })?;
        Ok(ServerState {
            config,
            lakes,
            plans: PlanRegistry::default(),
            streams: Arc::default(),
            queries,
            jobs: Jobs::default(),
            shutting_down: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn lake_names(&self) -> impl Iterator<Item = (&String, &LakeLocation)> {
        self.lakes.iter()
    }

    /// The location of a configured lake; any other name is NOT_FOUND (requests never carry
    /// paths, so they cannot reach files the config does not name).
    pub fn location(&self, name: &str) -> Result<&LakeLocation, Status> {
        self.lakes.get(name).ok_or_else(|| {
            status(
                Code::NotFound,
                format!(
                    "this server has no lake {name:?}; it serves {}",
                    self.lakes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    pub async fn open_lake(&self, name: &str) -> Result<Lake, Status> {
        Lake::open(self.location(name)?)
            .await
            .map_err(service_status)
    }
}

/// A version argument of a request: empty is `default`.
pub fn version_spec(text: &str, default: VersionSpec) -> Result<VersionSpec, Status> {
    if text.is_empty() {
        return Ok(default);
    }
    text.parse()
        .map_err(|e: String| invalid(format!("version {text:?}: {e}")))
}

/// A plan being served, with the names it was asked for by.
pub struct ServedPlan {
    pub prepared: PreparedPlan,
    pub recipe: Recipe,
    /// The server's name of the lake.
    pub lake: String,
    pub id: String,
}

#[derive(Default)]
pub struct PlanRegistry {
    /// (recipe text, lake, resolved version) → the plan, prepared once.
    by_request: Mutex<HashMap<u64, Arc<OnceCell<Arc<ServedPlan>>>>>,
    by_id: Mutex<HashMap<String, Arc<ServedPlan>>>,
}

impl PlanRegistry {
    /// The plan a request names, preparing it when this server has not yet.
    pub async fn get(
        &self,
        state: &ServerState,
        source: Option<&PlanSource>,
    ) -> Result<Arc<ServedPlan>, Status> {
        let source = source.ok_or_else(|| {
            invalid("the request names no plan: set plan.recipe_toml or plan.plan_id")
        })?;
        match &source.source {
            Some(plan_source::Source::PlanId(id)) => self.by_id(id),
            Some(plan_source::Source::RecipeToml(text)) => {
                self.prepare(state, text, &source.lake, &source.version)
                    .await
            }
            None => Err(invalid(
                "the request names no plan: set plan.recipe_toml or plan.plan_id",
            )),
        }
    }

    pub fn by_id(&self, id: &str) -> Result<Arc<ServedPlan>, Status> {
        self.by_id
            .lock()
            .expect("plan registry lock")
            .get(id)
            .cloned()
            .ok_or_else(|| {
                status(
                    Code::NotFound,
                    format!(
                        "this server has not prepared plan {id}; send its recipe instead of its id"
                    ),
                )
            })
    }

    /// Makes an already opened plan available by its id (benchmarks serve synthetic plans).
    pub fn insert(&self, plan: ServedPlan) -> Arc<ServedPlan> {
        let plan = Arc::new(plan);
        self.by_id
            .lock()
            .expect("plan registry lock")
            .insert(plan.id.clone(), plan.clone());
        plan
    }

    async fn prepare(
        &self,
        state: &ServerState,
        text: &str,
        lake_override: &str,
        version_override: &str,
    ) -> Result<Arc<ServedPlan>, Status> {
        let recipe = Recipe::parse(text, "(request)").map_err(service_status)?;
        let max = state.config.limits.max_sample_len;
        if recipe.sample_len > max {
            return Err(status(
                Code::ResourceExhausted,
                format!(
                    "sample_len {} is more than this server plans: at most {max} tokens \
                     (limits.max_sample_len)",
                    recipe.sample_len
                ),
            ));
        }
        let lake_name = if lake_override.is_empty() {
            recipe.lake.clone().ok_or_else(|| {
                invalid("the recipe names no lake: set `lake = \"NAME\"` to one of the server's lakes, or plan.lake")
            })?
        } else {
            lake_override.to_string()
        };
        let location = state.location(&lake_name)?.clone();
        let spec = version_spec(version_override, recipe.version.clone())?;
        let lake = Lake::open(&location).await.map_err(service_status)?;
        let version = lake.resolve(&spec).await.map_err(service_status)?;
        let key = xxh3_64(format!("{text}\u{0}{lake_name}\u{0}{version}").as_bytes());
        let cell = self
            .by_request
            .lock()
            .expect("plan registry lock")
            .entry(key)
            .or_default()
            .clone();
        let served = cell
            .get_or_try_init(|| async {
                let options = PlanOptions {
                    lake: Some(location.to_string()),
                    version: Some(VersionSpec::Number(version)),
                    cache_dir: state.config.cache_dir.clone(),
                    cache_max_bytes: state.config.cache_max_bytes().map_err(|e| {
                        crate::error::internal(format!("the server's configuration: {e}"))
                    })?,
                    storage: location.options().clone(),
                    request_counts: None,
                };
                // A server that shuts down stops the build between steps.
                let progress = Progress::with_cancel(Cancel::from(state.shutting_down.clone()));
                let recipe_for_build = recipe.clone();
                // Preparing may build caches for minutes of CPU work: off the async workers.
                let prepared = tokio::task::spawn_blocking(move || {
                    tokio::runtime::Handle::current().block_on(tokenlake_plan::prepare(
                        &recipe_for_build,
                        &options,
                        &progress,
                    ))
                })
                .await
                .map_err(|e| crate::error::internal(format!("preparing the plan: {e}")))?
                .map_err(service_status)?;
                let id = prepared.plan.id().hex();
                tracing::info!(plan = %id, lake = %lake_name, version, "plan ready");
                let served = Arc::new(ServedPlan {
                    prepared,
                    recipe,
                    lake: lake_name.clone(),
                    id: id.clone(),
                });
                self.by_id
                    .lock()
                    .expect("plan registry lock")
                    .insert(id, served.clone());
                Ok::<_, Status>(served)
            })
            .await?;
        Ok(served.clone())
    }
}
