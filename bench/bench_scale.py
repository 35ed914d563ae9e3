"""Fleet benchmark (`make bench-scale`): N tiny organisation pairs mirrored in batched runs, one per shard.

The sandbox serves N Xero+Zoho pairs (`--connections`, default 200) with their real rate limits. The
connections sensor registers them (one request); then the `mirror_incremental` schedule is ticked and each
RunRequest it returns (one per shard of XZ_SHARD_SIZE connections) runs in a process of its own, as the
queue's default run launcher would start it (Dagster's import and launch cost included), at most
`--workers` at once and never two of one shard (the `xz/shard` tag limit). Three sweeps: the first sync
of every connection, an idle incremental sweep, and a sweep after 1% of the organisations changed (a
contact and an invoice in Xero, a deal in Zoho). For each: wall time, runs, API calls per vendor and per
entity as the sandbox received them, the most calls one organisation received for one entity, the
largest run process's peak RSS, and the machine's load. Figures measured at N are extrapolated to 1,000
connections beside them (sweeps scale with the number of shards; the workers stay the same).

Then isolation: every row of every connection's mirror comes from its own tenant (ids checked against
the sandbox's records), also after a targeted run of one connection that names another tenant's
invoice and deal ids (as a misrouted webhook or notification would).

Gates (PASS/FAIL): the idle sweep of 1,000 connections within 15 minutes at 1 call per Xero entity and 2
per Zoho module (the `/deleted` probe) per organisation; the first syncs of 1,000 within an hour; no row
of one connection in another's mirror. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 1000  # the fleet the gates speak of
SWEEP_LIMIT = 15 * 60  # the incremental schedule's period
FIRST_SYNC_LIMIT = 60 * 60


def vm(field: str, pid: str = "self") -> float:
    """A /proc status figure in MB (VmHWM: peak RSS; VmRSS: now)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- the run worker ---------------------------------------------------------------------------------


def child(request_file: str) -> None:
    """One run, as a run worker: load the code location, execute the RunRequest, figures as JSON."""
    import dagster as dg

    from xz_pipeline.definitions import defs
    from xz_pipeline.fleet.inprocess import execute_request

    spec = json.loads(Path(request_file).read_text())
    request = dg.RunRequest(
        run_key=spec.get("run_key"),
        partition_key=spec.get("partition_key"),
        asset_selection=[dg.AssetKey.from_user_string(k) for k in spec["assets"]],
        asset_check_keys=[dg.AssetCheckKey(dg.AssetKey.from_user_string(a), n) for a, n in spec["checks"]],
        run_config=spec["run_config"],
        tags=spec["tags"],
    )
    with dg.DagsterInstance.get() as instance:
        result = execute_request(defs, request, instance)
    failures = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.event_specific_data.error
            failures.append(f"{event.step_key}: {(error.message or '').strip().splitlines()[0][:300]}")
    print(json.dumps({"success": result.success, "rss_mb": vm("VmHWM"), "failures": failures}))


# -- the parent -------------------------------------------------------------------------------------


def request_spec(request) -> dict:
    return {
        "run_key": request.run_key,
        "partition_key": request.partition_key,
        "assets": [k.to_user_string() for k in request.asset_selection or []],
        "checks": [[c.asset_key.to_user_string(), c.name] for c in request.asset_check_keys or []],
        "run_config": dict(request.run_config or {}),
        "tags": dict(request.tags),
    }


def launch(requests: list, env: dict, workdir: Path, workers: int) -> tuple[float, list[dict]]:
    """Each request in a process of its own, `workers` at a time (each shard appears once a sweep, so no
    two runs of one shard overlap, as the tag limit guarantees under the daemon)."""
    files = []
    for i, request in enumerate(requests):
        path = workdir / f"request-{time.monotonic_ns()}-{i}.json"
        path.write_text(json.dumps(request_spec(request)))
        files.append((request.tags.get("xz/shard", "-"), path))
    shards = [s for s, _ in files]
    assert len(shards) == len(set(shards)), "two runs of one shard in a sweep"

    def one(item) -> dict:
        shard, path = item
        started = time.monotonic()
        out = subprocess.run([sys.executable, __file__, "--child", str(path)], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=4 * 3600)  # fmt: skip
        wall = time.monotonic() - started
        try:
            figures = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            figures = {"success": False, "rss_mb": 0.0, "failures": [out.stderr.strip()[-600:]]}
        return {"shard": shard, "wall": wall, "exit": out.returncode, **figures}

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = list(pool.map(one, files))
    return time.monotonic() - started, runs


