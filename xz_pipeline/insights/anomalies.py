"""`billing_anomalies`: what in the books looks billed wrongly, per connection, as a Dagster asset and its check.

After reconciliation (it reads `recon.invoice_links` and the open `recon.discrepancies` so as not to
repeat them) it finds, on the canonical views only:
- `duplicate_invoice` — the same customer billed twice (`duplicates.py`): books_id the later invoice,
  related_id the earlier;
- `amount_outlier`, `credit_exceeds_invoice`, `won_deal_invoice_differs` (`billing_rules.py`);
and keeps them in `insights.billing_anomalies` across runs (`anomaly_store.py`). The WARN check
`no_new_billing_anomalies` says how many appeared since the last run, and shows the newest.

Scheduled and manual runs only: the sensors' targeted runs leave the `insights` group out, as they do
for payment risk. (No `from __future__ import annotations`: Dagster inspects the `context` annotation.)
"""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.insights.anomaly_store import merge, previous, read_inputs, write
from xz_pipeline.insights.billing_rules import amount_outliers, credit_beyond_invoice, won_deal_differs
from xz_pipeline.insights.duplicates import duplicate_pairs

CANONICAL = dg.AssetKey("canonical_views")
CHECK = "no_new_billing_anomalies"
KINDS = ("duplicate_invoice", "amount_outlier", "credit_exceeds_invoice", "won_deal_invoice_differs")
NEWEST = 10


def find(frames: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every anomaly of every connection in `frames` (kind, connection, books_id, related_id, score, reason),
    and the kinds that could not be looked for, with the reason."""
    inv = frames["books_invoices"]
    skipped: dict[str, str] = {}
    parts = {
        "duplicate_invoice": duplicate_pairs(inv, frames["books_invoice_lines"]),
        "amount_outlier": amount_outliers(inv),
        "credit_exceeds_invoice": credit_beyond_invoice(
            inv, frames["books_credit_notes"], frames["books_credit_allocations"]
        ),
    }
    if bool(frames["recon_missing"]["missing"].iloc[0]):
        skipped["won_deal_invoice_differs"] = "reconciliation has not linked invoices to deals yet"
    else:
        parts["won_deal_invoice_differs"] = won_deal_differs(
            inv, frames["crm_deals"], frames["invoice_links"], frames["open_discrepancies"]
        )
    found = [p.assign(kind=k) for k, p in parts.items() if len(p)]
    cols = ["connection", "kind", "books_id", "related_id", "score", "reason"]
    return (pd.concat(found, ignore_index=True)[cols] if found else pd.DataFrame(columns=cols)), skipped


def _empty_rows() -> pd.DataFrame:
    """The table's rows when no connection has a mirror yet."""
    columns = ["connection", "kind", "books_id", "related_id", "score", "reason", "first_seen", "resolved_at"]
    return pd.DataFrame(
        {
            c: pd.Series(dtype="datetime64[ns, UTC]" if c in ("first_seen", "resolved_at") else object)
            for c in columns
        }
    )


def _md(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    shown = frame.astype(str).map(lambda v: v.replace("|", "\\|"))
    return shown.to_markdown(index=False, disable_numparse=True)


@dg.asset(
    name="billing_anomalies",
    deps=[CANONICAL, "invoice_links", "discrepancies"],
    group_name="insights",
    kinds={"duckdb"},
    pool="duckdb",
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="billing_anomalies",
            description="WARN when billing anomalies appeared since the last run (count; the newest in a table).",
        )
    ],
    description="insights.billing_anomalies: duplicate invoices, amounts far from the customer's usual, credit "
    "beyond an invoice's total, won deals billed far from their amount; first_seen kept across runs, "
    "resolved_at once an anomaly no longer holds.",
)
def billing_anomalies(context: dg.AssetExecutionContext, mirror: MirrorResource):
    now = datetime.now(UTC)
    parts: list[pd.DataFrame] = []
    connections: list[str] = []
    skipped: dict[str, str] = {}
    for name in mirror.connections():  # one connection's mirror at a time
        store = mirror.store(name)
        with mirror.step_session(context, name):
            with store.read() as con:
                frames = read_inputs(con)
            found, skipped_here = find(frames)
            skipped.update(skipped_here)
            present = sorted(set(frames["books_invoices"]["connection"]))
            with store.write() as con:
                old = previous(con)
                part = merge(old, found, present, now)
                write(con, present, part)
        parts.append(part)
        connections.extend(present)
    connections = sorted(connections)
    non_empty = [p for p in parts if len(p)]
    rows = pd.concat(non_empty, ignore_index=True) if non_empty else (parts[0] if parts else _empty_rows())
    open_ = rows[rows["resolved_at"].isna()]
    new = open_[open_["first_seen"] == pd.Timestamp(now)]
    resolved = int((rows["resolved_at"] == pd.Timestamp(now)).sum())
    by_kind = {
        conn: {k: int(((open_["connection"] == conn) & (open_["kind"] == k)).sum()) for k in KINDS}
        for conn in connections
    }
    context.log.info(
        f"billing_anomalies: {len(open_)} open ({len(new)} new, {resolved} resolved) "
        f"over {len(connections)} connection(s)"
    )
    newest = new.sort_values(["score", "kind"], ascending=[False, True]).head(NEWEST)
    check = dg.AssetCheckResult(
        check_name=CHECK,
        passed=new.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "new": len(new),
            "open": len(open_),
            "newest": dg.MetadataValue.md(_md(newest[["connection", "kind", "score", "reason"]])),
        },
    )
    metadata = {
        "dagster/row_count": len(open_),
        "new": len(new),
        "resolved": resolved,
        "open_by_kind": dg.MetadataValue.json(by_kind),
        "preview": dg.MetadataValue.md(_md(open_.head(20)[["connection", "kind", "score", "reason"]])),
    }
    if skipped:
        metadata["skipped"] = dg.MetadataValue.json(skipped)
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


ANOMALY_ASSETS = [billing_anomalies]
