"""tokenlake from Python.

`Dataset` streams one data-parallel rank's micro-batches of a training plan, resumably, from a
lake in this process (`lake=`, no server) or from `tokenlake serve` (`server=`), as a
`torch.utils.data.IterableDataset` when torch is installed. `Lake` reads a lake for data
engineers: versions, tags, describe, SQL to pyarrow, samples, label import, plans; `mix`
designs, fits and proposes a stage's mixture from proxy runs. Errors are
the types of `tokenlake.errors`, re-exported here.
"""

from .dataset import IGNORE_INDEX, LABELS, Batch, Dataset, TokenlakeDataset, connect
from .errors import (
    AlreadyExists,
    Cancelled,
    CursorMismatch,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PlanNotFound,
    ResourceExhausted,
    TokenlakeError,
    Unauthenticated,
    Unavailable,
)
from .lake import Lake
from . import mix

__all__ = [
    "AlreadyExists",
    "Batch",
    "Cancelled",
    "CursorMismatch",
    "Dataset",
    "FailedPrecondition",
    "IGNORE_INDEX",
    "Internal",
    "InvalidArgument",
    "LABELS",
    "Lake",
    "NotFound",
    "PermissionDenied",
    "PlanNotFound",
    "ResourceExhausted",
    "TokenlakeDataset",
    "TokenlakeError",
    "Unauthenticated",
    "Unavailable",
    "connect",
    "mix",
]
