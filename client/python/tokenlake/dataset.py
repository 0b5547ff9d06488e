"""The resumable stream of one rank, as a PyTorch-style iterable dataset."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

import grpc
import numpy as np

try:  # the stubs come from generate_stubs.py (grpcio-tools)
    from .v1 import tokenlake_pb2 as pb
    from .v1 import tokenlake_pb2_grpc as pb_grpc
except ImportError as e:  # pragma: no cover - a setup error, said plainly
    raise ImportError(
        "tokenlake's gRPC stubs are missing: run `python client/python/generate_stubs.py`"
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
    ) -> None:
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
        for batch in self.batches():
            yield self._to_model_inputs(batch)

    def batches(self) -> Iterator[Batch]:
        """The raw batches, reconnecting and resuming from the last cursor when needed."""
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
                    for message in stub.Batches(request, metadata=metadata):
                        failing_since, backoff = None, 0.1
                        batch = self._decode(message)
                        # Advance before yielding: a checkpoint taken while the caller holds
                        # this batch resumes after it.
                        self._cursor = message.cursor
                        self._delivered += 1
                        yield batch
                        if self.max_steps and self._delivered >= self.max_steps:
                            return
                    return  # the plan ended
                except grpc.RpcError as e:
                    code = e.code()
                    if code not in _RETRY:
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

    def _decode(self, m: Any) -> Batch:
        dtype = np.dtype("<u2") if m.token_width == 2 else np.dtype("<u4")
        n = len(m.samples)
        tokens = np.frombuffer(m.tokens, dtype=dtype).reshape(n, m.sample_len)
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
        tokens = b.tokens.astype(np.int64)
        n, sample_len = tokens.shape
        seq_len = sample_len - 1
        input_ids = tokens[:, :seq_len]
        labels = tokens[:, 1:].copy()
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
        out = {"input_ids": input_ids, "labels": labels, "cu_seqlens": cu_seqlens}
        if torch is None:
            return out
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}
        pin = self.pin_memory if self.pin_memory is not None else torch.cuda.is_available()
        if pin:
            tensors = {k: v.pin_memory() for k, v in tensors.items()}
        return tensors


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
