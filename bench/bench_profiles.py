"""Organisation profiles benchmark (`make bench-profiles [SIZES="tiny demo medium"]`): the pipeline per org shape.

For each sandbox profile (full, single-currency, bare, standard, renamed, uk, us) and size (default tiny
and demo) it runs `xz demo --profile P --size S` in a fresh temporary XZ_HOME, as a person would, and prints:
- the exit status, and on failure the error's first line (a failing profile is a finding, not a crash);
- the wall time, and the write calls (books+CRM) of the first cycle and of the second (from the demo's report);
- precision and recall per discrepancy kind the profile can show, the first cycle's findings
  (`recon.discrepancies` first seen in the first reconcile) scored against the ground-truth manifest with
  the scoring `make bench-recon` uses; `n/a` and the manifest's reason for the kinds it cannot show.

Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xz_pipeline.quickbooks.mapping import ESTIMATE_PREFIX  # noqa: E402
from xz_pipeline.sandbox.profiles import PROFILE_NAMES  # noqa: E402
from xz_pipeline.sandbox.world import DISCREPANCY_KINDS  # noqa: E402
from xz_pipeline_tests.reconcile.world_frames import score  # noqa: E402

XZ = Path(sys.executable).with_name("xz")
TIMEOUT = {"tiny": 600, "demo": 1800, "medium": 7200, "large": 36000}


CONNECTION_PREFIXES = ("XERO_", "ZOHO_", "QBO_", "SALESFORCE_", "SF_", "XZ_", "DAGSTER_")


def _clean_env(home: str) -> dict[str, str]:
    """The caller's environment without any connection settings: the demo must find only its sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONNECTION_PREFIXES)}
    env["XZ_HOME"] = home
    return env


def _first_error_line(stdout: str, stderr: str) -> str:
    """The first line that says what went wrong: an error on stderr, else the report's failed run."""
    for line in stderr.splitlines():
        if re.search(r"error|exception|failed|refused|traceback", line, re.I):
            return line.strip()[:200]
    lines = stdout.splitlines()
    if "Runs" in lines:  # the demo's report: one row per run, with the failed checks and steps
        start = lines.index("Runs")
        heads = re.split(r"\s{2,}", lines[start + 1].strip())
        for row in lines[start + 3 :]:
            if not row.strip():
                break
            cells = re.split(r"\s{2,}", row.strip())
            if "FAILED" in cells and len(cells) == len(heads):
                said = [f"{h} {c}" for h, c in zip(heads, cells, strict=True) if "failed" in h and c != "-"]
                return "run FAILED: " + "; ".join(said)
    rest = [ln.strip() for ln in (stderr or stdout).splitlines() if ln.strip()]
    return rest[-1][:200] if rest else "(no message)"


