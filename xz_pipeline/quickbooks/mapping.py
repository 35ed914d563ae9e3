"""QuickBooks Online <-> the canonical model (the **books** role): views over `quickbooks.*`, payloads to
records and back.

Only this folder names QBO's fields; everything after the mirror reads `canonical.books_*`, whose columns
are the ones the Xero mapping produces (`core.canonical.project` refuses a missing or extra column).

What maps to what, where QBO differs from Xero:
- **Status.** QBO invoices have no DRAFT/AUTHORISED/PAID field. Each document gets a derived state,
  `status_raw`: `Voided` (TxnStatus says so, or QBO's void marker: TotalAmt 0 and a PrivateNote starting
  "Voided"), else `Paid` (Balance 0), else `Partial` (0 < Balance < TotalAmt), else `Open`; `status`
  is then void / paid / open / open. Deleted documents leave the mirror (CDC reports them
  `status: "Deleted"`).
- **Drafts are Estimates.** A QBO invoice is posted the moment it exists (in A/R and the customer's
  Balance); the unposted sales document is the Estimate. Estimates are books sales invoices with ids
  prefixed `estimate-` (their own entity, so an id apart from the invoices'): Pending and Accepted ones
  `draft` (amount_due their total, as a Xero draft's), Closed (converted to an invoice, which carries on)
  and Rejected ones `void`. The writer creates an Estimate for an invoice asked for as a draft.
- **Customers.** DisplayName is the name; the primary email, phone and mobile are the customer's own; the
  billing address is BillAddr when any of it is set, else ShipAddr. AcctNum is the account number. QBO's
  API gives a customer no external-id field, so our write-back keeps the CRM id (the `crm_link`) as a
  line `xz-crm-id: <id>` in the customer's Notes. Inactive customers are `archived`. Every QBO customer is a customer
  (suppliers are QBO Vendors, which this connector does not mirror). `outstanding` is Balance, `overdue`
  the open balance of its invoices past due.
- **Amounts.** TotalAmt includes tax; subtotal = TotalAmt − TxnTaxDetail.TotalTax. amount_due = Balance;
  amount_credited = credit memos applied to the invoice through payments; amount_paid = the rest of
  TotalAmt − Balance. paid_date = the latest payment of a paid invoice. GlobalTaxCalculation gives the tax
  mode (absent, as in US companies: exclusive when there is tax, else no tax).
- **Bills** are books invoices of type `bill`, their ids prefixed `bill-` and their vendors `vendor-`:
  QBO numbers each entity on its own, so a bill and an invoice (a vendor and a customer) may share an id.
- **Payments.** A QBO payment may settle several invoices (Line[].LinkedTxn): one canonical payment per
  invoice settled (`<id>/<line>` when there are several). Credit memo lines of a payment are credit
  allocations to the invoice it settles (when it settles one), and the cash is TotalAmt.
- **Items.** The code is the Sku, else the Name (QBO's ItemRef names lines by Name).
- **Currency.** A single-currency company's records carry no CurrencyRef: the home currency (Preferences)
  stands in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from xz_pipeline.core.canonical import (
    Address,
    AddressKind,
    Allocation,
    CreditNote,
    Customer,
    CustomerStatus,
    DocumentStatus,
    DocumentType,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentState,
    Person,
    Phone,
    PhoneKind,
    Product,
    Role,
    TaxMode,
    project,
    sql_case,
)
from xz_pipeline.quickbooks.dates import parse_qbo_date, parse_qbo_datetime, to_decimal

CENT = Decimal("0.01")

# ---------------------------------------------------------------------------------------------
# Vocabularies (QBO value -> canonical value)

STATE: dict[str, str] = {
    "Voided": DocumentStatus.VOID,
    "Paid": DocumentStatus.PAID,
    "Partial": DocumentStatus.OPEN,
    "Open": DocumentStatus.OPEN,
}
TAX_MODE: dict[str, str] = {
    "TaxExcluded": TaxMode.EXCLUSIVE,
    "TaxInclusive": TaxMode.INCLUSIVE,
    "NotApplicable": TaxMode.NO_TAX,
}
LINE_KINDS = ("SalesItemLineDetail", "DescriptionOnly", "GroupLineDetail", "DiscountLineDetail",
              "ItemBasedExpenseLineDetail", "AccountBasedExpenseLineDetail")  # fmt: skip
"""Lines that are the document's own (SubTotalLineDetail only repeats the sum of the others)."""
BILL_PREFIX, VENDOR_PREFIX, ESTIMATE_PREFIX = "bill-", "vendor-", "estimate-"
ESTIMATE_STATE: dict[str, str] = {
    "Pending": DocumentStatus.DRAFT,
    "Accepted": DocumentStatus.DRAFT,
    "Closed": DocumentStatus.VOID,
    "Rejected": DocumentStatus.VOID,
}
"""An Estimate's TxnStatus -> canonical status: open to be posted, or done with (converted or refused)."""
CRM_MARKER = "xz-crm-id:"
"""Written as a line of a customer's Notes: the CRM id our write-back links it to."""
_CRM_LINK_SQL = r"nullif(regexp_extract(c.notes, 'xz-crm-id:[ \t]*([^\s]+)', 1), '')"


