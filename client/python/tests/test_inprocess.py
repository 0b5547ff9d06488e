"""In-process datasets (`lake=`, no server) against served ones and the command line, and the
lake from Python. The Rust end-to-end test `python_package::needs_python_package::
in_process_datasets_*` builds the sample lake, starts a server over it and writes what
`tokenlake stream --checksums` printed, then runs this file against the installed package;
run alone, it skips."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tokenlake
from tokenlake import _native

LAKE = os.environ.get("TOKENLAKE_TEST_LAKE_PATH")
SERVER = os.environ.get("TOKENLAKE_TEST_SERVER")
pytestmark = pytest.mark.skipif(
    LAKE is None or SERVER is None, reason="needs the sample lake and a server (run from the e2e tests)"
)
RECIPE = os.environ.get("TOKENLAKE_TEST_RECIPE", "")


def checksums():
    """`tokenlake stream --checksums --micro-batch 2`: (index, component, xxh3 of the tokens)."""
    with open(os.environ["TOKENLAKE_TEST_CHECKSUMS"], encoding="utf-8") as f:
        return [(int(i), c, h) for i, c, h in (line.split("\t") for line in f.read().splitlines())]


def local(**kw):
    args = dict(lake=LAKE, recipe_path=RECIPE, dp_rank=0, dp_world=1, micro_batch=2)
    args.update(kw)
    return tokenlake.Dataset(**args)


def served(**kw):
    args = dict(lake="sample", recipe_path=RECIPE, dp_rank=0, dp_world=1, micro_batch=2, transport="grpc")
    args.update(kw)
    return tokenlake.Dataset(SERVER, **args)


def sums(batches, steps=None):
    out = []
    for i, b in enumerate(batches):
        for row, (index, component) in enumerate(zip(b.indices, b.components)):
            out.append((index, component, f"{_native.xxh3_64(b.tokens[row].tobytes()):016x}"))
        if steps is not None and i + 1 == steps:
            break
    return out


def interleave(streams):
    """The global order of the ranks' samples: step by step, rank by rank."""
    out, iters = [], [iter(s) for s in streams]
    while True:
        step = [next(it, None) for it in iters]
        if any(b is None for b in step):
            assert all(b is None for b in step), "ranks ended at different steps"
            return out
        for b in step:
            out.extend(sums([b]))


def test_in_process_equals_the_command_and_the_server():
    want = checksums()
    assert len(want) > 100
    assert sums(local().batches()) == want
    assert sums(served().batches()) == want


def test_a_served_plan_summary_is_the_servers_and_equals_the_local_one():
    here, there = local().plan_summary(), served().plan_summary()
    assert there["plan_id"] == here["plan_id"]
    assert there["samples"] == here["samples"] == len(checksums())
    assert [s["name"] for s in there["stages"]] == [s["name"] for s in here["stages"]]
    with pytest.raises(tokenlake.NotFound):
        tokenlake.Dataset(SERVER, lake="no-such-lake", recipe_path=RECIPE, dp_rank=0, dp_world=1).plan_summary()


def test_ranks_of_another_world_size_give_the_same_global_order():
    want = checksums()
    # Two data-parallel ranks of micro-batch 1 read the same global order as one of 2.
    ranks = [local(dp_rank=r, dp_world=2, micro_batch=1).batches() for r in range(2)]
    assert interleave(ranks) == want
    ranks = [served(dp_rank=r, dp_world=2, micro_batch=1).batches() for r in range(2)]
    assert interleave(ranks) == want


def test_a_state_resumes_in_process_or_served_with_another_world_size():
    want = checksums()
    first = local()
    head = sums(first.batches(), steps=5)
    state = json.loads(json.dumps(first.state_dict()))  # survives a JSON checkpoint
    assert state["steps"] == 5 and state["cursor"].startswith("tlc1-")
    # Served, same world: the rest.
    rest = served()
    rest.load_state_dict(state)
    assert head + sums(rest.batches()) == want
    # In process, two ranks of micro-batch 1 (the same global batch).
    ranks = []
    for r in range(2):
        ds = local(dp_rank=r, dp_world=2, micro_batch=1)
        ds.load_state_dict(state)
        ranks.append(ds.batches())
    assert head + interleave(ranks) == want
    # Another global batch would split a step: refused, saying why.
    with pytest.raises(ValueError, match="micro_batch × dp_world"):
        local(micro_batch=3).load_state_dict(state)


