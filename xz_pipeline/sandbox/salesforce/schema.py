"""An org's objects and fields as describe reports them: the standard ones, the integration's custom fields
where the org's profile has them (under the org's names), the stage picklist from OpportunityStage, and
CurrencyIsoCode only in a multi-currency org.

Field types are Salesforce's describe types (id, string, textarea, picklist, reference, boolean, currency,
double, percent, int, date, datetime, email, phone, url). The schema also says which fields a client may
set (createable/updateable) and which it must (nillable false and not defaulted).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from xz_pipeline.sandbox.profiles import INTEGRATION_FIELDS, Profile

RISK_BANDS = ("Low", "Medium", "High")
PAYMENT_STATUSES = ("Unpaid", "Partially Paid", "Paid", "Overdue")
TEXT_TYPES = ("id", "string", "textarea", "picklist", "reference", "email", "phone", "url", "combobox")
NUMBER_TYPES = ("currency", "double", "percent", "int")
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                 "SystemModstamp")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str
    label: str = ""
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    required: bool = False  # nillable false and not defaulted: a create without it is REQUIRED_FIELD_MISSING
    createable: bool = True
    updateable: bool = True
    reference_to: tuple[str, ...] = ()
    relationship: str = ""
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    length: int = 0

    def describe(self) -> dict:
        text = self.type in ("string", "textarea", "picklist", "email", "phone", "url")
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "custom": self.custom,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.name == "Id" or self.external_id,
            "nillable": not self.required and self.name != "Id" and self.type != "boolean",
            "createable": self.createable,
            "updateable": self.updateable,
            "defaultedOnCreate": self.name in SYSTEM_FIELDS or self.type == "boolean",
            "calculated": False,
            "filterable": self.type != "textarea",
            "sortable": self.type != "textarea",
            "length": self.length or (255 if text else 18 if self.type in ("id", "reference") else 0),
            "precision": 18 if self.type in ("currency", "double", "percent") else 0,
            "scale": 2 if self.type in ("currency", "double", "percent") else 0,
            "soapType": _SOAP.get(self.type, "xsd:string"),
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship or None,
            "restrictedPicklist": self.restricted,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
                for v in self.picklist
            ],
        }


_SOAP = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "currency": "xsd:double",
         "double": "xsd:double", "percent": "xsd:double", "int": "xsd:int", "date": "xsd:date",
         "datetime": "xsd:dateTime"}  # fmt: skip


def _f(name: str, type_: str, label: str = "", **kw) -> Field:
    return Field(name, type_, label or name, **kw)


def _ref(name: str, to: str, rel: str, **kw) -> Field:
    return Field(name, "reference", name, reference_to=(to,), relationship=rel, **kw)


def _read(name: str, type_: str, **kw) -> Field:
    return Field(name, type_, name, createable=False, updateable=False, **kw)


def _system() -> list[Field]:
    return [
        _read("Id", "id"),
        _read("IsDeleted", "boolean"),
        _read("CreatedDate", "datetime"),
        _read("CreatedById", "reference", reference_to=("User",), relationship="CreatedBy"),
        _read("LastModifiedDate", "datetime"),
        _read("LastModifiedById", "reference", reference_to=("User",), relationship="LastModifiedBy"),
        _read("SystemModstamp", "datetime"),
    ]


def _address(prefix: str) -> list[Field]:
    return [_f(f"{prefix}Street", "textarea"), _f(f"{prefix}City", "string"), _f(f"{prefix}State", "string"),
            _f(f"{prefix}PostalCode", "string"), _f(f"{prefix}Country", "string")]  # fmt: skip


ACCOUNT_TYPES = ("Prospect", "Customer - Direct", "Customer - Channel", "Channel Partner / Reseller",
                 "Installation Partner", "Technology Partner", "Other")  # fmt: skip
INDUSTRIES = ("Agriculture", "Banking", "Construction", "Consulting", "Education", "Healthcare", "Manufacturing",
              "Retail", "Technology", "Other")  # fmt: skip
FORECAST = {"Pipeline": "Pipeline", "Best Case": "BestCase", "Commit": "Forecast", "Closed": "Closed",
            "Omitted": "Omitted"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Stage:
    """One OpportunityStage: what IsWon/IsClosed of an opportunity in this stage are."""

    label: str
    probability: int
    closed: bool
    won: bool
    forecast: str  # ForecastCategoryName: Pipeline | Best Case | Commit | Closed | Omitted


def stages(open_stages: list[tuple[str, int]], won: str, lost: list[str]) -> list[Stage]:
    out = [Stage(name, p, False, False, "Pipeline" if p < 60 else "Best Case" if p < 90 else "Commit")
           for name, p in open_stages]  # fmt: skip
    out.append(Stage(won, 100, True, True, "Closed"))
    out += [Stage(name, 0, True, False, "Omitted") for name in lost]
    return out


@dataclass
class Schema:
    """The objects of one org: name -> {field name -> Field}, plus the stages behind StageName."""

    objects: dict[str, dict[str, Field]] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)  # object -> (label, plural)

    def fields(self, sobject: str) -> dict[str, Field]:
        return self.objects[sobject]

    def find(self, sobject: str, name: str) -> Field | None:
        """A field by name, case-insensitively as SOQL and the REST API match them."""
        fields = self.objects.get(sobject, {})
        hit = fields.get(name)
        if hit is not None:
            return hit
        lower = name.lower()
        return next((f for n, f in fields.items() if n.lower() == lower), None)

    def sobject(self, name: str) -> str:
        """The object's proper name from any casing ("" when the org has no such object)."""
        if name in self.objects:
            return name
        return next((o for o in self.objects if o.lower() == name.lower()), "")

    def relationship(self, sobject: str, rel: str) -> Field | None:
        lower = rel.lower()
        return next((f for f in self.objects.get(sobject, {}).values()
                     if f.relationship and f.relationship.lower() == lower), None)  # fmt: skip

    def stage(self, label: str) -> Stage | None:
        return next((s for s in self.stages if s.label == label), None)

    def add_field(self, sobject: str, f: Field) -> None:
        self.objects[sobject][f.name] = f

    def set_stages(self, new: list[Stage]) -> None:
        self.stages = list(new)
        opp = self.objects["Opportunity"]
        opp["StageName"] = replace(opp["StageName"], picklist=tuple(s.label for s in new))

    def describe(self, sobject: str, key_prefix: str, urls: str) -> dict:
        label, plural = self.labels.get(sobject, (sobject, sobject + "s"))
        writable = sobject not in READ_ONLY
        return {
            "name": sobject,
            "label": label,
            "labelPlural": plural,
            "keyPrefix": key_prefix,
            "custom": False,
            "createable": writable,
            "updateable": writable,
            "deletable": writable,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": sobject not in READ_ONLY,
            "urls": {
                "sobject": f"{urls}/sobjects/{sobject}",
                "describe": f"{urls}/sobjects/{sobject}/describe",
                "rowTemplate": f"{urls}/sobjects/{sobject}/{{ID}}",
            },  # fmt: skip
            "fields": [f.describe() for f in self.objects[sobject].values()],
        }


