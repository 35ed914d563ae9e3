"""The CRM writer for Zoho: write-back's `CrmWriter` role (writeback/ports.py) over `ZohoClient`.

Canonical records in, Zoho records out through `mapping.py`; every write is one call of at most 100
records, or one sub-request of a composite call carrying up to five such writes (`composite`). New accounts are upserted on `Xero_Contact_ID` (unique, the books id they carry) and new contacts
on `Email`, so a replay finds what the first call made instead of creating it twice. Writes send
`trigger: []` unless configured: our own corrections must not set off the org's workflows (and loops).
Refreshing writes the records read back through `core.mirror.write_entity`, as the extract assets do.

(No `from __future__ import annotations`: Dagster inspects resource annotations.)
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from xz_pipeline.core.canonical import Customer, Person
from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.store import Store
from xz_pipeline.writeback.ports import Batch, Outcome
from xz_pipeline.zoho import tables
from xz_pipeline.zoho.client import (
    COMPOSITE_LIMIT,
    TAG_CHUNK,
    WRITE_CHUNK,
    SubRequest,
    WriteResult,
    ZohoClient,
)
from xz_pipeline.zoho.mapping import (
    account_to_zoho,
    contact_to_zoho,
    deal_update_to_zoho,
    invoice_update_to_zoho,
)
from xz_pipeline.zoho.resources import ZohoResource

MODULES = {"account": "Accounts", "contact": "Contacts", "deal": "Deals", "invoice": "Invoices"}
SPECS = {
    "Accounts": tables.ACCOUNTS,
    "Contacts": tables.CONTACTS,
    "Deals": tables.DEALS,
    "Invoices": tables.INVOICES,
}


def _batch(results: list[WriteResult]) -> Batch:
    out = [
        Outcome(
            ok=r.ok,
            record_id=r.id,
            error="" if r.ok else f"{r.code}: {r.message}" + (f" ({r.field})" if r.field else ""),
            code=r.code,
        )  # fmt: skip
        for r in results
    ]
    failed = sum(not o.ok for o in out)
    return Batch(out, 200 if not failed else (207 if failed < len(out) else 400))


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ZohoCrmWriter:
    """One connection's CRM writer. `write_calls` counts write calls (each at most 100 records)."""

    batch_size = WRITE_CHUNK

    def __init__(self, client: ZohoClient, connection: str, trigger: Sequence[str] = ()) -> None:
        self.client, self.connection, self.trigger = client, connection, list(trigger)
        self.write_calls = 0

    @property
    def calls(self) -> int:
        return self.client.meter.snapshot()["calls"]

    def close(self) -> None:
        self.client.close()

    def _check(self, n: int, limit: int | None = None) -> None:
        limit = limit or self.batch_size
        if n > limit:
            raise ValueError(f"at most {limit} records a call")
        self.write_calls += 1

    def upsert_accounts(self, accounts: Sequence[Customer]) -> Batch:
        self._check(len(accounts))
        records = [account_to_zoho(a) for a in accounts]
        return _batch(self.client.upsert("Accounts", records, ["Xero_Contact_ID"], trigger=self.trigger))

    def update_accounts(self, accounts: Sequence[Customer]) -> Batch:
        self._check(len(accounts))
        return _batch(
            self.client.update("Accounts", [account_to_zoho(a) for a in accounts], trigger=self.trigger)
        )

    def upsert_contacts(self, persons: Sequence[Person]) -> Batch:
        self._check(len(persons))
        records = [contact_to_zoho(p) for p in persons]
        return _batch(self.client.upsert("Contacts", records, ["Email"], trigger=self.trigger))

    def update_contacts(self, persons: Sequence[Person]) -> Batch:
        self._check(len(persons))
        return _batch(
            self.client.update("Contacts", [contact_to_zoho(p) for p in persons], trigger=self.trigger)
        )

    def update_deals(self, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        self._check(len(changes))
        records = [deal_update_to_zoho(deal_id, fields) for deal_id, fields in changes]
        return _batch(self.client.update("Deals", records, trigger=self.trigger))

    def update_invoices(self, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        self._check(len(changes))
        records = [invoice_update_to_zoho(invoice_id, fields) for invoice_id, fields in changes]
        return _batch(self.client.update("Invoices", records, trigger=self.trigger))

    def add_tags(self, account_ids: Sequence[str], tags: Sequence[str]) -> Batch:
        self._check(len(account_ids), self.tag_batch_size)
        return _batch(self.client.add_tags("Accounts", account_ids, list(tags)))

    # -- several writes in one call ---------------------------------------------------------------

    composite_size = COMPOSITE_LIMIT
    tag_batch_size = TAG_CHUNK

    def _request(self, kind: str, args: tuple) -> SubRequest:
        c, t = self.client, self.trigger
        if kind == "upsert_accounts":
            return c.write_request("upsert", "Accounts", [account_to_zoho(a) for a in args[0]],
                                   duplicate_check_fields=["Xero_Contact_ID"], trigger=t)  # fmt: skip
        if kind == "update_accounts":
            return c.write_request("update", "Accounts", [account_to_zoho(a) for a in args[0]], trigger=t)
        if kind == "upsert_contacts":
            return c.write_request("upsert", "Contacts", [contact_to_zoho(p) for p in args[0]],
                                   duplicate_check_fields=["Email"], trigger=t)  # fmt: skip
        if kind == "update_contacts":
            return c.write_request("update", "Contacts", [contact_to_zoho(p) for p in args[0]], trigger=t)
        if kind == "update_deals":
            return c.write_request(
                "update", "Deals", [deal_update_to_zoho(i, f) for i, f in args[0]], trigger=t
            )
        if kind == "update_invoices":
            return c.write_request("update", "Invoices", [invoice_update_to_zoho(i, f) for i, f in args[0]],
                                   trigger=t)  # fmt: skip
        if kind == "add_tags":
            return c.tags_request("Accounts", list(args[0]), list(args[1]))
        raise ValueError(f"no CRM write {kind!r}")

    def composite(self, writes: Sequence[tuple[str, tuple]]) -> list[Batch | ApiError]:
        """Several writes (each what one of this writer's methods would send: (method name, its arguments))
        in one composite call, run in order; one Batch per write, or the ApiError that refused it whole."""
        requests = [self._request(kind, args) for kind, args in writes]
        self.write_calls += 1
        return [r if isinstance(r, ApiError) else _batch(r) for r in self.client.composite(requests)]

    def find_accounts_by_reference(self, books_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        refs = sorted(set(books_ids))
        for start in range(0, len(refs), 50):
            chunk = ", ".join(_literal(r) for r in refs[start : start + 50])
            for row in self.client.coql(
                f"select id, Xero_Contact_ID from Accounts where Xero_Contact_ID in ({chunk})"
            ):
                if row.get("Xero_Contact_ID"):
                    found[str(row["Xero_Contact_ID"])] = str(row["id"])
        return found

    def refresh(self, store: Store, entity: str, ids: Sequence[str], run_id: str | None) -> int:
        module = MODULES[entity]
        payloads = self.client.get_many(module, sorted(set(ids)), tables.FIELDS[module])
        if payloads:
            write_entity(store, SPECS[module], connection=self.connection, payloads=payloads,
                         fetched_at=datetime.now(UTC), run_id=run_id, advance_cursor=False)  # fmt: skip
        return len(payloads)

    def read_deal_products(self, store: Store, deal_ids: Sequence[str], run_id: str | None) -> int:
        """The Products related list of each deal (one call each), written with the deal through
        `write_entity`, so `zoho.deal_products` holds them; a deal read with its products since its stored
        version changed (a landing payload carrying them, fetched no earlier) costs nothing again."""
        wanted = sorted({str(i) for i in deal_ids})
        if not wanted:
            return 0
        with store.read() as con:
            done = {
                r[0]
                for r in con.execute(
                    "select d.deal_id from zoho.deals d join landing.records l on l.connection = d.connection "
                    "and l.vendor = 'zoho' and l.entity = 'Deals' and l.record_id = d.deal_id "
                    "and l.fetched_at >= d.fetched_at where d.connection = ? "
                    "and d.deal_id in (select unnest(?::varchar[])) "
                    "and json_extract(l.payload, ?) is not null",
                    [self.connection, wanted, f'$."{tables.RELATED_PRODUCTS}"'],
                ).fetchall()
            }
        todo = [i for i in wanted if i not in done]
        if not todo:
            return 0
        before = self.client.meter.snapshot()["calls"]
        deals = self.client.get_many("Deals", todo, tables.FIELDS["Deals"])
        payloads = [
            {**d, tables.RELATED_PRODUCTS: self.client.related("Deals", str(d["id"]), "Products",
                                                               tables.DEAL_PRODUCT_FIELDS)}
            for d in deals
        ]  # fmt: skip
        if payloads:
            write_entity(store, SPECS["Deals"], connection=self.connection, payloads=payloads,
                         fetched_at=datetime.now(UTC), run_id=run_id, advance_cursor=False)  # fmt: skip
        return self.client.meter.snapshot()["calls"] - before


class ZohoWriterResource(dg.ConfigurableResource):
    """The CRM writer for a connection, on the same settings as `ZohoResource`."""

    timeout: float = 30.0

    def writer(
        self, connection: str, meter: CallMeter | None = None, trigger: Sequence[str] = ()
    ) -> ZohoCrmWriter:
        return ZohoCrmWriter(
            ZohoResource(timeout=self.timeout).client(connection, meter=meter), connection, trigger
        )
