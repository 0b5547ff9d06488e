//! The explorer's HTTP routes: the embedded application and its JSON API.
//!
//! Pages read only the columns they show: counts run `count(*)` under the filter (never reading
//! `text`), document pages read one page of rows (a seeded random order samples by hash, as
//! `tokenlake sample`), and text in listings is cut to a preview. 64-bit integers travel as
//! strings, since JavaScript's numbers would round document ids.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokenlake_lake::{Lake, LakeLocation, QueryLimits, QueryResult, VersionSpec};
use tokenlake_schemas::{ErrorCode, ServiceError};
use tokio::sync::Semaphore;

use crate::assets::{ASSETS, CSP, RECIPES};
use crate::auth::{COOKIE, Caller, Role, Sessions};
use crate::{Explorer, Limits};

pub struct State {
    lakes: BTreeMap<String, LakeLocation>,
    sessions: Sessions,
    limits: Limits,
    queries: Semaphore,
    /// Recipe previews build plans (and token caches): one at a time.
    plans: Semaphore,
    cache_dir: Option<std::path::PathBuf>,
}

impl State {
    pub fn new(e: Explorer) -> State {
        State {
            queries: Semaphore::new(e.limits.max_queries.max(1)),
            plans: Semaphore::new(1),
            sessions: Sessions::new(e.access),
            lakes: e.lakes,
            limits: e.limits,
            cache_dir: e.cache_dir,
        }
    }
}

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    let mut app = Router::new();
    for (path, _, _) in ASSETS {
        app = app.route(path, get(asset));
    }
    app.route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/lakes", get(lakes))
        .route("/api/recipes", get(recipes))
        .route("/api/lakes/{lake}/versions", get(versions))
        .route("/api/lakes/{lake}/diff", get(diff))
        .route("/api/lakes/{lake}/tags", post(create_tag))
        .route("/api/lakes/{lake}/describe", get(describe))
        .route("/api/lakes/{lake}/columns", get(columns))
        .route("/api/lakes/{lake}/documents", get(documents))
        .route("/api/lakes/{lake}/documents/{id}", get(document))
        .route("/api/lakes/{lake}/clusters/{keeper}", get(cluster))
        .route("/api/lakes/{lake}/sql", post(sql))
        .route("/api/lakes/{lake}/sql.csv", get(sql_csv))
        .route("/api/lakes/{lake}/sql.parquet", get(sql_parquet))
        .route("/api/lakes/{lake}/recipe", post(recipe))
        .route("/api/lakes/{lake}/eval", get(evaluation))
        .fallback(not_found)
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
}

/// Headers every response carries.
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn asset(uri: axum::http::Uri) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == uri.path()) {
        Some((_, ty, body)) => ([(header::CONTENT_TYPE, *ty)], *body).into_response(),
        None => not_found().await,
    }
}

async fn not_found() -> Response {
    ApiError(StatusCode::NOT_FOUND, "no such page".into()).into_response()
}

/// An error as the API answers it: a status and `{"error": message}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        let code = e
            .chain()
            .find_map(|c| {
                c.downcast_ref::<tokenlake_lake::LakeError>()
                    .map(|l| l.error_code())
                    .or_else(|| {
                        c.downcast_ref::<tokenlake_plan::PlanError>()
                            .map(|p| p.error_code())
                    })
            })
            .unwrap_or(ErrorCode::InvalidArgument);
        let status = match code {
            ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::AlreadyExists => StatusCode::CONFLICT,
            ErrorCode::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
            ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Cancelled => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %format!("{e:#}"), "explorer request failed");
        }
        ApiError(status, format!("{e:#}"))
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

type ApiResult<T> = Result<T, ApiError>;

// -- signing in ---------------------------------------------------------------------------------

