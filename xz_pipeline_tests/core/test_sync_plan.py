"""How an extract plans its read: first sync, resumed first sync, resumed sweep, periodic sweep, and the
incremental read that re-reads the cursor's second only while that second may still be filling.

(No `from __future__ import annotations`: Dagster reads the annotations of the test's extract asset.)"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import Col, EntityTable, read_progress
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.core.sync import (
    CURSOR_OVERLAP,
    SETTLED,
    Fetched,
    MirrorConfig,
    extract_asset,
    plan_read,
    run_extract,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CURSOR = datetime(2026, 11, 24, 11, 0, 5, 250_000, tzinfo=UTC)
DAY = timedelta(hours=24)


def _plan(**kw):
    args = {"now": NOW, "sweep_every": DAY, "forced": False, **kw}
    return plan_read(args.pop("cursor", CURSOR), args.pop("last_full", NOW - timedelta(hours=1)), **args)


def test_the_kinds_of_read():
    assert _plan(cursor=None, last_full=None).reason == "first sync"
    resumed = _plan(last_full=None)
    assert resumed.reason == "resuming the first sync" and resumed.since == CURSOR - CURSOR_OVERLAP
    assert _plan(forced=True).full and _plan(forced=True).detects_deletions
    periodic = _plan(last_full=NOW - DAY)
    assert periodic.full and periodic.sweep_started == NOW
    started = NOW - timedelta(hours=30)
    sweep = _plan(sweep=(started, CURSOR))
    assert not sweep.full and sweep.since == CURSOR - CURSOR_OVERLAP and sweep.sweep_started == started
    assert sweep.reason == "resuming the full sweep started 2026-11-23 06:00 UTC"


def test_an_incremental_read_skips_the_cursors_second_once_it_is_settled():
    # a read that caught up soon after the cursor's second: the second may still gain records
    fresh = _plan(caught_up=CURSOR + SETTLED - timedelta(seconds=1))
    assert fresh.reason == "incremental" and fresh.since == CURSOR - CURSOR_OVERLAP
    assert _plan().since == CURSOR - CURSOR_OVERLAP  # never caught up (or the cursor moved since)
    # a read that caught up a minute later saw all of it: start at the next second
    settled = _plan(caught_up=CURSOR + SETTLED)
    assert settled.since == datetime(2026, 11, 24, 11, 0, 6, tzinfo=UTC)


def test_moving_the_cursor_forgets_when_the_read_caught_up(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    with store.write() as con:
        Store.ensure_base(con)
        Store.set_cursor(con, "c", "xero", "Invoices", CURSOR)
        Store.set_caught_up(con, "c", "xero", "Invoices", NOW)
        Store.set_cursor(con, "c", "xero", "Invoices", CURSOR)  # a re-read of the same second
    assert read_progress(store, "c", "xero", "Invoices") == (None, NOW)
    with store.write() as con:
        Store.set_cursor(con, "c", "xero", "Invoices", CURSOR + timedelta(minutes=5))
    assert read_progress(store, "c", "xero", "Invoices") == (None, None)


def test_an_idle_read_writes_only_that_it_caught_up_and_a_change_lands(tmp_path):
    """Through an extract asset: a first sync, an idle read (no page: nothing lands, the cursor row is not
    rewritten, only `caught_up_at` moves), then one changed record."""
    spec = EntityTable(vendor="demo", entity="Things", schema="demo", table="things",
                       cols=[Col("thing_id", "varchar not null", lambda p: p["Id"]),
                             Col("name", "varchar", lambda p: p["Name"])],
                       key=["connection", "thing_id"], record_id=lambda p: p["Id"],
                       modified=lambda p: datetime.fromisoformat(p["Modified"]))  # fmt: skip
    reads: list[tuple[str, datetime | None]] = []
    pages = [
        [[{"Id": "1", "Name": "one", "Modified": "2026-11-01T09:00:00+00:00"},
          {"Id": "2", "Name": "two", "Modified": "2026-11-02T09:00:00+00:00"}]],
        [],
        [[{"Id": "2", "Name": "two again", "Modified": "2026-11-03T09:00:00+00:00"}]],
    ]  # fmt: skip

    @extract_asset("demo_things", "demo", "Things of a test vendor.")
    def demo_things(context: dg.AssetExecutionContext, config: MirrorConfig, mirror: MirrorResource):
        def fetch(plan):
            reads.append((plan.reason, plan.since))
            return Fetched(iter(pages.pop(0)))

        return run_extract(context, spec, mirror, config, CallMeter(), fetch)

    mirror = MirrorResource(path=str(tmp_path))

    def run() -> dict:
        result = dg.materialize(
            [demo_things], partition_key="c", instance=instance, resources={"mirror": mirror}
        )
        (mat,) = result.asset_materializations_for_node("demo_things")
        return {k: v.value for k, v in mat.metadata.items()}

    def state() -> tuple:
        with mirror.store("c").read() as con:
            landed = con.execute("select count(*) from landing.records").fetchone()[0]
            row = con.execute("select cursor_value, updated_at, caught_up_at from meta.cursors").fetchone()
        return landed, *row

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, ["c"])
        first = run()
        landed, cursor, updated, caught_up = state()
        idle = run()
        assert state()[:3] == (landed, cursor, updated) and state()[3] > caught_up
        assert idle["cursor"] == first["cursor"] == cursor.isoformat()
        assert (idle["fetched"], idle["inserted"], idle["updated"], idle["dagster/row_count"]) == (0, 0, 0, 2)
        changed = run()
        assert (changed["updated"], changed["dagster/row_count"]) == (1, 2) and state()[0] == landed + 1
    assert [r for r, _ in reads] == ["first sync", "incremental", "incremental"]
    assert reads[1][1] == datetime(2026, 11, 2, 9, 0, 1, tzinfo=UTC)  # settled: after the cursor's second
