"""`canonical_views` over the connections' mirrors: one file at a time, and a file written before a vendor
table had some of its columns (issue #13) gets them before the views are installed, NULL for the old rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import dagster as dg
import pytest

from xz_pipeline.core.canonical import CanonicalViewError, install_views
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.store import Store
from xz_pipeline.definitions import VENDOR_VIEWS, canonical_views
from xz_pipeline.sandbox.world import generate
from xz_pipeline.sandbox.xero import XeroEmulator
from xz_pipeline.views import combine_views
from xz_pipeline.xero import tables as xero_tables
from xz_pipeline.xero.mapping import BOOKS_VIEWS

FETCHED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _newer_columns() -> list[str]:
    """Two non-key columns of xero.invoices that the books views read (as if added after the file was made)."""
    selects = " ".join(s for v in BOOKS_VIEWS.values() for s in ([v] if isinstance(v, str) else v))
    spec = xero_tables.INVOICES
    used = [c.name for c in spec.cols if c.name not in spec.key and re.search(rf"\b{c.name}\b", selects)]
    return used[-2:]


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory):
    """Two connections' files; `old`'s xero.invoices lacks two columns the views read."""
    directory = tmp_path_factory.mktemp("mirror")
    world = generate(seed=5, size="tiny")
    xero = XeroEmulator()
    tenant = xero.seed_world(world)
    for connection in ("new", "old"):
        store = Store(directory / f"{connection}.duckdb")
        for spec in xero_tables.ENTITIES:
            write_entity(store, spec, connection=connection, payloads=xero.dump(tenant, spec.entity),
                         fetched_at=FETCHED_AT, run_id="r", full=True)  # fmt: skip
    dropped = _newer_columns()
    with Store(directory / "old.duckdb").write() as con:
        for table in ("invoices", "invoices_history"):
            for column in dropped:
                con.execute(f"alter table xero.{table} drop column {column}")
    return directory, dropped


def test_the_old_schema_breaks_the_views_without_the_additive_migrations(mirrors):
    directory, dropped = mirrors
    assert len(dropped) == 2
    with Store(directory / "old.duckdb").write() as con, pytest.raises(CanonicalViewError):
        install_views(con, combine_views(con, VENDOR_VIEWS))


def test_canonical_views_install_over_each_file_and_new_columns_read_null(mirrors):
    directory, dropped = mirrors
    result = dg.materialize([canonical_views], resources={"mirror": MirrorResource(path=str(directory))})
    assert result.success
    counts = {}
    for connection in ("new", "old"):
        with Store(directory / f"{connection}.duckdb").read() as con:
            counts[connection] = con.execute("select count(*) from canonical.books_invoices").fetchone()[0]
            filled = con.execute(
                f"select count({dropped[0]}), count({dropped[1]}), count(*) from xero.invoices"
            ).fetchone()
            if connection == "old":
                assert filled[:2] == (0, 0) and filled[2] > 0  # added, NULL for the rows fetched before
            assert {
                r[0]
                for r in con.execute("select distinct connection from canonical.books_invoices").fetchall()
            } == {connection}
    assert counts["new"] == counts["old"] > 0
    metadata = result.asset_materializations_for_node("canonical_views")[0].metadata
    assert metadata["connections"].value == 2


def test_views_made_for_the_same_tables_are_left_as_they_are_and_made_again_when_the_tables_change(mirrors):
    """A run that changed rows only (every targeted run) skips the install; a new column, a dropped view or
    a table appearing makes it install again."""
    directory, _ = mirrors
    resources = {"mirror": MirrorResource(path=str(directory))}

    def unchanged() -> int:
        result = dg.materialize([canonical_views], resources=resources)
        assert result.success
        return result.asset_materializations_for_node("canonical_views")[0].metadata["unchanged"].value

    unchanged()  # whatever the earlier tests left: installed for these tables now
    with Store(directory / "new.duckdb").write() as con:
        con.execute("update xero.invoices set reference = 'edited' where true")  # rows, not the catalog
    assert unchanged() == 2
    with Store(directory / "new.duckdb").write() as con:
        con.execute("drop view canonical.books_invoices")
    assert unchanged() == 1
    with Store(directory / "new.duckdb").read() as con:
        assert con.execute("select count(*) from canonical.books_invoices").fetchone()[0] > 0
    with Store(directory / "old.duckdb").write() as con:
        con.execute("alter table xero.invoices add column added_by_a_release varchar")
    assert unchanged() == 1
