//! Read-only SQL over one version of the documents table, on lance's own DataFusion table
//! provider (filters and projections reach the Lance scan). The server's Query call and
//! `tokenlake query` both plan here, so both refuse the same statements the same way.
//!
//! Besides `documents` (the chosen version), a query sees `documents_at(version or tag)`, so
//! two versions can be compared in one statement, `versions()`, the lake's history, and
//! `detokenize(tokens)`, the lake's own tokenizer decoding a token list back to text.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use lance::Dataset;
use lance::datafusion::LanceTableProvider;
use lance::deps::datafusion::catalog::Session;
use lance::deps::datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use lance::deps::datafusion::common::DFSchema;
use lance::deps::datafusion::common::ScalarValue;
use lance::deps::datafusion::dataframe::DataFrame;
use lance::deps::datafusion::datasource::MemTable;
use lance::deps::datafusion::datasource::TableType;
use lance::deps::datafusion::error::{DataFusionError, Result as DfResult};
use lance::deps::datafusion::execution::context::SQLOptions;
use lance::deps::datafusion::execution::memory_pool::FairSpillPool;
use lance::deps::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use lance::deps::datafusion::logical_expr::TableProviderFilterPushDown;
use lance::deps::datafusion::logical_expr::utils::conjunction;
use lance::deps::datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use lance::deps::datafusion::physical_expr::PhysicalExpr;
use lance::deps::datafusion::physical_expr::expressions::Column as PhysicalColumn;
use lance::deps::datafusion::physical_plan::ExecutionPlan;
use lance::deps::datafusion::physical_plan::filter::FilterExec;
use lance::deps::datafusion::physical_plan::projection::ProjectionExec;
use lance::deps::datafusion::prelude::{Expr, SessionConfig, SessionContext};
use tokenlake_schemas::columns;

use crate::{Lake, LakeError, Result, VersionSpec};

/// The table name queries use.
pub const QUERY_TABLE: &str = "documents";

/// What one query may use. The server bounds a reader's query (`limits.query_max_memory_mb`);
/// the command line leaves it to the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryLimits {
    /// Memory the query's operators may hold at once: sorts, joins and aggregations spill to
    /// disk where DataFusion can, and beyond that the query fails as over the limit.
    pub memory_bytes: Option<usize>,
    /// Bytes of Arrow memory [`collect_query`] keeps at most: rows beyond them are cut, as
    /// rows beyond the row bound are (a row can hold a whole document's text).
    pub result_bytes: Option<usize>,
}

/// Plans `sql` over `version` of `lake` (registered as `documents`), refusing anything but a
/// query; bounded by what the machine has.
pub async fn plan_query(lake: &Lake, version: &VersionSpec, sql: &str) -> Result<DataFrame> {
    plan_query_with(lake, version, sql, &QueryLimits::default()).await
}

/// [`plan_query`] within `limits`.
pub async fn plan_query_with(
    lake: &Lake,
    version: &VersionSpec,
    sql: &str,
    limits: &QueryLimits,
) -> Result<DataFrame> {
    if sql.trim().is_empty() {
        return Err(LakeError::Query {
            message: format!("the query is empty; the table is `{QUERY_TABLE}`"),
        });
    }
    let dataset = lake.checkout(version).await?;
    let ctx = match limits.memory_bytes {
        None => SessionContext::new(),
        Some(bytes) => {
            let runtime = RuntimeEnvBuilder::new()
                .with_memory_pool(Arc::new(FairSpillPool::new(bytes)))
                .build_arc()
                .map_err(|e| LakeError::QueryEngine {
                    message: format!("bounding the query's memory: {e}"),
                })?;
            SessionContext::new_with_config_rt(SessionConfig::new(), runtime)
        }
    };
    ctx.register_table(QUERY_TABLE, documents_table(dataset))
        .map_err(|e| LakeError::QueryEngine {
            message: format!("registering the documents table: {e}"),
        })?;
    ctx.register_udtf(
        DocumentsAt::NAME,
        Arc::new(DocumentsAt { lake: lake.clone() }),
    );
    ctx.register_udtf(
        VersionsTable::NAME,
        Arc::new(VersionsTable { lake: lake.clone() }),
    );
    // Reading and parsing a tokenizer costs a request and tens of milliseconds, so only a
    // statement that names the function pays for it.
    if sql.to_ascii_lowercase().contains(Detokenize::NAME) {
        ctx.register_udf(ScalarUDF::from(Detokenize::load(lake).await?));
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    ctx.sql_with_options(sql, options).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("DDL not supported")
            || text.contains("DML not supported")
            || text.contains("Statement not supported")
        {
            LakeError::Query {
                message: format!(
                    "queries are read-only: only SELECT statements run ({})",
                    text.trim_start_matches("Error during planning: ")
                ),
            }
        } else {
            query_error(e)
        }
    })
}

