"""The lake from Python in object storage: `Lake("s3://…", storage_options=…)` and an
in-process `Dataset` over it read as a local copy of the same data does. The Rust end-to-end
test `s3::needs_s3s_fs::needs_python_package::*` ingests the sample into an S3 lake on a
loopback S3 server and into a local lake, then runs this file against the installed package
with no AWS settings in its environment, so the storage options are all it has; run alone, it
skips."""

import json
import os

import pytest

import tokenlake
from tokenlake import _native

S3 = os.environ.get("TOKENLAKE_TEST_S3_LAKE")
LOCAL = os.environ.get("TOKENLAKE_TEST_LAKE_PATH")
OPTIONS = json.loads(os.environ.get("TOKENLAKE_TEST_S3_OPTIONS", "{}"))
RECIPE = os.environ.get("TOKENLAKE_TEST_RECIPE", "")
pytestmark = pytest.mark.skipif(
    S3 is None or LOCAL is None, reason="needs an S3 lake and its local copy (run from the e2e tests)"
)


def lakes():
    return tokenlake.Lake(S3, storage_options=OPTIONS), tokenlake.Lake(LOCAL)


def test_an_s3_lake_reads_as_its_local_copy():
    s3, local = lakes()
    assert [v["rows"] for v in s3.versions()] == [v["rows"] for v in local.versions()]
    assert s3.tags == local.tags == {"quickstart": 1}
    there, here = s3.describe(), local.describe()
    there.pop("lake", None)
    here.pop("lake", None)
    assert there == here
    sql = "SELECT source, count(*) AS docs, sum(n_tokens) AS tokens FROM documents GROUP BY source ORDER BY source"
    assert s3.query(sql).to_pylist() == local.query(sql).to_pylist()
    assert len(s3.query(sql).to_pylist()) > 1


def test_tags_are_written_to_the_s3_lake():
    s3, _ = lakes()
    s3.tag("from-python", 1)
    assert tokenlake.Lake(S3, storage_options=OPTIONS).tags["from-python"] == 1
    s3.delete_tag("from-python")
    assert "from-python" not in s3.tags


def test_wrong_credentials_are_a_clear_error():
    bad = tokenlake.Lake(S3, storage_options={**OPTIONS, "secret_access_key": "not-the-secret"})
    with pytest.raises(tokenlake.TokenlakeError) as e:
        bad.versions()
    assert S3 in str(e.value) or "s3" in str(e.value).lower()


def test_an_in_process_dataset_streams_the_s3_lake_as_the_local_one(tmp_path, monkeypatch):
    # A remote lake's token cache goes to TOKENLAKE_CACHE_DIR.
    monkeypatch.setenv("TOKENLAKE_CACHE_DIR", str(tmp_path))

    def first_batches(lake, **kw):
        ds = tokenlake.Dataset(lake=lake, recipe_path=RECIPE, dp_rank=0, dp_world=1, micro_batch=2, **kw)
        out = []
        for i, b in enumerate(ds.batches()):
            out.append([f"{_native.xxh3_64(row.tobytes()):016x}" for row in b.tokens])
            if i == 4:
                break
        return out

    got = first_batches(S3, storage_options=OPTIONS)
    assert len(got) == 5
    assert got == first_batches(LOCAL)
