"""Payment-risk benchmark (`make bench-insights`): the time-split backtest of `payment_risk` beside the
baseline (each customer's historical share of late invoices), on the realistic-habits world and on the
constant-habits world (every invoice paid by an independent draw: nothing to learn).

Goals: on realistic habits the model beats the baseline by >= 0.05 AUC on all scored invoices and on
those not yet 5 days past due, with Brier no worse; on constant habits it gains <= 0.02 AUC.

- medium (default): canonical frames built straight from the generated world
  (`xz_pipeline_tests/insights/world_frames.py`), as bench_recon does: the HTTP path takes minutes there;
- `--size demo`: the demo world mirrored over HTTP by the real assets, then the `payment_risk` asset run
  in Dagster; its metadata is what is printed.
`--compare` adds the logistic-regression variant (`model.py` says why the trees were kept).

Not part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xz_pipeline.insights.backtest import run_backtest, summary  # noqa: E402
from xz_pipeline.insights.features import Ledger, to_day  # noqa: E402
from xz_pipeline.sandbox.world import generate  # noqa: E402
from xz_pipeline_tests.insights.world_frames import frames  # noqa: E402

SEED = 7
MODES = ("realistic", "constant")
METRICS = ("auc", "accuracy", "brier", "mae_days")


def from_world(size: str, habits: str, kind: str) -> dict:
    started = time.perf_counter()
    world = generate(SEED, size, habits=habits)
    f = frames(world)
    ledger = Ledger(f["books_invoices"], f["books_payments"], f["books_credit_allocations"],
                    f["books_credit_notes"], f["books_invoice_lines"])  # fmt: skip
    bt = run_backtest(ledger, to_day(world.as_of), kind=kind)
    if bt is None:
        raise SystemExit(f"{size}: history too short for a backtest")
    print(
        f"{size} {habits} {kind}: backtest in {time.perf_counter() - started:.0f}s",
        file=sys.stderr,
        flush=True,
    )
    return summary(bt)


def through_pipeline(habits: str) -> dict:
    """The demo world mirrored over HTTP, then the payment_risk asset; its backtest metadata."""
    import dagster as dg

    from xz_pipeline import runner, settings
    from xz_pipeline.core.resources import MirrorResource
    from xz_pipeline.insights.assets import INSIGHTS_ASSETS
    from xz_pipeline.sandbox.server import SandboxServer

    with tempfile.TemporaryDirectory() as home:
        os.environ["XZ_HOME"] = home
        os.environ["DAGSTER_HOME"] = str(Path(home) / "dagster")
        with SandboxServer(seed=SEED, size="demo", habits=habits) as sb:
            os.environ.update(sb.env(0))
            name = sb.connection_name(0)
            os.environ["XZ_CONNECTION"] = name
            outcomes = runner.sync([name], inst=runner.instance(Path(home)), only="mirror")
            if not all(o.success for o in outcomes):
                raise SystemExit(f"mirror failed: {[o.error for o in outcomes]}")
            as_of = sb.worlds[0].as_of.date().isoformat()
        started = time.perf_counter()
        with dg.instance_for_test() as inst:
            result = dg.materialize(
                INSIGHTS_ASSETS, instance=inst, resources={"mirror": MirrorResource(path=str(settings.mirror_path()))},
                run_config={"ops": {"payment_risk": {"config": {"as_of": as_of}}}},
            )  # fmt: skip
        (event,) = result.get_asset_materialization_events()
        meta = event.step_materialization_data.materialization.metadata
        print(f"demo {habits}: payment_risk asset in {time.perf_counter() - started:.0f}s "
              f"({meta['dagster/row_count'].value} open invoices scored)", file=sys.stderr, flush=True)  # fmt: skip
        (s,) = meta["backtest"].value.values()
        return s


def rows_of(label: str, s: dict) -> list[dict]:
    out = []
    for part, title in (("all", "all scored"), ("not_yet_late", "not yet 5 days late")):
        for who in ("model", "baseline"):
            out.append({"world": label, "invoices": f"{title} ({s[f'{part}.invoices']})", "scorer": who,
                        **{m: f"{s[f'{part}.{who}_{m}']:.3f}" for m in METRICS}})  # fmt: skip
    return out


def verdicts(results: dict[str, dict]) -> list[str]:
    lines = []
    for label, s in results.items():
        constant = label.startswith("constant")
        for part in ("all", "not_yet_late"):
            gain = s[f"{part}.model_auc"] - s[f"{part}.baseline_auc"]
            brier = s[f"{part}.model_brier"] - s[f"{part}.baseline_brier"]
            if constant:
                ok, goal = gain <= 0.02, "<= +0.02"
            else:
                ok, goal = gain >= 0.05 and brier <= 0, ">= +0.05 with Brier no worse"
            lines.append(f"{label:<22} {part:<13} AUC gain {gain:+.3f}, Brier {brier:+.3f} "
                         f"(goal {goal}): {'ok' if ok else 'MISSED'}")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=("demo", "medium", "large"))
    parser.add_argument("--compare", action="store_true", help="also the logistic-regression variant")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for habits in MODES:
        if args.size == "demo":
            results[f"{habits} (demo, mirror)"] = through_pipeline(habits)
        else:
            results[f"{habits} ({args.size})"] = from_world(args.size, habits, "hgb")
        if args.compare:
            results[f"{habits} logistic"] = from_world(args.size, habits, "logistic")
    table = [row for label, s in results.items() for row in rows_of(label, s)]
    print(tabulate(table, headers="keys", tablefmt="github"))
    print()
    for line in verdicts(results):
        print(line)


if __name__ == "__main__":
    main()
