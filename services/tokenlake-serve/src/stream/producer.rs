//! A stream's producer: one thread per stream that assembles its micro-batches and hands them
//! to the client's output, gRPC messages (bounded in batches and bytes) or ring slots.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokenlake_plan::{Cursor, MicroBatch, RankSpec, RankStream};
use tokenlake_ring::{MetaSample, MetaSpan, RingWriter, SlotMeta};
use tokenlake_schemas::proto::{
    self, DocSpan, SampleInfo, ShmBatch, ShmBatches, ShmServerMessage, StreamEnd,
    shm_server_message,
};
use tokio::sync::mpsc;
use tonic::{Code, Status};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{service_status, status};
use crate::state::{ServedPlan, ServerState};

/// A batch that took longer than this to assemble is announced at once.
const SLOW_BATCH: std::time::Duration = std::time::Duration::from_micros(200);
/// How long a client has to map its ring before the stream is dropped.
const MAP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A stream's channel to its client's gRPC response, whose sends wait at most the stall
/// timeout (`limits.stall_timeout_secs`): a client that takes nothing for that long loses its
/// stream (and resumes from its cursor when it reads again) instead of holding a producer
/// thread, its prefetched batches and its place among the open streams for ever.
pub(super) struct Sink<T> {
    tx: mpsc::Sender<Result<T, Status>>,
    stall: std::time::Duration,
    runtime: tokio::runtime::Handle,
}

impl<T> Sink<T> {
    /// `tx` with the stall timeout of `state`; made on the runtime that serves the client.
    pub(super) fn new(tx: mpsc::Sender<Result<T, Status>>, state: &ServerState) -> Self {
        Sink {
            tx,
            stall: std::time::Duration::from_secs(state.config.limits.stall_timeout_secs),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Sends `item`; false when the client has gone away or stalled past the timeout.
    fn send(&self, item: Result<T, Status>) -> bool {
        // Fast path: room in the channel, no timer.
        let item = match self.tx.try_send(item) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(item)) => item,
        };
        // The timer is made inside the runtime's context, which this thread enters only here.
        let sent = self
            .runtime
            .block_on(async { tokio::time::timeout(self.stall, self.tx.send(item)).await });
        match sent {
            Ok(result) => result.is_ok(),
            Err(_) => {
                stalled(self.stall);
                false
            }
        }
    }