fn documents_table(dataset: Dataset) -> Arc<dyn TableProvider> {
    let inner = LanceTableProvider::new(Arc::new(dataset), false, false);
    let schema = inner.schema();
    let wide = [columns::TEXT, columns::TOKENS, columns::URL]
        .iter()
        .filter_map(|c| schema.index_of(c).ok())
        .collect();
    Arc::new(DocumentsTable { inner, wide })
}

/// Lance's table provider, with one change of plan for the queries researchers run most:
/// aggregates over label columns with a WHERE.
///
/// Lance evaluates a pushed-down filter first and then fetches the other columns of the
/// matching rows ("late materialization"), which pays off when the filter is selective and
/// the other columns are wide (texts, token lists). For a scan of narrow label columns it is a
/// second pass over the data: reading the filter's columns with the rest and filtering in
/// DataFusion is about a third faster (`tokenlake bench query`). So a scan that reads none of
/// the wide columns and has no limit reads its filter columns early; any other scan is
/// Lance's own.
#[derive(Debug)]
struct DocumentsTable {
    inner: LanceTableProvider,
    /// Schema indices of the wide columns.
    wide: Vec<usize>,
}

#[async_trait::async_trait]
impl TableProvider for DocumentsTable {
    fn schema(&self) -> arrow_schema::SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let narrow = projection.filter(|p| !p.iter().any(|i| self.wide.contains(i)));
        let (Some(projection), Some(predicate), None) =
            (narrow, conjunction(filters.iter().cloned()), limit)
        else {
            return self.inner.scan(state, projection, filters, limit).await;
        };
        let schema = self.schema();
        let mut read = projection.clone();
        for column in predicate.column_refs() {
            let index = schema.index_of(&column.name)?;
            if !read.contains(&index) {
                if self.wide.contains(&index) {
                    return self
                        .inner
                        .scan(state, Some(projection), filters, limit)
                        .await;
                }
                read.push(index);
            }
        }
        let plan = self.inner.scan(state, Some(&read), &[], None).await?;
        let read_schema = DFSchema::try_from(plan.schema().as_ref().clone())?;
        let predicate = state.create_physical_expr(predicate, &read_schema)?;
        let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, plan)?);
        // Back to the columns asked for, in their order (the filter's own come last).
        let outputs = projection.iter().enumerate().map(|(at, &index)| {
            let name = schema.field(index).name().clone();
            let column: Arc<dyn PhysicalExpr> = Arc::new(PhysicalColumn::new(&name, at));
            (column, name)
        });
        Ok(Arc::new(ProjectionExec::try_new(outputs, filtered)?))
    }
}

/// Runs a lake lookup from inside planning, which DataFusion does synchronously. The commands
/// and the server run on the multi-threaded runtime, where the worker may block on it.
fn block_on_lake<T>(
    what: &str,
    lookup: impl std::future::Future<Output = Result<T>>,
) -> DfResult<T> {
    let handle = tokio::runtime::Handle::try_current()
        .ok()
        .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        .ok_or_else(|| {
            DataFusionError::Plan(format!(
                "{what} needs tokio's multi-threaded runtime to read the lake while planning"
            ))
        })?;
    tokio::task::block_in_place(|| handle.block_on(lookup))
        .map_err(|e| DataFusionError::Plan(format!("{what}: {e}")))
}

/// `documents_at(7)`, `documents_at('release')`, `documents_at('latest')`: the documents
/// table as of another version, to compare or join against `documents`.
#[derive(Debug)]
struct DocumentsAt {
    lake: Lake,
}

impl DocumentsAt {
    const NAME: &str = "documents_at";
}

