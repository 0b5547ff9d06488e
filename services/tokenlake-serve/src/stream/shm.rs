//! `SharedBatches`, the stream for a client on this host: the ring is made here, the
//! producer writes each batch's tokens and metadata into a free slot and sends only the slot's
//! number, the client's releases give slots back, and announcements pending at once travel in
//! one message.

use tokenlake_ring::{DEFAULT_RING_DIR, RingWriter, SlotMeta, host_identity, same_host};
use tokenlake_schemas::proto::{
    ShmBatches, ShmClientMessage, ShmRing, ShmServerMessage, shm_client_message, shm_server_message,
};
use tokio::sync::mpsc;
use tonic::{Code, Response, Status};

use super::producer::Output;
use super::{ShmStream, StreamService};
use crate::error::{invalid, status};

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
impl StreamService {
    /// `SharedBatches`: checks that the client shares this host, makes the ring, and starts a
    /// producer that writes into its slots.
    // Kept as one function: the shared-memory handshake (host check, ring, announcement, control
    // task, producer) in the order the client sees it.
    pub(super) async fn shared(
        &self,
        mut incoming: tonic::Streaming<ShmClientMessage>,
        caller: crate::auth::Caller,
    ) -> Result<Response<ShmStream>, Status> {
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
        if !same_host(&open.host, &here) {
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
                caller,
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
        // Bounded by the ring: a client never holds more slots than it has, so a release
        // beyond that is a client that releases what it does not hold, and its stream ends.
        let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<u32>(slots as usize);
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
                            if slot >= slots || free_tx.try_send(slot).is_err() {
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
                tx: super::producer::Sink::new(tx, &self.state),
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
            let Ok(ShmServerMessage {
                message: Some(held),
            }) = gathered
            else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokenlake_schemas::proto::ShmBatch;
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
