//! The Stream and Plan services. A stream's micro-batches are assembled by one producer thread
//! into a channel bounded in batches and bytes, so a slow or stalled client holds at most that
//! much of the server's memory; when the client goes away the channel closes and the producer
//! ends at its next send.
//!
//! `SharedBatches` is the same stream for a client on this host: the producer writes each
//! batch's tokens and metadata into a free slot of a shared-memory ring and sends only the
//! slot's number; the client's releases give slots back, and the ring's size bounds what is
//! ahead.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::Stream as FuturesStream;
use tokenlake_plan::{Cursor, MicroBatch, RankSpec, RankStream};
use tokenlake_schemas::proto::{
    self, DocSpan, PlanReply, PlanRequest, SampleInfo, ShmBatch, ShmBatches, ShmClientMessage,
    ShmRing, ShmServerMessage, StreamRequest, plan_server, shm_client_message, shm_server_message,
    stream_server,
};
use tokenlake_ring::{
    DEFAULT_RING_DIR, MetaSample, MetaSpan, RingWriter, SlotMeta, host_identity,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{internal, invalid, service_status, status};
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
}

/// Slots of a ring at most, whatever a client asks: each is one micro-batch of memory.
const MAX_RING_SLOTS: u32 = 64;
/// A ring slot's bytes: the batch's tokens and room for its metadata ([`SlotMeta`]) of up to
/// one span per 48 token bytes and a cursor, in whole cache lines: half as much again as the
/// tokens. A batch whose metadata is larger (its documents average under 24 two-byte or 12
/// four-byte tokens) sends it in its announcement instead.
fn slot_bytes(batch_bytes: usize, micro_batch: u32) -> usize {
    let meta = SlotMeta::len(micro_batch as usize, batch_bytes.div_ceil(48), "") + 256;
    (SlotMeta::offset(batch_bytes) + meta).next_multiple_of(64)
}

