"""The generated world's CRM side in Zoho's wire shapes: users, accounts, contacts, products, deals (and
their Products related lists), invoices.

The world holds plain Python values (Decimal, aware datetimes, dates); this module turns them into
records as `GET /crm/v8/{module}/{id}` returns them and stores them through `OrgState.load`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from xz_pipeline.sandbox.zoho.records import OrgState


def _num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _ref(org: OrgState, module: str, rid: str) -> dict | None:
    if not rid:
        return None
    rec = org.records[module].get(rid)
    return {"id": rid, "name": org.name_of(module, rec) if rec else ""}


def _owner(org: OrgState, user_id: str) -> dict:
    u = org.user(user_id) or org.api_user
    return dict(u)


def _times(created: datetime, modified: datetime) -> dict:
    return {"Created_Time": created.isoformat(), "Modified_Time": modified.isoformat()}


def _address(prefix: str, addr: Any, code: str = "Code") -> dict:
    if addr is None:
        return {}
    street = ", ".join(p for p in (addr.line1, addr.line2) if p)
    return {
        f"{prefix}_Street": street or None,
        f"{prefix}_City": addr.city or None,
        f"{prefix}_State": addr.region or None,
        f"{prefix}_{code}": addr.postal_code or None,
        f"{prefix}_Country": addr.country or None,
    }


def _named(org: OrgState, module: str, record: dict) -> dict:
    """The record under the org's own field names (a profile may rename our custom fields)."""
    return {org.profile.api_name(module, k): v for k, v in record.items()}


def seed_org(org: OrgState, crm: Any, now: datetime) -> None:
    for u in crm.users:
        org.add_user(u.id, u.name, u.email)
    if not org.users:
        raise ValueError("a CRM org needs at least one user")
    for p in crm.products:
        org.load(
            "Products",
            {
                "id": p.id,
                "Product_Name": p.name,
                "Product_Code": p.code or None,
                "Unit_Price": _num(p.unit_price),
                "Description": p.description or None,
                "Product_Active": p.active,
                "Taxable": p.tax_percent > 0,
                "Owner": _owner(org, p.owner_id),
                **_times(p.created, p.modified),
            },
            now,
        )
    for a in crm.accounts:
        org.load(
            "Accounts",
            _named(
                org,
                "Accounts",
                {
                    "id": a.id,
                    "Account_Name": a.name,
                    "Account_Number": a.account_number or None,
                    "Phone": a.phone or None,
                    "Website": a.website or None,
                    **_address("Billing", a.billing),
                    "Currency": a.currency or None,
                    "Xero_Contact_ID": a.xero_contact_id or None,
                    "Tax_Number": a.tax_number or None,
                    "Outstanding_Balance": _num(a.outstanding_balance),
                    "Overdue_Balance": _num(a.overdue_balance),
                    "Tag": [{"name": t} for t in a.tags],
                    "Owner": _owner(org, a.owner_id),
                    **_times(a.created, a.modified),
                },
            ),
            now,
        )
    for c in crm.contacts:
        org.load(
            "Contacts",
            {
                "id": c.id,
                "First_Name": c.first_name or None,
                "Last_Name": c.last_name,
                "Email": c.email or None,
                "Phone": c.phone or None,
                "Mobile": c.mobile or None,
                "Title": c.title or None,
                "Account_Name": _ref(org, "Accounts", c.account_id),
                **_address("Mailing", c.mailing, "Zip"),
                "Owner": _owner(org, c.owner_id),
                **_times(c.created, c.modified),
            },
            now,
        )
    for d in crm.deals:
        probability = d.probability
        org.load(
            "Deals",
            _named(
                org,
                "Deals",
                {
                    "id": d.id,
                    "Deal_Name": d.name,
                    "Stage": d.stage,
                    "Pipeline": "Standard (Standard)",
                    "Amount": _num(d.amount),
                    "Probability": probability,
                    "Expected_Revenue": round(float(d.amount) * probability / 100, 2),
                    "Currency": d.currency or None,
                    "Closing_Date": d.closing_date.isoformat(),
                    "Account_Name": _ref(org, "Accounts", d.account_id),
                    "Contact_Name": _ref(org, "Contacts", d.contact_id),
                    "Xero_Invoice_ID": d.xero_invoice_id or None,
                    "Xero_Invoice_Number": d.xero_invoice_number or None,
                    "Payment_Status": d.payment_status or None,
                    "Amount_Paid": _num(d.amount_paid),
                    "Last_Payment_Date": d.last_payment_date.isoformat() if d.last_payment_date else None,
                    "Owner": _owner(org, d.owner_id),
                    **_times(d.created, d.modified),
                },
            ),
            now,
        )
        if d.products and org.related_list("Deals", "Products")[0]:
            org.relate("Deals", d.id, "Products", [
                {"id": ln.product_id, "Quantity": _num(ln.quantity), "List_Price": _num(ln.list_price)}
                for ln in d.products
            ])  # fmt: skip
    for inv in crm.invoices:
        lines = []
        sub = tax = Decimal("0")
        for ln in inv.lines:
            taxable = ln.total - ln.discount
            line_tax = (taxable * ln.tax_percent / 100).quantize(Decimal("0.01"))
            sub += taxable
            tax += line_tax
            lines.append(
                {
                    "Product_Name": _ref(org, "Products", ln.product_id),
                    "Quantity": float(ln.quantity),
                    "List_Price": float(ln.list_price),
                    "Discount": float(ln.discount),
                    "Total": float(ln.total),
                    "Tax": float(line_tax),
                    "Net_Total": float(ln.net_total),
                    "Line_Tax": [
                        {"name": "GST", "percentage": float(ln.tax_percent), "value": float(line_tax)}
                    ],
                    "Description": ln.description or None,
                }
            )
        org.load(
            "Invoices",
            _named(
                org,
                "Invoices",
                {
                    "id": inv.id,
                    "Subject": inv.subject,
                    "Invoice_Number": inv.number or None,
                    "Invoice_Date": inv.date.isoformat(),
                    "Due_Date": inv.due_date.isoformat(),
                    "Status": inv.status,
                    "Currency": inv.currency or None,
                    "Account_Name": _ref(org, "Accounts", inv.account_id),
                    "Contact_Name": _ref(org, "Contacts", inv.contact_id),
                    "Deal_Name": _ref(org, "Deals", inv.deal_id),
                    "Xero_Invoice_ID": inv.xero_invoice_id or None,
                    "Payment_Status": inv.payment_status or None,
                    "Amount_Paid": _num(inv.amount_paid),
                    "Last_Payment_Date": inv.last_payment_date.isoformat() if inv.last_payment_date else None,
                    "Invoiced_Items": lines,
                    "Sub_Total": float(sub),
                    "Tax": float(tax),
                    "Grand_Total": float(inv.grand_total),
                    "Owner": _owner(org, inv.owner_id),
                    **_times(inv.created, inv.modified),
                },
            ),
            now,
        )
