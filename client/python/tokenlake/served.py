"""Batches from `tokenlake serve`: over the server's shared-memory ring on its host, over gRPC
payloads elsewhere, resumed from the last cursor when a connection or the server goes away."""

from __future__ import annotations

import json
import time
import warnings
from typing import Any, Dict, Iterator, Optional

import grpc
import numpy as np

from . import errors
from .shm import ShmUnavailable, StreamInterrupted, check_end, shared_batches
from .v1 import tokenlake_pb2 as pb
from .v1 import tokenlake_pb2_grpc as pb_grpc

# Status codes after which asking again from the last cursor can succeed.
_RETRY = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DATA_LOSS,
}

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),
]


def connect(server: str, ca_cert: Optional[bytes] = None) -> grpc.Channel:
    """A channel to `server` (host:port, http://host:port or https://host:port)."""
    if server.startswith("https://"):
        creds = grpc.ssl_channel_credentials(root_certificates=ca_cert)
        return grpc.secure_channel(server[len("https://") :], creds, options=_CHANNEL_OPTIONS)
    return grpc.insecure_channel(server.removeprefix("http://"), options=_CHANNEL_OPTIONS)


class Served:
    """A server's plan: streams of any rank, resumed on failures."""

    def __init__(
        self,
        *,
        server: str,
        recipe: Optional[str],
        plan_id: Optional[str],
        lake: str,
        version: str,
        token: Optional[str],
        ca_cert: Optional[bytes],
        give_up_after_s: float,
        transport: str,
    ) -> None:
        self.server = server
        self.plan_id = plan_id
        if plan_id is not None:
            self.plan_source = pb.PlanSource(plan_id=plan_id)
        else:
            self.plan_source = pb.PlanSource(recipe_toml=recipe, lake=lake, version=version)
        self.token = token
        self.ca_cert = ca_cert
        self.give_up_after_s = give_up_after_s
        self.transport = transport
        # The transport in use: after "auto" has chosen, the one it chose.
        self.transport_in_use = transport
        self.reconnects = 0

    def summary(self) -> Dict[str, Any]:
        """The server's summary of the plan (its Plan service, as `tokenlake plan --json`)."""
        metadata = [("authorization", f"Bearer {self.token}")] if self.token else None
        channel = connect(self.server, self.ca_cert)
        try:
            reply = pb_grpc.PlanStub(channel).Prepare(pb.PlanRequest(plan=self.plan_source), metadata=metadata)
        except grpc.RpcError as e:
            raise errors.from_grpc(e, self.plan_id) from None
        finally:
            channel.close()
        return json.loads(reply.summary_json)

    def cursor_at(self, samples: int) -> str:
        """The cursor `samples` global samples into the plan: from the cursor of a one-sample
        request (its position is absolute)."""
        from ._native import cursor_shift

        for batch in self.batches(0, 1, 1, "", 1, copy_tokens=True):
            try:
                return cursor_shift(batch.cursor, samples - 1)
            except Exception as e:  # the native error, as the package's
                raise errors.from_native(e) from None
        raise errors.InvalidArgument(
            f"cursor {samples} samples into the plan: the plan is empty, but the plan has only 0"
        )

    def _messages(self, stub: Any, request: Any, metadata: Any) -> Iterator[Any]:
        """(MicroBatch, its tokens as a uint8 array) of one connection, through the transport
        in use; a shared-memory slot is released when the generator is resumed. Returns when
        the server says the stream has ended; raises StreamInterrupted when it stops without
        saying so."""
        if self.transport_in_use != "grpc":
            try:
                yield from shared_batches(stub, request, metadata)
                return
            except ShmUnavailable as e:  # raised before any batch
                if self.transport_in_use == "shm":
                    raise
                warnings.warn(f"shared memory is not available ({e}); streaming over gRPC payloads")
                self.transport_in_use = "grpc"
        received = 0
        for message in stub.Batches(request, metadata=metadata):
            if message.HasField("end"):
                check_end(message.end, received)
                return
            received += 1
            yield message, np.frombuffer(message.tokens, dtype=np.uint8)
        raise StreamInterrupted("the stream stopped before the server said it had ended")

    def batches(
        self,
        rank: int,
        world: int,
        micro_batch: int,
        cursor: str,
        max_steps: int,
        copy_tokens: bool,
    ) -> Iterator[Any]:
        """Rank `rank` of `world`'s batches from `cursor`, at most `max_steps` (0: all),
        reconnecting and resuming from the last cursor when needed."""
        from .dataset import Batch

        metadata = [("authorization", f"Bearer {self.token}")] if self.token else None
        channel = connect(self.server, self.ca_cert)
        stub = pb_grpc.StreamStub(channel)
        failing_since: Optional[float] = None
        backoff = 0.1
        delivered = 0
        try:
            while max_steps == 0 or delivered < max_steps:
                request = pb.StreamRequest(
                    plan=self.plan_source,
                    rank=rank,
                    world=world,
                    micro_batch=micro_batch,
                    cursor=cursor,
                    max_steps=(max_steps - delivered) if max_steps else 0,
                )
                try:
                    for message, tokens in self._messages(stub, request, metadata):
                        failing_since, backoff = None, 0.1
                        batch = _decode(Batch, message, tokens, copy_tokens, self.transport_in_use)
                        # Advance before yielding: a checkpoint taken while the caller holds
                        # this batch resumes after it.
                        cursor = message.cursor
                        delivered += 1
                        yield batch
                        if max_steps and delivered >= max_steps:
                            return
                    return  # the server said the stream has ended
                except (grpc.RpcError, StreamInterrupted) as e:
                    if isinstance(e, grpc.RpcError) and e.code() not in _RETRY:
                        raise errors.from_grpc(e, self.plan_id) from None
                    now = time.monotonic()
                    failing_since = failing_since or now
                    if now - failing_since > self.give_up_after_s:
                        if isinstance(e, grpc.RpcError):
                            raise errors.from_grpc(e, self.plan_id) from None
                        raise errors.Unavailable(str(e)) from None
                    self.reconnects += 1
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            channel.close()


def _decode(Batch: Any, m: Any, raw: np.ndarray, copy_tokens: bool, transport: str) -> Any:
    dtype = np.dtype("<u2") if m.token_width == 2 else np.dtype("<u4")
    n = len(m.samples)
    tokens = raw.view(dtype).reshape(n, m.sample_len)
    if copy_tokens and transport == "shm":
        tokens = tokens.copy()  # out of the ring slot, which is reused after this batch
    doc_starts, filled, spans = [], [], []
    for s in m.samples:
        sample_spans = m.spans[s.span_start : s.span_end]
        doc_starts.append([sp.position for sp in sample_spans])
        filled.append(max((sp.position + sp.len for sp in sample_spans), default=0))
        spans.append([(sp.doc_id, sp.offset, sp.len, sp.position) for sp in sample_spans])
    return Batch(
        step=m.step,
        tokens=tokens,
        indices=[s.index for s in m.samples],
        components=[s.component for s in m.samples],
        doc_starts=doc_starts,
        filled=filled,
        cursor=m.cursor,
        plan_id=m.plan_id,
        spans=spans,
    )
