"""One data-parallel rank's resumable stream of micro-batches, as a PyTorch-style iterable
dataset, from a lake in this process or from a `tokenlake serve`."""

from __future__ import annotations

import atexit
import os
import sys
import weakref
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from . import errors

try:  # the stubs ship in the package (built by generate_stubs.py when it is built)
    from .v1 import tokenlake_pb2 as pb
    from .v1 import tokenlake_pb2_grpc as pb_grpc
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

TRANSPORTS = ("auto", "shm", "grpc")

# Labels of positions that must not be trained on (padding), as PyTorch's cross entropy expects.
IGNORE_INDEX = -100

# How `labels` relate to `input_ids`:
# - "unshifted": labels[t] is input_ids[t] (padding -100); the model shifts, as Hugging Face
#   causal LMs do inside (`model(input_ids, labels=labels).loss`).
# - "shifted": labels[t] is the token after input_ids[t] (padding -100); the loss is a plain
#   cross entropy of logits[t] and labels[t], as in Megatron, torchtitan and nanoGPT.
LABELS = ("unshifted", "shifted")


@dataclass
class Batch:
    """One micro-batch as the planner made it."""

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
    # Per sample, its documents' pieces as (doc_id, token offset in the document, length,
    # position in the sample).
    spans: Optional[List[List[Tuple[int, int, int, int]]]] = None


def connect(server: str, ca_cert: Optional[bytes] = None) -> Any:
    """A gRPC channel to `server` (host:port, http://host:port or https://host:port)."""
    from .served import connect as _connect

    return _connect(server, ca_cert)


