"""One batched run (a shard's partition range) mirrors several connections: each into its own mirror
file, each tenant's API read once per entity, each connection's materialization on its own partition;
a connection that fails leaves the others mirrored."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pytest

from xz_pipeline.core import store as store_module
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.definitions import defs
from xz_pipeline.fleet.inprocess import execute_request
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.fleet_support import shard_requests

VENDORS = ("xero", "zoho")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    home = tmp_path_factory.mktemp("fleet")
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("XZ_SHARD_SIZE", "10")
    try:
        with SandboxServer(size="tiny", connections=3) as sb, dg.instance_for_test() as instance:
            path = sb.write_connections_file(home / "connections.toml")
            # sandbox-2's Xero grant is revoked: its Xero steps fail, its Zoho steps and the others run
            path.write_text(path.read_text().replace(sb.env(1)["XERO_REFRESH_TOKEN"], "revoked-grant"))
            names = [sb.connection_name(i) for i in range(3)]
            (request,) = shard_requests(instance, names)
            extract = [k for k in request.asset_selection if k.path[0].split("_")[0] in VENDORS]
            request = request.with_replaced_attrs(
                asset_selection=[k for k in extract if k.path[0] != "xero_projects"], asset_check_keys=[]
            )
            xero_seen, zoho_seen = len(sb.xero.received), len(sb.zoho.received)
            # Dagster's public per-partition metadata call reads every dynamic partition (three reads a call,
            # one call a connection and step): the batched steps must not make it.
            public_calls = []
            real = dg.AssetExecutionContext.add_asset_metadata
            mp.setattr(dg.AssetExecutionContext, "add_asset_metadata",
                       lambda self, *a, **k: public_calls.append(k) or real(self, *a, **k))  # fmt: skip
            # Each connection's session in a batched step attaches its mirror (`core/attached.py`).
            openings = []
            real_open = store_module.connect_writing
            mp.setattr(store_module, "connect_writing",
                       lambda *a, **k: openings.append(k.get("attach", False)) or real_open(*a, **k))  # fmt: skip
            result = execute_request(defs, request, instance)
            yield {
                "sb": sb,
                "names": names,
                "mirror": MirrorResource(path=str(home / "mirror")),
                "result": result,
                "public_metadata_calls": public_calls,
                "attached_openings": openings,
                "runs": instance.get_runs(),
                "xero": sb.xero.received[xero_seen:],
                "zoho": sb.zoho.received[zoho_seen:],
            }
    finally:
        mp.undo()


def _materialized(result) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            meta = {k: v.value for k, v in mat.metadata.items()}
            out.setdefault(mat.asset_key.to_user_string(), {})[mat.partition] = meta
    return out


def test_one_run_mirrors_each_connection_into_its_own_file(batch):
    sb, names = batch["sb"], batch["names"]
    assert len(batch["runs"]) == 1
    mirror = batch["mirror"]
    for i in (0, 2):
        tenant, org = sb.tenant_ids[i], sb.org_ids[i]
        with mirror.store(names[i]).read() as con:
            invoices = con.execute(
                "select distinct connection, count(*) over () from xero.invoices"
            ).fetchall()
            deals = {r[0] for r in con.execute("select deal_id from zoho.deals").fetchall()}
        assert invoices == [(names[i], len(sb.xero.books[tenant].records["Invoices"]))]
        assert deals == set(sb.zoho.orgs[org].records["Deals"])
    with mirror.store(names[1]).read() as con:  # Xero failed for it, its Zoho side is mirrored
        assert con.execute("select count(*) from zoho.deals").fetchone()[0] > 0
        tables = {r[0] for r in con.execute("select table_schema from information_schema.tables").fetchall()}
        assert "xero" not in tables or con.execute("select count(*) from xero.invoices").fetchone()[0] == 0


def test_each_tenant_is_read_by_its_own_connection_only(batch):
    sb = batch["sb"]
    xero = Counter(r.tenant_id for r in batch["xero"] if r.path.startswith("/api.xro"))
    assert set(xero) == {sb.tenant_ids[0], sb.tenant_ids[2]}  # the revoked grant never reached the API
    zoho = Counter(r.org_id for r in batch["zoho"] if r.path.startswith("/crm/"))
    assert set(zoho) == set(sb.org_ids)


def test_materializations_per_partition_and_the_failure_named(batch):
    result, names = batch["result"], batch["names"]
    assert not result.success
    mats = _materialized(result)
    assert set(mats["zoho_deals"]) == set(names)
    sb = batch["sb"]
    for i, name in enumerate(names):  # each connection's own figures on its own partition
        meta = mats["zoho_deals"][name]
        assert meta["mode"] == "first sync"
        assert meta["inserted"] == len(sb.zoho.orgs[sb.org_ids[i]].records["Deals"]) > 0
    assert batch["public_metadata_calls"] == []
    # one attached session per connection and extract step that reads (the first syncs' writes inside it)
    assert sum(batch["attached_openings"]) >= len(names) * 5
    assert set(mats["xero_invoices"]) == {names[0], names[2]}
    for i in (0, 2):
        meta = mats["xero_invoices"][names[i]]
        assert meta["mode"] == "first sync" and meta["inserted"] > 0 and meta["api_calls"] >= 1
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures and all(e.step_key.startswith("xero_") for e in failures)
    message = failures[0].event_specific_data.error.message
    assert f"1 of 3 connection(s) failed ({names[1]})" in message
