"""The mirror's write path: landing is append-only, current state merges by key, history keeps versions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import duckdb
import pytest

from xz_pipeline.core import store as store_module
from xz_pipeline.core.mirror import Col, EntityTable, read_sync_state, write_entity
from xz_pipeline.core.store import Store, StoreBusy

T1 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _amount(payload: dict):
    if not isinstance(payload["Amount"], int | float):
        raise ValueError(f"not a number: {payload['Amount']!r}")
    return payload["Amount"]


SPEC = EntityTable(
    vendor="demo",
    entity="Things",
    schema="demo",
    table="things",
    cols=[
        Col("thing_id", "varchar not null", lambda p: p["Id"]),
        Col("name", "varchar", lambda p: p["Name"]),
        Col("amount", "decimal(18, 2)", _amount),
    ],
    key=["connection", "thing_id"],
    record_id=lambda p: p["Id"],
    modified=lambda p: p["Modified"],
)


def _things(*specs):
    return [{"Id": i, "Name": n, "Amount": a, "Modified": m} for i, n, a, m in specs]


def test_merge_inserts_updates_and_keeps_history(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    first = write_entity(
        store,
        SPEC,
        connection="c1",
        payloads=_things(("a", "Acme", 10, T1), ("b", "Bolt", 20, T1)),
        fetched_at=T1,
        run_id="r1",
    )
    assert (first.counts.inserted, first.counts.updated, first.counts.unchanged) == (2, 0, 0)
    second = write_entity(
        store,
        SPEC,
        connection="c1",
        payloads=_things(("a", "Acme Ltd", 10, T2), ("b", "Bolt", 20, T1)),
        fetched_at=T2,
        run_id="r2",
    )
    assert (second.counts.inserted, second.counts.updated, second.counts.unchanged) == (0, 1, 1)
    assert second.cursor == T2
    with store.read() as con:
        assert con.execute("select name from demo.things where thing_id='a'").fetchone() == ("Acme Ltd",)
        history = con.execute(
            "select name, valid_from, valid_to from demo.things_history where thing_id='a' order by valid_from"
        ).fetchall()
        assert [h[0] for h in history] == ["Acme", "Acme Ltd"]
        assert history[0][2] == T2 and history[1][2] is None
        assert con.execute("select count(*) from landing.records").fetchone() == (4,)
    assert read_sync_state(store, "c1", "demo", "Things") == (T2, None)


def test_connections_never_mix(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    write_entity(
        store, SPEC, connection="c1", payloads=_things(("a", "Acme", 1, T1)), fetched_at=T1, run_id=None
    )
    write_entity(
        store, SPEC, connection="c2", payloads=_things(("a", "Other", 2, T1)), fetched_at=T1, run_id=None
    )
    with store.read() as con:
        rows = con.execute("select connection, name from demo.things order by 1").fetchall()
    assert rows == [("c1", "Acme"), ("c2", "Other")]


def test_bad_record_is_quarantined_and_its_payload_kept(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    result = write_entity(
        store,
        SPEC,
        connection="c1",
        payloads=_things(("a", "Acme", 1, T1), ("bad", "Broken", "n/a", T1)),
        fetched_at=T1,
        run_id="r1",
    )
    assert result.quarantined == 1 and result.counts.inserted == 1
    with store.read() as con:
        rule, reason = con.execute(
            "select rule, reason from meta.quarantine where record_id='bad'"
        ).fetchone()
        assert rule == "typed:things.amount" and "Things bad" in reason and "field amount" in reason
        assert con.execute("select count(*) from landing.records where record_id='bad'").fetchone() == (1,)


def test_writer_fails_fast_when_another_writer_holds_the_lock(tmp_path):
    store = Store(tmp_path / "m.duckdb", lock_timeout=0.2)
    holding, release = threading.Event(), threading.Event()

    def hold():
        with Store(store.path).write():
            holding.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    holding.wait(5)
    try:
        with pytest.raises(StoreBusy, match="being written by another process"), store.write():
            pass
    finally:
        release.set()
        t.join()


def test_a_failed_write_rolls_back(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    with store.write() as con:
        store.ensure_base(con)
    with pytest.raises(RuntimeError), store.write() as con:
        con.execute("insert into meta.schema_version values (99, now(), null)")
        raise RuntimeError("boom")
    con = duckdb.connect(str(store.path), read_only=True)
    try:
        assert con.execute("select count(*) from meta.schema_version where version = 99").fetchone() == (0,)
    finally:
        con.close()


def test_full_sweep_reflects_records_gone_at_the_source(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    write_entity(
        store, SPEC, connection="c1", payloads=_things(("a", "Acme", 1, T1), ("b", "Bolt", 2, T1)),
        fetched_at=T1, run_id=None, full=True,
    )  # fmt: skip
    write_entity(
        store, SPEC, connection="c2", payloads=_things(("b", "Other", 2, T1)), fetched_at=T1, run_id=None
    )
    swept = write_entity(
        store,
        SPEC,
        connection="c1",
        payloads=_things(("a", "Acme", 1, T1)),
        fetched_at=T2,
        run_id=None,
        full=True,
    )
    assert swept.counts.deleted == 1 and swept.counts.unchanged == 1
    with store.read() as con:
        assert con.execute("select connection, thing_id from demo.things order by 1, 2").fetchall() == [
            ("c1", "a"),
            ("c2", "b"),
        ]
        assert con.execute(
            "select valid_to from demo.things_history where connection='c1' and thing_id='b'"
        ).fetchall() == [(T2,)]
    assert read_sync_state(store, "c1", "demo", "Things") == (T1, T2)


def test_decimal_amounts_of_any_width_merge_exactly(tmp_path):
    from decimal import Decimal

    store = Store(tmp_path / "m.duckdb")
    spec = EntityTable(
        vendor="demo", entity="Money", schema="demo", table="money",
        cols=[Col("id", "varchar not null", lambda p: p["Id"]), Col("amount", "decimal(18, 2)", lambda p: p["Amount"])],
        key=["connection", "id"], record_id=lambda p: p["Id"], modified=lambda p: None,
    )  # fmt: skip
    payloads = [
        {"Id": "small", "Amount": Decimal("1.50")},
        {"Id": "big", "Amount": Decimal("1234567890123.45")},
    ]
    write_entity(store, spec, connection="c1", payloads=payloads, fetched_at=T1, run_id=None)
    with store.read() as con:
        assert dict(con.execute("select id, amount from demo.money").fetchall()) == {
            "small": Decimal("1.50"),
            "big": Decimal("1234567890123.45"),
        }


def test_children_are_replaced_only_when_the_parent_carries_them(tmp_path):
    from xz_pipeline.core.mirror import ChildTable

    store = Store(tmp_path / "m.duckdb")
    spec = EntityTable(
        vendor="demo", entity="Docs", schema="demo", table="docs",
        cols=[Col("doc_id", "varchar not null", lambda p: p["Id"])],
        key=["connection", "doc_id"], record_id=lambda p: p["Id"], modified=lambda p: p["Modified"],
        children=[
            ChildTable(
                table="doc_lines",
                cols=[Col("doc_id", "varchar not null", lambda p: p["DocId"]), Col("line_id", "varchar not null", lambda p: p["LineId"])],
                key=["connection", "doc_id", "line_id"], parent_column="doc_id",
                items=lambda p: [{"DocId": p["Id"], "LineId": x} for x in p.get("Lines", [])],
                present=lambda p: "Lines" in p,
            )
        ],
    )  # fmt: skip
    write_entity(
        store,
        spec,
        connection="c",
        payloads=[{"Id": "d1", "Modified": T1, "Lines": ["a", "b"]}],
        fetched_at=T1,
        run_id=None,
    )
    # A summary payload (no Lines key) leaves the lines alone; a whole payload replaces them.
    write_entity(
        store, spec, connection="c", payloads=[{"Id": "d1", "Modified": T2}], fetched_at=T2, run_id=None
    )
    with store.read() as con:
        assert con.execute("select line_id from demo.doc_lines order by 1").fetchall() == [("a",), ("b",)]
    result = write_entity(
        store,
        spec,
        connection="c",
        payloads=[{"Id": "d1", "Modified": T2, "Lines": ["b", "c"]}],
        fetched_at=T2,
        run_id=None,
    )
    assert result.child_counts["doc_lines"].deleted == 1 and result.child_counts["doc_lines"].inserted == 1
    with store.read() as con:
        assert con.execute("select line_id from demo.doc_lines order by 1").fetchall() == [("b",), ("c",)]
        assert con.execute("select valid_to from demo.doc_lines_history where line_id = 'a'").fetchall() == [
            (T2,)
        ]


def test_a_column_added_later_migrates_the_table_and_is_recorded(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    write_entity(
        store, SPEC, connection="c1", payloads=_things(("a", "Acme", 1, T1)), fetched_at=T1, run_id=None
    )
    wider = EntityTable(
        vendor="demo", entity="Things", schema="demo", table="things",
        cols=[*SPEC.cols, Col("colour", "varchar", lambda p: p.get("Colour")), Col("weight", "decimal(18, 2) not null", lambda p: p.get("Weight", 0))],
        key=["connection", "thing_id"], record_id=lambda p: p["Id"], modified=lambda p: p["Modified"],
    )  # fmt: skip
    payloads = [{"Id": "b", "Name": "Bolt", "Amount": 2, "Modified": T2, "Colour": "red", "Weight": 1.5}]
    write_entity(store, wider, connection="c1", payloads=payloads, fetched_at=T2, run_id=None)
    with store.read() as con:
        rows = con.execute("select thing_id, colour from demo.things order by 1").fetchall()
        changes = [
            r[0] for r in con.execute("select change from meta.schema_version order by applied_at").fetchall()
        ]
    assert rows == [("a", None), ("b", "red")]
    assert "added demo.things.colour" in changes and "added demo.things_history.weight" in changes


def test_a_session_shares_one_connection_and_holds_the_writers_lock(tmp_path, monkeypatch):
    store = Store(tmp_path / "m.duckdb", lock_timeout=0.2)
    with store.session():  # no mirror yet: the session holds nothing and creates nothing
        assert not store.path.exists()
    with store.write() as con:
        store.ensure_base(con)
    opened = []
    real_connect = store_module.connect_writing
    monkeypatch.setattr(
        store_module, "connect_writing", lambda *a, **k: opened.append(a) or real_connect(*a, **k)
    )
    with store.session():
        with store.write() as con:
            con.execute("insert into meta.schema_version values (7, now(), 'kept')")
        with pytest.raises(RuntimeError), store.write() as con:
            con.execute("insert into meta.schema_version values (8, now(), 'rolled back')")
            raise RuntimeError("boom")
        with store.read() as con:  # sees what the session committed, not what it rolled back
            versions = {r[0] for r in con.execute("select version from meta.schema_version").fetchall()}
        assert 7 in versions and 8 not in versions
        # another process (or thread) waits for the lock the session holds, then gives up clearly
        failed = []
        other = threading.Thread(target=lambda: failed.append(_busy(Store(store.path, lock_timeout=0.2))))
        other.start()
        other.join()
        assert failed == [True]
    assert len(opened) == 1  # one opening for the whole session
    with Store(store.path, lock_timeout=0.2).write():  # released afterwards
        pass


def _busy(store: Store) -> bool:
    try:
        with store.write():
            return False
    except StoreBusy:
        return True


def test_step_sessions_hold_the_mirror_only_for_targeted_runs(tmp_path):
    """A sensor's run holds one connection per step; a scheduled step (a large reconcile, a paced apply)
    leaves the lock free between its reads and writes for other runs' writers."""
    from types import SimpleNamespace

    from xz_pipeline.core.resources import TRIGGER_TAG, MirrorResource

    mirror = MirrorResource(path=str(tmp_path / "mirror"), lock_timeout=0.2)
    with mirror.store("acme").write() as con:
        Store.ensure_base(con)

    def other_writer_busy(connection: str = "acme") -> bool:
        busy = []
        thread = threading.Thread(target=lambda: busy.append(_busy(mirror.store(connection))))
        thread.start()
        thread.join()
        return busy == [True]

    with mirror.step_session(SimpleNamespace(run=SimpleNamespace(tags={TRIGGER_TAG: "inbox"})), "acme"):
        with mirror.store("acme").read():
            pass
        assert other_writer_busy()
        assert not other_writer_busy(
            "globex"
        )  # another connection's file has its own lock: it writes meanwhile
    with mirror.step_session(SimpleNamespace(run=SimpleNamespace(tags={})), "acme"):
        with mirror.store("acme").read():
            pass
        assert not other_writer_busy()
    assert sorted(p.name for p in (tmp_path / "mirror").glob("*.duckdb")) == ["acme.duckdb", "globex.duckdb"]


