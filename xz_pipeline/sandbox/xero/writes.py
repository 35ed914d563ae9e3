"""Creates and updates with Xero's validation rules, one element at a time.

Each function validates an element against the current books and either commits it (returning
the stored record) or leaves the books untouched and returns the messages, so a batch can save
its valid elements and report the failed ones, as Xero does. Messages follow the spec's examples
where it has them ("Invoice # must be unique.", "…must be unique across all active contacts.").
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from decimal import Decimal

from xz_pipeline.sandbox.xero.books import Books, compute_lines, money, new_id
from xz_pipeline.sandbox.xero.wire import WireError, from_wire

READ_ONLY = {
    "UpdatedDateUTC", "UpdatedDateUTCString", "ValidationErrors", "HasValidationErrors", "HasErrors", "StatusAttributeString",
    "Warnings", "HasAttachments", "Balances", "IsCustomer", "IsSupplier", "SubTotal", "TotalTax", "Total", "TotalDiscount",
    "AmountDue", "AmountPaid", "AmountCredited", "FullyPaidOnDate", "Payments", "CreditNotes", "Prepayments", "Overpayments",
    "DateString", "DueDateString", "IsDiscounted", "RemainingCredit", "AppliedAmount", "PaymentType", "Class", "HasAccount",
}  # fmt: skip
EDITABLE_FROM = {
    None: {"DRAFT", "SUBMITTED", "AUTHORISED"},
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
    "PAID": {"PAID", "AUTHORISED"},
    "VOIDED": set(),
    "DELETED": set(),
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass
class Outcome:
    """The result of one element: the stored record, or why it failed (with the element to echo)."""

    record: dict | None
    errors: list[str] = field(default_factory=list)
    echo: dict = field(default_factory=dict)
    created: bool = False


def _fail(elem: dict, *errors: str) -> Outcome:
    return Outcome(None, list(errors), elem if isinstance(elem, dict) else {})


def _parse(elem) -> tuple[dict | None, str]:
    if not isinstance(elem, dict):
        return None, "Each element must be a JSON object"
    try:
        data = from_wire(elem)
    except WireError as exc:
        return None, str(exc)
    return {k: v for k, v in data.items() if k not in READ_ONLY}, ""


# ---- contacts -----------------------------------------------------------------------------------


def save_contact(b: Books, elem, mode: str, path_id: str | None = None) -> Outcome:
    """mode: create (PUT: fails on an existing Name/ContactNumber), upsert (POST), update (POST /Contacts/{id})."""
    data, err = _parse(elem)
    if err:
        return _fail(elem, err)
    cid = path_id or data.get("ContactID")
    existing = b.records["Contacts"].get(cid) if cid else None
    if cid and existing is None and mode != "create":
        return _fail(elem, "The contact could not be found.")
    if mode == "create" and existing is not None:
        return _fail(elem, f"A contact with ContactID {cid} already exists.")
    if mode == "upsert" and existing is None:
        if data.get("ContactNumber"):
            existing = b.contact_by("ContactNumber", data["ContactNumber"])
        if existing is None and data.get("Name"):
            existing = b.contact_by("Name", data["Name"], active_only=True)
    rec = copy.deepcopy(existing) if existing else {"ContactID": cid or new_id(), "ContactStatus": "ACTIVE"}
    rec.update({k: v for k, v in data.items() if k != "ContactID"})
    errors = []
    name = str(rec.get("Name") or "").strip()
    if not name:
        errors.append("The contact name must be specified.")
    elif len(name) > 255:
        errors.append("The contact name must be 255 characters or fewer.")
    if rec.get("ContactStatus") not in ("ACTIVE", "ARCHIVED", "GDPRREQUEST"):
        errors.append(f"ContactStatus '{rec.get('ContactStatus')}' is not valid.")
    if name and rec.get("ContactStatus") == "ACTIVE":
        clash = b.contact_by("Name", name, active_only=True)
        if clash is not None and clash["ContactID"] != rec["ContactID"]:
            errors.append(
                f"The contact name {name} is already assigned to another contact. "
                "The contact name must be unique across all active contacts."
            )
    number = str(rec.get("ContactNumber") or "")
    if len(number) > 50:
        errors.append("The contact number must be 50 characters or fewer.")
    elif number:
        clash = b.contact_by("ContactNumber", number)
        if clash is not None and clash["ContactID"] != rec["ContactID"]:
            errors.append(f"The contact number {number} is already assigned to another contact.")
    email = str(rec.get("EmailAddress") or "")
    if email and (len(email) > 255 or not _EMAIL.match(email)):
        errors.append("Email address must be valid.")
    for person in rec.get("ContactPersons") or []:
        if person.get("EmailAddress") and not _EMAIL.match(str(person["EmailAddress"])):
            errors.append("Email address must be valid.")
    if len(rec.get("ContactPersons") or []) > 5:
        errors.append("A contact can have at most 5 contact persons.")
    if rec.get("DefaultCurrency") and not _CURRENCY.match(str(rec["DefaultCurrency"])):
        errors.append(f"Currency code '{rec['DefaultCurrency']}' is not valid.")
    if errors:
        return _fail(elem, *errors)
    b.store("Contacts", rec, event="UPDATE" if existing else "CREATE")
    return Outcome(rec, created=existing is None)


def _resolve_contact(b: Books, ref, errors: list[str]) -> str | None:
    """A document's Contact: by ContactID, or by Name/ContactNumber (a new contact is created for an unknown name)."""
    if not isinstance(ref, dict) or not any(ref.get(k) for k in ("ContactID", "Name", "ContactNumber")):
        errors.append("A Contact must be specified for this type of transaction")
        return None
    if ref.get("ContactID"):
        if ref["ContactID"] not in b.records["Contacts"]:
            errors.append(f"The contact with ContactID {ref['ContactID']} could not be found.")
            return None
        return ref["ContactID"]
    if ref.get("ContactNumber"):
        found = b.contact_by("ContactNumber", ref["ContactNumber"])
        if found:
            return found["ContactID"]
    if ref.get("Name"):
        found = b.contact_by("Name", ref["Name"], active_only=True)
        if found:
            return found["ContactID"]
        return "new:"  # created on commit
    errors.append(f"The contact with ContactNumber {ref.get('ContactNumber')} could not be found.")
    return None