def entity_of(vendor: str, path: str) -> str | None:
    """The entity a request read (None: OAuth and other non-data calls)."""
    parts = [p for p in path.split("/") if p]
    if vendor == "xero":
        if path.startswith("/api.xro/2.0/") and len(parts) >= 3:
            return parts[2]
        if path.startswith("/projects.xro/2.0/") and len(parts) >= 3:
            return "projects/" + parts[2]
        return None
    if path.startswith("/crm/") and len(parts) >= 3:
        return parts[2] if parts[2] != "settings" else "settings/" + (parts[3] if len(parts) > 3 else "")
    return None


def calls_since(sb, marks: dict) -> dict:
    """The sandbox's requests since `marks`: per vendor and entity, and the most one org got for one."""
    out = {}
    for vendor, log, who in (("xero", sb.xero.received, "tenant_id"), ("zoho", sb.zoho.received, "org_id")):
        new = log[marks[vendor] :]
        per_entity: Counter = Counter()
        per_org_entity: Counter = Counter()
        other = 0
        for r in new:
            entity = entity_of(vendor, r.path)
            if entity is None:
                other += 1
                continue
            per_entity[entity] += 1
            per_org_entity[(getattr(r, who), entity)] += 1
        out[vendor] = {
            "total": len(new),
            "data": sum(per_entity.values()),
            "other": other,  # OAuth token refreshes and the like
            "per_entity": dict(sorted(per_entity.items())),
            "max_per_org_entity": max(per_org_entity.values(), default=0),
            "orgs": len({o for o, _ in per_org_entity}),
        }
    return out


def marks(sb) -> dict:
    return {"xero": len(sb.xero.received), "zoho": len(sb.zoho.received)}