def crm_link_of(notes: str | None) -> str | None:
    """The CRM id in a customer's Notes, if our marker line is there."""
    for line in (notes or "").splitlines():
        if line.strip().startswith(CRM_MARKER):
            words = line.strip()[len(CRM_MARKER) :].split()
            return words[0] if words else None
    return None


def notes_with_link(notes: str | None, crm_id: str) -> str:
    """Notes carrying `crm_id` in our marker line (replacing an older one), the person's text kept."""
    kept = [line for line in (notes or "").splitlines() if not line.strip().startswith(CRM_MARKER)]
    return "\n".join([*kept, f"{CRM_MARKER} {crm_id}"])


def _state_sql(alias: str) -> str:
    """The derived `status_raw` of a document row (see the module docstring)."""
    a = alias
    return (
        f"(case when {a}.txn_status = 'Voided' or (coalesce({a}.total_amt, 0) = 0 "
        f"and {a}.private_note ilike 'voided%') then 'Voided' "
        f"when coalesce({a}.balance, 0) = 0 then 'Paid' "
        f"when {a}.balance < {a}.total_amt then 'Partial' else 'Open' end)"
    )


def document_state(payload: dict, balance_field: str = "Balance") -> str:
    """The same derivation in Python: Voided, Paid, Partial or Open."""
    total = to_decimal(payload.get("TotalAmt")) or Decimal(0)
    balance = to_decimal(payload.get(balance_field)) or Decimal(0)
    note = str(payload.get("PrivateNote") or "")
    if payload.get("TxnStatus") == "Voided" or (total == 0 and note.lower().startswith("voided")):
        return "Voided"
    if balance == 0:
        return "Paid"
    return "Partial" if balance < total else "Open"


def _tax_mode_sql(alias: str) -> str:
    fallback = f"(case when coalesce({alias}.total_tax, 0) <> 0 then 'exclusive' else 'no_tax' end)"
    return f"coalesce({sql_case(f'{alias}.global_tax_calculation', TAX_MODE)}, {fallback})"


# ---------------------------------------------------------------------------------------------
# The canonical views over the mirror's `quickbooks.*` tables

_HOME = "(select any_value(home_currency) from quickbooks.preferences f where f.connection = {a}.connection)"


def _address(prefix: str) -> dict[str, str]:
    return {
        "street": f"nullif(concat_ws(', ', c.{prefix}_line1, c.{prefix}_line2), '')",
        "city": f"c.{prefix}_city",
        "region": f"c.{prefix}_region",
        "postal_code": f"c.{prefix}_postal_code",
        "country": f"c.{prefix}_country",
    }


def _billing_address() -> dict[str, str]:
    """BillAddr when any of its fields is set, else ShipAddr — one whole address, never a mix of two."""
    bill, ship = _address("bill"), _address("ship")
    has_bill = "coalesce(" + ", ".join(bill.values()) + ") is not null"
    return {k: f"(case when {has_bill} then {bill[k]} else {ship[k]} end)" for k in bill}


def _customers(currency: str, overdue: str) -> dict[str, str]:
    return {
        "connection": "c.connection",
        "customer_id": "c.customer_id",
        "name": "c.display_name",
        "first_name": "c.given_name",
        "last_name": "c.family_name",
        "email": "c.email",
        "phone": "c.phone",
        "mobile": "c.mobile",
        "tax_number": "c.tax_identifier",
        "currency": currency,
        "account_number": "c.acct_num",
        **_billing_address(),
        "is_customer": "true",
        "is_supplier": "false",
        "status": f"(case when c.active is false then '{CustomerStatus.ARCHIVED}' else '{CustomerStatus.ACTIVE}' end)",
        "outstanding": "c.balance",
        "overdue": overdue,
        "crm_link": _CRM_LINK_SQL,
        "source_modified": "c.updated_utc",
        "fetched_at": "c.fetched_at",
    }


_OVERDUE = (
    "coalesce(c.overdue_balance, (select coalesce(sum(o.balance), 0) from quickbooks.invoices o "
    "where o.connection = c.connection and o.customer_id = c.customer_id and o.due_date < current_date "
    "and o.balance > 0))"
)

# Per payment: what it settles. One invoice line with credit memo lines = credit applied to that invoice.
_SETTLES = """(select pl.connection, pl.payment_id,
        count(*) filter (where pl.txn_type = 'Invoice') as invoices,
        coalesce(sum(pl.amount) filter (where pl.txn_type = 'CreditMemo'), 0) as credit,
        any_value(pl.txn_id) filter (where pl.txn_type = 'Invoice') as one_invoice
    from quickbooks.payment_lines pl group by pl.connection, pl.payment_id)"""