def _commit_contact(b: Books, ref: dict, resolved: str) -> str:
    if resolved != "new:":
        return resolved
    outcome = save_contact(
        b, {k: v for k, v in ref.items() if k in ("Name", "ContactNumber", "EmailAddress")}, "create"
    )
    return outcome.record["ContactID"]


# ---- documents (invoices and credit notes) ------------------------------------------------------


def _lines(b: Books, lines, old_lines: list[dict], sales: bool, draft: bool, errors: list[str]) -> list[dict]:
    if not isinstance(lines, list):
        errors.append("LineItems must be a list")
        return []
    by_id = {ln.get("LineItemID"): ln for ln in old_lines}
    rates = b.tax_rates()
    out = []
    for raw in lines:
        if not isinstance(raw, dict):
            errors.append("Each line item must be a JSON object")
            continue
        ln = (
            copy.deepcopy(by_id[raw["LineItemID"]])
            if raw.get("LineItemID") in by_id
            else {"LineItemID": new_id()}
        )
        ln.update({k: v for k, v in raw.items() if k not in ("LineItemID", "TaxAmount")})
        code = ln.get("ItemCode")
        if code:
            item = next((i for i in b.records["Items"].values() if i.get("Code") == code), None)
            if item is None:
                errors.append(f"Item code '{code}' is not valid")
            else:
                details = item.get("SalesDetails" if sales else "PurchaseDetails") or {}
                ln.setdefault(
                    "Description", item.get("Description") if sales else item.get("PurchaseDescription")
                )
                if ln.get("UnitAmount") is None and details.get("UnitPrice") is not None:
                    ln["UnitAmount"] = details["UnitPrice"]
                for src, dst in (("AccountCode", "AccountCode"), ("TaxType", "TaxType")):
                    if not ln.get(dst) and details.get(src):
                        ln[dst] = details[src]
        if ln.get("AccountID") and not ln.get("AccountCode"):
            acct = b.records["Accounts"].get(ln["AccountID"])
            if acct is None:
                errors.append(f"Account ID '{ln['AccountID']}' is not valid")
            else:
                ln["AccountCode"] = acct["Code"]
        acct = b.account_by_code(ln["AccountCode"]) if ln.get("AccountCode") else None
        if ln.get("AccountCode") and acct is None:
            errors.append(f"Account code '{ln['AccountCode']}' is not a valid code for this document.")
        elif not ln.get("AccountCode") and not draft:
            errors.append("An account code must be specified for each line item")
        if acct is not None:
            ln["AccountID"] = acct["AccountID"]
            if not ln.get("TaxType"):
                ln["TaxType"] = acct.get("TaxType") or "NONE"
        if ln.get("TaxType") and ln["TaxType"] not in rates:
            errors.append(
                f"The TaxType code '{ln['TaxType']}' does not exist or cannot be used for this type of transaction."
            )
        for key in ("Quantity", "UnitAmount", "LineAmount", "DiscountRate", "DiscountAmount"):
            if ln.get(key) is not None and not isinstance(ln[key], Decimal):
                errors.append(f"{key} must be a number")
        out.append(ln)
    return out


