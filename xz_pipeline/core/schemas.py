"""What valid mirror data looks like: one pandera model per typed table (docs/architecture.md, the mirror).

These models are the single source of truth for data quality. `core/checks.py` runs them over a
connection's rows read from DuckDB, inside Dagster asset checks; reconciliation may run the same
models (and `lines_balance`) over canonical rows. The rules are ones whose failure really means bad
data, not style: ids present and unique per connection, ISO 4217 currencies, DECIMAL amounts that
cannot be negative, statuses within the vendor's enums. Softer signs of trouble (an implausible
email, a due date before the issue date) live in separate models run at WARN severity, so a typo in
an address never blocks write-back.

Frames are read with decimals as `decimal.Decimal` (exact, as the DECIMAL column holds them), dates
and times as nanosecond pandas timestamps (times in UTC) and integers as nullable `Int64`.
Models are not strict: a model names the columns its rules need plus the ones analysts rely on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.dtypes import immutable
from pandera.engines import pandas_engine
from pandera.typing import Series

# ---------------------------------------------------------------------------------------------
# Vocabularies (each in one place)

# ISO 4217 codes in circulation (2025), plus the withdrawn codes Xero's CurrencyCode enum still
# lists (its historical documents may carry them: EEK, HRK, LTL, ...). Funds, metals and test codes
# (XAU, XTS, XXX, ...) are left out: no invoice is issued in them.
CURRENCY_CODES = frozenset((
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CLP", "CNY", "COP", "CRC", "CUC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN",
    "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL",
    "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR",
    "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL",
    "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON",
    "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP",
    "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH",
    "UGX", "USD", "UYU", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF",
    "YER", "ZAR", "ZMW", "ZWG", "BYR", "CLF", "EEK", "HRK", "LTL", "LVL", "MRO", "MXV", "SKK", "SLL",
    "STD", "VEF", "ZMK", "ZWD", "ZWL",
))  # fmt: skip

# Xero (xero_accounting.yaml enums).
XERO_CONTACT_STATUSES = ("ACTIVE", "ARCHIVED", "GDPRREQUEST")
XERO_INVOICE_TYPES = ("ACCREC", "ACCPAY", "ACCPAYCREDIT", "APOVERPAYMENT", "APPREPAYMENT",
                      "ACCRECCREDIT", "AROVERPAYMENT", "ARPREPAYMENT")  # fmt: skip
XERO_CREDIT_NOTE_TYPES = ("ACCRECCREDIT", "ACCPAYCREDIT")
XERO_DOCUMENT_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED")
XERO_LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
XERO_PAYMENT_STATUSES = ("AUTHORISED", "DELETED")
XERO_PAYMENT_TYPES = ("ACCRECPAYMENT", "ACCPAYPAYMENT", "ARCREDITPAYMENT", "APCREDITPAYMENT",
                      "AROVERPAYMENTPAYMENT", "ARPREPAYMENTPAYMENT", "APPREPAYMENTPAYMENT",
                      "APOVERPAYMENTPAYMENT")  # fmt: skip
XERO_ACCOUNT_STATUSES = ("ACTIVE", "ARCHIVED", "DELETED")
XERO_ACCOUNT_TYPES = ("BANK", "CURRENT", "CURRLIAB", "DEPRECIATN", "DIRECTCOSTS", "EQUITY", "EXPENSE",
                      "FIXED", "INVENTORY", "LIABILITY", "NONCURRENT", "OTHERINCOME", "OVERHEADS",
                      "PREPAYMENT", "REVENUE", "SALES", "TERMLIAB", "PAYG")  # fmt: skip
XERO_ACCOUNT_CLASSES = ("ASSET", "EQUITY", "EXPENSE", "LIABILITY", "REVENUE")

# Zoho CRM: the standard pipeline's Stage values (zoho-api.md §12), and the picklist of the
# Payment_Status field `xz setup zoho` creates on Deals (zoho/setup.py).
ZOHO_DEAL_STAGES = ("Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
                    "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost",
                    "Closed Lost to Competition")  # fmt: skip
ZOHO_PAYMENT_STATUSES = ("Unpaid", "Partially Paid", "Paid", "Overdue")

# Plausible, not RFC 5322: one @, no spaces, a dot in the domain and a 2+ letter top level.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$"

# ---------------------------------------------------------------------------------------------
# Column types


def _fits(values: np.ndarray, precision: int, scale: int) -> np.ndarray:
    """Which values fit DECIMAL(precision, scale): Decimals with <= scale decimals and <= precision - scale
    integer digits (nulls pass)."""
    out = np.empty(len(values), dtype=bool)
    whole = precision - scale
    for i, v in enumerate(values):  # one as_tuple() a value: millions of cells on a full check
        if type(v) is Decimal:
            _, digits, exp = v.as_tuple()
            out[i] = isinstance(exp, int) and -exp <= scale and len(digits) + exp <= whole
        else:
            out[i] = v is None or v is pd.NA or (isinstance(v, float) and v != v)
    return out


@pandas_engine.Engine.register_dtype
@immutable(init=True)
class DuckDecimal(pandas_engine.Decimal):
    """DECIMAL(p, s) as exact `Decimal` objects: pandera's own Decimal check, about 2x faster.

    (pandera compares string lengths through pandas' string accessor; the digits and exponent of
    each value say the same directly.)
    """

    def check(self, pandera_dtype, data_container=None):
        if data_container is None:
            return super().check(pandera_dtype, None)
        if not pandas_engine.DataType.check(self, pandera_dtype, None):
            return np.full(len(data_container), False)
        return pd.Series(
            _fits(data_container.to_numpy(), self.precision, self.scale), index=data_container.index
        )

    def __str__(self) -> str:
        return f"DECIMAL({self.precision}, {self.scale})"


Money = Annotated[DuckDecimal, 18, 2, None]  # DuckDB decimal(18, 2)
Price = Annotated[DuckDecimal, 18, 4, None]  # quantities and unit prices: decimal(18, 4)
Rate = Annotated[DuckDecimal, 18, 6, None]  # currency rates: decimal(18, 6)
Sum = Annotated[DuckDecimal, 38, 2, None]  # SUM() over a decimal(18, 2) column
Day = pandas_engine.DateTime  # DATE, read as datetime64[us] (see `_day`)
Instant = pandas_engine.DateTime  # TIMESTAMPTZ, read as datetime64[us, UTC] (see `_instant`)


def _day(**kw) -> pa.Field:
    """A DATE column: microseconds, as DuckDB hands it over (years up to 9999 fit; nanoseconds would not)."""
    return pa.Field(nullable=True, dtype_kwargs={"unit": "us"}, **kw)


def _instant(**kw) -> pa.Field:
    return pa.Field(nullable=True, dtype_kwargs={"unit": "us", "tz": "UTC"}, **kw)


def _id() -> pa.Field:
    return pa.Field(nullable=False, str_length={"min_value": 1})


def _required(**kw) -> pa.Field:
    return pa.Field(nullable=False, **kw)


def _optional(**kw) -> pa.Field:
    return pa.Field(nullable=True, **kw)


def _amount() -> pa.Field:
    """An amount that cannot be negative (a total, an amount due or paid)."""
    return pa.Field(nullable=True, ge=0)


def one_of(column: str, values, vocabulary: str | None = None):
    """A check that `column` holds one of `values` (nulls are the field's business), saying which list."""
    allowed = frozenset(values)
    error = f"is not {vocabulary}" if vocabulary else f"is not one of {', '.join(values)}"

    @pa.check(column, name="one_of", error=error)
    def _check(cls, series: Series) -> Series[bool]:
        return series.isin(allowed)

    return _check


def iso_currency(column: str):
    return one_of(column, CURRENCY_CODES, "an ISO 4217 currency code")


def plausible_email(column: str):
    @pa.check(column, name="plausible_email", error="does not look like an email address")
    def _check(cls, series: Series[str]) -> Series[bool]:
        return series.str.match(EMAIL_PATTERN)

    return _check


class MirrorRow(pa.DataFrameModel):
    """What every typed table carries: the connection and the hash of the payload in `landing`."""

    connection: Series[str] = _id()
    payload_hash: Series[str] = _id()

    class Config:
        strict = False
        coerce = False


# Row-level checks that compare columns: the fields each one is about, so a failure names those
# fields and their values (pandera reports every column of the failing row otherwise).
ROW_CHECK_FIELDS: dict[str, tuple[str, ...]] = {}


def row_check(*fields: str, name: str, error: str):
    """A pandera dataframe check about `fields`; `error` is what a failure says (and its key here)."""
    ROW_CHECK_FIELDS[error] = fields
    return pa.dataframe_check(name=name, error=error)


def due_not_before_issue(issued: pd.Series, due: pd.Series) -> pd.Series:
    """True where there is no due date, no issue date, or the due date is on or after the issue date."""
    return issued.isna() | due.isna() | (due >= issued)


# ---------------------------------------------------------------------------------------------
# The accounting invariant: lines sum to the sub-total (reused by reconciliation)

LINES_SUM_TO_SUB_TOTAL = "lines_sum_to_sub_total"
LINE_TOLERANCE = Decimal("0.01")  # rounding allowed per line


def lines_balance(sub_total: pd.Series, lines_sub_total: pd.Series, line_count: pd.Series) -> pd.Series:
    """True where |sub_total - lines_sub_total| <= 0.01 per line (at least one line's worth).

    `lines_sub_total` is the lines' net amount as the vendor defines it (Xero: Σ LineAmount, less
    Σ TaxAmount when amounts are tax-inclusive; Zoho: Σ (Total - Discount)). Exact Decimal arithmetic.
    """
    out = []
    for sub, lines, count in zip(sub_total, lines_sub_total, line_count, strict=True):
        if sub is None or lines is None or pd.isna(sub) or pd.isna(lines):
            out.append(False)
            continue
        n = 0 if pd.isna(count) else int(count)
        out.append(abs(Decimal(sub) - Decimal(lines)) <= LINE_TOLERANCE * max(n, 1))
    return pd.Series(out, index=sub_total.index, dtype=bool)


class LinesBalance(MirrorRow):
    """One document (invoice, credit note) with the net sum of its lines: the two must agree."""

    document_id: Series[str] = _id()
    sub_total: Series[Money] = _required()
    lines_sub_total: Series[Sum] = _required()
    line_count: Series[pd.Int64Dtype] = _required(ge=0)

    class Config:
        unique = ["connection", "document_id"]

    @row_check("sub_total", "lines_sub_total", "line_count", name=LINES_SUM_TO_SUB_TOTAL,
               error="lines do not sum to sub_total (tolerance 0.01 per line)")  # fmt: skip
    def _balanced(cls, df: pd.DataFrame) -> Series[bool]:
        return lines_balance(df["sub_total"], df["lines_sub_total"], df["line_count"])


class DocumentDates(MirrorRow):
    """WARN: a document falls due on or after the day it was issued."""

    document_id: Series[str] = _id()
    issued: Series[Day] = _day()
    due: Series[Day] = _day()

    @row_check("issued", "due", name="due_not_before_issue", error="due date is before the issue date")
    def _due(cls, df: pd.DataFrame) -> Series[bool]:
        return due_not_before_issue(df["issued"], df["due"])


# ---------------------------------------------------------------------------------------------
# Xero


class XeroContact(MirrorRow):
    contact_id: Series[str] = _id()
    name: Series[str] = _required()
    contact_status: Series[str] = _optional()
    default_currency: Series[str] = _optional()
    ar_outstanding: Series[Money] = _optional()
    ar_overdue: Series[Money] = _optional()
    ap_outstanding: Series[Money] = _optional()
    ap_overdue: Series[Money] = _optional()
    updated_utc: Series[Instant] = _instant()

    _status = one_of("contact_status", XERO_CONTACT_STATUSES)
    _currency = iso_currency("default_currency")

    class Config:
        unique = ["connection", "contact_id"]


class XeroContactEmails(MirrorRow):
    """WARN: a contact's email should at least look like one."""

    contact_id: Series[str] = _id()
    email: Series[str] = _optional()

    _email = plausible_email("email")


class XeroDocument(MirrorRow):
    """Columns invoices and credit notes share."""

    contact_id: Series[str] = _required()
    status: Series[str] = _required()
    date: Series[Day] = _day()
    due_date: Series[Day] = _day()
    currency_code: Series[str] = _required()
    currency_rate: Series[Rate] = _optional(gt=0)
    line_amount_types: Series[str] = _optional()
    sub_total: Series[Money] = _amount()
    total_tax: Series[Money] = _amount()
    total: Series[Money] = _amount()
    updated_utc: Series[Instant] = _instant()

    _status = one_of("status", XERO_DOCUMENT_STATUSES)
    _currency = iso_currency("currency_code")
    _amount_types = one_of("line_amount_types", XERO_LINE_AMOUNT_TYPES)


class XeroInvoice(XeroDocument):
    invoice_id: Series[str] = _id()
    type: Series[str] = _required()
    amount_due: Series[Money] = _amount()
    amount_paid: Series[Money] = _amount()
    amount_credited: Series[Money] = _amount()

    _type = one_of("type", XERO_INVOICE_TYPES)

    class Config:
        unique = ["connection", "invoice_id"]


class XeroCreditNote(XeroDocument):
    credit_note_id: Series[str] = _id()
    type: Series[str] = _required()
    remaining_credit: Series[Money] = _amount()
    applied_amount: Series[Money] = _amount()

    _type = one_of("type", XERO_CREDIT_NOTE_TYPES)

    class Config:
        unique = ["connection", "credit_note_id"]


class XeroLine(MirrorRow):
    """A line of an invoice or credit note (negative lines are legitimate: discounts, corrections)."""

    line_item_id: Series[str] = _id()
    line_no: Series[pd.Int64Dtype] = _optional(ge=1)
    quantity: Series[Price] = _optional()
    unit_amount: Series[Price] = _optional()
    discount_rate: Series[Money] = _optional(ge=0, le=100)
    line_amount: Series[Money] = _optional()
    tax_amount: Series[Money] = _optional()


class XeroInvoiceLine(XeroLine):
    invoice_id: Series[str] = _id()

    class Config:
        unique = ["connection", "invoice_id", "line_item_id"]


class XeroCreditNoteLine(XeroLine):
    credit_note_id: Series[str] = _id()

    class Config:
        unique = ["connection", "credit_note_id", "line_item_id"]


class XeroCreditNoteAllocation(MirrorRow):
    credit_note_id: Series[str] = _id()
    allocation_id: Series[str] = _id()
    invoice_id: Series[str] = _required()
    amount: Series[Money] = _required(ge=0)
    date: Series[Day] = _day()

    class Config:
        unique = ["connection", "credit_note_id", "allocation_id"]


class XeroPayment(MirrorRow):
    payment_id: Series[str] = _id()
    invoice_id: Series[str] = _optional()
    credit_note_id: Series[str] = _optional()
    payment_type: Series[str] = _optional()
    status: Series[str] = _required()
    date: Series[Day] = _day()
    amount: Series[Money] = _amount()
    bank_amount: Series[Money] = _amount()
    currency_rate: Series[Rate] = _optional(gt=0)
    updated_utc: Series[Instant] = _instant()

    _type = one_of("payment_type", XERO_PAYMENT_TYPES)
    _status = one_of("status", XERO_PAYMENT_STATUSES)

    class Config:
        unique = ["connection", "payment_id"]


class XeroItem(MirrorRow):
    item_id: Series[str] = _id()
    code: Series[str] = _required(str_length={"min_value": 1, "max_value": 30})
    name: Series[str] = _optional()
    sales_unit_price: Series[Price] = _optional()

    class Config:
        unique = ["connection", "item_id"]


class XeroAccount(MirrorRow):
    account_id: Series[str] = _id()
    code: Series[str] = _optional()
    name: Series[str] = _required()
    type: Series[str] = _required()
    class_: Series[str] = pa.Field(nullable=True, alias="class")
    status: Series[str] = _optional()
    currency_code: Series[str] = _optional()

    _type = one_of("type", XERO_ACCOUNT_TYPES, "a Xero account type")
    _class = one_of("class", XERO_ACCOUNT_CLASSES)
    _status = one_of("status", XERO_ACCOUNT_STATUSES)
    _currency = iso_currency("currency_code")

    class Config:
        unique = ["connection", "account_id"]


class XeroOrganisation(MirrorRow):
    organisation_id: Series[str] = _id()
    name: Series[str] = _required()
    base_currency: Series[str] = _required()
    country_code: Series[str] = _optional(str_matches=r"^[A-Z]{2}$")

    _currency = iso_currency("base_currency")

    class Config:
        unique = ["connection", "organisation_id"]


# ---------------------------------------------------------------------------------------------
# Zoho CRM


class ZohoRecord(MirrorRow):
    """System fields every Zoho module carries."""

    created_time: Series[Instant] = _instant()
    modified_time: Series[Instant] = _instant()


class ZohoAccount(ZohoRecord):
    account_id: Series[str] = _id()
    name: Series[str] = _required()  # Account_Name is mandatory
    currency: Series[str] = _optional()
    outstanding_balance: Series[Money] = _optional()
    overdue_balance: Series[Money] = _optional()

    _currency = iso_currency("currency")

    class Config:
        unique = ["connection", "account_id"]


class ZohoContact(ZohoRecord):
    contact_id: Series[str] = _id()
    last_name: Series[str] = _required()  # Last_Name is mandatory
    account_id: Series[str] = _optional()

    class Config:
        unique = ["connection", "contact_id"]


class ZohoContactEmails(MirrorRow):
    """WARN: a contact's emails should at least look like ones."""

    contact_id: Series[str] = _id()
    email: Series[str] = _optional()
    secondary_email: Series[str] = _optional()

    _email = plausible_email("email")
    _secondary = plausible_email("secondary_email")


class ZohoDealStages(MirrorRow):
    """WARN: a stage outside the standard pipeline is worth a look, not a stop (orgs add their own)."""

    deal_id: Series[str] = _id()
    stage: Series[str] = _optional()

    _stage = one_of("stage", ZOHO_DEAL_STAGES, "a stage of the standard pipeline")


class ZohoDeal(ZohoRecord):
    deal_id: Series[str] = _id()
    name: Series[str] = _required()  # Deal_Name is mandatory
    stage: Series[str] = _required()  # so is Stage
    closing_date: Series[Day] = _day()
    amount: Series[Money] = _amount()
    probability: Series[pd.Int64Dtype] = _optional(ge=0, le=100)
    currency: Series[str] = _optional()
    payment_status: Series[str] = _optional()
    amount_paid: Series[Money] = _amount()

    _currency = iso_currency("currency")
    _payment_status = one_of("payment_status", ZOHO_PAYMENT_STATUSES)

    class Config:
        unique = ["connection", "deal_id"]


class ZohoInvoice(ZohoRecord):
    invoice_id: Series[str] = _id()
    subject: Series[str] = _required()  # Subject is mandatory
    invoice_date: Series[Day] = _day()
    due_date: Series[Day] = _day()
    currency: Series[str] = _optional()
    sub_total: Series[Money] = _amount()
    discount: Series[Money] = _amount()
    tax: Series[Money] = _amount()
    adjustment: Series[Money] = _optional()
    grand_total: Series[Money] = _amount()

    _currency = iso_currency("currency")

    class Config:
        unique = ["connection", "invoice_id"]


class ZohoInvoiceItem(MirrorRow):
    invoice_id: Series[str] = _id()
    item_id: Series[str] = _id()
    line_no: Series[pd.Int64Dtype] = _optional(ge=1)
    quantity: Series[Price] = _optional(ge=0)
    list_price: Series[Price] = _optional()
    discount: Series[Money] = _amount()
    total: Series[Money] = _optional()
    net_total: Series[Money] = _optional()
    tax_percent: Series[Price] = _optional(ge=0, le=100)

    class Config:
        unique = ["connection", "invoice_id", "item_id"]


class ZohoProduct(ZohoRecord):
    product_id: Series[str] = _id()
    name: Series[str] = _required()  # Product_Name is mandatory
    unit_price: Series[Price] = _amount()

    class Config:
        unique = ["connection", "product_id"]
