"""Reliability benchmark (`make bench-reliability`): does `xz sync --apply` survive being killed, a faulty
network, a second sync and hostile records? Four parts, a table each:

(a) kill at every write point: `xz sync --apply --approve` runs as a subprocess against a sandbox served by
    this process; a hook on the sandbox's request log SIGKILLs it right after the k-th remote write it
    answered; `xz sync --apply` is rerun until a run writes nothing; the remote state (Xero contacts and
    invoices, Zoho accounts, contacts, deal links and payment fields) is compared with that of a run
    never killed: records missing and duplicated (both must be 0), values wrong, reruns needed.
(b) a full first sync with 20% of calls faulted (429s, 5xx, answers dropped after the write): rerun until
    quiet, then lost, duplicated and wrong against the clean run, and the mirror's rows per canonical view.
(c) two first syncs started together on a fresh XZ_HOME: both exit 0, or one waits and says so.
(d) the hostile fixture (xz_pipeline_tests/fixtures/hostile): per entity, records served, landed
    (`landing.records`), typed (the vendor table), quarantined (`meta.quarantine`), crashed.

    python bench/bench_reliability.py [--size tiny|demo] [--seed 11] [--points all|N|1,5,9] [--parts abcd]

Not part of `make test` (a fast version of (a), one kill point on the tiny world, is
xz_pipeline_tests/test_reliability.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

XZ = str(Path(sys.executable).with_name("xz"))
HOSTILE = ROOT / "xz_pipeline_tests" / "fixtures" / "hostile"
MAX_RERUNS = 6
SYNC_TIMEOUT = 900.0
FAULTS_20 = "429@rate=0.05;5xx@rate=0.1;drop:after@rate=0.05,method=PUT|POST"


# -- the sandbox and its write log --------------------------------------------------------------


def is_write(vendor: str, request) -> bool:
    """A remote write the emulator answered: Xero PUT/POST under the API, Zoho POST/PUT/DELETE under
    /crm/ (COQL reads excepted), that it accepted (2xx)."""
    if not 200 <= int(request.status or 0) < 300:
        return False
    if vendor == "xero":
        return request.method in ("PUT", "POST") and "/api.xro/" in request.path
    return (
        request.method in ("PUT", "POST", "DELETE")
        and "/crm/" in request.path
        and not request.path.endswith("/coql")
    )


class WriteLog(list):
    """An emulator's `received` list that also counts writes as they are logged and tells `on_write`."""

    def __init__(self, items, vendor: str, on_write: Callable[[], None]) -> None:
        super().__init__(items)
        self.vendor, self.on_write = vendor, on_write

    def append(self, request) -> None:
        super().append(request)
        if is_write(self.vendor, request):
            self.on_write()


@dataclass
class Writes:
    """Counts the sandbox's writes; SIGKILLs `target` right after the `kill_at`-th."""

    count: int = 0
    kill_at: int = 0
    target: subprocess.Popen | None = None
    killed_at: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, sb) -> Writes:
        for vendor, emulator in (("xero", sb.xero), ("zoho", sb.zoho)):
            emulator.received = WriteLog(emulator.received, vendor, self.seen)
        return self

    def seen(self) -> None:
        with self.lock:
            self.count += 1
            hit = self.kill_at and self.count == self.kill_at
            if hit and self.target is not None and self.target.poll() is None:
                os.kill(self.target.pid, signal.SIGKILL)
                self.killed_at = self.count


def sandbox(size: str, seed: int, faults: str | None = None, fixture_dir: Path | None = None):
    from xz_pipeline.sandbox.server import SandboxServer
    from xz_pipeline.sandbox.xero import XeroLimits
    from xz_pipeline.sandbox.zoho import ZohoLimits

    kw = {"fixture_dir": fixture_dir} if fixture_dir else {"seed": seed, "size": size}
    return SandboxServer(
        faults=faults,
        xero_limits=XeroLimits(per_minute=10**7, per_day=10**9, app_per_minute=10**7),
        zoho_limits=ZohoLimits(credits_per_day=10**9, concurrency=100),
        **kw,
    ).start()


def fresh_home(sb, parent: str) -> Path:
    home = Path(tempfile.mkdtemp(dir=parent))
    sb.write_connections_file(home / "connections.toml")
    return home