def sweep(label, sb, schedule, instance, defs, env, workdir, workers, downstream: bool = False) -> dict:
    import dagster as dg

    ctx = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime.now(UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = schedule.evaluate_tick(ctx).run_requests
    if not downstream:  # the mirror sweep: the schedule's runs, their extract steps only
        from xz_pipeline.definitions import EXTRACT_ASSETS

        extract = {k for a in EXTRACT_ASSETS for k in a.keys}
        requests = [
            r.with_replaced_attrs(
                asset_selection=[k for k in r.asset_selection if k in extract], asset_check_keys=[]
            )
            for r in requests
        ]
    before, load = marks(sb), os.getloadavg()[0]
    wall, runs = launch(requests, env, workdir, workers)
    return {
        "label": label,
        "wall": wall,
        "runs": runs,
        "calls": calls_since(sb, before),
        "load": (load, os.getloadavg()[0]),
    }


def change_one_percent(sb, names: list[str]) -> list[str]:
    """A contact and an invoice in Xero, a deal in Zoho, in 1% of the organisations (at least one),
    through our own clients (as another process of ours would)."""
    from xz_pipeline.xero.resources import XeroResource
    from xz_pipeline.zoho.resources import ZohoResource

    chosen = names[:: max(1, len(names) // max(1, len(names) // 100))][: max(1, len(names) // 100)]
    for name in chosen:
        i = names.index(name)
        books = sb.xero.books[sb.tenant_ids[i]]
        contact = next(iter(books.records["Contacts"]))
        invoice = next(
            k for k, r in books.records["Invoices"].items() if r.get("Status") in ("DRAFT", "AUTHORISED")
        )
        with XeroResource().client(name) as xero:
            assert all(
                r.ok
                for r in xero.update_contacts([{"ContactID": contact, "Website": "https://bench.example"}])
            )
            assert all(r.ok for r in xero.update_invoices([{"InvoiceID": invoice, "Reference": "bench"}]))
        deal = sorted(sb.zoho.orgs[sb.org_ids[i]].records["Deals"], key=int)[0]
        with ZohoResource().client(name) as zoho:
            assert all(r.ok for r in zoho.update("Deals", [{"id": deal, "Next_Step": "bench"}]))
    return chosen


def cross_tenant_run(sb, names, env, workdir) -> dict:
    """A targeted run of the first connection naming the second tenant's invoice and deal ids."""
    import dagster as dg

    from xz_pipeline.core.resources import TRIGGER_TAG

    other = 1 if len(names) > 1 else 0
    invoices = list(sb.xero.books[sb.tenant_ids[other]].records["Invoices"])[:3]
    deals = list(sb.zoho.orgs[sb.org_ids[other]].records["Deals"])[:3]
    request = dg.RunRequest(
        partition_key=names[0],
        asset_selection=[dg.AssetKey("xero_invoices"), dg.AssetKey("zoho_deals")],
        asset_check_keys=[],
        run_config={
            "ops": {"xero_invoices": {"config": {"ids": invoices}}, "zoho_deals": {"config": {"ids": deals}}}
        },
        tags={TRIGGER_TAG: "bench-cross-tenant"},
    )
    _, (run,) = launch([request], env, workdir, 1)
    return run


def isolation(sb, names: list[str], mirror_dir: Path) -> list[str]:
    """Every row of each connection's mirror: its own connection, and (for the id-keyed tables checked)
    ids of its own tenant/org only."""
    import duckdb

    problems = []
    for i, name in enumerate(names):
        path = mirror_dir / f"{name}.duckdb"
        if not path.exists():
            problems.append(f"{name}: no mirror file")
            continue
        tenant, org = sb.tenant_ids[i], sb.org_ids[i]
        own = {
            ("xero", "invoices", "invoice_id"): set(sb.xero.books[tenant].records["Invoices"]),
            ("xero", "contacts", "contact_id"): set(sb.xero.books[tenant].records["Contacts"]),
            ("zoho", "deals", "deal_id"): set(sb.zoho.orgs[org].records["Deals"]),
            ("zoho", "accounts", "account_id"): set(sb.zoho.orgs[org].records["Accounts"]),
        }
        con = duckdb.connect(str(path), read_only=True)
        try:
            tables = con.execute(
                "select table_schema, table_name from information_schema.columns where column_name = 'connection'"
            ).fetchall()
            for schema, table in tables:
                foreign = con.execute(
                    f'select count(*) from "{schema}"."{table}" where connection is distinct from ?', [name]
                ).fetchone()[0]
                if foreign:
                    problems.append(f"{name}: {foreign} row(s) of another connection in {schema}.{table}")
            for (schema, table, column), ids in own.items():
                got = {r[0] for r in con.execute(f'select "{column}" from "{schema}"."{table}"').fetchall()}
                if not got:
                    problems.append(f"{name}: {schema}.{table} is empty")
                if got - ids:
                    problems.append(f"{name}: {len(got - ids)} {schema}.{table} id(s) of another tenant")
        finally:
            con.close()
    return problems


def fmt_calls(c: dict) -> str:
    return (f"xero {c['xero']['data']:,} (+{c['xero']['other']} auth), "
            f"zoho {c['zoho']['data']:,} (+{c['zoho']['other']} auth)")  # fmt: skip


def report(s: dict, scale: float) -> None:
    runs = s["runs"]
    ok = sum(1 for r in runs if r["success"])
    print(f"\n== {s['label']}: {len(runs)} run(s) ({ok} succeeded), wall {s['wall']:,.1f} s "
          f"(≈{s['wall'] * scale:,.0f} s at {TARGET:,} connections), load {s['load'][0]:.1f}→{s['load'][1]:.1f}")  # fmt: skip
    print(f"   run wall: min {min(r['wall'] for r in runs):.1f} s, max {max(r['wall'] for r in runs):.1f} s; "
          f"peak RSS of a run {max(r['rss_mb'] for r in runs):,.0f} MB")  # fmt: skip
    print(f"   API calls: {fmt_calls(s['calls'])}; per org and entity at most "
          f"xero {s['calls']['xero']['max_per_org_entity']}, zoho {s['calls']['zoho']['max_per_org_entity']}")  # fmt: skip
    for vendor in ("xero", "zoho"):
        per = s["calls"][vendor]["per_entity"]
        print(f"   {vendor} per entity: " + ", ".join(f"{k} {v:,}" for k, v in per.items()))
    for r in runs:
        for f in r["failures"][:3]:
            print(f"   shard {r['shard']}: {f}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=int(os.environ.get("N", 200)))
    parser.add_argument("--workers", type=int, default=2, help="runs at once (default 2: the two cores)")
    parser.add_argument("--shard-size", type=int, default=None, help="connections per run (XZ_SHARD_SIZE)")
    parser.add_argument(
        "--with-downstream",
        action="store_true",
        help="the schedule's whole batches (views, reconcile, insights, the snapshot once a run), not only "
        "their extract steps (the mirror sweep the gates speak of)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0

    home = Path(tempfile.mkdtemp(prefix="xz-bench-scale-"))
    os.environ["XZ_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    if args.shard_size:
        os.environ["XZ_SHARD_SIZE"] = str(args.shard_size)
    import dagster as dg

    from xz_pipeline import runner
    from xz_pipeline.core.resources import connections_partitions
    from xz_pipeline.definitions import defs
    from xz_pipeline.fleet.shards import shard_size, shards
    from xz_pipeline.sandbox.server import SandboxServer
    from xz_pipeline.schedules import connections_sensor

    n, workers = args.connections, args.workers
    what = "whole batches" if args.with_downstream else "extract steps: the mirror sweep"
    print(f"bench-scale: {n:,} tiny organisation pairs, shards of {shard_size()}, {workers} run(s) at once ({what}), "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; XZ_HOME {home}", flush=True)  # fmt: skip
    started, rss0 = time.monotonic(), vm("VmRSS")
    sb = SandboxServer(size="tiny", connections=n).start()
    sandbox_start = time.monotonic() - started
    print(f"sandbox: {n:,} pairs up in {sandbox_start:,.1f} s, {vm('VmRSS') - rss0:,.0f} MB "
          f"(≈{(vm('VmRSS') - rss0) / n:.1f} MB a pair)", flush=True)  # fmt: skip
    try:
        sb.write_connections_file()
        names = [sb.connection_name(i) for i in range(n)]
        instance = runner.instance(home)
        t = time.monotonic()
        result = connections_sensor(dg.build_sensor_context(instance=instance))
        for add in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(connections_partitions.name, list(add.partition_keys))
        registered = instance.get_dynamic_partitions(connections_partitions.name)
        print(f"partitions: {len(registered):,} registered in {len(result.dynamic_partitions_requests)} "
              f"request(s), {time.monotonic() - t:.2f} s; {len(shards(registered))} shards", flush=True)  # fmt: skip
        env = {**os.environ}
        workdir = home / "requests"
        workdir.mkdir()
        schedule = defs.resolve_schedule_def("mirror_incremental")
        # A sweep is its shards' runs, `workers` at a time: at 1,000 connections, this many times the runs.
        scale = math.ceil(TARGET / shard_size()) / len(shards(registered))
        sweeps = []
        for label in ("first sync", "idle incremental"):
            sweeps.append(
                sweep(label, sb, schedule, instance, defs, env, workdir, workers, args.with_downstream)
            )
            report(sweeps[-1], scale)
        changed = change_one_percent(sb, names)
        sweeps.append(
            sweep(f"1% changed ({len(changed)} orgs)", sb, schedule, instance, defs, env, workdir, workers,
                  args.with_downstream)
        )  # fmt: skip
        report(sweeps[-1], scale)
        cross = cross_tenant_run(sb, names, env, workdir)
        problems = isolation(sb, names, home / "mirror")
        first, idle = sweeps[0], sweeps[1]
        idle_calls_ok = (
            idle["calls"]["xero"]["max_per_org_entity"] <= 1
            and idle["calls"]["zoho"]["max_per_org_entity"] <= 2
        )
        all_ok = all(r["success"] for s in sweeps for r in s["runs"])
        print("\n== gates")
        gates = [
            (f"every batched run succeeded ({sum(len(s['runs']) for s in sweeps)} runs)", all_ok),
            (f"idle sweep of {TARGET:,} within {SWEEP_LIMIT // 60} min: ≈{idle['wall'] * scale / 60:,.1f} min "
             f"(measured {idle['wall'] / 60:.1f} min at {n:,})", idle["wall"] * scale <= SWEEP_LIMIT),
            ("idle sweep at 1 call per Xero entity, 2 per Zoho module (per organisation): at most "
             f"{idle['calls']['xero']['max_per_org_entity']} and {idle['calls']['zoho']['max_per_org_entity']}",
             idle_calls_ok),
            (f"first syncs of {TARGET:,} within an hour: ≈{first['wall'] * scale / 60:,.1f} min "
             f"(measured {first['wall'] / 60:.1f} min at {n:,})", first["wall"] * scale <= FIRST_SYNC_LIMIT),
            (f"no row of one connection in another's mirror ({n:,} mirrors; a targeted run naming another "
             f"tenant's ids {'ran' if cross['success'] else 'FAILED'})", not problems and cross["success"]),
        ]  # fmt: skip
        for text, ok in gates:
            print(f"  {verdict(ok)}  {text}")
        for p in problems[:10]:
            print(f"    {p}")
        print(f"\nsandbox peak RSS {vm('VmHWM'):,.0f} MB (this process: sandbox and bench); "
              f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        return 0 if all(ok for _, ok in gates) else 1
    finally:
        sb.stop()


if __name__ == "__main__":
    raise SystemExit(main())
