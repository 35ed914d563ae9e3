"""Mirror benchmark (`make bench-mirror`): full and incremental syncs of a whole organisation.

For each size (default: medium, then large) the sandbox serves the generated organisation with its rate
limits raised (so the figures measure our code, not Xero's 60 calls a minute), and `xz sync --only mirror`
runs in a child process three times: a full first sync, an idle incremental run, and an incremental run
after 1% of the contacts, invoices and deals changed. For each run it prints wall time, API calls, rows,
rows per second, the child's peak RSS, and two shares of wall time: outside API calls (wall less the
seconds spent inside HTTP calls) and not waiting on the API (wall less the seconds the writer waited for
pages: chunks are read ahead in a thread while the previous one is written, so the time inside calls
overlaps the writes and the second figure is the honest one); and the time the real limits alone would
impose on the same calls (Xero: 60 calls a minute per organisation). The machine's load average is
printed with each run: the figures are only comparable at similar load.

Not part of `make test`. Large needs about 4 GB for the sandbox (the generated world and both emulators)
besides the pipeline process it measures; `--vendor xero` mirrors only the Xero side (for large, the
1,000,000 invoices, in a fraction of the time the CRM invoices' one read per record takes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

XERO_PER_MINUTE = 60  # the real per-organisation limit

# Sizes mirrored without the CRM invoices' line items, and why.
NO_SUBFORMS = {
    "large": "one read by id per CRM invoice: about 270,000 calls (the demo has 821 for 3,000 books invoices), "
    "days of a Standard edition's 50,000-100,000 daily credits and most of an hour even in this sandbox",
}


def vendor_sync(vendor: str) -> tuple[bool, dict[str, dict], str]:
    """`xz sync --only mirror` restricted to one vendor's extract assets and their checks (so the large
    organisation's Xero side can be measured in reasonable time)."""
    import dagster as dg

    from xz_pipeline import runner
    from xz_pipeline.core.resources import connections_partitions

    name = os.environ["XZ_CONNECTION"]
    inst = runner.instance()
    inst.add_dynamic_partitions(connections_partitions.name, [name])
    assets = [a for a in runner.ASSETS if any(a.group_names_by_key[k] == vendor for k in a.keys)]
    keys = {k for a in assets for k in a.keys}
    checks = [c for c in runner.CHECKS if all(spec.asset_key in keys for spec in c.check_specs)]
    result = dg.materialize(
        [*assets, *checks],
        partition_key=name,
        instance=inst,
        resources=runner.defs.resources,
        raise_on_error=False,
    )
    meta = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        meta[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    failures = [e.step_key for e in result.all_events if e.is_step_failure]
    return result.success, meta, ", ".join(str(f) for f in failures)


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not `ru_maxrss`: Linux keeps the forking parent's high-water
    mark across exec, so a child of the 10 GB large sandbox reported 10 GB whatever it used itself."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _where() -> str:
    """The innermost xz_pipeline frame of each thread but this one (what is running now)."""
    places = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        while frame is not None and "xz_pipeline/" not in frame.f_code.co_filename:
            frame = frame.f_back
        if frame is not None:
            places.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
    return " | ".join(sorted(places)) or "-"


def profile_memory(stop: threading.Event, every: float = 0.2) -> None:
    """`--profile-memory`: every time RSS passes its high-water mark by 50 MB, print where each thread
    is in our code (stderr), so a peak is traced to the step that made it."""
    started, high = time.monotonic(), 0.0
    while not stop.wait(every):
        rss = _rss_mb()
        if rss > high + 50:
            high = rss
            print(
                f"  mem {time.monotonic() - started:7.1f}s {rss:7,.0f} MB  {_where()}",
                file=sys.stderr,
                flush=True,
            )


def child(vendor: str | None) -> None:
    """Run inside the measured process: one in-process mirror sync, figures as JSON on the last line."""
    from xz_pipeline import runner

    if os.environ.get("XZ_BENCH_PROFILE_MEMORY"):
        threading.Thread(target=profile_memory, args=(threading.Event(),), daemon=True).start()
    started = time.monotonic()
    if vendor:
        success, meta, error = vendor_sync(vendor)
    else:
        (outcome,) = runner.sync(only="mirror", inst=runner.instance())
        success, meta, error = outcome.success, outcome.metadata, outcome.error
    wall = time.monotonic() - started
    if not success:
        raise SystemExit(f"sync failed: {error}")
    xero = [m for name, m in meta.items() if name.startswith("xero_")]
    zoho = [m for name, m in meta.items() if name.startswith("zoho_")]
    print(
        json.dumps(
            {
                "wall": wall,
                "rss_mb": peak_rss_mb(),
                "xero_calls": sum(m.get("api_calls", 0) for m in xero),
                "zoho_calls": sum(m.get("api_calls", 0) for m in zoho),
                "projects_calls": meta.get("xero_projects", {}).get("projects_calls", 0),  # of the xero_calls
                "api_seconds": sum(m.get("api_seconds", 0.0) for m in meta.values()),
                "read_wait": sum(m.get("read_wait_seconds", 0.0) for m in meta.values()),
                "write_seconds": sum(m.get("write_seconds", 0.0) for m in meta.values()),
                "fetched": sum(m.get("fetched", 0) for m in meta.values()),
                "written": sum(m.get("inserted", 0) + m.get("updated", 0) for m in meta.values()),
                "modes": sorted({m.get("mode", "") for m in meta.values()} - {""}),
                "assets": {
                    name: [
                        m.get(k, 0)
                        for k in (
                            "fetched",
                            "api_seconds",
                            "read_wait_seconds",
                            "write_seconds",
                            "reader_held_seconds",
                        )
                    ]
                    for name, m in meta.items()
                    if "api_seconds" in m
                },
            }
        )
    )


def change_one_percent(sb, env: dict, vendor: str | None) -> int:
    """Edit 1% of contacts, invoices (their reference) and deals through our own clients (sharing the
    pipeline's token store, as a second process of ours would)."""
    from xz_pipeline.xero.resources import XeroResource
    from xz_pipeline.zoho.resources import ZohoResource

    os.environ.update(env)
    tenant = env["XERO_TENANT_ID"]
    changed = 0
    books = sb.xero.books[tenant]  # the emulator's own records, read in place: a rendered copy of the
    # large organisation's 1,000,000 invoices would take the sandbox past 16 GB
    with XeroResource().client("bench") as xero:
        contacts = list(books.records["Contacts"])
        results = xero.update_contacts(
            [{"ContactID": i, "Website": "https://bench.example"} for i in contacts[: len(contacts) // 100]]
        )
        invoices = [
            i for i, r in books.records["Invoices"].items() if r.get("Status") in ("DRAFT", "AUTHORISED")
        ]
        results += xero.update_invoices(
            [{"InvoiceID": i, "Reference": "bench"} for i in invoices[: len(invoices) // 100]]
        )
        changed += sum(r.ok for r in results)
    if vendor == "xero":
        return changed
    with ZohoResource().client("bench") as zoho:
        deals = sorted(sb.zoho.orgs[sb.org_ids[0]].records["Deals"], key=int)
        changed += sum(
            r.ok
            for r in zoho.update(
                "Deals", [{"id": i, "Next_Step": "bench"} for i in deals[: len(deals) // 100]]
            )
        )
    return changed


def run_child(env: dict, vendor: str | None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *(["--vendor", vendor] if vendor else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    for line in out.stderr.splitlines():  # the memory profile, when asked for
        if line.startswith("  mem "):
            print(line, file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(size: str, seed: int, vendor: str | None = None) -> list[list]:
    from xz_pipeline.sandbox.server import SandboxServer
    from xz_pipeline.sandbox.xero import XeroLimits
    from xz_pipeline.sandbox.zoho import ZohoLimits

    rows = []
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as home,
        SandboxServer(
            seed=seed,
            size=size,
            xero_limits=XeroLimits(per_minute=10**7, per_day=10**9, app_per_minute=10**7),
            zoho_limits=ZohoLimits(credits_per_day=10**9, concurrency=100),
        ) as sb,
    ):
        print(f"{size}: sandbox ready in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
        env = {**os.environ, **sb.env(0), "XZ_HOME": home, "XZ_CONNECTION": "bench"}
        if size in NO_SUBFORMS:
            env["XZ_ZOHO_SUBFORMS"] = "off"
            print(f"{size}: XZ_ZOHO_SUBFORMS=off ({NO_SUBFORMS[size]})", file=sys.stderr, flush=True)
        for label in ("full", "idle", "after 1% changed"):
            if label == "after 1% changed":
                print(
                    f"{size}: changed {change_one_percent(sb, env, vendor):,} records",
                    file=sys.stderr,
                    flush=True,
                )
            load = os.getloadavg()[0]
            r = run_child(env, vendor)
            load = max(load, os.getloadavg()[0])
            outside = max(0.0, r["wall"] - r["api_seconds"]) / r["wall"] if r["wall"] else 0.0
            not_waiting = max(0.0, r["wall"] - r["read_wait"]) / r["wall"] if r["wall"] else 0.0
            rows.append(
                [
                    size,
                    label,
                    f"{r['wall']:.1f}",
                    f"{r['xero_calls']:,}",
                    f"{r['zoho_calls']:,}",
                    f"{r['fetched']:,}",
                    f"{r['written']:,}",
                    f"{r['fetched'] / r['wall']:,.0f}" if r["wall"] else "-",
                    f"{r['rss_mb']:,.0f}",
                    f"{outside:.0%}",
                    f"{not_waiting:.0%}",
                    f"{r['write_seconds']:.1f}",
                    f"{r['xero_calls'] / XERO_PER_MINUTE:.1f}",
                    f"{load:.1f}",
                ]
            )
            print(f"{size} {label}: {rows[-1]}", file=sys.stderr, flush=True)
            print(f"{size} {label}: Xero Projects calls {r.get('projects_calls', 0):,} (of the Xero calls; "
                  "the day's 5,000 are shared)", file=sys.stderr, flush=True)  # fmt: skip
            if label == "full":  # where the time went, per asset
                for name, (n, api, waited, written, held) in sorted(r["assets"].items()):
                    print(f"  {name:20} rows {n:>7,}  api {api:6.1f}s  writer waited {waited:6.1f}s  "
                          f"wrote {written:5.1f}s  reader held {held:5.1f}s", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", default=["medium", "large"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--vendor",
        choices=["xero"],
        help="mirror only this vendor (the large organisation's Xero side in minutes)",
    )
    parser.add_argument(
        "--profile-memory",
        action="store_true",
        help="trace each rise of the measured process's RSS to the code running (stderr)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_memory:
        os.environ["XZ_BENCH_PROFILE_MEMORY"] = "1"
    if args.child:
        child(args.vendor)
        return
    rows = []
    for size in args.sizes:
        rows.extend(bench(size, args.seed, args.vendor))
    print(
        tabulate(
            rows,
            headers=[
                "size",
                "run",
                "wall s",
                "Xero calls",
                "Zoho calls",
                "rows fetched",
                "rows written",
                "rows/s",
                "peak RSS MB",
                "outside API calls",
                "not waiting on API",
                "write s",
                "min at Xero's 60/min",
                "load (2 cores)",
            ],
        )  # fmt: skip
    )


if __name__ == "__main__":
    main()
