"""The Python client against a real server. The Rust end-to-end test `serve::python_client_*`
starts the server and writes what the local `tokenlake stream` printed, then runs this file;
run alone, it skips."""

import json
import os

import numpy as np
import pytest

import tokenlake
from tokenlake import TokenlakeDataset

SERVER = os.environ.get("TOKENLAKE_TEST_SERVER")
pytestmark = pytest.mark.skipif(SERVER is None, reason="needs a server (run from the e2e tests)")


def expected():
    """The local stream's samples (micro-batch 2, one rank) as (index, tokens)."""
    with open(os.environ["TOKENLAKE_TEST_EXPECTED"], encoding="utf-8") as f:
        return [(s["index"], s["tokens"]) for s in map(json.loads, f)]


def dataset(**kw):
    args = dict(
        recipe_path=os.environ["TOKENLAKE_TEST_RECIPE"],
        lake=os.environ["TOKENLAKE_TEST_LAKE"],
        rank=0,
        world=1,
        micro_batch=2,
    )
    args.update(kw)
    return TokenlakeDataset(SERVER, **args)


def samples(ds, steps=None):
    out = []
    for i, batch in enumerate(ds.batches()):
        out.extend(zip(batch.indices, batch.tokens.tolist()))
        if steps is not None and i + 1 == steps:
            break
    return out


def test_resuming_from_a_state_dict_loses_and_repeats_nothing():
    want = expected()
    first = dataset()
    head = samples(first, steps=3)
    state = first.state_dict()
    assert state["steps"] == 3 and state["cursor"].startswith("tlc1-")

    resumed = dataset()
    resumed.load_state_dict(json.loads(json.dumps(state)))  # survives a JSON checkpoint
    tail = samples(resumed)
    assert head + tail == want
    assert len(want) > 6


def test_model_inputs_are_shifted_tokens_with_document_boundaries():
    want = dict(expected())
    ds = dataset(max_steps=2, labels="shifted")
    items = list(ds)
    assert len(items) == 2
    for item in items:
        ids, labels, cu = (np.asarray(item[k]) for k in ("input_ids", "labels", "cu_seqlens"))
        n, seq_len = ids.shape
        assert n == 2 and labels.shape == ids.shape
        assert cu[0] == 0 and cu[-1] == n * seq_len and np.all(np.diff(cu) > 0)
        # every sample starts a segment
        assert all(i * seq_len in set(cu.tolist()) for i in range(n))
    # the first item's rows are the first samples' tokens, shifted for the labels
    first = np.asarray(items[0]["input_ids"])
    tokens = np.array(want[0])
    assert first[0].tolist() == tokens[:-1].tolist()
    labels = np.asarray(items[0]["labels"])[0]
    trained = labels != -100
    assert np.array_equal(labels[trained], tokens[1:][trained])


def test_shared_memory_and_grpc_payloads_give_the_same_batches():
    over_shm = dataset(transport="shm")
    shm = samples(over_shm)
    assert over_shm.transport_in_use == "shm"
    over_grpc = dataset(transport="grpc")
    assert shm == samples(over_grpc) == expected()
    # resumed over shared memory from a cursor taken over gRPC
    head = dataset(transport="grpc")
    first = samples(head, steps=2)
    tail = dataset(transport="shm")
    tail.load_state_dict(head.state_dict())
    assert first + samples(tail) == expected()
    # model inputs filled straight from the ring equal those from gRPC payloads
    a = [np.asarray(item["labels"]) for item in dataset(transport="shm", max_steps=3, labels="shifted")]
    b = [np.asarray(item["labels"]) for item in dataset(transport="grpc", max_steps=3, labels="shifted")]
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == 3


def test_another_host_falls_back_to_grpc_or_is_refused(monkeypatch):
    import tokenlake.shm

    monkeypatch.setattr(tokenlake.shm, "host_identity", lambda: "another-boot/another-host")
    auto = dataset()
    with pytest.warns(UserWarning, match="shared memory is not available"):
        got = samples(auto)
    assert auto.transport_in_use == "grpc" and got == expected()
    with pytest.raises(tokenlake.shm.ShmUnavailable):
        next(dataset(transport="shm").batches())
    with pytest.raises(ValueError, match="transport"):
        dataset(transport="udp")


def test_a_cursor_of_another_plan_is_refused():
    ds = dataset(micro_batch=1)
    ds.load_state_dict({"cursor": "tlc1-0000000000000000-0000000000000000-1-0-0000", "steps": 0,
                        "rank": 0, "world": 1, "micro_batch": 1})
    with pytest.raises(tokenlake.CursorMismatch) as e:
        next(ds.batches())
    assert "cursor" in str(e.value)


def test_an_unknown_lake_is_not_found():
    ds = dataset(lake="no-such-lake")
    with pytest.raises(tokenlake.NotFound) as e:
        next(ds.batches())
    assert "no-such-lake" in str(e.value)