READ_ONLY = ("User", "OpportunityStage", "Organization")
# Our field names per Zoho module -> (Salesforce object, describe type, extra)
CUSTOM_OBJECTS = {"Accounts": "Account", "Deals": "Opportunity"}
CUSTOM_TYPES: dict[str, tuple[str, dict]] = {
    "Xero_Contact_ID": ("string", {"external_id": True, "unique": True}),
    "Xero_Invoice_ID": ("string", {"external_id": True, "unique": True}),
    "Xero_Invoice_Number": ("string", {}),
    "Tax_Number": ("string", {}),
    "Outstanding_Balance": ("currency", {}),
    "Overdue_Balance": ("currency", {}),
    "Amount_Paid": ("currency", {}),
    "Payment_Status": ("picklist", {"picklist": PAYMENT_STATUSES}),
    "Payment_Risk": ("picklist", {"picklist": RISK_BANDS}),
    "Last_Payment_Date": ("date", {}),
    "Expected_Pay_Date": ("date", {}),
}


# The world names the integration's fields as the Zoho wing does; in Salesforce `xz setup salesforce` creates
# them under books-neutral names (the link fields) or the same words, with the custom suffix.
OUR_NAMES = {"Xero_Contact_ID": "Books_Customer_Id", "Xero_Invoice_ID": "Books_Invoice_Id",
             "Xero_Invoice_Number": "Books_Invoice_Number"}  # fmt: skip


