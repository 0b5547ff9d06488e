"""Python client of `tokenlake serve`.

`TokenlakeDataset` is an iterable dataset (a `torch.utils.data.IterableDataset` when torch is
installed) that yields one rank's micro-batches as `input_ids`, `labels` and `cu_seqlens`, and
carries its position in `state_dict()` / `load_state_dict()`: put the state in the training
checkpoint (or use torchdata's `StatefulDataLoader`) and a restarted job continues with the
next batch, with nothing lost or repeated. Lost connections and restarted servers are handled
the same way: the dataset asks again from the cursor after the last batch it yielded.
"""

from .dataset import Batch, TokenlakeDataset, connect

__all__ = ["Batch", "TokenlakeDataset", "connect"]