fn caller(state: &State, headers: &HeaderMap) -> ApiResult<Caller> {
    state.sessions.caller(headers).ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "sign in with a token of this server".into(),
        )
    })
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// The session cookie's header value: `id` for `max_age` seconds (an empty id and 0 end it).
/// Secure when the request reached a TLS-terminating proxy in front of the explorer (which says
/// so in `X-Forwarded-Proto`), so the browser never sends it back over plain HTTP.
fn session_cookie(id: &str, max_age: u64, headers: &HeaderMap) -> String {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

async fn login(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Json(body): Json<Login>,
) -> ApiResult<Response> {
    if state.sessions.is_open() {
        return Ok(Json(json!({"name": "open", "role": "admin", "open": true})).into_response());
    }
    let (id, caller) = state
        .sessions
        .sign_in(body.token.trim())
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "this token is not known".into()))?;
    let cookie = session_cookie(&id, 43200, &headers);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"name": caller.name, "role": caller.role, "open": false})),
    )
        .into_response())
}

async fn logout(AxState(state): AxState<Shared>, headers: HeaderMap) -> Response {
    state.sessions.sign_out(&headers);
    let cookie = session_cookie("", 0, &headers);
    ([(header::SET_COOKIE, cookie)], Json(json!({}))).into_response()
}

async fn me(AxState(state): AxState<Shared>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let c = caller(&state, &headers)?;
    Ok(Json(
        json!({"name": c.name, "role": c.role, "open": state.sessions.is_open()}),
    ))
}

// -- lakes and versions -------------------------------------------------------------------------

async fn lakes(AxState(state): AxState<Shared>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    Ok(Json(json!(state.lakes.keys().collect::<Vec<_>>())))
}

async fn recipes(AxState(state): AxState<Shared>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let list: Vec<Value> = RECIPES
        .iter()
        .map(|(name, text)| json!({"name": name, "text": text}))
        .collect();
    Ok(Json(json!(list)))
}

/// Where the lake served as `name` lives.
fn location<'a>(state: &'a State, name: &str) -> ApiResult<&'a LakeLocation> {
    state
        .lakes
        .get(name)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no lake named {name:?}")))
}

async fn open_lake(state: &State, name: &str) -> ApiResult<Lake> {
    Ok(Lake::open(location(state, name)?)
        .await
        .map_err(anyhow::Error::from)?)
}

fn spec(version: Option<&str>) -> ApiResult<VersionSpec> {
    match version.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(VersionSpec::Latest),
        Some(v) => v
            .parse()
            .map_err(|e: String| bad(format!("version {v:?}: {e}"))),
    }
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

async fn versions(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = caller(&state, &headers)?;
    let lake = open_lake(&state, &name).await?;
    let versions = lake.versions().await.map_err(anyhow::Error::from)?;
    let tags = lake.tags().await.map_err(anyhow::Error::from)?;
    Ok(Json(json!({
        "versions": versions,
        "tags": tags,
        // what the page offers: tagging is an admin's
        "can_tag": c.role == Role::Admin,
    })))
}

#[derive(Deserialize)]
struct DiffQuery {
    from: String,
    to: Option<String>,
}

async fn diff(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let lake = open_lake(&state, &name).await?;
    let d = lake
        .diff(&spec(Some(&q.from))?, &spec(q.to.as_deref())?)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Json(serde_json::to_value(d).map_err(anyhow::Error::from)?))
}

#[derive(Deserialize)]
struct TagBody {
    name: String,
    version: Option<String>,
}

async fn create_tag(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<TagBody>,
) -> ApiResult<Json<Value>> {
    let c = caller(&state, &headers)?;
    if c.role != Role::Admin {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} is a reader; tagging needs an admin token",
                c.name
            ),
        ));
    }
    let lake = open_lake(&state, &name).await?;
    let version = lake
        .create_tag(&body.name, &spec(body.version.as_deref())?)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Json(json!({"tag": body.name, "version": version})))
}

async fn describe(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let lake = open_lake(&state, &name).await?;
    let d = lake
        .describe(&spec(q.version.as_deref())?)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Json(serde_json::to_value(d).map_err(anyhow::Error::from)?))
}

// -- queries ------------------------------------------------------------------------------------

/// A place among the requests `semaphore` admits at once (waiting for one).
async fn slot(semaphore: &Semaphore) -> ApiResult<tokio::sync::SemaphorePermit<'_>> {
    semaphore
        .acquire()
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))
}

