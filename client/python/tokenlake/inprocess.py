"""Batches planned and assembled in this process by the native module: the same Rust code
(`tokenlake-plan`) the server runs, so the same batches byte for byte, with no server."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, Optional

import numpy as np

from . import errors


class InProcess:
    """A recipe's plan over a lake, opened on first use in each process: a DataLoader worker
    (a forked child) opens its own, since the parent's runtime threads do not exist there."""

    def __init__(
        self,
        *,
        recipe: Optional[str],
        recipe_name: str,
        lake: Optional[str],
        version: Optional[str],
        cache_dir: Optional[str],
        cache_mode: Optional[str],
        storage_options: Dict[str, str],
        prefetch: int,
    ) -> None:
        self.recipe = recipe
        self.recipe_name = recipe_name
        self.lake = None if lake is None else os.fspath(lake)
        self.version = None if version is None else str(version)
        self.cache_dir = cache_dir
        self.cache_mode = cache_mode
        self.storage_options = [f"{k}={v}" for k, v in storage_options.items()]
        self.prefetch = prefetch
        self._plan: Any = None
        self._pid = -1

    def __getstate__(self) -> Dict[str, Any]:
        # The native plan stays in its process; a copy elsewhere opens its own.
        state = dict(self.__dict__)
        state["_plan"], state["_pid"] = None, -1
        return state

    def plan(self) -> Any:
        from . import _native

        if self._plan is not None and self._pid != os.getpid():
            self._plan.forget()  # inherited through fork: never touched again
            self._plan = None
        if self._plan is None:
            try:
                self._plan = _native.open_plan(
                    self.recipe,
                    self.recipe_name,
                    self.lake,
                    self.version,
                    self.cache_dir,
                    self.cache_mode,
                    self.storage_options,
                )
            except _native.NativeError as e:
                raise errors.from_native(e) from None
            self._pid = os.getpid()
        return self._plan

    def summary(self) -> Dict[str, Any]:
        return json.loads(self.plan().summary_json())

    def cursor_at(self, samples: int) -> str:
        return self.plan().cursor_at(samples)

    def batches(
        self,
        rank: int,
        world: int,
        micro_batch: int,
        cursor: str,
        max_steps: int,
        copy_tokens: bool,
    ) -> Iterator[Any]:
        from . import _native
        from .dataset import Batch

        plan = self.plan()
        dtype = np.dtype("<u2") if plan.token_width == 2 else np.dtype("<u4")
        sample_len = plan.sample_len
        plan_id = plan.id
        try:
            stream = plan.stream(rank, world, micro_batch, cursor, max_steps, self.prefetch)
        except _native.NativeError as e:
            raise errors.from_native(e) from None
        try:
            while True:
                try:
                    b = next(stream)
                except StopIteration:
                    return
                except _native.NativeError as e:
                    raise errors.from_native(e) from None
                # A view of the batch's buffer, which it keeps alive: no copy.
                tokens = np.asarray(b["tokens"]).view(dtype).reshape(-1, sample_len)
                offsets = b["sample_spans"]
                doc_ids, offs, lens, positions = (
                    b["span_doc_ids"],
                    b["span_offsets"],
                    b["span_lens"],
                    b["span_positions"],
                )
                spans = [
                    [(doc_ids[j], offs[j], lens[j], positions[j]) for j in range(offsets[i], offsets[i + 1])]
                    for i in range(len(b["indices"]))
                ]
                yield Batch(
                    step=b["step"],
                    tokens=tokens,
                    indices=b["indices"],
                    components=b["components"],
                    doc_starts=[[s[3] for s in row] for row in spans],
                    filled=[max((s[3] + s[2] for s in row), default=0) for row in spans],
                    cursor=b["cursor"],
                    plan_id=plan_id,
                    spans=spans,
                )
        finally:
            stream.close()
