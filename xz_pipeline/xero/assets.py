"""Xero entities mirrored into DuckDB, one asset per entity, one partition per connection.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import EntityTable, read_cursor, write_entity
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.xero import tables
from xz_pipeline.xero.dates import parse_xero_datetime
from xz_pipeline.xero.resources import XeroResource

# Xero's If-Modified-Since is accurate to the second; re-read one second to never miss a write
# that shared the cursor's second (re-read rows are recognised by their payload hash).
CURSOR_OVERLAP = timedelta(seconds=1)

CONTACTS = EntityTable(
    vendor="xero",
    entity="Contacts",
    schema="xero",
    table="contacts",
    columns=tables.CONTACTS_COLUMNS,
    key=tables.CONTACTS_KEY,
    record_id=lambda p: p.get("ContactID", ""),
    modified=lambda p: parse_xero_datetime(p.get("UpdatedDateUTC")),
    to_row=tables.contact_row,
)

RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@dg.asset(
    group_name="xero",
    kinds={"duckdb", "python"},
    partitions_def=connections_partitions,
    pool="duckdb",
    retry_policy=RETRY,
    description="Xero contacts (customers and suppliers, archived included) as `xero.contacts` with history.",
)
def xero_contacts(
    context: dg.AssetExecutionContext, xero: XeroResource, mirror: MirrorResource
) -> dg.MaterializeResult:
    connection = context.partition_key
    store = mirror.store()
    cursor = read_cursor(store, connection, "xero", CONTACTS.entity)
    since = cursor - CURSOR_OVERLAP if cursor else None
    meter = CallMeter()
    client = xero.client(connection, meter=meter)
    try:
        payloads = list(
            client.iter_records("Contacts", modified_since=since, params={"includeArchived": "true"})
        )
    finally:
        client.close()
    result = write_entity(
        store,
        CONTACTS,
        connection=connection,
        payloads=payloads,
        fetched_at=datetime.now(UTC),
        run_id=context.run_id,
    )
    calls = meter.snapshot()
    context.log.info(
        f"xero contacts for {connection}: fetched {len(payloads)} ({'incremental' if since else 'full'}), "
        f"inserted {result.counts.inserted}, updated {result.counts.updated}, api calls {calls.get('calls', 0)}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.total_rows,
            "fetched": len(payloads),
            "inserted": result.counts.inserted,
            "updated": result.counts.updated,
            "unchanged": result.counts.unchanged,
            "quarantined": result.quarantined,
            "mode": "incremental" if since else "full",
            "api_calls": calls.get("calls", 0),
            "cursor": result.cursor.isoformat() if result.cursor else "",
        }
    )