class Dataset(_Base):
    """One data-parallel rank's micro-batches of a training plan.

    Source: `lake=` (a path or URI) plans and streams in this process through the same Rust
    code the server runs, no server needed; `server=` ("host:port") streams from
    `tokenlake serve` (then `lake` names one of the server's lakes). Both give the same
    batches, byte for byte. The plan is a `recipe` (TOML text) or `recipe_path`, or, served, a
    `plan_id` the server has planned; `version` (a number or tag) overrides the recipe's.

    Rank and world are the *data-parallel* ones: `dp_rank`/`dp_world`, or `dp_group` (a
    torch.distributed process group of the data-parallel dimension). Without either, the global
    rank and world (torch.distributed's, else RANK/WORLD_SIZE), with a warning where model
    parallelism is in use (tensor- and pipeline-parallel peers must read the same batches).

    Each item is one micro-batch: `input_ids`, `labels` and `position_ids` ([micro_batch,
    seq_len], int64), `cu_seqlens` (int32, the segment boundaries of the flattened batch) and
    `max_seqlen` (its longest segment), for variable-length attention, and `doc_spans`
    ([spans, 4] int64: sample, position, length, offset in the document) with `doc_ids`. Torch
    tensors when torch is installed (pinned when CUDA is), numpy arrays otherwise. `labels=`
    says how labels relate to inputs (see `LABELS`); the default, "unshifted", is what Hugging
    Face models expect, and a model that wants "shifted" labels learns from unshifted ones to
    copy its input, which shows at once as a loss near zero, where the opposite mistake
    trains quietly on the token after next.

    Give the dataset to a `DataLoader` with `batch_size=None` (items are whole micro-batches).
    With `num_workers` ≥ 1, worker w streams steps w, w + W, …, so the loader's output is
    exactly the single-process order. `state_dict()`/`load_state_dict()` work on the dataset
    and through torchdata's `StatefulDataLoader`; a state resumes with another worker count
    or data-parallel world size as long as the global batch (micro_batch × dp_world) is the
    same.
    """

    def __init__(
        self,
        server: Optional[str] = None,
        *,
        lake: Optional[str] = None,
        recipe: Optional[str] = None,
        recipe_path: Optional[str] = None,
        plan_id: Optional[str] = None,
        version: Optional[str] = None,
        dp_rank: Optional[int] = None,
        dp_world: Optional[int] = None,
        dp_group: Any = None,
        rank: Optional[int] = None,
        world: Optional[int] = None,
        micro_batch: int = 1,
        max_steps: int = 0,
        labels: str = "unshifted",
        token: Optional[str] = None,
        ca_cert: Optional[bytes] = None,
        give_up_after_s: float = 120.0,
        pin_memory: Optional[bool] = None,
        transport: str = "auto",
        cache_dir: Optional[str] = None,
        cache_mode: Optional[str] = None,
        storage_options: Optional[Dict[str, str]] = None,
        prefetch: int = 4,
    ) -> None:
        if labels not in LABELS:
            raise ValueError(f"labels must be one of {', '.join(LABELS)}, not {labels!r}")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        given = [x is not None for x in (recipe, recipe_path, plan_id)]
        if sum(given) != 1:
            raise ValueError("give exactly one of recipe, recipe_path and plan_id")
        recipe_name = "recipe"
        if recipe_path is not None:
            recipe_name = str(recipe_path)
            with open(recipe_path, encoding="utf-8") as f:
                recipe = f.read()
        if micro_batch < 1:
            raise ValueError("micro_batch must be at least 1")
        if max_steps < 0:
            raise ValueError("max_steps must be 0 (to the plan's end) or more")
        if server is None:
            if plan_id is not None:
                raise ValueError("plan_id names a server's plan: give server=, or a recipe")
            from .inprocess import InProcess

            self._source: Any = InProcess(
                recipe=recipe,
                recipe_name=recipe_name,
                lake=lake,
                version=version,
                cache_dir=cache_dir,
                cache_mode=cache_mode,
                storage_options=storage_options or {},
                prefetch=prefetch,
            )
        else:
            from .served import Served

            self._source = Served(
                server=server,
                recipe=recipe,
                plan_id=plan_id,
                lake=lake or "",
                version=version or "",
                token=token if token is not None else os.environ.get("TOKENLAKE_TOKEN"),
                ca_cert=ca_cert,
                give_up_after_s=give_up_after_s,
                transport=transport,
            )
        self.server = server
        self.dp_rank, self.dp_world = _dp_rank_and_world(dp_rank, dp_world, dp_group, rank, world)
        if not 0 <= self.dp_rank < self.dp_world:
            raise ValueError(f"dp_rank {self.dp_rank} is not in a data-parallel world of {self.dp_world}")
        self.micro_batch = micro_batch
        self.max_steps = max_steps
        self.labels = labels
        self.pin_memory = pin_memory
        # Where the stream resumes: `_skip` steps after `_cursor` ("" is the plan's start),
        # after `_delivered` steps of this rank. In a DataLoader worker, this worker's next step.
        self._cursor = ""
        self._skip = 0
        self._delivered = 0
        # (worker, workers) when the position is one worker's (a worker's own state).
        self._worker: Optional[Tuple[int, int]] = None

    # Kept for the earlier name of the arguments.
    @property
    def rank(self) -> int:
        return self.dp_rank

    @property
    def world(self) -> int:
        return self.dp_world

    @property
    def transport_in_use(self) -> str:
        """Served: the transport in use (after "auto" has chosen, the one it chose);
        in process: "in-process"."""
        return getattr(self._source, "transport_in_use", "in-process")

    @property
    def reconnects(self) -> int:
        return getattr(self._source, "reconnects", 0)

    def plan_summary(self) -> Dict[str, Any]:
        """The plan's summary, as `tokenlake plan --json` prints it (a served dataset asks the
        server's Plan service)."""
        return self._source.summary()

    # -- checkpointing -------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """Where this rank is: plain JSON-able data for any checkpoint. Resume with
        `load_state_dict` (same recipe and lake version, same global batch)."""
        state = {
            "cursor": self._cursor,
            "skip": self._skip,
            "steps": self._delivered,
            "dp_rank": self.dp_rank,
            "dp_world": self.dp_world,
            "micro_batch": self.micro_batch,
        }
        if self._worker is not None:
            state["worker"], state["workers"] = self._worker
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        world = state.get("dp_world", state.get("world", self.dp_world))
        micro_batch = state.get("micro_batch", self.micro_batch)
        if micro_batch * world != self.micro_batch * self.dp_world:
            # The cursor is a sample count; another global batch would split a step.
            raise ValueError(
                "the checkpoint was taken with micro_batch × dp_world = "
                f"{micro_batch} × {world}; this dataset has {self.micro_batch} × {self.dp_world}"
            )
        self._cursor = state["cursor"]
        self._skip = int(state.get("skip", 0))
        self._delivered = int(state.get("steps", 0))
        self._worker = None
        if int(state.get("workers", 1)) > 1:
            self._worker = (int(state["worker"]), int(state["workers"]))

    @property
    def cursor(self) -> str:
        return self._cursor

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return _tracked(self._items())

    def _items(self) -> Iterator[Dict[str, Any]]:
        _refuse_loader_batching()
        # The batch's tokens may still be in their ring slot: converted before the next one.
        for batch in self._batches(copy_tokens=False):
            yield self._to_model_inputs(batch)

    def batches(self) -> Iterator[Batch]:
        """The raw batches of this rank (of this worker, in a DataLoader worker)."""
        return _tracked(self._batches(copy_tokens=True))

    def _batches(self, copy_tokens: bool) -> Iterator[Batch]:
        worker, workers = _worker_info()
        D, mb = self.dp_world, self.micro_batch
        if self._worker is not None and self._worker != (worker, workers):
            w, W = self._worker
            raise ValueError(
                f"this state is DataLoader worker {w}'s of {W}; resume the StatefulDataLoader "
                f"with num_workers={W}, or load the loader's state with "
                "Dataset.load_loader_state_dict"
            )
        if self._worker is not None:
            # A worker's own state: its next step; its group of W steps starts `worker` before.
            cursor, skip, group = self._cursor, self._skip - worker, self._delivered - worker
        else:
            cursor, skip, group = self._cursor, self._skip, self._delivered
        # Worker w of W reads steps w, w + W, … of this rank: rank w·D + r of a world of D·W.
        left = (self.max_steps - group) if self.max_steps else None
        mine = len(range(worker, left, workers)) if left is not None else 0
        if left is not None and mine == 0:
            return
        base = self._resolve(cursor, skip)
        if workers > 1:
            self._worker = (worker, workers)
        got = 0
        for batch in _until_the_end(
            self._source.batches(worker * D + self.dp_rank, D * workers, mb, base, mine, copy_tokens)
        ):
            got += 1
            # This worker's next step is `worker` steps after the group that follows.
            self._cursor, self._skip = batch.cursor, worker
            self._delivered = group + got * workers + worker
            yield batch
        if left is not None and got == mine:
            return
        # The plan's last steps fill fewer than W: this worker's, if there is one, alone.
        if workers > 1:
            tail = self._resolve(self._cursor if got else base, worker)
            for batch in _until_the_end(self._source.batches(self.dp_rank, D, mb, tail, 1, copy_tokens)):
                self._cursor, self._skip = batch.cursor, workers - 1
                self._delivered = group + got * workers + worker + workers
                yield batch

    def _resolve(self, cursor: str, skip: int) -> str:
        """The cursor `skip` steps of this rank (global batch) after `cursor`."""
        if skip == 0:
            return cursor
        samples = skip * self.dp_world * self.micro_batch
        if cursor:
            from ._native import cursor_shift

            return _native_call(cursor_shift, cursor, samples)
        return self._source.cursor_at(samples)

    def load_loader_state_dict(self, loader_state: Dict[str, Any]) -> None:
        """Loads where a `StatefulDataLoader` (of any worker count) had got to, for a loader
        with another worker count, or for iterating this dataset directly."""
        states = _worker_states(loader_state)
        if not states:
            raise ValueError("no tokenlake dataset state in this loader state")
        # The loader yields in step order: it resumes at the earliest step any worker has next.
        first = min(states, key=lambda s: int(s["steps"]))
        cursor, skip = first["cursor"], int(first.get("skip", 0))
        self.load_state_dict({**first, "cursor": cursor, "skip": skip, "workers": 1})

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
        if self.labels == "shifted":
            np.copyto(labels, tokens[:, 1:])
        else:
            np.copyto(labels, input_ids)
        position_ids = np.empty((n, seq_len), dtype=np.int64)
        starts: List[int] = []
        for i, filled in enumerate(b.filled):
            # Shifted: position t predicts token t+1; unshifted: the model does that shift.
            # Either way no position predicts a padding token.
            pad_from = max(filled - 1, 0) if self.labels == "shifted" else filled
            labels[i, pad_from:] = IGNORE_INDEX
            row = sorted({0, *[p for p in b.doc_starts[i] if p < seq_len]})
            if filled < seq_len and filled not in row:
                row.append(filled)  # the padding is a segment of its own
            for a, z in zip(row, row[1:] + [seq_len]):
                position_ids[i, a:z] = np.arange(z - a)
            starts.extend(i * seq_len + p for p in row)
        cu = np.array(starts + [n * seq_len], dtype=np.int32)
        max_seqlen = int(np.diff(cu).max()) if len(cu) > 1 else 0
        spans = [(i, pos, length, off, doc) for i, row in enumerate(b.spans or []) for doc, off, length, pos in row]
        doc_spans = np.array([s[:4] for s in spans], dtype=np.int64).reshape(-1, 4)
        doc_ids = [s[4] for s in spans]
        if torch is None:
            return {
                "input_ids": input_ids,
                "labels": labels,
                "position_ids": position_ids,
                "cu_seqlens": cu,
                "max_seqlen": max_seqlen,
                "doc_spans": doc_spans,
                "doc_ids": doc_ids,
            }
        out = {
            "input_ids": input_t if pin else torch.from_numpy(input_ids),
            "labels": labels_t if pin else torch.from_numpy(labels),
            "position_ids": torch.from_numpy(position_ids),
            "cu_seqlens": torch.from_numpy(cu),
            "max_seqlen": max_seqlen,
            "doc_spans": torch.from_numpy(doc_spans),
            "doc_ids": doc_ids,
        }
        if pin:
            out["position_ids"] = out["position_ids"].pin_memory()
            out["cu_seqlens"] = out["cu_seqlens"].pin_memory()
        return out

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


# The earlier name; items and arguments are those of `Dataset`.
TokenlakeDataset = Dataset


def _native_call(f: Any, *args: Any) -> Any:
    from ._native import NativeError

    try:
        return f(*args)
    except NativeError as e:
        raise errors.from_native(e) from None


# Iterators not run to their end. A script that stops iterating leaves its stream open; closed
# by the garbage collector at interpreter exit, a served stream would close its gRPC channel
# after gRPC's threads and modules are gone (a hang or tracebacks). They are closed first.
_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _tracked(iterator: Any) -> Any:
    _LIVE.add(iterator)
    return iterator


@atexit.register
def _close_open_streams() -> None:
    for iterator in list(_LIVE):
        try:
            iterator.close()
        except Exception:  # exiting: nothing is waiting for the error
            pass


def _until_the_end(batches: Iterator[Batch]) -> Iterator[Batch]:
    """`batches`, where a position past the plan's last sample is its end, not an error: a
    worker's next step is computed ahead and may lie beyond the end of the plan."""
    try:
        yield from batches
    except errors.InvalidArgument as e:
        if "but the plan has only" not in e.message:
            raise


