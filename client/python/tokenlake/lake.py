"""The lake from Python, for data engineers: versions, tags, describe, SQL, samples, label
import and plans, through the same Rust code as the `tokenlake` command (no server)."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any, Dict, List, Optional

from . import errors


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise ImportError("tokenlake.Lake needs pyarrow (`pip install pyarrow`)") from e
    return pyarrow


def _call(f: Any, *args: Any, **kw: Any) -> Any:
    from ._native import NativeError

    try:
        return f(*args, **kw)
    except NativeError as e:
        raise errors.from_native(e) from None


def _version(version: Any) -> Optional[str]:
    return None if version is None else str(version)


class Lake:
    """A lake at `uri` (a directory, or s3://bucket/prefix with `storage_options`, the keys of
    `tokenlake --storage-option`). Every call reads the lake as it is then."""

    def __init__(self, uri: Any, storage_options: Optional[Dict[str, str]] = None) -> None:
        self.uri = os.fspath(uri)
        self.storage_options = dict(storage_options or {})
        self._options = [f"{k}={v}" for k, v in self.storage_options.items()]

    def __repr__(self) -> str:
        return f"Lake({self.uri!r})"

    def versions(self) -> List[Dict[str, Any]]:
        """Every version, oldest first: number, commit time, rows, tags, and what made it
        (`properties["tokenlake.operation"]`), as `tokenlake versions --json`."""
        from . import _native

        return json.loads(_call(_native.lake_versions, self.uri, self._options))

    @property
    def tags(self) -> Dict[str, int]:
        """Tag name → version."""
        from . import _native

        return {t["name"]: t["version"] for t in json.loads(_call(_native.lake_tags, self.uri, self._options))}

    def tag(self, name: str, version: Any = None) -> int:
        """Names `version` (the latest when None) `name`; returns the version."""
        from . import _native

        return _call(_native.lake_tag, self.uri, self._options, name, _version(version))

    def delete_tag(self, name: str) -> int:
        from . import _native

        return _call(_native.lake_tag, self.uri, self._options, name, None, True)

    def describe(self, version: Any = None) -> Dict[str, Any]:
        """Rows and tokens by source, language and quality tier, as `tokenlake describe
        --json`; from the label columns, never a scan of `text`."""
        from . import _native

        return json.loads(_call(_native.lake_describe, self.uri, self._options, _version(version)))

    def query(
        self,
        sql: str,
        version: Any = None,
        *,
        limit: int = 10_000,
        timeout_s: float = 600.0,
        max_memory_mb: Optional[int] = None,
    ) -> Any:
        """Read-only SQL over one version (the table is `documents`) as a `pyarrow.Table` of
        at most `limit` rows (a warning says when rows were left out), as `tokenlake query`."""
        from . import _native

        pa = _pyarrow()
        ipc, cut = _call(
            _native.lake_query, self.uri, self._options, sql, _version(version), limit, timeout_s, max_memory_mb
        )
        table = pa.ipc.open_stream(ipc).read_all()
        if cut:
            warnings.warn(f"the query's result has more than {limit} rows: showing the first {limit} (raise limit=)")
        return table

    def sample(
        self,
        filter: Optional[str] = None,
        n: int = 10,
        seed: int = 0,
        *,
        columns: Optional[List[str]] = None,
        version: Any = None,
    ) -> Any:
        """`n` documents that `filter` (SQL over the columns) matches, chosen by `seed` (the
        same seed, the same documents), with `columns` (all but `tokens` by default), as a
        `pyarrow.Table`; `.schema.metadata` holds how many matched."""
        from . import _native

        pa = _pyarrow()
        ipc, matched, number = _call(
            _native.lake_sample, self.uri, self._options, n, seed, filter, columns, _version(version)
        )
        table = pa.ipc.open_stream(ipc).read_all()
        return table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"tokenlake.matched": str(matched).encode(), b"tokenlake.version": str(number).encode()}
        )

    def label_import(self, labels: Any) -> Dict[str, Any]:
        """Adds label columns to the latest version as one new version: `labels` is a pyarrow
        table (or record batch), a pandas frame or a dict of columns, with `doc_id` and one
        column per label (a classifier's scores, datatrove or Dolma attributes). All or
        nothing: a repeated or unknown doc_id, or an existing column, commits nothing. Returns
        `tokenlake label import --json`'s report (the new version, columns, documents)."""
        from . import _native

        pa = _pyarrow()
        table = _to_table(pa, labels)
        if "doc_id" not in table.column_names:
            raise errors.InvalidArgument("the labels have no doc_id column")
        i = table.column_names.index("doc_id")
        try:
            table = table.set_column(i, "doc_id", table.column("doc_id").cast(pa.uint64()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise errors.InvalidArgument(f"doc_id must be non-negative whole numbers: {e}") from None
        # doc_id first, as the label file format has it.
        table = table.select(["doc_id"] + [c for c in table.column_names if c != "doc_id"])
        with tempfile.TemporaryDirectory(prefix="tokenlake-labels-") as tmp:
            path = os.path.join(tmp, "labels.parquet")
            pa.parquet.write_table(table, path)
            return json.loads(_call(_native.lake_label_import, self.uri, self._options, path))

    def to_lance(self, version: Any = None) -> Any:
        """The documents table at `version` as a `lance.LanceDataset` (pylance), for Lance's
        own scans, vector search and torch readers."""
        from . import _native

        try:
            import lance
        except ImportError as e:
            raise ImportError("Lake.to_lance needs pylance (`pip install pylance`)") from e
        uri, number = _call(_native.lake_documents, self.uri, self._options, _version(version))
        return lance.dataset(uri, version=number, storage_options=self.storage_options or None)

    def plan(
        self,
        recipe: Optional[str] = None,
        *,
        recipe_path: Optional[str] = None,
        version: Any = None,
        cache_dir: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Plans a recipe (TOML text, or `recipe_path`) over this lake and returns its summary
        (stages, components, documents, tokens, epochs, padding), as `tokenlake plan --json`."""
        from .dataset import Dataset

        if (recipe is None) == (recipe_path is None):
            raise ValueError("give recipe (TOML text) or recipe_path")
        ds = Dataset(lake=self.uri, recipe=recipe, recipe_path=recipe_path, version=_version(version),
                     cache_dir=cache_dir, storage_options=self.storage_options, dp_rank=0, dp_world=1)
        return ds.plan_summary()


def _to_table(pa: Any, labels: Any) -> Any:
    if isinstance(labels, pa.Table):
        return labels
    if isinstance(labels, pa.RecordBatch):
        return pa.Table.from_batches([labels])
    if isinstance(labels, dict):
        return pa.table(labels)
    if type(labels).__module__.startswith("pandas"):
        return pa.Table.from_pandas(labels, preserve_index=False)
    raise TypeError(f"labels must be a pyarrow table, a pandas frame or a dict of columns, not {type(labels).__name__}")
