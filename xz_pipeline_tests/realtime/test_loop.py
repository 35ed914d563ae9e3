"""No loops: what our own write-back causes comes back as webhooks and notifications, is mirrored, and
does not reach the write-back stage again; a person's edit afterwards does."""

from __future__ import annotations

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.core.store import Store
from xz_pipeline.definitions import ASSETS, CHECKS, defs
from xz_pipeline.realtime.channels import ensure_channels, notify_url
from xz_pipeline.realtime.inbox import Inbox
from xz_pipeline.realtime.sensors import REALTIME_JOBS, REALTIME_SENSORS
from xz_pipeline.writeback.assets import WRITEBACK_ASSETS, WRITEBACK_CHECKS
from xz_pipeline.zoho import webhooks as zoho_hooks
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.realtime.support import receiver
from xz_pipeline_tests.writeback.support import CONNECTION, build_baseline, start, writes_received
from xz_pipeline_tests.writeback.test_cycle import RESOURCES, materialize

WRITEBACK = dg.AssetSelection.groups("writeback")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return build_baseline(tmp_path_factory.mktemp("realtime-baseline"))


def _tick(inst, d, cursor=None):
    with dg.build_sensor_context(
        instance_ref=inst.get_ref(), definitions=d, cursor=cursor, resources=defs.resources
    ) as ctx:
        return d.resolve_sensor_def("inbox_sensor").evaluate_tick(ctx)


def test_write_back_echoes_do_not_write_again(baseline):
    sb, _ = start(baseline)
    # The write-back stage as it lands in the Definitions (added here until the lead wires it in).
    assets = [*ASSETS, *(a for a in WRITEBACK_ASSETS if a not in ASSETS)]
    checks = [*CHECKS, *(c for c in WRITEBACK_CHECKS if c not in CHECKS)]
    d = dg.Definitions(assets=assets, asset_checks=checks, sensors=REALTIME_SENSORS, jobs=REALTIME_JOBS,
                       resources={**RESOURCES, **defs.resources})  # fmt: skip
    writeback_keys = WRITEBACK.resolve(d.resolve_asset_graph())
    assert writeback_keys, "the write-back stage is part of the Definitions"
    with sb, receiver() as url, dg.instance_for_test() as inst:
        (conn,) = settings.load_connections()
        sb.xero.set_webhook(f"{url}/webhooks/xero", sb.xero_webhook_key)
        with ZohoResource().client(CONNECTION) as zoho:
            report = ensure_channels(zoho, CONNECTION, notify_url(url, conn.zoho.notify_token),
                                     zoho_hooks.channel_token(conn.zoho.notify_token), sb.zoho.clock.now())  # fmt: skip
        assert report.enabled
        assert materialize(inst, apply=True).success
        xero_writes, zoho_writes = writes_received(sb)
        assert xero_writes or zoho_writes
        sb.xero.flush_webhooks()
        sb.zoho.flush_notifications()
        echoed = Inbox().count()
        assert echoed > 0  # our writes came back as events
        first = _tick(inst, d)
        assert first.run_requests
        for request in first.run_requests:
            assert request.tags["xz/echo_only"] == "true"
            assert not set(request.asset_selection) & writeback_keys
            assert {"canonical_views"} <= {k.to_user_string() for k in request.asset_selection}
        # A person edits a CRM account afterwards: that run does include the write-back stage.
        with Store(only_mirror()).read() as con:
            written = {
                r for (r,) in con.execute("select record from writeback.plan where system = 'crm'").fetchall()
            }
        account = next(a["id"] for a in sb.zoho.dump(sb.org_ids[0], "Accounts") if a["id"] not in written)
        with ZohoResource().client(CONNECTION) as zoho:
            zoho.update("Accounts", [{"id": account, "Phone": "+64 9 555 0777"}])
        assert sb.zoho.flush_notifications() >= 1
        (human,) = _tick(inst, d, first.cursor).run_requests
        assert human.tags["xz/echo_only"] == "false"
        assert set(human.asset_selection) & writeback_keys
