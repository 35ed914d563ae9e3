"""`xz sync --apply` reports the discrepancies as they stand after write-back and its refresh: the counts it
prints per connection and kind are what `recon.discrepancies` (and the analysts' snapshot) hold open once the
command ends, and a dry run's write-back never says it applied anything."""

from __future__ import annotations

import contextlib
import io
import re

import duckdb
import pytest

from xz_pipeline import cli
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox


def _table(text: str, title: str) -> list[list[str]]:
    """The rows of the tabulate table printed under a line starting with `title` (columns split on 2+ spaces)."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(title))
    rows = []
    for line in lines[start + 3 :]:  # title, header, dashes
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def _open_in(path, *, read_only: bool = False) -> dict[tuple[str, str], int]:
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        rows = con.execute(
            "select connection, kind, count(*) from recon.discrepancies where resolved_at is null group by 1, 2"
        ).fetchall()
    finally:
        con.close()
    return {(c, k): n for c, k, n in rows}


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """A tiny world mirrored and reconciled, then write-back as a dry run and for real (`xz sync --only
    writeback`, then with `--apply --approve`): one read of the world, the two reports kept."""
    home = tmp_path_factory.mktemp("report-after-apply")
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    try:
        with SandboxServer(seed=7, size="tiny") as sb:
            export_sandbox(mp, sb, sb.connection_name(0))
            reports = {}
            steps = (("mirror", ["sync", "--only", "mirror"]), ("reconcile", ["sync", "--only", "reconcile"]),
                     ("dry", ["sync", "--only", "writeback"]),
                     ("apply", ["sync", "--only", "writeback", "--apply", "--approve"]))  # fmt: skip
            for label, argv in steps:
                out = io.StringIO()  # capsys is function-scoped; the module shares one world
                with contextlib.redirect_stdout(out):
                    code = cli.main(argv)
                reports[label] = (code, out.getvalue())
            yield reports, sb.connection_name(0), Store(only_mirror()), sb
    finally:
        mp.undo()


def test_a_dry_run_says_would_apply_and_names_the_dry_run_as_the_reason(synced):
    reports, connection, _store, _sb = synced
    code, text = reports["dry"]
    assert code == 0, text
    (row,) = _table(text, "Write-back")
    assert row[:2] == [connection, "dry run"] and int(row[2]) > 0
    why = [r[-1] for r in _table(text, "Discrepancies by connection and kind") if len(r) == 4]
    assert any("planned, not written (dry run; --apply writes them)" in w for w in why), why
    # In the asset's metadata too: the dry run says would_apply, the real one applied, never the other way.
    import dagster as dg

    from xz_pipeline import runner

    inst = runner.instance(_store.path.parent.parent)  # $XZ_HOME/mirror/<connection>.duckdb
    records = inst.fetch_materializations(dg.AssetKey("writeback_apply"), limit=10).records
    metas = [r.asset_materialization.metadata for r in sorted(records, key=lambda r: r.timestamp)]
    assert [(m["dry_run"].value, "would_apply" in m, "applied" in m) for m in metas] == [
        (True, True, False),
        (False, False, True),
    ]
    assert metas[0]["would_apply"].value == int(row[2])


def test_the_report_after_apply_counts_what_recon_holds_open_afterwards(synced):
    reports, connection, store, sb = synced
    code, text = reports["apply"]
    assert code == 0, text
    assert "reconcile after write-back" in text  # the run that read the corrected systems
    assert "reconciled again after write-back wrote and read back its changes" in text
    rows = _table(text, "Discrepancies by connection and kind")
    assert {r[0] for r in rows} == {connection}
    printed = {(r[0], r[1]): int(r[2]) for r in rows if int(r[2])}
    held = _open_in(store.path)
    assert printed == held
    assert (
        _open_in(store.path.parent.parent / "snapshot.duckdb", read_only=True) == held
    )  # the snapshot was republished too
    # The write-back did fix something, and the report shows it fixed: fewer open than before the write.
    before = {
        (r[0], r[1]): int(r[2]) for r in _table(reports["dry"][1], "Discrepancies by connection and kind")
    }
    assert sum(held.values()) < sum(before.values())
    assert sb.zoho.received and any(r.method in ("POST", "PUT") for r in sb.zoho.received)
    # Every kind still open says why, and a kind fixed by a policy that wrote is not blamed on a dry run.
    for r in rows:
        if int(r[2]):
            assert len(r) == 4 and r[3], r
            assert "dry run" not in r[3], r
    (row,) = _table(text, "Write-back")
    assert row[1] == "applied" and int(row[2]) > 0


def test_the_snapshot_asset_carries_the_plots_with_history(synced):
    """Every publish of the four runs added a point; the mirror run's calls are counted per vendor."""
    import dagster as dg

    from xz_pipeline import runner

    _reports, connection, store, _sb = synced
    held = _open_in(store.path)
    inst = runner.instance(store.path.parent.parent)
    event = inst.get_latest_materialization_event(dg.AssetKey("analytics_snapshot"))
    meta = event.asset_materialization.metadata
    trend = meta["open_discrepancies_over_time"].value
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in trend.splitlines()[2:]]
    # Two publishes reconciled (before the write and after it; the mirror's had nothing to count yet): the
    # kinds write-back fixed come down to 0, the ones it leaves to a person stay flat.
    assert rows and all(r[6] == "2" for r in rows), trend
    fixed = {r[1] for r in rows if r[3] == "█▁" and r[2] == "0"}
    assert fixed == {k for _, k in held} ^ {r[1] for r in rows} and fixed, trend
    assert "not yet due" in meta["ar_aging"].value
    calls = meta["api_calls_per_day"].value
    assert f"| {connection} |" in calls and "| xero |" in calls and "| zoho |" in calls, calls
    assert meta["open_discrepancies"].value == sum(_open_in(store.path).values())
    with duckdb.connect(str(store.path), read_only=True) as con:
        per_vendor = con.execute(
            "select r.api_calls, sum(c.calls) filter (where c.vendor = 'xero'), "
            "sum(c.calls) filter (where c.vendor = 'zoho') from meta.runs r join meta.api_calls c using "
            "(connection, run_id) where r.api_calls > 0 group by r.run_id, r.api_calls order by min(r.started_at)"
        ).fetchall()
    total, xero, zoho = per_vendor[0]  # the mirror run: every call it made, split by vendor
    assert xero > 0 and zoho > 0 and xero + zoho == total
