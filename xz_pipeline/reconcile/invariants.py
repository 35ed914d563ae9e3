"""Accounting invariants over the canonical views, as pandera models run in Dagster asset checks.

The checks that say the books are internally consistent, whatever the vendor: invoice lines sum to
the sub-total; total = sub-total + tax; paid + credited + due = total; allocations never exceed the
document they settle; currencies are ISO 4217. They are ERROR checks and `blocking=True` on the
`discrepancies` asset: write-back (downstream of it) never acts on a mirror that fails them, while
reconciliation itself still reports what it sees. Models and helpers come from `core/schemas.py`
(`lines_balance`, `row_check`, `iso_currency`, the Money types); `core/checks.py` turns a
validation into failing keys and 20-row previews.

(No `from __future__ import annotations`: Dagster inspects the `context` annotation.)
"""

from decimal import Decimal

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from xz_pipeline.core.checks import ERROR, Rule, evaluate, read_frame, selected_rules
from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.schemas import (
    LINES_SUM_TO_SUB_TOTAL,
    Money,
    Sum,
    iso_currency,
    lines_balance,
    row_check,
)

TOLERANCE = Decimal("0.01")


def _id() -> pa.Field:
    return pa.Field(nullable=False, str_length={"min_value": 1})


def _eq(a: pd.Series, b: pd.Series) -> pd.Series:
    """Exact Decimal equality within a cent, row by row; a missing side fails."""
    return pd.Series(
        [x is not None and y is not None and not pd.isna(x) and not pd.isna(y) and abs(x - y) <= TOLERANCE
         for x, y in zip(a, b, strict=True)],
        index=a.index, dtype=bool,
    )  # fmt: skip


class CanonicalRow(pa.DataFrameModel):
    connection: Series[str] = _id()

    class Config:
        strict = False
        coerce = False


class InvoiceLinesBalance(CanonicalRow):
    """An invoice with the net sum of its lines (Σ line_amount, less Σ tax_amount when tax-inclusive)."""

    invoice_id: Series[str] = _id()
    sub_total: Series[Money] = pa.Field(nullable=True)
    lines_sub_total: Series[Sum] = pa.Field(nullable=True)
    line_count: Series[pd.Int64Dtype] = pa.Field(nullable=False, ge=0)

    @row_check("sub_total", "lines_sub_total", "line_count", name=LINES_SUM_TO_SUB_TOTAL,
               error="invoice lines do not sum to the sub-total (tolerance 0.01 per line)")  # fmt: skip
    def _balanced(cls, df: pd.DataFrame) -> Series[bool]:
        return lines_balance(df["sub_total"], df["lines_sub_total"], df["line_count"])


class InvoiceTotals(CanonicalRow):
    """total = subtotal + tax; amount_paid + amount_credited + amount_due = total (live invoices)."""

    invoice_id: Series[str] = _id()
    subtotal: Series[Money] = pa.Field(nullable=True)
    tax: Series[Money] = pa.Field(nullable=True)
    total: Series[Money] = pa.Field(nullable=True)
    amount_paid: Series[Money] = pa.Field(nullable=True)
    amount_credited: Series[Money] = pa.Field(nullable=True)
    amount_due: Series[Money] = pa.Field(nullable=True)

    @row_check("subtotal", "tax", "total", name="total_is_subtotal_plus_tax",
               error="total is not subtotal + tax")  # fmt: skip
    def _total(cls, df: pd.DataFrame) -> Series[bool]:
        return _eq(df["subtotal"] + df["tax"], df["total"])

    @row_check("amount_paid", "amount_credited", "amount_due", "total", name="settlements_add_up",
               error="amount_paid + amount_credited + amount_due is not total")  # fmt: skip
    def _settled(cls, df: pd.DataFrame) -> Series[bool]:
        paid = df["amount_paid"].map(lambda v: Decimal(0) if v is None or pd.isna(v) else v)
        credited = df["amount_credited"].map(lambda v: Decimal(0) if v is None or pd.isna(v) else v)
        return _eq(paid + credited + df["amount_due"], df["total"])


class AllocationsWithinTotal(CanonicalRow):
    """What is applied to a document (payments and credit allocations) never exceeds its total."""

    document_id: Series[str] = _id()
    total: Series[Money] = pa.Field(nullable=True)
    applied: Series[Sum] = pa.Field(nullable=True)

    @row_check("total", "applied", name="allocations_within_total", error="more is applied than the total")
    def _within(cls, df: pd.DataFrame) -> Series[bool]:
        return pd.Series(
            [t is not None and not pd.isna(t) and a <= t + TOLERANCE for t, a in zip(df["total"], df["applied"], strict=True)],
            index=df.index, dtype=bool,
        )  # fmt: skip


class DocumentCurrency(CanonicalRow):
    document: Series[str] = _id()
    document_id: Series[str] = _id()
    currency: Series[str] = pa.Field(nullable=True)

    _currency = iso_currency("currency")


LIVE = "('draft', 'open', 'paid')"

