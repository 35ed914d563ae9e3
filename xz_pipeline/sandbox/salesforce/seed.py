"""The generated world's CRM org as a Salesforce org: users, accounts, contacts, products with their standard
price-book entries, opportunities (stages from the org's OpportunityStage list, the profile's won stage
among them) and their line items.

The world keeps Zoho's record ids; every record gets an 18-character Salesforce id minted per org in a
fixed order, so the same world always gives the same ids, and `id_map` says which is which. The
integration's custom fields are filled only where the profile gives the org those fields.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from xz_pipeline.sandbox.profiles import Profile
from xz_pipeline.sandbox.salesforce.ids import IdMint
from xz_pipeline.sandbox.salesforce.org import Org, whole_seconds
from xz_pipeline.sandbox.salesforce.schema import Stage, build_schema, custom_name, stages

# Salesforce's default sales process (label, default probability); lost stages separately.
STANDARD_OPEN = [("Prospecting", 10), ("Qualification", 10), ("Needs Analysis", 20), ("Value Proposition", 50),
                 ("Id. Decision Makers", 60), ("Perception Analysis", 70), ("Proposal/Price Quote", 75),
                 ("Negotiation/Review", 90)]  # fmt: skip
STANDARD_LOST = ["Closed Lost"]


def org_stages(profile: Profile, used: dict[str, int]) -> list[Stage]:
    """The standard stages, the profile's won stage, and any stage the world's deals use besides."""
    known = {name for name, _ in STANDARD_OPEN} | set(STANDARD_LOST) | {profile.won_stage}
    open_ = list(STANDARD_OPEN)
    lost = list(STANDARD_LOST)
    for name, probability in sorted(used.items()):
        if name in known:
            continue
        if "lost" in name.lower():
            lost.append(name)
        else:
            open_.append((name, probability))
    return stages(open_, profile.won_stage, lost)


def _addr(prefix: str, addr: Any) -> dict:
    if addr is None:
        return {}
    street = "\n".join(p for p in (addr.line1, addr.line2) if p)
    return {f"{prefix}Street": street or None, f"{prefix}City": addr.city or None,
            f"{prefix}State": addr.region or None, f"{prefix}PostalCode": addr.postal_code or None,
            f"{prefix}Country": addr.country or None}  # fmt: skip


def _times(created: datetime, modified: datetime) -> dict:
    c, m = whole_seconds(created), whole_seconds(modified)
    return {"CreatedDate": c, "LastModifiedDate": m, "SystemModstamp": m}


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def seed_org(
    world: Any, profile: Profile, *, rotate_refresh_tokens: bool = False
) -> tuple[Org, dict[str, str]]:
    """(the org, {world CRM id: Salesforce id})."""
    crm = world.crm
    multicurrency = not profile.single_currency
    used = {}
    for d in crm.deals:
        used.setdefault(d.stage, d.probability)
    schema = build_schema(profile, org_stages(profile, used), multicurrency=multicurrency)
    mint = IdMint(crm.org_id)
    org = Org(mint.next("Organization"), crm.company_name, schema, mint, timezone=crm.timezone,
              currency=crm.currency, multicurrency=multicurrency,
              edition={"Ultimate": "Unlimited Edition", "Free": "Developer Edition"}.get(crm.edition,
                                                                                          "Enterprise Edition"),
              rotate_refresh_tokens=rotate_refresh_tokens)  # fmt: skip
    ids: dict[str, str] = {}
    created = crm.created
    for sobject, fields in schema.objects.items():
        for f in fields.values():
            if f.custom:
                org.custom_fields[mint.next("CustomField")] = (sobject, f.name, created)
    has = schema.objects

    def put(sobject: str, values: dict, world_id: str = "") -> dict:
        values = {k: v for k, v in values.items() if k in has[sobject]}
        if not multicurrency:
            values.pop("CurrencyIsoCode", None)
        rec = org.insert(sobject, values, values.get("CreatedDate") or created)
        if world_id:
            ids[world_id] = rec["Id"]
        return rec

    def custom(module: str, values: dict) -> dict:
        return {custom_name(profile, module, k): v for k, v in values.items()}

    for u in crm.users:
        first, _, last = u.name.partition(" ")
        put("User", {"Username": u.email, "Name": u.name, "FirstName": first or None, "LastName": last or first,
                     "Email": u.email, "IsActive": True, **_times(created, created)}, u.id)  # fmt: skip
    org.api_user_id = ids[crm.users[0].id]
    for i, st in enumerate(schema.stages):
        put("OpportunityStage", {"MasterLabel": st.label, "ApiName": st.label, "IsActive": True, "IsClosed": st.closed,
                                 "IsWon": st.won, "DefaultProbability": Decimal(st.probability),
                                 "ForecastCategoryName": st.forecast, "ForecastCategory": st.forecast,
                                 "SortOrder": i + 1, **_times(created, created)})  # fmt: skip
    org.insert("Organization", {"Name": crm.company_name, "OrganizationType": org.edition, "IsSandbox": False,
                         "TimeZoneSidKey": crm.timezone, "DefaultLocaleSidKey": "en_US",
                         "IsMultiCurrency": multicurrency, "DefaultCurrencyIsoCode": crm.currency,
                         **_times(created, created)}, created, rid=org.org_id)  # fmt: skip
    book = put("Pricebook2", {"Name": "Standard Price Book", "IsActive": True, "IsStandard": True,
                              **_times(created, created)})  # fmt: skip
    entry_of: dict[str, str] = {}
    for p in crm.products:
        rec = put("Product2", {"Name": p.name, "ProductCode": p.code or None, "Description": p.description or None,
                               "IsActive": p.active, "CurrencyIsoCode": crm.currency,
                               **_times(p.created, p.modified)}, p.id)  # fmt: skip
        entry = put("PricebookEntry", {"Pricebook2Id": book["Id"], "Product2Id": rec["Id"], "UnitPrice": p.unit_price,
                                       "IsActive": True, "CurrencyIsoCode": crm.currency,
                                       **_times(p.created, p.modified)})  # fmt: skip
        entry_of[p.id] = entry["Id"]
    for a in crm.accounts:
        put("Account", {"Name": a.name, "AccountNumber": a.account_number or None, "Phone": a.phone or None,
                        "Website": a.website or None, **_addr("Billing", a.billing),
                        "Type": "Prospect" if "Prospect" in a.tags else "Customer - Direct",
                        "CurrencyIsoCode": a.currency or crm.currency, "OwnerId": ids.get(a.owner_id),
                        "CreatedById": ids.get(a.owner_id), "LastModifiedById": ids.get(a.owner_id),
                        **custom("Accounts", {"Xero_Contact_ID": a.xero_contact_id or None,
                                              "Tax_Number": a.tax_number or None,
                                              "Outstanding_Balance": _money(a.outstanding_balance),
                                              "Overdue_Balance": _money(a.overdue_balance)}),
                        **_times(a.created, a.modified)}, a.id)  # fmt: skip
    for c in crm.contacts:
        put("Contact", {"AccountId": ids.get(c.account_id), "FirstName": c.first_name or None,
                        "LastName": c.last_name, "Email": c.email or None, "Phone": c.phone or None,
                        "MobilePhone": c.mobile or None, "Title": c.title or None, **_addr("Mailing", c.mailing),
                        "CurrencyIsoCode": crm.currency, "OwnerId": ids.get(c.owner_id),
                        "CreatedById": ids.get(c.owner_id), "LastModifiedById": ids.get(c.owner_id),
                        **_times(c.created, c.modified)}, c.id)  # fmt: skip
    for d in crm.deals:
        opp = put("Opportunity", {
            "Name": d.name, "AccountId": ids.get(d.account_id), "ContactId": ids.get(d.contact_id),
            "StageName": d.stage, "Amount": d.amount, "Probability": Decimal(d.probability),
            "CloseDate": d.closing_date, "CurrencyIsoCode": d.currency or crm.currency,
            "Pricebook2Id": book["Id"] if d.products else None, "OwnerId": ids.get(d.owner_id),
            "CreatedById": ids.get(d.owner_id), "LastModifiedById": ids.get(d.owner_id),
            **custom("Deals", {"Xero_Invoice_ID": d.xero_invoice_id or None,
                               "Xero_Invoice_Number": d.xero_invoice_number or None,
                               "Payment_Status": d.payment_status or None, "Amount_Paid": _money(d.amount_paid),
                               "Last_Payment_Date": d.last_payment_date}),
            **_times(d.created, d.modified)}, d.id)  # fmt: skip
        for ln in d.products:
            put("OpportunityLineItem", {"OpportunityId": opp["Id"], "PricebookEntryId": entry_of.get(ln.product_id),
                                        "Quantity": Decimal(ln.quantity), "UnitPrice": Decimal(ln.list_price),
                                        "CurrencyIsoCode": opp.get("CurrencyIsoCode"),
                                        **_times(d.created, d.modified)})  # fmt: skip
        org.derive("Opportunity", opp)
    org.journal.clear()
    return org, ids


DEAL_REFERENCE = "DEAL-"  # an invoice's reference naming its deal by the CRM's id (the world's are Zoho's)


def rename_deal_references(world, ids: dict[str, str]) -> int:
    """Books invoices whose reference names their deal (`DEAL-<CRM id>`) name it by the Salesforce id, as the
    books of a Salesforce shop would: the world keeps Zoho's ids, so the books side is seeded after this.
    Returns how many references were renamed."""
    renamed = 0
    for inv in world.books.invoices:
        ref = inv.reference or ""
        if ref.startswith(DEAL_REFERENCE) and ref[len(DEAL_REFERENCE) :] in ids:
            inv.reference = DEAL_REFERENCE + ids[ref[len(DEAL_REFERENCE) :]]
            renamed += 1
    return renamed
