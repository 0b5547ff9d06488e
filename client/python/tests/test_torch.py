"""The dataset under PyTorch's conventions: DataLoader workers, torchdata's StatefulDataLoader
checkpoints, and a Hugging Face model's loss. The Rust end-to-end test
`python_package::needs_torch::*` runs this file with the package installed beside torch,
torchdata and transformers; run alone, it skips."""

import os

import numpy as np
import pytest

LAKE = os.environ.get("TOKENLAKE_TEST_LAKE_PATH")
pytestmark = pytest.mark.skipif(LAKE is None, reason="needs the sample lake (run from the e2e tests)")
RECIPE = os.environ.get("TOKENLAKE_TEST_RECIPE", "")

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

import tokenlake  # noqa: E402


def dataset(**kw):
    args = dict(lake=LAKE, recipe_path=RECIPE, dp_rank=0, dp_world=1, micro_batch=2, max_steps=23)
    args.update(kw)
    return tokenlake.Dataset(**args)


def rows(items):
    """Each item's input rows, as comparable tuples."""
    return [tuple(map(tuple, np.asarray(item["input_ids"]).tolist())) for item in items]


def test_workers_deliver_exactly_the_single_process_order():
    want = rows(dataset())
    assert len(want) == 23
    for workers in (1, 2, 3):
        loader = DataLoader(dataset(), batch_size=None, num_workers=workers)
        assert rows(loader) == want, workers


def test_a_dataset_iterated_here_then_forked_into_workers_continues():
    # The parent's plan and threads do not exist in a forked worker: each opens its own.
    want = rows(dataset())
    ds = dataset()
    first = rows([next(iter(ds))])
    assert first == want[:1]
    assert first + rows(DataLoader(ds, batch_size=None, num_workers=2)) == want


def test_the_data_parallel_group_gives_rank_and_world(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=0, world_size=1)
    try:
        group = dist.new_group([0])
        ds = dataset(dp_rank=None, dp_world=None, dp_group=group)
        assert (ds.dp_rank, ds.dp_world) == (0, 1)
        with pytest.raises(ValueError, match="not both"):
            dataset(dp_group=group)
    finally:
        dist.destroy_process_group()


def test_a_loader_with_a_batch_size_is_refused_saying_what_to_write():
    with pytest.raises(ValueError, match="batch_size=None"):
        next(iter(DataLoader(dataset())))


def test_stateful_loader_resumes_exactly_with_two_workers():
    from torchdata.stateful_dataloader import StatefulDataLoader

    want = rows(dataset())
    for k in (0, 1, 4, 7, 22):
        loader = StatefulDataLoader(dataset(), batch_size=None, num_workers=2)
        head = []
        it = iter(loader)
        for _ in range(k):
            head.extend(rows([next(it)]))
        state = loader.state_dict()
        del it, loader
        resumed = StatefulDataLoader(dataset(), batch_size=None, num_workers=2)
        resumed.load_state_dict(state)
        assert head + rows(resumed) == want, k


def test_a_loader_state_resumes_with_another_worker_count_or_world_size():
    from torchdata.stateful_dataloader import StatefulDataLoader

    want = rows(dataset(max_steps=0))
    loader = StatefulDataLoader(dataset(max_steps=0), batch_size=None, num_workers=2)
    it = iter(loader)
    head = rows([next(it) for _ in range(5)])
    state = loader.state_dict()
    del it, loader
    # three workers
    ds = dataset(max_steps=0)
    ds.load_loader_state_dict(state)
    assert head + rows(DataLoader(ds, batch_size=None, num_workers=3)) == want
    # two data-parallel ranks of micro-batch 1, no workers: the same global order
    ranks = []
    for r in range(2):
        ds = dataset(max_steps=0, dp_rank=r, dp_world=2, micro_batch=1)
        ds.load_loader_state_dict(state)
        ranks.append(rows(ds))
    got = [row for a, b in zip(*ranks) for row in a + b]
    assert got == [row for step in want[5:] for row in step]


def test_hf_labels_give_the_next_token_loss():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=32000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    item = next(iter(dataset(max_steps=1, labels="unshifted")))
    ids = item["input_ids"][:, :256]
    labels = item["labels"][:, :256]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        hf = model(input_ids=ids, labels=labels).loss
    # the intended objective by hand: position t predicts token t+1, padding not trained
    target = ids[:, 1:]
    mask = labels[:, 1:] != tokenlake.IGNORE_INDEX
    ce = torch.nn.functional.cross_entropy(logits[:, :-1][mask].float(), target[mask])
    assert torch.allclose(hf, ce, rtol=1e-5), (hf, ce)
    # shifted labels given to an HF model make it learn the token after next: the mistake the
    # `labels=` convention exists to prevent
    shifted = next(iter(dataset(max_steps=1, labels="shifted")))["labels"][:, :256]
    with torch.no_grad():
        wrong = model(input_ids=ids, labels=shifted).loss
    after_next = item["input_ids"][:, 2:257]  # position t's target: token t + 2
    mask = shifted[:, 1:] != tokenlake.IGNORE_INDEX
    assert torch.equal(shifted[:, 1:][mask], after_next[mask])
    ce2 = torch.nn.functional.cross_entropy(logits[:, :-1][mask].float(), after_next[mask])
    assert torch.allclose(wrong, ce2, rtol=1e-5), (wrong, ce2)