/// Runs `sql` within the explorer's limits: at most `max_rows` rows, its time and memory, and
/// a slot among the queries running at once.
async fn run_query(
    state: &State,
    lake: &Lake,
    version: &VersionSpec,
    sql: &str,
    max_rows: u64,
) -> ApiResult<QueryResult> {
    let _slot = slot(&state.queries).await?;
    let limits = QueryLimits {
        memory_bytes: state.limits.query_max_memory_bytes,
        result_bytes: Some(state.limits.query_max_result_bytes),
    };
    let timeout = state.limits.query_timeout;
    match tokio::time::timeout(
        timeout,
        tokenlake_lake::collect_query(lake, version, sql, &limits, max_rows),
    )
    .await
    {
        Ok(result) => Ok(result.map_err(anyhow::Error::from)?),
        Err(_) => Err(ApiError(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the query ran past {} s; narrow it with a WHERE or a LIMIT",
                timeout.as_secs()
            ),
        )),
    }
}

/// Rows as JSON objects, 64-bit integers as strings and long strings of `text` cut.
fn rows_json(batches: &[RecordBatch], cut_text: Option<usize>) -> ApiResult<Vec<Value>> {
    let mut rows = Vec::new();
    for batch in batches {
        let batch = wide_ints_as_strings(batch)?;
        // Nulls are written, so every row has every column.
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::JsonArray>(Vec::new());
        writer.write(&batch).map_err(anyhow::Error::from)?;
        writer.finish().map_err(anyhow::Error::from)?;
        let bytes = writer.into_inner();
        if bytes.is_empty() {
            continue;
        }
        let Value::Array(mut part) = serde_json::from_slice(&bytes).map_err(anyhow::Error::from)?
        else {
            continue;
        };
        if let Some(max) = cut_text {
            for row in &mut part {
                if let Some(Value::String(t)) = row.get_mut("text")
                    && t.chars().count() > max
                {
                    *t = t.chars().take(max).collect::<String>() + "…";
                }
            }
        }
        rows.extend(part);
    }
    Ok(rows)
}

fn wide_ints_as_strings(batch: &RecordBatch) -> ApiResult<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(field.data_type(), DataType::UInt64 | DataType::Int64) {
            columns.push(
                arrow_cast_to_utf8(column)
                    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
            );
            fields.push(Field::new(field.name(), DataType::Utf8, true));
        } else {
            columns.push(column.clone());
            fields.push(field.as_ref().clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn arrow_cast_to_utf8(column: &ArrayRef) -> Result<ArrayRef, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, UInt64Type};
    let strings: arrow_array::StringArray = match column.data_type() {
        DataType::UInt64 => column
            .as_primitive::<UInt64Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        DataType::Int64 => column
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        other => return Err(format!("not a 64-bit integer column: {other}")),
    };
    Ok(Arc::new(strings))
}

fn table_json(result: &QueryResult, started: Instant) -> ApiResult<Value> {
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    Ok(json!({
        "columns": columns,
        "rows": rows_json(&result.batches, None)?,
        "row_count": result.rows,
        "truncated": result.cut,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    }))
}

async fn columns(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let lake = open_lake(&state, &name).await?;
    let result = run_query(
        &state,
        &lake,
        &spec(q.version.as_deref())?,
        "SELECT * FROM documents LIMIT 0",
        1,
    )
    .await?;
    let list: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
struct DocumentsQuery {
    version: Option<String>,
    filter: Option<String>,
    /// Comma-separated column names; the listing's defaults when absent.
    columns: Option<String>,
    page: Option<usize>,
    size: Option<usize>,
    /// A seeded random order (the same seed, the same order); scan order without one.
    seed: Option<u64>,
}

/// Rows a seeded random order pages through (it reads every row before the page).
const SEEDED_ROWS: usize = 10_000;

/// Columns a listing shows by default, those the lake has.
const LISTING: &[&str] = &[
    "doc_id",
    "source",
    "lang",
    "url",
    "n_tokens",
    "quality_tier",
    "rule_flags",
    "is_dup",
    "dup_cluster",
    "text",
];

fn identifier(name: &str) -> ApiResult<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(bad(format!("{name:?} is not a column name")));
    }
    Ok(format!("\"{name}\""))
}

