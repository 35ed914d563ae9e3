"""A small QBO company written by hand in the shapes of Intuit's XSD (Finance.xsd, IntuitNamesTypes.xsd) as
the JSON API serves them: what the mapping tests read, independent of the emulator."""

from __future__ import annotations


def meta(updated: str, created: str = "2026-10-01T09:00:00-07:00") -> dict:
    return {"CreateTime": created, "LastUpdatedTime": updated}


CUSTOMERS = [
    {
        "Id": "1",
        "SyncToken": "3",
        "domain": "QBO",
        "sparse": False,
        "DisplayName": "Acme Pty",
        "CompanyName": "Acme Pty",
        "GivenName": "Ann",
        "FamilyName": "Lee",
        "PrimaryEmailAddr": {"Address": "ann@acme.test"},
        "PrimaryPhone": {"FreeFormNumber": "+61 2 5550 1000"},
        "Mobile": {"FreeFormNumber": "0400 000 000"},
        "BillAddr": {
            "Id": "10",
            "Line1": "1 High St",
            "Line2": "Level 2",
            "City": "Sydney",
            "CountrySubDivisionCode": "NSW",
            "PostalCode": "2000",
            "Country": "AU",
        },
        "ShipAddr": {"Id": "11", "Line1": "9 Dock Rd", "City": "Botany"},
        "AcctNum": "ACME-1",
        "Notes": "pays late\nxz-crm-id: crm-77",
        "Active": True,
        "Balance": 150.0,
        "BalanceWithJobs": 150.0,
        "Taxable": True,
        "CurrencyRef": {"value": "AUD", "name": "Australian Dollar"},
        "MetaData": meta("2026-11-02T10:00:00-07:00"),
    },
    {
        "Id": "2",
        "SyncToken": "0",
        "domain": "QBO",
        "sparse": False,
        "DisplayName": "Bygone Ltd",
        "Active": False,
        "ShipAddr": {"Line1": "5 Old Rd", "City": "Perth", "PostalCode": "6000"},
        "Balance": 0,
        "MetaData": meta("2026-11-03T10:00:00Z"),
    },
]
ITEMS = [
    {
        "Id": "5",
        "SyncToken": "0",
        "Name": "Consulting",
        "Sku": "CONS",
        "Type": "Service",
        "Active": True,
        "UnitPrice": 100,
        "IncomeAccountRef": {"value": "79", "name": "Sales"},
        "MetaData": meta("2026-10-01T09:00:00-07:00"),
    },
    {
        "Id": "6",
        "SyncToken": "0",
        "Name": "Widget",
        "Type": "NonInventory",
        "Active": True,
        "UnitPrice": 12.5,
        "IncomeAccountRef": {"value": "79"},
        "ExpenseAccountRef": {"value": "80"},
        "PurchaseCost": 4,
        "MetaData": meta("2026-10-01T09:00:00-07:00"),
    },
]
ACCOUNTS = [
    {
        "Id": "79",
        "SyncToken": "0",
        "Name": "Sales",
        "AccountType": "Income",
        "AccountSubType": "SalesOfProductIncome",
        "Classification": "Revenue",
        "Active": True,
        "CurrentBalance": 0,
        "CurrencyRef": {"value": "AUD"},
        "MetaData": meta("2026-10-01T09:00:00-07:00"),
    },
]


def _sales_line(n: int, amount: float, item: tuple[str, str], qty: float, price: float, **extra) -> dict:
    return {
        "Id": str(n),
        "LineNum": n,
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "Description": f"line {n}",
        "SalesItemLineDetail": {
            "ItemRef": {"value": item[0], "name": item[1]},
            "Qty": qty,
            "UnitPrice": price,
            "TaxCodeRef": {"value": "TAX"},
            **extra,
        },
    }


def _subtotal(amount: float) -> dict:
    return {"Amount": amount, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}


