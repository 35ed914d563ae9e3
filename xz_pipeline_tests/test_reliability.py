"""`make bench-reliability` part (a) in small: `xz sync --apply` (a subprocess) is SIGKILLed right after
its second remote write on the tiny world, rerun until a run writes nothing, and the sandbox then holds
exactly what a run never killed leaves there: nothing missing, nothing twice, no call left unsettled."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# Real processes end to end (signals, kills, daemons, whole pairs): `make test-integration` runs these.
pytestmark = pytest.mark.end_to_end

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_reliability.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_reliability", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_killed_after_a_write_then_rerun_leaves_what_an_unkilled_run_leaves(bench, tmp_path):
    reference, first, runs = bench.reference_run("tiny", 11, str(tmp_path))
    assert first >= 3 and runs <= 3  # the unkilled sync wrote; a rerun after it had nothing left to do
    records, values = reference
    assert any(k.startswith("zoho.contact|") for k in records) and any(v == "linked" for v in values.values())

    row = bench.kill_point("tiny", 11, 2, reference, str(tmp_path))

    assert row["killed"] == "yes", row  # SIGKILL (exit -9) mid-run, after its second write
    assert set(row["rerun exits"].split(",")) == {"0"} and row["reruns"] <= 3, row
    assert row["missing"] == 0 and row["duplicated"] == 0 and row["wrong"] == 0, row
    assert row["unsettled calls"] == 0, row
    assert row["writes"] > 2  # the reruns finished what the killed run had not done


def test_the_kill_hook_counts_only_accepted_writes(bench):
    from types import SimpleNamespace as R

    assert bench.is_write("xero", R(method="PUT", path="/api.xro/2.0/Invoices", status=200))
    assert not bench.is_write("xero", R(method="GET", path="/api.xro/2.0/Invoices", status=200))
    assert not bench.is_write("zoho", R(method="POST", path="/crm/v8/coql", status=200))
    assert not bench.is_write("zoho", R(method="POST", path="/crm/v8/Accounts/upsert", status=429))
    assert bench.is_write("zoho", R(method="POST", path="/crm/v8/__composite_requests", status=200))