_CREDITED = f"""(select s.connection, s.one_invoice as invoice_id, sum(least(s.credit, l.amount)) as credited,
        max(p.txn_date) as last_date
    from {_SETTLES} s join quickbooks.payment_lines l on l.connection = s.connection
        and l.payment_id = s.payment_id and l.txn_type = 'Invoice'
    join quickbooks.payments p on p.connection = s.connection and p.payment_id = s.payment_id
    where s.invoices = 1 and s.credit > 0 group by s.connection, s.one_invoice)"""

_LAST_PAID = """(select l.connection, l.txn_id as invoice_id, max(p.txn_date) as paid_on
    from quickbooks.payment_lines l join quickbooks.payments p
        on p.connection = l.connection and p.payment_id = l.payment_id
    where l.txn_type = 'Invoice' group by l.connection, l.txn_id)"""


def _invoices(a: str, *, bill: bool, credited: str, paid_on: str) -> dict[str, str]:
    state = _state_sql(a)
    doc_id = f"'{BILL_PREFIX}' || {a}.bill_id" if bill else f"{a}.invoice_id"
    party = f"'{VENDOR_PREFIX}' || {a}.vendor_id" if bill else f"{a}.customer_id"
    paid = f"({a}.total_amt - coalesce({a}.balance, 0) - {credited})"
    return {
        "connection": f"{a}.connection",
        "invoice_id": doc_id,
        "number": f"{a}.doc_number",
        "type": f"'{DocumentType.BILL if bill else DocumentType.SALE}'",
        "status": sql_case(state, STATE),
        "status_raw": state,
        "customer_id": party,
        "customer_name": f"{a}.vendor_name" if bill else f"{a}.customer_name",
        "reference": f"{a}.private_note",
        "issue_date": f"{a}.txn_date",
        "due_date": f"{a}.due_date",
        "paid_date": f"(case when {state} = 'Paid' then {paid_on} end)",
        "currency": f"coalesce({a}.currency, {_HOME.format(a=a)})",
        "currency_rate": f"{a}.exchange_rate",
        "amounts_tax": _tax_mode_sql(a),
        "subtotal": f"({a}.total_amt - coalesce({a}.total_tax, 0))",
        "tax": f"coalesce({a}.total_tax, 0)",
        "total": f"{a}.total_amt",
        "amount_paid": f"(case when {state} = 'Voided' then 0 else {paid} end)",
        "amount_due": f"coalesce({a}.balance, 0)",
        "amount_credited": f"(case when {state} = 'Voided' then 0 else {credited} end)",
        "sent": "null" if bill else f"({a}.email_status = 'EmailSent')",
        "source_modified": f"{a}.updated_utc",
        "fetched_at": f"{a}.fetched_at",
    }


def _estimates() -> dict[str, str]:
    """An Estimate as a books sales invoice: a draft while Pending or Accepted, void once Closed or Rejected."""
    state = "coalesce(e.txn_status, 'Pending')"
    live = f"({sql_case(state, ESTIMATE_STATE)} = '{DocumentStatus.DRAFT}')"
    return {
        "connection": "e.connection",
        "invoice_id": f"'{ESTIMATE_PREFIX}' || e.estimate_id",
        "number": "e.doc_number",
        "type": f"'{DocumentType.SALE}'",
        "status": sql_case(state, ESTIMATE_STATE),
        "status_raw": state,
        "customer_id": "e.customer_id",
        "customer_name": "e.customer_name",
        "reference": "e.private_note",
        "issue_date": "e.txn_date",
        "due_date": "coalesce(e.expiration_date, e.due_date)",
        "paid_date": "null",
        "currency": f"coalesce(e.currency, {_HOME.format(a='e')})",
        "currency_rate": "e.exchange_rate",
        "amounts_tax": _tax_mode_sql("e"),
        "subtotal": "(e.total_amt - coalesce(e.total_tax, 0))",
        "tax": "coalesce(e.total_tax, 0)",
        "total": "e.total_amt",
        "amount_paid": "0",
        "amount_due": f"(case when {live} then e.total_amt else 0 end)",
        "amount_credited": "0",
        "sent": "(e.email_status = 'EmailSent')",
        "source_modified": "e.updated_utc",
        "fetched_at": "e.fetched_at",
    }


def _lines(parent: str, prefix: str | None) -> dict[str, str]:
    doc_id = f"'{prefix}' || l.{parent}" if prefix else f"l.{parent}"
    sign = "(case when l.detail_type = 'DiscountLineDetail' then -1 else 1 end)"
    amount = "coalesce(case when d.global_tax_calculation = 'TaxInclusive' then l.tax_inclusive_amount end, l.amount)"
    # a tax-inclusive line's tax is what its price includes: the lines less their tax sum to the sub-total
    tax = "(case when d.global_tax_calculation = 'TaxInclusive' then l.tax_inclusive_amount - l.amount end)"
    return {
        "connection": "l.connection",
        "invoice_id": doc_id,
        "line_id": "l.line_id",
        "line_no": "l.line_no",
        "description": "l.description",
        "item_code": "coalesce(it.sku, it.name, l.item_name)",
        "account_code": "coalesce(l.account_id, it.income_account_id)",
        "tax_code": "l.tax_code",
        "quantity": "l.quantity",
        "unit_price": "l.unit_price",
        "discount_rate": "l.discount_rate",
        "line_amount": f"({sign} * {amount})",
        "tax_amount": f"({sign} * {tax})",
        "source_modified": "d.updated_utc",
        "fetched_at": "l.fetched_at",
    }


