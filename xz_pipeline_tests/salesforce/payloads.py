"""Records shaped as Salesforce's REST API answers SOQL (`attributes`, 18-character ids, dateTime as
`…T…​.000+0000`, parent fields nested under the relationship name), for the mapping tests."""

from __future__ import annotations


def _attrs(sobject: str, rid: str) -> dict:
    return {"type": sobject, "url": f"/services/data/v62.0/sobjects/{sobject}/{rid}"}


ACME, GLOBEX = "001Hs00001AcmeAAA", "001Hs00001GlobxAAA"
ANNA, BEN, CARL = "003Hs00001AnnaAAA", "003Hs00001BenxAAA", "003Hs00001CarlAAA"
WON, RENAMED, OPEN, LOST = "006Hs00001WonxAAA", "006Hs00001RnmdAAA", "006Hs00001OpenAAA", "006Hs00001LostAAA"
WIDGET = "01tHs00001WdgtAAA"

ACCOUNTS = [
    {
        "attributes": _attrs("Account", ACME),
        "Id": ACME,
        "Name": "Acme Ltd",
        "AccountNumber": "A-100",
        "Type": "Customer - Direct",
        "Phone": "+64 9 555 0100",
        "Fax": None,
        "Website": "acme.example",
        "BillingStreet": "1 Queen St\nLevel 2",
        "BillingCity": "Auckland",
        "BillingState": "AUK",
        "BillingPostalCode": "1010",
        "BillingCountry": "New Zealand",
        "ShippingStreet": None,
        "ShippingCity": None,
        "ShippingState": None,
        "ShippingPostalCode": None,
        "ShippingCountry": None,
        "CurrencyIsoCode": "NZD",
        "Books_Customer_Id__c": "xero-c-1",
        "Tax_Number__c": "123-456-789",
        "Outstanding_Balance__c": 1150.5,
        "Overdue_Balance__c": 0,
        "Payment_Risk__c": "High",
        "Expected_Pay_Date__c": "2026-12-20",
        "OwnerId": "005Hs00001OwnrAAA",
        "CreatedDate": "2026-01-05T09:00:00.000+0000",
        "LastModifiedDate": "2026-11-01T10:15:00.000+0000",
        "SystemModstamp": "2026-11-01T10:15:02.000+0000",
    },
    {
        "attributes": _attrs("Account", GLOBEX),
        "Id": GLOBEX,
        "Name": "Globex",
        "Type": "Prospect",
        "CreatedDate": "2026-02-01T00:00:00.000+0000",
        "LastModifiedDate": "2026-02-01T00:00:00.000+0000",
        "SystemModstamp": "2026-02-01T00:00:00.000+0000",
    },
]
CONTACTS = [
    {  # created later than Ben: not the primary person
        "attributes": _attrs("Contact", ANNA),
        "Id": ANNA,
        "AccountId": ACME,
        "FirstName": "Anna",
        "LastName": "Apple",
        "Name": "Anna Apple",
        "Email": "anna@acme.example",
        "Phone": None,
        "MobilePhone": "+64 21 555 0101",
        "Title": "CFO",
        "MailingCity": "Auckland",
        "CreatedDate": "2026-03-01T00:00:00.000+0000",
        "LastModifiedDate": "2026-03-01T00:00:00.000+0000",
        "SystemModstamp": "2026-03-01T00:00:00.000+0000",
    },
    {
        "attributes": _attrs("Contact", BEN),
        "Id": BEN,
        "AccountId": ACME,
        "FirstName": "Ben",
        "LastName": "Bell",
        "Name": "Ben Bell",
        "Email": "ben@acme.example",
        "CreatedDate": "2026-01-06T00:00:00.000+0000",
        "LastModifiedDate": "2026-01-06T00:00:00.000+0000",
        "SystemModstamp": "2026-01-06T00:00:00.000+0000",
    },
    {  # earliest, but without an email
        "attributes": _attrs("Contact", CARL),
        "Id": CARL,
        "AccountId": ACME,
        "FirstName": None,
        "LastName": "Carl",
        "Name": "Carl",
        "Email": None,
        "CreatedDate": "2026-01-01T00:00:00.000+0000",
        "LastModifiedDate": "2026-01-01T00:00:00.000+0000",
        "SystemModstamp": "2026-01-01T00:00:00.000+0000",
    },
]


