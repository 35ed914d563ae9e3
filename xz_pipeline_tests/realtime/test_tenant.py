"""The Xero tenant id is asked of `/connections` once per grant, not once per run: the answer is kept in
the token store and every later client (another step, run or process) reads it from there."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.definitions import defs
from xz_pipeline.realtime.inbox import Inbox, InboxEvent, iso
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.realtime.support import CONNECTION, use_sandbox_env
from xz_pipeline_tests.realtime.test_coalesce import DEFS


@pytest.fixture
def world(monkeypatch):
    with SandboxServer(seed=11, size="demo") as sb, dg.instance_for_test() as inst:
        use_sandbox_env(monkeypatch, sb)
        monkeypatch.delenv("XERO_TENANT_ID")  # the connection names no tenant: discovered from the grant
        monkeypatch.setenv("XZ_WRITEBACK", "off")
        inst.add_dynamic_partitions("connection", [CONNECTION])
        yield sb, inst


def _connections_calls(sb) -> int:
    return sum(r.path == "/connections" for r in sb.xero.received)


def test_two_targeted_runs_ask_connections_at_most_once(world):
    sb, inst = world
    contacts = [c["ContactID"] for c in sb.xero.dump(sb.tenant_ids[0], "Contacts")[:2]]
    inbox, cursor = Inbox(), None
    for n, contact in enumerate(contacts):
        inbox.add([InboxEvent(f"e{n}", "xero", CONNECTION, sb.tenant_ids[0], "xero_contacts", contact, False,
                              iso(datetime.now(UTC)))])  # fmt: skip
        with dg.build_sensor_context(instance_ref=inst.get_ref(), definitions=DEFS, cursor=cursor,
                                     resources=defs.resources) as ctx:  # fmt: skip
            tick = DEFS.resolve_sensor_def("inbox_sensor").evaluate_tick(ctx)
        cursor = tick.cursor
        (request,) = tick.run_requests
        job = DEFS.resolve_job_def("realtime").get_subset(
            asset_selection=set(request.asset_selection), asset_check_selection=set(request.asset_check_keys)
        )
        result = job.execute_in_process(run_config=request.run_config, instance=inst, tags=request.tags,
                                        partition_key=request.partition_key)  # fmt: skip
        assert result.success
        assert any(r.path == "/api.xro/2.0/Contacts" for r in sb.xero.received)
    assert _connections_calls(sb) <= 1
    # The tenant is remembered beside the tokens, for this app only.
    with XeroResource().client(CONNECTION) as xero:
        assert xero.tenant_id == sb.tenant_ids[0]
    assert _connections_calls(sb) <= 1
    remembered = settings.xz_home() / "tokens" / f"{CONNECTION}-xero-tenant.json"
    assert remembered.exists() and sb.tenant_ids[0] in remembered.read_text()


def test_a_grant_that_no_longer_reaches_the_remembered_tenant_forgets_it(world):
    sb, _ = world
    with XeroResource().client(CONNECTION) as xero:
        assert xero.tenant_id == sb.tenant_ids[0]
    remembered = settings.xz_home() / "tokens" / f"{CONNECTION}-xero-tenant.json"
    remembered.write_text(remembered.read_text().replace(sb.tenant_ids[0], "gone-tenant"))
    with XeroResource().client(CONNECTION) as xero:
        assert xero.tenant_id == "gone-tenant"  # remembered: no call
        xero.tenants()  # what `xz auth xero` and the sensor's routing ask
    assert not remembered.exists()
    with XeroResource().client(CONNECTION) as xero:
        assert xero.tenant_id == sb.tenant_ids[0]
    assert remembered.exists()
