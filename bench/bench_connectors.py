"""Connector benchmark (`make bench-connectors`): a full read of every entity through our clients.

The sandbox serves the medium organisation with the REAL rate limits (Xero: 60 calls a minute, 5,000 a
day per organisation; Zoho: the Enterprise edition's credits and concurrency). For each entity it prints
rows, calls, calls / ceil(rows / page size) (goal 1.00: no call wasted), wall time, the time our client
waited on its rate budget, and the floor those limits alone impose on that many calls. No 429 should be
received at all: the client paces itself from the rate-limit headers.

Not part of `make test`; takes a few minutes, most of it Xero's minute limit.

QuickBooks section (`--quickbooks-only` runs just it): the same organisation as a QBO company, each
entity read whole by query (1,000 rows a page), its calls against the floor ceil(rows / 1,000), and then an
idle incremental read (CDC since a minute ago, as the assets' next run asks: nothing changed) per entity.

Salesforce section (`--salesforce-only` runs just it): the same organisation as a Salesforce org, the org
described once (one call per sObject, as a sync does at most daily), then each sObject read whole by SOQL
(2,000 records a batch through nextRecordsUrl), its calls against the floor ceil(rows / 2,000); then an idle
incremental run as the assets' next run makes it (`fetch_for` with a cursor a minute old: SOQL on
SystemModstamp plus the /deleted/ window) per sObject.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xz_pipeline.core.http import CallMeter  # noqa: E402
from xz_pipeline.quickbooks import tables as qbo_tables  # noqa: E402
from xz_pipeline.quickbooks.resources import QuickBooksResource  # noqa: E402
from xz_pipeline.salesforce import schema as sf_schema  # noqa: E402
from xz_pipeline.salesforce import tables as sf_tables  # noqa: E402
from xz_pipeline.salesforce.assets import fetch_for  # noqa: E402
from xz_pipeline.salesforce.client import QUERY_BATCH  # noqa: E402
from xz_pipeline.salesforce.resources import SalesforceResource  # noqa: E402
from xz_pipeline.sandbox.server import SandboxServer  # noqa: E402
from xz_pipeline.xero.resources import XeroResource  # noqa: E402
from xz_pipeline.zoho import tables as zoho_tables  # noqa: E402
from xz_pipeline.zoho.resources import ZohoResource  # noqa: E402

XERO = [("Contacts", 1000), ("Invoices", 1000), ("Payments", 1000), ("CreditNotes", 1000),
        ("Items", None), ("Accounts", None), ("Organisation", None)]  # fmt: skip
ZOHO = [("Accounts", 200), ("Contacts", 200), ("Deals", 200), ("Invoices", 200), ("Products", 200)]
XERO_PER_MINUTE = 60


def read(label: str, page: int | None, entity: str, pages) -> list:
    meter: CallMeter = pages.meter
    before_calls, before_wait = meter.calls(), meter.waited_seconds
    started = time.monotonic()
    rows = sum(len(p) for p in pages.iter(entity))
    wall = time.monotonic() - started
    calls = meter.calls() - before_calls
    snap = meter.snapshot()
    ideal = max(1, math.ceil(rows / page)) if page else 1
    floor = calls / XERO_PER_MINUTE * 60 if label == "Xero" else 0.0
    return [label, entity, f"{rows:,}", calls, f"{calls / ideal:.2f}", f"{wall:.1f}",
            f"{meter.waited_seconds - before_wait:.1f}", f"{floor:.0f}", snap["throttled"]]  # fmt: skip


class XeroPages:
    def __init__(self, client, meter):
        self.client, self.meter = client, meter

    def iter(self, entity):
        params = {"includeArchived": "true"} if entity == "Contacts" else None
        return self.client.iter_pages(entity, params=params)


class ZohoPages:
    def __init__(self, client, meter):
        self.client, self.meter = client, meter

    def iter(self, entity):
        return self.client.iter_pages(entity, fields=zoho_tables.FIELDS[entity])


QBO_PAGE = 1000
QBO_WHOLE = ("CompanyInfo", "Preferences")  # one GET each, no paging


def quickbooks_section(seed: int, size: str) -> None:
    """Calls per QBO entity for a full read against the floor, then an idle incremental read's calls."""
    from datetime import UTC, datetime, timedelta

    rows, idle = [], []
    with tempfile.TemporaryDirectory() as home, SandboxServer(seed=seed, size=size, books="quickbooks") as sb:
        os.environ.update({**sb.env(0), "XZ_HOME": home, "XZ_CONNECTION": "bench"})
        meter = CallMeter()
        with QuickBooksResource().client("bench", meter=meter) as client:
            client.company_info()  # the token refresh before timing
            started = time.monotonic()
            for spec in qbo_tables.ENTITIES:
                before, t0 = meter.calls(), time.monotonic()
                if spec.entity in QBO_WHOLE:
                    n = 1
                    client.company_info() if spec.entity == "CompanyInfo" else client.preferences()
                else:
                    n = sum(len(p) for p in client.iter_query(spec.entity))
                calls, floor = meter.calls() - before, max(1, math.ceil(n / QBO_PAGE))
                rows.append(["QuickBooks", spec.entity, f"{n:,}", calls, floor, f"{calls / floor:.2f}",
                             f"{time.monotonic() - t0:.1f}"])  # fmt: skip
                print(rows[-1], file=sys.stderr, flush=True)
            full = time.monotonic() - started
            since = datetime.now(UTC) - timedelta(minutes=1)
            for spec in qbo_tables.ENTITIES:
                if spec.entity in QBO_WHOLE:
                    continue
                before = meter.calls()
                changes = client.changes(spec.entity, since)
                n = sum(len(p) for p in changes.pages)
                idle.append(["QuickBooks", spec.entity, changes.how, n, meter.calls() - before])
    print(
        tabulate(
            rows,
            headers=["system", "entity", "rows", "calls", "floor (rows/1,000)", "calls / floor", "wall s"],
        )
    )
    print(f"\n{size}: full read of every QuickBooks entity in {full:.0f}s")
    print(tabulate(idle, headers=["system", "entity", "read by", "changed", "calls"]))
    print(f"idle incremental run: {sum(r[-1] for r in idle)} calls for {len(idle)} entities")