def _settled(b: Books, doc_id: str) -> bool:
    return bool(b.payments_of.get(doc_id)) and any(
        b.records["Payments"][p].get("Status") == "AUTHORISED" for p in b.payments_of[doc_id]
    )


def save_invoice(b: Books, elem, mode: str, path_id: str | None = None) -> Outcome:
    data, err = _parse(elem)
    if err:
        return _fail(elem, err)
    iid = path_id or data.get("InvoiceID")
    existing = b.records["Invoices"].get(iid) if iid else None
    if iid and existing is None and mode != "create":
        return _fail(elem, "The invoice could not be found.")
    if mode == "create" and existing is not None:
        return _fail(elem, f"An invoice with InvoiceID {iid} already exists.")
    if (
        mode == "upsert"
        and existing is None
        and data.get("InvoiceNumber")
        and data.get("Type", "ACCREC") == "ACCREC"
    ):
        existing = b.invoice_by_number(data["InvoiceNumber"])
    errors: list[str] = []
    old_status = existing["Status"] if existing else None
    rec = copy.deepcopy(existing) if existing else {
        "InvoiceID": iid or new_id(), "Status": "DRAFT", "LineAmountTypes": "Exclusive", "CurrencyCode": b.org["BaseCurrency"],
        "CurrencyRate": Decimal("1"), "SentToContact": False, "Date": b.today(), "LineItems": [], "Reference": "",
    }  # fmt: skip
    status = data.get("Status", old_status or "DRAFT")
    if status not in EDITABLE_FROM[old_status]:
        if old_status in ("VOIDED", "DELETED"):
            return _fail(elem, f"This document cannot be edited as it is {old_status}.")
        return _fail(elem, f"Invoice status cannot be changed from {old_status or 'new'} to {status}.")
    settled = existing is not None and (
        _settled(b, rec["InvoiceID"]) or bool(b.credits_of.get(rec["InvoiceID"]))
    )
    if settled and ("LineItems" in data or status == "VOIDED" or data.get("Contact")):
        return _fail(
            elem, "This document cannot be edited as it has a payment or credit note allocated to it."
        )
    contact_ref = data.pop("Contact", None)
    lines = data.pop("LineItems", None)
    rec.update({k: v for k, v in data.items() if k != "InvoiceID"})
    rec["Status"] = status
    if rec.get("Type") not in ("ACCREC", "ACCPAY"):
        errors.append(
            "Invoice Type must be ACCREC or ACCPAY." if rec.get("Type") else "Invoice Type must be specified."
        )
    resolved = None
    if contact_ref is not None or existing is None:
        resolved = _resolve_contact(b, contact_ref, errors)
    if rec.get("LineAmountTypes") not in ("Exclusive", "Inclusive", "NoTax"):
        errors.append(f"LineAmountTypes '{rec.get('LineAmountTypes')}' is not valid.")
    if not _CURRENCY.match(str(rec.get("CurrencyCode") or "")):
        errors.append(f"Currency code '{rec.get('CurrencyCode')}' is not valid.")
    draft = status in ("DRAFT", "DELETED")
    if lines is not None:
        rec["LineItems"] = _lines(
            b, lines, rec.get("LineItems") or [], rec.get("Type") == "ACCREC", draft, errors
        )
    if not draft and status != "VOIDED" and not rec["LineItems"]:
        errors.append("Invoice must have at least one line item.")
    if rec.get("DueDate") and rec.get("Date") and rec["DueDate"] < rec["Date"]:
        errors.append("Due date cannot be earlier than the invoice date.")
    number = str(rec.get("InvoiceNumber") or "")
    if len(number) > 255:
        errors.append("Invoice # must be 255 characters or fewer.")
    if rec.get("Type") == "ACCREC" and number:
        clash = b.invoice_by_number(number)
        if clash is not None and clash["InvoiceID"] != rec["InvoiceID"] and clash["Type"] == "ACCREC":
            errors.append("Invoice # must be unique.")
    if rec.get("SentToContact") and status in ("DRAFT", "SUBMITTED"):
        errors.append("SentToContact can only be set on approved invoices.")
    if errors:
        return _fail(elem, *errors)
    if resolved is not None:
        rec["Contact"] = {"ContactID": _commit_contact(b, contact_ref, resolved)}
    if rec.get("Type") == "ACCREC":
        if number:
            b.note_number("ACCREC", number)
        else:
            rec["InvoiceNumber"] = b.allocate_number("ACCREC")
    rec.update(
        compute_lines(rec["LineItems"], rec["LineAmountTypes"], b.tax_rates(), rec["Type"] == "ACCREC")
    )
    b.recompute_invoice(rec)
    b.store("Invoices", rec, event="UPDATE" if existing else "CREATE")
    return Outcome(rec, created=existing is None)


