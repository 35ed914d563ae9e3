"""The books writer for QuickBooks Online: write-back's `BooksWriter` role (writeback/ports.py) over the client.

Canonical records in, QBO payloads out through `mapping.py`; every write is one `/batch` of at most 30
items, so one rejected item costs only itself, and its `requestid` is derived from the batch's content
(the same changes, the same id: QBO answers a repeat from its replay instead of writing twice). Updates are
sparse and carry the record's current SyncToken, read just before; an item refused as a stale object
(Fault 5010: someone changed it meanwhile) is read again and sent once more, and only once.

An invoice asked for as a draft (the default `invoice_status = "DRAFT"` of a won deal's invoice) is created
as an Estimate, QBO's unposted sales document: a QBO invoice is posted the moment it exists (accounts
receivable, the customer's balance, statements), so an invoice nobody approved would already be money the
customer owes, and the CRM's balances would move under the plan that created it. An Estimate waits, like
a Xero draft, until a person converts it to an invoice ("Create invoice"); its id is `estimate-<Id>` in
the canonical views (mapping.py). An AUTHORISED one is an Invoice.

Lookups by reference: the CRM id a customer carries (our marker line in its Notes) and an invoice's (or
estimate's) PrivateNote (`DEAL-<deal id>`). Neither is a field QBO's query language filters on, so lookups read the
entity whole and match here (a page of 1,000 a call). Refreshing writes the records read back through
`core.mirror.write_entity`, as the extract assets do.

(No `from __future__ import annotations`: Dagster inspects resource annotations.)
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg

from xz_pipeline.core.canonical import Customer, DocumentStatus, Invoice, InvoiceLine
from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.store import Store
from xz_pipeline.quickbooks import tables
from xz_pipeline.quickbooks.client import BATCH_MAX, BatchResult, Fault, QuickBooksClient
from xz_pipeline.quickbooks.mapping import (
    ESTIMATE_PREFIX,
    ESTIMATE_STATE,
    STATE,
    crm_link_of,
    customer_to_qbo,
    document_state,
    estimate_to_qbo,
    invoice_to_qbo,
)
from xz_pipeline.quickbooks.resources import QuickBooksResource
from xz_pipeline.writeback.ports import Batch, InvoiceDefaults, Outcome

STALE_OBJECT = "5010"
SPECS = {"customer": (tables.CUSTOMERS, "Customer"), "invoice": (tables.INVOICES, "Invoice"),
         "estimate": (tables.ESTIMATES, "Estimate")}  # fmt: skip


def _entity_of(invoice_id: str | None) -> tuple[str, str | None]:
    """("Estimate", QBO Id) for a canonical `estimate-<Id>`, else ("Invoice", the id)."""
    if invoice_id and invoice_id.startswith(ESTIMATE_PREFIX):
        return "Estimate", invoice_id.removeprefix(ESTIMATE_PREFIX)
    return "Invoice", invoice_id


def _outcome(r: BatchResult) -> Outcome:
    number = r.record.get("DocNumber") if r.entity in ("Invoice", "Estimate") else None
    rid = r.record_id
    if rid is not None and r.entity == "Estimate":
        rid = ESTIMATE_PREFIX + rid
    return Outcome(ok=r.ok, record_id=rid, error=r.error(), code=r.code or ("OK" if r.ok else "ERROR"),
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
        self._item_tax: dict[str, str] = {}  # item id -> its sales TaxCode id
        self._rates: dict[str, Decimal] | None = None  # TaxCode id -> its sales tax, percent

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
        """One batch: drafts as Estimates, the others as Invoices (see the module docstring)."""
        self.invoice_defaults()
        if len(invoices) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} records a call")
        items = []
        for i in invoices:
            entity = "Estimate" if i.status is DocumentStatus.DRAFT else "Invoice"
            items.append({"operation": "create", entity: self._invoice(i, entity)})
        self.write_calls += 1
        return _batch(self.client.batch(items))

    def update_invoices(self, invoices: Sequence[Invoice]) -> Batch:
        """Invoices and estimates (an `estimate-` id), each entity in its own batch, answered in order."""
        self.invoice_defaults()
        by_entity: dict[str, list[int]] = {}
        for n, i in enumerate(invoices):
            by_entity.setdefault(_entity_of(i.books_id)[0], []).append(n)
        outcomes: list[Outcome | None] = [None] * len(invoices)
        status = 200
        for entity, positions in by_entity.items():

            def body(n: int, now: dict, entity=entity, positions=positions) -> dict:
                invoice = invoices[positions[n]]
                payload = self._invoice(invoice, entity)
                if not invoice.lines:
                    payload.pop("Line", None)  # an update without lines keeps the document's lines
                payload.pop("CurrencyRef", None)  # fixed once the document exists
                payload.pop("TxnStatus", None)  # an estimate's state is the person's (accepted, ...)
                return payload

            answer = self._update(entity, [_entity_of(invoices[n].books_id)[1] for n in positions], body)
            for n, outcome in zip(positions, answer.outcomes, strict=True):
                outcomes[n] = outcome
            status = max(status, answer.status)
        done = [o for o in outcomes if o is not None]
        failed = sum(not o.ok for o in done)
        return (
            Batch(done, 200 if not failed else (207 if failed < len(done) else 400))
            if done
            else Batch([], status)
        )

    def _invoice(self, invoice: Invoice, entity: str = "Invoice") -> dict:
        to_qbo = estimate_to_qbo if entity == "Estimate" else invoice_to_qbo
        return to_qbo(
            invoice, item_ids=self._item_ids, default_item=self._default_item, global_tax=self._global_tax,
            tax_rate=self._line_rate,
        )  # fmt: skip

    def _line_rate(self, line: InvoiceLine) -> Decimal:
        """A line's sales tax in percent: its TaxCode's, else its item's (QBO taxes a line by its item's
        code when it names none). The company's TaxCodes and TaxRates are read once, when a tax-inclusive
        document is first written (two queries)."""
        if self._rates is None:
            rate_of = {str(r["Id"]): Decimal(str(r.get("RateValue") or 0))
                       for page in self.client.iter_query("TaxRate") for r in page}  # fmt: skip
            self._rates = {
                str(code["Id"]): sum(
                    (
                        rate_of.get(str((d.get("TaxRateRef") or {}).get("value")), Decimal(0))
                        for d in (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
                    ),
                    Decimal(0),
                )  # fmt: skip
                for page in self.client.iter_query("TaxCode")
                for code in page
            }
        item = self._item_ids.get(line.item_code or "") or line.product_id or self._default_item or ""
        code = line.tax_code or self._item_tax.get(item, "")
        return self._rates.get(str(code), Decimal(0))

    def email_invoice(self, invoice_id: str) -> Outcome:
        if _entity_of(invoice_id)[0] == "Estimate":  # only authorised invoices are emailed
            return Outcome(ok=False, record_id=invoice_id, error="a draft (a QBO estimate) is not emailed",
                           code="Draft")  # fmt: skip
        self.write_calls += 1
        try:
            self.client.send_invoice(invoice_id)
        except ApiError as exc:
            return Outcome(ok=False, record_id=invoice_id, error=str(exc), code=str(exc.code))
        return Outcome(ok=True, record_id=invoice_id)

    def invoice_status(self, invoice_ids: Sequence[str]) -> dict[str, str]:
        """Canonical status per id: an estimate is a draft while Pending or Accepted."""
        wanted = [_entity_of(i) for i in invoice_ids]
        out: dict[str, str] = {}
        invoices = [rid for entity, rid in wanted if entity == "Invoice" and rid]
        estimates = [rid for entity, rid in wanted if entity == "Estimate" and rid]
        if invoices:
            out.update(
                {str(r["Id"]): str(STATE[document_state(r)]) for r in self.client.by_ids("Invoice", invoices)}
            )
        if estimates:
            for r in self.client.by_ids("Estimate", estimates):
                out[ESTIMATE_PREFIX + str(r["Id"])] = str(
                    ESTIMATE_STATE.get(r.get("TxnStatus") or "Pending", "void")
                )
        return out

    def find_customers_by_reference(self, refs: Sequence[str]) -> dict[str, str]:
        wanted, found = set(refs), {}
        for page in self.client.iter_query("Customer"):
            for r in page:
                link = crm_link_of(r.get("Notes"))
                if link in wanted and r.get("Active", True) is not False:
                    found[link] = str(r["Id"])
        return found

    def find_invoices_by_reference(self, refs: Sequence[str]) -> dict[str, Outcome]:
        """Live invoices, then estimates still open to be posted, whose PrivateNote is one of `refs`."""
        wanted, found = set(refs), {}
        for page in self.client.iter_query("Invoice"):
            for r in page:
                ref = r.get("PrivateNote")
                if ref in wanted and document_state(r) != "Voided":
                    found[ref] = Outcome(
                        ok=True, record_id=str(r["Id"]), extra={"number": r.get("DocNumber")}
                    )
        if wanted - set(found):
            for page in self.client.iter_query("Estimate"):
                for r in page:
                    ref = r.get("PrivateNote")
                    live = ESTIMATE_STATE.get(r.get("TxnStatus") or "Pending") == DocumentStatus.DRAFT
                    if ref in wanted and ref not in found and live:
                        found[ref] = Outcome(ok=True, record_id=ESTIMATE_PREFIX + str(r["Id"]),
                                             extra={"number": r.get("DocNumber")})  # fmt: skip
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
            self._item_tax = {
                str(i["Id"]): str(i["SalesTaxCodeRef"]["value"])
                for i in items
                if (i.get("SalesTaxCodeRef") or {}).get("value")
            }
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
        groups: dict[str, list[str]] = {entity: []}
        for rid in sorted(set(ids)):
            kind, qbo_id = _entity_of(rid) if entity == "invoice" else (entity, rid)
            groups.setdefault(kind.lower() if kind == "Estimate" else entity, []).append(qbo_id or rid)
        read = 0
        for key, group in groups.items():
            if not group:
                continue
            spec, name = SPECS[key]
            payloads = self.client.by_ids(name, group)
            if payloads:
                write_entity(store, spec, connection=self.connection, payloads=payloads,
                             fetched_at=datetime.now(UTC), run_id=run_id, advance_cursor=False)  # fmt: skip
            read += len(payloads)
        return read


def _missing(entity: str, rid: str | None) -> Fault:
    return Fault("610", "Object Not Found", f"{entity} {rid or '(no id)'} is not in the company")


class QuickBooksWriterResource(dg.ConfigurableResource):
    """The books writer for a connection, on the same settings as `QuickBooksResource`."""

    timeout: float = 30.0

    def writer(self, connection: str, meter: CallMeter | None = None) -> QuickBooksBooksWriter:
        client = QuickBooksResource(timeout=self.timeout).client(connection, meter=meter)
        return QuickBooksBooksWriter(client, connection)
