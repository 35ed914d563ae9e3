"""`xz migrate`: a single-file mirror of the previous layout (two connections in one `mirror.duckdb`) becomes
one file per connection, every row in its connection's file and none lost; until then, commands say so in one
line; run again, it does nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from xz_pipeline import cli, settings
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.store import Store
from xz_pipeline.definitions import VENDOR_VIEWS
from xz_pipeline.sandbox.world import generate
from xz_pipeline.sandbox.xero import XeroEmulator
from xz_pipeline.sandbox.zoho import ZohoEmulator
from xz_pipeline.views import install_canonical
from xz_pipeline.xero import tables as xero_tables
from xz_pipeline.zoho import tables as zoho_tables

FETCHED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CONNECTIONS = {"acme": 3, "globex": 4}  # connection -> the seed of its world


def _legacy_mirror(path) -> None:
    """The previous layout: every connection's rows in one file, told apart by the `connection` column, with
    cursors, a quarantine row and the canonical views as the pipeline left them."""
    store = Store(path)
    for connection, seed in CONNECTIONS.items():
        world = generate(seed=seed, size="tiny")
        xero, zoho = XeroEmulator(), ZohoEmulator()
        tenant, org = xero.seed_world(world), zoho.seed_world(world)
        for specs, emulator, owner in (
            (xero_tables.ENTITIES, xero, tenant),
            (zoho_tables.ENTITIES, zoho, org),
        ):
            for spec in specs:
                write_entity(store, spec, connection=connection, payloads=emulator.dump(owner, spec.entity),
                             fetched_at=FETCHED_AT, run_id=f"run-{connection}", full=True)  # fmt: skip
        with store.write() as con:
            Store.set_cursor(con, connection, "xero", "Invoices", FETCHED_AT, full_sweep_at=FETCHED_AT)
    with store.write() as con:
        con.execute(
            "insert into meta.quarantine (connection, vendor, entity, record_id, rule, reason, quarantined_at) "
            "values ('globex', 'xero', 'Invoices', 'x-1', 'typed', 'a bad date', ?)",
            [FETCHED_AT],
        )
        install_canonical(con, VENDOR_VIEWS)


def _counts(con, database: str) -> dict[str, int]:
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = ?", [database]
    ).fetchall()
    return {
        f"{s}.{t}": con.execute(f'select count(*) from "{database}"."{s}"."{t}"').fetchone()[0]
        for s, t in tables
    }


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    home = tmp_path_factory.mktemp("legacy-home")
    _legacy_mirror(home / "mirror.duckdb")
    return home


@pytest.fixture
def legacy_home(legacy, monkeypatch):
    monkeypatch.setenv("XZ_HOME", str(legacy))  # every test of the module works on the same home, in order
    return legacy


def test_commands_say_in_one_line_to_migrate_first(legacy_home, capsys):
    for command in (["status"], ["sync"], ["review", "list"]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "single file from an earlier version" in err[0] and "xz migrate" in err[0], (
            err
        )
    assert not (legacy_home / "mirror").exists()  # nothing was written beside it


def test_migrate_splits_every_table_by_connection_and_loses_nothing(legacy_home, capsys):
    legacy = legacy_home / "mirror.duckdb"
    con = duckdb.connect()
    con.execute(f"attach '{legacy}' as old (read_only)")
    before = _counts(con, "old")
    canonical_before = dict(
        con.execute("select connection, count(*) from old.canonical.books_invoices group by 1").fetchall()
    )
    con.execute("detach old")

    assert cli.main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert "into 2 connection file(s)" in out and "acme:" in out and "globex:" in out and "s\n" in out
    assert not legacy.exists() and (legacy_home / "mirror.duckdb.pre-migrate").exists()
    files = {p.stem: p for p in (legacy_home / "mirror").glob("*.duckdb")}
    assert sorted(files) == sorted(CONNECTIONS)

    after: dict[str, int] = {}
    for connection, path in files.items():
        con.execute(f"attach '{path}' as f (read_only)")
        for table, n in _counts(con, "f").items():
            if table == "meta.schema_version":  # no connection column: each file has all of it
                assert n == before[table]
                continue
            after[table] = after.get(table, 0) + n
            others = con.execute(
                f"select count(*) from f.{table} where connection <> ?", [connection]
            ).fetchone()[0]
            assert others == 0, f"{table} of {connection} holds another connection's rows"
        # the views are installed again over this file alone, and see exactly this connection's rows
        assert (
            con.execute("select count(*) from f.canonical.books_invoices").fetchone()[0]
            == canonical_before[connection]
            > 0
        )
        con.execute("detach f")
    assert {t: n for t, n in after.items()} == {t: n for t, n in before.items() if t != "meta.schema_version"}
    assert before["xero.invoices"] > 0 and before["zoho.deals"] > 0 and before["meta.quarantine"] == 1

    store = Store(settings.mirror_path("globex"))
    with store.write() as con2:
        Store.set_cursor(con2, "globex", "xero", "Invoices", datetime(2026, 2, 1, tzinfo=UTC))
        assert (
            con2.execute(
                "select count(*) from meta.cursors where vendor = 'xero' and entity = 'Invoices'"
            ).fetchone()[0]
            == 1
        )
        assert con2.execute("select count(*) from meta.quarantine").fetchone()[0] == 1


def test_migrate_again_does_nothing_and_commands_work(legacy_home, capsys):
    if (legacy_home / "mirror.duckdb").exists():  # xdist ran the splitting test on the other worker
        assert cli.main(["migrate"]) == 0
        capsys.readouterr()
    files = sorted((legacy_home / "mirror").glob("*.duckdb"))
    stamps = [p.stat().st_mtime_ns for p in files]
    assert cli.main(["migrate"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in files] == stamps
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "acme" in out and "globex" in out  # each connection's cursors, read from its own file