def test_model_inputs_follow_the_label_convention_asked_for():
    batch = next(local(max_steps=1).batches())
    shifted = next(iter(local(max_steps=1, labels="shifted")))
    unshifted = next(iter(local(max_steps=1)))  # the default
    tokens = batch.tokens.astype(np.int64)
    seq_len = tokens.shape[1] - 1
    for item in (shifted, unshifted):
        assert np.array_equal(np.asarray(item["input_ids"]), tokens[:, :seq_len])
    s, u = np.asarray(shifted["labels"]), np.asarray(unshifted["labels"])
    for i, filled in enumerate(batch.filled):
        # shifted: position t's label is token t+1; unshifted: token t (the model shifts)
        trained = s[i] != tokenlake.IGNORE_INDEX
        assert np.array_equal(s[i][trained], tokens[i, 1:][trained])
        assert trained.sum() == min(filled - 1, seq_len)
        kept = u[i] != tokenlake.IGNORE_INDEX
        assert np.array_equal(u[i][kept], tokens[i, :seq_len][kept])
        assert kept.sum() == min(filled, seq_len)
        # the same targets either way: HF's shift of the unshifted labels is the shifted ones
        assert np.array_equal(u[i][1:], s[i][:-1])
    with pytest.raises(ValueError, match="labels must be one of"):
        local(labels="next")


def test_position_ids_restart_at_each_document_and_match_cu_seqlens():
    for item in local(max_steps=4):
        ids, pos, cu = (np.asarray(item[k]) for k in ("input_ids", "position_ids", "cu_seqlens"))
        n, seq_len = ids.shape
        flat = pos.reshape(-1)
        starts = cu[:-1].tolist()
        assert np.all(flat[starts] == 0)
        assert np.count_nonzero(flat == 0) == len(starts)
        assert item["max_seqlen"] == int(np.diff(cu).max())
        spans = np.asarray(item["doc_spans"])
        assert spans.shape[1] == 4 and len(item["doc_ids"]) == len(spans)
        # every document piece starts a segment of its sample
        for sample, position, length, _ in spans.tolist():
            if position < seq_len:
                assert pos[sample, position] == 0 and length > 0


def test_errors_are_tokenlake_types_with_the_message():
    foreign = {"cursor": "tlc1-0000000000000000-0000000000000000-1-0-0000", "steps": 0,
               "dp_rank": 0, "dp_world": 1, "micro_batch": 2}
    for make in (local, served):
        ds = make()
        ds.load_state_dict(foreign)
        with pytest.raises(tokenlake.CursorMismatch):
            next(ds.batches())
    with pytest.raises(tokenlake.NotFound, match="no-such-lake"):
        next(served(lake="no-such-lake").batches())
    with pytest.raises(tokenlake.NotFound, match="no lake at"):
        next(local(lake=os.path.join(LAKE, "no-such-lake")).batches())
    with pytest.raises(tokenlake.PlanNotFound):
        next(tokenlake.Dataset(SERVER, plan_id="0123456789abcdef", dp_rank=0, dp_world=1).batches())
    with pytest.raises(tokenlake.InvalidArgument, match="recipe"):
        next(local(recipe_path=None, recipe="seq_len = 'long'").batches())