async fn documents(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<DocumentsQuery>,
) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let started = Instant::now();
    let lake = open_lake(&state, &name).await?;
    let version = spec(q.version.as_deref())?;
    let filter = q.filter.as_deref().map(str::trim).filter(|f| !f.is_empty());
    let size = q.size.unwrap_or(20).clamp(1, state.limits.max_page_rows);
    let page = q.page.unwrap_or(0);
    let offset = page
        .checked_mul(size)
        .filter(|o| *o <= 1_000_000)
        .ok_or_else(|| bad("page is too far: narrow the filter"))?;
    let available = run_query(
        &state,
        &lake,
        &version,
        "SELECT * FROM documents LIMIT 0",
        1,
    )
    .await?
    .schema;
    let wanted: Vec<String> = match q.columns.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(list) => list.split(',').map(|c| c.trim().to_string()).collect(),
        None => LISTING
            .iter()
            .filter(|c| available.field_with_name(c).is_ok())
            .map(|c| c.to_string())
            .collect(),
    };
    for c in &wanted {
        if available.field_with_name(c).is_err() {
            return Err(bad(format!("the lake has no column {c:?}")));
        }
    }
    let mut columns = wanted.clone();
    if !columns.iter().any(|c| c == "doc_id") {
        columns.insert(0, "doc_id".into());
    }
    let where_clause = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    // The count reads only the filter's columns, never `text` unless the filter names it.
    let count = run_query(
        &state,
        &lake,
        &version,
        &format!("SELECT count(*) AS n FROM documents{where_clause}"),
        1,
    )
    .await?;
    let matched = count
        .batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| {
            use arrow_array::cast::AsArray;
            b.column(0)
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(0)
        })
        .unwrap_or(0);
    let rows = match q.seed {
        Some(seed) => {
            // The seeded order holds every row up to the page's end: pages stop at 10,000 rows.
            if offset + size > SEEDED_ROWS {
                return Err(bad(format!(
                    "a seeded random order pages through its first {SEEDED_ROWS} documents; \
                     narrow the filter or drop the seed to page further"
                )));
            }
            let n = offset + size;
            let _slot = slot(&state.queries).await?;
            let sample = lake
                .sample(&version, filter, n, seed, Some(columns.clone()))
                .await
                .map_err(anyhow::Error::from)?;
            let start = offset.min(sample.rows.num_rows());
            let len = size.min(sample.rows.num_rows() - start);
            rows_json(
                &[sample.rows.slice(start, len)],
                Some(state.limits.listing_text_chars),
            )?
        }
        None => {
            let select = columns
                .iter()
                .map(|c| identifier(c))
                .collect::<ApiResult<Vec<_>>>()?
                .join(", ");
            let result = run_query(
                &state,
                &lake,
                &version,
                &format!(
                    "SELECT {select} FROM documents{where_clause} LIMIT {size} OFFSET {offset}"
                ),
                size as u64,
            )
            .await?;
            rows_json(&result.batches, Some(state.limits.listing_text_chars))?
        }
    };
    Ok(Json(json!({
        "matched": matched,
        "page": page,
        "size": size,
        "columns": columns,
        "rows": rows,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    })))
}

fn doc_id(id: &str) -> ApiResult<u64> {
    id.parse()
        .map_err(|_| bad(format!("{id:?} is not a document id")))
}

