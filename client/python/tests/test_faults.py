"""The Python client against a server whose stream producers fail every few batches (a fault a
debug build injects). The Rust end-to-end test `adversarial::needs_python::*` starts that server
and runs this file; run alone, or against an ordinary server, it skips."""

import os

import pytest

from test_dataset import dataset, expected, samples

pytestmark = pytest.mark.skipif(
    os.environ.get("TOKENLAKE_TEST_FAULTS") is None,
    reason="needs a server that injects faults (run from the e2e tests)",
)


@pytest.mark.parametrize("transport", ["grpc", "shm"])
def test_a_failing_producer_costs_reconnections_and_no_batch(transport):
    ds = dataset(transport=transport)
    # An ended stream is only the server's end-of-stream message: each failure is resumed
    # from the cursor, so every sample arrives once, in order.
    assert samples(ds) == expected()
    assert ds.transport_in_use == transport
    assert ds.reconnects >= 2, ds.reconnects