def cli(*args):
    """The installed `tokenlake` command (the package's console script)."""
    command = os.path.join(os.path.dirname(sys.executable), "tokenlake")
    out = subprocess.run([command, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_lake_query_equals_the_command():
    lake = tokenlake.Lake(LAKE)
    sql = ("SELECT source, count(*) AS docs, sum(n_tokens) AS tokens, min(doc_id) AS first "
           "FROM documents GROUP BY source ORDER BY source")
    table = lake.query(sql, version="quickstart")
    want = [json.loads(line) for line in cli("query", LAKE, sql, "--version", "quickstart", "--format", "json").splitlines()]
    assert table.to_pylist() == want and len(want) >= 3
    with pytest.warns(UserWarning, match="more than 2 rows"):
        assert lake.query("SELECT doc_id FROM documents", limit=2).num_rows == 2
    with pytest.raises(tokenlake.InvalidArgument, match="SQL"):
        lake.query("SELECT no_such_column FROM documents")
    with pytest.raises(tokenlake.InvalidArgument):
        lake.query("DELETE FROM documents")


def test_lake_versions_tags_describe_and_samples():
    lake = tokenlake.Lake(LAKE)
    versions = lake.versions()
    assert json.loads(cli("versions", LAKE, "--json")) == versions
    assert lake.tags["quickstart"] == versions[0]["version"]
    described = lake.describe("quickstart")
    assert described == json.loads(cli("describe", LAKE, "--version", "quickstart", "--json"))
    a = lake.sample("source = 'en'", n=5, seed=7, columns=["doc_id", "source"])
    b = lake.sample("source = 'en'", n=5, seed=7, columns=["doc_id", "source"])
    assert a.equals(b) and a.num_rows == 5 and set(a.column("source").to_pylist()) == {"en"}
    assert int(a.schema.metadata[b"tokenlake.matched"]) > 5
    with pytest.raises(tokenlake.NotFound):
        lake.describe("no-such-tag")
    # The documents table for Lance's own readers, at the version asked for.
    lance = pytest.importorskip("lance")
    dataset = lake.to_lance("quickstart")
    assert isinstance(dataset, lance.LanceDataset)
    assert dataset.version == lake.tags["quickstart"]
    assert dataset.count_rows() == versions[0]["rows"]
    assert dataset.count_rows(filter="source = 'en'") == int(a.schema.metadata[b"tokenlake.matched"])


def test_label_import_from_a_frame_shows_in_a_recipe_filter(tmp_path):
    pandas = pytest.importorskip("pandas")
    lake_dir = tmp_path / "lake"
    # a copy of the sample lake, so the shared one keeps its versions
    import shutil

    shutil.copytree(LAKE, lake_dir, ignore=shutil.ignore_patterns("cache", "token-stores"))
    lake = tokenlake.Lake(lake_dir)
    docs = lake.query("SELECT doc_id, source FROM documents ORDER BY doc_id").to_pandas()
    scores = pandas.DataFrame({"doc_id": docs.doc_id, "edu_score": np.where(docs.source == "en", 0.9, 0.1)})
    before = lake.versions()[-1]["version"]
    report = lake.label_import(scores)
    assert report["version"] == before + 1 and report["labelled_docs"] == len(docs)
    # all or nothing: a column that exists is refused and nothing is committed
    with pytest.raises(tokenlake.InvalidArgument, match="already exists"):
        lake.label_import(scores)
    assert lake.versions()[-1]["version"] == before + 1
    recipe = f"""
lake = "{lake_dir}"
seq_len = 64
seed = 1
eos_token = 2
pad_token = 0
[components.edu]
filter = "edu_score > 0.5"
packing = "concat"
[[stages]]
name = "one"
tokens = 20000
weights = {{ edu = 1.0 }}
"""
    summary = lake.plan(recipe)
    en_tokens = lake.query("SELECT sum(n_tokens) AS t FROM documents WHERE source = 'en'").column("t")[0].as_py()
    [component] = summary["components"]
    assert component["name"] == "edu" and component["tokens"] == en_tokens
    ds = tokenlake.Dataset(lake=str(lake_dir), recipe=recipe, dp_rank=0, dp_world=1, micro_batch=4, max_steps=2)
    assert {c for b in ds.batches() for c in b.components} == {"edu"}


def test_a_script_that_stops_iterating_exits_cleanly():
    # Streams left open at exit are closed before gRPC's threads and modules go (they used to
    # hang in channel.close() or print tracebacks).
    script = f"""
import tokenlake
recipe = {RECIPE!r}
for transport in ("grpc", "shm"):
    ds = tokenlake.Dataset({SERVER!r}, lake="sample", recipe_path=recipe, micro_batch=2, transport=transport)
    it = iter(ds)
    next(it)
    next(ds.batches())
local = tokenlake.Dataset(lake={LAKE!r}, recipe_path=recipe, micro_batch=2)
next(iter(local))
print("stopped early")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "stopped early", out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr


def test_model_parallelism_without_a_data_parallel_rank_is_warned_about(monkeypatch):
    import types

    fake = types.ModuleType("megatron.core.parallel_state")
    fake.model_parallel_is_initialized = lambda: True
    fake.get_tensor_model_parallel_world_size = lambda: 4
    fake.get_pipeline_model_parallel_world_size = lambda: 2
    monkeypatch.setitem(sys.modules, "megatron.core.parallel_state", fake)
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "16")
    with pytest.warns(UserWarning, match="8 ranks per model replica"):
        ds = tokenlake.Dataset(lake=LAKE, recipe_path=RECIPE)
    assert (ds.dp_rank, ds.dp_world) == (5, 16)
    # told the data-parallel rank, it says nothing
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenlake.Dataset(lake=LAKE, recipe_path=RECIPE, dp_rank=1, dp_world=2)


def test_mix_from_python_equals_the_command(tmp_path):
    import math

    names = ["code", "en", "zh"]
    runs = tokenlake.mix.design([0.2, 0.45, 0.35], runs=16, concentration=4, seed=3)
    assert runs == tokenlake.mix.design([0.2, 0.45, 0.35], runs=16, concentration=4, seed=3)
    assert all(abs(sum(r) - 1) < 1e-12 for r in runs)
    losses = [2 + math.exp(-0.5 * r[0] + 0.9 * r[1] + 0.6 * r[2]) for r in runs]
    csv = tmp_path / "runs.csv"
    rows = [f"{i + 1},run-{i + 1:03}.toml,{','.join(repr(w) for w in r)},{l!r}" for i, (r, l) in enumerate(zip(runs, losses))]
    csv.write_text("run,recipe," + ",".join(names) + ",loss\n" + "\n".join(rows) + "\n")
    fit = tokenlake.mix.fit(names, runs, losses)
    want = json.loads(cli("mix", "fit", str(csv), "--json"))
    assert fit["params"] == pytest.approx(want["params"], rel=1e-9)
    assert fit["cv_relative_error"] < 0.001
    # Unique tokens from the plan of the shipped recipe: code may be seen four times at most.
    with open(RECIPE, encoding="utf-8") as f:
        summary = tokenlake.Lake(LAKE).plan(f.read())
    unique = {c["name"]: c["tokens"] for c in summary["components"]}
    best = tokenlake.mix.propose(fit, tokens=500_000, unique_tokens=unique)
    assert abs(sum(best["weights"]) - 1) < 1e-9
    code = names.index("code")
    assert best["epochs"][code] <= 4 + 1e-6 and "epochs" in best["bounds"][code][2]
    with pytest.raises(tokenlake.InvalidArgument, match="needs at least"):
        tokenlake.mix.fit(names, runs[:2], losses[:2])
    # Tokens other stages take of code count towards its four epochs.
    shared = tokenlake.mix.propose(fit, tokens=500_000, unique_tokens=unique, other_tokens={"code": unique["code"]})
    assert shared["epochs"][code] <= 4 + 1e-6
    assert shared["weights"][code] < best["weights"][code]
    assert "of them in other stages" in shared["bounds"][code][2]


def test_ziya2_mix_from_python_equals_the_command(tmp_path):
    names = ["code", "en", "zh"]
    attributes = {"code": (0.6, 0.3, 0.1), "en": (0.8, 0.7, 0.4), "zh": (0.5, 0.4, 0.6)}
    runs = tokenlake.mix.design([0.2, 0.45, 0.35], runs=12, concentration=4, seed=5, kind="space-filling")
    assert runs == tokenlake.mix.design([0.2, 0.45, 0.35], runs=12, concentration=4, seed=5, kind="space-filling")
    assert runs != tokenlake.mix.design([0.2, 0.45, 0.35], runs=12, concentration=4, seed=5)
    tokens = [[100_000, 300_000][i % 2] for i in range(12)]

    def loss(r, t):
        d = sum(w * t * 1e-4 * (a[0] + a[1] + a[2]) for w, a in zip(r, (attributes[n] for n in names))) + 1
        return d**-0.5 + 2

    losses = [loss(r, t) for r, t in zip(runs, tokens)]
    fit = tokenlake.mix.fit(names, runs, losses, law="ziya2", tokens=tokens, attributes=attributes)
    # The command reads the same runs from runs.csv and the attributes from design.json.
    rows = [f"{i + 1},{t},{','.join(repr(w) for w in r)},{l!r}" for i, (r, t, l) in enumerate(zip(runs, tokens, losses))]
    (tmp_path / "runs.csv").write_text("run,tokens," + ",".join(names) + ",loss\n" + "\n".join(rows) + "\n")
    design = {"components": [{"name": n, "ch": a[0], "ra": a[1], "sim": a[2]} for n, a in attributes.items()]}
    (tmp_path / "design.json").write_text(json.dumps(design))
    want = json.loads(cli("mix", "fit", str(tmp_path / "runs.csv"), "--law", "ziya2", "--json"))
    assert fit["params"] == pytest.approx(want["params"], rel=1e-9)
    # The same files read from Python: design.json beside runs.csv gives the attributes.
    read = tokenlake.mix.read_runs(tmp_path / "runs.csv")
    assert read["components"] == names and read["tokens"] == tokens
    assert read["attributes"] == [list(attributes[n]) for n in names]
    assert tokenlake.mix.fit(**read, law="ziya2")["params"] == pytest.approx(want["params"], rel=1e-9)
    assert "attributes" not in tokenlake.mix.read_runs(tmp_path / "runs.csv", design=None)
    assert fit["cv_relative_error"] < 0.001
    with pytest.raises(tokenlake.InvalidArgument, match="CH, RA and SIM"):
        tokenlake.mix.fit(names, runs, losses, law="ziya2", tokens=tokens)
    with pytest.raises(tokenlake.InvalidArgument, match="no entry for code, zh"):
        tokenlake.mix.fit(names, runs, losses, law="ziya2", tokens=tokens, attributes={"en": (1, 1, 1)})