INVOICES = [
    # open, never paid: 100 + 10 tax
    {
        "Id": "101",
        "SyncToken": "0",
        "DocNumber": "1001",
        "TxnDate": "2026-10-05",
        "DueDate": "2026-11-04",
        "CustomerRef": {"value": "1", "name": "Acme Pty"},
        "CurrencyRef": {"value": "AUD"},
        "PrivateNote": "DEAL-9",
        "GlobalTaxCalculation": "TaxExcluded",
        "TxnTaxDetail": {"TotalTax": 10},
        "Line": [_sales_line(1, 100, ("5", "Consulting"), 1, 100), _subtotal(100)],
        "TotalAmt": 110,
        "Balance": 110,
        "EmailStatus": "EmailSent",
        "MetaData": meta("2026-11-05T10:00:00-07:00"),
    },
    # paid by payment 301 (with 102's other half)
    {
        "Id": "102",
        "SyncToken": "1",
        "DocNumber": "1002",
        "TxnDate": "2026-10-06",
        "DueDate": "2026-11-05",
        "CustomerRef": {"value": "1", "name": "Acme Pty"},
        "GlobalTaxCalculation": "TaxExcluded",
        "TxnTaxDetail": {"TotalTax": 0},
        "Line": [_sales_line(1, 25, ("6", "Widget"), 2, 12.5), _subtotal(25)],
        "TotalAmt": 25,
        "Balance": 0,
        "EmailStatus": "NotSet",
        "MetaData": meta("2026-11-06T10:00:00-07:00"),
    },
    # partly paid (301) and partly credited (302 applies credit memo 401): 60 total, 40 due
    {
        "Id": "103",
        "SyncToken": "2",
        "DocNumber": "1003",
        "TxnDate": "2026-10-07",
        "DueDate": "2026-10-20",
        "CustomerRef": {"value": "1", "name": "Acme Pty"},
        "TxnTaxDetail": {"TotalTax": 0},
        "Line": [
            _sales_line(1, 60, ("5", "Consulting"), 0.6, 100),
            {"Amount": 0, "DetailType": "DescriptionOnly", "Description": "thanks"},
            _subtotal(60),
        ],
        "TotalAmt": 60,
        "Balance": 40,
        "MetaData": meta("2026-11-07T10:00:00-07:00"),
    },
    # voided: QBO zeroes the amounts and marks the memo
    {
        "Id": "104",
        "SyncToken": "3",
        "DocNumber": "1004",
        "TxnDate": "2026-10-08",
        "CustomerRef": {"value": "2"},
        "PrivateNote": "Voided",
        "Line": [_subtotal(0)],
        "TotalAmt": 0,
        "Balance": 0,
        "MetaData": meta("2026-11-08T10:00:00-07:00"),
    },
    # tax inclusive: lines carry the gross amount in TaxInclusiveAmt
    {
        "Id": "105",
        "SyncToken": "0",
        "DocNumber": "1005",
        "TxnDate": "2026-10-09",
        "DueDate": "2026-12-09",
        "CustomerRef": {"value": "1"},
        "GlobalTaxCalculation": "TaxInclusive",
        "TxnTaxDetail": {"TotalTax": 10},
        "Line": [_sales_line(1, 100, ("5", "Consulting"), 1, 100, TaxInclusiveAmt=110), _subtotal(100)],
        "TotalAmt": 110,
        "Balance": 110,
        "MetaData": meta("2026-11-09T10:00:00-07:00"),
    },
]
# Estimates: QBO's unposted sales documents (a Xero draft). Id 101 is also an invoice's: another entity.
ESTIMATES = [
    {
        "Id": "101",
        "SyncToken": "0",
        "DocNumber": "1006",
        "TxnDate": "2026-11-10",
        "ExpirationDate": "2026-12-10",
        "TxnStatus": "Pending",
        "CustomerRef": {"value": "1", "name": "Acme Pty"},
        "PrivateNote": "DEAL-11",
        "GlobalTaxCalculation": "TaxExcluded",
        "TxnTaxDetail": {"TotalTax": 5},
        "Line": [_sales_line(1, 50, ("5", "Consulting"), 0.5, 100), _subtotal(50)],
        "TotalAmt": 55,
        "MetaData": meta("2026-11-10T10:00:00-07:00"),
    },
    # converted to an invoice: the invoice carries on, the estimate takes part in nothing
    {
        "Id": "106",
        "SyncToken": "1",
        "DocNumber": "1007",
        "TxnDate": "2026-10-01",
        "TxnStatus": "Closed",
        "CustomerRef": {"value": "1", "name": "Acme Pty"},
        "TxnTaxDetail": {"TotalTax": 0},
        "Line": [_sales_line(1, 25, ("6", "Widget"), 2, 12.5), _subtotal(25)],
        "TotalAmt": 25,
        "MetaData": meta("2026-10-06T10:00:00-07:00"),
    },
]
PAYMENTS = [
    {
        "Id": "301",
        "SyncToken": "0",
        "TxnDate": "2026-11-01",
        "CustomerRef": {"value": "1"},
        "TotalAmt": 35,
        "PaymentRefNum": "EFT-1",
        "DepositToAccountRef": {"value": "35"},
        "Line": [
            {"Amount": 25, "LinkedTxn": [{"TxnId": "102", "TxnType": "Invoice"}]},
            {"Amount": 10, "LinkedTxn": [{"TxnId": "103", "TxnType": "Invoice"}]},
        ],
        "MetaData": meta("2026-11-01T12:00:00-07:00"),
    },
    # applies credit memo 401 (10) to invoice 103: no cash
    {
        "Id": "302",
        "SyncToken": "0",
        "TxnDate": "2026-11-02",
        "CustomerRef": {"value": "1"},
        "TotalAmt": 0,
        "Line": [
            {"Amount": 10, "LinkedTxn": [{"TxnId": "103", "TxnType": "Invoice"}]},
            {"Amount": 10, "LinkedTxn": [{"TxnId": "401", "TxnType": "CreditMemo"}]},
        ],
        "MetaData": meta("2026-11-02T12:00:00-07:00"),
    },
]
CREDIT_MEMOS = [
    {
        "Id": "401",
        "SyncToken": "0",
        "DocNumber": "CM-1",
        "TxnDate": "2026-10-30",
        "CustomerRef": {"value": "1", "name": "Acme Pty"},
        "TxnTaxDetail": {"TotalTax": 0},
        "Line": [_sales_line(1, 30, ("5", "Consulting"), 0.3, 100), _subtotal(30)],
        "TotalAmt": 30,
        "RemainingCredit": 20,
        "Balance": 20,
        "MetaData": meta("2026-11-02T12:00:00-07:00"),
    },
]
BILLS = [
    {
        "Id": "101",
        "SyncToken": "0",
        "DocNumber": "B-1",
        "TxnDate": "2026-10-10",
        "DueDate": "2026-11-10",
        "VendorRef": {"value": "1", "name": "Supplier Co"},
        "TotalAmt": 44,
        "Balance": 44,
        "Line": [
            {
                "Id": "1",
                "Amount": 44,
                "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "80"}},
            }
        ],
        "MetaData": meta("2026-11-10T12:00:00-07:00"),
    },
]
COMPANY_INFO = [
    {
        "Id": "1",
        "SyncToken": "4",
        "CompanyName": "Test Books",
        "LegalName": "Test Books Pty Ltd",
        "Country": "AU",
        "Email": {"Address": "books@test.test"},
        "FiscalYearStartMonth": "July",
        "MetaData": meta("2026-10-01T09:00:00-07:00"),
    },
]
PREFERENCES = [
    {
        "Id": "1",
        "SyncToken": "2",
        "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "AUD"}},
        "SalesFormsPrefs": {"CustomTxnNumbers": True},
        "MetaData": meta("2026-10-01T09:00:00-07:00"),
    },
]

DUMPS = {"Customer": CUSTOMERS, "Item": ITEMS, "Account": ACCOUNTS, "Invoice": INVOICES, "Estimate": ESTIMATES, "Payment": PAYMENTS,
         "CreditMemo": CREDIT_MEMOS, "Bill": BILLS, "CompanyInfo": COMPANY_INFO, "Preferences": PREFERENCES}  # fmt: skip
