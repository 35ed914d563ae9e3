"""Near-real-time latency benchmark (`make bench-latency`).

The demo sandbox (real rate limits, real clock) pushes its webhooks and notifications every 0.5 s to the
receiver on loopback. Over one minute, 200 payments are applied in Xero (each announced only as an
INVOICE UPDATE, as Xero does) and CRM edits are made in Zoho. A loop stands in for the Dagster daemon:
every 5 s it ticks the inbox sensor and executes the runs it asks for in process (the realtime job: the
announced records, then everything downstream). Printed: p50 / p95 / max seconds from the API call that
made a change to the mirror holding it, and the pipeline's API calls per announced event.

With write-back on (`XZ_WRITEBACK_APPLY=1`, the default here; `--mirror-only` turns it off) the runs go on
through reconcile and write-back, and two more figures are printed, each read from the other system's
emulator itself: from the payment to the linked CRM deal's Amount_Paid showing it (payment_to_crm), and
from the CRM phone edit to the linked Xero contact's phone showing it (the CRM owns phones). Before
measuring, the world's injected disagreements are settled once (full sync, apply with approval, mirror
again) and the bench waits for those calls to leave Xero's one-minute window, so the measured runs carry
only the minute's traffic.

The payments are made by a second Xero app (a bank feed, a bookkeeper's tool): Xero's limits are per app
and organisation, so they do not spend the pipeline's 60 calls a minute.

`--daemon` measures production's path instead: `dagster-daemon run` as `xz serve` starts it (its sensor loop every
second: deploy/daemon.py) ticks the sensors and launches each run in its own process through the run queue and
the instance's run launcher (the warm launcher of dagster.yaml: a fork of a process that has the code loaded), so
the figures include the queue, process start and code load;
only the corrections in the other system are measured (the mirror is the runs' to hold). It first measures
the floor — an empty targeted run (an announced record that did not change) from the event to the run's end —
then sweeps the load (`--phases`, default 5, 20 and 60 changes a minute for a minute each, then a burst of 200 in
10 s; a change is a payment or, one in four, a CRM phone edit) and prints per phase p50/p95/max change → corrected
field for each direction, runs launched, queue wait, API calls per event and the runs that waited for the mirror
lock, and the phases of a typical run (event → run requested → started → code loaded → steps → end).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONNECTION = "sandbox"


def _shape(path: str) -> str:
    """A request path with its record ids folded, so calls group by endpoint."""
    return "/".join("{id}" if any(c.isdigit() for c in part) and len(part) > 8 else part
                    for part in path.split("/"))  # fmt: skip


def start_daemon(home: str, inst) -> subprocess.Popen:
    """`dagster-daemon run` on the bench's instance, as `xz serve` runs it: the sensor loop every second, and
    each run starts in its own process through the queue and the warm launcher. Returns once the sensor and
    queue daemons beat; the schedules are moved out of the way (03:00) so a quarter-hour mirror does not land
    in the minute."""
    env = {**os.environ, "DAGSTER_HOME": str(Path(home) / "dagster"), "XZ_MIRROR_CRON": "0 3 * * *",
           "XZ_FULL_SWEEP_CRON": "30 3 * * *"}  # fmt: skip
    log = Path(home) / "daemon.log"
    proc = subprocess.Popen([sys.executable, "-m", "xz_pipeline.deploy.daemon", "run", "-w", str(ROOT / "workspace.yaml")],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if {"SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(inst.get_daemon_heartbeats()):
            print(f"dagster-daemon up (log {log})")
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"dagster-daemon exited {proc.returncode}: see {log}")
        time.sleep(1)
    proc.terminate()
    raise SystemExit(f"dagster-daemon did not start in 120 s: see {log}")


def daemon_runs(inst) -> str:
    """What the daemon launched: runs, how long each waited to start (queue, process, code load), how long
    each ran."""
    import dagster as dg

    from xz_pipeline.core.resources import TRIGGER_TAG

    records = [r for r in inst.get_run_records(dg.RunsFilter(tags={TRIGGER_TAG: "inbox"}))
               if r.start_time and r.end_time]  # fmt: skip
    if not records:
        return "daemon runs: none finished"
    waits = [r.start_time - r.create_timestamp.timestamp() for r in records]
    walls = [r.end_time - r.start_time for r in records]
    statuses = Counter(r.dagster_run.status.value for r in records)
    return (f"daemon runs {len(records)} ({dict(statuses)}): from request to start mean {statistics.mean(waits):.1f} s, "
            f"max {max(waits):.1f} s; run wall mean {statistics.mean(walls):.1f} s, max {max(walls):.1f} s")  # fmt: skip


@contextmanager
def bank_feed(sb, tenant: str):
    """A Xero client of another app (a bank feed) on the same organisation: its own token, budget and
    limits, as a real organisation's other apps have."""
    from xz_pipeline.core.http import Budgets
    from xz_pipeline.core.oauth import TokenStore
    from xz_pipeline.xero.client import XeroClient

    sb.xero.register_client("bench-bank-feed", "bench-feed-secret", ["http://127.0.0.1/callback"])
    with tempfile.TemporaryDirectory() as tokens:
        client = XeroClient(client_id="bench-bank-feed", client_secret="bench-feed-secret",
                            refresh_token=sb.xero.grant_refresh_token("bench-bank-feed", [tenant]),
                            api_url=sb.xero_url, identity_url=sb.xero_url, token_store=TokenStore(Path(tokens)),
                            connection="bank-feed", tenant_id=tenant, budgets=Budgets())  # fmt: skip
        with client:
            yield client


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_phases(inst, record) -> dict[str, float]:
    """Where one targeted run's time went: from the first event of its range reaching the inbox to the run
    being requested (the sensor's tick), queued and launched (its process started), code loaded (first
    step), its steps, and its end."""
    import sqlite3

    from xz_pipeline.realtime.inbox import inbox_path
    from xz_pipeline.realtime.sensors import KEY_TAG

    run = record.dagster_run
    first, last = (int(x) for x in run.tags[KEY_TAG].split(":")[2].split("-"))
    con = sqlite3.connect(inbox_path())
    try:
        (received,) = con.execute("select min(received_at) from events where seq between ? and ?",
                                  [first, last]).fetchone()  # fmt: skip
    finally:
        con.close()
    steps = [e.timestamp for e in inst.all_logs(run.run_id) if e.dagster_event is not None
             and e.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE")]  # fmt: skip
    created = record.create_timestamp.timestamp()
    start, end = record.start_time or created, record.end_time or created
    from datetime import datetime

    event = datetime.fromisoformat(received).timestamp()
    first_step, last_step = (min(steps), max(steps)) if steps else (start, end)
    return {"tick": created - event, "queue+launch": start - created, "code load": first_step - start,
            "steps": last_step - first_step, "finish": end - last_step, "total": end - event}  # fmt: skip


def _phase_line(label: str, phases: dict[str, float]) -> str:
    return f"{label}: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())


def inbox_runs(inst, since: float) -> list:
    import dagster as dg

    from xz_pipeline.core.resources import TRIGGER_TAG

    return [r for r in inst.get_run_records(dg.RunsFilter(tags={TRIGGER_TAG: "inbox"}))
            if r.create_timestamp.timestamp() >= since]  # fmt: skip


def lock_waits(inst, records) -> int:
    """Runs that logged a wait for the mirror (core/store.py)."""
    return sum(any("for the mirror:" in (e.user_message or "") for e in inst.all_logs(r.dagster_run.run_id))
               for r in records)  # fmt: skip


def store_busy(inst, records) -> int:
    """Runs whose log says the mirror was busy (core/store.py's StoreBusy): a targeted run waits its turn."""
    return sum(any("StoreBusy" in (e.user_message or "") or (e.dagster_event and "StoreBusy" in (e.dagster_event.message or ""))
                   for e in inst.all_logs(r.dagster_run.run_id)) for r in records)  # fmt: skip


def measure_floor(inst, sb, tenant: str, label: str = "floor") -> None:
    """An empty targeted run: an announced contact that did not change, from the event to the run's end."""
    from datetime import UTC, datetime

    from xz_pipeline.realtime.inbox import Inbox, InboxEvent, iso

    contact = sb.xero.dump(tenant, "Contacts")[-1]["ContactID"]
    since = time.time()
    Inbox().add([InboxEvent(f"bench-floor-{since}", "xero", CONNECTION, tenant, "xero_contacts", contact, False,
                            iso(datetime.now(UTC)))])  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = [r for r in inbox_runs(inst, since - 1) if r.end_time]
        if done:
            status = done[0].dagster_run.status.value
            print(_phase_line(f"{label} (empty targeted run, {status})", run_phases(inst, done[0])))
            return
        time.sleep(0.5)
    print(f"{label}: no targeted run finished within 120 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_latency")
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--crm-edits", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tick", type=float, default=5.0, help="sensor interval (the daemon's is 5 s)")
    parser.add_argument("--mirror-only", action="store_true", help="execute only the announced mirror assets")
    parser.add_argument(
        "--settle-wait", type=float, default=60.0, help="seconds between settling and measuring"
    )
    parser.add_argument("--cprofile", metavar="PATH", help="cProfile the measured runs into PATH (pstats)")
    parser.add_argument("--phases", default="5/60,20/60,60/60,200/10",
                        help="--daemon load sweep: CHANGES/SECONDS per phase, comma-separated")  # fmt: skip
    parser.add_argument("--daemon", action="store_true",
                        help="let `dagster-daemon run` launch the runs, each in its own process, as in production")  # fmt: skip
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="xz-bench-latency-")
    os.environ["XZ_HOME"] = home
    os.environ["XZ_CONNECTION"] = CONNECTION
    if not args.mirror_only:
        os.environ["XZ_WRITEBACK_APPLY"] = "1"

    import dagster as dg

    from xz_pipeline import runner
    from xz_pipeline.core.resources import MirrorResource
    from xz_pipeline.definitions import ASSETS, CHECKS, defs
    from xz_pipeline.realtime.channels import ensure_channels, notify_url
    from xz_pipeline.realtime.inbox import Inbox
    from xz_pipeline.realtime.receiver import serve_in_thread
    from xz_pipeline.realtime.sensors import REALTIME_CHECKS, REALTIME_JOBS, REALTIME_SENSORS
    from xz_pipeline.sandbox.server import SandboxServer
    from xz_pipeline.writeback.assets import WRITEBACK_ASSETS, WRITEBACK_CHECKS, apply_connection
    from xz_pipeline.xero.writer import XeroWriterResource
    from xz_pipeline.zoho import webhooks as zoho_hooks
    from xz_pipeline.zoho.resources import ZohoResource
    from xz_pipeline.zoho.writer import ZohoWriterResource

    rng = random.Random(42)
    resources = {**defs.resources, "books_writer": XeroWriterResource(), "crm_writer": ZohoWriterResource()}
    assets = [*ASSETS, *(a for a in WRITEBACK_ASSETS if a not in ASSETS)]
    checks = [*CHECKS, *(c for c in [*WRITEBACK_CHECKS, *REALTIME_CHECKS] if c not in CHECKS)]
    with SandboxServer(seed=42, size="demo", deliver_every=0.5) as sb:
        os.environ.update(sb.env(0))
        url, stop_receiver = serve_in_thread("127.0.0.1", 0)
        daemon = None
        try:
            t = time.perf_counter()
            inst = runner.instance()
            runner.sync([CONNECTION], inst=inst, only=None if not args.mirror_only else "mirror")
            if not args.mirror_only:  # settle the world's injected disagreements before measuring
                store0 = MirrorResource().store(CONNECTION)
                report = apply_connection(store0, CONNECTION, resources, approve=True)
                print(f"settled: {report.summary()}")
                runner.sync([CONNECTION], inst=inst, only="mirror")
            print(f"initial sync: {time.perf_counter() - t:.1f} s")
            if not args.mirror_only:
                print(
                    f"waiting {args.settle_wait:.0f} s for the settling calls to leave Xero's minute window"
                )
                time.sleep(args.settle_wait)
            sb.xero.set_webhook(f"{url}/webhooks/xero", sb.xero_webhook_key)
            assert sb.xero.validate_intent_to_receive(), "intent to receive failed"
            with ZohoResource().client(CONNECTION) as zoho:
                ensure_channels(zoho, CONNECTION, notify_url(url, sb.zoho_notify_token),
                                zoho_hooks.channel_token(sb.zoho_notify_token), sb.zoho.clock.now(),
                                modules=("Accounts", "Deals"))  # fmt: skip
            with MirrorResource().store(CONNECTION).read() as con:
                deal_of = dict(con.execute("select invoice_id, deal_id from recon.invoice_links where connection = ?",
                                           [CONNECTION]).fetchall()) if not args.mirror_only else {}  # fmt: skip
            d = dg.Definitions(assets=assets, asset_checks=checks, sensors=REALTIME_SENSORS, jobs=REALTIME_JOBS,
                               resources=resources)  # fmt: skip
            job = d.resolve_job_def("realtime")
            sensor = d.resolve_sensor_def("inbox_sensor")

            tenant, org = sb.tenant_ids[0], sb.org_ids[0]
            invoices = [i["InvoiceID"] for i in sb.xero.dump(tenant, "Invoices")
                        if i["Type"] == "ACCREC" and i["Status"] == "AUTHORISED" and Decimal(str(i["AmountDue"])) > 1]  # fmt: skip
            bank = next(a for a in sb.xero.dump(tenant, "Accounts") if a["Type"] == "BANK")["AccountID"]
            accounts = [a["id"] for a in sb.zoho.dump(org, "Accounts")]
            # An account linked to two books contacts (a duplicate pair in the books, for a person to merge) has
            # its phone corrected on the contact write-back treats as the account's: either one counts.
            contact_of: dict[str, tuple[str, ...]] = {}
            with MirrorResource().store(CONNECTION).read() as con:
                for crm_id, books_id in con.execute("select crm_id, books_id from recon.customer_links where "
                                                    "connection = ? and status = 'linked'", [CONNECTION]).fetchall():  # fmt: skip
                    contact_of[crm_id] = (*contact_of.get(crm_id, ()), books_id)
            books_due: dict[
                tuple[str, str], tuple[tuple[str, ...], str, float]
            ] = {}  # (account, phone) → (its contacts, digits, when)
            payments_at: dict[str, float] = {}  # payment id → when its API call returned
            edits_at: dict[tuple[str, str], float] = {}  # (account id, phone) → when
            crm_due: dict[
                str, tuple[str, Decimal, float]
            ] = {}  # payment → (deal, expected Amount_Paid, when)
            xero_before, zoho_before = len(sb.xero.received), len(sb.zoho.received)
            own_calls = {"xero": 0, "zoho": 0}

            def workload() -> None:
                """Payments in batches of 10 every ~3 s, CRM edits in batches of 5 (spread over the minute)."""
                batches = []
                for start in range(0, args.payments, 10):
                    batches.append(("pay", start, min(10, args.payments - start)))
                for start in range(0, args.crm_edits, 5):
                    batches.append(("edit", start, min(5, args.crm_edits - start)))
                times = sorted(rng.uniform(0, args.seconds) for _ in batches)
                rng.shuffle(batches)
                t0 = time.perf_counter()
                with bank_feed(sb, tenant) as xero, ZohoResource().client(CONNECTION) as zoho:
                    for at, (kind, start, n) in zip(times, batches, strict=True):
                        time.sleep(max(0.0, t0 + at - time.perf_counter()))
                        if kind == "pay":
                            chosen = [invoices[(start + i) % len(invoices)] for i in range(n)]
                            results = xero.create_payments([
                                {"Invoice": {"InvoiceID": inv}, "Account": {"AccountID": bank}, "Date": date.today(),
                                 "Amount": Decimal("0.01")} for inv in chosen
                            ])  # fmt: skip
                            own_calls["xero"] += 1
                            done = time.perf_counter()
                            payments_at.update({r.record_id: done for r in results if r.ok})
                            paid = {i["InvoiceID"]: Decimal(str(i["AmountPaid"])) for i in sb.xero.dump(tenant, "Invoices")
                                    if i["InvoiceID"] in chosen}  # fmt: skip
                            for r, inv in zip(results, chosen, strict=True):
                                if r.ok and inv in deal_of:
                                    crm_due[r.record_id] = (deal_of[inv], paid[inv], done)
                        else:
                            picks = [
                                (
                                    accounts[(start + i) % len(accounts)],
                                    f"+64 9 {rng.randrange(10**6, 10**7)}",
                                )
                                for i in range(n)
                            ]
                            zoho.update("Accounts", [{"id": a, "Phone": p} for a, p in picks])
                            own_calls["zoho"] += 1
                            done = time.perf_counter()
                            edits_at.update({pick: done for pick in picks})
                            for account, phone in picks:
                                if account in contact_of and not args.mirror_only:
                                    digits = "".join(c for c in phone if c.isdigit())
                                    books_due[account, phone] = (contact_of[account], digits[-7:], done)

            profiler = cProfile.Profile() if args.cprofile else None
            if args.daemon:
                daemon = start_daemon(home, inst)
            worker = threading.Thread(target=workload, daemon=True)
            if not args.daemon:  # the daemon's measurement sweeps its own load (sweep below)
                worker.start()
            store = MirrorResource().store(CONNECTION)
            seen: dict[object, float] = {}
            corrected: dict[str, float] = {}
            step_ms: dict[str, list[float]] = {}
            run_walls: list[float] = []
            cursor, runs, deadline = None, 0, time.perf_counter() + args.seconds + 90

            def observe_mirror(now: float) -> None:
                with store.read() as con:
                    have = {r[0] for r in con.execute("select payment_id from xero.payments").fetchall()}
                    phones = set(con.execute("select account_id, phone from zoho.accounts").fetchall())
                for pid, at in list(payments_at.items()):
                    if pid in have and pid not in seen:
                        seen[pid] = now - at
                for key, at in list(edits_at.items()):
                    if key in phones and key not in seen:
                        seen[key] = now - at

            def observe_corrections(now: float) -> None:
                """The corrected fields, read from the other system's emulator itself."""
                if crm_due:
                    deals = {str(x["id"]): x for x in sb.zoho.dump(org, "Deals")}
                    for pid, (deal, expected, at) in crm_due.items():
                        got = deals.get(deal, {}).get("Amount_Paid")
                        if pid not in corrected and got is not None and Decimal(str(got)) >= expected:
                            corrected[pid] = now - at
                if books_due:
                    phones_of = {c["ContactID"]: "".join(ch for p in c.get("Phones") or [] if p.get("PhoneType") == "DEFAULT"
                                                         for ch in f"{p.get('PhoneAreaCode') or ''}{p.get('PhoneNumber') or ''}"
                                                         if ch.isdigit())
                                 for c in sb.xero.dump(tenant, "Contacts")}  # fmt: skip
                    for key, (contacts, digits, at) in books_due.items():
                        if key not in corrected and any(
                            phones_of.get(c, "").endswith(digits) for c in contacts
                        ):
                            corrected[key] = now - at

            def finished() -> bool:
                mirrored = args.daemon or len(seen) >= len(payments_at) + len(edits_at)
                return not worker.is_alive() and mirrored and len(corrected) >= len(crm_due) + len(books_due)

            def change(feed, zoho, kinds: list[str], pick: list[int]) -> None:
                """Make `kinds` changes now: payments in one call (≤ 50), phone edits in one call."""
                pays, edits = kinds.count("pay"), kinds.count("edit")
                if pays:
                    chosen = [invoices[(pick[0] + i) % len(invoices)] for i in range(pays)]
                    pick[0] += pays
                    for at in range(0, pays, 50):
                        part = chosen[at : at + 50]
                        results = feed.create_payments([
                            {"Invoice": {"InvoiceID": inv}, "Account": {"AccountID": bank}, "Date": date.today(),
                             "Amount": Decimal("0.01")} for inv in part
                        ])  # fmt: skip
                        own_calls["xero"] += 1
                        done = time.perf_counter()
                        paid = {i["InvoiceID"]: Decimal(str(i["AmountPaid"])) for i in sb.xero.dump(tenant, "Invoices")
                                if i["InvoiceID"] in part}  # fmt: skip
                        for r, inv in zip(results, part, strict=True):
                            if r.ok and inv in deal_of:
                                crm_due[r.record_id] = (deal_of[inv], paid[inv], done)
                if edits:
                    picks = [(accounts[(pick[1] + i) % len(accounts)], f"+64 9 {rng.randrange(10**6, 10**7)}")
                             for i in range(edits)]  # fmt: skip
                    pick[1] += edits
                    zoho.update("Accounts", [{"id": a, "Phone": ph} for a, ph in picks])
                    own_calls["zoho"] += 1
                    done = time.perf_counter()
                    for account, phone in picks:
                        if account in contact_of:
                            digits = "".join(c for c in phone if c.isdigit())
                            books_due[account, phone] = (contact_of[account], digits[-7:], done)

            def sweep() -> int:
                """The load sweep through the daemon: one phase after another, each drained before the next."""
                # The first run after the daemon starts also starts the launcher's warm process.
                measure_floor(inst, sb, tenant, "first run after start")
                measure_floor(inst, sb, tenant)
                sweep_x0, sweep_since = len(sb.xero.received), time.time()
                phases = [(int(n), float(sec)) for n, sec in (x.split("/") for x in args.phases.split(","))]
                rows, typical, missing, pick = [], [], 0, [0, 0]
                with bank_feed(sb, tenant) as feed, ZohoResource().client(CONNECTION) as zoho:
                    for n, seconds in phases:
                        crm_due.clear()
                        books_due.clear()
                        corrected.clear()
                        own_calls.update(xero=0, zoho=0)
                        x0, z0, events0, since = (
                            len(sb.xero.received),
                            len(sb.zoho.received),
                            Inbox().count(),
                            time.time(),
                        )
                        slots = max(1, round(seconds / 2))  # changes are made every 2 s
                        kinds = ["edit" if rng.random() < 0.25 else "pay" for _ in range(n)]
                        t0 = time.perf_counter()
                        for i in range(slots):
                            time.sleep(max(0.0, t0 + i * seconds / slots - time.perf_counter()))
                            batch = kinds[i * n // slots : (i + 1) * n // slots]
                            if batch:
                                change(feed, zoho, batch, pick)
                            observe_corrections(time.perf_counter())
                        drain = time.perf_counter() + 150
                        while time.perf_counter() < drain and len(corrected) < len(crm_due) + len(books_due):
                            observe_corrections(time.perf_counter())
                            time.sleep(0.25)
                        time.sleep(3)  # the last run's end is recorded
                        records = [r for r in inbox_runs(inst, since) if r.end_time]
                        calls = (len(sb.xero.received) - x0 - own_calls["xero"]) + (
                            len(sb.zoho.received) - z0 - own_calls["zoho"]
                        )
                        events = Inbox().count() - events0
                        waits = [
                            r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time
                        ]
                        statuses = Counter(r.dagster_run.status.value for r in records)
                        cells = []
                        for due in (crm_due, books_due):
                            fixed = [v for k, v in corrected.items() if k in due]
                            missing += len(due) - len(fixed)
                            figures = (
                                [statistics.median(fixed), _pct(fixed, 0.95), max(fixed)] if fixed else []
                            )
                            cells.append(
                                f"{len(fixed)}/{len(due)}: " + ("/".join(f"{v:.1f}" for v in figures) or "-")
                            )
                        rows.append([f"{n} in {seconds:.0f} s", *cells, f"{len(records)} {dict(statuses)}",
                                     f"{statistics.mean(waits):.1f} / {max(waits):.1f}" if waits else "-",
                                     f"{calls / max(1, events):.2f} ({calls}/{events})", lock_waits(inst, records)])  # fmt: skip
                        if records:
                            mid = sorted(records, key=lambda r: r.end_time - r.create_timestamp.timestamp())[
                                len(records) // 2
                            ]
                            typical.append(_phase_line(f"typical run, {n} in {seconds:.0f} s ({mid.dagster_run.tags.get('xz/events')} events)",
                                                       run_phases(inst, mid)))  # fmt: skip
                print(tabulate(rows, headers=["load", "payment → CRM p50/p95/max s", "CRM phone → Xero p50/p95/max s",
                                              "runs", "queue wait mean / max s", "API calls per event", "lock waits"]))  # fmt: skip
                for line in typical:
                    print(line)
                print(daemon_runs(inst))
                # The tenant id comes from configuration or the token store: after a connection's first,
                # no run may spend a call of the organisation's 60 a minute on GET /connections.
                tenants = [
                    r for r in sb.xero.received[sweep_x0:] if r.path.rstrip("/").endswith("/connections")
                ]
                busy = store_busy(inst, inbox_runs(inst, sweep_since))
                print(
                    f"during the sweep: GET /connections {len(tenants)} call(s); runs failed with StoreBusy: {busy}"
                )
                return 0 if missing == 0 and not tenants and not busy else 1

            if args.daemon:
                return sweep()
            while time.perf_counter() < deadline and not args.daemon:
                tick_start = time.perf_counter()
                with dg.build_sensor_context(instance_ref=inst.get_ref(), definitions=d, cursor=cursor,
                                             resources=resources) as ctx:  # fmt: skip
                    result = sensor.evaluate_tick(ctx)
                cursor = result.cursor or cursor
                for request in result.run_requests:
                    selection = request.asset_selection
                    if args.mirror_only:
                        selection = [k for k in selection if k.to_user_string() in request.run_config["ops"]]
                    run_start = time.perf_counter()
                    if profiler:
                        profiler.enable()
                    # exactly what the daemon would launch: the request's assets and its checks
                    checks = {c for c in request.asset_check_keys or [] if c.asset_key in set(selection)}
                    subset = job.get_subset(asset_selection=set(selection), asset_check_selection=checks)
                    run = subset.execute_in_process(run_config=request.run_config, instance=inst, tags=request.tags,
                                                    partition_key=request.partition_key, raise_on_error=False)  # fmt: skip
                    if profiler:
                        profiler.disable()
                    runs += 1
                    run_walls.append(time.perf_counter() - run_start)
                    for ev in run.all_events:
                        if ev.event_type_value == "STEP_SUCCESS":
                            step_ms.setdefault(ev.step_key, []).append(ev.event_specific_data.duration_ms)
                    now = time.perf_counter()
                    observe_mirror(now)
                    observe_corrections(now)
                if finished():
                    break
                time.sleep(max(0.0, args.tick - (time.perf_counter() - tick_start)))
            worker.join(5)
            if profiler:
                profiler.dump_stats(args.cprofile)

            pay = [v for k, v in seen.items() if isinstance(k, str)]
            edit = [v for k, v in seen.items() if isinstance(k, tuple)]
            pipeline_calls = (len(sb.xero.received) - xero_before - own_calls["xero"]) + (
                len(sb.zoho.received) - zoho_before - own_calls["zoho"])  # fmt: skip
            events = Inbox().count()
            rows = []
            for label, values, total in (("payments (INVOICE UPDATE)", pay, len(payments_at)),
                                         ("CRM edits (notifications)", edit, len(edits_at))):  # fmt: skip
                if args.daemon:
                    continue  # the mirror is the daemon's runs' to hold
                if values:
                    rows.append([label, f"{len(values)}/{total}", f"{statistics.median(values):.1f}",
                                 f"{_pct(values, 0.95):.1f}", f"{max(values):.1f}"])  # fmt: skip
                else:
                    rows.append([label, f"0/{total}", "-", "-", "-"])
            for label, due in (
                ("payment → CRM deal Amount_Paid", crm_due),
                ("CRM phone edit → Xero contact", books_due),
            ):
                fixed = [v for k, v in corrected.items() if k in due]
                if due:
                    figures = [statistics.median(fixed), _pct(fixed, 0.95), max(fixed)] if fixed else []
                    cells = [f"{v:.1f}" for v in figures] or ["-"] * 3
                    rows.append([label, f"{len(fixed)}/{len(due)}", *cells])
            print(tabulate(rows, headers=["latency", "seen", "p50 s", "p95 s", "max s"]))
            print(f"runs {runs if not args.daemon else 'by the daemon'}; inbox events {events}; pipeline API calls {pipeline_calls} "
                  f"({pipeline_calls / max(1, events):.2f} per event; "
                  f"{pipeline_calls / max(1, len(payments_at) + len(edits_at)):.2f} per change); "
                  f"stages: {'mirror only' if args.mirror_only else 'mirror + downstream'}")  # fmt: skip
            endpoints = Counter(
                f"{name} {r.method} {_shape(r.path)}{' ' + str(r.status) if r.status >= 400 else ''}"
                for name, received, start in (("xero", sb.xero.received, xero_before),
                                              ("zoho", sb.zoho.received, zoho_before))
                for r in received[start:]
            )  # fmt: skip
            print("API calls by endpoint (the workload's own included): "
                  + ", ".join(f"{k} ×{n}" for k, n in endpoints.most_common(8)))  # fmt: skip
            slow = sorted(((sum(v) / len(v), k) for k, v in step_ms.items()), reverse=True)[:6]
            steps = sum(sum(v) / len(v) for v in step_ms.values()) / 1000
            print(daemon_runs(inst) if args.daemon else
                  f"run wall time: mean {statistics.mean(run_walls or [0]):.1f} s, max {max(run_walls or [0]):.1f} s "
                  f"({steps:.1f} s in {len(step_ms)} steps); slowest steps: "
                  + ", ".join(f"{k} {ms / 1000:.1f} s" for ms, k in slow))  # fmt: skip
            missing = (0 if args.daemon else len(payments_at) + len(edits_at) - len(seen)) + (
                len(crm_due) + len(books_due) - len(corrected)
            )
            return 0 if missing == 0 else 1
        finally:
            if daemon is not None:
                daemon.terminate()
                daemon.wait(60)
            stop_receiver()


if __name__ == "__main__":
    sys.exit(main())