def _worker_info() -> Tuple[int, int]:
    if torch is None:
        return 0, 1
    info = torch.utils.data.get_worker_info()
    if info is None:
        return 0, 1
    return info.id, info.num_workers


def _worker_states(loader_state: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The dataset states inside a StatefulDataLoader's state dict, wherever it keeps them."""
    found: List[Dict[str, Any]] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if "cursor" in x and "dp_world" in x and "steps" in x:
                found.append(x)
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(loader_state)
    return found


def _refuse_loader_batching() -> None:
    """A DataLoader with a batch size stacks our micro-batches into batches of them (a
    dimension more, and lists of tensors): refuse that, saying what to write instead."""
    frame = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            return
        me = frame.f_locals.get("self")
        if type(me).__name__ == "_IterableDatasetFetcher":
            if getattr(me, "auto_collation", False):
                raise ValueError(
                    "tokenlake.Dataset yields whole micro-batches: give it to the DataLoader "
                    "with batch_size=None (DataLoader(ds, batch_size=None, ...)); the batch "
                    "size is the dataset's micro_batch"
                )
            return
        frame = frame.f_back


def _dp_rank_and_world(
    dp_rank: Optional[int],
    dp_world: Optional[int],
    dp_group: Any,
    rank: Optional[int],
    world: Optional[int],
) -> Tuple[int, int]:
    dp_rank = dp_rank if dp_rank is not None else rank
    dp_world = dp_world if dp_world is not None else world
    if dp_group is not None:
        if dp_rank is not None or dp_world is not None:
            raise ValueError("give dp_group, or dp_rank and dp_world, not both")
        return torch.distributed.get_rank(dp_group), torch.distributed.get_world_size(dp_group)
    if dp_rank is not None and dp_world is not None:
        return dp_rank, dp_world
    distributed = (
        torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized()
    )
    if distributed:
        r, w = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        r, w = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    model_parallel = _model_parallel_size()
    if model_parallel > 1:
        warnings.warn(
            f"model parallelism is in use ({model_parallel} ranks per model replica): the "
            "global rank is not the data-parallel rank, and tensor- or pipeline-parallel peers "
            "must read the same batches; pass dp_group= (the data-parallel process group) or "
            "dp_rank=/dp_world="
        )
    return (dp_rank if dp_rank is not None else r, dp_world if dp_world is not None else w)


def _model_parallel_size() -> int:
    """Ranks per model replica, where torch.distributed's device meshes or Megatron-Core say."""
    size = 1
    megatron = sys.modules.get("megatron.core.parallel_state")
    if megatron is not None:
        try:
            if megatron.model_parallel_is_initialized():
                size = max(
                    size,
                    megatron.get_tensor_model_parallel_world_size()
                    * megatron.get_pipeline_model_parallel_world_size(),
                )
        except Exception:  # pragma: no cover - another Megatron's API
            pass
    if torch is not None:
        try:
            from torch.distributed.device_mesh import _mesh_resources

            for mesh in getattr(_mesh_resources, "mesh_stack", []):
                names = mesh.mesh_dim_names or ()
                for name, n in zip(names, mesh.mesh.shape):
                    if name not in ("dp", "data", "dp_replicate", "dp_shard", "fsdp"):
                        size = max(size, int(n))
        except Exception:  # pragma: no cover - older torch
            pass
    return size
