"""Missed-event detection: a scheduled read that finds an unannounced change warns, naming the record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.definitions import ASSETS, defs
from xz_pipeline.realtime.inbox import Inbox, InboxEvent, iso
from xz_pipeline.realtime.sensors import REALTIME_CHECKS
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline_tests.realtime.support import CONNECTION, use_sandbox_env


def _read_accounts(inst) -> dg.AssetCheckEvaluation:
    (asset,) = [a for a in ASSETS if dg.AssetKey("zoho_accounts") in a.keys]
    (check,) = [
        c for c in REALTIME_CHECKS if next(iter(c.check_keys)).asset_key == dg.AssetKey("zoho_accounts")
    ]
    result = dg.materialize([asset, check], partition_key=CONNECTION, instance=inst, resources=defs.resources)
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_unannounced_change_warns_and_announced_one_does_not(monkeypatch):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    clock = ManualClock(start)
    with SandboxServer(seed=13, size="demo", clock=clock) as sb, dg.instance_for_test() as inst:
        use_sandbox_env(monkeypatch, sb)
        inst.add_dynamic_partitions("connection", [CONNECTION])
        inbox = Inbox()
        off = _read_accounts(inst)  # no events ever received: nothing to judge
        assert off.passed and "near-real-time is off" in off.metadata["note"].value
        org = sb.org_ids[0]
        inbox.add([InboxEvent("first", "zoho", CONNECTION, None, "zoho_products", "p0", False, iso(start))],
                  now=start - timedelta(minutes=1))  # fmt: skip
        announced, silent = (a["id"] for a in sb.zoho.dump(org, "Accounts")[:2])
        clock.advance(30)
        with ZohoResource().client(CONNECTION) as zoho:
            zoho.update(
                "Accounts",
                [{"id": announced, "Phone": "+64 9 555 0001"}, {"id": silent, "Phone": "+64 9 555 0002"}],
            )
        inbox.add(
            [InboxEvent("a", "zoho", CONNECTION, None, "zoho_accounts", announced, False, iso(clock.now()))]
        )
        warned = _read_accounts(inst)
        assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
        assert warned.metadata["missed_ids"].value == [silent]
        assert warned.metadata["changes_judged"].value == 2
        assert MirrorResource().store(CONNECTION).path.exists()
