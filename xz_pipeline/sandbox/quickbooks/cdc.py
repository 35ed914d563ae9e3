"""Change data capture: `GET /cdc?entities=Customer,Invoice&changedSince=ISO`.

Facts (notes A.3): changes of the last 30 days only (an older changedSince is refused: "Operation cdc
with changedSince date ... which is older than fixed days is not supported", answered here as QBO's
Unsupported Operation fault, code 500, HTTP 400); at most 1,000 objects per entity per response;
full payloads; deleted objects come back as `{"Id": .., "status": "Deleted"}` with their MetaData.
Not for TaxCode, TaxRate (nor JournalCode, TimeActivity, which the emulator does not keep).

Choices where the sources are silent: objects come oldest change first, so a client that gets the
1,000 cap can move changedSince to the last LastUpdatedTime it saw; there is no paging (CDC takes no
startPosition); an entity with no changes is an empty QueryResponse `{}`, in the order asked.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from xz_pipeline.sandbox.quickbooks.company import BY_LOWER, CDC_ENTITIES, Company
from xz_pipeline.sandbox.quickbooks.wire import QboFault, WireError, parse_datetime, required

WINDOW = timedelta(days=30)
MAX_PER_ENTITY = 1000


def changes(company: Company, entities: str | None, changed_since: str | None, now: datetime) -> list[dict]:
    """The CDCResponse's QueryResponse list (records as the API views them, not yet on the wire)."""
    if not entities:
        raise required("entities", "The entities parameter is required (e.g. entities=Customer,Invoice).")
    if not changed_since:
        raise required("changedSince", "The changedSince parameter is required.")
    try:
        since = parse_datetime(changed_since)
    except WireError as exc:
        raise QboFault(
            "2010", "Request has invalid or unsupported property", str(exc), element="changedSince"
        ) from exc
    if since < now - WINDOW:
        raise QboFault("500", "Unsupported Operation",
                       f"Operation cdc with changedSince date {changed_since} which is older than fixed days "
                       "is not supported.")  # fmt: skip
    names = []
    for raw in entities.split(","):
        entity = BY_LOWER.get(raw.strip().lower())
        if entity is None or entity not in CDC_ENTITIES:
            raise QboFault(
                "500", "Unsupported Operation", f"Operation cdc is not supported for {raw.strip()}."
            )
        if entity not in names:
            names.append(entity)
    out = []
    for entity in names:
        rows = [(r["MetaData"]["LastUpdatedTime"], company.view(entity, r)) for r in company.records[entity].values()
                if r["MetaData"]["LastUpdatedTime"] >= since]  # fmt: skip
        rows += [(t.deleted, {"Id": t.id, "status": "Deleted", "domain": "QBO",
                              "MetaData": {"CreateTime": t.created, "LastUpdatedTime": t.deleted}})
                 for t in company.tombstones[entity].values() if t.deleted >= since]  # fmt: skip
        rows.sort(key=lambda pair: (pair[0], int(pair[1]["Id"]) if str(pair[1]["Id"]).isdigit() else 0))
        rows = rows[:MAX_PER_ENTITY]
        if rows:
            out.append({entity: [r for _t, r in rows], "startPosition": 1, "maxResults": len(rows)})
        else:
            out.append({})
    return out
