"""`xz plan` for people: sorted and grouped per record, policy and reason on every row, the first 50 with a
line saying how to see the rest, `--all`, and CSV/JSON holding exactly the rows of `writeback.plan`; every
`--connection` option is documented (run in process against the tiny sandbox)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime

import pytest

from xz_pipeline import cli, runner, settings
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.sandbox_env import export_sandbox


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny world mirrored and reconciled for the module (the sandbox still serving): its XZ_HOME."""
    home = tmp_path_factory.mktemp("plan-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    mp.setenv("XZ_ZOHO_SUBFORMS", "off")
    (home / "dagster").mkdir()
    try:
        with SandboxServer(seed=5, size="tiny") as sb:
            export_sandbox(mp, sb, sb.connection_name(0))
            inst = runner.instance(home)
            for stage in ("mirror", "reconcile"):
                assert all(o.success for o in runner.sync(None, inst=inst, only=stage))
            yield home, sb
    finally:
        mp.undo()


@pytest.fixture
def env(world, monkeypatch):
    home, sb = world
    monkeypatch.setenv("XZ_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("XZ_ZOHO_SUBFORMS", "off")
    export_sandbox(monkeypatch, sb, sb.connection_name(0))
    return sb.connection_name(0)


def _db_rows(connection: str) -> list[dict]:
    with Store(settings.mirror_path(connection)).read() as con:
        cur = con.execute("select * from writeback.plan where connection = ?", [connection])
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _plan(capsys, *args) -> str:
    assert cli.main(["plan", *args]) == 0
    return capsys.readouterr().out


def test_json_parses_back_to_exactly_the_plan_rows(env, capsys):
    parsed = json.loads(_plan(capsys, "--format", "json"))
    db = _db_rows(env)
    assert len(parsed) == len(db) > 50
    by_id = {r["change_id"]: r for r in db}
    assert len(by_id) == len(db) == len({r["change_id"] for r in parsed})
    for row in parsed:
        want = by_id[row["change_id"]]
        assert set(row) == set(want)
        for key, value in want.items():
            got = row[key]
            if isinstance(value, datetime):
                assert datetime.fromisoformat(got) == value, key
            else:
                assert got == value, (key, got, value)
    # sorted by system, record (or the ref of a record to be created), field
    keys = [(r["system"], r["record"] or r["ref"]) for r in parsed]
    assert keys == sorted(keys)


def test_csv_holds_every_row(env, capsys):
    rows = list(csv.DictReader(io.StringIO(_plan(capsys, "--format", "csv"))))
    db = _db_rows(env)
    assert sorted(r["change_id"] for r in rows) == sorted(r["change_id"] for r in db)
    assert {r["policy"] for r in rows} == {r["policy"] for r in db}


def test_table_shows_fifty_grouped_rows_and_says_how_to_see_the_rest(env, capsys):
    out = _plan(capsys)
    db = _db_rows(env)
    lines = out.splitlines()
    assert lines[0].startswith(f"Write-back plan for {env}: {len(db)} change(s)")
    header = lines[1]
    for column in ("record", "field", "old", "new", "policy", "status", "reason"):
        assert re.search(rf"\b{column}\b", header), header
    body = [ln for ln in lines[3:] if not ln.startswith("...")]
    assert len(body) == 50
    assert lines[-1] == (
        f"... {len(db) - 50} more change(s) not shown: `xz plan --connection {env} --all` lists every one "
        "(or --format csv|json)"
    )
    policies = {r["policy"] for r in db}
    assert all(any(p in ln for p in policies) for ln in body)  # every row names its policy

    everything = _plan(capsys, "--all").splitlines()
    rows = everything[3:]
    assert len(rows) == len(db) and not any(ln.startswith("...") for ln in rows)
    # grouped: each record named once, on the first of its rows
    named = [ln[: header.index("field")].strip() for ln in rows]
    labels = [n for n in named if n]
    assert len(labels) == len(set(labels))
    assert len(labels) < len(rows)  # some record has several fields


def test_every_connection_option_is_documented():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    with_option = {
        name: action
        for name, p in sub.choices.items()
        for action in p._actions
        if "--connection" in action.option_strings
    }
    assert {"sync", "plan", "apply", "setup", "auth", "doctor"} <= set(with_option)
    for name, action in with_option.items():
        assert action.help and "connection" in action.help, name


def test_refused_changes_are_held_back_and_retried_only_when_asked(env, capsys, monkeypatch):
    """A change the API refused stays in the plan with its reason and is not sent again by itself (the same
    request would be refused again); `xz plan` says how to send it once more, and `xz apply
    --retry-rejected` asks for exactly that."""
    _plan(capsys, "--connection", env)
    with Store(settings.mirror_path(env)).write() as con:
        (change_id,) = con.execute(
            "select change_id from writeback.plan where status = 'planned' order by change_id limit 1"
        ).fetchone()
        con.execute(
            "update writeback.plan set status = 'rejected', attempts = 1, error = ? where change_id = ?",
            ["6240 Duplicate Name Exists Error", change_id],
        )
    out = _plan(capsys, "--connection", env, "--all")
    assert "rejected: 6240 Duplicate Name Exists Error" in out
    assert (
        f"1 change(s) the API refused are held back (their status says why): fix the record there, then "
        f"`xz apply --connection {env} --retry-rejected` sends them once more"
    ) in out
    from xz_pipeline.writeback import ledger

    store = Store(settings.mirror_path(env))
    held = ledger.pending(store, env, rejected=False)
    assert change_id not in set(held["change_id"]) and len(held) == len(ledger.pending(store, env)) - 1

    asked: list[bool] = []

    def apply_connection(store, connection, resources, *, approve=False, retry_rejected=False):
        from xz_pipeline.writeback.apply import ApplyReport

        asked.append(retry_rejected)
        return ApplyReport(connection, held=0 if retry_rejected else 1)

    import xz_pipeline.writeback.assets as assets

    monkeypatch.setattr(assets, "apply_connection", apply_connection)
    assert cli.main(["apply", "--connection", env]) == 0
    assert "held back 1 change(s) the API refused before" in capsys.readouterr().out
    assert cli.main(["apply", "--connection", env, "--retry-rejected"]) == 0
    assert asked == [False, True]
