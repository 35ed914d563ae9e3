"""The role-level writers write-back reaches vendors through (docs/architecture.md: roles, not vendors).

`definitions.py` wires a vendor's implementation in (`xero/writer.py` for books, `zoho/writer.py` for
crm); write-back itself names no vendor field. Every method takes canonical values and returns one
`Outcome` per input, in order, so a partial failure costs only the records the API rejected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from xz_pipeline.core.canonical import Customer, Invoice, Person
from xz_pipeline.core.store import Store


@dataclass(frozen=True)
class Outcome:
    """One record's result: the id the system holds it under, or the API's reason for refusing it."""

    ok: bool
    record_id: str | None = None
    error: str = ""
    code: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. an invoice's number


@dataclass(frozen=True)
class Batch:
    """What one write call returned: per-record outcomes and the HTTP status (207 = some failed)."""

    outcomes: list[Outcome]
    status: int | None = None

    @property
    def failed(self) -> int:
        return sum(not o.ok for o in self.outcomes)


@dataclass(frozen=True)
class InvoiceDefaults:
    """The books organisation's own codes: what a new sales invoice line is booked to, and each item's
    own sales (account code, tax code), which a line sold as that item is booked with."""

    account_code: str | None
    tax_code: str | None
    base_currency: str | None
    item_codes: frozenset[str] = frozenset()
    item_sales: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """What a CRM org cannot take: `missing_fields` (entity, plan field) -> why (a plan row for it is
    skipped with that reason), `unavailable` endpoint -> why (e.g. a deal's products: one invoice line)."""

    missing_fields: Mapping[tuple[str, str], str] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)


# Error codes that say an org does not offer an endpoint at all (its edition, or the grant), not that a
# call failed: the work falls back (composite -> one write a call) for the rest of the run.
NOT_OFFERED = frozenset(
    {
        "INVALID_URL_PATTERN",
        "NOT_SUPPORTED",
        "FEATURE_NOT_SUPPORTED",
        "OAUTH_SCOPE_MISMATCH",
        "INVALID_MODULE",
    }
)


def not_offered(exc: Exception) -> bool:
    """Whether a vendor error says the endpoint is not offered (a 404, a scope or edition refusal)."""
    status, code = getattr(exc, "status", None), str(getattr(exc, "code", "") or "").upper()
    return status == 404 or code in NOT_OFFERED or (status in (401, 403) and "SCOPE" in code)


class Writer(Protocol):
    batch_size: int  # most records one write call carries

    @property
    def calls(self) -> int:
        """HTTP calls spent so far (reads included)."""
        ...

    @property
    def write_calls(self) -> int:
        """Write calls spent so far."""
        ...

    def refresh(self, store: Store, entity: str, ids: Sequence[str], run_id: str | None) -> int:
        """Read exactly these records back into the mirror (the extract assets' path); rows written."""
        ...

    def close(self) -> None: ...


class BooksWriter(Writer, Protocol):
    """The accounting system: customers (contacts) and sales invoices."""

    def create_customers(self, customers: Sequence[Customer]) -> Batch: ...

    def update_customers(self, customers: Sequence[Customer]) -> Batch: ...

    def create_invoices(self, invoices: Sequence[Invoice]) -> Batch: ...

    def update_invoices(self, invoices: Sequence[Invoice]) -> Batch: ...

    def email_invoice(self, invoice_id: str) -> Outcome: ...

    def invoice_status(self, invoice_ids: Sequence[str]) -> dict[str, str]:
        """The current canonical status (draft/open/paid/void/deleted) of each invoice, read fresh."""
        ...

    def find_customers_by_reference(self, refs: Sequence[str]) -> dict[str, str]:
        """CRM ids stored on books customers (the customer's reference) -> books customer id."""
        ...

    def find_invoices_by_reference(self, refs: Sequence[str]) -> dict[str, Outcome]:
        """Invoice references -> the invoice found (id, extra['number'])."""
        ...

    def invoice_defaults(self) -> InvoiceDefaults: ...


class CrmWriter(Writer, Protocol):
    """The CRM: accounts, their contacts, deals and tags. Writes run no CRM workflow unless configured."""

    def upsert_accounts(self, accounts: Sequence[Customer]) -> Batch:
        """Insert or update by the books id the account carries (its unique external reference)."""
        ...

    def update_accounts(self, accounts: Sequence[Customer]) -> Batch: ...

    def upsert_contacts(self, persons: Sequence[Person]) -> Batch:
        """Insert or update by email (the CRM's duplicate check for contacts)."""
        ...

    def update_deals(self, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        """(deal id, {canonical Deal field: value}) each."""
        ...

    def update_invoices(self, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        """(CRM invoice id, {canonical field: value}) each: the payment fields write-back keeps."""
        ...

    def add_tags(self, account_ids: Sequence[str], tags: Sequence[str]) -> Batch: ...

    def set_fields(self, entity: str, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        """(account or deal id, {payment_risk, expected_pay_date}) each: what insights keep in the CRM."""
        ...

    def create_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> Batch:
        """Tasks ({subject, due_date, description, what_id, se_module}) for people to act on."""
        ...

    def find_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """The id of the task holding each one's subject, due date and related record, or None."""
        ...

    def find_accounts_by_reference(self, books_ids: Sequence[str]) -> dict[str, str]:
        """Books ids stored on CRM accounts -> CRM account id."""
        ...

    def find_contacts_by_email(self, emails: Sequence[str]) -> dict[str, str]:
        """Emails -> the id of the CRM contact holding each (what a contact is upserted on)."""
        ...

    def read_deal_products(self, store: Store, deal_ids: Sequence[str], run_id: str | None) -> int:
        """Mirror the products of these deals (the lines of the invoices write-back will draft), skipping
        deals whose stored version already carries them; returns the API calls spent."""
        ...

    def capabilities(self, store: Store | None = None) -> Capabilities:
        """The fields and endpoints this org lacks (read from its discovered schema)."""
        ...

    composite_size: int  # most writes one composite call carries (1: no composite calls)
    tag_batch_size: int  # most records one tag write carries

    def composite(self, writes: Sequence[tuple[str, tuple]]) -> list[Any]:
        """Several writes in one call, run in order: each (name of one of the methods above, its arguments).
        One Batch per write, or the exception that refused that write whole."""
        ...
