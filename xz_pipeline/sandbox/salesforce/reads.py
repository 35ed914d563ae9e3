"""Reads: SOQL query and queryAll in batches with query locators, a record by id or external id (with
`?fields=`), describe and describeGlobal, and the replication windows `/updated` and `/deleted`.

Batches: 2,000 records unless the client asks for fewer with `Sforce-Query-Options: batchSize=N` (200 to
2,000). A result larger than one batch answers `done: false` and `nextRecordsUrl`
`/services/data/vXX.X/query/01g...-2000`; the locator holds the matching ids as they were when the query
ran (the rows are rendered when each batch is fetched) and is forgotten after LOCATOR_IDLE unused.
`/updated` and `/deleted` take `start` and `end` (ISO datetimes), answer at most 30 days at once, and
report `latestDateCovered` as `end` cut to the minute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from xz_pipeline.sandbox.salesforce import soql
from xz_pipeline.sandbox.salesforce.ids import KEY_PREFIXES, to18
from xz_pipeline.sandbox.salesforce.org import Org
from xz_pipeline.sandbox.salesforce.wire import (
    SfError,
    not_found,
    parse_datetime,
    render,
    sf_datetime,
    to_json,
)
from xz_pipeline.sandbox.salesforce.writes import external_field

MIN_BATCH = 200
LOCATOR_IDLE = timedelta(minutes=15)
LOCATORS_KEPT = 64
WINDOW = timedelta(days=30)


@dataclass
class Locator:
    org_id: str
    query: soql.Query
    ids: list[str]
    last_used: datetime
    batch: int


def batch_size(options: str, ceiling: int) -> int:
    m = re.search(r"batchSize\s*=\s*(\d+)", options or "")
    if not m:
        return ceiling
    return max(min(MIN_BATCH, ceiling), min(int(m.group(1)), ceiling))


class Reader:
    def __init__(self) -> None:
        self.locators: dict[str, Locator] = {}
        self._n = 0

    def query(self, org: Org, text: str, *, deleted: bool, now: datetime, base: str, options: str,
              ceiling: int) -> dict:  # fmt: skip
        q = soql.parse(text, org.schema, now)
        rows = soql.select(q, org.schema, org.records, deleted=deleted)
        if q.count:
            return {"totalSize": len(rows), "done": True, "records": []}
        size = batch_size(options, ceiling)
        ids = [r["Id"] for r in rows]
        if len(ids) <= size:
            return {"totalSize": len(ids), "done": True, "records": self._render(org, q, ids, base)}
        self._n += 1
        locator = f"01g{org.mint.pod}0000{self._n:08d}"[:15]
        locator = to18(locator) or locator
        self.locators[locator] = Locator(org.org_id, q, ids, now, size)
        while len(self.locators) > LOCATORS_KEPT:
            self.locators.pop(next(iter(self.locators)))
        return self._page(org, locator, 0, now, base)

    def more(self, org: Org, token: str, now: datetime, base: str) -> dict:
        locator, _, start = token.partition("-")
        held = self.locators.get(locator)
        if held is None or held.org_id != org.org_id or now - held.last_used > LOCATOR_IDLE:
            self.locators.pop(locator, None)
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        if not start.isdigit() or int(start) > len(held.ids):
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        held.last_used = now
        return self._page(org, locator, int(start), now, base)

    def _page(self, org: Org, locator: str, start: int, now: datetime, base: str) -> dict:
        held = self.locators[locator]
        chunk = held.ids[start : start + held.batch]
        out = {"totalSize": len(held.ids), "done": start + len(chunk) >= len(held.ids),
               "records": self._render(org, held.query, chunk, base)}  # fmt: skip
        if not out["done"]:
            out["nextRecordsUrl"] = f"{base}/query/{locator}-{start + len(chunk)}"
        else:
            self.locators.pop(locator, None)
        return out

    @staticmethod
    def _render(org: Org, q: soql.Query, ids: list[str], base: str) -> list[dict]:
        recs = org.records[q.sobject]
        return [soql.project(q, recs[i], org.schema, org.records, base, to_json) for i in ids if i in recs]


def get_record(org: Org, sobject: str, rid: str, fields: str, base: str, *, ext: str = "") -> dict:
    if ext:
        f = external_field(org, sobject, ext)
        found = (
            org.find_by(sobject, f.name, rid)
            if f.name != "Id"
            else [r for r in (org.get(sobject, to18(rid)),) if r]
        )
        if len(found) > 1:
            raise SfError(
                300,
                "MULTIPLE_CHOICES",
                f"Multiple records found for {f.name}={rid}",
                [r["Id"] for r in found],
            )
        rec = found[0] if found else None
    else:
        rec = org.get(sobject, to18(rid))
    if rec is None:
        raise not_found()
    names = None
    if fields:
        names = []
        for name in (n.strip() for n in fields.split(",") if n.strip()):
            f = org.schema.find(sobject, name)
            if f is None:
                raise SfError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'. If you are "
                              "attempting to use a custom field, be sure to append the '__c' after the custom field "
                              "name. Please reference your WSDL or the describe call for the appropriate names.")  # fmt: skip
            names.append(f.name)
    return render(sobject, rec, base, names if names is not None else list(org.schema.fields(sobject)))


def describe_global(org: Org, base: str) -> dict:
    return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
        {k: v for k, v in org.schema.describe(name, KEY_PREFIXES.get(name, ""), base).items() if k != "fields"}
        for name in org.schema.objects]}  # fmt: skip


def _window(q: dict[str, str], now: datetime) -> tuple[datetime, datetime]:
    for name in ("start", "end"):
        if not q.get(name):
            raise SfError(400, "MISSING_ARGUMENT", f"{name} was not specified")
    try:
        start, end = parse_datetime(q["start"]), parse_datetime(q["end"])
    except ValueError as exc:
        raise SfError(400, "INVALID_DATE_FORMAT", "dates must be in ISO 8601 format, e.g. "
                      "2026-01-01T00:00:00+00:00") from exc  # fmt: skip
    if end <= start:
        raise SfError(400, "INVALID_REPLICATION_DATE", "end date must be later than start date")
    if end - start > WINDOW:
        raise SfError(
            400, "INVALID_REPLICATION_DATE", "the interval between start and end may not exceed 30 days"
        )
    return start, min(end, now)


def updated(org: Org, sobject: str, q: dict[str, str], now: datetime) -> dict:
    start, end = _window(q, now)
    end = end.replace(second=0, microsecond=0)
    return {"ids": sorted(org.updated_between(sobject, start, end)), "latestDateCovered": sf_datetime(end)}


def deleted(org: Org, sobject: str, q: dict[str, str], now: datetime) -> dict:
    start, end = _window(q, now)
    end = end.replace(second=0, microsecond=0)
    earliest = org.earliest_deleted(now)
    if start < earliest:
        start = earliest
    found = org.deleted_between(sobject, start, end)
    return {"deletedRecords": [{"id": rid, "deletedDate": sf_datetime(when)} for rid, when in found],
            "earliestDateAvailable": sf_datetime(earliest), "latestDateCovered": sf_datetime(end)}  # fmt: skip