def _line_select(table: str, parent_table: str, parent: str, prefix: str | None) -> str:
    kinds = ", ".join(f"'{k}'" for k in LINE_KINDS)
    return (
        f"select {project('books_invoice_lines', _lines(parent, prefix))} from quickbooks.{table} l "
        f"join quickbooks.{parent_table} d on d.connection = l.connection and d.{parent} = l.{parent} "
        "left join quickbooks.items it on it.connection = l.connection and it.item_id = l.item_id "
        f"where l.detail_type in ({kinds})"
    )


def _payments() -> dict[str, str]:
    several = "s.invoices > 1"
    return {
        "connection": "p.connection",
        "payment_id": f"(case when {several} then p.payment_id || '/' || l.line_id else p.payment_id end)",
        "type": f"'{DocumentType.SALE}'",
        "status": f"(case when p.txn_status = 'Voided' then '{PaymentState.DELETED}' else '{PaymentState.ACTIVE}' end)",
        "invoice_id": "l.txn_id",
        "credit_note_id": "null",
        "date": "p.txn_date",
        "amount": "(case when s.credit > 0 and s.invoices = 1 then p.total_amt else coalesce(l.amount, p.total_amt) end)",
        "currency": f"coalesce(p.currency, {_HOME.format(a='p')})",
        "currency_rate": "p.exchange_rate",
        "reference": "p.payment_ref_num",
        "account_code": "p.deposit_account_id",
        "is_reconciled": "null",
        "source_modified": "p.updated_utc",
        "fetched_at": "p.fetched_at",
    }


def _credit_notes() -> dict[str, str]:
    state = _state_sql("n").replace("n.balance", "coalesce(n.remaining_credit, n.balance)")
    remaining = "coalesce(n.remaining_credit, n.balance)"
    return {
        "connection": "n.connection",
        "credit_note_id": "n.credit_memo_id",
        "number": "n.doc_number",
        "type": f"'{DocumentType.SALE}'",
        "status": sql_case(state, STATE),
        "status_raw": state,
        "customer_id": "n.customer_id",
        "customer_name": "n.customer_name",
        "reference": "n.private_note",
        "issue_date": "n.txn_date",
        "currency": f"coalesce(n.currency, {_HOME.format(a='n')})",
        "currency_rate": "n.exchange_rate",
        "amounts_tax": _tax_mode_sql("n"),
        "subtotal": "(n.total_amt - coalesce(n.total_tax, 0))",
        "tax": "coalesce(n.total_tax, 0)",
        "total": "n.total_amt",
        "remaining_credit": remaining,
        "amount_applied": f"(n.total_amt - coalesce({remaining}, 0))",
        "source_modified": "n.updated_utc",
        "fetched_at": "n.fetched_at",
    }


def _allocations() -> dict[str, str]:
    return {
        "connection": "l.connection",
        "credit_note_id": "l.txn_id",
        "allocation_id": "l.payment_id || '/' || l.line_id",
        "invoice_id": "s.one_invoice",
        "amount": "l.amount",
        "date": "p.txn_date",
        "currency": f"coalesce(n.currency, p.currency, {_HOME.format(a='p')})",
        "source_modified": "p.updated_utc",
        "fetched_at": "l.fetched_at",
    }


_ITEMS = {
    "connection": "connection",
    "item_id": "item_id",
    "code": "coalesce(sku, name)",
    "name": "name",
    "description": "description",
    "unit_price": "unit_price",
    "is_sold": "(income_account_id is not null)",
    "is_purchased": "(expense_account_id is not null or purchase_cost is not null)",
    "source_modified": "updated_utc",
    "fetched_at": "fetched_at",
}

_CREDITED_EXPR = "coalesce(cr.credited, 0)"
_CUSTOMER_CURRENCY = f"coalesce(c.currency, {_HOME.format(a='c')})"
_SALES = (
    f"select {project('books_invoices', _invoices('i', bill=False, credited=_CREDITED_EXPR, paid_on='lp.paid_on'))} "
    f"from quickbooks.invoices i left join {_CREDITED} cr on cr.connection = i.connection "
    f"and cr.invoice_id = i.invoice_id left join {_LAST_PAID} lp on lp.connection = i.connection "
    "and lp.invoice_id = i.invoice_id"
)
_SALES_ONLY = f"select {project('books_invoices', _invoices('i', bill=False, credited='0', paid_on='null'))} from quickbooks.invoices i"
_BILLS = f"select {project('books_invoices', _invoices('b', bill=True, credited='0', paid_on='null'))} from quickbooks.bills b"
_ESTIMATES = f"select {project('books_invoices', _estimates())} from quickbooks.estimates e"
_ESTIMATE_LINES = _line_select("estimate_lines", "estimates", "estimate_id", ESTIMATE_PREFIX)
_PAYMENT_FROM = (
    "from quickbooks.payments p "
    "left join quickbooks.payment_lines l on l.connection = p.connection and l.payment_id = p.payment_id "
    "and l.txn_type = 'Invoice' "
    f"left join {_SETTLES} s on s.connection = p.connection and s.payment_id = p.payment_id "
    # a payment that only applies credit carries no cash: its credit is an allocation instead
    "where not (s.credit > 0 and s.invoices = 1 and coalesce(p.total_amt, 0) = 0)"
)