INVARIANTS: tuple[Rule, ...] = (
    Rule("invoice_lines_sum_to_subtotal", InvoiceLinesBalance, "canonical.books_invoice_lines",
         ("connection", "invoice_id"), ERROR, "books invoice lines sum to the invoice's sub-total", record_id="invoice_id",
         sql="select i.connection, i.invoice_id, i.subtotal as sub_total, "
             "sum(l.line_amount) - case when any_value(i.amounts_tax) = 'inclusive' "
             "then coalesce(sum(l.tax_amount), 0) else 0 end as lines_sub_total, "
             "count(*)::bigint as line_count from canonical.books_invoices i join canonical.books_invoice_lines l "
             "on l.connection = i.connection and l.invoice_id = i.invoice_id "
             "group by i.connection, i.invoice_id, i.subtotal order by 1, 2"),
    Rule("invoice_totals_add_up", InvoiceTotals, "canonical.books_invoices", ("connection", "invoice_id"),
         ERROR, "total = subtotal + tax, and paid + credited + due = total", record_id="invoice_id",
         sql="select connection, invoice_id, subtotal, tax, total, amount_paid, amount_credited, amount_due "
             f"from canonical.books_invoices where status in {LIVE} order by 1, 2"),
    Rule("allocations_within_totals", AllocationsWithinTotal, "canonical.books_invoices",
         ("connection", "document_id"), ERROR,
         "payments and credit allocations never exceed the invoice (or credit note) they settle",
         record_id="document_id",
         sql="with applied as ("
             "select connection, invoice_id as document_id, amount from canonical.books_payments "
             "where status = 'active' and invoice_id is not null "
             "union all select connection, invoice_id, amount from canonical.books_credit_allocations "
             "union all select connection, credit_note_id, amount from canonical.books_credit_allocations), "
             "totals as (select connection, invoice_id as document_id, total from canonical.books_invoices "
             "union all select connection, credit_note_id, total from canonical.books_credit_notes) "
             "select a.connection, a.document_id, any_value(t.total) as total, sum(a.amount) as applied "
             "from applied a left join totals t using (connection, document_id) group by 1, 2 order by 1, 2"),
    Rule("currencies_are_iso_4217", DocumentCurrency, "canonical.*", ("connection", "document", "document_id"),
         ERROR, "every document's currency is an ISO 4217 code", record_id="document_id",
         sql="select connection, 'books_invoice' as document, invoice_id as document_id, currency "
             "from canonical.books_invoices union all "
             "select connection, 'books_credit_note', credit_note_id, currency from canonical.books_credit_notes "
             "union all select connection, 'books_payment', payment_id, currency from canonical.books_payments "
             "union all select connection, 'crm_deal', deal_id, currency from canonical.crm_deals "
             "union all select connection, 'crm_invoice', invoice_id, currency from canonical.crm_invoices "
             "order by 1, 2, 3"),
)  # fmt: skip


def check_invariants(stores, rules=INVARIANTS):
    """Validate every invariant over the connections of one mirror or several (a Store or a list of them,
    each read on one short read connection, in turn): each rule sees every connection's rows (`Outcome`s)."""
    stores = [stores] if not isinstance(stores, list | tuple) else list(stores)
    frames: list[list[pd.DataFrame]] = [[] for _ in rules]
    for store in stores:
        with store.read() as con:
            for i, rule in enumerate(rules):
                frames[i].append(read_frame(con, rule.sql))
    return [evaluate(rule, _concat(parts)) for rule, parts in zip(rules, frames, strict=True)]


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    non_empty = [p for p in parts if len(p)]
    if len(non_empty) == 1:
        return non_empty[0]
    return pd.concat(non_empty, ignore_index=True) if non_empty else parts[0]


def build_invariant_checks(asset: dg.AssetKey | str, rules=INVARIANTS) -> dg.AssetChecksDefinition:
    """One step running every invariant, a blocking result per ERROR rule on `asset`."""
    key = dg.AssetKey.from_coercible(asset)
    specs = [
        dg.AssetCheckSpec(
            rule.name,
            asset=key,
            blocking=rule.blocking,
            description=f"{rule.description} ({rule.severity.value}; {rule.model.__name__} over the canonical views)",
        )
        for rule in rules
    ]

    @dg.multi_asset_check(
        specs=specs,
        name="accounting_invariants",
        description="Accounting invariants over the canonical views (every connection); ERROR ones block "
        "write-back.",
        can_subset=True,
    )
    def _checks(context: dg.AssetCheckExecutionContext, mirror: MirrorResource):
        stores = [mirror.store(name) for name in sorted(mirror.connections())]
        for outcome in check_invariants(stores, selected_rules(context, rules)) if stores else []:
            if not outcome.passed:
                context.log.warning(
                    f"invariant {outcome.rule.name}: {len(outcome.reasons)} failing records"
                    + (f"; {outcome.error}" if outcome.error else "")
                )
            yield outcome.result(key)

    return _checks
