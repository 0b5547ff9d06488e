//! The Stream and Plan services. A stream's micro-batches are assembled by one producer thread
//! into a channel bounded in batches and bytes, so a slow or stalled client holds at most that
//! much of the server's memory; when the client goes away the channel closes and the producer
//! ends at its next send.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::Stream as FuturesStream;
use tokenlake_plan::{Cursor, MicroBatch, RankSpec, RankStream};
use tokenlake_schemas::proto::{
    self, DocSpan, PlanReply, PlanRequest, SampleInfo, StreamRequest, plan_server, stream_server,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{internal, invalid, plan_status, status};
use crate::state::{ServedPlan, ServerState};

pub struct StreamService {
    state: Arc<ServerState>,
}

impl StreamService {
    pub fn new(state: Arc<ServerState>) -> Self {
        StreamService { state }
    }
}

type BatchStream = Pin<Box<dyn FuturesStream<Item = Result<proto::MicroBatch, Status>> + Send>>;

#[tonic::async_trait]
impl stream_server::Stream for StreamService {
    type BatchesStream = BatchStream;

    async fn batches(
        &self,
        request: Request<StreamRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        let req = request.into_inner();
        let plan = self.state.plans.get(&self.state, req.plan.as_ref()).await?;
        let spec = RankSpec::new(req.rank, req.world, req.micro_batch).map_err(plan_status)?;
        let cursor: Option<Cursor> = if req.cursor.is_empty() {
            None
        } else {
            Some(req.cursor.parse().map_err(plan_status)?)
        };
        let limits = &self.state.config.limits;
        let batch_bytes = u64::from(spec.micro_batch) * plan.prepared.plan.sample_bytes() as u64;
        if batch_bytes > limits.max_batch_bytes {
            return Err(invalid(format!(
                "a micro-batch of {} samples is {:.1} MB; this server sends at most {:.1} MB per \
                 message (limits.max_batch_bytes): use a micro-batch of at most {}",
                spec.micro_batch,
                batch_bytes as f64 / 1e6,
                limits.max_batch_bytes as f64 / 1e6,
                limits.max_batch_bytes / plan.prepared.plan.sample_bytes() as u64
            )));
        }
        // Checked here so that a foreign cursor is refused before the stream starts.
        RankStream::new(&plan.prepared.plan, spec, cursor.as_ref()).map_err(plan_status)?;
        let capacity = (limits.prefetch_bytes / batch_bytes.max(1))
            .clamp(1, limits.prefetch_batches as u64) as usize;
        let (tx, rx) = mpsc::channel(capacity);
        let producer = Producer {
            plan,
            spec,
            cursor,
            max_steps: req.max_steps,
            state: self.state.clone(),
            tx,
        };
        // A thread per stream, not the blocking pool: that pool is bounded, and thousands of
        // open streams must not queue behind each other. Each thread parks while its client
        // is behind, and needs little stack.
        std::thread::Builder::new()
            .name(format!("stream-r{}", spec.rank))
            .stack_size(512 << 10)
            .spawn(move || producer.run())
            .map_err(|e| internal(format!("starting the stream: {e}")))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Producer {
    plan: Arc<ServedPlan>,
    spec: RankSpec,
    cursor: Option<Cursor>,
    max_steps: u64,
    state: Arc<ServerState>,
    tx: mpsc::Sender<Result<proto::MicroBatch, Status>>,
}

/// Counts open streams in the metrics for as long as it lives.
struct ActiveStream;

impl ActiveStream {
    fn start() -> Self {
        metrics::gauge!("tokenlake_streams_active").increment(1.0);
        metrics::counter!("tokenlake_streams_total").increment(1);
        ActiveStream
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        metrics::gauge!("tokenlake_streams_active").decrement(1.0);
    }
}

impl Producer {
    fn run(self) {
        let _active = ActiveStream::start();
        let plan = &self.plan.prepared.plan;
        let mut stream = match RankStream::new(plan, self.spec, self.cursor.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                let _ = self.tx.blocking_send(Err(plan_status(e)));
                return;
            }
        };
        let mut batch = MicroBatch::default();
        let mut sent = 0u64;
        let capacity = self.tx.max_capacity();
        while self.max_steps == 0 || sent < self.max_steps {
            if self.state.shutting_down.load(Ordering::Relaxed) {
                let _ = self.tx.blocking_send(Err(status(
                    Code::Unavailable,
                    format!(
                        "the server is shutting down; resume from cursor {}",
                        stream.cursor()
                    ),
                )));
                return;
            }
            match stream.next_batch(&mut batch) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let _ = self.tx.blocking_send(Err(plan_status(e)));
                    return;
                }
            }
            let message = to_message(&self.plan, &mut batch, stream.cursor().to_string());
            metrics::counter!("tokenlake_batches_total").increment(1);
            metrics::counter!("tokenlake_bytes_total").increment(message.tokens.len() as u64);
            metrics::counter!("tokenlake_tokens_total")
                .increment((message.tokens.len() / plan.token_width().bytes()) as u64);
            metrics::histogram!("tokenlake_prefetch_depth")
                .record((capacity - self.tx.capacity()) as f64);
            if self.tx.blocking_send(Ok(message)).is_err() {
                tracing::debug!(rank = self.spec.rank, "client went away");
                return;
            }
            sent += 1;
        }
    }
}

/// The wire form of a batch; its token buffer moves into the message.
fn to_message(plan: &ServedPlan, batch: &mut MicroBatch, cursor: String) -> proto::MicroBatch {
    let p = &plan.prepared.plan;
    let tokens = std::mem::take(&mut batch.tokens);
    proto::MicroBatch {
        step: batch.step,
        checksum: xxh3_64(&tokens),
        tokens: tokens.into(),
        token_width: p.token_width().bytes() as u32,
        sample_len: p.sample_len() as u32,
        samples: batch
            .samples
            .iter()
            .enumerate()
            .map(|(i, m)| SampleInfo {
                index: m.index,
                stage: p.stage_name(m.stage).to_string(),
                component: p.component_name(m.component).to_string(),
                epoch: m.epoch,
                span_start: batch.span_offsets[i],
                span_end: batch.span_offsets[i + 1],
            })
            .collect(),
        spans: batch
            .spans
            .iter()
            .map(|s| DocSpan {
                doc_id: s.doc_id,
                offset: s.offset,
                len: s.len,
                position: s.position,
            })
            .collect(),
        cursor,
        plan_id: plan.id.clone(),
    }
}

pub struct PlanService {
    state: Arc<ServerState>,
}

impl PlanService {
    pub fn new(state: Arc<ServerState>) -> Self {
        PlanService { state }
    }
}

#[tonic::async_trait]
impl plan_server::Plan for PlanService {
    async fn prepare(&self, request: Request<PlanRequest>) -> Result<Response<PlanReply>, Status> {
        let req = request.into_inner();
        let served = self.state.plans.get(&self.state, req.plan.as_ref()).await?;
        let plan = &served.prepared.plan;
        let summary = tokenlake_plan::PlanSummary::new(&served.recipe, plan);
        Ok(Response::new(PlanReply {
            plan_id: served.id.clone(),
            lake: served.lake.clone(),
            version: served.prepared.version,
            summary_json: serde_json::to_string(&summary)
                .map_err(|e| internal(format!("encoding the plan summary: {e}")))?,
            total_samples: plan.total_samples(),
            sample_len: plan.sample_len() as u32,
            token_width: plan.token_width().bytes() as u32,
        }))
    }
}