def xz(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "XZ_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    for key in ("XZ_WRITEBACK_APPROVE", "XZ_WRITEBACK", "XZ_WRITEBACK_DRY_RUN"):
        env.pop(key, None)
    return subprocess.Popen([XZ, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=SYNC_TIMEOUT)
    return proc.returncode, out


SYNC = ("sync", "--apply", "--approve")


def until_quiet(home: Path, writes: Writes) -> tuple[int, list[int]]:
    """Rerun `xz sync --apply` until a run writes nothing: (runs, their exit codes)."""
    codes = []
    for _ in range(MAX_RERUNS):
        before = writes.count
        code, out = finish(xz(home, *SYNC))
        codes.append(code)
        if code != 0:  # say why: a failed step's own line(s)
            said = [s for s in out.splitlines() if s.startswith("xz sync:")] or out.splitlines()[-20:]
            print(f"run in {home.name} exited {code}:", *said[:10], sep="\n  ", file=sys.stderr)
        if writes.count == before and code == 0:
            break
    return len(codes), codes


# -- the remote state, as facts ---------------------------------------------------------------------


def _name(value) -> str:
    return str(value.get("name") or value.get("id")) if isinstance(value, dict) else str(value or "")


def remote_state(sb) -> tuple[Counter, dict[str, str]]:
    """(records, values): each record as a countable key (what write-back creates is found by), and each
    value write-back keeps (links, payment fields) by the record holding it."""
    tenant, org = sb.tenant_ids[0], sb.org_ids[0]
    records: Counter = Counter()
    values: dict[str, str] = {}
    for c in sb.xero.dump(tenant, "Contacts"):
        records[f"xero.contact|{c.get('Name')}"] += 1
    for i in sb.xero.dump(tenant, "Invoices"):
        if i.get("Status") in ("DELETED", "VOIDED"):
            continue
        records[
            f"xero.invoice|{i.get('Type')}|{i.get('Reference') or i.get('InvoiceNumber')}|{_name(i.get('Contact'))}"
        ] += 1
    for a in sb.zoho.dump(org, "Accounts"):
        records[f"zoho.account|{a.get('Account_Name')}"] += 1
        values[f"zoho.account.link|{a.get('Account_Name')}"] = "linked" if a.get("Xero_Contact_ID") else ""
    for c in sb.zoho.dump(org, "Contacts"):
        records[
            f"zoho.contact|{(c.get('Email') or c.get('Full_Name') or '').lower()}|{_name(c.get('Account_Name'))}"
        ] += 1
    for module in ("Deals", "Invoices"):
        for d in sb.zoho.dump(org, module):
            key = f"zoho.{module.lower()}|{d.get('id')}"
            values[key + "|invoice"] = "linked" if d.get("Xero_Invoice_ID") else ""
            values[key + "|payment"] = (
                f"{d.get('Payment_Status')}|{d.get('Amount_Paid')}|{d.get('Last_Payment_Date')}"
            )
    return records, values


def compare(reference: tuple[Counter, dict], got: tuple[Counter, dict]) -> dict[str, int]:
    """Records missing and duplicated against the reference; values missing (the reference holds one,
    here empty) and wrong (another value)."""
    (ref_records, ref_values), (records, values) = reference, got
    missing = sum((ref_records - records).values())
    duplicated = sum(
        n - max(ref_records.get(k, 0), 1) for k, n in records.items() if n > max(ref_records.get(k, 0), 1)
    )
    extra = sum((records - ref_records).values()) - duplicated
    unset = sum(1 for k, v in ref_values.items() if v and not values.get(k))
    wrong = sum(1 for k, v in ref_values.items() if values.get(k) and values.get(k) != v)
    return {"missing": missing + unset, "duplicated": duplicated, "extra": extra, "wrong": wrong}


# -- (a) kill at every write point -----------------------------------------------------------------


def reference_run(size: str, seed: int, tmp: str) -> tuple[tuple[Counter, dict], int, int]:
    """A run never killed (then rerun until quiet): its remote state, its first run's writes, runs."""
    sb = sandbox(size, seed)
    try:
        writes = Writes().hook(sb)
        home = fresh_home(sb, tmp)
        code, out = finish(xz(home, *SYNC))
        if code != 0:
            raise SystemExit(f"the reference sync failed ({code}):\n{out[-3000:]}")
        first = writes.count
        runs, _ = until_quiet(home, writes)
        return remote_state(sb), first, 1 + runs
    finally:
        sb.stop()


def kill_point(size: str, seed: int, k: int, reference, tmp: str) -> dict:
    """SIGKILL the first sync right after write k, rerun until quiet, compare with the reference."""
    sb = sandbox(size, seed)
    try:
        writes = Writes(kill_at=k).hook(sb)
        home = fresh_home(sb, tmp)
        proc = xz(home, *SYNC)
        writes.target = proc
        code, out = finish(proc)
        killed = code == -signal.SIGKILL
        if not killed:  # it ended on its own before write k: say why
            said = [s for s in out.splitlines() if s.startswith("xz sync:")] or out.splitlines()[-20:]
            print(f"(a) k={k}: the first sync exited {code} before its write {k}:", *said[:10], sep="\n  ",
                  file=sys.stderr)  # fmt: skip
        runs, codes = until_quiet(home, writes)
        row = {"kill after write": k, "killed": "yes" if killed else f"no (exit {code})", "reruns": runs,
               "rerun exits": ",".join(map(str, codes)), "writes": writes.count}  # fmt: skip
        row.update(compare(reference, remote_state(sb)))
        row["unsettled calls"] = _open_calls(home)
        return row
    finally:
        sb.stop()


def _mirror(home: Path) -> Path:
    """The one connection's mirror file of a bench home ($XZ_HOME/mirror/<connection>.duckdb)."""
    (path,) = sorted((home / "mirror").glob("*.duckdb"))
    return path


def _open_calls(home: Path) -> int:
    import duckdb

    with duckdb.connect(str(_mirror(home)), read_only=True) as con:
        return con.execute(
            "select count(*) from writeback.ledger where status in ('intent', 'unknown')"
        ).fetchone()[0]


def part_a(size: str, seed: int, points: str, tmp: str) -> tuple[list[dict], int, tuple]:
    reference, first, runs = reference_run(size, seed, tmp)
    print(
        f"(a) reference: {first} write(s) in the first run, quiet after {runs} run(s)",
        file=sys.stderr,
        flush=True,
    )
    if points == "all":
        ks = list(range(1, first + 1))
    elif "," in points:
        ks = [int(p) for p in points.split(",") if 0 < int(p) <= first]
    else:
        n = max(1, min(int(points), first))
        ks = sorted({max(1, round(first * (i + 1) / n)) for i in range(n)})
    rows = []
    for k in ks:
        rows.append(kill_point(size, seed, k, reference, tmp))
        print(f"(a) {rows[-1]}", file=sys.stderr, flush=True)
    return rows, first, reference


# -- (b) 20% faults --------------------------------------------------------------------------------


def _mirror_counts(home: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(_mirror(home)), read_only=True) as con:
        views = [v for (v,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'canonical' order by 1").fetchall()]  # fmt: skip
        return {v: con.execute(f"select count(*) from canonical.{v}").fetchone()[0] for v in views}


def _injected(sb) -> int:
    return sum(sum(dict(m.injected).values()) if isinstance(m.injected, dict) else int(m.injected)
               for m in (sb.xero_faults, sb.zoho_faults) if m is not None)  # fmt: skip


def part_b(size: str, seed: int, tmp: str) -> list[dict]:
    out = {}
    for label, faults in (("clean", None), ("20% faults", FAULTS_20)):
        sb = sandbox(size, seed, faults=faults)
        try:
            writes = Writes().hook(sb)
            home = fresh_home(sb, tmp)
            started = time.monotonic()
            runs, codes = until_quiet(home, writes)
            out[label] = {"state": remote_state(sb), "mirror": _mirror_counts(home), "runs": runs, "codes": codes,
                          "seconds": time.monotonic() - started, "open": _open_calls(home),
                          "injected": _injected(sb)}  # fmt: skip
        finally:
            sb.stop()
    clean, faulty = out["clean"], out["20% faults"]
    diff = compare(clean["state"], faulty["state"])
    mirror_lost = sum(max(0, n - faulty["mirror"].get(v, 0)) for v, n in clean["mirror"].items())
    mirror_extra = sum(max(0, n - clean["mirror"].get(v, 0)) for v, n in faulty["mirror"].items())
    return [
        {
            "run": label,
            "runs to quiet": o["runs"],
            "exits": ",".join(map(str, o["codes"])),
            "seconds": f"{o['seconds']:.0f}",
            "remote lost": diff["missing"] if o is faulty else 0,
            "remote duplicated": diff["duplicated"] if o is faulty else 0,
            "remote wrong": diff["wrong"] if o is faulty else 0,
            "mirror rows lost": mirror_lost if o is faulty else 0,
            "mirror rows extra": mirror_extra if o is faulty else 0,
            "faults injected": o["injected"],
            "unsettled calls": o["open"],
        }  # fmt: skip
        for label, o in out.items()
    ]


# -- (c) two first syncs at once ---------------------------------------------------------------------


def part_c(size: str, seed: int, reference, tmp: str) -> list[dict]:
    sb = sandbox(size, seed)
    try:
        home = fresh_home(sb, tmp)
        started = time.monotonic()
        procs = [xz(home, *SYNC), xz(home, *SYNC)]
        results = [finish(p) for p in procs]
        seconds = time.monotonic() - started
        diff = compare(reference, remote_state(sb)) if reference else {}
        rows = []
        for n, (code, out) in enumerate(results, start=1):
            said = next((s for s in out.splitlines() if s.startswith("xz sync:") and "wait" in s), "")
            rows.append({"sync": n, "exit": code, "says it waited": said[:90] or "-", "seconds (both)": f"{seconds:.0f}",
                         "remote duplicated": diff.get("duplicated", "-"), "remote missing": diff.get("missing", "-"),
                         "ok": code == 0 or (code == 75 and bool(said))})  # fmt: skip
        return rows
    finally:
        sb.stop()


# -- (d) the hostile fixture ---------------------------------------------------------------------------


def part_d(tmp: str) -> list[dict]:
    import duckdb

    sb = sandbox("", 0, fixture_dir=HOSTILE)
    try:
        home = fresh_home(sb, tmp)
        code, out = finish(xz(home, "sync"))
    finally:
        sb.stop()
    served = {
        (path.parent.name, path.stem): len(next(iter(json.loads(path.read_text()).values())))
        for path in sorted(HOSTILE.glob("*/*.json"))
    }
    rows = []
    with duckdb.connect(str(_mirror(home)), read_only=True) as con:
        tables = {
            f"{s}.{t}"
            for s, t in con.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
        landed = dict(((v, e), n) for v, e, n in con.execute("select vendor, entity, count(*) from landing.records group by 1, 2").fetchall())  # fmt: skip
        quarantined = dict(((v, e), n) for v, e, n in con.execute(
            "select vendor, entity, count(distinct record_id) from meta.quarantine where resolved_at is null group by 1, 2").fetchall()) \
            if "meta.quarantine" in tables else {}  # fmt: skip
        for (vendor, entity), n in served.items():
            table = f"{vendor}.{entity.lower()}"
            typed = con.execute(f"select count(*) from {table}").fetchone()[0] if table in tables else "-"
            got = landed.get((vendor, entity), 0)
            rows.append({"vendor": vendor, "entity": entity, "served": n, "landed": got, "typed": typed,
                         "quarantined": quarantined.get((vendor, entity), 0), "crashed": n > 0 and got == 0})  # fmt: skip
    rows.append({"vendor": "xz sync", "entity": f"exit {code}", "served": "", "landed": "", "typed": "", "quarantined": "",
                 "crashed": code not in (0, 1)})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="demo", choices=["tiny", "demo", "medium"])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--points", default="all", help="kill points: all, a count spread evenly, or a list 1,5,9"
    )
    parser.add_argument("--parts", default="abcd")
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory(prefix="xz-bench-reliability-") as tmp:
        reference = None
        if "a" in args.parts:
            rows, first, reference = part_a(args.size, args.seed, args.points, tmp)
            print(f"\n(a) SIGKILL after the k-th remote write of `xz sync --apply` ({args.size}, seed {args.seed}; "
                  f"{first} writes in an unkilled run), rerun until a run writes nothing")  # fmt: skip
            print(tabulate(rows, headers="keys"))
            failed |= any(r["missing"] or r["duplicated"] or r["unsettled calls"] for r in rows)
        if "b" in args.parts:
            rows = part_b(args.size, args.seed, tmp)
            print(f"\n(b) a full sync with 20% of calls faulted ({FAULTS_20}) against a clean one")
            print(tabulate(rows, headers="keys"))
            failed |= any(r["remote lost"] or r["remote duplicated"] for r in rows)
        if "c" in args.parts:
            if reference is None:
                reference, _, _ = reference_run(args.size, args.seed, tmp)
            rows = part_c(args.size, args.seed, reference, tmp)
            print("\n(c) two first syncs at once on a fresh XZ_HOME")
            print(tabulate(rows, headers="keys"))
            failed |= not all(r["ok"] for r in rows)
        if "d" in args.parts:
            rows = part_d(tmp)
            print("\n(d) the hostile fixture: records per entity")
            print(tabulate(rows, headers="keys"))
            failed |= any(r["crashed"] for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
