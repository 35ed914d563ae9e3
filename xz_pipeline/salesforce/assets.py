"""Salesforce sObjects mirrored into DuckDB, one asset per object, one partition per connection.

First syncs and full sweeps read every record by SOQL in SystemModstamp order; incremental reads ask for
`SystemModstamp >= cursor` and the deletions since the cursor from `/sobjects/{type}/deleted/`; targeted
reads (an Outbound Message, a poll) ask for exactly the announced ids. The org's schema is described first
(once a day), so no query names a field the org lacks. A connection whose crm is not Salesforce is skipped
by `core.sync.extract_asset`, which says so in the step's metadata.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

from collections.abc import Callable
from datetime import timedelta

import dagster as dg

from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import EntityTable
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.sync import Fetched, MirrorConfig, ReadPlan, extract_asset, run_extract
from xz_pipeline.salesforce import fieldmap, tables
from xz_pipeline.salesforce import schema as schema_mod
from xz_pipeline.salesforce.client import SalesforceClient
from xz_pipeline.salesforce.fieldmap import DEFAULT, FieldMap
from xz_pipeline.salesforce.resources import SalesforceResource

# The replication API answers for whole minutes that have ended (`latestDateCovered`), so a deletion in the minute
# a read ran shows only later: deletions are asked from a day before the cursor at least (held ids only land).
DELETION_LOOKBACK = timedelta(days=1)


def fetch_for(
    client: SalesforceClient,
    spec: EntityTable,
    plan: ReadPlan,
    fm: FieldMap = DEFAULT,
    held: Callable[[list[str]], set[str]] | None = None,
) -> Fetched:
    """How one read plan becomes pages of records (and, when incremental, the deletions since the cursor that
    the mirror still holds: `held` says which of the reported ids it does)."""
    schema = client.schema
    if schema is not None and not schema.has_object(spec.entity):
        return Fetched([], note=f"; not offered by this org ({schema.absent.get(spec.entity, '')})")
    asked = tables.fields(spec.entity, fm)
    if plan.ids:
        return Fetched(client.select(spec.entity, asked, ids=list(plan.ids)))
    if plan.full or plan.since is None:
        return Fetched(client.select(spec.entity, asked))
    pages = client.select(spec.entity, asked, since=plan.since)
    start = min(plan.cursor or plan.since, client.now() - DELETION_LOOKBACK)

    def deleted() -> list[tuple[str, dict]]:
        found = [(str(r["id"]), r) for r in client.deleted(spec.entity, start).records]
        keep = held([rid for rid, _ in found]) if held is not None and found else {rid for rid, _ in found}
        return [(rid, r) for rid, r in found if rid in keep]

    return Fetched(pages, deleted=deleted)


def held_ids(store, spec: EntityTable, connection: str) -> Callable[[list[str]], set[str]]:
    """Which of some ids the mirror's current table holds for the connection."""

    def held(ids: list[str]) -> set[str]:
        id_col = spec.key[-1]
        with store.read() as con:
            rows = con.execute(
                f"select {id_col} from {spec.schema}.{spec.table} where connection = ? "
                f"and {id_col} in (select unnest(?::varchar[]))",
                [connection, ids],
            ).fetchall()
        return {r[0] for r in rows}

    return held


def _with_schema(result: dg.MaterializeResult, schema, sobject: str, fm: FieldMap) -> dg.MaterializeResult:
    """The extract's metadata plus each wanted field the org lacks and what that disables."""
    extra = {
        "missing_fields": dg.MetadataValue.json(
            schema_mod.missing_report(schema, {sobject: tables.FIELDS[sobject]}, fm)
        ),
        "mapped_fields": dg.MetadataValue.json(
            {k: v for k, v in fm.mapped().items() if k.startswith(sobject)}
        ),
    }
    if schema.home_currency:
        extra["home_currency"] = schema.home_currency
    return dg.MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **extra},
                                check_results=result.check_results, data_version=result.data_version,
                                tags=result.tags)  # fmt: skip


def _sf_asset(name: str, sobject: str, description: str):
    @extract_asset(name, "salesforce", description)
    def _asset(
        context: dg.AssetExecutionContext,
        config: MirrorConfig,
        salesforce: SalesforceResource,
        mirror: MirrorResource,
    ) -> dg.MaterializeResult:
        meter = CallMeter()
        connection = context.partition_key
        fm = fieldmap.load(connection)
        spec = tables.specs(fm)[sobject]
        with salesforce.client(connection, meter=meter) as client:
            with mirror.step_session(context, connection):
                schema = schema_mod.ensure(client, mirror.store(connection), connection, fm)
            result = run_extract(
                context, spec, mirror, config, meter, lambda plan: fetch_for(client, spec, plan, fm)
            )
        return _with_schema(result, schema, sobject, fm)

    return _asset


salesforce_accounts = _sf_asset(
    "salesforce_accounts",
    "Account",
    "Accounts as `salesforce.accounts` (+ `_history`): name, type, phones, website, billing and shipping address, "
    "currency, the books customer id, balances. Deleted accounts leave the table (their history is closed).",
)
salesforce_contacts = _sf_asset(
    "salesforce_contacts",
    "Contact",
    "Contacts as `salesforce.contacts` (+ `_history`): the person, their account, email, phones, mailing address.",
)
salesforce_opportunities = _sf_asset(
    "salesforce_opportunities",
    "Opportunity",
    "Opportunities as `salesforce.opportunities` (+ `_history`): stage with IsWon/IsClosed, amount and currency, "
    "close date, account, the books invoice it became and its payment status.",
)
salesforce_opportunity_line_items = _sf_asset(
    "salesforce_opportunity_line_items",
    "OpportunityLineItem",
    "Opportunity products as `salesforce.opportunity_line_items` (+ `_history`): product, quantity, sales price.",
)
salesforce_products = _sf_asset(
    "salesforce_products",
    "Product2",
    "Products (Product2) as `salesforce.products` (+ `_history`): code, name, active.",
)

SALESFORCE_ASSETS = [
    salesforce_accounts,
    salesforce_contacts,
    salesforce_opportunities,
    salesforce_opportunity_line_items,
    salesforce_products,
]