def save_credit_note(b: Books, elem, mode: str, path_id: str | None = None) -> Outcome:
    data, err = _parse(elem)
    if err:
        return _fail(elem, err)
    nid = path_id or data.get("CreditNoteID")
    existing = b.records["CreditNotes"].get(nid) if nid else None
    if nid and existing is None and mode != "create":
        return _fail(elem, "The credit note could not be found.")
    if mode == "create" and existing is not None:
        return _fail(elem, f"A credit note with CreditNoteID {nid} already exists.")
    errors: list[str] = []
    old_status = existing["Status"] if existing else None
    rec = copy.deepcopy(existing) if existing else {
        "CreditNoteID": nid or new_id(), "Status": "DRAFT", "LineAmountTypes": "Exclusive", "Allocations": [],
        "CurrencyCode": b.org["BaseCurrency"], "CurrencyRate": Decimal("1"), "Date": b.today(), "LineItems": [],
    }  # fmt: skip
    status = data.get("Status", old_status or "DRAFT")
    if status not in EDITABLE_FROM[old_status]:
        if old_status in ("VOIDED", "DELETED"):
            return _fail(elem, f"This document cannot be edited as it is {old_status}.")
        return _fail(elem, f"Credit note status cannot be changed from {old_status or 'new'} to {status}.")
    allocated = existing is not None and (rec.get("Allocations") or _settled(b, rec["CreditNoteID"]))
    if allocated and ("LineItems" in data or status == "VOIDED"):
        return _fail(elem, "This document cannot be edited as it has been allocated.")
    contact_ref = data.pop("Contact", None)
    lines = data.pop("LineItems", None)
    new_allocs = data.pop("Allocations", None) if existing is None else None
    data.pop("Allocations", None)
    rec.update({k: v for k, v in data.items() if k != "CreditNoteID"})
    rec["Status"] = status
    if rec.get("Type") not in ("ACCRECCREDIT", "ACCPAYCREDIT"):
        errors.append("Credit note Type must be ACCRECCREDIT or ACCPAYCREDIT.")
    resolved = None
    if contact_ref is not None or existing is None:
        resolved = _resolve_contact(b, contact_ref, errors)
    if rec.get("LineAmountTypes") not in ("Exclusive", "Inclusive", "NoTax"):
        errors.append(f"LineAmountTypes '{rec.get('LineAmountTypes')}' is not valid.")
    draft = status in ("DRAFT", "DELETED")
    if lines is not None:
        rec["LineItems"] = _lines(
            b, lines, rec.get("LineItems") or [], rec.get("Type") == "ACCRECCREDIT", draft, errors
        )
    if not draft and status != "VOIDED" and not rec["LineItems"]:
        errors.append("Credit note must have at least one line item.")
    number = str(rec.get("CreditNoteNumber") or "")
    if number:
        clash = next(
            (n for n in b.records["CreditNotes"].values() if n.get("CreditNoteNumber") == number), None
        )
        if (
            clash is not None
            and clash["CreditNoteID"] != rec["CreditNoteID"]
            and rec.get("Type") == "ACCRECCREDIT"
        ):
            errors.append("Credit Note # must be unique.")
    if new_allocs and status != "AUTHORISED":
        errors.append("Allocations can only be made on authorised credit notes.")
    if errors:
        return _fail(elem, *errors)
    if resolved is not None:
        rec["Contact"] = {"ContactID": _commit_contact(b, contact_ref, resolved)}
    if number:
        b.note_number(rec["Type"], number)
    else:
        rec["CreditNoteNumber"] = b.allocate_number(rec["Type"])
    rec.update(compute_lines(rec["LineItems"], rec["LineAmountTypes"], b.tax_rates(), False))
    b.recompute_credit_note(rec)
    b.store("CreditNotes", rec, event="UPDATE" if existing else "CREATE")
    for inv_id, _alloc in b.credits_of.items():
        if any(n == rec["CreditNoteID"] for n, _ in _alloc):
            b.recompute_invoice(b.records["Invoices"][inv_id])
    outcome = Outcome(rec, created=existing is None)
    for alloc in new_allocs or []:
        result = allocate(b, rec["CreditNoteID"], alloc)
        outcome.errors.extend(result.errors)
    return outcome


