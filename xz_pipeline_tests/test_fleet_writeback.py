"""A shard's batched run carries the whole mirror job: after mirroring and reconciling its connections, it
plans (and, where asked, applies) write-back for each of them in turn, each into its own mirror file."""

from __future__ import annotations

import dagster as dg
import pytest

from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.definitions import defs
from xz_pipeline.fleet.inprocess import execute_request
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.fleet_support import shard_requests


def _api_writes(sb) -> int:
    """Writes to the records (token refreshes are POSTs too, but to the OAuth endpoints; a COQL query is a
    read sent by POST: the invoices' line items are read that way)."""
    received = sb.xero.received + sb.zoho.received
    return sum(r.method != "GET" and r.path.startswith(("/api.xro", "/crm/")) and not r.path.endswith("/coql")
               for r in received)  # fmt: skip


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    home = tmp_path_factory.mktemp("fleet-wb")
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("XZ_SHARD_SIZE", "10")
    try:
        with SandboxServer(size="tiny", connections=2, seed=11) as sb, dg.instance_for_test() as instance:
            sb.write_connections_file(home / "connections.toml")
            names = [sb.connection_name(i) for i in range(2)]
            (request,) = shard_requests(instance, names)
            writes = _api_writes(sb)
            result = execute_request(defs, request, instance)
            after = _api_writes(sb)
            yield {"names": names, "result": result, "mirror": MirrorResource(path=str(home / "mirror")),
                   "writes": after - writes, "runs": instance.get_runs()}  # fmt: skip
    finally:
        mp.undo()


def test_one_run_plans_write_back_for_each_connection_in_its_own_file(batch):
    result, names, mirror = batch["result"], batch["names"], batch["mirror"]
    assert result.success and len(batch["runs"]) == 1
    planned = {}
    for name in names:
        with mirror.store(name).read() as con:
            planned[name] = con.execute(
                "select distinct connection, count(*) over () from writeback.plan"
            ).fetchall()
    for name in names:
        (row,) = planned[name]
        assert row[0] == name and row[1] > 0  # the tiny world always has corrections to plan
    mats = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            mats.setdefault(mat.asset_key.to_user_string(), set()).add(mat.partition)
    assert mats["writeback_plan"] == set(names) and mats["writeback_apply"] == set(names)
    assert batch["writes"] == 0  # a scheduled batch without `apply` (nor auto_apply) writes nothing remote
