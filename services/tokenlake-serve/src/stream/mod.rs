//! The Stream and Plan services. A request is checked here and its producer started
//! (`producer.rs`); the producer sends into gRPC messages or, for `SharedBatches`, into the
//! slots of a shared-memory ring (`shm.rs`). A stream's micro-batches are assembled by one producer thread
//! into a channel bounded in batches and bytes, so a slow or stalled client holds at most that
//! much of the server's memory; when the client goes away the channel closes and the producer
//! ends at its next send.
//!
//! `SharedBatches` is the same stream for a client on this host: the producer writes each
//! batch's tokens and metadata into a free slot of a shared-memory ring and sends only the
//! slot's number; the client's releases give slots back, and the ring's size bounds what is
//! ahead.

mod producer;
mod shm;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream as FuturesStream;
use tokenlake_plan::{Cursor, RankSpec, RankStream};
use tokenlake_schemas::proto::{
    self, PlanReply, PlanRequest, ShmClientMessage, ShmServerMessage, StreamRequest, plan_server,
    stream_server,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use crate::admission::Ticket;
use crate::auth::Caller;
use crate::error::{internal, service_status, status};
use crate::state::{ServedPlan, ServerState};
use producer::{Output, Producer, Sink};

pub struct StreamService {
    state: Arc<ServerState>,
}

impl StreamService {
    pub fn new(state: Arc<ServerState>) -> Self {
        StreamService { state }
    }
}

type BatchStream = Pin<Box<dyn FuturesStream<Item = Result<proto::MicroBatch, Status>> + Send>>;
type ShmStream = Pin<Box<dyn FuturesStream<Item = Result<ShmServerMessage, Status>> + Send>>;

/// A checked stream request: what a producer needs.
struct Opened {
    plan: Arc<ServedPlan>,
    spec: RankSpec,
    cursor: Option<Cursor>,
    max_steps: u64,
    batch_bytes: u64,
    /// Batches a stream may have ready ahead of its client.
    ahead: usize,
    /// The stream's place among those open, held until its producer ends.
    ticket: Ticket,
}

/// What one sample's metadata may cost beyond its tokens, in bytes, at most: its record
/// (index, epoch, span range, and its stage's and component's names) and one document span per
/// token (a sample of one-token documents). A batch's bound counts it, so a micro-batch of
/// tiny samples cannot cost gigabytes of metadata.
fn sample_meta_bytes(sample_len: u64, longest_name: usize) -> u64 {
    const RECORD: u64 = 48;
    const SPAN: u64 = 32;
    RECORD + 2 * longest_name as u64 + SPAN * sample_len
}

impl StreamService {
    async fn open(&self, req: StreamRequest, caller: Caller) -> Result<Opened, Status> {
        let limits = &self.state.config.limits;
        // Before anything is prepared: a caller at its bound costs the server no work.
        let mut ticket =
            self.state
                .streams
                .admit(caller, limits.max_streams, limits.max_streams_per_token)?;
        let plan = self.state.plans.get(&self.state, req.plan.as_ref()).await?;
        ticket.read_plan(&plan.id, limits.max_plans_per_token)?;
        let spec = RankSpec::new(req.rank, req.world, req.micro_batch).map_err(service_status)?;
        let cursor: Option<Cursor> = if req.cursor.is_empty() {
            None
        } else {
            Some(req.cursor.parse().map_err(service_status)?)
        };
        let p = &plan.prepared.plan;
        let longest_name = p
            .stage_names()
            .chain(p.component_names())
            .map(str::len)
            .max()
            .unwrap_or(0);
        let sample_bytes =
            p.sample_bytes() as u64 + sample_meta_bytes(p.sample_len(), longest_name);
        let batch_bytes = u64::from(spec.micro_batch) * p.sample_bytes() as u64;
        let bound = u64::from(spec.micro_batch) * sample_bytes;
        if bound > limits.max_batch_bytes {
            return Err(status(
                Code::ResourceExhausted,
                format!(
                    "a micro-batch of {} samples may take {:.1} MB with its metadata (up to one \
                     document span per token); this server sends at most {:.1} MB per batch \
                     (limits.max_batch_bytes): use a micro-batch of at most {}",
                    spec.micro_batch,
                    bound as f64 / 1e6,
                    limits.max_batch_bytes as f64 / 1e6,
                    limits.max_batch_bytes / sample_bytes
                ),
            ));
        }
        // Checked here so that a foreign cursor is refused before the stream starts.
        RankStream::new(&plan.prepared.plan, spec, cursor.as_ref()).map_err(service_status)?;
        let ahead = (limits.prefetch_bytes / batch_bytes.max(1))
            .clamp(1, limits.prefetch_batches as u64) as usize;
        Ok(Opened {
            plan,
            spec,
            cursor,
            max_steps: req.max_steps,
            batch_bytes,
            ahead,
            ticket,
        })
    }

    /// A thread per stream, not the blocking pool: that pool is bounded, and thousands of
    /// open streams must not queue behind each other. Each thread parks while its client is
    /// behind, and needs little stack.
    fn spawn(&self, opened: Opened, out: Output) -> Result<(), Status> {
        let rank = opened.spec.rank;
        let producer = Producer {
            plan: opened.plan,
            spec: opened.spec,
            cursor: opened.cursor,
            max_steps: opened.max_steps,
            state: self.state.clone(),
            out,
            _ticket: opened.ticket,
        };
        std::thread::Builder::new()
            .name(format!("stream-r{rank}"))
            .stack_size(512 << 10)
            .spawn(move || producer.run())
            .map(|_| ())
            .map_err(|e| internal(format!("starting the stream: {e}")))
    }
}

#[tonic::async_trait]
impl stream_server::Stream for StreamService {
    type BatchesStream = BatchStream;
    type SharedBatchesStream = ShmStream;

    async fn batches(
        &self,
        request: Request<StreamRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        let caller = Caller::of(&request);
        let opened = self.open(request.into_inner(), caller).await?;
        let (tx, rx) = mpsc::channel(opened.ahead);
        self.spawn(opened, Output::Grpc(Sink::new(tx, &self.state)))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn shared_batches(
        &self,
        request: Request<tonic::Streaming<ShmClientMessage>>,
    ) -> Result<Response<ShmStream>, Status> {
        let caller = Caller::of(&request);
        self.shared(request.into_inner(), caller).await
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
