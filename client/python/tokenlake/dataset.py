"""The resumable stream of one rank, as a PyTorch-style iterable dataset."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

import grpc
import numpy as np

try:  # the stubs ship in the package (built by generate_stubs.py when it is built)
    from .v1 import tokenlake_pb2 as pb
    from .v1 import tokenlake_pb2_grpc as pb_grpc
    from .shm import ShmUnavailable, StreamInterrupted, check_end, shared_batches
except ImportError as e:  # pragma: no cover - a setup error, said plainly
    raise ImportError(
        "tokenlake's gRPC stubs are missing: install the package (`pip install "
        "./client/python`), or run `python client/python/generate_stubs.py` to use the "
        "source tree"
    ) from e

try:
    import torch
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # numpy only
    torch = None
    _Base = object

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

TRANSPORTS = ("auto", "shm", "grpc")

# Labels of positions that must not be trained on (padding), as PyTorch's cross entropy expects.
IGNORE_INDEX = -100


def connect(server: str, ca_cert: Optional[bytes] = None) -> grpc.Channel:
    """A channel to `server` (host:port, http://host:port or https://host:port)."""
    if server.startswith("https://"):
        creds = grpc.ssl_channel_credentials(root_certificates=ca_cert)
        return grpc.secure_channel(server[len("https://") :], creds, options=_CHANNEL_OPTIONS)
    return grpc.insecure_channel(server.removeprefix("http://"), options=_CHANNEL_OPTIONS)


@dataclass
class Batch:
    """One micro-batch as the server sent it."""

    step: int
    tokens: np.ndarray  # [samples, sample_len], uint16 or uint32
    indices: List[int]
    components: List[str]
    # Per sample, the positions where a document starts, in order (0 first).
    doc_starts: List[List[int]]
    # Per sample, how many leading positions hold documents (the rest is padding).
    filled: List[int]
    cursor: str
    plan_id: str


class TokenlakeDataset(_Base):
    """One rank's micro-batches from a tokenlake server.

    Give the plan as `recipe` (TOML text), `recipe_path`, or `plan_id`; `lake` and `version`
    override the recipe's. `rank` and `world` default to torch.distributed's (or RANK and
    WORLD_SIZE). Each item is a dict of `input_ids` and `labels` ([micro_batch, seq_len], int64)
    and `cu_seqlens` (int32 document boundaries of the flattened batch, for variable-length
    attention), as torch tensors when torch is installed (pinned when CUDA is) and numpy arrays
    otherwise.

    `transport` is how tokens arrive: "shm" through the server's shared-memory ring (this process
    must run on the server's host), "grpc" inside the gRPC messages, or "auto" (the default):
    shared memory where the server offers it to this host, gRPC otherwise. Over shared memory,
    pinned items are filled straight from the ring slot.
    """

    def __init__(
        self,
        server: str,
        *,
        recipe: Optional[str] = None,
        recipe_path: Optional[str] = None,
        plan_id: Optional[str] = None,
        lake: str = "",
        version: str = "",
        rank: Optional[int] = None,
        world: Optional[int] = None,
        micro_batch: int = 1,
        max_steps: int = 0,
        token: Optional[str] = None,
        ca_cert: Optional[bytes] = None,
        give_up_after_s: float = 120.0,
        pin_memory: Optional[bool] = None,
        transport: str = "auto",
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        given = [x is not None for x in (recipe, recipe_path, plan_id)]
        if sum(given) != 1:
            raise ValueError("give exactly one of recipe, recipe_path and plan_id")
        if recipe_path is not None:
            with open(recipe_path, encoding="utf-8") as f:
                recipe = f.read()
        if plan_id is not None:
            self._source = pb.PlanSource(plan_id=plan_id)
        else:
            self._source = pb.PlanSource(recipe_toml=recipe, lake=lake, version=version)
        self.server = server
        self.rank, self.world = _rank_and_world(rank, world)
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} is not in a world of {self.world}")
        if micro_batch < 1:
            raise ValueError("micro_batch must be at least 1")
        self.micro_batch = micro_batch
        self.max_steps = max_steps
        self.token = token if token is not None else os.environ.get("TOKENLAKE_TOKEN")
        self.ca_cert = ca_cert
        self.give_up_after_s = give_up_after_s
        self.pin_memory = pin_memory
        self.transport = transport
        # The transport in use: after "auto" has chosen, the one it chose.
        self.transport_in_use = transport
        self._cursor = ""
        self._delivered = 0
        self.reconnects = 0

    # -- checkpointing -------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """Where this rank is: resume with `load_state_dict` (same recipe and lake version)."""
        return {
            "cursor": self._cursor,
            "steps": self._delivered,
            "rank": self.rank,
            "world": self.world,
            "micro_batch": self.micro_batch,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state.get("micro_batch", self.micro_batch) * state.get("world", self.world) != (
            self.micro_batch * self.world
        ):
            # The cursor is a sample count; another global batch would split a step.
            raise ValueError(
                "the checkpoint was taken with micro_batch × world = "
                f"{state['micro_batch']} × {state['world']}; this dataset has "
                f"{self.micro_batch} × {self.world}"
            )
        self._cursor = state["cursor"]
        self._delivered = int(state.get("steps", 0))

    @property
    def cursor(self) -> str:
        return self._cursor

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        if torch is not None:
            info = torch.utils.data.get_worker_info()
            if info is not None and info.num_workers > 1:
                raise RuntimeError(
                    "TokenlakeDataset streams one rank's batches in order; use num_workers=0 or 1 "
                    "(the server already assembles batches ahead)"
                )
        # The batch's tokens may still be in their ring slot: converted before the next one.
        for batch in self._batches(copy_tokens=False):
            yield self._to_model_inputs(batch)

    def batches(self) -> Iterator[Batch]:
        """The raw batches, reconnecting and resuming from the last cursor when needed."""
        return self._batches(copy_tokens=True)

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

    def _batches(self, copy_tokens: bool) -> Iterator[Batch]:
        metadata = [("authorization", f"Bearer {self.token}")] if self.token else None
        channel = connect(self.server, self.ca_cert)
        stub = pb_grpc.StreamStub(channel)
        failing_since: Optional[float] = None
        backoff = 0.1
        try:
            while self.max_steps == 0 or self._delivered < self.max_steps:
                request = pb.StreamRequest(
                    plan=self._source,
                    rank=self.rank,
                    world=self.world,
                    micro_batch=self.micro_batch,
                    cursor=self._cursor,
                    max_steps=(self.max_steps - self._delivered) if self.max_steps else 0,
                )
                try:
                    for message, tokens in self._messages(stub, request, metadata):
                        failing_since, backoff = None, 0.1
                        batch = self._decode(message, tokens, copy_tokens)
                        # Advance before yielding: a checkpoint taken while the caller holds
                        # this batch resumes after it.
                        self._cursor = message.cursor
                        self._delivered += 1
                        yield batch
                        if self.max_steps and self._delivered >= self.max_steps:
                            return
                    return  # the server said the stream has ended
                except (grpc.RpcError, StreamInterrupted) as e:
                    if isinstance(e, grpc.RpcError) and e.code() not in _RETRY:
                        raise
                    now = time.monotonic()
                    failing_since = failing_since or now
                    if now - failing_since > self.give_up_after_s:
                        raise
                    self.reconnects += 1
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            channel.close()

    def _decode(self, m: Any, raw: np.ndarray, copy_tokens: bool) -> Batch:
        dtype = np.dtype("<u2") if m.token_width == 2 else np.dtype("<u4")
        n = len(m.samples)
        tokens = raw.view(dtype).reshape(n, m.sample_len)
        if copy_tokens and self.transport_in_use == "shm":
            tokens = tokens.copy()  # out of the ring slot, which is reused after this batch
        doc_starts, filled = [], []
        for s in m.samples:
            spans = m.spans[s.span_start : s.span_end]
            doc_starts.append([sp.position for sp in spans])
            filled.append(max((sp.position + sp.len for sp in spans), default=0))
        return Batch(
            step=self._delivered,
            tokens=tokens,
            indices=[s.index for s in m.samples],
            components=[s.component for s in m.samples],
            doc_starts=doc_starts,
            filled=filled,
            cursor=m.cursor,
            plan_id=m.plan_id,
        )

    def _to_model_inputs(self, b: Batch) -> Dict[str, Any]:
        tokens = b.tokens  # possibly a ring slot: read here, never kept
        n, sample_len = tokens.shape
        seq_len = sample_len - 1
        pin = self._pin()
        if pin:
            # Page-locked tensors filled straight from the batch: one pass, ready for
            # `.cuda(non_blocking=True)`.
            input_t = torch.empty((n, seq_len), dtype=torch.int64, pin_memory=True)
            labels_t = torch.empty((n, seq_len), dtype=torch.int64, pin_memory=True)
            input_ids, labels = input_t.numpy(), labels_t.numpy()
        else:
            input_ids = np.empty((n, seq_len), dtype=np.int64)
            labels = np.empty((n, seq_len), dtype=np.int64)
        np.copyto(input_ids, tokens[:, :seq_len])
        np.copyto(labels, tokens[:, 1:])
        for i, filled in enumerate(b.filled):
            # Position t predicts token t+1: padding positions are not trained on.
            labels[i, max(filled - 1, 0) :] = IGNORE_INDEX
        starts = []
        for i, doc_starts in enumerate(b.doc_starts):
            row = sorted({0, *[p for p in doc_starts if p < seq_len]})
            if b.filled[i] < seq_len and b.filled[i] not in row:
                row.append(b.filled[i])  # the padding is a segment of its own
            starts.extend(i * seq_len + p for p in row)
        cu_seqlens = np.array(starts + [n * seq_len], dtype=np.int32)
        if torch is None:
            return {"input_ids": input_ids, "labels": labels, "cu_seqlens": cu_seqlens}
        if pin:
            return {
                "input_ids": input_t,
                "labels": labels_t,
                "cu_seqlens": torch.from_numpy(cu_seqlens).pin_memory(),
            }
        return {
            "input_ids": torch.from_numpy(input_ids),
            "labels": torch.from_numpy(labels),
            "cu_seqlens": torch.from_numpy(cu_seqlens),
        }

    def _pin(self) -> bool:
        """Whether items go into page-locked memory: when asked (or, by default, when CUDA is
        available); asked without CUDA, says so once and serves ordinary memory."""
        if torch is None:
            return False
        if self.pin_memory is False:
            return False
        available = torch.cuda.is_available()
        if self.pin_memory and not available and not getattr(self, "_said_no_cuda", False):
            warnings.warn("pin_memory needs CUDA, which is not available: items stay in ordinary memory")
            self._said_no_cuda = True
        return available


def _rank_and_world(rank: Optional[int], world: Optional[int]) -> tuple[int, int]:
    if rank is not None and world is not None:
        return rank, world
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return (
            rank if rank is not None else torch.distributed.get_rank(),
            world if world is not None else torch.distributed.get_world_size(),
        )
    return (
        rank if rank is not None else int(os.environ.get("RANK", "0")),
        world if world is not None else int(os.environ.get("WORLD_SIZE", "1")),
    )
