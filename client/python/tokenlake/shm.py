"""The co-located transport (`Stream.SharedBatches`) from Python: the server writes each batch's
tokens and metadata into a ring of slots in shared memory that this process maps read-only; gRPC
carries only the slots' numbers and our releases, which are the flow control.

The protocol is the Rust client's: send `open` (the request, the slots wanted and this host's
identity), map the ring the server announces, send `mapped` (the server then removes the ring's
name, so nothing is left behind whichever side crashes), and send `release` for each slot once its
tokens have been copied out (the slots of one announcement in one message, before waiting for the
next).
"""

from __future__ import annotations

import mmap
import os
import queue
import struct
from typing import Any, Iterator, List, NamedTuple, Optional, Tuple

import grpc
import numpy as np

from .v1 import tokenlake_pb2 as pb

# Slots asked for; the server grants fewer when its prefetch byte bound is smaller.
RING_SLOTS = 32

# Refusals after which gRPC payloads will work: another host, no shared memory on either side,
# or a server that predates the transport.
FALLBACK_CODES = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED}


class ShmUnavailable(Exception):
    """This process cannot use the server's ring (another host, no /dev/shm, no Linux)."""


class StreamInterrupted(Exception):
    """The stream stopped before the server said it had ended (a server gone, a producer
    failed): the dataset asks again from its cursor."""


def check_end(end: Any, received: int) -> None:
    """The server's end of a stream: it counts the batches it sent on this connection."""
    if end.batches != received:
        raise StreamInterrupted(
            f"the server sent {end.batches} batches on this connection, and this client "
            f"received {received}"
        )


def host_identity() -> Optional[str]:
    """The kernel's boot id, as the Rust client sends it: every pod and container on one host
    shares it, two hosts never do; None off Linux."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


_END = object()


class SlotSample(NamedTuple):
    index: int
    stage: str
    component: str
    epoch: int
    span_start: int
    span_end: int


class SlotSpan(NamedTuple):
    doc_id: int
    offset: int
    len: int
    position: int


class SlotBatch(NamedTuple):
    """A batch's metadata read from its slot, with the fields of MicroBatch that a client reads."""

    step: int
    token_width: int
    sample_len: int
    samples: List[SlotSample]
    spans: List[SlotSpan]
    cursor: str
    plan_id: str


_HEADER = struct.Struct("<QIIII")
_SAMPLE = struct.Struct("<QIIIIII")
_SPAN = struct.Struct("<QIIII")


def slot_meta(ring: Any, start: int, shm: Any, announced: Any) -> SlotBatch:
    """The metadata the server wrote after the tokens of the slot at `start` (the layout of
    `tokenlake_ring::SlotMeta`)."""
    at = start + (shm.tokens_len + 7) // 8 * 8
    end = at + shm.meta_len
    if end > start + announced.slot_bytes:
        raise ValueError(f"slot {shm.slot}'s metadata runs past the slot")
    step, n, m, c, _ = _HEADER.unpack_from(ring, at)
    if _HEADER.size + n * _SAMPLE.size + m * _SPAN.size + c != shm.meta_len:
        raise ValueError(f"slot {shm.slot}'s metadata is not the {shm.meta_len} bytes announced")
    at += _HEADER.size
    stages, components = announced.stages, announced.components
    samples = []
    for index, stage, component, epoch, span_start, span_end, _ in _SAMPLE.iter_unpack(
        ring[at : at + n * _SAMPLE.size]
    ):
        samples.append(
            SlotSample(index, stages[stage], components[component], epoch, span_start, span_end)
        )
    at += n * _SAMPLE.size
    spans = [SlotSpan(*f[:4]) for f in _SPAN.iter_unpack(ring[at : at + m * _SPAN.size])]
    at += m * _SPAN.size
    cursor = ring[at : at + c].decode("utf-8")
    return SlotBatch(
        step,
        announced.token_width,
        announced.sample_len,
        samples,
        spans,
        cursor,
        announced.plan_id,
    )


def shared_batches(
    stub: Any, request: Any, metadata: Any
) -> Iterator[Tuple[Any, np.ndarray]]:
    """Yields (metadata, tokens) pairs; the metadata has MicroBatch's fields (a SlotBatch, or the
    MicroBatch itself when it was too large for its slot); `tokens` is a read-only uint8 view of the
    batch's slot, valid only until the generator is resumed (the slot is released then), so
    copy what you keep. Raises ShmUnavailable when the ring cannot be used here."""
    host = host_identity()
    if host is None:
        raise ShmUnavailable("this client has no shared memory (it needs Linux)")
    outgoing: "queue.Queue[Any]" = queue.Queue()

    def requests() -> Iterator[Any]:
        while True:
            message = outgoing.get()
            if message is _END:
                return
            yield message

    outgoing.put(pb.ShmClientMessage(open=pb.ShmOpen(request=request, slots=RING_SLOTS, host=host)))
    call = stub.SharedBatches(requests(), metadata=metadata)
    ring: Optional[mmap.mmap] = None
    try:
        try:
            first = next(call)
        except grpc.RpcError as e:
            if e.code() in FALLBACK_CODES:
                raise ShmUnavailable(e.details()) from e
            raise
        if first.WhichOneof("message") != "ring":
            raise ShmUnavailable("the server did not announce its ring")
        announced = first.ring
        size = announced.slots * announced.slot_bytes
        try:
            fd = os.open(announced.path, os.O_RDONLY)
        except OSError as e:  # another mount namespace, permissions: gRPC payloads still work
            raise ShmUnavailable(f"shared-memory ring {announced.path} cannot be opened: {e}") from e
        try:
            if os.fstat(fd).st_size != size:
                raise ShmUnavailable(
                    f"shared-memory ring {announced.path} is not the announced "
                    f"{announced.slots} × {announced.slot_bytes} bytes"
                )
            ring = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        outgoing.put(pb.ShmClientMessage(mapped=pb.ShmMapped()))
        # Released slots go back a quarter of the ring at a time, and all of them before waiting
        # for the next announcement (the server may be waiting for them): a control message per
        # group, as the server announces them, not one per batch.
        release_at = max(1, announced.slots // 4)
        released: List[int] = []

        def send_releases() -> None:
            if released:
                outgoing.put(
                    pb.ShmClientMessage(release=pb.ShmRelease(slot=released[0], more=released[1:]))
                )
                released.clear()

        received = 0
        for message in call:
            kind = message.WhichOneof("message")
            if kind == "end":
                check_end(message.end, received)
                return
            if kind == "batch":
                announced_batches = [message.batch]
            elif kind == "batches":  # several ready at once, in order
                announced_batches = list(message.batches.batches)
            else:
                raise RuntimeError("expected a batch on the shared-memory stream")
            try:
                for shm in announced_batches:
                    if shm.slot >= announced.slots or shm.tokens_len > announced.slot_bytes:
                        raise ValueError("a batch names a slot outside the ring")
                    start = shm.slot * announced.slot_bytes
                    meta = slot_meta(ring, start, shm, announced) if shm.meta_len else shm.batch
                    tokens = np.frombuffer(
                        ring, dtype=np.uint8, count=shm.tokens_len, offset=start
                    )
                    received += 1
                    try:
                        yield meta, tokens
                    finally:
                        del tokens
                        released.append(shm.slot)
                    if len(released) >= release_at:
                        send_releases()
            finally:
                send_releases()
        raise StreamInterrupted("the stream stopped before the server said it had ended")
    finally:
        outgoing.put(_END)
        call.cancel()
        if ring is not None:
            try:
                ring.close()
            except BufferError:  # a view the caller kept; the mapping goes with it
                pass