impl TableFunctionImpl for DocumentsAt {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let usage = || {
            DataFusionError::Plan(format!(
                "{}() takes one version number or tag, e.g. {0}(3) or {0}('release')",
                Self::NAME
            ))
        };
        let [arg] = args.exprs() else {
            return Err(usage());
        };
        let spec = match arg {
            Expr::Literal(ScalarValue::Int64(Some(n)), _) => u64::try_from(*n)
                .ok()
                .filter(|&n| n > 0)
                .map(VersionSpec::Number)
                .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "{}({n}): version numbers start at 1",
                        Self::NAME
                    ))
                })?,
            Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => s
                .parse::<VersionSpec>()
                .map_err(|e| DataFusionError::Plan(format!("{}({s:?}): {e}", Self::NAME)))?,
            _ => return Err(usage()),
        };
        let what = match &spec {
            VersionSpec::Number(n) => format!("{}({n})", Self::NAME),
            VersionSpec::Tag(t) => format!("{}('{t}')", Self::NAME),
            VersionSpec::Latest => format!("{}('latest')", Self::NAME),
        };
        let dataset = block_on_lake(&what, self.lake.checkout(&spec))?;
        Ok(documents_table(dataset))
    }
}

/// `versions()`: one row per committed version, with its tags and what its commit recorded.
#[derive(Debug)]
struct VersionsTable {
    lake: Lake,
}

impl VersionsTable {
    const NAME: &str = "versions";
}

impl TableFunctionImpl for VersionsTable {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return Err(DataFusionError::Plan(format!(
                "{}() takes no arguments",
                Self::NAME
            )));
        }
        let versions = block_on_lake("versions()", self.lake.versions())?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("version", DataType::UInt64, false),
            Field::new("committed_at", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, false),
            Field::new("tags", DataType::Utf8, false),
            Field::new("properties", DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(
                versions.iter().map(|v| v.version),
            )),
            Arc::new(StringArray::from_iter_values(
                versions.iter().map(|v| v.committed_at.as_str()),
            )),
            Arc::new(UInt64Array::from_iter_values(
                versions.iter().map(|v| v.rows),
            )),
            Arc::new(StringArray::from_iter_values(
                versions.iter().map(|v| v.tags.join(",")),
            )),
            Arc::new(StringArray::from_iter_values(versions.iter().map(|v| {
                v.properties
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }))),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

/// `detokenize(tokens)`: the text a token list decodes to with the lake's own tokenizer
/// (special tokens kept, so what was trained on is what is shown).
#[derive(Debug)]
struct Detokenize {
    tokenizer: Arc<tokenizers::Tokenizer>,
    /// Identifies the tokenizer for DataFusion's function equality.
    sha256: String,
    signature: Signature,
}

impl Detokenize {
    const NAME: &str = "detokenize";