/// Batches one shared-memory announcement gathers at most (a quarter of the ring at most, so
/// that the client has batches in hand while the next group is written).
const ANNOUNCE_GROUP: usize = 8;
/// A batch that took longer than this to assemble is announced at once.
const SLOW_BATCH: std::time::Duration = std::time::Duration::from_micros(200);
/// How long a client has to map its ring before the stream is dropped.
const MAP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl StreamService {
    async fn open(&self, req: StreamRequest) -> Result<Opened, Status> {
        let plan = self.state.plans.get(&self.state, req.plan.as_ref()).await?;
        let spec = RankSpec::new(req.rank, req.world, req.micro_batch).map_err(service_status)?;
        let cursor: Option<Cursor> = if req.cursor.is_empty() {
            None
        } else {
            Some(req.cursor.parse().map_err(service_status)?)
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
        let opened = self.open(request.into_inner()).await?;
        let (tx, rx) = mpsc::channel(opened.ahead);
        self.spawn(opened, Output::Grpc(tx))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn shared_batches(
        &self,
        request: Request<tonic::Streaming<ShmClientMessage>>,
    ) -> Result<Response<ShmStream>, Status> {
        let mut incoming = request.into_inner();
        let Some(shm_client_message::Message::Open(open)) =
            incoming.message().await?.and_then(|m| m.message)
        else {
            return Err(invalid("a shared-memory stream starts with `open`"));
        };
        let here = host_identity().ok_or_else(|| {
            status(
                Code::FailedPrecondition,
                "this server offers no shared memory (it needs Linux); use the gRPC transport"
                    .into(),
            )
        })?;
        if open.host != here {
            return Err(status(
                Code::FailedPrecondition,
                "the client runs on another host than the server, so they share no memory; \
                 use the gRPC transport"
                    .into(),
            ));
        }
        let opened = self
            .open(
                open.request
                    .ok_or_else(|| invalid("`open` has no request"))?,
            )
            .await?;
        // The ring is what a stream may have ready ahead of its client plus the slot being
        // written, bounded in bytes as a gRPC stream's buffers are (limits.prefetch_bytes): a
        // client cannot make the server hold more shared memory by asking for more slots. It
        // is not bounded by limits.prefetch_batches: every batch in flight costs a control
        // round trip, and small batches need more of them in flight to hide its latency.
        let slot_bytes = slot_bytes(opened.batch_bytes.max(1) as usize, opened.spec.micro_batch);
        let by_bytes = (self.state.config.limits.prefetch_bytes / slot_bytes as u64)
            .saturating_add(1)
            .min(u64::from(MAX_RING_SLOTS)) as u32;
        let slots = open.slots.clamp(2, MAX_RING_SLOTS).min(by_bytes.max(2));
        let dir = self
            .state
            .config
            .shm_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_RING_DIR.into());
        let _ = std::fs::create_dir_all(&dir);
        let ring = RingWriter::create(&dir, slots, slot_bytes)
            .map_err(|e| status(Code::FailedPrecondition, e.to_string()))?;
        let plan = &opened.plan.prepared.plan;
        let (tx, rx) = mpsc::channel(slots as usize + 1);
        tx.send(Ok(ShmServerMessage {
            message: Some(shm_server_message::Message::Ring(ShmRing {
                path: ring.path().display().to_string(),
                slots,
                slot_bytes: ring.slot_bytes() as u64,
                plan_id: opened.plan.id.clone(),
                token_width: plan.token_width().bytes() as u32,
                sample_len: plan.sample_len() as u32,
                stages: plan.stage_names().map(str::to_string).collect(),
                components: plan.component_names().map(str::to_string).collect(),
            })),
        }))
        .await
        .map_err(|_| status(Code::Cancelled, "the client went away".into()))?;
        // The client's control messages: first `mapped`, then releases, until it goes away
        // (which drops `free_tx` and so ends the producer at its next wait).
        let (mapped_tx, mapped_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<u32>();
        tokio::spawn(async move {
            let mut mapped = Some(mapped_tx);
            while let Ok(Some(message)) = incoming.message().await {
                match message.message {
                    Some(shm_client_message::Message::Mapped(_)) => {
                        if let Some(tx) = mapped.take() {
                            let _ = tx.send(());
                        }
                    }
                    Some(shm_client_message::Message::Release(r)) => {
                        for slot in std::iter::once(r.slot).chain(r.more) {
                            if slot >= slots || free_tx.send(slot).is_err() {
                                return;
                            }
                        }
                    }
                    _ => return,
                }
            }
        });
        self.spawn(
            opened,
            Output::Shm {
                ring,
                free: free_rx,
                mapped: Some(mapped_rx),
                owned: (0..slots).collect(),
                unannounced: Vec::new(),
                group: (slots as usize / 4).clamp(1, ANNOUNCE_GROUP),
                tx,
            },
        )?;
        Ok(Response::new(Box::pin(coalesced(rx))))
    }
}

/// The shared-memory control stream: every batch the producer has announced since the last
/// message goes out in one `ShmBatches` message, so a client that keeps up costs one message
/// per wake-up instead of one per batch. Order is kept, and an error ends the stream after the
/// batches before it.
fn coalesced(
    rx: mpsc::Receiver<Result<ShmServerMessage, Status>>,
) -> impl tokio_stream::Stream<Item = Result<ShmServerMessage, Status>> {
    tokenlake_ring::coalesce(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        |gathered: &mut Result<ShmServerMessage, Status>, item| {
            use shm_server_message::Message;
            let Ok(ShmServerMessage { message: Some(held) }) = gathered else {
                return Some(item);
            };
            let Ok(ShmServerMessage {
                message: Some(Message::Batch(next)),
            }) = item
            else {
                return Some(item);
            };
            match held {
                Message::Batch(first) => {
                    let first = std::mem::take(first);
                    *held = Message::Batches(ShmBatches {
                        batches: vec![first, next],
                    });
                }
                Message::Batches(b) => b.batches.push(next),
                _ => {
                    return Some(Ok(ShmServerMessage {
                        message: Some(Message::Batch(next)),
                    }));
                }
            }
            None
        },
    )
}

/// Where a producer's batches go.
enum Output {
    Grpc(mpsc::Sender<Result<proto::MicroBatch, Status>>),
    Shm {
        ring: RingWriter,
        /// Slots the client has released.
        free: std::sync::mpsc::Receiver<u32>,
        /// Fires when the client has mapped the ring (then its name is removed).
        mapped: Option<std::sync::mpsc::Receiver<()>>,
        /// Slots the producer may write now.
        owned: std::collections::VecDeque<u32>,
        /// Batches written but not yet announced (see [`Output::announce`]).
        unannounced: Vec<ShmBatch>,
        /// How many batches one announcement gathers while they come fast.
        group: usize,
        tx: mpsc::Sender<Result<ShmServerMessage, Status>>,
    },
}

impl Output {
    /// Hands a batch with its tokens to a gRPC client; false when the client has gone away.
    /// (Shared-memory batches are assembled in a slot and announced instead.)
    fn deliver(&mut self, message: proto::MicroBatch) -> bool {
        match self {
            Output::Grpc(tx) => tx.blocking_send(Ok(message)).is_ok(),
            Output::Shm { .. } => unreachable!("ring batches are announced"),
        }
    }

    /// A slot the producer may write (shared memory only): waits for the client to map the
    /// ring (then removes its name) and for a released slot; `None` when the client is gone.
    fn acquire_slot(&mut self) -> Option<u32> {
        let Output::Shm {
            ring,
            free,
            mapped,
            owned,
            ..
        } = self
        else {
            return None;
        };
        if let Some(rx) = mapped.take() {
            rx.recv_timeout(MAP_TIMEOUT).ok()?;
            ring.unlink();
        }
        if let Some(slot) = owned.pop_front() {
            return Some(slot);
        }
        match free.try_recv() {
            Ok(slot) => Some(slot),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                // Every slot is written or held: what is written goes to the client before
                // waiting for its releases.
                if !self.flush() {
                    return None;
                }
                let Output::Shm { free, .. } = self else {
                    return None;
                };
                free.recv().ok()
            }
        }
    }

    /// Tells the client that `slot` holds the batch's `len` token bytes. While batches come
    /// fast, announcements are gathered into groups: each control message costs both sides a
    /// wake-up and a trip through the socket, which at tens of thousands of batches a second
    /// is more than writing the batches. A batch that was `slow` to assemble (a cold cache)
    /// goes out at once, with any before it, so gathering never holds a client back by more
    /// than a few fast batches.
    fn announce(&mut self, announced: ShmBatch, slow: bool) -> bool {
        let Output::Shm {
            unannounced, group, ..
        } = self
        else {
            return false;
        };
        unannounced.push(announced);
        if slow || unannounced.len() >= *group {
            return self.flush();
        }
        true
    }

    /// Sends the batches written but not yet announced; false when the client is gone.
    fn flush(&mut self) -> bool {
        let Output::Shm {
            unannounced, tx, ..
        } = self
        else {
            return true;
        };
        let message = match unannounced.len() {
            0 => return true,
            1 => shm_server_message::Message::Batch(unannounced.pop().expect("one")),
            _ => shm_server_message::Message::Batches(ShmBatches {
                batches: std::mem::take(unannounced),
            }),
        };
        tx.blocking_send(Ok(ShmServerMessage {
            message: Some(message),
        }))
        .is_ok()
    }

    /// Ends the stream with `error`, after the batches already written.
    fn fail(&mut self, error: Status) {
        if !self.flush() {
            return;
        }
        let _ = match self {
            Output::Grpc(tx) => tx.blocking_send(Err(error)).is_ok(),
            Output::Shm { tx, .. } => tx.blocking_send(Err(error)).is_ok(),
        };
    }

    /// Batches waiting in the channel, for the prefetch metric.
    fn queued(&self) -> usize {
        match self {
            Output::Grpc(tx) => tx.max_capacity() - tx.capacity(),
            Output::Shm { tx, .. } => tx.max_capacity() - tx.capacity(),
        }
    }
}

struct Producer {
    plan: Arc<ServedPlan>,
    spec: RankSpec,
    cursor: Option<Cursor>,
    max_steps: u64,
    state: Arc<ServerState>,
    out: Output,
}

/// A stream's metrics, looked up once: each lookup hashes the name into the recorder's
/// registry, which at tens of thousands of batches a second is worth saving.
struct Counted {
    batches: metrics::Counter,
    bytes: metrics::Counter,
    tokens: metrics::Counter,
    prefetch_depth: metrics::Histogram,
}

impl Counted {
    fn new() -> Self {
        Counted {
            batches: metrics::counter!("tokenlake_batches_total"),
            bytes: metrics::counter!("tokenlake_bytes_total"),
            tokens: metrics::counter!("tokenlake_tokens_total"),
            prefetch_depth: metrics::histogram!("tokenlake_prefetch_depth"),
        }
    }
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
    fn run(mut self) {
        let _active = ActiveStream::start();
        let plan = self.plan.clone();
        let plan = &plan.prepared.plan;
        let mut stream = match RankStream::new(plan, self.spec, self.cursor.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                self.out.fail(service_status(e));
                return;
            }
        };
        let mut batch = MicroBatch::default();
        let counted = Counted::new();
        let mut sent = 0u64;
        while self.max_steps == 0 || sent < self.max_steps {
            if self.state.shutting_down.load(Ordering::Relaxed) {
                self.out.fail(status(
                    Code::Unavailable,
                    format!(
                        "the server is shutting down; resume from cursor {}",
                        stream.cursor()
                    ),
                ));
                return;
            }
            // Through shared memory the batch is assembled straight into a free slot.
            let slot = match self.out {
                Output::Shm { .. } => match self.out.acquire_slot() {
                    Some(slot) => Some(slot),
                    None => {
                        tracing::debug!(rank = self.spec.rank, "client went away");
                        return;
                    }
                },
                Output::Grpc(_) => None,
            };
            let started = std::time::Instant::now();
            let bytes = stream.batch_bytes();
            let next = match (slot, &mut self.out) {
                (Some(slot), Output::Shm { ring, .. }) => {
                    stream.next_batch_into(&mut batch, &mut ring.slot_mut(slot)[..bytes])
                }
                _ => stream.next_batch(&mut batch),
            };
            match next {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.out.fail(service_status(e));
                    return;
                }
            }
            let cursor = stream.cursor().to_string();
            // In a slot the metadata follows the tokens, where it fits.
            let meta_len = match (slot, &mut self.out) {
                (Some(slot), Output::Shm { ring, .. }) => slot_meta(
                    &batch,
                    &cursor,
                    &mut ring.slot_mut(slot)[SlotMeta::offset(bytes)..],
                ),
                _ => None,
            };
            let message = match meta_len {
                Some(_) => None,
                None => Some(to_message(&self.plan, &mut batch, cursor, slot.is_none())),
            };
            counted.batches.increment(1);
            counted.bytes.increment(bytes as u64);
            counted
                .tokens
                .increment((bytes / plan.token_width().bytes()) as u64);
            counted.prefetch_depth.record(self.out.queued() as f64);
            let delivered = match slot {
                Some(slot) => {
                    let slow = started.elapsed() > SLOW_BATCH;
                    let announced = ShmBatch {
                        slot,
                        batch: message,
                        tokens_len: bytes as u64,
                        meta_len: meta_len.unwrap_or(0) as u64,
                    };
                    self.out.announce(announced, slow)
                }
                None => self
                    .out
                    .deliver(message.expect("a gRPC batch has its message")),
            };
            if !delivered {
                tracing::debug!(rank = self.spec.rank, "client went away");
                return;
            }
            sent += 1;
        }
        self.out.flush();
    }
}