    /// Batches waiting in the channel.
    fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Counts and logs a stream closed because its client took nothing for `stall`.
fn stalled(stall: std::time::Duration) {
    tracing::info!(
        seconds = stall.as_secs(),
        "a stream's client took no batch within the stall timeout; closing the stream \
         (limits.stall_timeout_secs)"
    );
    metrics::counter!("tokenlake_streams_stalled_total").increment(1);
}

/// Where a producer's batches go.
pub(super) enum Output {
    Grpc(Sink<proto::MicroBatch>),
    Shm {
        ring: RingWriter,
        /// Slots the client has released (at most the ring's slots are ever in it).
        free: std::sync::mpsc::Receiver<u32>,
        /// Fires when the client has mapped the ring (then its name is removed).
        mapped: Option<std::sync::mpsc::Receiver<()>>,
        /// Slots the producer may write now.
        owned: std::collections::VecDeque<u32>,
        /// Batches written but not yet announced (see [`Output::announce`]).
        unannounced: Vec<ShmBatch>,
        /// How many batches one announcement gathers while they come fast.
        group: usize,
        tx: Sink<ShmServerMessage>,
    },
}

impl Output {
    /// Hands a batch with its tokens to a gRPC client; false when the client has gone away.
    /// (Shared-memory batches are assembled in a slot and announced instead.)
    fn deliver(&mut self, message: proto::MicroBatch) -> bool {
        match self {
            Output::Grpc(tx) => tx.send(Ok(message)),
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
                let Output::Shm { free, tx, .. } = self else {
                    return None;
                };
                match free.recv_timeout(tx.stall) {
                    Ok(slot) => Some(slot),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        stalled(tx.stall);
                        None
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
                }
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
        tx.send(Ok(ShmServerMessage {
            message: Some(message),
        }))
    }

    /// Ends the stream with `error`, after the batches already written.
    fn fail(&mut self, error: Status) {
        if !self.flush() {
            return;
        }
        let _ = match self {
            Output::Grpc(tx) => tx.send(Err(error)),
            Output::Shm { tx, .. } => tx.send(Err(error)),
        };
    }

    /// Tells the client that the stream has sent all it was asked for, after the batches
    /// already written: without this message a client takes the stream's end for an
    /// interruption and resumes from its cursor.
    fn finish(&mut self, end: StreamEnd) {
        if !self.flush() {
            return;
        }
        let _ = match self {
            Output::Grpc(tx) => tx.send(Ok(proto::MicroBatch {
                end: Some(end),
                ..Default::default()
            })),
            Output::Shm { tx, .. } => tx.send(Ok(ShmServerMessage {
                message: Some(shm_server_message::Message::End(end)),
            })),
        };
    }

    /// Batches waiting in the channel, for the prefetch metric.
    fn queued(&self) -> usize {
        match self {
            Output::Grpc(tx) => tx.queued(),
            Output::Shm { tx, .. } => tx.queued(),
        }
    }
}

pub(super) struct Producer {
    pub plan: Arc<ServedPlan>,
    pub spec: RankSpec,
    pub cursor: Option<Cursor>,
    pub max_steps: u64,
    pub state: Arc<ServerState>,
    pub out: Output,
    /// The stream's place among those open, given back when the producer ends.
    pub _ticket: crate::admission::Ticket,
}

/// Batches between two exports of a window's figures (each export takes the window's lock).
const WINDOW_METRICS_EVERY: u64 = 16;

/// The figures of a plan's window as Prometheus metrics, labelled with the plan: every stream
/// of the plan shares the window, so any of them may export its totals.
fn export_window(
    plan: &str,
    window: &tokenlake_plan::Window,
    index: Option<tokenlake_plan::IndexMetrics>,
) {
    if let Some(m) = index {
        // A cold node's plan index, read page by page until it is whole (`plan_index.rs`).
        let label = [("plan", plan.to_string())];
        metrics::counter!("tokenlake_plan_index_page_fetches_total", &label)
            .absolute(m.page_fetches);
        metrics::counter!("tokenlake_plan_index_corrupt_total", &label).absolute(m.corrupt);
        metrics::gauge!("tokenlake_plan_index_present_bytes", &label).set(m.bytes_present as f64);
        metrics::gauge!("tokenlake_plan_index_bytes", &label).set(m.bytes as f64);
    }
    let m = window.metrics();
    let label = [("plan", plan.to_string())];
    for (name, value) in [
        ("tokenlake_window_fetches_total", m.fetches),
        ("tokenlake_window_fetched_bytes_total", m.bytes_fetched),
        ("tokenlake_window_served_bytes_total", m.bytes_served),
        ("tokenlake_window_misses_total", m.misses),
        ("tokenlake_window_retries_total", m.retries),
        ("tokenlake_window_corrupt_total", m.corrupt),
        ("tokenlake_window_hedges_total", m.hedges),
    ] {
        metrics::counter!(name, &label).absolute(value);
    }
    metrics::gauge!("tokenlake_window_stall_seconds", &label).set(m.stall_seconds);
    metrics::gauge!("tokenlake_window_slab_bytes", &label).set(m.slab_bytes as f64);
    metrics::gauge!("tokenlake_window_slab_high_water_bytes", &label).set(m.slab_high_water as f64);
    metrics::gauge!("tokenlake_window_in_flight", &label).set(m.in_flight as f64);
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

impl Producer {
    /// Runs the stream to its end. A producer that panics (a bug, or a fault injected by a
    /// test) ends its stream with ABORTED, which clients retry from their cursor, never with
    /// the end-of-stream message: the panic costs this stream a reconnection, and the server
    /// and its other streams nothing.
    pub(super) fn run(mut self) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.stream()));
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            tracing::error!(rank = self.spec.rank, panic = %what, "a stream's producer failed");
            metrics::counter!("tokenlake_stream_failures_total").increment(1);
            self.out.fail(status(
                Code::Aborted,
                format!("the stream's producer failed ({what}); resume from the last cursor"),
            ));
        }
    }

    fn stream(&mut self) {
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
            if let Some(window) = plan.window()
                && sent.is_multiple_of(WINDOW_METRICS_EVERY)
            {
                export_window(&plan.id().hex(), window, plan.index_metrics());
            }
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
            #[cfg(debug_assertions)]
            injected_panic(sent);
        }
        self.out.finish(StreamEnd {
            batches: sent,
            cursor: stream.cursor().to_string(),
        });
    }
}

/// A fault for tests of debug builds only: with `TOKENLAKE_TEST_PANIC_AT_BATCH=N` every
/// stream's producer panics after its Nth batch, so that clients must resume from their
/// cursors again and again until the plan ends.
#[cfg(debug_assertions)]
fn injected_panic(sent: u64) {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("TOKENLAKE_TEST_PANIC_AT_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *at == Some(sent) {
        panic!("injected by TOKENLAKE_TEST_PANIC_AT_BATCH after {sent} batches");
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
    let spans = batch
        .spans
        .iter()
        .map(|s| MetaSpan::from(&DocSpan::from(s)));
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
        spans: batch.spans.iter().map(DocSpan::from).collect(),
        cursor,
        plan_id: plan.id.clone(),
        end: None,
    }
}
