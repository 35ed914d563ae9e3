"""Turn the generated world's books side (sandbox.world.BooksOrg) into Xero records.

Seeding writes records directly (no validation, no webhook events) with the world's own
timestamps, then derives AmountPaid/Due, PAID and RemainingCredit from the seeded payments
and allocations exactly as a write would. Ids of nested parts (line items, allocations) are
uuid5 of their parent, so the same world always seeds the same records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from xz_pipeline.sandbox.xero.books import WINDOWS_ZONES, Books, add_currency, compute_lines


def _uid(parent: str, index: int) -> str:
    return str(uuid.uuid5(uuid.UUID(parent), str(index)))


def _lines(parent_id: str, lines) -> list[dict]:
    out = []
    for i, ln in enumerate(lines):
        rec = {"LineItemID": _uid(parent_id, i), "Description": ln.description, "Quantity": ln.quantity,
               "UnitAmount": ln.unit_amount, "AccountCode": ln.account_code, "TaxType": ln.tax_type}  # fmt: skip
        if ln.item_code:
            rec["ItemCode"] = ln.item_code
        if ln.discount_rate:
            rec["DiscountRate"] = ln.discount_rate
        out.append(rec)
    return out


def _contact(c) -> dict:
    rec = {
        "ContactID": c.id, "Name": c.name, "ContactStatus": c.status, "EmailAddress": c.email,
        "FirstName": c.first_name, "LastName": c.last_name, "AccountNumber": c.account_number,
        "ContactNumber": c.contact_number, "TaxNumber": c.tax_number, "DefaultCurrency": c.currency or None,
        "UpdatedDateUTC": c.updated,
        "ContactPersons": [{"FirstName": p.first_name, "LastName": p.last_name, "EmailAddress": p.email,
                            "IncludeInEmails": True} for p in c.persons[:5]],
        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": c.phone}] if c.phone else [],
        "Addresses": [],
    }  # fmt: skip
    if c.address is not None:
        a = c.address
        rec["Addresses"] = [{"AddressType": "POBOX", "AddressLine1": a.line1, "AddressLine2": a.line2, "City": a.city,
                             "Region": a.region, "PostalCode": a.postal_code, "Country": a.country}]  # fmt: skip
    return {k: v for k, v in rec.items() if v not in (None, "") or k in ("Name", "ContactStatus")}


def seed_books(b: Books, org, put_tax_rate: Callable[[Books, str, str, object], None]) -> None:
    """Load every list of a BooksOrg into `b` (the caller holds the emulator lock)."""
    b.org.update(Name=org.name, LegalName=org.legal_name, ShortCode=org.short_code, BaseCurrency=org.base_currency,
                 CountryCode=org.country_code, Timezone=WINDOWS_ZONES.get(org.timezone, "UTC"), CreatedDateUTC=org.created)  # fmt: skip
    if org.tax_rates:
        b.records["TaxRates"].clear()
        for t in org.tax_rates:
            put_tax_rate(b, t.tax_type, t.name, t.rate)
    if org.accounts:
        b.records["Accounts"].clear()
        for a in org.accounts:
            acct = {"AccountID": a.id, "Code": a.code, "Name": a.name, "Type": a.type, "TaxType": a.tax_type,
                    "Status": "ACTIVE", "EnablePaymentsToAccount": False, "ShowInExpenseClaims": False,
                    "UpdatedDateUTC": org.created}  # fmt: skip
            if a.system_account:
                acct["SystemAccount"] = a.system_account
            if a.type == "BANK":
                acct.update(
                    BankAccountType="BANK", CurrencyCode=a.currency or org.base_currency, BankAccountNumber=""
                )
            b.store("Accounts", acct, touch=False)
    for it in org.items:
        b.store("Items", {"ItemID": it.id, "Code": it.code, "Name": it.name, "Description": it.description,
                          "IsSold": True, "IsPurchased": False, "IsTrackedAsInventory": False,
                          "SalesDetails": {"UnitPrice": it.unit_price, "AccountCode": it.account_code, "TaxType": it.tax_type},
                          "UpdatedDateUTC": it.updated}, touch=False)  # fmt: skip
    add_currency(b, org.base_currency)
    for code in sorted({c.currency for c in org.contacts} | {i.currency for i in org.invoices}
                       | {n.currency for n in org.credit_notes}):  # fmt: skip
        add_currency(b, code)  # a currency the books bill in was added to the organisation first
    for c in org.contacts:
        b.store("Contacts", _contact(c), touch=False)
    rates = b.tax_rates()
    for inv in org.invoices:
        rec = {
            "InvoiceID": inv.id, "Type": inv.type, "InvoiceNumber": inv.number, "Reference": inv.reference,
            "Contact": {"ContactID": inv.contact_id}, "Date": inv.date, "DueDate": inv.due_date,
            "Status": "AUTHORISED" if inv.status == "PAID" else inv.status, "LineAmountTypes": inv.line_amount_types,
            "CurrencyCode": inv.currency, "CurrencyRate": inv.currency_rate, "SentToContact": False,
            "LineItems": _lines(inv.id, inv.lines), "UpdatedDateUTC": inv.updated,
        }  # fmt: skip
        rec.update(compute_lines(rec["LineItems"], rec["LineAmountTypes"], rates, inv.type == "ACCREC"))
        if inv.type == "ACCREC":
            b.note_number("ACCREC", inv.number)
        b.store("Invoices", rec, touch=False)
    for note in org.credit_notes:
        rec = {
            "CreditNoteID": note.id, "Type": note.type, "CreditNoteNumber": note.number, "Reference": note.reference,
            "Contact": {"ContactID": note.contact_id}, "Date": note.date, "Status": note.status,
            "LineAmountTypes": "Exclusive", "CurrencyCode": note.currency, "LineItems": _lines(note.id, note.lines),
            "UpdatedDateUTC": note.updated,
            "Allocations": [{"AllocationID": _uid(note.id, 1000 + i), "Invoice": {"InvoiceID": a.invoice_id},
                             "Amount": a.amount, "Date": a.date, "IsDeleted": False}
                            for i, a in enumerate(note.allocations)],
        }  # fmt: skip
        rec.update(compute_lines(rec["LineItems"], "Exclusive", rates, False))
        b.note_number(note.type, note.number)
        b.store("CreditNotes", rec, touch=False)
        b.link_allocations(rec)
    by_code = {a["Code"]: a["AccountID"] for a in b.records["Accounts"].values()}
    for p in org.payments:
        inv = b.records["Invoices"].get(p.invoice_id)
        kind = "ACCPAYPAYMENT" if inv is not None and inv["Type"] == "ACCPAY" else "ACCRECPAYMENT"
        pay = {"PaymentID": p.id, "Invoice": {"InvoiceID": p.invoice_id}, "Account": {"AccountID": by_code.get(p.account_code, "")},
               "Date": p.date, "Amount": p.amount, "BankAmount": p.amount, "CurrencyRate": p.currency_rate,
               "Reference": p.reference, "IsReconciled": False, "Status": p.status, "PaymentType": kind,
               "UpdatedDateUTC": p.updated}  # fmt: skip
        b.store("Payments", pay, touch=False)
        b.link_payment(pay)
    for note in b.records["CreditNotes"].values():
        b.recompute_credit_note(note)
    for inv in b.records["Invoices"].values():
        b.recompute_invoice(inv)
