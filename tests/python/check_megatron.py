"""Opens a tokenlake Megatron export with Megatron-Core's own IndexedDataset and checks that it
holds the expected documents' tokens, in order.

    python check_megatron.py PREFIX EXPECTED.json [PREFIX EXPECTED.json ...]

EXPECTED.json is a list of token-id lists (what the test read from the lake with Lance). Exits 0
when every document matches; prints what differs otherwise.
"""

import json
import sys
import warnings

warnings.filterwarnings("ignore")  # Megatron warns that Transformer Engine and Apex are absent

from megatron.core.datasets.indexed_dataset import IndexedDataset  # noqa: E402


def check(prefix: str, expected_path: str) -> int:
    with open(expected_path) as f:
        expected = json.load(f)
    dataset = IndexedDataset(prefix, multimodal=False, mmap=True)
    if len(dataset) != len(expected):
        print(f"{prefix}: {len(dataset)} sequences, expected {len(expected)}")
        return 1
    if list(dataset.document_indices) != list(range(len(expected) + 1)):
        print(f"{prefix}: document indices are not one document per sequence")
        return 1
    for i, want in enumerate(expected):
        got = dataset[i].tolist()
        if got != want:
            print(f"{prefix}: sequence {i} differs: {got[:16]}... against {want[:16]}...")
            return 1
        # Partial reads, as GPTDataset makes them, see the same tokens.
        if len(want) > 3 and dataset.get(i, offset=1, length=2).tolist() != want[1:3]:
            print(f"{prefix}: a partial read of sequence {i} differs")
            return 1
    print(f"{prefix}: {len(expected)} documents, {sum(map(len, expected))} tokens match")
    return 0


def main() -> int:
    # One interpreter for every pair: importing Megatron-Core takes seconds.
    pairs = sys.argv[1:]
    if not pairs or len(pairs) % 2:
        print(__doc__)
        return 2
    return max(check(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2))


if __name__ == "__main__":
    sys.exit(main())
