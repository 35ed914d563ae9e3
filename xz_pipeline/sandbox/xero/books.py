"""One Xero organisation's books: typed records, the derived fields Xero keeps true, and their API views.

Records are stored typed (dates, Decimals) under the API's own field names. Amounts that follow
from other records (AmountPaid/Due/Credited, PAID, FullyPaidOnDate, RemainingCredit) are
recomputed whenever a payment or allocation changes; contact Balances and IsCustomer/IsSupplier
depend on the clock (Overdue), so they are computed when a contact is viewed.
"""

from __future__ import annotations

import copy
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from xz_pipeline.sandbox.clock import Clock
from xz_pipeline.sandbox.xero.wire import iso_no_zone

ZERO = Decimal("0")
CENT = Decimal("0.01")

ID_FIELD = {
    "Contacts": "ContactID",
    "Invoices": "InvoiceID",
    "Payments": "PaymentID",
    "CreditNotes": "CreditNoteID",
    "Items": "ItemID",
    "Accounts": "AccountID",
    "TaxRates": "TaxType",
    "Currencies": "Code",  # the organisation's currencies: the base one, and those added to bill abroad
}
CURRENCY_NAMES = {"NZD": "New Zealand Dollar", "AUD": "Australian Dollar", "GBP": "British Pound",
                  "USD": "United States Dollar", "EUR": "Euro"}  # fmt: skip
EVENT_CATEGORY = {"Contacts": "CONTACT", "Invoices": "INVOICE", "CreditNotes": "CREDITNOTE"}
ACCOUNT_CLASS = {
    "BANK": "ASSET", "CURRENT": "ASSET", "FIXED": "ASSET", "INVENTORY": "ASSET", "NONCURRENT": "ASSET", "PREPAYMENT": "ASSET",
    "CURRLIAB": "LIABILITY", "LIABILITY": "LIABILITY", "TERMLIAB": "LIABILITY", "PAYG": "LIABILITY", "EQUITY": "EQUITY",
    "DEPRECIATN": "EXPENSE", "DIRECTCOSTS": "EXPENSE", "EXPENSE": "EXPENSE", "OVERHEADS": "EXPENSE",
    "OTHERINCOME": "REVENUE", "REVENUE": "REVENUE", "SALES": "REVENUE",
}  # fmt: skip
# Xero names time zones the Windows way (the spec's Organisation.Timezone enum)
WINDOWS_ZONES = {
    "Pacific/Auckland": "NEWZEALANDSTANDARDTIME", "Pacific/Chatham": "CHATHAMISLANDSSTANDARDTIME",
    "Australia/Sydney": "AUSEASTERNSTANDARDTIME", "Australia/Melbourne": "AUSEASTERNSTANDARDTIME",
    "Australia/Brisbane": "EAUSTRALIASTANDARDTIME", "Australia/Adelaide": "CENAUSTRALIASTANDARDTIME",
    "Australia/Perth": "WAUSTRALIASTANDARDTIME", "Australia/Hobart": "TASMANIASTANDARDTIME",
    "Europe/London": "GMTSTANDARDTIME", "Europe/Dublin": "GMTSTANDARDTIME", "Europe/Paris": "ROMANCESTANDARDTIME",
    "Europe/Berlin": "WEUROPESTANDARDTIME", "America/New_York": "EASTERNSTANDARDTIME",
    "America/Chicago": "CENTRALSTANDARDTIME", "America/Denver": "MOUNTAINSTANDARDTIME",
    "America/Los_Angeles": "PACIFICSTANDARDTIME", "America/Toronto": "EASTERNSTANDARDTIME",
    "Asia/Singapore": "SINGAPORESTANDARDTIME", "Asia/Tokyo": "TOKYOSTANDARDTIME", "UTC": "UTC", "Etc/UTC": "UTC",
}  # fmt: skip
VERSION = {"NZ": "NZ", "AU": "AU", "GB": "UK", "UK": "UK", "US": "US"}
PHONE_TYPES = ("DEFAULT", "DDI", "FAX", "MOBILE")
ADDRESS_TYPES = ("POBOX", "STREET")