def _opp(rid: str, name: str, stage: str, won: bool, closed: bool, **extra) -> dict:
    return {
        "attributes": _attrs("Opportunity", rid),
        "Id": rid,
        "Name": name,
        "StageName": stage,
        "IsWon": won,
        "IsClosed": closed,
        "Probability": 100.0 if won else (0.0 if closed else 20.0),
        "Amount": 2300.0,
        "CurrencyIsoCode": "NZD",
        "CloseDate": "2026-10-31",
        "Type": "New Customer",
        "ForecastCategoryName": "Closed" if won else "Pipeline",
        "AccountId": ACME,
        "Account": {"attributes": _attrs("Account", ACME), "Name": "Acme Ltd"},
        "ContactId": BEN,
        "OwnerId": "005Hs00001OwnrAAA",
        "CreatedDate": "2026-09-01T00:00:00.000+0000",
        "LastModifiedDate": "2026-10-31T00:00:00.000+0000",
        "SystemModstamp": "2026-10-31T00:00:05.000+0000",
        **extra,
    }


OPPORTUNITIES = [
    _opp(
        WON,
        "Acme widgets",
        "Closed Won",
        True,
        True,
        Books_Invoice_Id__c="xero-i-9",
        Books_Invoice_Number__c="INV-0009",
        Payment_Status__c="Partially Paid",
        Amount_Paid__c=1000.0,
        Last_Payment_Date__c="2026-11-15",
        Payment_Risk__c="Medium",
        Expected_Pay_Date__c="2026-12-01",
    ),
    # the org renamed its won stage: IsWon decides, not the label
    _opp(RENAMED, "Acme support", "Signed & Sealed", True, True),
    _opp(OPEN, "Acme upsell", "Negotiation/Review", False, False),
    _opp(LOST, "Acme lost", "Closed Lost", False, True),
]
LINE_ITEMS = [
    {
        "attributes": _attrs("OpportunityLineItem", "00kHs00001Line1AA"),
        "Id": "00kHs00001Line1AA",
        "OpportunityId": WON,
        "SortOrder": None,
        "Product2Id": WIDGET,
        "ProductCode": "WDG-1",
        "Product2": {"attributes": _attrs("Product2", WIDGET), "Name": "Widget"},
        "Name": "Acme widgets Widget",
        "Description": None,
        "Quantity": 10.0,
        "UnitPrice": 230.0,
        "ListPrice": 250.0,
        "Discount": None,
        "TotalPrice": 2300.0,
        "CreatedDate": "2026-09-02T00:00:00.000+0000",
        "LastModifiedDate": "2026-09-02T00:00:00.000+0000",
        "SystemModstamp": "2026-09-02T00:00:00.000+0000",
    },
]
PRODUCTS = [
    {
        "attributes": _attrs("Product2", WIDGET),
        "Id": WIDGET,
        "Name": "Widget",
        "ProductCode": "WDG-1",
        "Description": "A widget",
        "Family": "Hardware",
        "IsActive": True,
        "CreatedDate": "2026-01-01T00:00:00.000+0000",
        "LastModifiedDate": "2026-01-01T00:00:00.000+0000",
        "SystemModstamp": "2026-01-01T00:00:00.000+0000",
    },
]
DUMPS = {"Account": ACCOUNTS, "Contact": CONTACTS, "Opportunity": OPPORTUNITIES,
         "OpportunityLineItem": LINE_ITEMS, "Product2": PRODUCTS}  # fmt: skip
