//! The shared-memory transport's client side: opening a ring session, reading each announced
//! batch out of its slot, and giving slots back (gathered, as the server gathers its
//! announcements).

use tokenlake_schemas::proto::{self, StreamRequest};
use tonic::{Code, Status};

use crate::{Bytes, Client};

/// Slots a client asks for: enough for the server to run ahead while the trainer works, and
/// to keep batches flowing while releases travel back (the server may grant fewer).
pub(crate) const RING_SLOTS: u32 = 32;

/// An open shared-memory stream: the control channel both ways and the mapped ring.
pub(crate) struct ShmSession {
    control: tokio::sync::mpsc::UnboundedSender<proto::ShmClientMessage>,
    incoming: tonic::Streaming<proto::ShmServerMessage>,
    ring: std::sync::Arc<tokenlake_ring::RingReader>,
    /// Batches the server announced together, not yet handed out.
    pending: std::collections::VecDeque<proto::ShmBatch>,
    /// What the ring's announcement said every batch shares (its `path` aside).
    shared: proto::ShmRing,
    releases: std::sync::Arc<std::sync::Mutex<Releases>>,
    /// Releases are sent once this many have gathered (or when the client waits).
    release_at: usize,
}

/// Slots whose batches were dropped and not yet given back. Releases are gathered as the
/// server gathers its announcements, since each control message wakes the server's runtime
/// (which on a busy host takes a core from the producer): they go out when a few have
/// gathered, when the client is about to wait for the server, and at once while it waits
/// (the server may be waiting for exactly that slot).
#[derive(Default)]
pub(crate) struct Releases {
    slots: Vec<u32>,
    /// The client is waiting for the server's next message.
    waiting: bool,
}

impl Releases {
    /// Sends what has gathered, in one message.
    pub(crate) fn send(
        &mut self,
        control: &tokio::sync::mpsc::UnboundedSender<proto::ShmClientMessage>,
    ) {
        let Some((&slot, more)) = self.slots.split_first() else {
            return;
        };
        // A closed stream needs no release: its ring is gone with it.
        let _ = control.send(self::control(proto::shm_client_message::Message::Release(
            proto::ShmRelease {
                slot,
                more: more.to_vec(),
            },
        )));
        self.slots.clear();
    }
}

/// The client's control messages as they go out: releases pending at once travel in one
/// message (the server coalesces its announcements the same way).
pub(crate) fn coalesced_releases(
    rx: tokio::sync::mpsc::UnboundedReceiver<proto::ShmClientMessage>,
) -> impl tokio_stream::Stream<Item = proto::ShmClientMessage> {
    use proto::shm_client_message::Message;
    tokenlake_ring::coalesce(
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        |gathered: &mut proto::ShmClientMessage, item| match (&mut gathered.message, item.message) {
            (Some(Message::Release(release)), Some(Message::Release(r))) => {
                release.more.push(r.slot);
                release.more.extend(r.more);
                None
            }
            (_, other) => Some(proto::ShmClientMessage { message: other }),
        },
    )
}

/// A batch's tokens in their ring slot, handed out without a copy: the slot goes back to the
/// server when the last clone of the batch's `tokens` is dropped. A trainer that keeps as many
/// batches alive as the ring has slots (32, or fewer where 32 batches exceed the server's
/// `limits.prefetch_bytes`) stops the stream until it lets one go.
pub(crate) struct SlotTokens {
    ring: std::sync::Arc<tokenlake_ring::RingReader>,
    slot: u32,
    len: usize,
    control: tokio::sync::mpsc::UnboundedSender<proto::ShmClientMessage>,
    releases: std::sync::Arc<std::sync::Mutex<Releases>>,
}

impl AsRef<[u8]> for SlotTokens {
    fn as_ref(&self) -> &[u8] {
        self.ring
            .slot(self.slot, self.len)
            .expect("checked when the batch arrived")
    }
}

impl Drop for SlotTokens {
    fn drop(&mut self) {
        let mut releases = self.releases.lock().unwrap_or_else(|e| e.into_inner());
        releases.slots.push(self.slot);
        if releases.waiting {
            releases.send(&self.control);
        }
    }
}

pub(crate) fn control(message: proto::shm_client_message::Message) -> proto::ShmClientMessage {
    proto::ShmClientMessage {
        message: Some(message),
    }
}

/// Refusals after which gRPC payloads will work: another host, no shared memory on either
/// side, or a server that predates the transport.
pub(crate) fn shm_unavailable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::FailedPrecondition | Code::Unimplemented
    )
}

impl ShmSession {
    pub(crate) async fn open(
        client: &Client,
        request: StreamRequest,
    ) -> Result<ShmSession, Status> {
        use proto::shm_client_message::Message;
        let host = tokenlake_ring::host_identity().ok_or_else(|| {
            Status::failed_precondition("this client has no shared memory (it needs Linux)")
        })?;
        let (control_tx, control_rx) = tokio::sync::mpsc::unbounded_channel();
        control_tx
            .send(control(Message::Open(proto::ShmOpen {
                request: Some(request),
                slots: RING_SLOTS,
                host,
            })))
            .expect("the receiver is alive");
        let mut incoming = client
            .stream_client()
            .shared_batches(coalesced_releases(control_rx))
            .await?
            .into_inner();
        let ring = match incoming.message().await?.and_then(|m| m.message) {
            Some(proto::shm_server_message::Message::Ring(ring)) => ring,
            _ => return Err(Status::internal("the server did not announce its ring")),
        };
        let reader = tokenlake_ring::RingReader::open(
            std::path::Path::new(&ring.path),
            ring.slots,
            ring.slot_bytes as usize,
        )
        // A ring this process cannot open (another mount namespace, permissions) is as good
        // as none: gRPC payloads still work.
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
        control_tx
            .send(control(Message::Mapped(proto::ShmMapped {})))
            .map_err(|_| Status::unavailable("the stream closed"))?;
        Ok(ShmSession {
            control: control_tx,
            incoming,
            ring: std::sync::Arc::new(reader),
            pending: std::collections::VecDeque::new(),
            release_at: (ring.slots as usize / 4).max(1),
            shared: ring,
            releases: Default::default(),
        })
    }

