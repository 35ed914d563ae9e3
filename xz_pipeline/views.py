"""The `canonical` role views as a Dagster asset: each vendor's mapping installed over each connection's mirror.

Everything after the mirror reads `canonical.*` only (docs/architecture.md); this asset is where the two
vendors' SELECTs meet, so reconciliation never names a vendor.
"""

import hashlib
from collections.abc import Mapping, Sequence

import dagster as dg
import duckdb

from xz_pipeline.core.canonical import _present, _sources, install_views
from xz_pipeline.core.mirror import EntityTable, ddl
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.store import Store
from xz_pipeline.quickbooks.tables import ENTITIES as QUICKBOOKS_TABLES
from xz_pipeline.salesforce.tables import ENTITIES as SALESFORCE_TABLES
from xz_pipeline.xero.projects_tables import ENTITIES as PROJECT_TABLES
from xz_pipeline.xero.tables import ENTITIES as XERO_TABLES
from xz_pipeline.zoho.tables import ENTITIES as ZOHO_TABLES

VENDOR_TABLES: tuple[EntityTable, ...] = (
    *XERO_TABLES,
    *PROJECT_TABLES,
    *QUICKBOOKS_TABLES,
    *ZOHO_TABLES,
    *SALESFORCE_TABLES,
)


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


def upgrade_vendor_tables(
    con: duckdb.DuckDBPyConnection, tables: Sequence[EntityTable] = VENDOR_TABLES
) -> None:
    """The additive migrations of every vendor table the file already has: a mirror written before a column
    existed gets it (NULL for old rows), so the views install even when this run did not touch that vendor.
    Tables the file lacks stay absent (their views are empty, never missing)."""
    present = {
        tuple(r) for r in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()
    }
    for spec in tables:
        for table, cols, key in [
            (spec.table, spec.cols, spec.key),
            *((c.table, c.cols, c.key) for c in spec.children),
        ]:
            if (spec.schema, table) in present:
                Store.ensure_table(con, spec.schema, table, ddl(cols), list(key))


def install_canonical(
    con: duckdb.DuckDBPyConnection, vendor_views: Sequence[Mapping[str, str | Sequence[str]]]
) -> dict[str, str]:
    """Base tables, the vendor tables' additive migrations, then the canonical views; how each view was made."""
    Store.ensure_base(con)
    upgrade_vendor_tables(con)
    return install_views(con, combine_views(con, vendor_views))


# The views were installed for this catalog and this code: a run that changed rows and no table or column
# (every targeted near-real-time run, nearly every scheduled one) leaves them as they are. Measured: the
# install took 0.7-1.5 s of a targeted run; the fingerprint, two catalog reads.
INSTALL_DDL = """create table if not exists meta.canonical_install (
    fingerprint varchar not null, installed_at timestamptz not null default now())"""


def catalog_fingerprint(con: duckdb.DuckDBPyConnection, vendor_views) -> str:
    """What the installed views depend on: every table's columns (the vendor tables and meta.quarantine),
    the canonical views as they stand (a dropped or edited one differs), the mappings and the vendor
    tables' declared columns (a new release differs)."""
    schemas = sorted({t.schema for t in VENDOR_TABLES})
    columns = con.execute(
        "select schema_name, table_name, column_name, data_type from duckdb_columns() "
        f"where schema_name in ({', '.join('?' * len(schemas))}) "
        "or (schema_name = 'meta' and table_name = 'quarantine') order by all",
        schemas,
    ).fetchall()
    views = con.execute(
        "select view_name, sql from duckdb_views() where schema_name = 'canonical' order by all"
    ).fetchall()

    def cols(spec_cols) -> list[tuple[str, str]]:
        return [(c.name, c.sql) for c in spec_cols]

    code = repr([sorted(vv.items()) for vv in vendor_views]) + repr(
        [
            (t.schema, t.table, cols(t.cols), [(c.table, cols(c.cols)) for c in t.children])
            for t in VENDOR_TABLES
        ]
    )
    return hashlib.sha256(repr((columns, views, code)).encode()).hexdigest()


def refresh_canonical(con: duckdb.DuckDBPyConnection, vendor_views) -> dict[str, str] | None:
    """Install the views unless the catalog and code they were made for are unchanged (None then)."""
    con.execute("create schema if not exists meta")
    con.execute(INSTALL_DDL)
    stored = con.execute("select fingerprint from meta.canonical_install").fetchall()
    if stored and stored[0][0] == catalog_fingerprint(con, vendor_views):
        return None
    made = install_canonical(con, vendor_views)
    con.execute("delete from meta.canonical_install")
    con.execute(
        "insert into meta.canonical_install (fingerprint) values (?)",
        [catalog_fingerprint(con, vendor_views)],
    )
    return made


def build_canonical_views_asset(
    deps: Sequence[dg.AssetsDefinition], vendor_views: Sequence[Mapping[str, str | Sequence[str]]]
) -> dg.AssetsDefinition:
    @dg.asset(
        name="canonical_views",
        group_name="canonical",
        kinds={"duckdb"},
        deps=list(deps),
        pool="duckdb",
        description="Role views (`canonical.books_*`, `canonical.crm_*`) over the vendor tables of each "
        "connection's mirror, checked against the canonical contract; a source the org lacks gives an empty "
        "view, never a missing one.",
    )
    def canonical_views(mirror: MirrorResource) -> dg.MaterializeResult:
        made: dict[str, str] = {}
        counts: dict[str, int] = {}
        unchanged = 0  # connections whose views were already made for their tables
        for connection in mirror.connections():  # one file at a time: its lock is held only for its views
            with mirror.store(connection).write() as con:
                installed = refresh_canonical(con, vendor_views)
                if installed is None:
                    unchanged += 1
                    continue
                for view, how in installed.items():
                    made[view] = how if made.get(view, "empty") == "empty" else made[view]
                    counts[view] = (
                        counts.get(view, 0)
                        + con.execute(f"select count(*) from canonical.{view}").fetchall()[0][0]
                    )
        return dg.MaterializeResult(
            metadata={
                "views": dg.MetadataValue.md(
                    "\n".join(f"| {v} | {made[v]} | {counts[v]} |" for v in sorted(made)).join(
                        ["| view | from | rows |\n|---|---|---|\n", ""]
                    )
                ),
                "empty_views": sorted(v for v, how in made.items() if how == "empty"),
                "connections": len(mirror.connections()),
                "unchanged": unchanged,
            }
        )

    return canonical_views