def allocate(b: Books, note_id: str, elem) -> Outcome:
    """`PUT /CreditNotes/{id}/Allocations`: apply credit to an invoice of the same contact."""
    note = b.records["CreditNotes"].get(note_id)
    if note is None:
        return _fail(elem, "The credit note could not be found.")
    data, err = _parse(elem)
    if err:
        return _fail(elem, err)
    inv_id = (data.get("Invoice") or {}).get("InvoiceID")
    inv = b.records["Invoices"].get(inv_id) if inv_id else None
    amount = data.get("Amount")
    errors = []
    if note["Status"] != "AUTHORISED":
        errors.append("Allocations can only be made on authorised credit notes.")
    if inv is None:
        errors.append("The invoice for this allocation could not be found.")
    elif inv["Status"] != "AUTHORISED":
        errors.append("Credit can only be allocated to authorised invoices.")
    elif {"ACCRECCREDIT": "ACCREC", "ACCPAYCREDIT": "ACCPAY"}[note["Type"]] != inv["Type"]:
        errors.append("The credit note type does not match the invoice type.")
    elif inv["Contact"]["ContactID"] != note["Contact"]["ContactID"]:
        errors.append("The credit note and the invoice must be for the same contact.")
    elif inv.get("CurrencyCode") != note.get("CurrencyCode"):
        errors.append("The credit note and the invoice must be in the same currency.")
    if not isinstance(amount, Decimal) or amount <= 0:
        errors.append("Amount must be a positive number.")
    elif inv is not None and not errors:
        if amount > note["RemainingCredit"]:
            errors.append("The amount allocated exceeds the remaining credit on this credit note.")
        if amount > inv["AmountDue"]:
            errors.append("The amount allocated exceeds the amount outstanding on the invoice.")
    if errors:
        return _fail(elem, *errors)
    alloc = {"AllocationID": new_id(), "Invoice": {"InvoiceID": inv_id}, "Amount": money(amount),
             "Date": data.get("Date") or b.today(), "IsDeleted": False}  # fmt: skip
    note.setdefault("Allocations", []).append(alloc)
    b.link_allocations(note)
    b.recompute_credit_note(note)
    b.recompute_invoice(inv)
    b.store("CreditNotes", note, event="UPDATE")
    b.store("Invoices", inv, event="UPDATE")
    return Outcome({**alloc, "CreditNote": {"CreditNoteID": note_id}}, created=True)


# ---- payments -----------------------------------------------------------------------------------