    /// The metadata of `shm` from its slot, after the tokens.
    pub(crate) fn slot_meta(&self, shm: &proto::ShmBatch) -> Result<proto::MicroBatch, Status> {
        use tokenlake_ring::SlotMeta;
        let at = SlotMeta::offset(shm.tokens_len as usize);
        let bytes = self
            .ring
            .slot(shm.slot, at + shm.meta_len as usize)
            .filter(|_| shm.meta_len > 0)
            .ok_or_else(|| Status::internal("a shared-memory batch without its metadata"))?;
        let bad = |what: String| Status::data_loss(format!("slot {}'s metadata: {what}", shm.slot));
        let (step, samples, spans, cursor) = SlotMeta::read(&bytes[at..]).map_err(bad)?;
        let name = |names: &[String], i: u32, what: &str| {
            names
                .get(i as usize)
                .cloned()
                .ok_or_else(|| bad(format!("{what} {i} is not in the ring's {}", names.len())))
        };
        let shared = &self.shared;
        Ok(proto::MicroBatch {
            step,
            tokens: Bytes::new(),
            token_width: shared.token_width,
            sample_len: shared.sample_len,
            samples: samples
                .into_iter()
                .map(|s| {
                    Ok(proto::SampleInfo {
                        index: s.index,
                        stage: name(&shared.stages, s.stage, "stage")?,
                        component: name(&shared.components, s.component, "component")?,
                        epoch: s.epoch,
                        span_start: s.span_start,
                        span_end: s.span_end,
                    })
                })
                .collect::<Result<_, Status>>()?,
            spans: spans
                .into_iter()
                .map(|s| proto::DocSpan::from(&s))
                .collect(),
            checksum: 0,
            cursor,
            plan_id: shared.plan_id.clone(),
            end: None,
        })
    }

    /// The next batch, its tokens still in their slot (see [`SlotTokens`]); the server's end
    /// of the stream as a `MicroBatch` with only `end` set; `None` when the stream stopped
    /// without it.
    pub(crate) async fn next(&mut self) -> Result<Option<proto::MicroBatch>, Status> {
        use proto::shm_server_message::Message;
        {
            let mut releases = self.releases.lock().unwrap_or_else(|e| e.into_inner());
            releases.waiting = self.pending.is_empty();
            if releases.waiting || releases.slots.len() >= self.release_at {
                releases.send(&self.control);
            }
        }
        if self.pending.is_empty() {
            let message = self.incoming.message().await;
            self.releases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .waiting = false;
            let Some(message) = message? else {
                return Ok(None);
            };
            match message.message {
                Some(Message::Batch(shm)) => self.pending.push_back(shm),
                Some(Message::Batches(all)) => self.pending.extend(all.batches),
                // The end, in the form a gRPC stream gives it.
                Some(Message::End(end)) => {
                    return Ok(Some(proto::MicroBatch {
                        end: Some(end),
                        ..Default::default()
                    }));
                }
                _ => {
                    return Err(Status::internal(
                        "expected a batch on the shared-memory stream",
                    ));
                }
            }
        }
        let Some(shm) = self.pending.pop_front() else {
            return Err(Status::internal("an empty batch announcement"));
        };
        let len = shm.tokens_len as usize;
        if self.ring.slot(shm.slot, len).is_none() {
            return Err(Status::data_loss("a batch names a slot outside the ring"));
        }
        let mut batch = match shm.batch {
            Some(batch) => batch,
            None => self.slot_meta(&shm)?,
        };
        batch.tokens = Bytes::from_owner(SlotTokens {
            ring: self.ring.clone(),
            slot: shm.slot,
            len,
            control: self.control.clone(),
            releases: self.releases.clone(),
        });
        Ok(Some(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pending_releases_travel_in_one_message_and_other_messages_keep_their_place() {
        use proto::shm_client_message::Message;
        use tokio_stream::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let release = |slot| {
            control(Message::Release(proto::ShmRelease {
                slot,
                more: Vec::new(),
            }))
        };
        tx.send(control(Message::Mapped(proto::ShmMapped {})))
            .unwrap();
        for slot in [4, 1, 7] {
            tx.send(release(slot)).unwrap();
        }
        tx.send(control(Message::Mapped(proto::ShmMapped {})))
            .unwrap();
        tx.send(release(2)).unwrap();
        drop(tx);
        let out: Vec<_> = coalesced_releases(rx).collect().await;
        let shapes: Vec<Vec<u32>> = out
            .iter()
            .map(|m| match &m.message {
                Some(Message::Release(r)) => {
                    std::iter::once(r.slot).chain(r.more.clone()).collect()
                }
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(shapes, vec![vec![], vec![4, 1, 7], vec![], vec![2]]);
    }
}
