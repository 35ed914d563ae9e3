"""Writes to a QBO company: create, full and sparse update with SyncToken, delete, void, and batch.

Facts (notes A.4): an update carries `Id` and the current `SyncToken`; an older one fails with Fault
5010 "Stale Object Error" (HTTP 400). `"sparse": true` changes only the fields sent; a full update
clears the writable fields it omits. Deletes are `POST /{entity}?operation=delete` with Id and
SyncToken and answer `{"<Entity>": {"status": "Deleted", "Id": ...}}`. A batch holds at most 30
`BatchItemRequest`s, each with a `bId` and an `operation` (create|update|delete) or a `Query`; each
is answered on its own, a failing one with its `Fault`, the others still applied.

The emulator derives what QBO derives: line amounts must equal UnitPrice x Qty (else 6070), TotalAmt
is the lines plus tax, Balance follows the payments, DocNumber is auto-numbered when omitted, and
DisplayName is unique among active customers and vendors (6240). Names and transactions refer to
records that exist (else 2500 Invalid Reference Id).
"""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal
from typing import Any

from xz_pipeline.sandbox.quickbooks.company import BY_LOWER, ZERO, Company
from xz_pipeline.sandbox.quickbooks.wire import (
    QboFault,
    WireError,
    duplicate_name,
    invalid,
    money,
    not_found,
    parse_date,
    required,
    stale_object,
)

WRITABLE = (
    "Customer",
    "Vendor",
    "Item",
    "Account",
    "Invoice",
    "Estimate",
    "Payment",
    "CreditMemo",
    "Bill",
    "Term",
)
DELETABLE = ("Invoice", "Estimate", "Payment", "CreditMemo", "Bill", "BillPayment", "VendorCredit")
ESTIMATE_STATES = ("Pending", "Accepted", "Closed", "Rejected")
VOIDABLE = ("Invoice", "Payment", "BillPayment")
READ_ONLY = ("Id", "SyncToken", "MetaData", "domain", "sparse", "status", "Balance", "HomeBalance", "RemainingCredit",
             "TotalAmt", "HomeTotalAmt", "BalanceWithJobs", "FullyQualifiedName", "UnappliedAmt")  # fmt: skip
CENT = Decimal("0.01")
MAX_BATCH = 30


def read_only(entity: str) -> tuple[str, ...]:
    """Fields a write cannot set: the server's own, and amounts it derives (a payment's TotalAmt is input)."""
    return tuple(f for f in READ_ONLY if not (f == "TotalAmt" and entity in ("Payment", "BillPayment")))


def invalid_reference(element: str, rid: str) -> QboFault:
    return QboFault("2500", "Invalid Reference Id", f"Invalid Reference Id : {element} assigned is not valid. Id={rid}",
                    element=element)  # fmt: skip


def business(detail: str) -> QboFault:
    return QboFault("6000", "A business validation error has occurred while processing your request",
                    f"Business Validation Error: {detail}")  # fmt: skip


