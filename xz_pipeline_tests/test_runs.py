"""meta.runs: the runner records `xz sync` runs as they end; runs_sensor records what the daemon ran (kind from
the run's tags, failures with their reason), leaves its cursor when the mirror is busy, and records nothing
twice."""

from __future__ import annotations

import dagster as dg
import pytest

from xz_pipeline import runner, runs, settings
from xz_pipeline.core.resources import TRIGGER_TAG
from xz_pipeline.core.store import HeldLock, Store
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.sandbox_env import export_sandbox


def _rows(sql: str, params=()) -> list[dict]:
    """The rows of `sql` in every connection's mirror."""
    out = []
    for name in settings.mirror_connections():
        with Store(settings.mirror_path(name)).read() as con:
            cur = con.execute(sql, list(params))
            cols = [c[0] for c in cur.description]
            out += [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    return out


def test_xz_sync_records_one_row_per_run_and_connection(monkeypatch, xz_home):
    with SandboxServer(seed=3, size="tiny") as sb:
        export_sandbox(monkeypatch, sb, sb.connection_name(0))
        outcomes = runner.sync([sb.connection_name(0)], inst=runner.instance(xz_home), only="mirror")
    assert [o.success for o in outcomes] == [True]
    rows = _rows("select * from meta.runs")
    assert len(rows) == 1
    row = rows[0]
    o = outcomes[0]
    assert (row["connection"], row["run_id"], row["kind"], row["outcome"]) == (
        sb.connection_name(0), o.run_id, "sync", "success")  # fmt: skip
    calls = sum(int(m.get("api_calls") or 0) for m in o.metadata.values())
    assert row["api_calls"] == calls > 0
    written = sum(int(m.get(k) or 0) for m in o.metadata.values() for k in ("inserted", "updated", "deleted"))
    assert row["rows_written"] == written > 0
    assert row["started_at"] <= row["finished_at"] and row["error"] is None


PARTS = dg.StaticPartitionsDefinition(["acme", "globex"])


@dg.asset(partitions_def=PARTS)
def fetched(context) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"api_calls": 4, "inserted": 10, "updated": 2, "deleted": 1})


@dg.asset(partitions_def=PARTS, deps=[fetched])
def broken() -> None:
    raise dg.Failure(description="Zoho said INVALID_TOKEN: run `xz auth zoho`")


def test_runs_sensor_records_daemon_runs_once_and_waits_for_a_busy_mirror():
    for name in ("globex", "acme"):  # each connection's run is recorded in its own mirror
        store = Store(settings.mirror_path(name))
        with store.write() as con:
            store.ensure_base(con)
    with dg.instance_for_test() as inst:
        targeted = dg.materialize([fetched], instance=inst, partition_key="acme", tags={TRIGGER_TAG: "inbox"})
        failed = dg.materialize([fetched, broken], instance=inst, partition_key="globex", raise_on_error=False,
                                tags={"dagster/schedule_name": "mirror_hourly"})  # fmt: skip
        assert targeted.success and not failed.success

        # A writer holds the mirror: nothing is recorded, the cursor stays, so the next tick tries again.
        lock = HeldLock(str(store.path) + ".lock")
        lock.acquire(timeout=1)
        try:
            ctx = dg.build_sensor_context(instance=inst)
            result = runs.runs_sensor(ctx)
            assert "busy" in result.skip_message and ctx.cursor is None
        finally:
            lock.release()

        ctx = dg.build_sensor_context(instance=inst)
        result = runs.runs_sensor(ctx)
        assert "recorded 2 run(s)" in result.skip_message
        rows = {r["connection"]: r for r in _rows("select * from meta.runs")}
        assert set(rows) == {"acme", "globex"}
        assert (rows["acme"]["kind"], rows["acme"]["outcome"], rows["acme"]["api_calls"],
                rows["acme"]["rows_written"]) == ("targeted", "success", 4, 13)  # fmt: skip
        assert rows["acme"]["run_id"] == targeted.run_id
        g = rows["globex"]
        assert (g["kind"], g["outcome"], g["run_id"]) == ("scheduled", "failed", failed.run_id)
        assert g["error"] == "broken: Zoho said INVALID_TOKEN: run `xz auth zoho`"

        again = runs.runs_sensor(dg.build_sensor_context(instance=inst, cursor=ctx.cursor))
        assert "no run finished" in again.skip_message
        assert len(_rows("select * from meta.runs")) == 2


def test_an_older_mirrors_unused_runs_table_is_replaced():
    store = Store(settings.mirror_path("acme"))
    with store.write() as con:
        con.execute("create schema meta")
        con.execute("create table meta.runs (run_id varchar, connection varchar, asset varchar)")
    with dg.instance_for_test() as inst:
        result = dg.materialize([fetched], instance=inst, partition_key="acme")
        assert runs.record(inst, result.run_id, mirror=store) == 1
    assert [(r["connection"], r["kind"]) for r in _rows("select * from meta.runs")] == [("acme", "manual")]


@pytest.mark.parametrize(
    ("tags", "kind"),
    [({runs.KIND_TAG: "demo"}, "demo"), ({TRIGGER_TAG: "x"}, "targeted"),
     ({"dagster/schedule_name": "s"}, "scheduled"), ({}, "manual")],
)  # fmt: skip
def test_kind_from_tags(tags, kind):
    assert runs.run_kind(tags) == kind