async fn document(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let id = doc_id(&id)?;
    let lake = open_lake(&state, &name).await?;
    let version = spec(q.version.as_deref())?;
    let result = run_query(
        &state,
        &lake,
        &version,
        &format!("SELECT * EXCLUDE (tokens) FROM documents WHERE doc_id = {id}"),
        1,
    )
    .await?;
    let Some(row) = rows_json(&result.batches, None)?.into_iter().next() else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no document {id} in this version"),
        ));
    };
    let flags = row
        .get("rule_flags")
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse::<u64>().ok());
    // The thresholds the curation behind this version ran with, where it recorded them.
    let number = lake.resolve(&version).await.map_err(anyhow::Error::from)?;
    let versions = lake.versions().await.map_err(anyhow::Error::from)?;
    let recorded = tokenlake_curate::config::recorded_rules(
        versions.iter().map(|v| (v.version, &v.properties)),
        number,
    );
    let thresholds_from = match &recorded {
        Some((v, _)) => format!("the curation that made version {v}"),
        None => "the default pipeline (this version's curation did not record its own)".into(),
    };
    let settings = recorded.map(|(_, rules)| rules).unwrap_or_default();
    let checks: Vec<Value> = flags
        .map(|flags| {
            tokenlake_curate::rules::CHECKS
                .iter()
                .enumerate()
                .filter(|(bit, _)| flags & (1u64 << bit) != 0)
                .map(|(bit, c)| {
                    let rule = tokenlake_curate::rules::check_rule(c.name, &settings);
                    json!({
                        "bit": bit,
                        "check": c.name,
                        "rule_set": c.set.name(),
                        "rule": rule.map(|r| json!({
                            "signal": r.signal,
                            "value": row.get(r.signal),
                            "fails": r.fails,
                            "threshold": r.threshold,
                        })),
                        "signals": signals_of(&row, c.name),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({
        "document": row,
        "failed_checks": checks,
        "thresholds_from": thresholds_from,
    })))
}

/// The signal columns a check reads, with their values in `row`: the column named after the
/// check when there is one (`repetition_dup_7gram` → `repetition_dup_7gram_chars`), else those
/// sharing its rule-set prefix and subject (`gopher_too_few_words` → `gopher_word_count`).
fn signals_of(row: &Value, check: &str) -> Value {
    if let Value::Object(map) = row {
        let named: serde_json::Map<String, Value> = map
            .iter()
            .filter(|(k, v)| k.starts_with(check) && (v.is_number() || v.is_string()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !named.is_empty() {
            return Value::Object(named);
        }
    }
    let prefix = check.split('_').next().unwrap_or("");
    let subject: Vec<&str> = check
        .split('_')
        .skip(1)
        .filter(|w| !matches!(*w, "too" | "few" | "many" | "short" | "long"))
        .collect();
    let mut out = serde_json::Map::new();
    if let Value::Object(map) = row {
        for (k, v) in map {
            let related = k.starts_with(&format!("{prefix}_"))
                && subject
                    .iter()
                    .any(|w| k.contains(w.trim_end_matches('s')) || k.contains(w));
            if related && (v.is_number() || v.is_string()) && k != "rule_flags" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

async fn cluster(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path((name, keeper)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let keeper = doc_id(&keeper)?;
    let lake = open_lake(&state, &name).await?;
    let version = spec(q.version.as_deref())?;
    let result = run_query(
        &state,
        &lake,
        &version,
        &format!(
            "SELECT doc_id, source, url, is_dup, dup_kind, text FROM documents \
             WHERE dup_cluster = {keeper} ORDER BY is_dup, doc_id LIMIT 51"
        ),
        51,
    )
    .await?;
    let members = rows_json(&result.batches, None)?;
    if members.is_empty() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no duplicate cluster kept by {keeper} in this version"),
        ));
    }
    Ok(Json(json!({
        "keeper": keeper.to_string(),
        "members": members,
        "truncated": result.cut,
    })))
}

#[derive(Deserialize)]
struct SqlBody {
    sql: String,
    version: Option<String>,
}

async fn sql(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<SqlBody>,
) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let started = Instant::now();
    let lake = open_lake(&state, &name).await?;
    let result = run_query(
        &state,
        &lake,
        &spec(body.version.as_deref())?,
        &body.sql,
        state.limits.query_max_rows,
    )
    .await?;
    Ok(Json(table_json(&result, started)?))
}

#[derive(Deserialize)]
struct SqlQuery {
    sql: String,
    version: Option<String>,
}

async fn sql_file(
    state: &State,
    headers: &HeaderMap,
    name: &str,
    q: &SqlQuery,
) -> ApiResult<QueryResult> {
    caller(state, headers)?;
    let lake = open_lake(state, name).await?;
    run_query(
        state,
        &lake,
        &spec(q.version.as_deref())?,
        &q.sql,
        state.limits.query_max_rows,
    )
    .await
}

async fn sql_csv(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<SqlQuery>,
) -> ApiResult<Response> {
    let result = sql_file(&state, &headers, &name, &q).await?;
    let mut out = Vec::new();
    {
        let mut writer = arrow_csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for batch in &result.batches {
            writer.write(batch).map_err(anyhow::Error::from)?;
        }
    }
    Ok(download(out, "text/csv; charset=utf-8", "query.csv"))
}

async fn sql_parquet(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<SqlQuery>,
) -> ApiResult<Response> {
    let result = sql_file(&state, &headers, &name, &q).await?;
    let mut out = Vec::new();
    {
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut out, result.schema.clone(), None)
                .map_err(anyhow::Error::from)?;
        for batch in &result.batches {
            writer.write(batch).map_err(anyhow::Error::from)?;
        }
        writer.close().map_err(anyhow::Error::from)?;
    }
    Ok(download(
        out,
        "application/vnd.apache.parquet",
        "query.parquet",
    ))
}

fn download(body: Vec<u8>, ty: &'static str, file: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, ty.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response()
}

// -- recipe previews ----------------------------------------------------------------------------

#[derive(Deserialize)]
struct RecipeBody {
    recipe: String,
    version: Option<String>,
    samples: Option<u64>,
}

async fn recipe(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<RecipeBody>,
) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let location = location(&state, &name)?.clone();
    let recipe =
        tokenlake_plan::Recipe::parse(&body.recipe, "the recipe").map_err(anyhow::Error::from)?;
    if recipe.sample_len > state.limits.max_sample_len {
        return Err(bad(format!(
            "the recipe's samples are {} tokens; this explorer previews at most {}",
            recipe.sample_len, state.limits.max_sample_len
        )));
    }
    let version = match body.version.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(_) => Some(spec(body.version.as_deref())?),
    };
    let options = tokenlake_plan::PlanOptions {
        lake: Some(location.to_string()),
        version,
        cache_dir: state.cache_dir.clone(),
        storage: location.options().clone(),
        cache_mode: tokenlake_plan::CacheMode::Auto,
        cache_max_bytes: state.limits.cache_max_bytes,
        ..Default::default()
    };
    let _slot = slot(&state.plans).await?;
    // The build stops at the preview's time limit (its cancellation leaves nothing
    // half-written); the explorer's answer is never slower than that.
    let cancel = tokenlake_plan::Cancel::new();
    let progress = tokenlake_plan::Progress::with_cancel(cancel.clone());
    let limit = state.limits.preview_timeout;
    let timer = tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        cancel.cancel();
    });
    let prepared = tokenlake_plan::prepare(&recipe, &options, &progress).await;
    timer.abort();
    let prepared = match prepared {
        Err(tokenlake_plan::PlanError::Cancelled) => {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "planning this recipe takes longer than a preview may ({} s): plan it with \
                     `tokenlake plan`, and the preview reuses what that builds",
                    limit.as_secs_f64()
                ),
            ));
        }
        other => other.map_err(anyhow::Error::from)?,
    };
    let summary = tokenlake_plan::PlanSummary::new(&recipe, &prepared.plan);
    let report = serde_json::to_value(tokenlake_plan::PlanReport::new(&prepared, &summary))
        .map_err(anyhow::Error::from)?;
    let lake = Lake::open(&location).await.map_err(anyhow::Error::from)?;
    let tokenizer_json = lake.tokenizer_json().await.map_err(anyhow::Error::from)?;
    let tokenizer = tokenizers::Tokenizer::from_bytes(&tokenizer_json)
        .map_err(|e| anyhow::anyhow!("reading the lake's tokenizer: {e}"))?;
    let n = body
        .samples
        .unwrap_or(3)
        .min(8)
        .min(prepared.plan.total_samples());
    let samples = tokio::task::spawn_blocking(move || decoded_samples(&prepared, &tokenizer, n))
        .await
        .map_err(|e| anyhow::anyhow!("decoding samples: {e}"))??;
    Ok(Json(json!({
        "plan": report,
        "samples": samples,
    })))
}