def our_name(ours: str) -> str:
    return OUR_NAMES.get(ours, ours) + "__c"


def custom_name(profile: Profile, module: str, ours: str) -> str:
    """The org's API name for one of our fields: ours, or the name a profile's org keeps it under, + `__c`."""
    rename = profile.renames.get((module, ours))
    return rename.api_name + "__c" if rename else our_name(ours)


def field_mapping(profile: Profile) -> dict[str, dict]:
    """What a person connecting this org writes as its Salesforce mapping (`fields`, `values`), in the
    Object.Field__c keys of our names; empty when the org uses our names."""
    fields, values = {}, {}
    for (module, ours), rename in sorted(profile.renames.items()):
        sobject = CUSTOM_OBJECTS.get(module)
        if sobject is None:
            continue
        key = f"{sobject}.{our_name(ours)}"
        if rename.api_name + "__c" != our_name(ours):
            fields[key] = rename.api_name + "__c"
        if rename.values:
            values[key] = dict(rename.values)
    return {k: v for k, v in (("fields", fields), ("values", values)) if v}


def build_schema(profile: Profile, stage_list: list[Stage], *, multicurrency: bool) -> Schema:
    currency = [_f("CurrencyIsoCode", "picklist", "Currency ISO Code")] if multicurrency else []
    owner = [_ref("OwnerId", "User", "Owner")]
    s = Schema()
    s.objects["Organization"] = {f.name: f for f in [
        *_system(), _read("Name", "string"), _read("OrganizationType", "string"), _read("IsSandbox", "boolean"),
        _read("TimeZoneSidKey", "string"), _read("DefaultLocaleSidKey", "string"), _read("IsMultiCurrency", "boolean"),
        _read("DefaultCurrencyIsoCode", "string")]}  # fmt: skip
    s.objects["User"] = {f.name: f for f in [
        *_system(), _read("Username", "string"), _read("Name", "string"), _read("FirstName", "string"),
        _read("LastName", "string"), _read("Email", "email"), _read("IsActive", "boolean")]}  # fmt: skip
    s.objects["OpportunityStage"] = {f.name: f for f in [
        *_system(), _read("MasterLabel", "string"), _read("ApiName", "string"), _read("IsActive", "boolean"),
        _read("IsClosed", "boolean"), _read("IsWon", "boolean"), _read("DefaultProbability", "percent"),
        _read("ForecastCategory", "picklist"), _read("ForecastCategoryName", "picklist"),
        _read("SortOrder", "int")]}  # fmt: skip
    s.objects["Account"] = {f.name: f for f in [
        *_system(), _f("Name", "string", "Account Name", required=True), _f("AccountNumber", "string"),
        _f("Type", "picklist", "Account Type", picklist=ACCOUNT_TYPES + profile.extra_account_types),
        _f("Phone", "phone"), _f("Fax", "phone", "Account Fax"), _f("Website", "url"), *_address("Billing"),
        *_address("Shipping"), _f("Description", "textarea"), _f("Industry", "picklist", picklist=INDUSTRIES),
        _f("AnnualRevenue", "currency", "Annual Revenue"), _f("NumberOfEmployees", "int", "Employees"),
        _ref("ParentId", "Account", "Parent"), *currency, *owner]}  # fmt: skip
    s.objects["Contact"] = {f.name: f for f in [
        *_system(), _ref("AccountId", "Account", "Account"), _f("FirstName", "string"),
        _f("LastName", "string", required=True), _read("Name", "string"), _f("Email", "email"),
        _f("Phone", "phone"), _f("MobilePhone", "phone"), _f("Fax", "phone", "Business Fax"),
        _f("Title", "string"), _f("Department", "string"), *_address("Mailing"), *currency, *owner]}  # fmt: skip
    s.objects["Product2"] = {f.name: f for f in [
        *_system(), _f("Name", "string", "Product Name", required=True), _f("ProductCode", "string"),
        _f("Description", "textarea"), _f("IsActive", "boolean", "Active"), _f("Family", "picklist"),
        *currency]}  # fmt: skip
    s.objects["Pricebook2"] = {f.name: f for f in [
        *_system(), _f("Name", "string", required=True), _f("IsActive", "boolean"), _read("IsStandard", "boolean"),
        _f("Description", "textarea")]}  # fmt: skip
    s.objects["PricebookEntry"] = {f.name: f for f in [
        *_system(), _ref("Pricebook2Id", "Pricebook2", "Pricebook2", required=True, updateable=False),
        _ref("Product2Id", "Product2", "Product2", required=True, updateable=False),
        _f("UnitPrice", "currency", "List Price", required=True), _f("IsActive", "boolean"),
        _f("UseStandardPrice", "boolean"), _read("Name", "string"), _read("ProductCode", "string"),
        *currency]}  # fmt: skip
    s.objects["Opportunity"] = {f.name: f for f in [
        *_system(), _ref("AccountId", "Account", "Account"), _f("Name", "string", required=True),
        _f("Description", "textarea"), _f("StageName", "picklist", "Stage", required=True, restricted=True),
        _f("Amount", "currency"), _f("Probability", "percent", "Probability (%)"),
        _f("CloseDate", "date", "Close Date", required=True),
        _f("Type", "picklist", "Opportunity Type", picklist=("Existing Business", "New Business")),
        _read("IsClosed", "boolean"), _read("IsWon", "boolean"), _read("ForecastCategory", "picklist"),
        _f("ForecastCategoryName", "picklist", "Forecast Category", picklist=tuple(FORECAST)),
        _ref("ContactId", "Contact", "Contact"), _ref("Pricebook2Id", "Pricebook2", "Pricebook2"),
        _read("HasOpportunityLineItem", "boolean"), *currency, *owner]}  # fmt: skip
    s.objects["OpportunityLineItem"] = {f.name: f for f in [
        *_system(), _ref("OpportunityId", "Opportunity", "Opportunity", required=True, updateable=False),
        _ref("PricebookEntryId", "PricebookEntry", "PricebookEntry", updateable=False),
        _ref("Product2Id", "Product2", "Product2", updateable=False), _read("Name", "string"),
        _f("Quantity", "double", required=True), _f("UnitPrice", "currency", "Sales Price"),
        _read("ListPrice", "currency"), _f("TotalPrice", "currency", "Total Price"),
        _f("Discount", "percent", "Discount"), _f("ServiceDate", "date", "Date"), _read("SortOrder", "int"),
        _f("Description", "string", "Line Description"), _read("ProductCode", "string"), *currency]}  # fmt: skip
    s.labels = {"Opportunity": ("Opportunity", "Opportunities"), "OpportunityLineItem": ("Opportunity Product",
                "Opportunity Product"), "Product2": ("Product", "Products"), "Pricebook2": ("Price Book", "Price Books"),
                "PricebookEntry": ("Price Book Entry", "Price Book Entries"), "OpportunityStage":
                ("Opportunity Stage", "Opportunity Stages")}  # fmt: skip
    if profile.custom_fields:
        for module, sobject in CUSTOM_OBJECTS.items():
            for ours in INTEGRATION_FIELDS[module]:
                type_, extra = CUSTOM_TYPES[ours]
                if "picklist" in extra:
                    extra = {
                        **extra,
                        "picklist": tuple(profile.value(module, ours, v) for v in extra["picklist"]),
                    }
                name = custom_name(profile, module, ours)
                rename = profile.renames.get((module, ours))
                label = rename.label if rename else ours.replace("_", " ")
                s.add_field(sobject, Field(name, type_, label, custom=True, **extra))
    s.set_stages(stage_list)
    return s
