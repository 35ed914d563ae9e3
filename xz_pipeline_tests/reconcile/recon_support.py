"""Hand-made canonical frames for the rule, linking and persistence tests: a few rows, every column.

Amounts are integer cents, as `persist.read_canonical` hands them to the rules.
"""

from __future__ import annotations

import pandas as pd

from xz_pipeline.reconcile.matching import LINK_COLUMNS
from xz_pipeline.reconcile.persist import READ_COLUMNS
from xz_pipeline.reconcile.rules import Inputs

C = "conn"
MONEY = {"outstanding", "overdue", "subtotal", "tax", "total", "amount_paid", "amount_due", "amount_credited",
         "amount"}  # fmt: skip
DATES = {"issue_date", "due_date", "paid_date", "close_date", "last_payment_date"}


def frame(view: str, *rows: dict) -> pd.DataFrame:
    """Rows of a canonical view: unnamed columns are None, connection defaults to `C`."""
    columns = READ_COLUMNS[view]
    out = pd.DataFrame([{c: r.get(c, C if c == "connection" else None) for c in columns} for r in rows],
                       columns=columns)  # fmt: skip
    for c in columns:
        if c in MONEY:
            out[c] = out[c].astype("Int64")
        elif c in DATES:
            out[c] = pd.to_datetime(out[c])
        else:
            out[c] = out[c].astype(object)
    return out


def customer(cid: str, name: str = "Acme Ltd", **kw) -> dict:
    return {
        "customer_id": cid,
        "name": name,
        "is_customer": True,
        "is_supplier": False,
        "status": "active",
        **kw,
    }


def account(aid: str, name: str = "Acme Ltd", **kw) -> dict:
    return {"account_id": aid, "name": name, **kw}


def invoice(iid: str, customer_id: str = "b1", total: int = 11500, **kw) -> dict:
    base = {"invoice_id": iid, "number": f"INV-{iid}", "type": "sale", "status": "open", "customer_id": customer_id,
            "issue_date": "2026-05-10", "due_date": "2026-06-10", "currency": "NZD", "subtotal": total * 100 // 115,
            "tax": total - total * 100 // 115, "total": total, "amount_paid": 0, "amount_due": total,
            "amount_credited": 0}  # fmt: skip
    return {**base, **kw}


def deal(did: str, account_id: str = "a1", amount: int = 11500, **kw) -> dict:
    base = {"deal_id": did, "name": f"Deal {did}", "stage": "won", "amount": amount, "currency": "NZD",
            "close_date": "2026-05-05", "account_id": account_id, "payment_status": "unpaid",
            "payment_status_raw": "Unpaid"}  # fmt: skip
    return {**base, **kw}


def links(*pairs: tuple, status: str = "linked") -> pd.DataFrame:
    """Customer links (books_id, crm_id[, status]) as matching.py returns them."""
    rows = [
        {"connection": C, "books_id": p[0], "crm_id": p[1], "method": "email", "confidence": 0.95,
         "status": p[2] if len(p) > 2 else status, "evidence": ""}
        for p in pairs
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=LINK_COLUMNS)


def no_duplicates() -> pd.DataFrame:
    return pd.DataFrame(columns=["connection", "books_id", "crm_id", "other_id", "side"])


def invoice_links(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"connection": C, "invoice_id": i, "deal_id": d, "method": "deal_invoice_id", "confidence": 1.0}
         for i, d in pairs],
        columns=["connection", "invoice_id", "deal_id", "method", "confidence"],
    )  # fmt: skip


def inputs(
    *,
    books_customers=(),
    books_invoices=(),
    crm_accounts=(),
    crm_contacts=(),
    crm_deals=(),
    crm_invoices=(),
    customer_links: pd.DataFrame | None = None,
    duplicates: pd.DataFrame | None = None,
    deal_links: pd.DataFrame | None = None,
) -> Inputs:
    return Inputs(
        books_customers=frame("books_customers", *books_customers),
        books_invoices=frame("books_invoices", *books_invoices),
        crm_accounts=frame("crm_accounts", *crm_accounts),
        crm_contacts=frame("crm_contacts", *crm_contacts),
        crm_deals=frame("crm_deals", *crm_deals),
        crm_invoices=frame("crm_invoices", *crm_invoices),
        customer_links=links() if customer_links is None else customer_links,
        duplicates=no_duplicates() if duplicates is None else duplicates,
        invoice_links=invoice_links() if deal_links is None else deal_links,
    )


def keys(found: pd.DataFrame) -> set[tuple]:
    """(kind, books_id, crm_id, field) of each row."""
    return set(zip(found["kind"], found["books_id"], found["crm_id"], found["field"], strict=True))
