"""Long reads plan against the day's API budget: a first sync under a small day limit pauses at the
reserve without failing, keeps what it read, and the next day's run resumes with no duplicate, no gap and
nothing deleted; a full sweep cut short deletes nothing and resumes the next day where it stopped; a day
limit met mid-read (spent by someone else) ends the same way. Also the read-ahead thread and the reserve setting."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from xz_pipeline import settings
from xz_pipeline.core import http
from xz_pipeline.core.errors import RateLimitExhausted
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.store import Store
from xz_pipeline.core.sync import ReadTiming, _read_ahead
from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.sandbox.xero import XeroLimits
from xz_pipeline.xero.assets import xero_invoices
from xz_pipeline.xero.client import XeroClient
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox

CONNECTION = "sandbox"
DAY = 86_400
INVOICES = "/api.xro/2.0/Invoices"


def _limits(per_day: int) -> XeroLimits:
    return XeroLimits(concurrent=5, per_minute=100_000, per_day=per_day, app_per_minute=1_000_000)


def _new_process(monkeypatch) -> None:
    """Each run starts as a fresh process would: no estimate of the tenant's budget until Xero answers."""
    monkeypatch.setattr(http, "BUDGETS", http.Budgets())


def _run(instance, monkeypatch, *, full_sweep: bool = False) -> dict:
    _new_process(monkeypatch)
    result = dg.materialize(
        [xero_invoices], partition_key=CONNECTION, instance=instance,
        resources={"xero": XeroResource(), "mirror": MirrorResource()},
        run_config={"ops": {"xero_invoices": {"config": {"full_sweep": full_sweep}}}},
    )  # fmt: skip
    assert result.success
    (mat,) = result.asset_materializations_for_node("xero_invoices")
    return {k: v.value for k, v in mat.metadata.items()}


def _mirror() -> tuple[list[str], int, object]:
    with Store(only_mirror()).read() as con:
        ids = [r[0] for r in con.execute("select invoice_id from xero.invoices").fetchall()]
        open_versions = con.execute(
            "select count(*) from xero.invoices_history where valid_to is null"
        ).fetchone()[0]
        swept = con.execute(
            "select last_full_sweep from meta.cursors where vendor = 'xero' and entity = 'Invoices'"
        ).fetchone()[0]
    return ids, open_versions, swept


def _invoice_calls(sb: SandboxServer, since: int) -> int:
    return sum(1 for r in sb.xero.received[since:] if r.method == "GET" and r.path == INVOICES)


@pytest.fixture
def env(monkeypatch):
    def configure(sb: SandboxServer, reserve: int) -> None:
        export_sandbox(monkeypatch, sb, CONNECTION)
        monkeypatch.setenv("XZ_DAY_RESERVE", str(reserve))

    return configure


def test_first_sync_pauses_at_the_reserve_and_resumes_next_day(env, monkeypatch):
    clock = ManualClock()
    # 5 calls a day, 2 kept in reserve: a read may spend 3 calls (3 pages of 1,000) a day.
    with SandboxServer(seed=17, size="demo", clock=clock, xero_limits=_limits(5)) as sb:
        env(sb, reserve=2)
        expected = {i["InvoiceID"] for i in sb.xero.dump(sb.tenant_ids[0], "Invoices")}
        assert len(expected) > 3_000  # 4 pages
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])

            before = len(sb.xero.received)
            first = _run(instance, monkeypatch)
            assert _invoice_calls(sb, before) == 3  # the reserve was not touched
            assert first["mode"] == "first sync"
            assert first["paused"] == "day budget: 2 left, reserve 2; resumes next run"
            assert (first["calls_left"], first["day_reserve"]) == (2, 2)
            assert first["budget_plan"].startswith("needs ≈4 calls, 3 available")
            assert (first["calls_planned"], first["calls_available"]) == (4, 3)
            assert first["fetched"] == 3_000 and first["deleted"] == 0
            ids, open_versions, swept = _mirror()
            assert len(ids) == len(set(ids)) == 3_000 and set(ids) <= expected
            assert open_versions == 3_000
            assert swept is None  # the first sync is not complete

            clock.advance(DAY)  # a new day: the budget is back
            before = len(sb.xero.received)
            second = _run(instance, monkeypatch)
            assert second["mode"] == "resuming the first sync"
            assert "paused" not in second
            assert second["deleted"] == 0
            assert _invoice_calls(sb, before) < 4  # it did not start over
            ids, open_versions, swept = _mirror()
            assert len(ids) == len(set(ids)) and set(ids) == expected  # no duplicate, no gap
            assert open_versions == len(expected)
            assert swept is not None  # the first sync is done

            # A full sweep cut short by the budget deletes nothing it did not reach and is not recorded.
            clock.advance(DAY)
            sweep = _run(instance, monkeypatch, full_sweep=True)
            assert sweep["mode"] == "full sweep requested"
            assert sweep["paused"] == "day budget: 2 left, reserve 2; resumes next run"
            assert sweep["fetched"] == 3_000 and sweep["deleted"] == 0
            ids_after, open_after, swept_after = _mirror()
            assert set(ids_after) == expected and open_after == len(expected)
            assert swept_after == swept

            # The next day it carries on where it stopped, and still finds what went missing meanwhile in
            # the part it had not read (a deletion no probe reports: what sweeps are for).
            books = sb.xero.books[sb.tenant_ids[0]]  # gone without a trace (the emulator's own storage)
            gone = max(
                books.records["Invoices"].values(), key=lambda r: (r["UpdatedDateUTC"], r["InvoiceID"])
            )
            last = gone["InvoiceID"]
            del books.records["Invoices"][last]
            books.docs_of[gone["Contact"]["ContactID"]].discard(("Invoices", last))
            clock.advance(DAY)
            before = len(sb.xero.received)
            resumed = _run(instance, monkeypatch)
            assert resumed["mode"].startswith("resuming the full sweep started ")
            assert "paused" not in resumed
            assert _invoice_calls(sb, before) < 4  # it did not start over
            assert resumed["deleted"] == 1
            ids_done, open_done, swept_done = _mirror()
            assert set(ids_done) == expected - {last} and open_done == len(expected) - 1
            assert swept_done is not None and swept_done > swept_after  # the sweep is complete
            assert _run(instance, monkeypatch)["mode"] == "incremental"


