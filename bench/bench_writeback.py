"""Write-back benchmark (`make bench-writeback`): write calls per 1,000 changes per system, and wall time.

For each size (default: demo; `SIZES="demo medium"`) the sandbox serves the generated organisation with
its rate limits raised, the pipeline mirrors and reconciles it in process, then write-back plans and
applies the default policies (the mass-change guard approved: a first run on a generated world changes a
lot). A change is one row of `writeback.plan` (one field of one record). It prints, per system, changes,
write calls (HTTP calls: a Zoho composite call carrying up to five writes counts once), calls per 1,000
changes (goals: Zoho <= 10, Xero <= 20), plan and apply wall time; then a second full cycle (sync,
reconcile, plan, apply), which should make zero write calls.

Not part of `make test`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from xz_pipeline_tests.mirrors import only_mirror

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOALS = {"books": 20, "crm": 10}


def bench(size: str, seed: int = 7) -> list[list]:
    from xz_pipeline import runner, settings
    from xz_pipeline.core.store import Store
    from xz_pipeline.sandbox.server import SandboxServer
    from xz_pipeline.sandbox.xero import XeroLimits
    from xz_pipeline.sandbox.zoho import ZohoLimits
    from xz_pipeline.writeback.apply import apply
    from xz_pipeline.writeback.plan import build_plan
    from xz_pipeline.writeback.policies import load_policies
    from xz_pipeline.xero.writer import XeroWriterResource
    from xz_pipeline.zoho.writer import ZohoWriterResource

    rows = []
    with tempfile.TemporaryDirectory() as home:
        os.environ["XZ_HOME"] = home
        os.environ["XZ_WRITEBACK_APPROVE"] = (
            "all"  # the sync's guard check too: a generated world changes a lot
        )
        with SandboxServer(
            seed=seed,
            size=size,
            xero_limits=XeroLimits(per_minute=10**7, per_day=10**9, app_per_minute=10**7),
            zoho_limits=ZohoLimits(credits_per_day=10**9, concurrency=100),
        ) as sb:
            sb.write_connections_file(settings.connections_file())
            connection = sb.connection_name(0)
            store = Store(only_mirror())
            for cycle in range(1, int(os.environ.get("XZ_BENCH_CYCLES", "2")) + 1):
                started = time.monotonic()
                (outcome,) = runner.sync(inst=runner.instance())
                assert outcome.success, outcome.error
                synced = time.monotonic() - started
                policies = load_policies(connection)
                started = time.monotonic()
                build_plan(store, connection, policies)
                planned = time.monotonic() - started
                with store.read() as con:
                    changes = dict(
                        con.execute(
                            "select system, count(*) from writeback.plan where connection = ? "
                            "and status in ('planned', 'rejected') group by 1",
                            [connection],
                        ).fetchall()
                    )
                books = XeroWriterResource().writer(connection)
                crm = ZohoWriterResource().writer(connection)
                started = time.monotonic()
                report = apply(store, connection, books, crm, policies, approve=True)
                applied = time.monotonic() - started
                assert not report.blocked, report.blocked
                if cycle > 1 and report.applied:
                    with store.read() as con:  # what still changed: a write that did not stick, or news
                        for row in con.execute(
                            "select policy, system, entity, op, record, field, old, new, reason from writeback.plan "
                            "where connection = ? and applied_at >= now() - interval 10 minute and attempts > 0 "
                            "order by applied_at desc limit 10",
                            [connection],
                        ).fetchall():
                            print("  cycle", cycle, "changed:", row, file=sys.stderr, flush=True)
                for system, label in (("books", "xero"), ("crm", "zoho")):
                    n, calls = changes.get(system, 0), report.write_calls[system]
                    per = f"{1000 * calls / n:.1f}" if n else "-"
                    rows.append([size, cycle, label, n, calls, per, GOALS[system], f"{synced:.1f}",
                                 f"{planned:.2f}", f"{applied:.2f}", report.rejected])  # fmt: skip
                print(report.summary(), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    sizes = sys.argv[1:] or ["demo"]
    rows = [r for size in sizes for r in bench(size)]
    print(tabulate(rows, headers=["size", "cycle", "system", "changes", "write calls", "calls/1k changes", "goal",
                                  "sync s", "plan s", "apply s", "rejected"]))  # fmt: skip


if __name__ == "__main__":
    main()