DEFAULT_TAX_RATES = {
    "NZ": [("OUTPUT2", "15% GST on Income", "15"), ("INPUT2", "15% GST on Expenses", "15"), ("NONE", "No GST", "0"),
           ("ZERORATED", "Zero Rated", "0"), ("EXEMPTOUTPUT", "Exempt Sales", "0"), ("EXEMPTINPUT", "Exempt Expenses", "0")],
    "AU": [("OUTPUT", "GST on Income", "10"), ("INPUT", "GST on Expenses", "10"), ("EXEMPTOUTPUT", "GST Free Income", "0"),
           ("EXEMPTEXPENSES", "GST Free Expenses", "0"), ("BASEXCLUDED", "BAS Excluded", "0")],
    "GB": [("OUTPUT2", "20% (VAT on Income)", "20"), ("INPUT2", "20% (VAT on Expenses)", "20"), ("NONE", "No VAT", "0"),
           ("ZERORATEDOUTPUT", "Zero Rated Income", "0"), ("ZERORATEDINPUT", "Zero Rated Expenses", "0")],
    "US": [("OUTPUT", "Tax on Sales", "0"), ("INPUT", "Tax on Purchases", "0"), ("NONE", "Tax Exempt", "0")],
}  # fmt: skip
DEFAULT_ACCOUNTS = [
    ("090", "Business Bank Account", "BANK", "NONE", ""), ("200", "Sales", "REVENUE", "OUTPUT", ""),
    ("260", "Other Revenue", "REVENUE", "OUTPUT", ""), ("310", "Cost of Goods Sold", "DIRECTCOSTS", "INPUT", ""),
    ("400", "Advertising", "OVERHEADS", "INPUT", ""), ("429", "General Expenses", "OVERHEADS", "INPUT", ""),
    ("610", "Accounts Receivable", "CURRENT", "NONE", "DEBTORS"), ("800", "Accounts Payable", "CURRLIAB", "NONE", "CREDITORS"),
    ("820", "GST", "CURRLIAB", "NONE", "GST"), ("860", "Rounding", "CURRLIAB", "NONE", "ROUNDING"),
]  # fmt: skip


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def compute_lines(
    lines: list[dict], amount_types: str, rates: dict[str, Decimal], discounts: bool
) -> dict[str, Decimal]:
    """Fill LineAmount/TaxAmount on each line and return SubTotal/TotalTax/Total/TotalDiscount (Xero's arithmetic)."""
    sub = tax = disc_total = ZERO
    for ln in lines:
        qty = ln.get("Quantity")
        qty = Decimal("1") if qty in (None, "") else qty
        unit = ln.get("UnitAmount")
        if unit in (None, "") and ln.get("LineAmount") not in (None, ""):
            unit = ln["LineAmount"] / qty if qty else ln["LineAmount"]
        unit = ZERO if unit in (None, "") else unit
        gross = qty * unit
        discount = ZERO
        if discounts and ln.get("DiscountRate"):
            discount = gross * ln["DiscountRate"] / 100
        elif discounts and ln.get("DiscountAmount"):
            discount = ln["DiscountAmount"]
        if not discounts:
            ln.pop("DiscountRate", None)
            ln.pop("DiscountAmount", None)
        amount = money(gross - discount)
        rate = rates.get(ln.get("TaxType") or "", ZERO)
        if amount_types == "NoTax":
            line_tax = ZERO
        elif amount_types == "Inclusive":
            line_tax = money(amount * rate / (100 + rate))
        else:
            line_tax = money(amount * rate / 100)
        ln.update(Quantity=qty, UnitAmount=unit, LineAmount=amount, TaxAmount=line_tax)
        sub += amount - line_tax if amount_types == "Inclusive" else amount
        tax += line_tax
        disc_total += money(discount)
    return {
        "SubTotal": money(sub),
        "TotalTax": money(tax),
        "Total": money(sub + tax),
        "TotalDiscount": money(disc_total),
    }


