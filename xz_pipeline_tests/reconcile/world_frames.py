"""Canonical-shaped frames built straight from a generated world (no HTTP, no mirror).

What the canonical views would show after a sync, derived as the emulators derive it (Xero:
AmountPaid/Credited/Due and PAID from payments and allocations; Zoho: an account's email is its
primary contact's, `choose_primary`'s rule). Amounts are integer cents, as `persist.read_canonical`
returns them. Used by the fast tests and by bench/bench_recon.py for the sizes the HTTP path is too
slow for; `test_assets` checks the rules give the same answer through the real pipeline.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from xz_pipeline.sandbox.world import World

STAGE = {"Closed Won": "won", "Closed Lost": "lost", "Closed Lost to Competition": "lost"}
PAYMENT = {"Unpaid": "unpaid", "Partially Paid": "partially_paid", "Paid": "paid", "Overdue": "overdue"}
STATUS = {"DRAFT": "draft", "SUBMITTED": "draft", "AUTHORISED": "open", "PAID": "paid", "VOIDED": "void",
          "DELETED": "deleted"}  # fmt: skip


def _cents(value) -> int | None:
    return None if value is None else int(round(value * 100))


def _street(a) -> str | None:
    return ", ".join(p for p in (a.line1, a.line2) if p) or None if a else None


def _address(a) -> dict:
    if a is None:
        return {"street": None, "city": None, "region": None, "postal_code": None, "country": None}
    return {"street": _street(a), "city": a.city or None, "region": a.region or None,
            "postal_code": a.postal_code or None, "country": a.country or None}  # fmt: skip


def frames(world: World, connection: str = "c0") -> dict[str, pd.DataFrame]:
    b, c = world.books, world.crm
    paid: dict[str, int] = defaultdict(int)
    for p in b.payments:
        if p.status == "AUTHORISED":
            paid[p.invoice_id] += _cents(p.amount)
    credited: dict[str, int] = defaultdict(int)
    for n in b.credit_notes:
        if n.status in ("AUTHORISED", "PAID"):
            for a in n.allocations:
                credited[a.invoice_id] += _cents(a.amount)
    invoices, buyer, seller = [], set(), set()
    for inv in b.invoices:
        total = _cents(inv.total)
        p, cr = paid.get(inv.id, 0), credited.get(inv.id, 0)
        raw = "AUTHORISED" if inv.status == "PAID" else inv.status
        due = 0 if raw in ("VOIDED", "DELETED") else total - p - cr
        if raw == "AUTHORISED" and due <= 0 and (p or cr):
            raw = "PAID"
        if raw != "DELETED":
            (buyer if inv.type == "ACCREC" else seller).add(inv.contact_id)
        invoices.append({
            "connection": connection, "invoice_id": inv.id, "number": inv.number,
            "type": "sale" if inv.type == "ACCREC" else "bill", "status": STATUS[raw],
            "customer_id": inv.contact_id, "reference": inv.reference or None, "issue_date": inv.date,
            "due_date": inv.due_date, "paid_date": None, "currency": inv.currency,
            "subtotal": _cents(inv.sub_total), "tax": _cents(inv.total_tax), "total": total,
            "amount_paid": p, "amount_due": due, "amount_credited": cr,
        })  # fmt: skip
    customers = [
        {"connection": connection, "customer_id": k.id, "name": k.name, "first_name": k.first_name or None,
         "last_name": k.last_name or None, "email": k.email or None, "phone": k.phone or None, "mobile": None,
         "tax_number": k.tax_number or None, "currency": k.currency or None,
         "account_number": k.account_number or None, **_address(k.address), "is_customer": k.id in buyer,
         "is_supplier": k.id in seller, "status": k.status.lower(), "outstanding": None, "overdue": None,
         "crm_link": k.contact_number or None, "source_modified": k.updated}
        for k in b.contacts
    ]  # fmt: skip
    contacts = pd.DataFrame(
        [
            {
                "connection": connection,
                "contact_id": k.id,
                "account_id": k.account_id or None,
                "first_name": k.first_name or None,
                "last_name": k.last_name,
                "name": f"{k.first_name} {k.last_name}".strip(),
                "email": k.email or None,
                "secondary_email": None,
                "phone": k.phone or None,
                "mobile": k.mobile or None,
                **_address(k.mailing),
                "source_created": k.created,
            }
            for k in c.contacts
        ]  # fmt: skip
    )
    contacts["_has_email"] = contacts["email"].notna()
    contacts["_idlen"] = contacts["contact_id"].str.len()
    ordered = contacts.sort_values(["account_id", "_has_email", "source_created", "_idlen", "contact_id"],
                                   ascending=[True, False, True, True, True])  # fmt: skip
    primary = ordered.drop_duplicates("account_id")[["account_id", "contact_id", "email"]]
    contacts["is_primary"] = contacts["contact_id"].isin(set(primary["contact_id"]))
    contacts = contacts.drop(columns=["_has_email", "_idlen"])
    prim = dict(
        zip(primary["account_id"], zip(primary["contact_id"], primary["email"], strict=True), strict=True)
    )
    accounts = [
        {"connection": connection, "account_id": a.id, "name": a.name, "email": prim.get(a.id, (None, None))[1],
         "primary_contact_id": prim.get(a.id, (None, None))[0], "phone": a.phone or None,
         "website": a.website or None, "tax_number": a.tax_number or None, "currency": a.currency or None,
         "account_number": a.account_number or None, **_address(a.billing),
         "books_link": a.xero_contact_id or None, "outstanding": _cents(a.outstanding_balance),
         "overdue": _cents(a.overdue_balance), "source_modified": a.modified}
        for a in c.accounts
    ]  # fmt: skip
    deals = [
        {"connection": connection, "deal_id": d.id, "name": d.name, "stage": STAGE.get(d.stage, "open"),
         "amount": _cents(d.amount), "currency": d.currency or None, "close_date": d.closing_date,
         "account_id": d.account_id or None, "contact_id": d.contact_id or None,
         "books_invoice_id": d.xero_invoice_id or None, "books_invoice_number": d.xero_invoice_number or None,
         "payment_status": PAYMENT.get(d.payment_status), "payment_status_raw": d.payment_status or None,
         "amount_paid": _cents(d.amount_paid), "last_payment_date": d.last_payment_date}
        for d in c.deals
    ]  # fmt: skip
    crm_invoices = [
        {"connection": connection, "invoice_id": i.id, "number": i.number, "status": i.status.lower(),
         "account_id": i.account_id or None, "deal_id": i.deal_id or None, "issue_date": i.date,
         "currency": i.currency, "total": _cents(i.grand_total), "books_invoice_id": i.xero_invoice_id or None}
        for i in c.invoices
    ]  # fmt: skip
    out = {
        "books_customers": pd.DataFrame(customers),
        "books_invoices": pd.DataFrame(invoices),
        "crm_accounts": pd.DataFrame(accounts),
        "crm_contacts": contacts,
        "crm_deals": pd.DataFrame(deals),
        "crm_invoices": pd.DataFrame(crm_invoices),
    }
    for view in ("books_customers", "books_invoices", "crm_accounts", "crm_deals", "crm_invoices"):
        frame = out[view]
        for col in ("outstanding", "overdue", "subtotal", "tax", "total", "amount_paid", "amount_due",
                    "amount_credited", "amount"):  # fmt: skip
            if col in frame:
                frame[col] = frame[col].astype("Int64")
        for col in ("issue_date", "due_date", "close_date", "last_payment_date"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col])
    out.update(project_frames(world, connection))
    return out


def project_frames(world: World, connection: str = "c0") -> dict[str, pd.DataFrame]:
    """The books' projects as `books_projects`, `books_project_tasks`, `books_time_entries` would show them
    (totals derived as the Xero emulator derives them; amounts in cents)."""
    projects, tasks, time = [], [], []
    book = world.projects
    for p in book.projects if book is not None else []:
        kinds = {t.id: t for t in p.tasks}
        minutes: dict[str, int] = defaultdict(int)
        invoiced: dict[str, int] = defaultdict(int)
        for e in p.time:
            minutes[e.task_id] += e.duration
            invoiced[e.task_id] += e.duration if e.status == "INVOICED" else 0
            time.append({"connection": connection, "time_entry_id": e.id, "project_id": p.id, "task_id": e.task_id,
                         "worked_on": pd.Timestamp(e.date), "minutes": e.duration, "status": e.status.lower(),
                         "chargeable": kinds[e.task_id].charge_type != "NON_CHARGEABLE"})  # fmt: skip
        to_invoice = 0
        for t in p.tasks:
            tasks.append({"connection": connection, "task_id": t.id, "project_id": p.id,
                          "charge_type": t.charge_type.lower(), "rate": _cents(t.rate),
                          "estimate_minutes": t.estimate_minutes, "total_minutes": minutes[t.id]})  # fmt: skip
            if t.charge_type == "TIME":
                to_invoice += _cents(t.rate * (minutes[t.id] - invoiced[t.id]) / 60)
            elif t.charge_type == "FIXED" and t.status != "INVOICED":
                to_invoice += _cents(t.rate)
        projects.append({"connection": connection, "project_id": p.id, "customer_id": p.contact_id, "name": p.name,
                         "currency": p.currency, "status": "closed" if p.status == "CLOSED" else "in_progress",
                         "estimate": _cents(p.estimate), "minutes_logged": sum(minutes.values()),
                         "expense_amount": _cents(p.expenses), "total_invoiced": None,
                         "total_to_be_invoiced": to_invoice + _cents(p.expenses - p.expenses_invoiced)})  # fmt: skip
    cols = {
        "books_projects": ["connection", "project_id", "customer_id", "name", "currency", "status", "estimate",
                           "minutes_logged", "expense_amount", "total_invoiced", "total_to_be_invoiced"],
        "books_project_tasks": ["connection", "task_id", "project_id", "charge_type", "rate", "estimate_minutes",
                                "total_minutes"],
        "books_time_entries": ["connection", "time_entry_id", "project_id", "task_id", "worked_on", "minutes",
                               "status", "chargeable"],
    }  # fmt: skip
    rows = {"books_projects": projects, "books_project_tasks": tasks, "books_time_entries": time}
    return {view: pd.DataFrame(rows[view], columns=c) for view, c in cols.items()}


# ---------------------------------------------------------------------------------------------
# Scoring against the manifest

BY_BOOKS = ("customer_missing_in_crm", "invoice_without_deal", "invoice_missing_in_crm")
BY_CRM = ("customer_missing_in_books", "deal_not_invoiced")


def manifest_key(kind: str, books_id: str, crm_id: str, field: str) -> tuple:
    """How a row is compared with the manifest: by the id(s) the kind is about, and the field."""
    if kind in BY_BOOKS:
        return (kind, books_id)
    if kind in BY_CRM:
        return (kind, crm_id)
    return (kind, books_id, crm_id, field or "")


def score(found: pd.DataFrame, manifest) -> dict[str, dict[str, float]]:
    """Precision, recall and counts per kind of `found` discrepancy rows against the manifest."""
    truth = {manifest_key(m.kind, m.books_id, m.crm_id, m.field) for m in manifest}
    got = {
        manifest_key(k, b, c, f)
        for k, b, c, f in zip(found["kind"], found["books_id"], found["crm_id"], found["field"], strict=True)
    }
    kinds = sorted({k[0] for k in truth | got})
    out = {}
    for kind in kinds:
        t = {k for k in truth if k[0] == kind}
        g = {k for k in got if k[0] == kind}
        hit = len(t & g)
        out[kind] = {
            "expected": len(t),
            "found": len(g),
            "precision": hit / len(g) if g else (1.0 if not t else 0.0),
            "recall": hit / len(t) if t else 1.0,
        }
    return out
