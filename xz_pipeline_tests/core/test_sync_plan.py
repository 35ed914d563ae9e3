"""How an extract plans its read: first sync, resumed first sync, resumed sweep, periodic sweep, and the
incremental read that re-reads the cursor's second only while that second may still be filling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xz_pipeline.core.mirror import read_progress
from xz_pipeline.core.store import Store
from xz_pipeline.core.sync import CURSOR_OVERLAP, SETTLED, plan_read

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