def test_day_limit_spent_elsewhere_mid_read_keeps_the_pages_read(env, monkeypatch):
    clock = ManualClock()
    real_iter_pages = XeroClient.iter_pages
    spent_elsewhere = {"calls": 0}

    with SandboxServer(seed=17, size="demo", clock=clock, xero_limits=_limits(8)) as sb:
        env(sb, reserve=1)

        def other_process() -> XeroClient:
            xs = settings.get_connection(CONNECTION).xero
            return XeroClient(
                client_id=xs.client_id, client_secret=xs.client_secret, refresh_token=xs.refresh_token,
                api_url=xs.api_url, identity_url=xs.identity_url, tenant_id=xs.tenant_id,
                token_store=TokenStore(settings.xz_home() / "tokens"), connection=CONNECTION,
                budgets=http.Budgets(),
            )  # fmt: skip

        def iter_pages(self, collection, **kw):
            for n, page in enumerate(real_iter_pages(self, collection, **kw), start=1):
                yield page
                if collection == "Invoices" and n == 1 and not spent_elsewhere["calls"]:
                    # Another process of ours spends the rest of the day while this read is under way.
                    with other_process() as other, pytest.raises(RateLimitExhausted):
                        while True:
                            other.organisation()
                            spent_elsewhere["calls"] += 1

        monkeypatch.setattr(XeroClient, "iter_pages", iter_pages)
        expected = {i["InvoiceID"] for i in sb.xero.dump(sb.tenant_ids[0], "Invoices")}
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
            first = _run(instance, monkeypatch)
            assert spent_elsewhere["calls"] == 7
            assert first["paused"].startswith("day budget: 0 left (back in about ")
            assert first["fetched"] == 1_000
            ids, _, swept = _mirror()
            assert len(set(ids)) == 1_000 and swept is None

            clock.advance(DAY)
            second = _run(instance, monkeypatch)
            assert second["mode"] == "resuming the first sync" and "paused" not in second
            ids, open_versions, swept = _mirror()
            assert len(ids) == len(set(ids)) and set(ids) == expected
            assert open_versions == len(expected) and swept is not None


def test_read_ahead_delivers_pages_read_before_an_error_then_raises():
    def pages():
        yield [{"n": 1}, {"n": 2}]
        yield [{"n": 3}]
        raise ConnectionResetError("dropped")

    timing = ReadTiming()
    got = []
    with pytest.raises(ConnectionResetError):
        for chunk in _read_ahead(pages(), 2, timing, depth=1):
            got.append(chunk)
    assert got == [[{"n": 1}, {"n": 2}], [{"n": 3}]]


def test_read_ahead_stays_bounded_and_stops_when_the_writer_stops():
    produced = []

    def pages():
        for n in range(100):
            produced.append(n)
            yield [{"n": n}]

    stream = _read_ahead(pages(), 1, ReadTiming(), depth=1)
    assert next(stream) == [{"n": 0}]
    time.sleep(0.2)  # give the reader time to run ahead as far as it may
    # one chunk delivered, one queued, one more read while waiting to queue it
    assert len(produced) <= 3
    stream.close()
    time.sleep(0.1)
    assert len(produced) <= 4


@pytest.mark.parametrize(
    ("raw", "limit", "reserve"),
    [("", 5_000, 500), ("", 1_000, 100), ("", 200, 50), ("10%", 200, 20), ("250", 5_000, 250), ("0", 9, 0)],
)
def test_day_reserve(raw, limit, reserve):
    assert settings.day_reserve(limit, {"XZ_DAY_RESERVE": raw}) == reserve


def test_day_reserve_rejects_nonsense():
    with pytest.raises(settings.SettingsError, match="XZ_DAY_RESERVE"):
        settings.day_reserve(1_000, {"XZ_DAY_RESERVE": "lots"})
