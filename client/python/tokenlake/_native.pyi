"""Type hints of the native module (client/python/native). The package's own classes
(`Dataset`, `Lake`) wrap it and turn `NativeError` into the types of `tokenlake.errors`."""

from typing import Any, Dict, Iterator, List, Optional, Tuple

class NativeError(Exception):
    """args: (kind, message); kind is an error code's name or "CursorMismatch"."""

def main(argv: List[str]) -> None:
    """Runs the `tokenlake` command line `argv` (the program's name first) and ends the process
    with its exit code."""

def version() -> str:
    """The package's version."""

def open_plan(
    recipe_toml: str,
    recipe_name: str,
    lake: Optional[str] = None,
    version: Optional[str] = None,
    cache_dir: Optional[str] = None,
    cache_mode: Optional[str] = None,
    storage_options: List[str] = ...,
) -> NativePlan:
    """Loads a recipe and opens its plan over `lake` (built where the cache lacks it)."""

class NativePlan:
    id: str
    lake: str
    version: int
    sample_len: int
    token_width: int
    total_samples: int
    def summary_json(self) -> str: ...
    def cursor_at(self, consumed: int) -> str: ...
    def consumed_at(self, cursor: str) -> int: ...
    def stream(
        self, rank: int, world: int, micro_batch: int, cursor: str, max_steps: int, prefetch: int = 4
    ) -> NativeStream: ...
    def forget(self) -> None: ...

class NativeStream(Iterator[Dict[str, Any]]):
    def __iter__(self) -> "NativeStream": ...
    def __next__(self) -> Dict[str, Any]: ...
    def close(self) -> None: ...

class TokenBuffer:
    """A batch's token bytes, read by numpy without a copy (`numpy.asarray`)."""

    __array_interface__: Dict[str, Any]
    def __len__(self) -> int: ...

def cursor_shift(cursor: str, samples: int) -> str: ...
def cursor_consumed(cursor: str) -> int: ...
def xxh3_64(data: bytes) -> int: ...
def lake_versions(uri: str, storage_options: List[str]) -> str: ...
def lake_tags(uri: str, storage_options: List[str]) -> str: ...
def lake_tag(
    uri: str, storage_options: List[str], name: str, version: Optional[str] = None, delete: bool = False
) -> int: ...
def lake_describe(uri: str, storage_options: List[str], version: Optional[str] = None) -> str: ...
def lake_query(
    uri: str,
    storage_options: List[str],
    sql: str,
    version: Optional[str] = None,
    limit: int = 10000,
    timeout_s: float = 600.0,
    max_memory_mb: Optional[int] = None,
) -> Tuple[bytes, bool]: ...
def lake_sample(
    uri: str,
    storage_options: List[str],
    n: int,
    seed: int = 0,
    filter: Optional[str] = None,
    columns: Optional[List[str]] = None,
    version: Optional[str] = None,
) -> Tuple[bytes, int, int]: ...
def lake_label_import(uri: str, storage_options: List[str], path: str) -> str: ...
def lake_documents(uri: str, storage_options: List[str], version: Optional[str] = None) -> Tuple[str, int]: ...
def mix_design(
    base: List[float], runs: int, concentration: float, seed: int, kind: str = "dirichlet"
) -> List[List[float]]: ...
def mix_fit(
    law: str,
    components: List[str],
    weights: List[List[float]],
    losses: List[float],
    tokens: Optional[List[float]] = None,
    attributes: Optional[List[Tuple[float, float, float]]] = None,
) -> str: ...
def mix_propose(
    fit_json: str,
    tokens: float,
    unique_tokens: List[Optional[float]],
    max_epochs: float = 4.0,
    min_share: float = 0.0,
    max_share: float = 1.0,
    other_tokens: Optional[List[float]] = None,
) -> str: ...
def mix_read_runs(runs_csv: str, design: Optional[str] = None) -> str: ...