BOOKS_VIEWS: dict[str, str | list[str]] = {
    "books_customers": [
        f"select {project('books_customers', _customers(_CUSTOMER_CURRENCY, _OVERDUE))} from quickbooks.customers c",
        f"select {project('books_customers', _customers('c.currency', 'c.overdue_balance'))} from quickbooks.customers c",
    ],
    "books_invoices": [
        f"{_SALES} union all {_ESTIMATES} union all {_BILLS}",
        f"{_SALES} union all {_ESTIMATES}",
        f"{_SALES} union all {_BILLS}",
        _SALES,
        f"{_SALES_ONLY} union all {_BILLS}",
        _SALES_ONLY,
        _BILLS,
    ],
    "books_invoice_lines": [
        f"{_line_select('invoice_lines', 'invoices', 'invoice_id', None)} union all {_ESTIMATE_LINES} union all "
        f"{_line_select('bill_lines', 'bills', 'bill_id', BILL_PREFIX)}",
        f"{_line_select('invoice_lines', 'invoices', 'invoice_id', None)} union all {_ESTIMATE_LINES}",
        f"{_line_select('invoice_lines', 'invoices', 'invoice_id', None)} union all "
        f"{_line_select('bill_lines', 'bills', 'bill_id', BILL_PREFIX)}",
        _line_select("invoice_lines", "invoices", "invoice_id", None),
    ],
    "books_payments": [f"select {project('books_payments', _payments())} {_PAYMENT_FROM}"],
    "books_credit_notes": [
        f"select {project('books_credit_notes', _credit_notes())} from quickbooks.credit_memos n"
    ],
    "books_credit_allocations": [
        f"select {project('books_credit_allocations', _allocations())} from quickbooks.payment_lines l "
        f"join {_SETTLES} s on s.connection = l.connection and s.payment_id = l.payment_id "
        "join quickbooks.payments p on p.connection = l.connection and p.payment_id = l.payment_id "
        "left join quickbooks.credit_memos n on n.connection = l.connection and n.credit_memo_id = l.txn_id "
        "where l.txn_type = 'CreditMemo' and s.invoices = 1"
    ],
    "books_items": f"select {project('books_items', _ITEMS)} from quickbooks.items",
}
"""The SQL of each `canonical.books_*` view from QBO's tables; `views.py` unions it with the other books
vendors' (each vendor's tables hold only its own connections' rows)."""


# ---------------------------------------------------------------------------------------------
# Payloads -> canonical records


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _ref(payload: dict, field: str, part: str = "value") -> str | None:
    ref = payload.get(field)
    return _text(ref.get(part)) if isinstance(ref, dict) else None


def _modified(payload: dict):
    return parse_qbo_datetime((payload.get("MetaData") or {}).get("LastUpdatedTime"))


def _address(payload: dict, field: str, kind: AddressKind) -> Address | None:
    a = payload.get(field)
    if not isinstance(a, dict):
        return None
    address = Address(
        kind,
        tuple(a[f"Line{n}"] for n in range(1, 6) if _text(a.get(f"Line{n}"))),
        _text(a.get("City")),
        _text(a.get("CountrySubDivisionCode")),
        _text(a.get("PostalCode")),
        _text(a.get("Country")),
    )
    return None if address.is_empty else address


def customer_from_qbo(payload: dict, *, home_currency: str | None = None, fetched_at=None) -> Customer:
    """A QBO Customer as a books customer: its own names and email make the primary person."""
    email = _ref(payload, "PrimaryEmailAddr", "Address")
    persons = ()
    if _text(payload.get("GivenName")) or _text(payload.get("FamilyName")) or email:
        persons = (
            Person(
                first_name=_text(payload.get("GivenName")),
                last_name=_text(payload.get("FamilyName")),
                email=email,
                customer_id=str(payload["Id"]),
                is_primary=True,
            ),
        )
    phones = tuple(
        Phone(kind, number)
        for kind, number in (
            (PhoneKind.MAIN, _ref(payload, "PrimaryPhone", "FreeFormNumber")),
            (PhoneKind.MOBILE, _ref(payload, "Mobile", "FreeFormNumber")),
            (PhoneKind.FAX, _ref(payload, "Fax", "FreeFormNumber")),
        )
        if number
    )
    addresses = tuple(
        a
        for a in (
            _address(payload, "BillAddr", AddressKind.BILLING),
            _address(payload, "ShipAddr", AddressKind.SHIPPING),
        )
        if a is not None
    )
    return Customer(
        role=Role.BOOKS,
        books_id=str(payload["Id"]),
        crm_id=crm_link_of(_text(payload.get("Notes"))),
        name=_text(payload.get("DisplayName")),
        persons=persons,
        emails=(email,) if email else (),
        phones=phones,
        addresses=addresses,
        tax_number=_text(payload.get("PrimaryTaxIdentifier")),
        account_number=_text(payload.get("AcctNum")),
        currency=_ref(payload, "CurrencyRef") or home_currency,
        website=_ref(payload, "WebAddr", "URI"),
        status=CustomerStatus.ARCHIVED if payload.get("Active") is False else CustomerStatus.ACTIVE,
        is_customer=True,
        is_supplier=False,
        outstanding=to_decimal(payload.get("Balance")),
        overdue=to_decimal(payload.get("OverDueBalance")),
        source_modified=_modified(payload),
        fetched_at=fetched_at,
    )


