"""The reconciliation stage as Dagster assets: links, discrepancies and the analytics views.

One step (`reconcile`, pool `duckdb`) reads the canonical views of each connection's mirror in turn, matches
customers (`matching.py`), links deals to invoices (`linking.py`), runs the rules (`rules.py`) and
writes `recon.customer_links`, `recon.invoice_links` and `recon.discrepancies` (`persist.py`) and the
`analytics` views, in one write transaction. It yields three assets so lineage shows what each holds.
Unpartitioned, like `canonical_views`: it covers every connection and never mixes them.
The accounting invariants (`invariants.py`) are blocking checks on `discrepancies`: write-back, which
reads it, does not run on a mirror that fails them.

(No `from __future__ import annotations`: Dagster inspects the `context` annotation.)
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.reconcile.analytics import install_analytics
from xz_pipeline.reconcile.invariants import build_invariant_checks
from xz_pipeline.reconcile.linking import link_deals_to_invoices
from xz_pipeline.reconcile.matching import duplicates, match_customers
from xz_pipeline.reconcile.persist import (
    PersistCounts,
    persist_discrepancies,
    read_canonical,
    read_decisions,
    write_links,
)
from xz_pipeline.reconcile.projects import links_of, write_project_links
from xz_pipeline.reconcile.rules import KINDS, Inputs, discrepancies

CANONICAL = dg.AssetKey("canonical_views")
PREVIEW_ROWS = 20


@dataclass
class Reconciliation:
    customer_links: pd.DataFrame
    duplicates: pd.DataFrame
    invoice_links: pd.DataFrame
    discrepancies: pd.DataFrame
    project_links: pd.DataFrame | None = None

    @property
    def connections(self) -> list[str]:
        return sorted(set(self.customer_links["connection"]) | set(self.discrepancies["connection"]))


def reconcile(frames: dict[str, pd.DataFrame], decisions: pd.DataFrame | None = None) -> Reconciliation:
    """Canonical frames (see `persist.read_canonical`) in, links and discrepancy rows out. No I/O."""
    links = match_customers(
        frames["books_customers"], frames["crm_accounts"], frames["crm_contacts"], decisions
    )
    dups = duplicates(links)
    invoice_links = link_deals_to_invoices(frames["books_invoices"], frames["crm_deals"], links)
    inputs = Inputs(
        books_customers=frames["books_customers"],
        books_invoices=frames["books_invoices"],
        crm_accounts=frames["crm_accounts"],
        crm_contacts=frames["crm_contacts"],
        crm_deals=frames["crm_deals"],
        crm_invoices=frames["crm_invoices"],
        customer_links=links,
        duplicates=dups,
        invoice_links=invoice_links,
        books_projects=frames.get("books_projects"),
        books_project_tasks=frames.get("books_project_tasks"),
        books_time_entries=frames.get("books_time_entries"),
    )
    found = discrepancies(inputs)
    return Reconciliation(links, dups, invoice_links, found, links_of(inputs))


def _markdown(frame: pd.DataFrame) -> str:
    shown = frame.head(PREVIEW_ROWS).astype(str).map(lambda v: v.replace("|", "\\|")[:80])
    return shown.to_markdown(index=False, disable_numparse=True) if len(shown) else "(none)"


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


SPECS = [
    dg.AssetSpec(
        "customer_links",
        deps=[CANONICAL],
        group_name="reconcile",
        kinds={"duckdb"},
        description="recon.customer_links: books customer ↔ CRM account, with method, confidence and status "
        "(linked | review | rejected).",
    ),
    dg.AssetSpec(
        "invoice_links",
        deps=[CANONICAL, "customer_links"],
        group_name="reconcile",
        kinds={"duckdb"},
        description="recon.invoice_links: books sales invoice ↔ CRM deal (explicit, else inferred), one to one.",
    ),
    dg.AssetSpec(
        "discrepancies",
        deps=[CANONICAL, "customer_links", "invoice_links"],
        group_name="reconcile",
        kinds={"duckdb"},
        description="recon.discrepancies: every disagreement, kept across runs (first_seen, last_seen, "
        "resolved_at); the analytics views over it.",
    ),
]


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    present = [f for f in frames if f is not None]
    non_empty = [f for f in present if len(f)]
    if not present:
        return None
    return pd.concat(non_empty, ignore_index=True) if non_empty else present[0]


def reconcile_connection(
    context: dg.AssetExecutionContext, mirror: MirrorResource, connection: str
) -> tuple[Reconciliation, PersistCounts, list[str], list[str]]:
    """One connection's mirror: read its canonical views, reconcile, write links, discrepancies and the
    analytics views back (its file's lock is held only for the read and for the write)."""
    store = mirror.store(connection)
    with mirror.step_session(context, connection):
        with store.read() as con:
            frames = read_canonical(con)
            decisions = read_decisions(con)
        result = reconcile(frames, decisions)
        connections = sorted(
            set(frames["books_customers"]["connection"]) | set(frames["crm_accounts"]["connection"])
        )
        now = datetime.now(UTC)
        with store.write() as con:
            write_links(con, result.customer_links, result.invoice_links, connections, now)
            write_project_links(con, result.project_links, connections, now)
            counts = persist_discrepancies(con, result.discrepancies, connections, now)
            views = install_analytics(con)
    return result, counts, connections, views


@dg.multi_asset(specs=SPECS, name="reconcile", pool="duckdb")
def reconcile_assets(context: dg.AssetExecutionContext, mirror: MirrorResource):
    parts = [reconcile_connection(context, mirror, name) for name in mirror.connections()]
    if not parts:
        context.log.info("no connection has a mirror yet: nothing to reconcile")
        for spec in SPECS:
            yield dg.MaterializeResult(asset_key=spec.key, metadata={"dagster/row_count": 0})
        return
    result = Reconciliation(
        *(_concat([getattr(r, f) for r, *_ in parts]) for f in ("customer_links", "duplicates")),
        *(_concat([getattr(r, f) for r, *_ in parts]) for f in ("invoice_links", "discrepancies")),
    )
    counts = PersistCounts(
        *(sum(getattr(c, f) for _, c, *_ in parts) for f in PersistCounts.__dataclass_fields__)
    )
    connections = sorted({name for _, _, names, _ in parts for name in names})
    views = max((v for *_, v in parts), key=len)
    links = result.customer_links
    context.log.info(
        f"reconciled {len(connections)} connection(s): {len(links)} customer links, "
        f"{len(result.invoice_links)} invoice links, {len(result.discrepancies)} discrepancies"
    )
    yield dg.MaterializeResult(
        asset_key="customer_links",
        metadata={
            "dagster/row_count": len(links),
            "by_status": dg.MetadataValue.json(_counts(links["status"])),
            "by_method": dg.MetadataValue.json(_counts(links["method"])),
            "duplicates": len(result.duplicates),
            "connections": dg.MetadataValue.json(connections),
        },
    )
    yield dg.MaterializeResult(
        asset_key="invoice_links",
        metadata={
            "dagster/row_count": len(result.invoice_links),
            "by_method": dg.MetadataValue.json(_counts(result.invoice_links["method"])),
        },
    )
    found = result.discrepancies
    by_kind = {kind: int((found["kind"] == kind).sum()) for kind in KINDS}
    yield dg.MaterializeResult(
        asset_key="discrepancies",
        metadata={
            "dagster/row_count": counts.open,
            "by_kind": dg.MetadataValue.json(by_kind),
            "by_severity": dg.MetadataValue.json(_counts(found["severity"])),
            "new": counts.new,
            "seen_again": counts.seen_again,
            "reopened": counts.reopened,
            "resolved": counts.resolved,
            "analytics_views": dg.MetadataValue.json([f"analytics.{v}" for v in views]),
            "preview": dg.MetadataValue.md(
                _markdown(
                    found[
                        [
                            "connection",
                            "kind",
                            "severity",
                            "books_id",
                            "crm_id",
                            "field",
                            "books_value",
                            "crm_value",
                        ]
                    ]
                )  # fmt: skip
            ),
        },
    )


RECONCILE_ASSETS = [reconcile_assets]
RECONCILE_CHECKS = [build_invariant_checks(dg.AssetKey("discrepancies"))]