/// The plan's first `n` samples, decoded piece by piece, so the page can mark where each
/// document starts and where padding begins.
fn decoded_samples(
    prepared: &tokenlake_plan::PreparedPlan,
    tokenizer: &tokenizers::Tokenizer,
    n: u64,
) -> ApiResult<Vec<Value>> {
    let plan = &prepared.plan;
    let width = plan.token_width().bytes();
    let mut buf = vec![0u8; plan.sample_bytes()];
    let mut spans = Vec::new();
    let mut out = Vec::new();
    for g in 0..n {
        spans.clear();
        let meta = plan
            .read_sample(g, &mut buf, &mut spans)
            .map_err(anyhow::Error::from)?;
        let ids: Vec<u32> = buf
            .chunks_exact(width)
            .map(|b| match width {
                2 => u32::from(u16::from_le_bytes([b[0], b[1]])),
                _ => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            })
            .collect();
        let mut pieces = Vec::new();
        let mut filled = 0usize;
        for s in &spans {
            let (a, z) = (s.position as usize, (s.position + s.len) as usize);
            let z = z.min(ids.len());
            let text = tokenizer
                .decode(&ids[a..z], false)
                .map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
            pieces.push(json!({
                "doc_id": s.doc_id.to_string(),
                "position": s.position,
                "len": s.len,
                "offset": s.offset,
                "text": text,
            }));
            filled = filled.max(z);
        }
        out.push(json!({
            "index": g,
            "stage": plan.stage_name(meta.stage),
            "component": plan.component_name(meta.component),
            "epoch": meta.epoch,
            "tokens": ids.len(),
            "padding": ids.len() - filled,
            "pieces": pieces,
        }));
    }
    Ok(out)
}