def _detail(line: dict) -> dict:
    detail = line.get(line.get("DetailType") or "")
    return detail if isinstance(detail, dict) else {}


def _line(n: int, line: dict, inclusive: bool) -> InvoiceLine:
    d = _detail(line)
    amount, tax = to_decimal(line.get("Amount")), None
    if inclusive and d.get("TaxInclusiveAmt") is not None and amount is not None:
        amount, tax = to_decimal(d.get("TaxInclusiveAmt")), to_decimal(d.get("TaxInclusiveAmt")) - amount
    if line.get("DetailType") == "DiscountLineDetail" and amount is not None:
        amount, tax = -amount, -tax if tax is not None else None
    item = d.get("ItemRef") if isinstance(d.get("ItemRef"), dict) else {}
    return InvoiceLine(
        id=_text(line.get("Id")),
        line_no=n,
        description=_text(line.get("Description")),
        quantity=to_decimal(d.get("Qty")),
        unit_price=to_decimal(d.get("UnitPrice")),
        discount_rate=to_decimal(d.get("DiscountRate")),
        discount_amount=to_decimal(d.get("DiscountAmt")),
        line_amount=amount,
        tax_amount=tax,
        tax_code=_ref(d, "TaxCodeRef"),
        item_code=_text(item.get("name")),
        product_id=_text(item.get("value")),
        account_code=_ref(d, "ItemAccountRef") or _ref(d, "AccountRef"),
    )


def _lines_of(payload: dict, inclusive: bool) -> tuple[InvoiceLine, ...]:
    own = [line for line in payload.get("Line") or [] if line.get("DetailType") in LINE_KINDS]
    return tuple(_line(n, line, inclusive) for n, line in enumerate(own, start=1))


def _tax_mode(payload: dict, tax: Decimal | None) -> TaxMode:
    mode = TAX_MODE.get(payload.get("GlobalTaxCalculation") or "")
    if mode is not None:
        return TaxMode(mode)
    return TaxMode.EXCLUSIVE if tax else TaxMode.NO_TAX


def invoice_from_qbo(
    payload: dict, *, home_currency: str | None = None, credited: Decimal = Decimal(0), fetched_at=None
) -> Invoice:
    """A QBO Invoice as a books sale (`credited`: credit memos applied to it, known from its payments)."""
    state = document_state(payload)
    total = to_decimal(payload.get("TotalAmt")) or Decimal(0)
    tax = to_decimal((payload.get("TxnTaxDetail") or {}).get("TotalTax")) or Decimal(0)
    balance = to_decimal(payload.get("Balance")) or Decimal(0)
    voided = state == "Voided"
    mode = _tax_mode(payload, tax)
    return Invoice(
        role=Role.BOOKS,
        books_id=str(payload["Id"]),
        number=_text(payload.get("DocNumber")),
        type=DocumentType.SALE,
        status=STATE[state],
        status_raw=state,
        customer_id=_ref(payload, "CustomerRef"),
        customer_name=_ref(payload, "CustomerRef", "name"),
        reference=_text(payload.get("PrivateNote")),
        issue_date=parse_qbo_date(payload.get("TxnDate")),
        due_date=parse_qbo_date(payload.get("DueDate")),
        currency=_ref(payload, "CurrencyRef") or home_currency,
        currency_rate=to_decimal(payload.get("ExchangeRate")),
        amounts_tax=mode,
        subtotal=total - tax,
        tax=tax,
        total=total,
        amount_paid=Decimal(0) if voided else total - balance - credited,
        amount_due=balance,
        amount_credited=Decimal(0) if voided else credited,
        sent=payload.get("EmailStatus") == "EmailSent",
        lines=_lines_of(payload, mode is TaxMode.INCLUSIVE),
        source_modified=_modified(payload),
        fetched_at=fetched_at,
    )


