"""The books writer for QuickBooks Online: write-back's `BooksWriter` role (writeback/ports.py) over the client.

Canonical records in, QBO payloads out through `mapping.py`; every write is one `/batch` of at most 30
items, so one rejected item costs only itself, and its `requestid` is derived from the batch's content
(the same changes, the same id: QBO answers a repeat from its replay instead of writing twice). Updates are
sparse and carry the record's current SyncToken, read just before; an item refused as a stale object
(Fault 5010: someone changed it meanwhile) is read again and sent once more, and only once.

Lookups by reference: the CRM id a customer carries (our marker line in its Notes) and an invoice's
PrivateNote (`DEAL-<deal id>`). Neither is a field QBO's query language filters on, so lookups read the
entity whole and match here (a page of 1,000 a call). Refreshing writes the records read back through
`core.mirror.write_entity`, as the extract assets do.

(No `from __future__ import annotations`: Dagster inspects resource annotations.)
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import dagster as dg

from xz_pipeline.core.canonical import Customer, Invoice
from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.store import Store
from xz_pipeline.quickbooks import tables
from xz_pipeline.quickbooks.client import BATCH_MAX, BatchResult, Fault, QuickBooksClient
from xz_pipeline.quickbooks.mapping import (
    STATE,
    crm_link_of,
    customer_to_qbo,
    document_state,
    invoice_to_qbo,
)
from xz_pipeline.quickbooks.resources import QuickBooksResource
from xz_pipeline.writeback.ports import Batch, InvoiceDefaults, Outcome

STALE_OBJECT = "5010"
SPECS = {"customer": (tables.CUSTOMERS, "Customer"), "invoice": (tables.INVOICES, "Invoice")}


def _outcome(r: BatchResult) -> Outcome:
    number = r.record.get("DocNumber") if r.entity == "Invoice" else None
    return Outcome(ok=r.ok, record_id=r.record_id, error=r.error(), code=r.code or ("OK" if r.ok else "ERROR"),
                   extra={"number": number} if number else {})  # fmt: skip


def _batch(results: list[BatchResult]) -> Batch:
    out = [_outcome(r) for r in results]
    failed = sum(not o.ok for o in out)
    return Batch(out, 200 if not failed else (207 if failed < len(out) else 400))


class QuickBooksBooksWriter:
    """One connection's books writer. `write_calls` counts batch calls (each at most 30 records)."""

    batch_size = BATCH_MAX

    def __init__(self, client: QuickBooksClient, connection: str) -> None:
        self.client, self.connection = client, connection
        self.write_calls = 0
        self._defaults: InvoiceDefaults | None = None
        self._item_ids: dict[str, str] = {}
        self._default_item: str | None = None
        self._global_tax = True

    @property
    def calls(self) -> int:
        return self.client.meter.snapshot()["calls"]

    def close(self) -> None:
        self.client.close()

    # -- the batches ----------------------------------------------------------------------------

    def _send(self, entity: str, operation: str, bodies: list[dict]) -> list[BatchResult]:
        if len(bodies) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} records a call")
        self.write_calls += 1
        return self.client.batch([{"operation": operation, entity: body} for body in bodies])

    def _create(self, entity: str, bodies: list[dict]) -> Batch:
        return _batch(self._send(entity, "create", bodies))

    def _update(self, entity: str, ids: list[str | None], body_of: Callable[[int, dict], dict]) -> Batch:
        """Sparse updates with each record's current SyncToken; a stale one (5010) is read and sent again once."""
        current = {str(r["Id"]): r for r in self.client.by_ids(entity, [i for i in ids if i])}
        results: list[BatchResult | None] = [None] * len(ids)
        pending: list[int] = []
        for n, rid in enumerate(ids):
            if not rid or rid not in current:
                results[n] = BatchResult(str(n), entity, faults=[_missing(entity, rid)])
            else:
                pending.append(n)
        for attempt in range(2):
            if not pending:
                break
            bodies = [{"Id": ids[n], "SyncToken": current[ids[n]].get("SyncToken"), "sparse": True,
                       **body_of(n, current[ids[n]])} for n in pending]  # fmt: skip
            sent = self._send(entity, "update", bodies)
            stale = []
            for n, result in zip(pending, sent, strict=True):
                results[n] = result
                if attempt == 0 and result.code == STALE_OBJECT:
                    stale.append(n)
            if stale:
                current.update({str(r["Id"]): r for r in self.client.by_ids(entity, [ids[n] for n in stale])})
            pending = [n for n in stale if ids[n] in current]
        return _batch([r for r in results if r is not None])

    # -- the port -------------------------------------------------------------------------------

    def create_customers(self, customers: Sequence[Customer]) -> Batch:
        return self._create("Customer", [customer_to_qbo(c) for c in customers])

    def update_customers(self, customers: Sequence[Customer]) -> Batch:
        def body(n: int, now: dict) -> dict:
            return customer_to_qbo(customers[n], with_currency=False, notes=now.get("Notes"))

        return self._update("Customer", [c.books_id for c in customers], body)

    def create_invoices(self, invoices: Sequence[Invoice]) -> Batch:
        self.invoice_defaults()
        return self._create("Invoice", [self._invoice(i) for i in invoices])

    def update_invoices(self, invoices: Sequence[Invoice]) -> Batch:
        self.invoice_defaults()

        def body(n: int, now: dict) -> dict:
            payload = self._invoice(invoices[n])
            if not invoices[n].lines:
                payload.pop("Line", None)  # an update without lines keeps the invoice's lines
            payload.pop("CurrencyRef", None)  # fixed once the invoice exists
            return payload

        return self._update("Invoice", [i.books_id for i in invoices], body)

    def _invoice(self, invoice: Invoice) -> dict:
        return invoice_to_qbo(invoice, item_ids=self._item_ids, default_item=self._default_item,
                              global_tax=self._global_tax)  # fmt: skip

    def email_invoice(self, invoice_id: str) -> Outcome:
        self.write_calls += 1
        try:
            self.client.send_invoice(invoice_id)
        except ApiError as exc:
            return Outcome(ok=False, record_id=invoice_id, error=str(exc), code=str(exc.code))
        return Outcome(ok=True, record_id=invoice_id)

    def invoice_status(self, invoice_ids: Sequence[str]) -> dict[str, str]:
        found = self.client.by_ids("Invoice", list(invoice_ids))
        return {str(r["Id"]): str(STATE[document_state(r)]) for r in found}

    def find_customers_by_reference(self, refs: Sequence[str]) -> dict[str, str]:
        wanted, found = set(refs), {}
        for page in self.client.iter_query("Customer"):
            for r in page:
                link = crm_link_of(r.get("Notes"))
                if link in wanted and r.get("Active", True) is not False:
                    found[link] = str(r["Id"])
        return found

    def find_invoices_by_reference(self, refs: Sequence[str]) -> dict[str, Outcome]:
        wanted, found = set(refs), {}
        for page in self.client.iter_query("Invoice"):
            for r in page:
                ref = r.get("PrivateNote")
                if ref in wanted and document_state(r) != "Voided":
                    found[ref] = Outcome(
                        ok=True, record_id=str(r["Id"]), extra={"number": r.get("DocNumber")}
                    )
        return found

    def invoice_defaults(self) -> InvoiceDefaults:
        """The income account new lines book to (the default item's, else the first active income account),
        the home currency, and each item's code (Sku, else Name) with its income account and sales tax code:
        what a line sold as that item is booked with."""
        if self._defaults is None:
            prefs = self.client.preferences()
            company = self.client.company_info()
            items = [
                i
                for page in self.client.iter_query("Item")
                for i in page
                if i.get("Active", True) is not False
            ]
            accounts = [
                a
                for page in self.client.iter_query("Account")
                for a in page
                if a.get("Active", True) is not False
            ]
            sold = [i for i in items if (i.get("IncomeAccountRef") or {}).get("value")]
            default_id = ((prefs.get("SalesFormsPrefs") or {}).get("DefaultItem") or {}).get("value")
            default = next((i for i in sold if str(i["Id"]) == str(default_id)), None) or next(
                (i for i in sold if i.get("Type") == "Service"), sold[0] if sold else None
            )
            income = [a for a in accounts if a.get("AccountType") == "Income"]
            account = (default or {}).get("IncomeAccountRef", {}).get("value") or (
                income[0]["Id"] if income else None
            )
            self._item_ids = {str(i.get("Sku") or i.get("Name")): str(i["Id"]) for i in items}
            self._item_ids.update({str(i["Name"]): str(i["Id"]) for i in items if i.get("Name")})
            self._default_item = str(default["Id"]) if default else None
            self._global_tax = str(company.get("Country") or "").upper() != "US"  # US: sales tax, no tax mode
            home = ((prefs.get("CurrencyPrefs") or {}).get("HomeCurrency") or {}).get("value")
            self._defaults = InvoiceDefaults(
                account_code=str(account) if account else None,
                tax_code=((default or {}).get("SalesTaxCodeRef") or {}).get("value"),
                base_currency=home,
                item_codes=frozenset(str(i.get("Sku") or i.get("Name")) for i in items),
                item_sales={
                    str(i.get("Sku") or i.get("Name")): (
                        (i.get("IncomeAccountRef") or {}).get("value"),
                        (i.get("SalesTaxCodeRef") or {}).get("value"),
                    )
                    for i in items
                },
            )
        return self._defaults

    def refresh(self, store: Store, entity: str, ids: Sequence[str], run_id: str | None) -> int:
        spec, name = SPECS[entity]
        payloads = self.client.by_ids(name, sorted(set(ids)))
        if payloads:
            write_entity(store, spec, connection=self.connection, payloads=payloads, fetched_at=datetime.now(UTC),
                         run_id=run_id, advance_cursor=False)  # fmt: skip
        return len(payloads)


def _missing(entity: str, rid: str | None) -> Fault:
    return Fault("610", "Object Not Found", f"{entity} {rid or '(no id)'} is not in the company")


class QuickBooksWriterResource(dg.ConfigurableResource):
    """The books writer for a connection, on the same settings as `QuickBooksResource`."""

    timeout: float = 30.0

    def writer(self, connection: str, meter: CallMeter | None = None) -> QuickBooksBooksWriter:
        client = QuickBooksResource(timeout=self.timeout).client(connection, meter=meter)
        return QuickBooksBooksWriter(client, connection)
