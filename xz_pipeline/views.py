"""The `canonical` role views as a Dagster asset: each vendor's mapping installed over the mirror.

Everything after the mirror reads `canonical.*` only (docs/architecture.md); this asset is where the two
vendors' SELECTs meet, so reconciliation never names a vendor.
"""

from collections.abc import Mapping, Sequence

import dagster as dg

from xz_pipeline.core.canonical import _present, _sources, install_views
from xz_pipeline.core.resources import MirrorResource


def combine_views(
    con, vendor_views: Sequence[Mapping[str, str | Sequence[str]]]
) -> dict[str, str | list[str]]:
    """Several vendors of one role (Xero and QuickBooks for books, Zoho and Salesforce for crm) as one mapping:
    per view, each vendor's first SELECT whose tables exist, joined by UNION ALL (each vendor's tables hold only
    the rows of the connections paired with it). A vendor may leave a view out (Salesforce has no CRM
    invoices). A view no vendor has sources for keeps the first vendor's SELECTs, so `install_views` makes it
    empty."""
    chosen: dict[str, list[str]] = {}
    original: dict[str, str | list[str]] = {}
    for views in vendor_views:
        for view, selects in views.items():
            candidates = [selects] if isinstance(selects, str) else list(selects)
            original.setdefault(view, candidates)
            found = next((c for c in candidates if _present(con, _sources(con, c))), None)
            chosen.setdefault(view, []).extend([found] if found else [])
    return {
        view: " union all ".join(f"select * from ({c})" for c in picked) if picked else original[view]
        for view, picked in chosen.items()
    }


def build_canonical_views_asset(
    deps: Sequence[dg.AssetsDefinition], vendor_views: Sequence[Mapping[str, str | Sequence[str]]]
) -> dg.AssetsDefinition:
    @dg.asset(
        name="canonical_views",
        group_name="canonical",
        kinds={"duckdb"},
        deps=list(deps),
        pool="duckdb",
        description="Role views (`canonical.books_*`, `canonical.crm_*`) over the vendor tables, checked "
        "against the canonical contract; a source the org lacks gives an empty view, never a missing one.",
    )
    def canonical_views(mirror: MirrorResource) -> dg.MaterializeResult:
        store = mirror.store()
        made: dict[str, str] = {}
        with store.write() as con:
            store.ensure_base(con)
            made.update(install_views(con, combine_views(con, vendor_views)))
            counts = {
                view: con.execute(f"select count(*) from canonical.{view}").fetchall()[0][0] for view in made
            }
        return dg.MaterializeResult(
            metadata={
                "views": dg.MetadataValue.md(
                    "\n".join(f"| {v} | {made[v]} | {counts[v]} |" for v in sorted(made)).join(
                        ["| view | from | rows |\n|---|---|---|\n", ""]
                    )
                ),
                "empty_views": sorted(v for v, how in made.items() if how == "empty"),
            }
        )

    return canonical_views