def _write_calls(stdout: str) -> tuple[str, str]:
    """(cycle 1, cycle 2) write calls as 'books+CRM' from the demo report's Write-back table."""
    lines = stdout.splitlines()
    try:
        start = lines.index("Write-back")
    except ValueError:
        return "-", "-"
    rows = []
    for line in lines[start + 3 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 2 and cells[-1].isdigit() and cells[-2].isdigit():
            rows.append(f"{cells[-2]}+{cells[-1]}")
    return (rows[0] if rows else "-"), (rows[1] if len(rows) > 1 else "-")


def vendor_id(value: str) -> str:
    """An id of a manifest's `id_maps` as the pipeline names that record: a world draft QuickBooks keeps as
    an Estimate is `Estimate/<Id>` there and `estimate-<Id>` in the canonical views."""
    entity, _, rid = value.partition("/")
    return ESTIMATE_PREFIX + rid if rid and entity == "Estimate" else value


def truth_of(doc: dict, pair: str = "xero+zoho") -> list[SimpleNamespace]:
    """The manifest's injections with world ids turned into the ids `pair`'s vendors give those records."""
    books, _, crm = pair.partition("+")
    books_ids, crm_ids = doc.get("id_maps", {}).get(books, {}), doc.get("id_maps", {}).get(crm, {})
    return [
        SimpleNamespace(
            kind=m["kind"],
            field=m["field"],
            books_id=vendor_id(books_ids.get(m["books_id"], m["books_id"])),
            crm_id=crm_ids.get(m["crm_id"], m["crm_id"]),
        )  # fmt: skip
        for m in doc["manifest"]
    ]


def not_applicable(doc: dict, pair: str = "xero+zoho") -> dict[str, str]:
    """Kinds the manifest says cannot exist here, with the reason: the profile's, then the pairing's."""
    out = dict(doc.get("undetectable", {}))
    for kind, pairs in doc.get("pairs_undetectable", {}).items():
        if pair in pairs and kind not in out:
            out[kind] = pairs[pair]
    return out


def _scores(state: Path, pair: str = "xero+zoho") -> tuple[dict, dict[str, str]] | None:
    """Per-kind scores of the first cycle's findings against the manifest (ids mapped to `pair`'s vendors),
    and the kinds the profile or the pairing cannot show (reasons)."""
    manifest_path = state / "manifest.json"
    # one mirror file a connection (an earlier version's single file otherwise)
    mirrors = sorted((state / "mirror").glob("*.duckdb")) or [state / "mirror.duckdb"]
    if not manifest_path.exists() or not all(m.exists() for m in mirrors):
        return None
    doc = json.loads(manifest_path.read_text())
    truth = truth_of(doc, pair)
    frames = []
    for mirror in mirrors:
        try:
            con = duckdb.connect(str(mirror), read_only=True)
        except duckdb.Error:
            return None
        try:
            frames.append(con.execute(
                "select kind, books_id, crm_id, field from recon.discrepancies "
                "where first_seen = (select min(first_seen) from recon.discrepancies)"
            ).df())  # fmt: skip
        except duckdb.Error:
            return None
        finally:
            con.close()
    found = pd.concat(frames, ignore_index=True).fillna("")
    return score(found, truth), not_applicable(doc, pair)


def run_demo(
    options: list[str], size: str, label: dict[str, str], pair: str = "xero+zoho"
) -> tuple[dict, list[dict]]:
    """`xz demo <options> --size <size>` in a fresh XZ_HOME: the run's row (labelled) and one row per kind,
    scored against the manifest with ids mapped to `pair`'s vendors."""
    with tempfile.TemporaryDirectory(prefix="xz-bench-" + "-".join(label.values()) + "-") as home:
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [str(XZ), "demo", *options, "--size", size],
                env=_clean_env(home),
                capture_output=True,
                text=True,
                timeout=TIMEOUT.get(size, 3600),
            )
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out, err = "timeout", exc.stdout or "", f"did not finish within {exc.timeout:.0f}s"
            out = out.decode() if isinstance(out, bytes) else out
        seconds = time.perf_counter() - started
        cycle1, cycle2 = _write_calls(out)
        run = {**label, "size": size, "exit": rc, "wall s": f"{seconds:.1f}",
               "write calls 1 (books+CRM)": cycle1, "write calls 2": cycle2,
               "error": "" if rc == 0 else _first_error_line(out, err)}  # fmt: skip
        scored = _scores(Path(home) / "demo", pair)
    kinds: list[dict] = []
    if scored is None:
        return run, kinds
    scores, undetectable = scored
    for kind in DISCREPANCY_KINDS:
        if kind in undetectable:
            found = scores.get(kind, {}).get("found", 0)  # anything here is a false alarm
            kinds.append({**label, "size": size, "kind": kind, "expected": "", "found": found,
                          "precision": "n/a", "recall": "n/a", "why": undetectable[kind]})  # fmt: skip
            continue
        s = scores.get(kind, {"expected": 0, "found": 0, "precision": 1.0, "recall": 1.0})
        kinds.append({**label, "size": size, "kind": kind, "expected": s["expected"],
                      "found": s["found"], "precision": f"{s['precision']:.3f}", "recall": f"{s['recall']:.3f}",
                      "why": "" if s["expected"] else "none injected"})  # fmt: skip
    return run, kinds


def run_one(profile: str, size: str) -> tuple[dict, list[dict]]:
    return run_demo(["--profile", profile], size, {"profile": profile})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", default=["tiny", "demo"], help="world sizes (default: tiny demo)")
    parser.add_argument(
        "--profiles", default=",".join(PROFILE_NAMES), help="comma-separated profiles (default all)"
    )
    args = parser.parse_args(argv)
    profiles = [p for p in args.profiles.split(",") if p]
    unknown = [p for p in profiles if p not in PROFILE_NAMES]
    if unknown:
        print(
            f"bench-profiles: unknown profile {unknown[0]!r}; choose from {', '.join(PROFILE_NAMES)}",
            file=sys.stderr,
        )
        return 2
    if not XZ.exists():
        print(f"bench-profiles: {XZ} not found; run `make install` first", file=sys.stderr)
        return 2
    runs, kinds = [], []
    for size in args.sizes:
        for profile in profiles:
            run, rows = run_one(profile, size)
            status = "ok" if run["exit"] == 0 else f"FAILED (exit {run['exit']}): {run['error']}"
            print(f"{profile:16} {size:7} {run['wall s']:>7}s  {status}", file=sys.stderr, flush=True)
            runs.append(run)
            kinds += rows
    print("\nxz demo per profile and size (fresh XZ_HOME each)")
    print(tabulate(runs, headers="keys", tablefmt="github", disable_numparse=True))
    print(
        "\nPrecision and recall per kind, first cycle against the manifest (n/a: the profile cannot show it)"
    )
    print(tabulate(kinds, headers="keys", tablefmt="github", disable_numparse=True))
    failed = [r for r in runs if r["exit"] != 0]
    print(f"\n{len(failed)} of {len(runs)} runs failed" if failed else f"\nall {len(runs)} runs exited 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
