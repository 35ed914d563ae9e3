"""A targeted run that meets the mirror held open by another process (a reader outside the pipeline's
lock) waits its turn, bounded, says so in its log, and succeeds: never StoreBusy for a short hold."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
import pytest

from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.definitions import defs
from xz_pipeline.realtime.inbox import Inbox, InboxEvent, iso
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.realtime.support import CONNECTION, use_sandbox_env
from xz_pipeline_tests.realtime.test_coalesce import DEFS

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


@pytest.fixture
def world(monkeypatch):
    with SandboxServer(seed=11, size="demo") as sb, dg.instance_for_test() as inst:
        use_sandbox_env(monkeypatch, sb)
        monkeypatch.setenv("XZ_WRITEBACK", "off")
        inst.add_dynamic_partitions("connection", [CONNECTION])
        yield sb, inst


def _run(inst, cursor, sb, n):
    contact = sb.xero.dump(sb.tenant_ids[0], "Contacts")[n]["ContactID"]
    Inbox().add([InboxEvent(f"e{n}", "xero", CONNECTION, sb.tenant_ids[0], "xero_contacts", contact, False,
                            iso(datetime.now(UTC)))])  # fmt: skip
    with dg.build_sensor_context(instance_ref=inst.get_ref(), definitions=DEFS, cursor=cursor,
                                 resources=defs.resources) as ctx:  # fmt: skip
        tick = DEFS.resolve_sensor_def("inbox_sensor").evaluate_tick(ctx)
    (request,) = tick.run_requests
    job = DEFS.resolve_job_def("realtime").get_subset(
        asset_selection=set(request.asset_selection), asset_check_selection=set(request.asset_check_keys)
    )
    result = job.execute_in_process(run_config=request.run_config, instance=inst, tags=request.tags,
                                    partition_key=request.partition_key, raise_on_error=False)  # fmt: skip
    return tick.cursor, result


def test_a_targeted_run_waits_for_a_reader_and_says_so(world):
    sb, inst = world
    cursor, first = _run(inst, None, sb, 0)  # creates the mirror
    assert first.success
    path = MirrorResource().store(CONNECTION).path
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        _, second = _run(inst, cursor, sb, 1)
    finally:
        holder.wait(30)
    assert second.success, "a reader holding the mirror for 3 s must not fail a targeted run"
    messages = [e.user_message for e in inst.all_logs(second.run_id)]
    assert any("waiting up to 30s for the mirror" in m and "has it open" in m for m in messages)
    assert any(m.startswith("got the mirror after") for m in messages)
    assert not any("StoreBusy" in m for m in messages)