class Books:
    """The records of one tenant. Callers hold the emulator lock around every mutation."""

    def __init__(
        self, tenant_id: str, org: dict, clock: Clock, emit: Callable[[str, str, str, dict], None]
    ) -> None:
        self.tenant_id = tenant_id
        self.org = org
        self.clock = clock
        self.emit = emit  # (category, CREATE|UPDATE, resource id, extra) -> None
        self.records: dict[str, dict[str, dict]] = {name: {} for name in ID_FIELD}
        self.payments_of: dict[str, list[str]] = defaultdict(list)  # invoice or credit note id -> payment ids
        self.credits_of: dict[str, list[tuple[str, str]]] = defaultdict(
            list
        )  # invoice id -> (credit note, allocation)
        self.docs_of: dict[str, set[tuple[str, str]]] = defaultdict(set)  # contact id -> (collection, id)
        self.next_number = {"ACCREC": 1, "ACCRECCREDIT": 1, "ACCPAYCREDIT": 1}

    # ---- small lookups --------------------------------------------------------------------------

    def today(self) -> date:
        return self.clock.now().date()

    def tax_rates(self) -> dict[str, Decimal]:
        return {t: r.get("EffectiveRate", ZERO) for t, r in self.records["TaxRates"].items()}

    def account_by_code(self, code: str) -> dict | None:
        return next(
            (
                a
                for a in self.records["Accounts"].values()
                if a.get("Code") == code and a.get("Status") != "DELETED"
            ),
            None,
        )

    def contact_by(self, field: str, value: str, active_only: bool = False) -> dict | None:
        want = value.strip().lower()
        for c in self.records["Contacts"].values():
            if active_only and c.get("ContactStatus", "ACTIVE") != "ACTIVE":
                continue
            if str(c.get(field) or "").strip().lower() == want:
                return c
        return None

    def invoice_by_number(self, number: str) -> dict | None:
        return next((i for i in self.records["Invoices"].values() if i.get("InvoiceNumber") == number), None)

    def allocate_number(self, kind: str) -> str:
        prefix = {"ACCREC": "INV-", "ACCRECCREDIT": "CN-", "ACCPAYCREDIT": "BCN-"}[kind]
        coll, field = (
            ("Invoices", "InvoiceNumber") if kind == "ACCREC" else ("CreditNotes", "CreditNoteNumber")
        )
        taken = {r.get(field) for r in self.records[coll].values()}
        while True:
            number = f"{prefix}{self.next_number[kind]:04d}"
            self.next_number[kind] += 1
            if number not in taken:
                return number

    def note_number(self, kind: str, number: str) -> None:
        """Keep the auto-number counter past numbers loaded or sent in the INV-0042 style."""
        prefix = {"ACCREC": "INV-", "ACCRECCREDIT": "CN-", "ACCPAYCREDIT": "BCN-"}.get(kind)
        if prefix and number and number.startswith(prefix) and number[len(prefix) :].isdigit():
            self.next_number[kind] = max(self.next_number[kind], int(number[len(prefix) :]) + 1)

    # ---- storing and deriving --------------------------------------------------------------------

    def store(self, collection: str, rec: dict, *, event: str | None = None, touch: bool = True) -> dict:
        """Insert or replace a record, keep the indexes, bump UpdatedDateUTC and queue its webhook event."""
        rid = rec[ID_FIELD[collection]]
        old = self.records[collection].get(rid)
        if touch:
            rec["UpdatedDateUTC"] = self.clock.now()
        self.records[collection][rid] = rec
        if collection in ("Invoices", "CreditNotes"):
            if old and old.get("Contact", {}).get("ContactID") != rec["Contact"]["ContactID"]:
                self.docs_of[old["Contact"]["ContactID"]].discard((collection, rid))
            self.docs_of[rec["Contact"]["ContactID"]].add((collection, rid))
        if event and collection in EVENT_CATEGORY:
            extra = (
                {"Type": rec.get("Type"), "Status": rec.get("Status")} if collection == "CreditNotes" else {}
            )
            self.emit(EVENT_CATEGORY[collection], event, rid, extra)
        return rec

    def link_payment(self, pay: dict) -> None:
        target = pay.get("Invoice", {}).get("InvoiceID") or pay.get("CreditNote", {}).get("CreditNoteID")
        if pay["PaymentID"] not in self.payments_of[target]:
            self.payments_of[target].append(pay["PaymentID"])

    def link_allocations(self, note: dict) -> None:
        for alloc in note.get("Allocations") or []:
            pair = (note["CreditNoteID"], alloc["AllocationID"])
            inv_id = alloc["Invoice"]["InvoiceID"]
            if pair not in self.credits_of[inv_id]:
                self.credits_of[inv_id].append(pair)

    def _settlements(self, doc_id: str) -> list[tuple[Decimal, date]]:
        out = []
        for pid in self.payments_of.get(doc_id, []):
            pay = self.records["Payments"].get(pid)
            if pay and pay.get("Status") == "AUTHORISED":
                out.append((pay["Amount"], pay["Date"]))
        return out

    def recompute_invoice(self, inv: dict) -> None:
        paid = self._settlements(inv["InvoiceID"])
        credited = []
        for note_id, alloc_id in self.credits_of.get(inv["InvoiceID"], []):
            note = self.records["CreditNotes"].get(note_id)
            alloc = next(
                (a for a in (note or {}).get("Allocations", []) if a["AllocationID"] == alloc_id), None
            )
            if alloc and not alloc.get("IsDeleted") and note.get("Status") in ("AUTHORISED", "PAID"):
                credited.append((alloc["Amount"], alloc["Date"]))
        amount_paid = sum((a for a, _ in paid), ZERO)
        amount_credited = sum((a for a, _ in credited), ZERO)
        inv["AmountPaid"], inv["AmountCredited"] = money(amount_paid), money(amount_credited)
        if inv["Status"] in ("VOIDED", "DELETED"):
            inv["AmountDue"] = ZERO
            inv.pop("FullyPaidOnDate", None)
            return
        inv["AmountDue"] = money(inv["Total"] - amount_paid - amount_credited)
        if inv["Status"] in ("AUTHORISED", "PAID"):
            if inv["AmountDue"] <= 0 and (paid or credited):
                inv["Status"] = "PAID"
                inv["FullyPaidOnDate"] = max(d for _, d in paid + credited)
            else:
                inv["Status"] = "AUTHORISED"
                inv.pop("FullyPaidOnDate", None)

    def recompute_credit_note(self, note: dict) -> None:
        allocated = sum((a["Amount"] for a in note.get("Allocations") or [] if not a.get("IsDeleted")), ZERO)
        refunds = self._settlements(note["CreditNoteID"])
        applied = allocated + sum((a for a, _ in refunds), ZERO)
        note["AppliedAmount"] = money(applied)
        if note["Status"] in ("VOIDED", "DELETED"):
            note["RemainingCredit"] = ZERO
            return
        note["RemainingCredit"] = money(note["Total"] - applied)
        if note["Status"] in ("AUTHORISED", "PAID"):
            dates = [a["Date"] for a in note.get("Allocations") or []] + [d for _, d in refunds]
            if note["RemainingCredit"] <= 0 and dates:
                note["Status"], note["FullyPaidOnDate"] = "PAID", max(dates)
            else:
                note["Status"] = "AUTHORISED"
                note.pop("FullyPaidOnDate", None)

    # ---- views (typed; the emulator turns them into JSON) -----------------------------------------

    def contact_summary(self, contact_id: str, full: bool = False) -> dict:
        c = self.records["Contacts"].get(contact_id)
        if c is None:
            return {"ContactID": contact_id}
        if full:
            return self.view_contact(c)
        keys = (
            "ContactID",
            "ContactNumber",
            "AccountNumber",
            "ContactStatus",
            "Name",
            "FirstName",
            "LastName",
            "EmailAddress",
        )
        out = {k: c[k] for k in keys if c.get(k) not in (None, "")}
        out["HasValidationErrors"] = False
        return out

    def balances(self, contact_id: str) -> tuple[dict, bool, bool]:
        today = self.today()
        ar = {"Outstanding": ZERO, "Overdue": ZERO}
        ap = {"Outstanding": ZERO, "Overdue": ZERO}
        customer = supplier = False
        for coll, rid in self.docs_of.get(contact_id, ()):
            doc = self.records[coll][rid]
            receivable = doc["Type"] in ("ACCREC", "ACCRECCREDIT")
            if doc["Status"] != "DELETED":
                customer |= receivable
                supplier |= not receivable
            if doc["Status"] != "AUTHORISED":
                continue
            side = ar if receivable else ap
            if coll == "Invoices":
                side["Outstanding"] += doc["AmountDue"]
                if doc.get("DueDate") and doc["DueDate"] < today:
                    side["Overdue"] += doc["AmountDue"]
            else:
                side["Outstanding"] -= doc["RemainingCredit"]
        return {"AccountsReceivable": ar, "AccountsPayable": ap}, customer, supplier

    def view_contact(self, c: dict, summary_only: bool = False) -> dict:
        out = copy.copy(c)
        balances, customer, supplier = self.balances(c["ContactID"])
        out["IsCustomer"], out["IsSupplier"] = customer, supplier
        if summary_only:
            for key in ("Addresses", "Phones", "ContactPersons", "ContactGroups", "PaymentTerms"):
                out.pop(key, None)
            return out
        out["Balances"] = balances
        phones = {p.get("PhoneType"): p for p in c.get("Phones") or []}
        out["Phones"] = [phones.get(t) or {"PhoneType": t} for t in PHONE_TYPES] + [
            p for t, p in phones.items() if t not in PHONE_TYPES
        ]
        addrs = {a.get("AddressType"): a for a in c.get("Addresses") or []}
        out["Addresses"] = [addrs.get(t) or {"AddressType": t} for t in ADDRESS_TYPES]
        out.setdefault("ContactPersons", [])
        out.setdefault("ContactGroups", [])
        out["HasAttachments"], out["HasValidationErrors"] = False, False
        return out

    def _payment_refs(self, doc_id: str) -> list[dict]:
        out = []
        for pid in self.payments_of.get(doc_id, []):
            p = self.records["Payments"].get(pid)
            if p and p.get("Status") == "AUTHORISED":
                out.append({"PaymentID": pid, "Date": p["Date"], "Amount": p["Amount"], "Reference": p.get("Reference", ""),
                            "CurrencyRate": p.get("CurrencyRate", Decimal("1")), "HasAccount": True,
                            "HasValidationErrors": False})  # fmt: skip
        return out

    def view_invoice(self, inv: dict, detail: bool = True, summary_only: bool = False) -> dict:
        out = copy.copy(inv)
        out["Contact"] = self.contact_summary(inv["Contact"]["ContactID"], full=detail and not summary_only)
        out["DateString"] = iso_no_zone(inv["Date"]) if inv.get("Date") else None
        out["DueDateString"] = iso_no_zone(inv["DueDate"]) if inv.get("DueDate") else None
        out["UpdatedDateUTCString"] = inv["UpdatedDateUTC"].strftime("%Y-%m-%dT%H:%M:%SZ")
        out["IsDiscounted"] = bool(inv.get("TotalDiscount"))
        out["HasAttachments"], out["HasErrors"] = False, False
        if summary_only or not detail:
            out.pop("LineItems", None)
        if summary_only:
            return out
        out["Payments"] = self._payment_refs(inv["InvoiceID"])
        notes = []
        for note_id, alloc_id in self.credits_of.get(inv["InvoiceID"], []):
            note = self.records["CreditNotes"][note_id]
            alloc = next(a for a in note["Allocations"] if a["AllocationID"] == alloc_id)
            notes.append({"CreditNoteID": note_id, "CreditNoteNumber": note.get("CreditNoteNumber"), "ID": note_id,
                          "AppliedAmount": alloc["Amount"], "Date": alloc["Date"], "Total": note["Total"],
                          "HasErrors": False})  # fmt: skip
        out["CreditNotes"] = notes
        out.setdefault("Prepayments", [])
        out.setdefault("Overpayments", [])
        return out

    def view_credit_note(self, note: dict, detail: bool = True) -> dict:
        out = copy.copy(note)
        out["Contact"] = self.contact_summary(note["Contact"]["ContactID"], full=detail)
        out["DateString"] = iso_no_zone(note["Date"]) if note.get("Date") else None
        out["UpdatedDateUTCString"] = note["UpdatedDateUTC"].strftime("%Y-%m-%dT%H:%M:%SZ")
        allocations = []
        for a in note.get("Allocations") or []:
            inv = self.records["Invoices"].get(a["Invoice"]["InvoiceID"], {})
            allocations.append({**a, "Invoice": {"InvoiceID": a["Invoice"]["InvoiceID"], "InvoiceNumber": inv.get("InvoiceNumber"),
                                                  "Type": inv.get("Type")}})  # fmt: skip
        out["Allocations"] = allocations
        out["Payments"] = self._payment_refs(note["CreditNoteID"])
        out["HasAttachments"], out["HasErrors"] = False, False
        if not detail:
            out.pop("LineItems", None)
        return out

    def view_payment(self, pay: dict) -> dict:
        out = copy.copy(pay)
        if "Invoice" in pay:
            inv = self.records["Invoices"].get(pay["Invoice"]["InvoiceID"], {})
            out["Invoice"] = {k: inv.get(k) for k in ("InvoiceID", "InvoiceNumber", "Type", "CurrencyCode")}
            out["Invoice"]["IsDiscounted"] = bool(inv.get("TotalDiscount"))
            out["Invoice"]["Contact"] = self.contact_summary(inv.get("Contact", {}).get("ContactID", ""))
        if "CreditNote" in pay:
            note = self.records["CreditNotes"].get(pay["CreditNote"]["CreditNoteID"], {})
            out["CreditNote"] = {
                k: note.get(k) for k in ("CreditNoteID", "CreditNoteNumber", "Type", "CurrencyCode")
            }
            out["CreditNote"]["Contact"] = self.contact_summary(note.get("Contact", {}).get("ContactID", ""))
        acct = self.records["Accounts"].get(pay["Account"]["AccountID"], {})
        out["Account"] = {"AccountID": pay["Account"]["AccountID"], "Code": acct.get("Code")}
        out["UpdatedDateUTCString"] = pay["UpdatedDateUTC"].strftime("%Y-%m-%dT%H:%M:%SZ")
        out["HasAccount"], out["HasValidationErrors"] = True, False
        return out

    def view(self, collection: str, rec: dict, *, detail: bool = True, summary_only: bool = False) -> dict:
        if collection == "Contacts":
            return self.view_contact(rec, summary_only)
        if collection == "Invoices":
            return self.view_invoice(rec, detail, summary_only)
        if collection == "CreditNotes":
            return self.view_credit_note(rec, detail)
        if collection == "Payments":
            return self.view_payment(rec)
        if collection == "Accounts":
            return {**rec, "Class": ACCOUNT_CLASS.get(rec.get("Type", ""), "ASSET"), "HasAttachments": False}
        return copy.copy(rec)

    def view_org(self) -> dict:
        return dict(self.org)