// -- evaluation ---------------------------------------------------------------------------------

/// Documents the in-place evaluation samples (`tokenlake eval --min-docs`'s default).
const EVAL_DOCS: usize = 1000;

/// `tokenlake eval` of a version, in place: the report's figures, and its plots as SVG data
/// URIs (the page's policy allows `data:` images and nothing else from outside).
async fn evaluation(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    caller(&state, &headers)?;
    let lake = open_lake(&state, &name).await?;
    let options = tokenlake_curate::eval::EvalOptions {
        version: spec(q.version.as_deref())?,
        // A fixed sample, whatever the lake's size: `tokenlake eval`'s 1 % of 2·10⁹ documents
        // would hold 2·10⁷ texts in this server's memory for one page.
        fraction: 0.0,
        min_docs: EVAL_DOCS,
        seed: 0,
        max_per_mille: 1.0,
        pipeline: tokenlake_curate::Pipeline::default_pipeline(),
    };
    // An evaluation samples and measures documents: it takes a plan's slot (one at a time).
    let _slot = slot(&state.plans).await?;
    let out = tempfile::tempdir().map_err(anyhow::Error::from)?;
    let progress = tokenlake_lake::Progress::default();
    let report = tokenlake_curate::eval::evaluate(&lake, &options, out.path(), &progress)
        .await
        .map_err(anyhow::Error::from)?;
    let mut plots = Vec::new();
    for file in &report.files {
        if let Some(stem) = file.strip_suffix(".svg") {
            let svg = std::fs::read(out.path().join(file)).map_err(anyhow::Error::from)?;
            plots.push(
                json!({"name": stem, "src": format!("data:image/svg+xml;base64,{}", base64(&svg))}),
            );
        }
    }
    Ok(Json(json!({
        "report": serde_json::to_value(&report).map_err(anyhow::Error::from)?,
        "plots": plots,
    })))
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_as_the_standard_says() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("<svg/>", "PHN2Zy8+"),
        ] {
            assert_eq!(base64(raw.as_bytes()), encoded);
        }
    }

    #[test]
    fn column_names_are_quoted_and_anything_else_refused() {
        assert_eq!(identifier("quality_tier").ok().unwrap(), "\"quality_tier\"");
        for bad in ["", "a b", "x\"; DROP", "text)--"] {
            assert!(identifier(bad).is_err(), "{bad}");
        }
    }
}
