"""Books + CRM pairs benchmark (`make bench-pairs [SIZES="tiny demo"] [PAIRS=xero+zoho,quickbooks+zoho]`).

For each pairing (default all four: xero+zoho, quickbooks+zoho, xero+salesforce, quickbooks+salesforce;
`--pairs` picks) and size (default tiny and demo; medium on request) it runs
`xz demo --books B --crm C --size S` in a fresh temporary XZ_HOME, as a person would, and prints:
- the exit status (on failure the error's first line), the wall time, and the write calls (books+CRM) of
  the first cycle and of the second (a second cycle that writes means the first left work undone);
- precision and recall per discrepancy kind: the first cycle's findings against the one ground-truth
  manifest of the world, its world ids mapped to the ids the pair's vendors gave the records
  (`id_maps`); `n/a` with the manifest's reason for the kinds the pairing (or profile) cannot show.

Exit 1 when a run failed, an applicable kind scored below 1.00, or a second cycle wrote anything (each
named at the end). The running, parsing and scoring are bench_profiles' (one implementation for both
benchmarks). Not part of `make test`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_profiles import XZ, run_demo  # noqa: E402

BOOKS, CRMS = ("xero", "quickbooks"), ("zoho", "salesforce")
ALL_PAIRS = [f"{b}+{c}" for c in CRMS for b in BOOKS]
DEFAULT_PAIRS = ",".join(ALL_PAIRS)


def options_for(pair: str) -> list[str]:
    books, _, crm = pair.partition("+")
    return ["--books", books, "--crm", crm]


def shortfalls(runs: list[dict], kinds: list[dict]) -> list[str]:
    """What keeps a pairing from done: a failed run, a kind below 1.00, a second cycle that wrote."""
    out = [f"{r['pair']} {r['size']}: exit {r['exit']}" for r in runs if r["exit"] != 0]
    out += [f"{r['pair']} {r['size']}: second cycle wrote {r['write calls 2']} (books+CRM)" for r in runs
            if r["exit"] == 0 and r["write calls 2"] not in ("0+0", "-")]  # fmt: skip
    out += [f"{k['pair']} {k['size']}: {k['kind']} precision {k['precision']} recall {k['recall']}"
            for k in kinds if k["precision"] != "n/a" and (k["precision"], k["recall"]) != ("1.000", "1.000")]  # fmt: skip
    out += [f"{k['pair']} {k['size']}: {k['found']} finding(s) of {k['kind']}, which cannot apply"
            for k in kinds if k["precision"] == "n/a" and k["found"]]  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", default=["tiny", "demo"], help="world sizes (default: tiny demo)")
    parser.add_argument(
        "--pairs",
        default=DEFAULT_PAIRS,
        help=f"comma-separated books+crm pairings from {', '.join(ALL_PAIRS)}",
    )
    args = parser.parse_args(argv)
    pairs = [p for p in args.pairs.split(",") if p]
    unknown = [p for p in pairs if p not in ALL_PAIRS]
    if unknown:
        print(
            f"bench-pairs: unknown pairing {unknown[0]!r}; choose from {', '.join(ALL_PAIRS)}",
            file=sys.stderr,
        )
        return 2
    if not XZ.exists():
        print(f"bench-pairs: {XZ} not found; run `make install` first", file=sys.stderr)
        return 2
    runs, kinds = [], []
    for size in args.sizes:
        for pair in pairs:
            run, rows = run_demo(options_for(pair), size, {"pair": pair}, pair)
            status = "ok" if run["exit"] == 0 else f"FAILED (exit {run['exit']}): {run['error']}"
            print(f"{pair:22} {size:7} {run['wall s']:>7}s  {status}", file=sys.stderr, flush=True)
            runs.append(run)
            kinds += rows
    print("\nxz demo per books+CRM pairing and size (fresh XZ_HOME each)")
    print(tabulate(runs, headers="keys", tablefmt="github", disable_numparse=True))
    print(
        "\nPrecision and recall per kind, first cycle against the manifest (n/a: the pairing cannot show it)"
    )
    print(tabulate(kinds, headers="keys", tablefmt="github", disable_numparse=True))
    missing = [f"{r['pair']} {r['size']}: no scores (no manifest or mirror)" for r in runs if r["exit"] == 0
               and not any(k["pair"] == r["pair"] and k["size"] == r["size"] for k in kinds)]  # fmt: skip
    short = shortfalls(runs, kinds) + missing
    if short:
        print(f"\n{len(short)} shortfall(s):\n" + "\n".join(f"- {line}" for line in short))
        return 1
    print(f"\nall {len(runs)} runs exited 0, every applicable kind at 1.00, every second cycle wrote nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