def save_payment(b: Books, elem) -> Outcome:
    data, err = _parse(elem)
    if err:
        return _fail(elem, err)
    errors: list[str] = []
    inv_ref = data.get("Invoice") or (
        {"InvoiceNumber": data["InvoiceNumber"]} if data.get("InvoiceNumber") else None
    )
    note_ref = data.get("CreditNote") or (
        {"CreditNoteNumber": data["CreditNoteNumber"]} if data.get("CreditNoteNumber") else None
    )
    doc, coll = None, ""
    if inv_ref:
        coll = "Invoices"
        doc = b.records["Invoices"].get(inv_ref.get("InvoiceID") or "") or (
            b.invoice_by_number(inv_ref["InvoiceNumber"]) if inv_ref.get("InvoiceNumber") else None
        )
        if doc is None:
            errors.append("The invoice for this payment could not be found.")
    elif note_ref:
        coll = "CreditNotes"
        doc = b.records["CreditNotes"].get(note_ref.get("CreditNoteID") or "") or next(
            (
                n
                for n in b.records["CreditNotes"].values()
                if n.get("CreditNoteNumber") == note_ref.get("CreditNoteNumber")
            ),
            None,
        )
        if doc is None:
            errors.append("The credit note for this payment could not be found.")
    else:
        errors.append("A payment must be for an Invoice or a CreditNote.")
    acct_ref = data.get("Account") or ({"Code": data["Code"]} if data.get("Code") else {})
    acct = b.records["Accounts"].get(acct_ref.get("AccountID") or "") or (
        b.account_by_code(acct_ref["Code"]) if acct_ref.get("Code") else None
    )
    if acct is None:
        errors.append("A valid Account must be specified for the payment.")
    elif acct.get("Type") != "BANK" and not acct.get("EnablePaymentsToAccount"):
        errors.append(
            f"Account code '{acct.get('Code')}' cannot accept payments: use a BANK account or enable payments."
        )
    amount = data.get("Amount")
    if not isinstance(amount, Decimal) or amount <= 0:
        errors.append("Payment amount must be a positive number.")
    if doc is not None:
        if doc["Status"] != "AUTHORISED":
            errors.append("Payment can only be made against Authorised documents.")
        elif isinstance(amount, Decimal):
            outstanding = doc["AmountDue"] if coll == "Invoices" else doc["RemainingCredit"]
            if amount > outstanding:
                errors.append("Payment amount exceeds the amount outstanding on this document.")
    if data.get("Status", "AUTHORISED") != "AUTHORISED":
        errors.append("A new payment must have Status AUTHORISED.")
    if errors:
        return _fail(elem, *errors)
    kind = {"ACCREC": "ACCRECPAYMENT", "ACCPAY": "ACCPAYPAYMENT", "ACCRECCREDIT": "ARCREDITPAYMENT",
            "ACCPAYCREDIT": "APCREDITPAYMENT"}[doc["Type"]]  # fmt: skip
    pay = {
        "PaymentID": new_id(), "Date": data.get("Date") or b.today(), "Amount": money(amount), "BankAmount": money(amount),
        "CurrencyRate": data.get("CurrencyRate") or Decimal("1"), "Reference": data.get("Reference") or "",
        "IsReconciled": bool(data.get("IsReconciled", False)), "Status": "AUTHORISED", "PaymentType": kind,
        "Account": {"AccountID": acct["AccountID"]},
    }  # fmt: skip
    if coll == "Invoices":
        pay["Invoice"] = {"InvoiceID": doc["InvoiceID"]}
    else:
        pay["CreditNote"] = {"CreditNoteID": doc["CreditNoteID"]}
    b.store("Payments", pay)
    b.link_payment(pay)
    _settle(b, coll, doc)
    return Outcome(pay, created=True)


def _settle(b: Books, coll: str, doc: dict) -> None:
    if coll == "Invoices":
        b.recompute_invoice(doc)
    else:
        b.recompute_credit_note(doc)
    b.store(coll, doc, event="UPDATE")


def delete_payment(b: Books, payment_id: str, elem) -> Outcome:
    pay = b.records["Payments"].get(payment_id)
    if pay is None:
        return _fail(elem, "The payment could not be found.")
    if not isinstance(elem, dict) or elem.get("Status") != "DELETED":
        return _fail(elem, "Payments can only be updated to Status DELETED.")
    if pay["Status"] == "DELETED":
        return _fail(elem, "This payment has already been deleted.")
    pay["Status"] = "DELETED"
    b.store("Payments", pay)
    coll = "Invoices" if "Invoice" in pay else "CreditNotes"
    doc_id = pay["Invoice"]["InvoiceID"] if coll == "Invoices" else pay["CreditNote"]["CreditNoteID"]
    _settle(b, coll, b.records[coll][doc_id])
    return Outcome(pay)


# ---- items and accounts -------------------------------------------------------------------------


