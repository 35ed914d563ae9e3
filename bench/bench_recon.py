"""Reconciliation benchmark (`make bench-recon`): how right and how fast the reconcile stage is.

1. Precision and recall per discrepancy kind against the generator's manifest (goal ≥ 0.98 each):
   - demo through the whole pipeline: sandbox emulators over HTTP, `runner.sync --only mirror`, the
     canonical views read back from DuckDB (`persist.read_canonical`);
   - medium (and demo again) from canonical frames built straight from the generated world
     (`xz_pipeline_tests.reconcile.world_frames.py`): the HTTP path takes minutes at 100,000 invoices.
2. Time and peak RSS to reconcile the large organisation (40,000 customers, 1,000,000 invoices; goal
   < 20 s and < 4 GB): frames built from the world in one process and pickled, then reconciled in a
   fresh process whose peak RSS is measured (so generating the world is not counted). "reconcile" is
   matching + deal linking + every rule; "persist" writes the links and discrepancies to a new
   DuckDB file through `Store.write()`.

Not part of `make test`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tabulate import tabulate

from xz_pipeline_tests.mirrors import only_mirror

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xz_pipeline.reconcile.assets import reconcile  # noqa: E402
from xz_pipeline.reconcile.rules import KINDS  # noqa: E402
from xz_pipeline.sandbox.world import generate  # noqa: E402
from xz_pipeline_tests.reconcile.world_frames import frames, score  # noqa: E402

SEED = 7


def _row(label: str, scores: dict, seconds: float) -> list[dict]:
    out = []
    for kind in KINDS:
        s = scores.get(kind, {"expected": 0, "found": 0, "precision": 1.0, "recall": 1.0})
        ok = s["precision"] >= 0.98 and s["recall"] >= 0.98
        out.append({"source": label, "kind": kind, "expected": s["expected"], "found": s["found"],
                    "precision": f"{s['precision']:.3f}", "recall": f"{s['recall']:.3f}",
                    "goal": "ok" if ok else "MISSED", "reconcile s": f"{seconds:.2f}"})  # fmt: skip
    return out


def quality_from_world(size: str) -> list[dict]:
    world = generate(SEED, size)
    f = frames(world)
    started = time.perf_counter()
    result = reconcile(f)
    seconds = time.perf_counter() - started
    return _row(f"{size} (world frames)", score(result.discrepancies, world.manifest), seconds)


def quality_through_pipeline() -> list[dict]:
    """The demo world mirrored over HTTP by the real assets, then reconciled from DuckDB."""
    from xz_pipeline import runner
    from xz_pipeline.core.store import Store
    from xz_pipeline.reconcile.persist import read_canonical
    from xz_pipeline.sandbox.server import SandboxServer

    with tempfile.TemporaryDirectory() as home:
        os.environ["XZ_HOME"] = home
        os.environ["DAGSTER_HOME"] = str(Path(home) / "dagster")
        with SandboxServer(seed=SEED, size="demo") as sb:
            os.environ.update(sb.env(0))
            name = sb.connection_name(0)
            os.environ["XZ_CONNECTION"] = name
            started = time.perf_counter()
            outcomes = runner.sync([name], inst=runner.instance(Path(home)), only="mirror")
            mirrored = time.perf_counter() - started
            if not all(o.success for o in outcomes):
                raise SystemExit(f"mirror failed: {[o.error for o in outcomes]}")
            print(f"demo mirrored over HTTP in {mirrored:.1f}s", file=sys.stderr, flush=True)
            with Store(only_mirror()).read() as con:
                f = read_canonical(con)
            started = time.perf_counter()
            result = reconcile(f)
            seconds = time.perf_counter() - started
            return _row("demo (HTTP → mirror)", score(result.discrepancies, sb.worlds[0].manifest), seconds)


def prepare_large(path: Path) -> None:
    """Generate the large world and pickle its frames and manifest (run in its own process)."""
    started = time.perf_counter()
    world = generate(SEED, "large")
    f = frames(world)
    manifest = list(world.manifest)
    del world
    gc.collect()
    with path.open("wb") as out:
        pickle.dump((f, manifest), out, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"large frames built in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)


def run_large(path: Path) -> None:
    """Reconcile the pickled large frames; print one line of figures (run in a fresh process)."""
    from xz_pipeline.core.store import Store
    from xz_pipeline.reconcile.persist import persist_discrepancies, write_links

    with path.open("rb") as src:
        f, manifest = pickle.load(src)
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    result = reconcile(f)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "mirror.duckdb")
        started = time.perf_counter()
        connections = sorted(set(f["books_customers"]["connection"]))
        with store.write() as con:
            write_links(con, result.customer_links, result.invoice_links, connections, datetime.now(UTC))
            persist_discrepancies(con, result.discrepancies, connections, datetime.now(UTC))
        persist = time.perf_counter() - started
    scores = score(result.discrepancies, manifest)
    worst = min(min(s["precision"], s["recall"]) for s in scores.values())
    print(json.dumps({"invoices": len(f["books_invoices"]), "customers": len(f["books_customers"]),
                "deals": len(f["crm_deals"]), "reconcile_s": seconds, "persist_s": persist,
                "peak_rss_mb": peak, "rss_after_load_mb": loaded_rss, "links": len(result.customer_links),
                "invoice_links": len(result.invoice_links), "discrepancies": len(result.discrepancies),
                "worst_precision_or_recall": worst}))  # fmt: skip


def bench_large() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.pickle"
        subprocess.run([sys.executable, __file__, "--prepare-large", str(path)], check=True)
        out = subprocess.run(
            [sys.executable, __file__, "--run-large", str(path)], check=True, capture_output=True, text=True
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="demo,medium", help="world sizes scored from world frames")
    parser.add_argument(
        "--no-pipeline", action="store_true", help="skip the demo run through HTTP and DuckDB"
    )
    parser.add_argument("--no-large", action="store_true", help="skip the large timing")
    parser.add_argument("--prepare-large", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-large", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare_large:
        prepare_large(args.prepare_large)
        return 0
    if args.run_large:
        run_large(args.run_large)
        return 0
    rows: list[dict] = []
    if not args.no_pipeline:
        rows += quality_through_pipeline()
    for size in [s for s in args.sizes.split(",") if s]:
        rows += quality_from_world(size)
        print(f"scored {size}", file=sys.stderr, flush=True)
    print("\nPrecision and recall per kind against the manifest (goal ≥ 0.98)")
    print(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))
    missed = [r for r in rows if r["goal"] != "ok"]
    if not args.no_large:
        large = bench_large()
        print("\nLarge organisation (world frames; goal < 20 s and < 4 GB)")
        print(tabulate([{
            "invoices": f"{large['invoices']:,}", "customers": f"{large['customers']:,}",
            "deals": f"{large['deals']:,}", "reconcile s": f"{large['reconcile_s']:.2f}",
            "persist s": f"{large['persist_s']:.2f}", "peak RSS MB": f"{large['peak_rss_mb']:.0f}",
            "RSS after loading frames MB": f"{large['rss_after_load_mb']:.0f}",
            "discrepancies": f"{large['discrepancies']:,}",
            "worst precision/recall": f"{large['worst_precision_or_recall']:.3f}",
        }], headers="keys", tablefmt="github", disable_numparse=True))  # fmt: skip
    print(
        f"\n{len(missed)} kind/source rows below the 0.98 goal"
        if missed
        else "\nevery kind meets the 0.98 goal"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
