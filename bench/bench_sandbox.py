"""Sandbox benchmark (`make bench-sandbox`): how big and how fast the emulated outside world is.

Prints three tables:
1. generation: seconds and records per entity for each world size (`timed_generate`);
2. seeding: seconds to load each world into the Xero and Zoho emulators;
3. HTTP throughput: requests per second and p50/p95 latency each emulator sustains on loopback,
   with a few client threads paging through Contacts (Xero) and Accounts (Zoho) with limits raised.

Bounded in count and time so it finishes in a few minutes on two cores. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import threading
import time
from pathlib import Path

import requests
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xz_pipeline.sandbox.server import SandboxServer  # noqa: E402
from xz_pipeline.sandbox.world import timed_generate  # noqa: E402
from xz_pipeline.sandbox.xero import XeroEmulator, XeroLimits  # noqa: E402
from xz_pipeline.sandbox.zoho import ZohoEmulator, ZohoLimits  # noqa: E402

BOOKS = ("accounts", "tax_rates", "items", "contacts", "invoices", "payments", "credit_notes")
CRM = ("users", "accounts", "contacts", "products", "deals", "invoices")


def counts(world) -> dict[str, int]:
    out = {f"books.{n}": len(getattr(world.books, n)) for n in BOOKS}
    out |= {f"crm.{n}": len(getattr(world.crm, n)) for n in CRM}
    out["invoice lines"] = sum(len(i.lines) for i in world.books.invoices)
    out["manifest"] = len(world.manifest)
    return out


def bench_generation_and_seeding(sizes: list[str], seed_sizes: set[str], seed: int) -> None:
    table: dict[str, dict[str, str]] = {}
    seed_rows = []
    for size in sizes:
        world, seconds = timed_generate(size, seed=seed)
        c = counts(world)
        total = sum(v for k, v in c.items() if k.startswith(("books.", "crm.")))
        column = {
            "generate s": f"{seconds:.2f}",
            **{k: f"{v:,}" for k, v in c.items()},
            "total records": f"{total:,}",
        }
        for row, value in column.items():
            table.setdefault(row, {})[size] = value
        print(f"generated {size}: {total:,} records in {seconds:.2f}s", file=sys.stderr, flush=True)
        if size in seed_sizes:
            row = {"size": size, "records": f"{total:,}"}
            for name, make in (("Xero", XeroEmulator), ("Zoho", ZohoEmulator)):
                emulator = make()
                started = time.perf_counter()
                emulator.seed_world(world)
                row[f"{name} seed_world s"] = f"{time.perf_counter() - started:.2f}"
                del emulator
                gc.collect()
            seed_rows.append(row)
            print(f"seeded {size}: {row}", file=sys.stderr, flush=True)
        del world
        gc.collect()
    print(f"\nWorld generation (timed_generate, seed {seed})")
    print(
        tabulate(
            [{"": k, **v} for k, v in table.items()], headers="keys", tablefmt="github", disable_numparse=True
        )
    )
    if seed_rows:
        print("\nSeeding the emulators (seed_world)")
        print(tabulate(seed_rows, headers="keys", tablefmt="github", disable_numparse=True))


def _xero_token(sb: SandboxServer) -> str:
    env = sb.env(0)
    r = requests.post(
        f"{env['XERO_IDENTITY_URL']}/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": env["XERO_REFRESH_TOKEN"]},
        auth=(env["XERO_CLIENT_ID"], env["XERO_CLIENT_SECRET"]),
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["access_token"]


def _zoho_token(sb: SandboxServer) -> str:
    env = sb.env(0)
    r = requests.post(
        f"{env['ZOHO_ACCOUNTS_URL']}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": env["ZOHO_REFRESH_TOKEN"],
            "client_id": env["ZOHO_CLIENT_ID"],
            "client_secret": env["ZOHO_CLIENT_SECRET"],
        },
        timeout=10,
    )
    body = r.json()
    if "access_token" not in body:
        raise RuntimeError(f"Zoho token refresh failed: {body.get('error')}")
    return body["access_token"]


def load(
    name: str, urls: list[str], headers: dict, threads: int, requests_total: int, seconds: float
) -> dict:
    """`threads` sessions share `requests_total` GETs (cycling through `urls`), stopping at `seconds`."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    counter = iter(range(requests_total))
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        with requests.Session() as s:
            s.headers.update(headers)
            while time.perf_counter() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                r = s.get(urls[i % len(urls)], timeout=30)
                _ = r.content
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if r.status_code != 200:
                        errors.append(r.status_code)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    qs = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [0.0] * 19
    return {
        "emulator": name,
        "threads": threads,
        "requests": len(latencies),
        "non-200": len(errors),
        "seconds": f"{wall:.2f}",
        "rps": f"{len(latencies) / wall:.0f}",
        "p50 ms": f"{statistics.median(latencies) * 1000:.1f}",
        "p95 ms": f"{qs[18] * 1000:.1f}",
    }


def bench_http(size: str, seed: int, threads: int, requests_total: int, seconds: float) -> None:
    big = 10**9
    xero_limits = XeroLimits(concurrent=big, per_minute=big, per_day=big, app_per_minute=big)
    zoho_limits = ZohoLimits(credits_per_day=big, concurrency=big, sub_concurrency=big)
    with SandboxServer(seed=seed, size=size, xero_limits=xero_limits, zoho_limits=zoho_limits) as sb:
        world = sb.worlds[0]
        xero_pages = max(1, -(-len(world.books.contacts) // 100))
        zoho_pages = max(1, min(10, -(-len(world.crm.accounts) // 200)))  # page= serves the first 2,000
        rows = [
            load(
                "Xero GET Contacts?page=N (100/page)",
                [f"{sb.xero_url}/api.xro/2.0/Contacts?page={p}" for p in range(1, xero_pages + 1)],
                {
                    "Authorization": f"Bearer {_xero_token(sb)}",
                    "xero-tenant-id": sb.env(0)["XERO_TENANT_ID"],
                    "Accept": "application/json",
                },
                threads,
                requests_total,
                seconds,
            ),
            load(
                "Zoho GET Accounts?page=N (200/page)",
                [
                    f"{sb.zoho_url}/crm/v8/Accounts?fields=Account_Name,Phone,Billing_City&per_page=200&page={p}"
                    for p in range(1, zoho_pages + 1)
                ],
                {"Authorization": f"Zoho-oauthtoken {_zoho_token(sb)}"},
                threads,
                requests_total,
                seconds,
            ),
        ]
    print(f"\nHTTP on loopback ({size} world, limits raised, one uvicorn server per emulator)")
    print(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="demo,medium,large", help="sizes to generate (default: all three)")
    parser.add_argument("--seed-sizes", default="demo,medium,large", help="sizes to seed into the emulators")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--http-size", default="demo", help="world served for the HTTP test")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--requests", type=int, default=1500, help="GETs per emulator (upper bound)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound per emulator")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sizes = [s for s in args.sizes.split(",") if s]
    bench_generation_and_seeding(sizes, set(args.seed_sizes.split(",")), args.seed)
    bench_http(args.http_size, args.seed, args.threads, args.requests, args.seconds)
    print(f"\nbench_sandbox done in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
