//! What every service shares: the configured lakes (the only ones a request can name), and the
//! plans prepared so far. All ranks of a job ask for the same recipe at once; the first one
//! prepares the plan (building caches the cache directory lacks) and the others wait for it,
//! then all stream from the same mapped caches.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    pub streams: Arc<crate::admission::StreamAdmission>,
    /// The queries running now, bounded in number, on their own runtime.
    pub queries: crate::queries::Queries,
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
        let queries = crate::queries::Queries::new(config.limits.max_queries)
            .map_err(|e| crate::ServeError::Invalid(format!("starting the query runtime: {e}")))?;
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

/// How long a recipe whose prepare failed is answered with that failure before the server
/// tries it again: a broken recipe sent by every rank of a job costs one attempt, not one per
/// rank and retry.
const FAILED_PREPARE_HELD: Duration = Duration::from_secs(30);

/// The plans a server has open: each maps a token cache and a plan index, and holds them
/// against eviction. At most `limits.max_plans` stay open; beyond that the least recently
/// used plan that no stream reads is closed (its mappings and cache holds dropped, so the
/// cache's eviction can free its disk), and when every plan is streaming a new one is refused.
#[derive(Default)]
pub struct PlanRegistry {
    /// (recipe text, lake, resolved version) → the plan, prepared once.
    by_request: Mutex<HashMap<u64, Arc<OnceCell<Arc<ServedPlan>>>>>,
    by_id: Mutex<HashMap<String, Arc<ServedPlan>>>,
    /// When each open plan was last asked for.
    last_used: Mutex<HashMap<String, Instant>>,
    /// Recent failures to prepare, by request key.
    failed: Mutex<HashMap<u64, (Instant, Status)>>,
}

/// Failed prepares remembered at once, at most.
const FAILED_REMEMBERED: usize = 1024;

/// Removes a request's cell from the registry when it ends with the cell still empty (the
/// prepare failed or its client went away) and no other request waits on it. Dropped while
/// the request still holds its own reference to the cell: the map's and that one are two.
struct ForgetIfEmpty<'a> {
    registry: &'a PlanRegistry,
    key: u64,
}

impl Drop for ForgetIfEmpty<'_> {
    fn drop(&mut self) {
        let mut cells = self
            .registry
            .by_request
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cells
            .get(&self.key)
            .is_some_and(|cell| cell.get().is_none() && Arc::strong_count(cell) <= 2)
        {
            cells.remove(&self.key);
        }
    }
}

