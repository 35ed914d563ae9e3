"""The books writer for Xero: write-back's `BooksWriter` role (writeback/ports.py) over `XeroClient`.

Canonical records in, Xero payloads out through `mapping.py`; every write is one call of at most 50
elements with `summarizeErrors=false`, so one bad element costs only itself, and the client derives the
call's Idempotency-Key from the body (the same changes, the same key). Lookups by reference use
`ContactNumber` (the CRM id a contact carries) and an invoice's `Reference` (`DEAL-<deal id>`).
Refreshing writes the records read back through `core.mirror.write_entity`, as the extract assets do.

(No `from __future__ import annotations`: Dagster inspects resource annotations.)
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from xz_pipeline.core.canonical import Customer, Invoice
from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.store import Store
from xz_pipeline.writeback.ports import Batch, InvoiceDefaults, Outcome
from xz_pipeline.xero import tables
from xz_pipeline.xero.client import WRITE_CHUNK, WriteResult, XeroClient
from xz_pipeline.xero.mapping import DOCUMENT_STATUS, customer_to_xero, invoice_to_xero
from xz_pipeline.xero.resources import XeroResource

SPECS = {
    "customer": (tables.CONTACTS, "Contacts", {"includeArchived": "true"}),
    "invoice": (tables.INVOICES, "Invoices", None),
}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _outcomes(results: list[WriteResult]) -> Batch:
    out = [
        Outcome(
            ok=r.ok,
            record_id=r.record_id,
            error="; ".join(r.errors),
            code=r.status,
            extra={"number": r.record.get("InvoiceNumber")} if r.record.get("InvoiceNumber") else {},
        )
        for r in results
    ]
    failed = sum(not o.ok for o in out)
    return Batch(out, 200 if not failed else (207 if failed < len(out) else 400))


class XeroBooksWriter:
    """One connection's books writer. `write_calls` counts write calls (each at most 50 records)."""

    batch_size = WRITE_CHUNK

    def __init__(self, client: XeroClient, connection: str) -> None:
        self.client, self.connection = client, connection
        self.write_calls = 0
        self._defaults: InvoiceDefaults | None = None

    @property
    def calls(self) -> int:
        return self.client.meter.snapshot()["calls"]

    def close(self) -> None:
        self.client.close()

    def _write(self, collection: str, payloads: list[dict], method: str) -> Batch:
        if len(payloads) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} records a call")
        self.write_calls += 1
        return _outcomes(self.client.write(collection, payloads, method=method))

    def create_customers(self, customers: Sequence[Customer]) -> Batch:
        return self._write("Contacts", [customer_to_xero(c) for c in customers], "PUT")

    def update_customers(self, customers: Sequence[Customer]) -> Batch:
        return self._write("Contacts", [customer_to_xero(c) for c in customers], "POST")

    def create_invoices(self, invoices: Sequence[Invoice]) -> Batch:
        return self._write("Invoices", [invoice_to_xero(i) for i in invoices], "PUT")

    def update_invoices(self, invoices: Sequence[Invoice]) -> Batch:
        payloads = []
        for i in invoices:
            payload = invoice_to_xero(i)
            if not payload.get("Contact", {}).get("ContactID"):
                payload.pop("Contact", None)  # an update keeps its contact
            payloads.append(payload)
        return self._write("Invoices", payloads, "POST")

    def email_invoice(self, invoice_id: str) -> Outcome:
        self.write_calls += 1
        try:
            self.client.email_invoice(invoice_id)
        except ApiError as exc:
            return Outcome(ok=False, record_id=invoice_id, error=str(exc), code=str(exc.code))
        return Outcome(ok=True, record_id=invoice_id)

    def invoice_status(self, invoice_ids: Sequence[str]) -> dict[str, str]:
        found = self.client.iter_records("Invoices", ids=list(invoice_ids))
        return {r["InvoiceID"]: str(DOCUMENT_STATUS.get(r.get("Status"), "unknown")) for r in found}

    def _where_in(
        self, collection: str, field: str, refs: Sequence[str], params: dict | None = None
    ) -> list[dict]:
        found: list[dict] = []
        for start in range(0, len(refs), 25):
            where = " OR ".join(f"{field}=={_quoted(r)}" for r in refs[start : start + 25])
            found += self.client.iter_records(collection, where=where, params=params)
        return found

    def find_customers_by_reference(self, refs: Sequence[str]) -> dict[str, str]:
        rows = self._where_in("Contacts", "ContactNumber", list(refs), {"includeArchived": "true"})
        return {
            r["ContactNumber"]: r["ContactID"]
            for r in rows
            if r.get("ContactNumber") and r.get("ContactStatus") != "ARCHIVED"
        }

    def find_invoices_by_reference(self, refs: Sequence[str]) -> dict[str, Outcome]:
        rows = self._where_in("Invoices", "Reference", list(refs))
        return {
            r["Reference"]: Outcome(
                ok=True, record_id=r["InvoiceID"], extra={"number": r.get("InvoiceNumber")}
            )
            for r in rows
            if r.get("Reference") and r.get("Status") not in ("DELETED", "VOIDED")
        }

    def invoice_defaults(self) -> InvoiceDefaults:
        """The sales account ('200' where it exists, else the first revenue account), its tax type, the
        base currency and the items' own sales account and tax type: what a new invoice line is booked
        with when the plan has none (a line sold as an item takes the item's)."""
        if self._defaults is None:
            accounts = [a for a in self.client.accounts() if a.get("Status", "ACTIVE") == "ACTIVE"]
            revenue = [a for a in accounts if a.get("Type") in ("REVENUE", "SALES")]
            pick = next((a for a in revenue if a.get("Code") == "200"), revenue[0] if revenue else None)
            org = self.client.organisation()
            items = [i for i in self.client.items() if i.get("Code")]
            self._defaults = InvoiceDefaults(
                account_code=pick.get("Code") if pick else None,
                tax_code=pick.get("TaxType") if pick else None,
                base_currency=org.get("BaseCurrency"),
                item_codes=frozenset(i["Code"] for i in items),
                item_sales={
                    i["Code"]: (
                        (i.get("SalesDetails") or {}).get("AccountCode"),
                        (i.get("SalesDetails") or {}).get("TaxType"),
                    )
                    for i in items
                },  # fmt: skip
            )
        return self._defaults

    def refresh(self, store: Store, entity: str, ids: Sequence[str], run_id: str | None) -> int:
        spec, collection, params = SPECS[entity]
        payloads = [
            p
            for page in self.client.iter_pages(collection, ids=sorted(set(ids)), params=params)
            for p in page
        ]
        if payloads:
            write_entity(store, spec, connection=self.connection, payloads=payloads, fetched_at=datetime.now(UTC),
                         run_id=run_id, advance_cursor=False)  # fmt: skip
        return len(payloads)


class XeroWriterResource(dg.ConfigurableResource):
    """The books writer for a connection, on the same settings as `XeroResource`."""

    timeout: float = 30.0

    def writer(self, connection: str, meter: CallMeter | None = None) -> XeroBooksWriter:
        return XeroBooksWriter(XeroResource(timeout=self.timeout).client(connection, meter=meter), connection)