/// Writes `batch`'s metadata into `out` (its slot after the tokens); its length, or `None`
/// when it does not fit.
fn slot_meta(batch: &MicroBatch, cursor: &str, out: &mut [u8]) -> Option<usize> {
    let samples = batch.samples.iter().enumerate().map(|(i, m)| MetaSample {
        index: m.index,
        stage: m.stage.into(),
        component: m.component.into(),
        epoch: m.epoch,
        span_start: batch.span_offsets[i],
        span_end: batch.span_offsets[i + 1],
    });
    let spans = batch.spans.iter().map(|s| MetaSpan {
        doc_id: s.doc_id,
        offset: s.offset,
        len: s.len,
        position: s.position,
    });
    SlotMeta::write(out, batch.step, samples, spans, cursor)
}

/// The wire form of a batch. With `in_message` its token buffer moves into the message, with
/// its checksum; otherwise the tokens are in a ring slot and the message carries only
/// metadata (checksum 0: the slot's bytes never cross a network, and the control protocol
/// keeps the two sides from touching a slot at once).
fn to_message(
    plan: &ServedPlan,
    batch: &mut MicroBatch,
    cursor: String,
    in_message: bool,
) -> proto::MicroBatch {
    let p = &plan.prepared.plan;
    let checksum = if in_message {
        xxh3_64(&batch.tokens)
    } else {
        0
    };
    let tokens = if in_message {
        std::mem::take(&mut batch.tokens).into()
    } else {
        Default::default()
    };
    proto::MicroBatch {
        step: batch.step,
        checksum,
        tokens,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn batch(slot: u32) -> Result<ShmServerMessage, Status> {
        Ok(ShmServerMessage {
            message: Some(shm_server_message::Message::Batch(ShmBatch {
                slot,
                batch: None,
                tokens_len: 0,
                meta_len: 0,
            })),
        })
    }

    fn slots(message: &ShmServerMessage) -> Vec<u32> {
        match &message.message {
            Some(shm_server_message::Message::Batch(b)) => vec![b.slot],
            Some(shm_server_message::Message::Batches(all)) => {
                all.batches.iter().map(|b| b.slot).collect()
            }
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn pending_announcements_go_out_together_in_order_and_an_error_after_them() {
        let (tx, rx) = mpsc::channel(16);
        let ring = ShmServerMessage {
            message: Some(shm_server_message::Message::Ring(ShmRing {
                path: "r".into(),
                slots: 4,
                slot_bytes: 8,
                ..ShmRing::default()
            })),
        };
        tx.send(Ok(ring.clone())).await.unwrap();
        for slot in [0, 1, 2] {
            tx.send(batch(slot)).await.unwrap();
        }
        tx.send(Err(Status::unavailable("bye"))).await.unwrap();
        drop(tx);
        let out: Vec<_> = coalesced(rx).collect().await;
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            out[0].as_ref().unwrap(),
            &ring,
            "the ring is announced alone"
        );
        assert_eq!(slots(out[1].as_ref().unwrap()), vec![0, 1, 2]);
        assert_eq!(out[2].as_ref().unwrap_err().code(), Code::Unavailable);

        // One batch at a time is sent as it is.
        let (tx, rx) = mpsc::channel(16);
        tx.send(batch(3)).await.unwrap();
        drop(tx);
        let out: Vec<_> = coalesced(rx).collect().await;
        assert!(matches!(
            out[0].as_ref().unwrap().message,
            Some(shm_server_message::Message::Batch(_))
        ));
    }
}
