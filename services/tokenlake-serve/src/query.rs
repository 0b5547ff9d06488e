//! The Query service: read-only SQL over one version of a lake's documents table, on lance's
//! own DataFusion table provider (filters and projections reach the Lance scan). Results go
//! back as Arrow IPC stream messages, bounded in rows and time.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use futures::{Stream as FuturesStream, StreamExt};
use lance::deps::datafusion::error::DataFusionError;
use tokenlake_lake::{QueryLimits, RowBound, VersionSpec, plan_query_with, query_error};
use tokenlake_schemas::proto::{QueryChunk, QueryRequest, query_server};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use crate::error::{internal, service_status, status};
use crate::state::{ServerState, version_spec};

pub struct QueryService {
    state: Arc<ServerState>,
}

impl QueryService {
    pub fn new(state: Arc<ServerState>) -> Self {
        QueryService { state }
    }
}

type ChunkStream = Pin<Box<dyn FuturesStream<Item = Result<QueryChunk, Status>> + Send>>;

#[tonic::async_trait]
impl query_server::Query for QueryService {
    type SqlStream = ChunkStream;

    async fn sql(&self, request: Request<QueryRequest>) -> Result<Response<ChunkStream>, Status> {
        let req = request.into_inner();
        let limits = &self.state.config.limits;
        let permit = self.state.queries.permit(limits.max_queries)?;
        let max_rows = match req.max_rows {
            0 => limits.query_max_rows,
            n => n.min(limits.query_max_rows),
        };
        let timeout = Duration::from_millis(match req.timeout_ms {
            0 => limits.query_timeout_ms,
            n => u64::from(n).min(limits.query_timeout_ms),
        });
        let lake = self.state.open_lake(&req.lake).await?;
        let spec = version_spec(&req.version, VersionSpec::Latest)?;
        let bounds = QueryLimits {
            memory_bytes: Some((limits.query_max_memory_mb as usize).saturating_mul(1 << 20)),
            ..Default::default()
        };
        let max_bytes = limits.query_max_result_mb.saturating_mul(1 << 20);
        let (tx, rx) = mpsc::channel(2);
        // Planning and running both happen on the queries' own runtime, within one deadline:
        // a query's CPU work never takes the workers that serve streams, and planning a huge
        // statement counts against its time like running it.
        let deadline = tokio::time::Instant::now() + timeout;
        self.state.queries.runtime().spawn(async move {
            let _permit = permit;
            let run = async {
                let frame = plan_query_with(&lake, &spec, &req.sql, &bounds)
                    .await
                    .map_err(service_status)?;
                let bound = RowBound::new(max_rows);
                let frame = bound.limit(frame).map_err(service_status)?;
                send_results(frame, bound, max_bytes, &tx).await
            };
            let error = match tokio::time::timeout_at(deadline, run).await {
                Ok(Ok(())) => return,
                Ok(Err(status)) => status,
                Err(_) => too_long(timeout),
            };
            let _ = tx.send(Err(error)).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn too_long(timeout: Duration) -> Status {
    status(
        Code::DeadlineExceeded,
        format!(
            "the query ran past {} ms (the server's limit or the request's); narrow it with a WHERE or a LIMIT",
            timeout.as_millis()
        ),
    )
}

fn sql_status(e: DataFusionError) -> Status {
    service_status(query_error(e))
}

/// Sends the result as Arrow IPC, cut (and marked `truncated`) at the row bound or once the
/// rows sent hold `max_bytes` of Arrow memory.
async fn send_results(
    frame: lance::deps::datafusion::dataframe::DataFrame,
    mut bound: RowBound,
    max_bytes: u64,
    tx: &mpsc::Sender<Result<QueryChunk, Status>>,
) -> Result<(), Status> {
    let schema: arrow_schema::SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let mut batches = frame.execute_stream().await.map_err(sql_status)?;
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema)
        .map_err(|e| internal(format!("encoding the result: {e}")))?;
    let mut truncated = false;
    let mut bytes = 0u64;
    while let Some(batch) = batches.next().await {
        let (batch, cut) = bound.admit(batch.map_err(sql_status)?);
        truncated = cut;
        let (batch, over) = within_bytes(batch, max_bytes.saturating_sub(bytes));
        bytes += batch.get_array_memory_size() as u64;
        truncated |= over;
        if batch.num_rows() > 0 {
            writer
                .write(&batch)
                .map_err(|e| internal(format!("encoding the result: {e}")))?;
            let ipc = std::mem::take(writer.get_mut()).into();
            if tx
                .send(Ok(QueryChunk {
                    ipc,
                    truncated: false,
                }))
                .await
                .is_err()
            {
                return Ok(()); // the client went away
            }
        }
        if truncated {
            break;
        }
    }
    writer
        .finish()
        .map_err(|e| internal(format!("encoding the result: {e}")))?;
    let ipc = std::mem::take(writer.get_mut()).into();
    let _ = tx.send(Ok(QueryChunk { ipc, truncated })).await;
    Ok(())
}

/// The leading rows of `batch` that fit in `room` bytes of Arrow memory (rows counted at the
/// batch's average size), and whether any were left out.
fn within_bytes(batch: RecordBatch, room: u64) -> (RecordBatch, bool) {
    let size = batch.get_array_memory_size() as u64;
    if size <= room || batch.num_rows() == 0 {
        return (batch, false);
    }
    let per_row = size.div_ceil(batch.num_rows() as u64).max(1);
    let rows = (room / per_row) as usize;
    (batch.slice(0, rows.min(batch.num_rows())), true)
}