/// Cancels a plan build when the request that runs it goes away before it ends (the client
/// disconnected): the build stops at its next step instead of running on for nobody; a rank
/// still waiting for the same plan starts it again.
struct CancelOnDrop(Option<Cancel>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            cancel.cancel();
        }
    }
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
        self.touch(id);
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
        self.touch(&plan.id);
        self.by_id
            .lock()
            .expect("plan registry lock")
            .insert(plan.id.clone(), plan.clone());
        plan
    }

    /// Plans open now.
    pub fn open(&self) -> usize {
        self.by_id.lock().expect("plan registry lock").len()
    }

    fn touch(&self, id: &str) {
        self.last_used
            .lock()
            .expect("plan registry lock")
            .insert(id.to_string(), Instant::now());
        metrics::gauge!("tokenlake_plans_open").set(self.open() as f64);
    }

    /// Closes the least recently used plans that no stream reads until fewer than `max` are
    /// open; RESOURCE_EXHAUSTED when every open plan is in use.
    fn make_room(&self, max: usize) -> Result<(), Status> {
        let mut by_id = self.by_id.lock().expect("plan registry lock");
        if by_id.len() < max {
            return Ok(());
        }
        let mut by_request = self.by_request.lock().expect("plan registry lock");
        let mut last_used = self.last_used.lock().expect("plan registry lock");
        // The registry's own references: `by_id`'s, and the prepared cell's when the plan
        // came from a recipe. Any more is a stream (or a request about to stream).
        let idle = |plan: &Arc<ServedPlan>| Arc::strong_count(plan) <= 2;
        let mut candidates: Vec<(Instant, String)> = by_id
            .iter()
            .filter(|(_, plan)| idle(plan))
            .map(|(id, _)| {
                (
                    last_used.get(id).copied().unwrap_or_else(Instant::now),
                    id.clone(),
                )
            })
            .collect();
        candidates.sort();
        for (_, id) in candidates {
            if by_id.len() < max {
                break;
            }
            by_id.remove(&id);
            last_used.remove(&id);
            by_request.retain(|_, cell| cell.get().is_none_or(|plan| plan.id != id));
            tracing::info!(plan = %id, "closed a plan no stream reads (limits.max_plans)");
        }
        metrics::gauge!("tokenlake_plans_open").set(by_id.len() as f64);
        if by_id.len() >= max {
            return Err(status(
                Code::ResourceExhausted,
                format!(
                    "this server has {} plans open and streams from each of them, the most it \
                     keeps open (limits.max_plans); try again when a job ends",
                    by_id.len()
                ),
            ));
        }
        Ok(())
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
        if let Some((when, failure)) = self.failed.lock().expect("plan registry lock").get(&key)
            && when.elapsed() < FAILED_PREPARE_HELD
        {
            return Err(Status::new(
                failure.code(),
                format!(
                    "{} (this recipe failed to prepare {}s ago; the server tries it again \
                     {}s after a failure)",
                    failure.message(),
                    when.elapsed().as_secs(),
                    FAILED_PREPARE_HELD.as_secs()
                ),
            ));
        }
        let known = self
            .by_request
            .lock()
            .expect("plan registry lock")
            .contains_key(&key);
        if !known {
            self.make_room(state.config.limits.max_plans)?;
        }
        let cell = self
            .by_request
            .lock()
            .expect("plan registry lock")
            .entry(key)
            .or_default()
            .clone();
        // A request that fails or goes away leaves no empty cell behind (one per distinct
        // recipe would otherwise accumulate for ever).
        let _forget = ForgetIfEmpty {
            registry: self,
            key,
        };
        let outcome = cell
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
                    cache_mode: state.config.cache_mode,
                    window: state.config.window().map_err(|e| {
                        crate::error::internal(format!("the server's configuration: {e}"))
                    })?,
                    token_stores: state.config.token_stores.clone(),
                };
                // The build stops between steps when the server shuts down or when the
                // request that runs it goes away.
                let cancel = Cancel::new();
                let mut on_drop = CancelOnDrop(Some(cancel.clone()));
                let relay = {
                    let (cancel, shutting_down) = (cancel.clone(), state.shutting_down.clone());
                    tokio::spawn(async move {
                        while !shutting_down.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        cancel.cancel();
                    })
                };
                let progress = Progress::with_cancel(cancel);
                let recipe_for_build = recipe.clone();
                // Preparing may build caches for minutes of CPU work: off the async workers.
                let prepared = tokio::task::spawn_blocking(move || {
                    tokio::runtime::Handle::current().block_on(tokenlake_plan::prepare(
                        &recipe_for_build,
                        &options,
                        &progress,
                    ))
                })
                .await;
                relay.abort();
                on_drop.0 = None;
                let prepared = prepared
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
            .await;
        let served = match outcome {
            Ok(served) => served.clone(),
            Err(failure) => {
                // A shutdown's cancellation is no fault of the recipe's.
                if !state.shutting_down.load(Ordering::Relaxed) {
                    let mut failed = self.failed.lock().expect("plan registry lock");
                    failed.retain(|_, (when, _)| when.elapsed() < FAILED_PREPARE_HELD);
                    // Bounded: a reader sending endless distinct broken recipes fills nothing.
                    if failed.len() < FAILED_REMEMBERED {
                        failed.insert(key, (Instant::now(), failure.clone()));
                    }
                }
                return Err(failure);
            }
        };
        self.failed
            .lock()
            .expect("plan registry lock")
            .retain(|_, (when, _)| when.elapsed() < FAILED_PREPARE_HELD);
        self.touch(&served.id);
        Ok(served)
    }
}