    async fn load(lake: &Lake) -> Result<Detokenize> {
        let sha256 = lake.schema_info()?.tokenizer_sha256;
        let unavailable = |why: String| LakeError::Query {
            message: format!(
                "detokenize() needs the lake's tokenizer ({:.12}), which {why}",
                sha256
            ),
        };
        let json = lake
            .tokenizer_json()
            .await
            .map_err(|e| unavailable(format!("could not be read: {e}")))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(&json)
            .map_err(|e| unavailable(format!("could not be parsed: {e}")))?;
        Ok(Detokenize {
            tokenizer: Arc::new(tokenizer),
            sha256,
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    fn decode(&self, ids: &[u32]) -> DfResult<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", Self::NAME)))
    }
}

impl PartialEq for Detokenize {
    fn eq(&self, other: &Self) -> bool {
        self.sha256 == other.sha256
    }
}

impl Eq for Detokenize {}

impl Hash for Detokenize {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.sha256.hash(state);
    }
}

impl ScalarUDFImpl for Detokenize {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match &arg_types[0] {
            DataType::List(item)
                if matches!(item.data_type(), DataType::UInt16 | DataType::UInt32) =>
            {
                Ok(DataType::Utf8)
            }
            other => Err(DataFusionError::Plan(format!(
                "{}() takes a token list (the `tokens` column), not {other}",
                Self::NAME
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let lists = args.args[0].to_array(args.number_rows)?;
        let lists = lists.as_list::<i32>();
        let mut out = arrow_array::builder::StringBuilder::new();
        let mut ids = Vec::new();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                out.append_null();
                continue;
            }
            let tokens = lists.value(row);
            ids.clear();
            match tokens.data_type() {
                DataType::UInt16 => ids.extend(
                    tokens
                        .as_primitive::<UInt16Type>()
                        .values()
                        .iter()
                        .map(|&t| u32::from(t)),
                ),
                _ => ids.extend_from_slice(tokens.as_primitive::<UInt32Type>().values()),
            }
            out.append_value(self.decode(&ids)?);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// The row bound of a query's result: planned as `max + 1` rows so that one more row than
/// allowed tells the result was cut, then admitted batch by batch.
#[derive(Debug, Clone, Copy)]
pub struct RowBound {
    max: u64,
    seen: u64,
}

impl RowBound {
    pub fn new(max: u64) -> RowBound {
        RowBound { max, seen: 0 }
    }

    /// `frame` limited to one row more than the bound.
    pub fn limit(&self, frame: DataFrame) -> Result<DataFrame> {
        frame
            .limit(0, Some(self.max as usize + 1))
            .map_err(query_error)
    }

    /// The part of `batch` within the bound, and whether rows beyond it were cut (then the
    /// caller stops reading).
    pub fn admit(&mut self, batch: RecordBatch) -> (RecordBatch, bool) {
        let room = self.max - self.seen;
        let cut = batch.num_rows() as u64 > room;
        let batch = if cut {
            batch.slice(0, room as usize)
        } else {
            batch
        };
        self.seen += batch.num_rows() as u64;
        (batch, cut)
    }

    /// Rows admitted so far.
    pub fn rows(&self) -> u64 {
        self.seen
    }
}

/// A query's result as [`collect_query`] gathers it: at most the bound's rows.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: arrow_schema::SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: u64,
    /// Whether the result had more rows than the bound, which were left out.
    pub cut: bool,
}

/// Runs `sql` over `version` of `lake` within `limits`, keeping at most `max_rows` rows:
/// what `tokenlake query` prints and the Python package's `Lake.query` returns.
pub async fn collect_query(
    lake: &Lake,
    version: &VersionSpec,
    sql: &str,
    limits: &QueryLimits,
    max_rows: u64,
) -> Result<QueryResult> {
    use futures::StreamExt;
    let frame = plan_query_with(lake, version, sql, limits).await?;
    let schema: arrow_schema::SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let mut bound = RowBound::new(max_rows);
    let mut stream = bound
        .limit(frame)?
        .execute_stream()
        .await
        .map_err(query_error)?;
    let (mut batches, mut cut, mut rows, mut bytes) = (Vec::new(), false, 0u64, 0usize);
    let byte_bound = limits.result_bytes.unwrap_or(usize::MAX);
    while let Some(batch) = stream.next().await {
        let (mut batch, beyond) = bound.admit(batch.map_err(query_error)?);
        let size = batch.get_array_memory_size();
        if bytes.saturating_add(size) > byte_bound {
            // Keep the share of this batch's rows that fits (rows are about equal in size).
            let room = byte_bound.saturating_sub(bytes) as f64 / size.max(1) as f64;
            batch = batch.slice(0, (batch.num_rows() as f64 * room) as usize);
            rows += batch.num_rows() as u64;
            batches.push(batch);
            cut = true;
            break;
        }
        bytes += size;
        rows += batch.num_rows() as u64;
        batches.push(batch);
        if beyond {
            cut = true;
            break;
        }
    }
    Ok(QueryResult {
        schema,
        batches,
        rows,
        cut,
    })
}

/// Bad SQL, unknown columns and type errors are the caller's; the rest is the engine's.
fn too_large(message: &str) -> LakeError {
    LakeError::QueryTooLarge {
        message: format!(
            "the query needs more memory than one query may have (a server's \
             limits.query_max_memory_mb, --max-memory-mb of `tokenlake query`): {message}"
        ),
    }
}

pub fn query_error(e: DataFusionError) -> LakeError {
    match e.find_root() {
        // A nested-loop join over its memory tries to spill a side it cannot and reports that as
        // an internal error; it is the same limit.
        DataFusionError::Internal(message) if message.contains("no data to spill") => {
            too_large(message)
        }
        DataFusionError::ResourcesExhausted(message) => too_large(message),
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => LakeError::Query {
            message: format!("SQL: {e}"),
        },
        _ => LakeError::QueryEngine {
            message: format!("running the query: {e}"),
        },
    }
}
