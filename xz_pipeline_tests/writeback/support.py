"""Shared arrangements for the write-back tests: one demo world mirrored and reconciled once per
session, then a fresh sandbox (the same deterministic world) and a copy of that mirror per test."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from xz_pipeline import runner, settings
from xz_pipeline.core.store import Store
from xz_pipeline.reconcile.assets import reconcile
from xz_pipeline.reconcile.persist import persist_discrepancies, read_canonical, read_decisions, write_links
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.writeback.policies import Policies
from xz_pipeline.xero.writer import XeroWriterResource
from xz_pipeline.zoho.writer import ZohoWriterResource

SEED = 5
CONNECTION = "sandbox-1"


def build_baseline(home: Path) -> Path:
    """Mirror and reconcile the demo world once (about 20 s); returns the mirror file to copy."""
    previous = os.environ.get("XZ_HOME")
    os.environ["XZ_HOME"] = str(home)
    try:
        with SandboxServer(seed=SEED, size="demo") as sb:
            sb.write_connections_file(settings.connections_file())
            outcomes = runner.sync(inst=runner.instance())
            assert all(o.success for o in outcomes), [o.error for o in outcomes]
    finally:
        if previous is None:
            os.environ.pop("XZ_HOME", None)
        else:
            os.environ["XZ_HOME"] = previous
    return settings.mirror_path(CONNECTION, {"XZ_HOME": str(home)})


def start(baseline: Path, **kw) -> tuple[SandboxServer, Store]:
    """A fresh sandbox of the same world and a copy of the baseline mirror in this test's XZ_HOME."""
    sb = SandboxServer(seed=SEED, size="demo", **kw).start()
    sb.write_connections_file(settings.connections_file())
    target = settings.mirror_path(CONNECTION)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(baseline, target)
    return sb, Store(target)


def writers(trigger=()):
    return XeroWriterResource().writer(CONNECTION), ZohoWriterResource().writer(CONNECTION, trigger=trigger)


def reconcile_again(store: Store) -> dict[str, int]:
    """The reconcile stage's own computation and persistence on the current mirror; open kinds."""
    with store.read() as con:
        frames, decisions = read_canonical(con), read_decisions(con)
    result = reconcile(frames, decisions)
    now = datetime.now(UTC)
    with store.write() as con:
        write_links(con, result.customer_links, result.invoice_links, [CONNECTION], now)
        persist_discrepancies(con, result.discrepancies, [CONNECTION], now)
    return {str(k): int(v) for k, v in result.discrepancies.groupby("kind").size().items()}


def open_discrepancies(store: Store, kind: str) -> list[dict]:
    with store.read() as con:
        cur = con.execute(
            "select * from recon.discrepancies where connection = ? and kind = ? and resolved_at is null",
            [CONNECTION, kind],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def ledger_rows(store: Store) -> list[dict]:
    with store.read() as con:
        cur = con.execute("select * from writeback.ledger order by started_at")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def plan_status(store: Store) -> dict[str, int]:
    with store.read() as con:
        return dict(con.execute("select status, count(*) from writeback.plan group by 1").fetchall())


def writes_received(sb: SandboxServer) -> tuple[list, list]:
    """Write requests each emulator answered (Xero: PUT/POST under the API; Zoho: POST/PUT/DELETE)."""
    xero = [r for r in sb.xero.received if r.method in ("PUT", "POST") and "/api.xro/" in r.path]
    zoho = [
        r
        for r in sb.zoho.received
        if r.method in ("PUT", "POST", "DELETE") and "/crm/" in r.path and not r.path.endswith("/coql")
    ]
    return xero, zoho


DEFAULT = Policies()
