"""Render the generated world's books side (sandbox.world.BooksOrg) as one QBO company.

The world speaks Xero's vocabulary; QBO's shapes differ, and the rendering follows QBO
(Finance.xsd types, python-quickbooks objects):
- contacts billed by sales invoices become Customers, those billed by supplier bills Vendors; a contact
  with no documents yet is a Customer when the world knows it as one (`world.truth`), else a Vendor (a
  supplier not billed yet: QBO keeps suppliers in its vendor list, never among the customers); ACCREC invoices become Invoices, ACCPAY ones Bills; ACCRECCREDIT notes CreditMemos,
  ACCPAYCREDIT ones VendorCredits; payments become Payments (BillPayments for bills).
- a credit note's allocation to an invoice becomes what QBO makes of applying a credit: a Payment of
  TotalAmt 0 whose two lines link the Invoice and the CreditMemo.
- QBO has no draft or awaiting-approval invoices: a sales document nobody has posted yet is an Estimate
  (QBO's unposted sales form: it is not in accounts receivable nor in the customer's Balance, and
  becomes an invoice when a person converts it). So DRAFT and SUBMITTED sales invoices become
  Estimates (TxnStatus "Pending", the world's due date as ExpirationDate, same number, lines and memo),
  never open invoices: a customer's QBO balance is then what Xero's would be (drafts excluded), and a
  won deal whose invoice is a draft still has its document. VOIDED invoices keep their lines with zero
  amounts and `PrivateNote: "Voided"` (voided bills and credit notes, too, keep zero-amount lines); DELETED
  ones (and deleted payments) are not in the company at all.
- US companies tax lines with TaxCodeRef TAX/NON and one TxnTaxCodeRef per invoice; elsewhere each
  line names its own TaxCode (VAT codes such as "20.0% S").
- the invoice's Reference is the memo (PrivateNote) and the sales-form custom field "Reference".
- a customer has no external-id field in QBO's API: the world's ContactNumber (the CRM id a previous
  write-back stored) is rendered where our write-back keeps it in QBO, a line `xz-crm-id: <id>` in
  the customer's Notes. AccountNumber becomes AcctNum.

Seeding is deterministic: records are numbered in the world's order, so the same world always gets
the same QBO ids (`Company.id_map`, written into the manifest's `id_maps`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from xz_pipeline.sandbox.quickbooks.company import ZERO, Company
from xz_pipeline.sandbox.quickbooks.wire import CURRENCY_NAMES

CENT = Decimal("0.01")
UNPOSTED = ("DRAFT", "SUBMITTED")  # sales invoices QBO keeps as Estimates (see the module docstring)
CRM_MARKER = "xz-crm-id:"  # the line our write-back adds to a customer's Notes (quickbooks/mapping.py)
REFERENCE_FIELD = {"DefinitionId": "1", "Name": "Reference", "Type": "StringType"}
ACCOUNT_TYPES = {  # Xero account type -> (QBO AccountType, Classification, AccountSubType)
    "BANK": ("Bank", "Asset", "Checking"),
    "CURRENT": ("Other Current Asset", "Asset", "OtherCurrentAssets"),
    "FIXED": ("Fixed Asset", "Asset", "MachineryAndEquipment"),
    "CURRLIAB": ("Other Current Liability", "Liability", "OtherCurrentLiabilities"),
    "LIABILITY": ("Long Term Liability", "Liability", "OtherLongTermLiabilities"),
    "TERMLIAB": ("Long Term Liability", "Liability", "OtherLongTermLiabilities"),
    "EQUITY": ("Equity", "Equity", "OwnersEquity"),
    "REVENUE": ("Income", "Revenue", "ServiceFeeIncome"),
    "SALES": ("Income", "Revenue", "SalesOfProductIncome"),
    "OTHERINCOME": ("Other Income", "Revenue", "OtherMiscellaneousIncome"),
    "EXPENSE": ("Expense", "Expense", "OtherMiscellaneousServiceCost"),
    "OVERHEADS": ("Expense", "Expense", "OtherMiscellaneousServiceCost"),
    "DIRECTCOSTS": ("Cost of Goods Sold", "Expense", "SuppliesMaterialsCogs"),
}
SYSTEM_TYPES = {
    "DEBTORS": ("Accounts Receivable", "Asset", "AccountsReceivable"),
    "CREDITORS": ("Accounts Payable", "Liability", "AccountsPayable"),
    "GST": ("Other Current Liability", "Liability", "GlobalTaxPayable"),
    "RETAINEDEARNINGS": ("Equity", "Equity", "RetainedEarnings"),
}


def ref(value: str, name: str = "") -> dict[str, str]:
    return {"value": value, "name": name} if name else {"value": value}


def currency_ref(code: str) -> dict[str, str]:
    return ref(code, CURRENCY_NAMES.get(code, code))


def address(a) -> dict[str, str] | None:
    if a is None:
        return None
    out = {"Line1": a.line1, "Line2": a.line2, "City": a.city, "CountrySubDivisionCode": a.region,
           "PostalCode": a.postal_code, "Country": a.country}  # fmt: skip
    return {k: v for k, v in out.items() if v}


class Renderer:
    """Turns one BooksOrg into records of one Company (the caller holds the emulator lock)."""

    def __init__(
        self, company: Company, org, *, multicurrency: bool, customer_ids: set[str] | None = None
    ) -> None:
        self.c = company
        self.org = org
        self.customer_ids = customer_ids  # contacts the world knows as customers (None: every contact)
        self.us = org.country_code == "US"
        self.multicurrency = multicurrency
        self.accounts_by_code: dict[str, dict] = {}
        self.items_by_code: dict[str, dict] = {}
        self.tax_codes: dict[str, dict] = {}  # world tax type -> TaxCode record
        self.rates: dict[str, Decimal] = {}
        self.rate_ids: dict[str, str] = {}  # world tax type -> TaxRate id
        self.customer_names: dict[str, str] = {}
        self.vendor_names: dict[str, str] = {}

    # ---- lists -------------------------------------------------------------------------------

    def accounts(self) -> None:
        org, c = self.org, self.c
        for a in org.accounts:
            kind = SYSTEM_TYPES.get(a.system_account) or ACCOUNT_TYPES.get(a.type, ("Expense", "Expense", ""))
            rec = {"Id": c.assign("Account", a.id), "Name": a.name, "SubAccount": False, "FullyQualifiedName": a.name,
                   "Active": True, "Classification": kind[1], "AccountType": kind[0], "AccountSubType": kind[2],
                   "AcctNum": a.code, "CurrentBalance": ZERO, "CurrentBalanceWithSubAccounts": ZERO,
                   "CurrencyRef": currency_ref(a.currency or org.base_currency)}  # fmt: skip
            c.put("Account", rec, created=org.created, updated=org.created)
            self.accounts_by_code[a.code] = rec
        if not any(r["AccountType"] == "Accounts Receivable" for r in c.records["Account"].values()):
            rec = {"Id": c.next_id("Account"), "Name": "Accounts Receivable (A/R)", "SubAccount": False,
                   "FullyQualifiedName": "Accounts Receivable (A/R)", "Active": True, "Classification": "Asset",
                   "AccountType": "Accounts Receivable", "AccountSubType": "AccountsReceivable",
                   "CurrentBalance": ZERO, "CurrencyRef": currency_ref(org.base_currency)}  # fmt: skip
            c.put("Account", rec, created=org.created, updated=org.created)

    def code_name(self, t, top: Decimal) -> str:
        """The TaxCode a tax type belongs to: UK companies use QBO's VAT codes ("20.0% S", "5.0% R", "0.0% Z",
        "Exempt", "No VAT"), with sales and purchase rates on one code; elsewhere one code per tax type."""
        if self.org.country_code != "GB":
            return t.name
        kind = t.tax_type.upper()
        if "EXEMPT" in kind:
            return "Exempt"
        if kind == "NONE":
            return "No VAT"
        if not t.rate:
            return "0.0% Z"
        return f"{t.rate:.1f}% {'S' if t.rate == top else 'R'}"

    def taxes(self) -> None:
        org, c = self.org, self.c
        top = max((t.rate for t in org.tax_rates), default=ZERO)
        codes: dict[str, dict] = {}
        for t in org.tax_rates:
            self.rates[t.tax_type] = t.rate
            rate_id = self.rate_ids[t.tax_type] = c.assign("TaxRate", f"taxrate:{t.tax_type}")
            c.put("TaxRate", {"Id": rate_id, "Name": t.name, "Description": t.name, "Active": True,
                              "RateValue": t.rate, "SpecialTaxType": "NONE" if t.rate else "ZERO_RATE",
                              "DisplayType": "ReadOnly"}, created=org.created, updated=org.created)  # fmt: skip
            name = self.code_name(t, top)
            code = codes.get(name)
            if code is None:
                code = codes[name] = {"Id": c.assign("TaxCode", f"taxcode:{name}"), "Name": name, "Description": name,
                                      "Active": True, "Hidden": False, "Taxable": False, "TaxGroup": self.us,
                                      "SalesTaxRateList": {"TaxRateDetail": []}, "PurchaseTaxRateList": {"TaxRateDetail": []}}  # fmt: skip
                c.put("TaxCode", code, created=org.created, updated=org.created)
            purchase = t.tax_type.upper().startswith("INPUT") or "expenses" in t.name.lower()
            code["PurchaseTaxRateList" if purchase else "SalesTaxRateList"]["TaxRateDetail"].append(
                {"TaxRateRef": ref(rate_id, t.name), "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}
            )
            code["Taxable"] = code["Taxable"] or bool(t.rate)
            self.tax_codes[t.tax_type] = code

    def line_tax(self, tax_type: str, rate: Decimal) -> dict[str, str]:
        """A line's TaxCodeRef: TAX/NON in the US, the tax type's own TaxCode elsewhere."""
        if self.us:
            return ref("TAX" if rate else "NON")
        code = self.tax_codes.get(tax_type)
        return ref(code["Id"], code["Name"]) if code else ref("NON")

    def items(self) -> None:
        org, c = self.org, self.c
        for it in org.items:
            acct = self.accounts_by_code.get(it.account_code)
            rec = {"Id": c.assign("Item", it.id), "Name": it.name, "Sku": it.code, "Description": it.description,
                   "Active": True, "FullyQualifiedName": it.name, "Taxable": bool(self.rates.get(it.tax_type)),
                   "UnitPrice": it.unit_price, "Type": "Service", "TrackQtyOnHand": False}  # fmt: skip
            if acct:
                rec["IncomeAccountRef"] = ref(acct["Id"], acct["Name"])
            if not self.us and it.tax_type in self.tax_codes:
                rec["SalesTaxCodeRef"] = ref(self.tax_codes[it.tax_type]["Id"])
            c.put("Item", rec, created=it.updated, updated=it.updated)
            self.items_by_code[it.code] = rec
        # lines without an item are billed against QBO's own default item
        income = next((a for a in c.records["Account"].values() if a["AccountType"] == "Income"), None)
        rec = {"Id": c.next_id("Item"), "Name": "Services", "Active": True, "FullyQualifiedName": "Services",
               "Taxable": True, "UnitPrice": ZERO, "Type": "Service", "TrackQtyOnHand": False}  # fmt: skip
        if income:
            rec["IncomeAccountRef"] = ref(income["Id"], income["Name"])
        c.put("Item", rec, created=org.created, updated=org.created)
        self.items_by_code[""] = rec

    # ---- names ---------------------------------------------------------------------------------

    def names(self) -> None:
        org, c = self.org, self.c
        suppliers = {i.contact_id for i in org.invoices if i.type == "ACCPAY"}
        suppliers |= {n.contact_id for n in org.credit_notes if n.type == "ACCPAYCREDIT"}
        customers = {i.contact_id for i in org.invoices if i.type == "ACCREC"}
        customers |= {n.contact_id for n in org.credit_notes if n.type == "ACCRECCREDIT"}
        if self.customer_ids is not None:  # a contact with no documents is a supplier unless known a customer
            suppliers |= {
                ct.id for ct in org.contacts if ct.id not in customers and ct.id not in self.customer_ids
            }
        for ct in org.contacts:
            if ct.id in customers or ct.id not in suppliers:
                c.put("Customer", self.contact("Customer", ct, c.assign("Customer", ct.id)),
                      created=ct.created, updated=ct.updated)  # fmt: skip
                self.customer_names[ct.id] = ct.name
            if ct.id in suppliers:
                key = ct.id if ct.id not in customers else f"vendor:{ct.id}"
                c.put("Vendor", self.contact("Vendor", ct, c.assign("Vendor", key)), created=ct.created,
                      updated=ct.updated)  # fmt: skip
                self.vendor_names[ct.id] = ct.name

    def contact(self, entity: str, ct, rid: str) -> dict[str, Any]:
        rec: dict[str, Any] = {"Id": rid, "DisplayName": ct.name, "CompanyName": ct.name,
                               "PrintOnCheckName": ct.name, "Active": ct.status != "ARCHIVED"}  # fmt: skip
        first = ct.first_name or (ct.persons[0].first_name if ct.persons else "")
        last = ct.last_name or (ct.persons[0].last_name if ct.persons else "")
        if first:
            rec["GivenName"] = first
        if last:
            rec["FamilyName"] = last
        if ct.email:
            rec["PrimaryEmailAddr"] = {"Address": ct.email}
        if ct.phone:
            rec["PrimaryPhone"] = {"FreeFormNumber": ct.phone}
        addr = address(ct.address)
        if addr:
            rec["BillAddr"] = {"Id": str(int(rid) + 1000), **addr}
        if ct.account_number:
            rec["AcctNum"] = ct.account_number
        if entity == "Customer" and ct.contact_number:
            rec["Notes"] = f"{CRM_MARKER} {ct.contact_number}"
        if ct.tax_number:
            rec["PrimaryTaxIdentifier" if entity == "Customer" else "TaxIdentifier"] = ct.tax_number
        rec["CurrencyRef"] = currency_ref(ct.currency or self.org.base_currency)
        if entity == "Customer":
            rec.update(FullyQualifiedName=ct.name, Taxable=self.us, Job=False, BillWithParent=False,
                       PreferredDeliveryMethod="Email" if ct.email else "None")  # fmt: skip
        else:
            rec["Vendor1099"] = False
        return rec

    # ---- transactions --------------------------------------------------------------------------

    def sales_lines(self, lines) -> tuple[list[dict], dict, Decimal]:
        """QBO lines (each SalesItemLineDetail, then the SubTotalLine), TxnTaxDetail and the total tax."""
        out, taxable = [], {}
        for n, ln in enumerate(lines, start=1):
            item = self.items_by_code.get(ln.item_code) or self.items_by_code[""]
            detail = {"ItemRef": ref(item["Id"], item["Name"]), "UnitPrice": ln.unit_amount, "Qty": ln.quantity,
                      "TaxCodeRef": self.line_tax(ln.tax_type, ln.tax_rate)}  # fmt: skip
            acct = self.accounts_by_code.get(ln.account_code)
            if acct:
                detail["ItemAccountRef"] = ref(acct["Id"], acct["Name"])
            if ln.discount_rate:
                detail["DiscountRate"] = ln.discount_rate
            out.append({"Id": str(n), "LineNum": n, "Description": ln.description, "Amount": ln.line_amount,
                        "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail})  # fmt: skip
            if ln.tax_rate:
                key = ln.tax_type
                net, tax = taxable.get(key, (ZERO, ZERO))
                taxable[key] = (net + ln.line_amount, tax + ln.tax_amount)
        sub = sum((ln["Amount"] for ln in out), ZERO)
        out.append({"Amount": sub, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        return out, *self.tax_detail(taxable)

    def tax_detail(self, taxable: dict[str, tuple[Decimal, Decimal]]) -> tuple[dict, Decimal]:
        total = sum((tax for _net, tax in taxable.values()), ZERO)
        tax_lines = []
        for tax_type, (net, tax) in taxable.items():
            tax_lines.append({"Amount": tax, "DetailType": "TaxLineDetail",
                              "TaxLineDetail": {"TaxRateRef": ref(self.rate_ids.get(tax_type, "0")), "PercentBased": True,
                                                "TaxPercent": self.rates.get(tax_type, ZERO), "NetAmountTaxable": net}})  # fmt: skip
        detail: dict[str, Any] = {"TotalTax": total, "TaxLine": tax_lines}
        if self.us and taxable:
            detail["TxnTaxCodeRef"] = ref(self.tax_codes[next(iter(taxable))]["Id"])
        return detail, total

    def invoices(self) -> None:
        for inv in self.org.invoices:
            if inv.status == "DELETED":
                continue
            if inv.type == "ACCREC" and inv.status in UNPOSTED:
                self.estimate(inv)
            elif inv.type == "ACCREC":
                self.invoice(inv)
            else:
                self.bill(inv)

    def money_fields(self, rec: dict, total: Decimal, currency: str, rate: Decimal) -> None:
        rec["CurrencyRef"] = currency_ref(currency)
        if self.multicurrency:
            rec["ExchangeRate"] = rate
            if "VendorRef" in rec:  # bills and vendor credits carry HomeBalance, not HomeTotalAmt
                rec["HomeBalance"] = (rec.get("Balance", total) * rate).quantize(CENT)
            else:
                rec["HomeTotalAmt"] = (total * rate).quantize(CENT)

    def invoice(self, inv) -> None:
        c = self.c
        rid = c.assign("Invoice", inv.id)
        cust = c.id_map[inv.contact_id]
        lines, tax, total_tax = self.sales_lines(inv.lines)
        voided = inv.status == "VOIDED"
        total = ZERO if voided else lines[-1]["Amount"] + total_tax  # the subtotal line plus the tax
        rec: dict[str, Any] = {"Id": rid, "DocNumber": inv.number, "TxnDate": inv.date, "DueDate": inv.due_date,
                               "CustomerRef": ref(cust, self.customer_names[inv.contact_id]), "Line": lines,
                               "TxnTaxDetail": tax, "TotalAmt": total, "Balance": total,
                               "GlobalTaxCalculation": "TaxExcluded", "ApplyTaxAfterDiscount": False,
                               "PrintStatus": "NotSet", "EmailStatus": "NotSet", "LinkedTxn": [],
                               "SalesTermRef": ref("3", "Net 30")}  # fmt: skip
        if inv.reference:
            rec["PrivateNote"] = inv.reference
            rec["CustomField"] = [{**REFERENCE_FIELD, "StringValue": inv.reference[:31]}]
        if voided:
            rec["PrivateNote"] = "Voided"
            rec["_voided"] = True
            for ln in lines:
                ln["Amount"] = ZERO
            tax["TotalTax"] = ZERO
            for ln in tax["TaxLine"]:
                ln["Amount"] = ZERO
        self.money_fields(rec, total, inv.currency, inv.currency_rate)
        c.put("Invoice", rec, created=inv.created, updated=inv.updated)

    def estimate(self, inv) -> None:
        """A sales invoice nobody has posted (DRAFT, SUBMITTED) as QBO keeps one: an Estimate, pending."""
        c = self.c
        rid = c.assign("Estimate", inv.id)
        lines, tax, total_tax = self.sales_lines(inv.lines)
        total = lines[-1]["Amount"] + total_tax
        rec: dict[str, Any] = {"Id": rid, "DocNumber": inv.number, "TxnDate": inv.date, "TxnStatus": "Pending",
                               "ExpirationDate": inv.due_date, "Line": lines, "TxnTaxDetail": tax,
                               "CustomerRef": ref(c.id_map[inv.contact_id], self.customer_names[inv.contact_id]),
                               "TotalAmt": total, "GlobalTaxCalculation": "TaxExcluded",
                               "ApplyTaxAfterDiscount": False, "PrintStatus": "NotSet", "EmailStatus": "NotSet"}  # fmt: skip
        if inv.reference:
            rec["PrivateNote"] = inv.reference
            rec["CustomField"] = [{**REFERENCE_FIELD, "StringValue": inv.reference[:31]}]
        self.money_fields(rec, total, inv.currency, inv.currency_rate)
        c.put("Estimate", rec, created=inv.created, updated=inv.updated)

    def bill(self, inv) -> None:
        c = self.c
        rid = c.assign("Bill", inv.id)
        key = inv.contact_id if inv.contact_id not in self.customer_names else f"vendor:{inv.contact_id}"
        lines = []
        for n, ln in enumerate(inv.lines, start=1):
            acct = self.accounts_by_code.get(ln.account_code)
            detail = {"AccountRef": ref(acct["Id"], acct["Name"]) if acct else ref("1"), "BillableStatus": "NotBillable",
                      "TaxCodeRef": self.line_tax(ln.tax_type, ln.tax_rate)}  # fmt: skip
            if ln.tax_amount:
                detail["TaxAmount"] = ln.tax_amount
            lines.append({"Id": str(n), "LineNum": n, "Description": ln.description, "Amount": ln.line_amount,
                          "DetailType": "AccountBasedExpenseLineDetail", "AccountBasedExpenseLineDetail": detail})  # fmt: skip
        voided = inv.status == "VOIDED"
        total = ZERO if voided else inv.total
        if voided:  # QBO zeroes a voided document's lines with its total
            for ln in lines:
                ln["Amount"] = ZERO
                ln["AccountBasedExpenseLineDetail"].pop("TaxAmount", None)
        rec = {"Id": rid, "DocNumber": inv.number, "TxnDate": inv.date, "DueDate": inv.due_date,
               "VendorRef": ref(c.id_map[key], self.vendor_names[inv.contact_id]), "Line": lines,
               "TxnTaxDetail": {"TotalTax": ZERO if voided else inv.total_tax}, "TotalAmt": total, "Balance": total,
               "GlobalTaxCalculation": "TaxExcluded", "LinkedTxn": []}  # fmt: skip
        if inv.reference:
            rec["PrivateNote"] = inv.reference
        self.money_fields(rec, total, inv.currency, inv.currency_rate)
        c.put("Bill", rec, created=inv.created, updated=inv.updated)

    def credit_notes(self) -> None:
        org, c = self.org, self.c
        for note in org.credit_notes:
            if note.status == "DELETED":
                continue
            sales = note.type == "ACCRECCREDIT"
            entity = "CreditMemo" if sales else "VendorCredit"
            rid = c.assign(entity, note.id)
            lines, tax, _ = self.sales_lines(note.lines)
            voided = note.status == "VOIDED"
            total = ZERO if voided else note.total
            rec: dict[str, Any] = {"Id": rid, "DocNumber": note.number, "TxnDate": note.date, "Line": lines,
                                   "TxnTaxDetail": tax, "TotalAmt": total}  # fmt: skip
            if sales:
                rec.update(CustomerRef=ref(c.id_map[note.contact_id], self.customer_names[note.contact_id]),
                           RemainingCredit=total, Balance=total, PrintStatus="NotSet", EmailStatus="NotSet")  # fmt: skip
            else:
                key = (
                    note.contact_id
                    if note.contact_id not in self.customer_names
                    else f"vendor:{note.contact_id}"
                )
                rec.update(VendorRef=ref(c.id_map[key], self.vendor_names[note.contact_id]), Balance=total)
                rec["Line"] = [ln for ln in lines if ln["DetailType"] != "SubTotalLineDetail"]
            if note.reference:
                rec["PrivateNote"] = note.reference
            if voided:  # QBO zeroes a voided document's lines and tax with its total
                rec["_voided"] = True
                for ln in rec["Line"]:
                    ln["Amount"] = ZERO
                tax["TotalTax"] = ZERO
                for ln in tax["TaxLine"]:
                    ln["Amount"] = ZERO
            self.money_fields(rec, total, note.currency, Decimal("1"))
            c.put(entity, rec, created=note.created, updated=note.updated)
            if sales and not voided:
                for i, a in enumerate(note.allocations):
                    inv_id = c.id_map.get(a.invoice_id)
                    if inv_id is None or inv_id not in c.records["Invoice"]:
                        continue
                    pid = c.assign("Payment", f"{note.id}:allocation:{i}")
                    pay = {"Id": pid, "TxnDate": a.date, "CustomerRef": rec["CustomerRef"], "TotalAmt": ZERO,
                           "UnappliedAmt": ZERO, "ProcessPayment": False, "CurrencyRef": rec["CurrencyRef"],
                           "Line": [{"Amount": a.amount, "LinkedTxn": [{"TxnId": inv_id, "TxnType": "Invoice"}]},
                                    {"Amount": a.amount, "LinkedTxn": [{"TxnId": rid, "TxnType": "CreditMemo"}]}]}  # fmt: skip
                    c.put("Payment", pay, created=note.updated, updated=note.updated)

    def payments(self) -> None:
        org, c = self.org, self.c
        for p in org.payments:
            if p.status == "DELETED":
                continue
            target = c.id_map.get(p.invoice_id)
            bank = self.accounts_by_code.get(p.account_code)
            bank_ref = ref(bank["Id"], bank["Name"]) if bank else None
            if target in c.records["Invoice"]:
                inv = c.records["Invoice"][target]
                rid = c.assign("Payment", p.id)
                rec = {"Id": rid, "TxnDate": p.date, "CustomerRef": inv["CustomerRef"], "TotalAmt": p.amount,
                       "UnappliedAmt": ZERO, "ProcessPayment": False, "CurrencyRef": inv["CurrencyRef"],
                       "Line": [{"Amount": p.amount, "LinkedTxn": [{"TxnId": target, "TxnType": "Invoice"}]}]}  # fmt: skip
                if bank_ref:
                    rec["DepositToAccountRef"] = bank_ref
                if p.reference:
                    rec["PaymentRefNum"] = p.reference[:21]
                if self.multicurrency:
                    rec["ExchangeRate"] = p.currency_rate
                c.put("Payment", rec, created=p.created, updated=p.updated)
            elif target in c.records["Bill"]:
                bill = c.records["Bill"][target]
                rid = c.assign("BillPayment", p.id)
                rec = {"Id": rid, "TxnDate": p.date, "VendorRef": bill["VendorRef"], "TotalAmt": p.amount,
                       "PayType": "Check", "CurrencyRef": bill["CurrencyRef"],
                       "CheckPayment": {"BankAccountRef": bank_ref or ref("1"), "PrintStatus": "NotSet"},
                       "Line": [{"Amount": p.amount, "LinkedTxn": [{"TxnId": target, "TxnType": "Bill"}]}]}  # fmt: skip
                if p.reference:
                    rec["DocNumber"] = p.reference[:21]
                c.put("BillPayment", rec, created=p.created, updated=p.updated)
                bill["Balance"] = max(ZERO, bill["Balance"] - p.amount)
                if "HomeBalance" in bill:
                    bill["HomeBalance"] = (bill["Balance"] * bill.get("ExchangeRate", Decimal(1))).quantize(
                        CENT
                    )

    def company_info(self) -> None:
        org, c = self.org, self.c
        c.put("CompanyInfo", company_info_record(c.realm_id, org.name, org.legal_name, org.country_code,
                                                 org.timezone, org.created.date()),
              created=org.created, updated=org.created)  # fmt: skip
        c.put("Preferences", preferences_record(org.base_currency, self.multicurrency, self.us),
              created=org.created, updated=org.created)  # fmt: skip

    def terms(self) -> None:
        for name, days in (("Due on receipt", 0), ("Net 15", 15), ("Net 30", 30), ("Net 60", 60)):
            rid = self.c.next_id("Term")
            self.c.put("Term", {"Id": rid, "Name": name, "Active": True, "Type": "STANDARD", "DueDays": days,
                                "DiscountPercent": ZERO, "DiscountDays": 0},
                       created=self.org.created, updated=self.org.created)  # fmt: skip

    def render(self) -> None:
        self.company_info()
        self.terms()
        self.accounts()
        self.taxes()
        self.items()
        self.names()
        self.invoices()
        self.credit_notes()
        self.payments()
        self.c.rebalance(touch=False)


def company_info_record(realm_id: str, name: str, legal: str, country: str, zone: str, start) -> dict:
    return {"Id": "1", "CompanyName": name, "LegalName": legal or name, "Country": country,
            "CompanyStartDate": start, "FiscalYearStartMonth": "January", "SupportedLanguages": "en",
            "DefaultTimeZone": zone, "CompanyAddr": {"Id": "1", "Country": country},
            "NameValue": [{"Name": "CompanyType", "Value": "LLC"}, {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                          {"Name": "NeoEnabled", "Value": "true"}, {"Name": "IsQbdtMigrated", "Value": "false"}],
            "_realm": realm_id}  # fmt: skip


def preferences_record(home: str, multicurrency: bool, us: bool) -> dict:
    return {
        "Id": "1",
        "AccountingInfoPrefs": {"TrackDepartments": False, "ClassTrackingPerTxn": False, "CustomerTerminology": "Customers"},
        "SalesFormsPrefs": {
            "CustomField": [
                {"CustomField": [{"Name": "SalesFormsPrefs.UseSalesCustom1", "Type": "BooleanType", "BooleanValue": True}]},
                {"CustomField": [{"Name": "SalesFormsPrefs.SalesCustomName1", "Type": "StringType",
                                  "StringValue": REFERENCE_FIELD["Name"]}]},
            ],
            "CustomTxnNumbers": True, "AllowDeposit": False, "AllowDiscount": True, "AllowEstimates": True,
            "AllowShipping": False, "AutoApplyCredit": True, "AutoApplyPayments": True,
            "DefaultTerms": {"value": "3"}, "ETransactionEnabledStatus": "NotApplicable",
        },
        "VendorAndPurchasesPrefs": {"TrackingByCustomer": False, "BillableExpenseTracking": False},
        "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": us} if us else {"UsingSalesTax": True},
        "CurrencyPrefs": {"MultiCurrencyEnabled": multicurrency, "HomeCurrency": {"value": home}},
        "OtherPrefs": {"NameValue": [{"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": "Thank you for your business."}]},
    }  # fmt: skip


def seed_company(company: Company, org, *, multicurrency: bool, customer_ids: set[str] | None = None) -> None:
    """Load every list of a BooksOrg into `company` (the caller holds the emulator lock). `customer_ids`:
    the contacts the world knows as customers (the others with no documents are suppliers)."""
    Renderer(company, org, multicurrency=multicurrency, customer_ids=customer_ids).render()