def test_a_reader_waits_for_another_process_writing_the_file_within_its_timeout(tmp_path):
    """A check reading a connection's file while another step writes it waits its turn (bounded), instead of
    failing at once; past its timeout it ends in StoreBusy naming the file."""
    import subprocess
    import sys
    import time

    path = tmp_path / "acme.duckdb"
    with Store(path).write() as con:
        con.execute("create table t as select 1 as x")
    writer = subprocess.Popen(
        [sys.executable, "-c", "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('open', flush=True); "
         "time.sleep(float(sys.argv[2])); c.close()", str(path), "1.5"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "open"
        with pytest.raises(StoreBusy, match="acme.duckdb is busy"), Store(path, lock_timeout=0.3).read():
            pass
        started = time.monotonic()
        with Store(path, lock_timeout=20).read() as con:
            assert con.execute("select x from t").fetchall() == [(1,)]
        assert time.monotonic() - started > 0.3  # it waited for the writer, then read
    finally:
        writer.wait(10)


def test_an_older_mirror_has_its_meta_tables_brought_up_to_date_when_its_state_is_read(tmp_path):
    """The state is read as the file is; a file from before `caught_up_at` and the sweep columns gets them."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema meta")
    con.execute("create table meta.cursors (connection varchar not null, vendor varchar not null, "
                "entity varchar not null, cursor_value timestamptz, last_full_sweep timestamptz, "
                "updated_at timestamptz not null, primary key (connection, vendor, entity))")  # fmt: skip
    con.execute("insert into meta.cursors values ('c', 'demo', 'Things', ?, ?, ?)", [T1, T1, T1])
    con.close()
    store = Store(path)
    assert read_sync_state(store, "c", "demo", "Things") == (T1, T1)
    assert read_sync_state(store, "c", "demo", "Other") == (None, None)
    with store.read() as con:
        columns = {r[0] for r in con.execute("select column_name from duckdb_columns() where table_name = 'cursors'").fetchall()}  # fmt: skip
    assert {"caught_up_at", "sweep_started_at", "sweep_position"} <= columns
    assert read_sync_state(Store(tmp_path / "none.duckdb"), "c", "demo", "Things") == (None, None)
    assert not (tmp_path / "none.duckdb").exists()
