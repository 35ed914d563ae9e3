"""The canonical frames payment risk reads, built straight from a generated world (no HTTP, no mirror).

Derived as the Xero emulator derives them (PAID when payments and credit allocations cover the total;
FullyPaidOnDate is left to the payments, which is what the model reads). Amounts are floats in the
invoice currency, as `insights.persist.read_inputs` returns them. For the medium organisation in
bench/bench_insights.py, where the HTTP path takes minutes; the tests go through the real mirror.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from xz_pipeline.sandbox.world import World

STATUS = {"DRAFT": "draft", "SUBMITTED": "draft", "AUTHORISED": "open", "PAID": "paid", "VOIDED": "void",
          "DELETED": "deleted"}  # fmt: skip


def frames(world: World, connection: str = "c0") -> dict[str, pd.DataFrame]:
    b = world.books
    paid: dict[str, float] = defaultdict(float)
    payments = []
    for p in b.payments:
        if p.invoice_id:
            payments.append({"connection": connection, "invoice_id": p.invoice_id, "date": p.date,
                             "amount": float(p.amount), "status": "active" if p.status == "AUTHORISED" else "deleted"})  # fmt: skip
            if p.status == "AUTHORISED":
                paid[p.invoice_id] += float(p.amount)
    credited: dict[str, float] = defaultdict(float)
    allocations, notes = [], []
    for n in b.credit_notes:
        live = n.status in ("AUTHORISED", "PAID")
        notes.append({"connection": connection, "credit_note_id": n.id, "customer_id": n.contact_id,
                      "type": "sale" if n.type == "ACCRECCREDIT" else "bill",
                      "status": "open" if live else STATUS.get(n.status, "draft"), "issue_date": n.date,
                      "total": float(n.total)})  # fmt: skip
        if live:
            for a in n.allocations:
                credited[a.invoice_id] += float(a.amount)
                allocations.append({"connection": connection, "invoice_id": a.invoice_id, "date": a.date,
                                    "amount": float(a.amount)})  # fmt: skip
    invoices, lines = [], []
    for inv in b.invoices:
        total = float(inv.total)
        raw = inv.status
        due = (
            0.0 if raw in ("VOIDED", "DELETED") else total - paid.get(inv.id, 0.0) - credited.get(inv.id, 0.0)
        )
        if raw == "AUTHORISED" and due <= 0.005 and (paid.get(inv.id) or credited.get(inv.id)):
            raw = "PAID"
        invoices.append({"connection": connection, "invoice_id": inv.id, "type": "sale" if inv.type == "ACCREC" else "bill",
                         "status": STATUS[raw], "customer_id": inv.contact_id, "issue_date": inv.date,
                         "due_date": inv.due_date, "paid_date": None, "currency": inv.currency,
                         "currency_rate": float(inv.currency_rate), "total": total, "amount_due": max(due, 0.0)})  # fmt: skip
        lines.extend({"connection": connection, "invoice_id": inv.id} for _ in inv.lines)
    out = {
        "books_invoices": pd.DataFrame(invoices),
        "books_payments": pd.DataFrame(payments),
        "books_credit_allocations": pd.DataFrame(allocations),
        "books_credit_notes": pd.DataFrame(notes),
        "books_invoice_lines": pd.DataFrame(lines),
    }
    for frame, cols in (("books_invoices", ("issue_date", "due_date", "paid_date")), ("books_payments", ("date",)),
                        ("books_credit_allocations", ("date",)), ("books_credit_notes", ("issue_date",))):  # fmt: skip
        for c in cols:
            out[frame][c] = pd.to_datetime(out[frame][c])
    return out
