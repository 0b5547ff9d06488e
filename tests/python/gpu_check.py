"""The Python half of tests/gpu-check.sh: one rank's batches through the shared-memory ring into
page-locked tensors and on to the GPU, checked on the device against the gRPC payload stream.

Usage: gpu_check.py SERVER RECIPE LAKE STEPS. Exits non-zero when any batch differs or when the
tensors were not page-locked (CUDA must be available here)."""

import sys
import time

import numpy as np
import torch

from tokenlake import TokenlakeDataset


def weighted_sum(ids: torch.Tensor) -> int:
    """sum(id * (i + 1)) over the flattened ids, in int64 (wrapping), where `ids` lives."""
    flat = ids.reshape(-1)
    weights = torch.arange(1, flat.numel() + 1, device=flat.device, dtype=torch.int64)
    return int((flat * weights).sum().item())


def main() -> int:
    server, recipe, lake, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if not torch.cuda.is_available():
        print("gpu_check.py: CUDA is not available to PyTorch", file=sys.stderr)
        return 1
    common = dict(recipe_path=recipe, lake=lake, rank=0, world=1, micro_batch=4, max_steps=steps)
    over_grpc = TokenlakeDataset(server, transport="grpc", pin_memory=False, **common)
    expected = [
        (weighted_sum(item["input_ids"]), weighted_sum(item["labels"])) for item in over_grpc
    ]
    over_shm = TokenlakeDataset(server, transport="shm", pin_memory=True, **common)
    stream = torch.cuda.Stream()
    got, pinned, started, moved = [], True, time.perf_counter(), 0
    for item in over_shm:
        pinned &= item["input_ids"].is_pinned() and item["labels"].is_pinned()
        with torch.cuda.stream(stream):
            ids = item["input_ids"].cuda(non_blocking=True)
            labels = item["labels"].cuda(non_blocking=True)
            moved += ids.numel() * 8 * 2
            got.append((weighted_sum(ids), weighted_sum(labels)))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    ok = got == expected and len(got) == steps and pinned and over_shm.transport_in_use == "shm"
    print(
        f"python: {len(got)} batches over {over_shm.transport_in_use} into pinned tensors "
        f"(pinned: {pinned}) and on to {torch.cuda.get_device_name()}: "
        f"{'equal' if got == expected else 'DIFFERENT'} to the gRPC stream on the device; "
        f"{moved / seconds / 1e9:.2f} GB/s of int64 inputs and labels end to end"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