def save_item(b: Books, elem, mode: str, path_id: str | None = None) -> Outcome:
    data, err = _parse(elem)
    if err:
        return _fail(elem, err)
    iid = path_id or data.get("ItemID")
    existing = b.records["Items"].get(iid) if iid else None
    if iid and existing is None and mode != "create":
        return _fail(elem, "The item could not be found.")
    if existing is None and mode == "upsert" and data.get("Code"):
        existing = next((i for i in b.records["Items"].values() if i.get("Code") == data["Code"]), None)
    if mode == "create" and existing is not None:
        return _fail(elem, f"An item with ItemID {iid} already exists.")
    rec = copy.deepcopy(existing) if existing else {"ItemID": iid or new_id(), "IsSold": True, "IsPurchased": True,
                                                     "IsTrackedAsInventory": False}  # fmt: skip
    rec.update({k: v for k, v in data.items() if k not in ("ItemID", "QuantityOnHand", "TotalCostPool")})
    errors = []
    code = str(rec.get("Code") or "")
    if not code:
        errors.append("Item code must be specified.")
    elif len(code) > 30:
        errors.append("Item code must be 30 characters or fewer.")
    elif any(i.get("Code") == code and i["ItemID"] != rec["ItemID"] for i in b.records["Items"].values()):
        errors.append(f"Item code '{code}' already exists.")
    if len(str(rec.get("Name") or "")) > 50:
        errors.append("Item name must be 50 characters or fewer.")
    rates = b.tax_rates()
    for key in ("SalesDetails", "PurchaseDetails"):
        details = rec.get(key) or {}
        if details.get("AccountCode") and b.account_by_code(details["AccountCode"]) is None:
            errors.append(f"Account code '{details['AccountCode']}' is not a valid code.")
        if details.get("TaxType") and details["TaxType"] not in rates:
            errors.append(f"The TaxType code '{details['TaxType']}' does not exist.")
    if errors:
        return _fail(elem, *errors)
    b.store("Items", rec)
    return Outcome(rec, created=existing is None)


ACCOUNT_TYPES = {
    "BANK", "CURRENT", "CURRLIAB", "DEPRECIATN", "DIRECTCOSTS", "EQUITY", "EXPENSE", "FIXED", "INVENTORY", "LIABILITY",
    "NONCURRENT", "OTHERINCOME", "OVERHEADS", "PREPAYMENT", "REVENUE", "SALES", "TERMLIAB", "PAYG",
}  # fmt: skip


def save_account(b: Books, elem, path_id: str | None = None) -> Outcome:
    data, err = _parse(elem)
    if err:
        return _fail(elem, err)
    existing = b.records["Accounts"].get(path_id) if path_id else None
    if path_id and existing is None:
        return _fail(elem, "The account could not be found.")
    rec = copy.deepcopy(existing) if existing else {"AccountID": new_id(), "Status": "ACTIVE", "EnablePaymentsToAccount": False,
                                                     "ShowInExpenseClaims": False, "ReportingCode": ""}  # fmt: skip
    rec.update({k: v for k, v in data.items() if k not in ("AccountID", "SystemAccount")})
    errors = []
    code, name = str(rec.get("Code") or ""), str(rec.get("Name") or "")
    if rec.get("Type") not in ACCOUNT_TYPES:
        errors.append(f"Account type '{rec.get('Type')}' is not valid.")
    if len(code) > 10:
        errors.append("Account code must be 10 characters or fewer.")
    if not name:
        errors.append("Account name must be specified.")
    for other in b.records["Accounts"].values():
        if other["AccountID"] == rec["AccountID"] or other.get("Status") == "DELETED":
            continue
        if code and other.get("Code") == code:
            errors.append("Please enter a unique Code.")
        if other.get("Name", "").lower() == name.lower():
            errors.append("Please enter a unique Name.")
    if rec.get("TaxType") and rec["TaxType"] not in b.tax_rates():
        errors.append(f"The TaxType code '{rec['TaxType']}' does not exist.")
    if errors:
        return _fail(elem, *errors)
    b.store("Accounts", rec)
    return Outcome(rec, created=existing is None)


def email_errors(b: Books, inv: dict) -> list[str]:
    """Why `POST /Invoices/{id}/Email` refuses (empty when the email goes out)."""
    if inv["Type"] != "ACCREC":
        return ["Only sales invoices (ACCREC) can be emailed."]
    if inv["Status"] not in ("AUTHORISED", "PAID"):
        return [f"Invoices with status {inv['Status']} cannot be emailed."]
    contact = b.records["Contacts"].get(inv["Contact"]["ContactID"], {})
    has_email = bool(contact.get("EmailAddress")) or any(
        p.get("EmailAddress") and p.get("IncludeInEmails") for p in contact.get("ContactPersons") or []
    )
    return [] if has_email else ["The contact does not have an email address."]