def new_id() -> str:
    return str(uuid.uuid4())


def default_org(tenant_id: str, name: str, base_currency: str, country_code: str, created: datetime) -> dict:
    return {
        "OrganisationID": tenant_id, "Name": name, "LegalName": name, "PaysTax": True,
        "Version": VERSION.get(country_code, "GLOBAL"), "OrganisationType": "COMPANY", "BaseCurrency": base_currency,
        "CountryCode": country_code, "IsDemoCompany": False, "OrganisationStatus": "ACTIVE", "FinancialYearEndDay": 31,
        "FinancialYearEndMonth": 3, "SalesTaxBasis": "ACCRUALS", "SalesTaxPeriod": "TWOMONTHS", "CreatedDateUTC": created,
        "Timezone": "NEWZEALANDSTANDARDTIME", "OrganisationEntityType": "COMPANY",
        "ShortCode": "!" + tenant_id.replace("-", "")[:5], "Class": "PREMIUM", "Edition": "BUSINESS",
        "Addresses": [], "Phones": [], "ExternalLinks": [], "PaymentTerms": {},
    }  # fmt: skip


def add_currency(b: Books, code: str) -> None:
    """An organisation bills only in currencies it has added (GET /Currencies lists them)."""
    if code and code not in b.records["Currencies"]:
        b.records["Currencies"][code] = {"Code": code, "Description": CURRENCY_NAMES.get(code, code)}
