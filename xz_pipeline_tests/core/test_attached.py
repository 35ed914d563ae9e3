"""Mirrors opened for writing by attachment to the thread's DuckDB: released for other processes on exit,
one mirror per instance, a transaction left open is dropped as a close drops it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import duckdb

from xz_pipeline.core import attached
from xz_pipeline.core.store import Store

CONFIG = {"memory_limit": "256MB"}


def _other_process_writes(path) -> str:
    """What another process gets when it opens the mirror read-write: "ok" or DuckDB's error."""
    code = (
        "import duckdb, sys\n"
        "try:\n"
        f"    con = duckdb.connect({str(path)!r}); con.execute('insert into t values (99)'); con.close()\n"
        "    print('ok')\n"
        "except duckdb.Error as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_an_attached_mirror_is_held_while_open_and_released_after(tmp_path):
    path = tmp_path / "m.duckdb"
    con, release = attached.connect_writing(path, CONFIG)  # a new file is created, as duckdb.connect does
    con.execute("create table t (v int)")
    con.execute("insert into t values (1)")
    assert _other_process_writes(path) == "IOException"  # DuckDB's own lock on the file, as before
    release()
    assert _other_process_writes(path) == "ok"
    plain = duckdb.connect(str(path))
    assert sorted(r[0] for r in plain.execute("select v from t").fetchall()) == [1, 99]
    plain.close()


def test_a_second_mirror_inside_the_first_is_opened_alone_and_catalogues_see_one(tmp_path):
    first, release_first = attached.connect_writing(tmp_path / "a.duckdb", CONFIG)
    first.execute("create schema xero; create table xero.invoices (id int)")
    second, release_second = attached.connect_writing(tmp_path / "b.duckdb", CONFIG)
    second.execute("create schema xero; create table xero.contacts (id int)")

    def tables(con) -> list[str]:
        return sorted(r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall())

    assert tables(first) == ["invoices"] and tables(second) == ["contacts"]
    release_second()
    release_first()
    again, release = attached.connect_writing(tmp_path / "b.duckdb", CONFIG)
    assert tables(again) == ["contacts"]
    release()


def test_a_transaction_left_open_does_not_keep_the_file(tmp_path):
    path = tmp_path / "m.duckdb"
    con, release = attached.connect_writing(path, CONFIG)
    con.execute("create table t (v int)")
    con.execute("begin transaction")
    con.execute("insert into t values (5)")
    release()  # uncommitted, as with a close: the file is released and the row is not in it
    assert _other_process_writes(path) == "ok"
    con, release = attached.connect_writing(path, CONFIG)
    assert [r[0] for r in con.execute("select v from t").fetchall()] == [99]
    release()


def test_threads_write_their_own_mirrors_side_by_side(tmp_path):
    """Each thread has its own instance: two threads' attached sessions on two mirrors do not see each other."""
    stores = [Store(tmp_path / f"m{i}.duckdb") for i in range(2)]
    for store in stores:
        with store.write() as con:
            con.execute("create table t (v int)")
    barrier, seen = threading.Barrier(2), {}

    def work(i: int) -> None:
        with stores[i].session(attach=True), stores[i].write() as con:
            con.execute("insert into t values (?)", [i])
            barrier.wait(timeout=10)  # both mirrors are attached at once, in two instances
            seen[i] = [r[0] for r in con.execute("select v from t").fetchall()]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {0: [0], 1: [1]}


def test_a_forked_child_makes_its_own_instance(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    with store.write() as con:
        con.execute("create table t (v int)")
    with store.session(attach=True):  # the parent's instance exists before the fork
        pass
    pid = os.fork()
    if pid == 0:  # the child: write through its own instance, then leave without cleanup
        try:
            with store.session(attach=True), store.write() as con:
                con.execute("insert into t values (7)")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with store.read() as con:
        assert [r[0] for r in con.execute("select v from t").fetchall()] == [7]
