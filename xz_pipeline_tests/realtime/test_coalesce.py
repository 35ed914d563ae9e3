"""Coalescing under load: while a connection's targeted run waits in the queue the inbox sensor asks for
nothing more for it; the next request covers every event since the last one, so a flood lands in one run,
with nothing skipped and nothing run twice, and no scheduled run's help."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.execution.api import execute_run

from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.store import Store
from xz_pipeline.definitions import ASSETS, CHECKS, defs
from xz_pipeline.realtime.inbox import Inbox
from xz_pipeline.realtime.sensors import REALTIME_CHECKS, REALTIME_JOBS, REALTIME_SENSORS
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.realtime.support import CONNECTION, ORIGIN, receiver, use_sandbox_env

DEFS = dg.Definitions(assets=ASSETS, asset_checks=[*CHECKS, *REALTIME_CHECKS], sensors=REALTIME_SENSORS,
                      jobs=REALTIME_JOBS, resources=defs.resources)  # fmt: skip


class Daemon:
    """What dagster-daemon does with a request, one step at a time: queue it (a run in QUEUED, with the
    request's run key), launch it (STARTING), execute it; the sensor sees the runs in the instance."""

    def __init__(self, inst: dg.DagsterInstance) -> None:
        self.inst = inst
        self.keys: set[str] = set()
        inst.add_dynamic_partitions("connection", [CONNECTION])

    def tick(self, cursor: str | None):
        with dg.build_sensor_context(instance_ref=self.inst.get_ref(), definitions=DEFS, cursor=cursor,
                                     resources=defs.resources) as ctx:  # fmt: skip
            result = DEFS.resolve_sensor_def("inbox_sensor").evaluate_tick(ctx)
        fresh = [r for r in result.run_requests if r.run_key not in self.keys]  # the daemon skips seen keys
        self.keys |= {r.run_key for r in result.run_requests}
        return result, fresh

    def enqueue(self, request: dg.RunRequest):
        job = DEFS.resolve_job_def("realtime").get_subset(
            asset_selection=set(request.asset_selection), asset_check_selection=set(request.asset_check_keys)
        )
        tags = {
            **request.tags,
            "dagster/run_key": request.run_key,
            "dagster/partition": request.partition_key,
        }
        run = self.inst.create_run_for_job(job, run_config=request.run_config, tags=tags,
                                           status=dg.DagsterRunStatus.QUEUED, remote_job_origin=ORIGIN)  # fmt: skip
        return job, run

    def launch(self, job, run, fail: bool = False) -> dg.DagsterRunStatus:
        self.inst.report_dagster_event(
            DagsterEvent(DagsterEventType.PIPELINE_STARTING.value, job_name=run.job_name), run_id=run.run_id
        )
        if fail:  # the run worker died: the run is marked failed and did nothing
            self.inst.report_run_failed(self.inst.get_run_by_id(run.run_id))
        else:
            execute_run(InMemoryJob(job), self.inst.get_run_by_id(run.run_id), self.inst)
        return self.inst.get_run_by_id(run.run_id).status


@pytest.fixture
def world(monkeypatch):
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with SandboxServer(seed=11, size="demo", clock=clock) as sb, dg.instance_for_test() as inst:
        use_sandbox_env(monkeypatch, sb)
        monkeypatch.setenv("XZ_WRITEBACK", "off")  # an unsettled world: the mirror and recon are the point
        yield sb, Daemon(inst)


def _announce(sb, url: str, contacts: list[str], tag: str) -> None:
    """Change each contact's email in Xero, one API call per contact; their webhooks land in the inbox."""
    with XeroResource().client(CONNECTION) as xero:
        for cid in contacts:
            sb.clock.advance(1)  # each change at its own time (the same event twice is stored once)
            xero.update_contacts([{"ContactID": cid, "EmailAddress": f"{tag}-{cid[:8]}@example.com"}])
    sb.xero.flush_webhooks()


def _emails(ids: list[str]) -> dict[str, str]:
    with Store(MirrorResource().store(CONNECTION).path).read() as con:
        rows = con.execute(
            "select contact_id, email from xero.contacts where contact_id in (select unnest(?))", [ids]
        ).fetchall()
    return dict(rows)


def test_a_flood_while_a_run_is_queued_lands_in_one_more_run(world):
    sb, daemon = world
    contacts = [c["ContactID"] for c in sb.xero.dump(sb.tenant_ids[0], "Contacts")[:25]]
    with receiver() as url:
        sb.xero.set_webhook(f"{url}/webhooks/xero", sb.xero_webhook_key)
        _announce(sb, url, contacts[:1], "first")
        first, fresh = daemon.tick(None)
        (r1,) = fresh
        assert r1.run_key == "inbox:sandbox:1-1"
        job1, run1 = daemon.enqueue(r1)  # queued behind other work
        _announce(sb, url, contacts[1:], "flood")  # 24 changes, 24 webhooks, while run 1 waits
        waited, fresh = daemon.tick(first.cursor)
        assert not waited.run_requests and not fresh
        assert "24 event(s) wait for run" in waited.skip_message
        assert json.loads(waited.cursor)["connections"][CONNECTION]["pos"] == 1  # nothing consumed
        assert daemon.launch(job1, run1) == dg.DagsterRunStatus.SUCCESS
        second, fresh = daemon.tick(waited.cursor)
        (r2,) = fresh
        assert r2.run_key == f"inbox:sandbox:2-{Inbox().last_seq()}" == "inbox:sandbox:2-25"
        assert r2.tags["xz/events"] == "24"
        assert sorted(r2.run_config["ops"]["xero_contacts"]["config"]["ids"]) == sorted(contacts[1:])
        assert daemon.launch(*daemon.enqueue(r2)) == dg.DagsterRunStatus.SUCCESS
        # every announced record landed, by the two targeted runs alone
        assert _emails(contacts) == {
            cid: f"{'first' if i == 0 else 'flood'}-{cid[:8]}@example.com" for i, cid in enumerate(contacts)
        }
        idle, fresh = daemon.tick(second.cursor)
        assert not idle.run_requests and idle.skip_message == "inbox: nothing new"
        # A replayed tick with the cursor lost takes the position from the last run: nothing runs again.
        replay, fresh = daemon.tick(None)
        assert not replay.run_requests and not fresh
        assert json.loads(replay.cursor)["connections"][CONNECTION]["pos"] == 25
        runs = daemon.inst.get_run_records(dg.RunsFilter(tags={"xz/trigger": "inbox"}))
        assert len(runs) == 2


def test_a_failed_range_is_requested_once_more_under_its_own_key(world):
    sb, daemon = world
    contacts = [c["ContactID"] for c in sb.xero.dump(sb.tenant_ids[0], "Contacts")[:3]]
    with receiver() as url:
        sb.xero.set_webhook(f"{url}/webhooks/xero", sb.xero_webhook_key)
        _announce(sb, url, contacts[:2], "lost")
        first, (r1,) = daemon.tick(None)
        assert r1.run_key == "inbox:sandbox:1-2"
        assert daemon.launch(*daemon.enqueue(r1), fail=True) == dg.DagsterRunStatus.FAILURE
        _announce(sb, url, contacts[2:], "later")
        retry, (r2,) = daemon.tick(first.cursor)
        assert r2.run_key == "inbox:sandbox:1-3:retry"  # the failed range and what came since
        assert sorted(r2.run_config["ops"]["xero_contacts"]["config"]["ids"]) == sorted(contacts)
        assert daemon.launch(*daemon.enqueue(r2), fail=True) == dg.DagsterRunStatus.FAILURE
        given_up, fresh = daemon.tick(retry.cursor)  # once only: the scheduled sync reads it next
        assert not given_up.run_requests and not fresh
        _announce(sb, url, contacts[:1], "again")
        _, (r3,) = daemon.tick(given_up.cursor)
        assert r3.run_key == "inbox:sandbox:4-4"
        assert daemon.launch(*daemon.enqueue(r3)) == dg.DagsterRunStatus.SUCCESS
        assert _emails(contacts[:1]) == {contacts[0]: f"again-{contacts[0][:8]}@example.com"}


def test_while_a_run_is_running_its_connection_waits_and_a_failure_is_retried_with_what_came_since(world):
    """Events that arrive while a connection's run is running wait for it (they join one request once it
    ends, not a run queued behind it, whose own latecomers would wait a cycle more); a running range that
    then fails is asked for once more together with them."""
    sb, daemon = world
    contacts = [c["ContactID"] for c in sb.xero.dump(sb.tenant_ids[0], "Contacts")[:6]]
    with receiver() as url:
        sb.xero.set_webhook(f"{url}/webhooks/xero", sb.xero_webhook_key)
        _announce(sb, url, contacts[:2], "first")
        first, (r1,) = daemon.tick(None)
        job1, run1 = daemon.enqueue(r1)
        for event in (DagsterEventType.PIPELINE_STARTING, DagsterEventType.PIPELINE_START):  # running now
            daemon.inst.report_dagster_event(
                DagsterEvent(event.value, job_name=run1.job_name), run_id=run1.run_id
            )
        assert daemon.inst.get_run_by_id(run1.run_id).status == dg.DagsterRunStatus.STARTED
        _announce(sb, url, contacts[2:], "during")
        during, fresh = daemon.tick(first.cursor)
        assert not during.run_requests and not fresh and "4 event(s) wait for run" in during.skip_message
        daemon.inst.report_run_failed(daemon.inst.get_run_by_id(run1.run_id))  # its worker died
        after, (r2,) = daemon.tick(during.cursor)
        assert r2.run_key == "inbox:sandbox:1-6:retry"  # the failed range, and what waited behind it
        assert sorted(r2.run_config["ops"]["xero_contacts"]["config"]["ids"]) == sorted(contacts)
        assert daemon.launch(*daemon.enqueue(r2)) == dg.DagsterRunStatus.SUCCESS
        done, fresh = daemon.tick(after.cursor)
        assert not done.run_requests and not fresh
        assert json.loads(done.cursor)["connections"][CONNECTION] == {"pos": 6, "open": []}
        assert _emails(contacts) == {
            cid: f"{'first' if i < 2 else 'during'}-{cid[:8]}@example.com" for i, cid in enumerate(contacts)
        }