def _dec(value: Any, element: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (ArithmeticError, ValueError) as exc:
        raise invalid(element, f"{element} is not a number: {value!r}") from exc


class Writer:
    """Applies writes to one company (the caller holds the emulator lock)."""

    def __init__(self, company: Company) -> None:
        self.c = company

    # ---- entry points -------------------------------------------------------------------------

    def write(self, entity: str, data: Any, operation: str = "") -> dict:
        """Create, update, delete or void one record; returns the stored record (or a deleted stub)."""
        if not isinstance(data, dict):
            raise QboFault("2310", "Invalid Request", "The request body must be a JSON object.")
        op = (operation or "").lower()
        if op == "delete":
            return self.delete(entity, data)
        if op == "void":
            return self.void(entity, data)
        if op not in ("", "update", "create"):
            raise QboFault("500", "Unsupported Operation", f"Operation {operation} is not supported.")
        if entity not in WRITABLE:
            raise QboFault(
                "500", "Unsupported Operation", f"Operation Create/Update is not supported for {entity}."
            )
        if data.get("Id") not in (None, ""):
            return self.update(entity, data)
        return self.create(entity, data)

    def create(self, entity: str, data: dict) -> dict:
        rec = {k: copy.deepcopy(v) for k, v in data.items() if k not in read_only(entity)}
        rec["Id"] = self.c.next_id(entity)
        self._complete(entity, rec, None)
        saved = self.c.save(entity, rec, "Create")
        self._after(entity)
        return saved

    def _current(self, entity: str, data: dict) -> dict:
        rid = str(data.get("Id"))
        current = self.c.get(entity, rid)
        if current is None:
            raise not_found(entity, rid)
        token = data.get("SyncToken")
        if token in (None, ""):
            raise required("SyncToken", f"SyncToken is required to update or delete {entity} Id={rid}")
        if str(token) != current["SyncToken"]:
            raise stale_object(entity, rid, str(token))
        return current

    def update(self, entity: str, data: dict) -> dict:
        current = self._current(entity, data)
        fixed = read_only(entity)
        changes = {k: copy.deepcopy(v) for k, v in data.items() if k not in fixed}
        if data.get("sparse") is True or str(data.get("sparse")).lower() == "true":
            rec = {**copy.deepcopy(current), **changes}
        else:  # a full update: what is not sent is cleared (read-only and derived fields stay)
            rec = {k: copy.deepcopy(v) for k, v in current.items() if k in fixed or k.startswith("_")}
            rec.update(changes)
        self._complete(entity, rec, current)
        saved = self.c.save(entity, rec, "Update")
        self._after(entity)
        return saved

    def delete(self, entity: str, data: dict) -> dict:
        if entity not in DELETABLE:
            if entity in ("Customer", "Vendor", "Item", "Account"):
                raise QboFault("500", "Unsupported Operation",
                               f"Operation Delete is not supported for {entity}: make it inactive (Active false).")  # fmt: skip
            raise QboFault("500", "Unsupported Operation", f"Operation Delete is not supported for {entity}.")
        current = self._current(entity, data)
        if entity in ("Invoice", "CreditMemo"):  # payments that applied it now apply nothing to it
            self._unlink(entity, current["Id"])
        self.c.remove(entity, current["Id"])
        self._after(entity)
        return {"status": "Deleted", "domain": "QBO", "Id": current["Id"]}

    def void(self, entity: str, data: dict) -> dict:
        if entity not in VOIDABLE:
            raise QboFault("500", "Unsupported Operation", f"Operation Void is not supported for {entity}.")
        current = self._current(entity, data)
        rec = copy.deepcopy(current)
        rec["_voided"] = True
        rec["PrivateNote"] = "Voided"
        for ln in rec.get("Line") or []:
            ln["Amount"] = ZERO
        rec["TotalAmt"] = ZERO
        if "TxnTaxDetail" in rec:
            rec["TxnTaxDetail"] = {**rec["TxnTaxDetail"], "TotalTax": ZERO, "TaxLine": []}
        if entity == "Payment":
            rec["UnappliedAmt"] = ZERO
        if entity == "Invoice":
            rec["Balance"] = ZERO
        saved = self.c.save(entity, rec, "Void")
        self._after(entity)
        return saved

    def _after(self, entity: str) -> None:
        if entity in ("Payment", "Invoice", "CreditMemo"):
            self.c.rebalance(touch=True)

    def _unlink(self, entity: str, rid: str) -> None:
        for pay in list(self.c.records["Payment"].values()):
            lines = [ln for ln in pay.get("Line") or []
                     if not any(x.get("TxnId") == rid and x.get("TxnType") == entity for x in ln.get("LinkedTxn") or [])]  # fmt: skip
            if len(lines) != len(pay.get("Line") or []):
                pay["Line"] = lines
                self._payment_amounts(pay)
                self.c.save("Payment", pay, "Update")

    # ---- per entity ---------------------------------------------------------------------------

    def _complete(self, entity: str, rec: dict, current: dict | None) -> None:
        getattr(self, f"_complete_{entity.lower()}", lambda r, cur: None)(rec, current)
        rec.pop("sparse", None)

    def _name_checks(self, entity: str, rec: dict, current: dict | None) -> None:
        if not rec.get("DisplayName"):
            parts = [
                rec.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix") if rec.get(k)
            ]
            name = " ".join(parts) or rec.get("CompanyName") or ""
            if not name:
                raise required("DisplayName", "Either DisplayName or one of Title, GivenName, MiddleName, "
                               "FamilyName, Suffix is required.")  # fmt: skip
            rec["DisplayName"] = name
        rec.setdefault("Active", True)
        wanted = rec["DisplayName"].strip().lower()
        for other_entity in ("Customer", "Vendor"):
            for other in self.c.records[other_entity].values():
                if other["Id"] == rec["Id"] and other_entity == entity:
                    continue
                if other.get("Active", True) and other.get("DisplayName", "").strip().lower() == wanted:
                    raise duplicate_name(rec["DisplayName"], other["Id"])
        home = self.c.records["Preferences"]["1"]["CurrencyPrefs"]["HomeCurrency"]["value"]
        if not rec.get("CurrencyRef"):
            rec["CurrencyRef"] = (current or {}).get("CurrencyRef") or {"value": home}
        elif current is not None and rec["CurrencyRef"].get("value") != current["CurrencyRef"].get("value"):
            raise business("You can't change the currency of a customer or vendor that has transactions.")
        if not self._multicurrency() and rec["CurrencyRef"].get("value") != home:
            raise business("Multicurrency is off: every name uses the home currency.")
        email = rec.get("PrimaryEmailAddr") or {}
        if email and "@" not in str(email.get("Address", "@")):
            raise invalid("PrimaryEmailAddr", f"Invalid email address: {email.get('Address')}")

    def _complete_customer(self, rec: dict, current: dict | None) -> None:
        self._name_checks("Customer", rec, current)
        rec.setdefault("Job", False)
        rec.setdefault("BillWithParent", False)
        rec.setdefault("Taxable", False)
        rec["FullyQualifiedName"] = rec["DisplayName"]
        rec.setdefault("PrintOnCheckName", rec["DisplayName"])

    def _complete_vendor(self, rec: dict, current: dict | None) -> None:
        self._name_checks("Vendor", rec, current)
        rec.setdefault("Vendor1099", False)
        rec.setdefault("PrintOnCheckName", rec["DisplayName"])

    def _complete_item(self, rec: dict, current: dict | None) -> None:
        if not rec.get("Name"):
            raise required("Name", "Item Name is required.")
        rec.setdefault("Type", "Service")
        rec.setdefault("Active", True)
        if rec["Type"] in ("Service", "NonInventory", "Inventory") and not rec.get("IncomeAccountRef"):
            raise required("IncomeAccountRef", "An item needs an income account (IncomeAccountRef).")
        if (
            rec.get("IncomeAccountRef")
            and self.c.get("Account", rec["IncomeAccountRef"].get("value")) is None
        ):
            raise invalid_reference("IncomeAccountRef", str(rec["IncomeAccountRef"].get("value")))
        for other in self.c.records["Item"].values():
            if other["Id"] != rec["Id"] and other.get("Name", "").lower() == rec["Name"].lower():
                raise QboFault("6240", "Duplicate Name Exists Error",
                               f"The name supplied already exists. : Another product or service is already using this name. Id={other['Id']}")  # fmt: skip
        rec["FullyQualifiedName"] = rec["Name"]
        if "UnitPrice" in rec:
            rec["UnitPrice"] = _dec(rec["UnitPrice"], "UnitPrice")

    def _complete_account(self, rec: dict, current: dict | None) -> None:
        if not rec.get("Name") or not rec.get("AccountType"):
            raise required("Name", "Account Name and AccountType are required.")
        rec.setdefault("Active", True)
        rec["FullyQualifiedName"] = rec["Name"]

    def _complete_term(self, rec: dict, current: dict | None) -> None:
        if not rec.get("Name"):
            raise required("Name", "Term Name is required.")
        rec.setdefault("Active", True)

    def _multicurrency(self) -> bool:
        return bool(self.c.records["Preferences"]["1"]["CurrencyPrefs"]["MultiCurrencyEnabled"])

    def _name_ref(self, rec: dict, element: str, entity: str) -> dict:
        ref = rec.get(element)
        if not isinstance(ref, dict) or not ref.get("value"):
            raise required(element, f"{element} is required.")
        target = self.c.get(entity, str(ref["value"]))
        if target is None:
            raise invalid_reference(element, str(ref["value"]))
        rec[element] = {"value": target["Id"], "name": target["DisplayName"]}
        return target

    def _dates(self, rec: dict, with_due: bool) -> None:
        today = self.c.clock.now().astimezone(self.c.zone).date()
        try:
            rec["TxnDate"] = parse_date(rec["TxnDate"]) if rec.get("TxnDate") else today
            if with_due:
                if rec.get("DueDate"):
                    rec["DueDate"] = parse_date(rec["DueDate"])
                else:
                    term = self.c.get("Term", str((rec.get("SalesTermRef") or {}).get("value", "")))
                    rec["DueDate"] = rec["TxnDate"] + timedelta(days=int((term or {}).get("DueDays", 0)))
        except WireError as exc:
            raise invalid("TxnDate", str(exc)) from exc

    def _currency(self, rec: dict, name: dict) -> None:
        code = (rec.get("CurrencyRef") or {}).get("value") or name["CurrencyRef"]["value"]
        if code != name["CurrencyRef"]["value"]:
            raise business(f"The transaction currency ({code}) must be the currency of {name['DisplayName']} "
                           f"({name['CurrencyRef']['value']}).")  # fmt: skip
        rec["CurrencyRef"] = dict(name["CurrencyRef"])
        if self._multicurrency():
            rec["ExchangeRate"] = _dec(rec.get("ExchangeRate", 1), "ExchangeRate")

    def _tax_rate(self, code_id: str) -> Decimal:
        code = self.c.get("TaxCode", code_id)
        if code is None:
            return ZERO
        total = ZERO
        for detail in code.get("SalesTaxRateList", {}).get("TaxRateDetail", []):
            rate = self.c.get("TaxRate", str(detail["TaxRateRef"]["value"]))
            total += (rate or {}).get("RateValue", ZERO)
        return total

    def _sales_lines(self, rec: dict) -> None:
        """Validate lines, derive the subtotal line, the tax and TotalAmt. Amount and UnitPrice are without
        tax; on a TaxInclusive document (outside the US) each taxable line's TaxInclusiveAmt is what it was
        priced at (derived from Amount when not sent), the tax is what the prices include and TotalAmt their
        sum."""
        lines = rec.get("Line")
        if not isinstance(lines, list) or not lines:
            raise required("Line", "At least one line is required.")
        us = self.c.records["CompanyInfo"]["1"]["Country"] == "US"
        txn_code = str(((rec.get("TxnTaxDetail") or {}).get("TxnTaxCodeRef") or {}).get("value", ""))
        inclusive = not us and rec.get("GlobalTaxCalculation") == "TaxInclusive"
        out, taxable, gross, n = [], {}, {}, 0
        for ln in lines:
            kind = ln.get("DetailType")
            if kind in ("SubTotalLineDetail", "TaxLineDetail"):
                continue
            if kind not in ("SalesItemLineDetail", "DescriptionOnly", "DiscountLineDetail"):
                raise invalid("Line.DetailType", f"Unsupported line DetailType {kind!r}.")
            ln = copy.deepcopy(ln)
            if kind == "SalesItemLineDetail":
                detail = ln.setdefault("SalesItemLineDetail", {})
                item_ref = detail.get("ItemRef") or {"value": self._default_item()}
                item = self.c.get("Item", str(item_ref.get("value")))
                if item is None:
                    raise invalid_reference("ItemRef", str(item_ref.get("value")))
                detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
                if "Amount" not in ln:
                    raise required("Line.Amount", "Each line needs an Amount.")
                amount = money(ln["Amount"])
                qty = _dec(detail.get("Qty", 1), "Qty")
                price = _dec(detail["UnitPrice"], "UnitPrice") if "UnitPrice" in detail else None
                if (
                    price is not None
                    and not detail.get("DiscountRate")
                    and (price * qty).quantize(CENT) != amount
                ):
                    raise QboFault("6070", "Amount calculation incorrect",
                                       f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}")  # fmt: skip
                detail["Qty"], ln["Amount"] = qty, amount
                if price is not None:
                    detail["UnitPrice"] = price
                code = str((detail.get("TaxCodeRef") or {}).get("value", "NON" if us else ""))
                detail.setdefault("TaxCodeRef", {"value": code} if code else {"value": "NON"})
                rate = ZERO
                if us and code == "TAX":
                    rate = self._tax_rate(txn_code) if txn_code else ZERO
                elif not us and code:
                    rate = self._tax_rate(code)
                if rate:
                    net, _ = taxable.get(code if not us else txn_code, (ZERO, ZERO))
                    taxable[code if not us else txn_code] = (net + amount, rate)
                if inclusive:
                    priced = detail.get("TaxInclusiveAmt")
                    priced = (
                        money(priced) if priced is not None else amount + (amount * rate / 100).quantize(CENT)
                    )
                    detail["TaxInclusiveAmt"] = priced
                    if rate:
                        gross[code] = gross.get(code, ZERO) + priced
            n += 1
            ln["Id"], ln["LineNum"] = str(n), n
            ln["Amount"] = money(ln.get("Amount", 0))
            out.append(ln)
        sub = sum((ln["Amount"] for ln in out if ln["DetailType"] == "SalesItemLineDetail"), ZERO)
        out.append({"Amount": sub, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        given = (rec.get("TxnTaxDetail") or {}).get("TotalTax")
        tax_lines, computed = [], ZERO
        for code, (net, rate) in taxable.items():
            tax = gross[code] - net if inclusive else (net * rate / 100).quantize(CENT)
            computed += tax
            tax_lines.append({"Amount": tax, "DetailType": "TaxLineDetail",
                              "TaxLineDetail": {"PercentBased": True, "TaxPercent": rate, "NetAmountTaxable": net}})  # fmt: skip
        total_tax = money(given) if given is not None else computed
        detail: dict[str, Any] = {"TotalTax": total_tax, "TaxLine": tax_lines}
        if txn_code:
            detail["TxnTaxCodeRef"] = {"value": txn_code}
        rec["Line"], rec["TxnTaxDetail"] = out, detail
        rec["TotalAmt"] = sub + total_tax

    def _default_item(self) -> str:
        for item in self.c.records["Item"].values():
            if item.get("Name") == "Services":
                return item["Id"]
        return "1"

    def _doc_number(self, entity: str, rec: dict) -> None:
        if rec.get("DocNumber"):
            if len(str(rec["DocNumber"])) > 21:
                raise invalid("DocNumber", "DocNumber is longer than 21 characters.")
            return
        numbers = [
            int(r["DocNumber"])
            for r in self.c.records[entity].values()
            if str(r.get("DocNumber", "")).isdigit()
        ]
        rec["DocNumber"] = str(max(numbers, default=1000) + 1)

    def _complete_invoice(self, rec: dict, current: dict | None) -> None:
        cust = self._name_ref(rec, "CustomerRef", "Customer")
        self._dates(rec, with_due=True)
        self._currency(rec, cust)
        self._sales_lines(rec)
        self._doc_number("Invoice", rec)
        rec["LinkedTxn"] = [x for x in rec.get("LinkedTxn") or [] if x.get("TxnType") != "Payment"]
        rec.setdefault("PrintStatus", "NotSet")
        rec.setdefault("EmailStatus", "NotSet")
        rec.setdefault("GlobalTaxCalculation", "TaxExcluded")
        if self._multicurrency():
            rec["HomeTotalAmt"] = (rec["TotalAmt"] * rec.get("ExchangeRate", Decimal(1))).quantize(CENT)
        self.c.derive_invoice(rec)  # Balance and payment links now, so one update is one SyncToken
        for field in rec.get("CustomField") or []:
            if len(str(field.get("StringValue", ""))) > 31:
                raise invalid("CustomField", "A custom field's value is at most 31 characters.")
        if current is not None:
            paid = self.c.applied()[0].get(rec["Id"], ZERO)
            if paid > rec["TotalAmt"]:
                raise business("The invoice total is less than the payments applied to it.")

    def _complete_estimate(self, rec: dict, current: dict | None) -> None:
        """An estimate: a sales form that posts nothing (no Balance, no payments); Pending until a person
        accepts, closes (converts to an invoice) or rejects it."""
        cust = self._name_ref(rec, "CustomerRef", "Customer")
        self._dates(rec, with_due=False)
        if rec.get("ExpirationDate"):
            try:
                rec["ExpirationDate"] = parse_date(rec["ExpirationDate"])
            except WireError as exc:
                raise invalid("ExpirationDate", str(exc)) from exc
        self._currency(rec, cust)
        self._sales_lines(rec)
        self._doc_number("Estimate", rec)
        rec.setdefault("TxnStatus", "Pending")
        if rec["TxnStatus"] not in ESTIMATE_STATES:
            raise invalid("TxnStatus", f"An estimate's TxnStatus is one of {', '.join(ESTIMATE_STATES)}.")
        rec.setdefault("PrintStatus", "NotSet")
        rec.setdefault("EmailStatus", "NotSet")
        rec.setdefault("GlobalTaxCalculation", "TaxExcluded")
        if self._multicurrency():
            rec["HomeTotalAmt"] = (rec["TotalAmt"] * rec.get("ExchangeRate", Decimal(1))).quantize(CENT)

    def _complete_creditmemo(self, rec: dict, current: dict | None) -> None:
        cust = self._name_ref(rec, "CustomerRef", "Customer")
        self._dates(rec, with_due=False)
        self._currency(rec, cust)
        self._sales_lines(rec)
        self._doc_number("CreditMemo", rec)
        rec["RemainingCredit"] = rec["Balance"] = rec["TotalAmt"]

    def _complete_bill(self, rec: dict, current: dict | None) -> None:
        vendor = self._name_ref(rec, "VendorRef", "Vendor")
        self._dates(rec, with_due=True)
        self._currency(rec, vendor)
        lines = rec.get("Line")
        if not isinstance(lines, list) or not lines:
            raise required("Line", "At least one line is required.")
        for n, ln in enumerate(lines, start=1):
            if ln.get("DetailType") != "AccountBasedExpenseLineDetail":
                raise invalid("Line.DetailType", "Bill lines here are AccountBasedExpenseLineDetail.")
            acct = (ln.get("AccountBasedExpenseLineDetail") or {}).get("AccountRef") or {}
            if self.c.get("Account", str(acct.get("value"))) is None:
                raise invalid_reference("AccountRef", str(acct.get("value")))
            ln["Id"], ln["LineNum"], ln["Amount"] = str(n), n, money(ln.get("Amount", 0))
        tax = money((rec.get("TxnTaxDetail") or {}).get("TotalTax", 0))
        rec["TxnTaxDetail"] = {"TotalTax": tax}
        rec["TotalAmt"] = sum((ln["Amount"] for ln in lines), ZERO) + tax
        paid = sum((Decimal(str(ln["Amount"])) for p in self.c.records["BillPayment"].values() for ln in p["Line"]
                    if any(x["TxnId"] == rec["Id"] for x in ln.get("LinkedTxn", []))), ZERO)  # fmt: skip
        rec["Balance"] = max(ZERO, rec["TotalAmt"] - paid)

    def _payment_amounts(self, rec: dict) -> None:
        applied = ZERO
        for ln in rec.get("Line") or []:
            for link in ln.get("LinkedTxn") or []:
                applied += Decimal(str(ln["Amount"])) * (1 if link.get("TxnType") == "Invoice" else -1)
        rec["UnappliedAmt"] = max(ZERO, rec["TotalAmt"] - applied)

    def _complete_payment(self, rec: dict, current: dict | None) -> None:
        cust = self._name_ref(rec, "CustomerRef", "Customer")
        self._dates(rec, with_due=False)
        self._currency(rec, cust)
        if "TotalAmt" not in (current or {}) and "TotalAmt" not in rec:
            raise required("TotalAmt", "A payment needs TotalAmt.")
        rec["TotalAmt"] = money(rec.get("TotalAmt", (current or {}).get("TotalAmt", 0)))
        to_invoice, to_credit = self.c.applied()
        if current is not None:  # this payment's own old lines no longer count against the balances
            for ln in current.get("Line") or []:
                for link in ln.get("LinkedTxn") or []:
                    target = to_invoice if link.get("TxnType") == "Invoice" else to_credit
                    target[link["TxnId"]] = target.get(link["TxnId"], ZERO) - Decimal(str(ln["Amount"]))
        lines, applied = [], ZERO
        for ln in rec.get("Line") or []:
            amount = money(ln.get("Amount", 0))
            links = ln.get("LinkedTxn") or []
            if len(links) != 1:
                raise invalid("Line.LinkedTxn", "Each payment line links exactly one invoice or credit memo.")
            link = links[0]
            kind, rid = link.get("TxnType"), str(link.get("TxnId"))
            if kind not in ("Invoice", "CreditMemo"):
                raise invalid(
                    "Line.LinkedTxn.TxnType", f"A payment links invoices and credit memos, not {kind}."
                )
            target = self.c.get(kind, rid)
            if target is None:
                raise invalid_reference("LinkedTxn", rid)
            if target["CustomerRef"]["value"] != cust["Id"]:
                raise business(f"{kind} {rid} belongs to another customer.")
            open_amount = target["TotalAmt"] - (to_invoice if kind == "Invoice" else to_credit).get(rid, ZERO)
            if amount > open_amount:
                raise business(
                    f"The payment applies {amount} to {kind} {rid}, whose open balance is {open_amount}."
                )
            lines.append({"Amount": amount, "LinkedTxn": [{"TxnId": rid, "TxnType": kind}]})
            applied += amount if kind == "Invoice" else -amount
        if applied > rec["TotalAmt"]:
            raise business("The amounts applied exceed the payment's TotalAmt.")
        rec["Line"] = lines
        rec.setdefault("ProcessPayment", False)
        self._payment_amounts(rec)


def batch(company: Company, items: Any, run_query) -> list[dict]:
    """Answer a BatchItemRequest list: each item on its own (`run_query(text)` answers a Query item)."""
    if not isinstance(items, list):
        raise QboFault("2310", "Invalid Request", "BatchItemRequest must be a list.")
    if len(items) > MAX_BATCH:
        raise QboFault("2310", "Invalid Request",
                       f"The number of batch items ({len(items)}) exceeds the maximum of {MAX_BATCH}.")  # fmt: skip
    seen, out = set(), []
    writer = Writer(company)
    for item in items:
        bid = str((item or {}).get("bId", ""))
        if not bid or bid in seen:
            raise QboFault("2310", "Invalid Request", "Every BatchItemRequest needs a unique bId.")
        seen.add(bid)
        try:
            if "Query" in item:
                out.append({"bId": bid, "QueryResponse": run_query(item["Query"])})
                continue
            names = [k for k in item if k.lower() in BY_LOWER]
            if len(names) != 1:
                raise QboFault("2310", "Invalid Request", "A batch item carries one entity or one Query.")
            entity = BY_LOWER[names[0].lower()]
            op = str(item.get("operation", "create")).lower()
            data = item[names[0]]
            if op == "update" and not (isinstance(data, dict) and data.get("Id")):
                raise required("Id", "An update needs the Id.")
            if op == "create" and isinstance(data, dict) and data.get("Id"):
                raise invalid("Id", "A create must not carry an Id.")
            rec = writer.write(entity, data, "" if op in ("create", "update") else op)
            out.append({"bId": bid, entity: company.view(entity, rec) if "SyncToken" in rec else rec})
        except QboFault as fault:
            out.append({"bId": bid, "Fault": fault.body()})
    return out