def salesforce_section(seed: int, size: str) -> None:
    """Calls per sObject for a full SOQL read against the floor, then an idle incremental run's calls."""
    from datetime import timedelta

    from xz_pipeline.core.sync import ReadPlan

    rows, idle = [], []
    with tempfile.TemporaryDirectory() as home, SandboxServer(seed=seed, size=size, crm="salesforce") as sb:
        os.environ.update({**sb.env(0), "XZ_HOME": home, "XZ_CONNECTION": "bench", "XZ_CRM": "salesforce"})
        meter = CallMeter()
        with SalesforceResource().client("bench", meter=meter) as client:
            before = meter.calls()
            schema = sf_schema.ensure(client, None, "bench")  # the token, describe and the org's facts
            described = meter.calls() - before
            started = time.monotonic()
            for spec in sf_tables.ENTITIES:
                before, t0 = meter.calls(), time.monotonic()
                n = sum(len(p) for p in client.select(spec.entity, sf_tables.fields(spec.entity)))
                calls, floor = meter.calls() - before, max(1, math.ceil(n / QUERY_BATCH))
                rows.append(["Salesforce", spec.entity, f"{n:,}", calls, floor, f"{calls / floor:.2f}",
                             f"{time.monotonic() - t0:.1f}"])  # fmt: skip
                print(rows[-1], file=sys.stderr, flush=True)
            full = time.monotonic() - started
            cursor = client.now() - timedelta(minutes=1)
            plan = ReadPlan(full=False, since=cursor, cursor=cursor, reason="bench: idle incremental")
            for spec in sf_tables.ENTITIES:
                before = meter.calls()
                fetched = fetch_for(client, spec, plan, held=lambda ids: set())
                n = sum(len(p) for p in fetched.pages)
                gone = len(fetched.deleted())
                idle.append(["Salesforce", spec.entity, "SOQL SystemModstamp + /deleted/", n, gone,
                             meter.calls() - before])  # fmt: skip
    print(
        tabulate(
            rows,
            headers=["system", "sObject", "rows", "calls", "floor (rows/2,000)", "calls / floor", "wall s"],
        )
    )
    offered = len(schema.objects)
    print(f"\n{size}: full read of every Salesforce sObject in {full:.0f}s "
          f"(before it: {described} calls for the token, describe of {offered} sObjects and the org)")  # fmt: skip
    print(tabulate(idle, headers=["system", "sObject", "read by", "changed", "deleted", "calls"]))
    print(f"idle incremental run: {sum(r[-1] for r in idle)} calls for {len(idle)} sObjects")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quickbooks-only", action="store_true", help="only the QuickBooks section")
    parser.add_argument("--salesforce-only", action="store_true", help="only the Salesforce section")
    args = parser.parse_args()
    if args.quickbooks_only or args.salesforce_only:
        if args.quickbooks_only:
            quickbooks_section(args.seed, args.size)
        if args.salesforce_only:
            salesforce_section(args.seed, args.size)
        return
    rows = []
    with tempfile.TemporaryDirectory() as home, SandboxServer(seed=args.seed, size=args.size) as sb:
        os.environ.update({**sb.env(0), "XZ_HOME": home, "XZ_CONNECTION": "bench"})
        started = time.monotonic()
        meter = CallMeter()
        with XeroResource().client("bench", meter=meter) as client:
            client.organisation()  # the token refresh and tenant before timing, so entities count only their reads
            pages = XeroPages(client, meter)
            for entity, page in XERO:
                rows.append(read("Xero", page, entity, pages))
                print(rows[-1], file=sys.stderr, flush=True)
        meter = CallMeter()
        with ZohoResource().client("bench", meter=meter) as client:
            client.org()
            pages = ZohoPages(client, meter)
            for entity, page in ZOHO:
                rows.append(read("Zoho", page, entity, pages))
                print(rows[-1], file=sys.stderr, flush=True)
        total = time.monotonic() - started
    print(
        tabulate(
            rows,
            headers=[
                "system",
                "entity",
                "rows",
                "calls",
                "calls / ideal",
                "wall s",
                "waited s",
                "floor s (60/min)",
                "429s",
            ],
        )  # fmt: skip
    )
    print(f"\n{args.size}: full read of every entity in {total:.0f}s with the real rate limits\n")
    quickbooks_section(args.seed, args.size)
    print()
    salesforce_section(args.seed, args.size)


if __name__ == "__main__":
    main()