def payment_from_qbo(payload: dict, *, home_currency: str | None = None, fetched_at=None) -> Payment:
    """A QBO Payment: each invoice it settles is an allocation (credit memo lines name the credit note)."""
    day = parse_qbo_date(payload.get("TxnDate"))
    currency = _ref(payload, "CurrencyRef") or home_currency
    allocations = []
    for line in payload.get("Line") or []:
        for txn in line.get("LinkedTxn") or []:
            if txn.get("TxnType") not in ("Invoice", "CreditMemo"):
                continue
            is_invoice = txn.get("TxnType") == "Invoice"
            allocations.append(
                Allocation(
                    invoice_id=_text(txn.get("TxnId")) if is_invoice else None,
                    credit_note_id=None if is_invoice else _text(txn.get("TxnId")),
                    amount=to_decimal(line.get("Amount")) or Decimal(0),
                    date=day,
                    currency=currency,
                )
            )
    return Payment(
        role=Role.BOOKS,
        id=str(payload["Id"]),
        type=DocumentType.SALE,
        status=PaymentState.DELETED if payload.get("TxnStatus") == "Voided" else PaymentState.ACTIVE,
        date=day,
        amount=to_decimal(payload.get("TotalAmt")),
        currency=currency,
        currency_rate=to_decimal(payload.get("ExchangeRate")),
        reference=_text(payload.get("PaymentRefNum")),
        account_code=_ref(payload, "DepositToAccountRef"),
        allocations=tuple(allocations),
        source_modified=_modified(payload),
        fetched_at=fetched_at,
    )


def credit_note_from_qbo(payload: dict, *, home_currency: str | None = None, fetched_at=None) -> CreditNote:
    remaining_field = "RemainingCredit" if payload.get("RemainingCredit") is not None else "Balance"
    state = document_state(payload, remaining_field)
    total = to_decimal(payload.get("TotalAmt")) or Decimal(0)
    tax = to_decimal((payload.get("TxnTaxDetail") or {}).get("TotalTax")) or Decimal(0)
    mode = _tax_mode(payload, tax)
    return CreditNote(
        role=Role.BOOKS,
        id=str(payload["Id"]),
        number=_text(payload.get("DocNumber")),
        type=DocumentType.SALE,
        status=STATE[state],
        status_raw=state,
        customer_id=_ref(payload, "CustomerRef"),
        customer_name=_ref(payload, "CustomerRef", "name"),
        reference=_text(payload.get("PrivateNote")),
        issue_date=parse_qbo_date(payload.get("TxnDate")),
        currency=_ref(payload, "CurrencyRef") or home_currency,
        currency_rate=to_decimal(payload.get("ExchangeRate")),
        amounts_tax=mode,
        subtotal=total - tax,
        tax=tax,
        total=total,
        remaining_credit=to_decimal(payload.get(remaining_field)),
        lines=_lines_of(payload, mode is TaxMode.INCLUSIVE),
        source_modified=_modified(payload),
        fetched_at=fetched_at,
    )


def product_from_qbo(payload: dict, *, fetched_at=None) -> Product:
    return Product(
        role=Role.BOOKS,
        id=str(payload["Id"]),
        code=_text(payload.get("Sku")) or _text(payload.get("Name")),
        name=_text(payload.get("Name")),
        description=_text(payload.get("Description")),
        unit_price=to_decimal(payload.get("UnitPrice")),
        is_sold=_ref(payload, "IncomeAccountRef") is not None,
        is_purchased=_ref(payload, "ExpenseAccountRef") is not None
        or payload.get("PurchaseCost") is not None,
        source_modified=_modified(payload),
        fetched_at=fetched_at,
    )


# ---------------------------------------------------------------------------------------------
# Canonical records -> QBO request payloads


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != [] and v != () and v != {}}


def _address_to_qbo(a: Address | None) -> dict[str, Any] | None:
    if a is None:
        return None
    lines = {f"Line{n}": line for n, line in enumerate(a.lines[:5], start=1)}
    return _compact({**lines, "City": a.city, "CountrySubDivisionCode": a.region, "PostalCode": a.postal_code,
                     "Country": a.country}) or None  # fmt: skip


def _phone(customer: Customer, kind: PhoneKind) -> dict | None:
    found = next((p for p in customer.phones if p.kind == kind), None)
    return {"FreeFormNumber": found.display} if found else None


DISPLAY_NAME_MAX = 500
ACCT_NUM_MAX = 20


def customer_to_qbo(
    customer: Customer, *, with_currency: bool = True, notes: str | None = None
) -> dict[str, Any]:
    """A Customer as `POST /customer` (or a batch item) takes it; `books_id` is set by the caller's update.

    `crm_id` becomes our marker line in Notes (`notes`: the customer's current Notes, kept), the account
    number AcctNum. The currency is fixed once a customer has
    transactions, so updates leave it out (`with_currency=False`).
    """
    primary = customer.primary_person
    shipping = next((a for a in customer.addresses if a.kind == AddressKind.SHIPPING), None)
    active = None
    if customer.status == CustomerStatus.ARCHIVED:
        active = False
    elif customer.status == CustomerStatus.ACTIVE:
        active = True
    return _compact(
        {
            "DisplayName": customer.name[:DISPLAY_NAME_MAX] if customer.name else None,
            "CompanyName": customer.name,
            "GivenName": primary.first_name if primary else None,
            "FamilyName": primary.last_name if primary else None,
            "PrimaryEmailAddr": {"Address": customer.email} if customer.email else None,
            "PrimaryPhone": _phone(customer, PhoneKind.MAIN),
            "Mobile": _phone(customer, PhoneKind.MOBILE),
            "BillAddr": _address_to_qbo(customer.billing_address),
            "ShipAddr": _address_to_qbo(shipping),
            "AcctNum": customer.account_number[:ACCT_NUM_MAX] if customer.account_number else None,
            "Notes": notes_with_link(notes, customer.crm_id) if customer.crm_id else None,
            "PrimaryTaxIdentifier": customer.tax_number,
            "WebAddr": {"URI": customer.website} if customer.website else None,
            "CurrencyRef": {"value": customer.currency} if with_currency and customer.currency else None,
            "Active": active,
        }
    )


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _line_to_qbo(
    line: InvoiceLine, item_ids: dict[str, str], default_item: str | None, rate: Decimal | None = None
) -> dict[str, Any]:
    """One sales line. `rate` (percent) is given for a tax-inclusive document: QBO's Amount and UnitPrice
    are then without tax and TaxInclusiveAmt carries the line as priced, so the line's price is what the
    document totals to (sent as priced, QBO would add the tax on top)."""
    quantity, price = line.quantity, line.unit_price
    amount = (
        line.line_amount
    )  # QBO refuses an Amount other than UnitPrice x Qty (6070): derived when it can be
    if quantity is not None and price is not None:
        amount = (quantity * price).quantize(CENT)
    gross = None
    if rate is not None and amount is not None:
        gross = amount
        amount = (gross * 100 / (100 + rate)).quantize(CENT)
        price = (amount / quantity).quantize(Decimal("0.0000001")) if quantity else None
    item = item_ids.get(line.item_code or "") or line.product_id or default_item
    return _compact(
        {
            "Id": line.id,  # kept: a line sent without its id is a new line
            "DetailType": "SalesItemLineDetail",
            "Description": line.description,
            "Amount": amount,
            "SalesItemLineDetail": _compact(
                {
                    "ItemRef": {"value": item} if item else None,
                    "Qty": quantity,
                    "UnitPrice": price,
                    "TaxInclusiveAmt": gross,
                    "TaxCodeRef": {"value": line.tax_code} if line.tax_code else None,
                    "DiscountRate": line.discount_rate,
                }
            ),
        }
    )


_GLOBAL_TAX = {
    TaxMode.EXCLUSIVE: "TaxExcluded",
    TaxMode.INCLUSIVE: "TaxInclusive",
    TaxMode.NO_TAX: "NotApplicable",
}


def invoice_to_qbo(
    invoice: Invoice,
    *,
    customer_id: str | None = None,
    item_ids: dict[str, str] | None = None,
    default_item: str | None = None,
    global_tax: bool = True,
    tax_rate: Callable[[InvoiceLine], Decimal] | None = None,
) -> dict[str, Any]:
    """An Invoice as `POST /invoice` takes it. `customer_id` (the books customer) overrides the invoice's
    own; `item_ids` turns an item code into its ItemRef (QBO lines name items by id), `default_item` is the
    item of a line that names none. US companies take no GlobalTaxCalculation (`global_tax=False`).
    `tax_rate` (a line's sales tax, percent) splits the lines of a tax-inclusive invoice (`_line_to_qbo`)."""
    inclusive = global_tax and invoice.amounts_tax == TaxMode.INCLUSIVE and tax_rate is not None
    return _compact(
        {
            "CustomerRef": {"value": customer_id or invoice.customer_id}
            if (customer_id or invoice.customer_id)
            else None,
            "DocNumber": invoice.number,
            "PrivateNote": invoice.reference,
            "TxnDate": _day(invoice.issue_date),
            "DueDate": _day(invoice.due_date),
            "CurrencyRef": {"value": invoice.currency} if invoice.currency else None,
            "ExchangeRate": invoice.currency_rate,
            "GlobalTaxCalculation": _GLOBAL_TAX.get(invoice.amounts_tax)
            if global_tax and invoice.amounts_tax
            else None,
            "Line": [
                _line_to_qbo(line, item_ids or {}, default_item, tax_rate(line) if inclusive else None)
                for line in invoice.lines
            ],
        }
    )


def estimate_to_qbo(invoice: Invoice, **options: Any) -> dict[str, Any]:
    """A draft invoice as `POST /estimate` takes it: the invoice's fields, its due date as the estimate's
    ExpirationDate (an estimate owes nothing, so it has no due date of its own), Pending."""
    payload = invoice_to_qbo(invoice, **options)
    due = payload.pop("DueDate", None)
    if due:
        payload["ExpirationDate"] = due
    payload["TxnStatus"] = "Pending"
    return payload


__all__ = [
    "estimate_to_qbo",
    "BOOKS_VIEWS",
    "credit_note_from_qbo",
    "customer_from_qbo",
    "customer_to_qbo",
    "document_state",
    "invoice_from_qbo",
    "invoice_to_qbo",
    "payment_from_qbo",
    "product_from_qbo",
]
