"""The Zoho CRM emulator's modules and fields: what `settings/modules` and `settings/fields` describe.

Field definitions drive everything else in the emulator: validation of writes (mandatory, type,
length, picklist, unique), the default upsert duplicate-check fields, which fields are lookups or
subforms, and the metadata responses the official SDK reads before it converts records
(zoho-api.md §5, §11, §12).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from xz_pipeline.sandbox.profiles import WON_STAGE, Profile

# data_type -> json_type, as the fields API reports them.
JSON_TYPES = {
    "text": "string",
    "textarea": "string",
    "email": "string",
    "phone": "string",
    "website": "string",
    "picklist": "string",
    "multiselectpicklist": "jsonarray",
    "autonumber": "string",
    "integer": "integer",
    "bigint": "string",
    "double": "double",
    "currency": "double",
    "decimal": "double",
    "percent": "double",
    "boolean": "boolean",
    "date": "string",
    "datetime": "string",
    "lookup": "jsonobject",
    "ownerlookup": "jsonobject",
    "userlookup": "jsonobject",
    "subform": "jsonarray",
    "tag": "jsonarray",
}

# Default lengths per type (zoho-api.md §5 "Field type limits").
DEFAULT_LENGTH = {
    "text": 255,
    "textarea": 32000,
    "email": 100,
    "phone": 30,
    "website": 255,
    "picklist": 120,
    "integer": 9,
    "bigint": 18,
    "double": 16,
    "currency": 16,
    "decimal": 16,
    "percent": 5,
}

# Custom fields per module by edition (zoho-api.md §12).
CUSTOM_FIELD_LIMITS = {"Free": 5, "Standard": 10, "Professional": 155, "Enterprise": 300, "Ultimate": 500}
CREATABLE_TYPES = (
    "text",
    "textarea",
    "email",
    "phone",
    "website",
    "picklist",
    "integer",
    "bigint",
    "double",
    "currency",
    "decimal",
    "percent",
    "boolean",
    "date",
    "datetime",
)


@dataclass(slots=True)
class FieldDef:
    api_name: str
    label: str
    data_type: str
    mandatory: bool = False
    read_only: bool = False
    custom: bool = False
    unique: bool = False
    external: str = ""  # "", "org" or "user": an external-ID field (zoho-api.md §12)
    lookup: str = ""  # target module of a lookup
    picklist: tuple[str, ...] = ()
    length: int | None = None
    subform: str = ""  # subform api name (line items)
    id: str = ""
    forecast: tuple[
        str, ...
    ] = ()  # a stage picklist's forecast_type per value (Open, Closed Won, Closed Lost)

    @property
    def json_type(self) -> str:
        return JSON_TYPES.get(self.data_type, "string")

    @property
    def max_length(self) -> int | None:
        return self.length if self.length is not None else DEFAULT_LENGTH.get(self.data_type)


@dataclass(slots=True)
class ModuleDef:
    api_name: str
    singular: str
    plural: str
    id: str
    duplicate_field: str  # the system duplicate-check field for upsert (zoho-api.md §5)
    fields: list[FieldDef] = field(default_factory=list)
    generated_type: str = "default"

    def field(self, api_name: str) -> FieldDef | None:
        for f in self.fields:
            if f.api_name == api_name:
                return f
        return None

    def field_ci(self, api_name: str) -> FieldDef | None:
        """Case-insensitive lookup: COQL keywords and field names are matched without case."""
        low = api_name.lower()
        for f in self.fields:
            if f.api_name.lower() == low:
                return f
        return None


RISK_BANDS = ("Low", "Medium", "High")  # the integration's Payment_Risk picklist (`xz setup zoho`)
SE_MODULE = "$se_module"  # a lookup whose target module the record names (Tasks' What_Id)
TASK_STATUSES = ("Not Started", "Deferred", "In Progress", "Completed", "Waiting for input")
WHAT_MODULES = ("Accounts", "Deals", "Products", "Invoices")  # what a task may be related to, of ours


def _sys(api_name: str, label: str, data_type: str, **kw) -> FieldDef:
    return FieldDef(api_name, label, data_type, **kw)


def _common() -> list[FieldDef]:
    return [
        _sys("Owner", "Owner", "ownerlookup", lookup="users"),
        _sys("Created_By", "Created By", "ownerlookup", read_only=True, lookup="users"),
        _sys("Modified_By", "Modified By", "ownerlookup", read_only=True, lookup="users"),
        _sys("Created_Time", "Created Time", "datetime", read_only=True),
        _sys("Modified_Time", "Modified Time", "datetime", read_only=True),
        _sys("Tag", "Tag", "tag", read_only=True),
    ]


def _address(prefix: str, code: str = "Code") -> list[FieldDef]:
    return [
        _sys(f"{prefix}_Street", f"{prefix} Street", "text", length=250),
        _sys(f"{prefix}_City", f"{prefix} City", "text", length=100),
        _sys(f"{prefix}_State", f"{prefix} State", "text", length=100),
        _sys(f"{prefix}_{code}", f"{prefix} {code}", "text", length=30),
        _sys(f"{prefix}_Country", f"{prefix} Country", "text", length=100),
    ]


# Standard pipeline (zoho-api.md §12): actual values of the Stage picklist.
DEAL_STAGES = (
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
    "Closed Lost to Competition",
)
STAGE_PROBABILITY = {
    "Qualification": 10,
    "Needs Analysis": 20,
    "Value Proposition": 40,
    "Id. Decision Makers": 60,
    "Proposal/Price Quote": 75,
    "Negotiation/Review": 90,
    "Closed Won": 100,
    "Closed Lost": 0,
    "Closed Lost to Competition": 0,
}
STAGE_FORECAST = ("Open",) * 6 + ("Closed Won", "Closed Lost", "Closed Lost")
FORECAST_PROBABILITY = {"Closed Won": 100, "Closed Lost": 0}
STANDARD_PIPELINE = "Standard (Standard)"
INVOICE_STATUSES = ("Created", "Approved", "Delivered", "Cancelled", "Paid")
PAYMENT_STATUSES = ("-None-", "Unpaid", "Partially Paid", "Paid", "Overdue")

# Related lists served by `GET /{module}/{id}/{related_list}` (Zoho's Related Records API): parent module
# -> related list API name -> (the related module, the relation's own fields). A deal's Products carry
# the quantity and list price the deal was sold at, beside the product's own fields.
RELATED_LISTS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "Deals": {"Products": ("Products", ("Quantity", "List_Price"))},
}

# Line-item subform of Invoices (zoho-api.md §12).
INVOICED_ITEMS = [
    _sys("Product_Name", "Product Name", "lookup", mandatory=True, lookup="Products"),
    _sys("Quantity", "Quantity", "double"),
    _sys("List_Price", "List Price", "currency"),
    _sys("Discount", "Discount", "currency"),
    _sys("Total", "Total", "currency", read_only=True),
    _sys("Tax", "Tax", "currency"),
    _sys("Net_Total", "Net Total", "currency", read_only=True),
    _sys("Description", "Description", "textarea", length=2000),
    _sys("Line_Tax", "Line Tax", "subform"),
]


def standard_modules() -> list[ModuleDef]:
    """Fresh definitions of the five modules the pipeline uses (each org gets its own copy)."""
    accounts = ModuleDef(
        "Accounts",
        "Account",
        "Accounts",
        "1000000000002",
        "Account_Name",
        [
            _sys("Account_Name", "Account Name", "text", mandatory=True, length=200),
            _sys("Account_Number", "Account Number", "text", length=40),
            _sys("Phone", "Phone", "phone"),
            _sys("Fax", "Fax", "phone"),
            _sys("Website", "Website", "website"),
            _sys(
                "Account_Type",
                "Account Type",
                "picklist",
                picklist=(
                    "-None-",
                    "Analyst",
                    "Competitor",
                    "Customer",
                    "Distributor",
                    "Integrator",
                    "Investor",
                    "Other",
                    "Partner",
                    "Press",
                    "Prospect",
                    "Reseller",
                    "Supplier",
                    "Vendor",
                ),
            ),
            _sys("Industry", "Industry", "text", length=120),
            _sys("Annual_Revenue", "Annual Revenue", "currency"),
            _sys("Employees", "Employees", "integer"),
            _sys("Parent_Account", "Parent Account", "lookup", lookup="Accounts"),
            *_address("Billing"),
            *_address("Shipping"),
            _sys("Description", "Description", "textarea"),
            _sys("Currency", "Currency", "picklist", picklist=()),
            _sys("Exchange_Rate", "Exchange Rate", "decimal"),
            *_common(),
            _sys(
                "Xero_Contact_ID",
                "Xero Contact ID",
                "text",
                custom=True,
                unique=True,
                external="org",
                length=64,
            ),
            _sys("Tax_Number", "Tax Number", "text", custom=True, length=50),
            _sys("Outstanding_Balance", "Outstanding Balance", "currency", custom=True),
            _sys("Overdue_Balance", "Overdue Balance", "currency", custom=True),
            _sys("Payment_Risk", "Payment Risk", "picklist", custom=True, picklist=RISK_BANDS),
            _sys("Expected_Pay_Date", "Expected Pay Date", "date", custom=True),
        ],
    )
    contacts = ModuleDef(
        "Contacts",
        "Contact",
        "Contacts",
        "1000000000003",
        "Email",
        [
            _sys("First_Name", "First Name", "text", length=40),
            _sys("Last_Name", "Last Name", "text", mandatory=True, length=80),
            _sys("Full_Name", "Contact Name", "text", read_only=True),
            _sys("Email", "Email", "email"),
            _sys("Secondary_Email", "Secondary Email", "email"),
            _sys("Phone", "Phone", "phone"),
            _sys("Mobile", "Mobile", "phone"),
            _sys("Account_Name", "Account Name", "lookup", lookup="Accounts"),
            _sys("Title", "Title", "text", length=100),
            _sys("Department", "Department", "text", length=100),
            *_address("Mailing", "Zip"),
            _sys("Email_Opt_Out", "Email Opt Out", "boolean"),
            _sys(
                "Lead_Source",
                "Lead Source",
                "picklist",
                picklist=(
                    "-None-",
                    "Advertisement",
                    "Cold Call",
                    "Employee Referral",
                    "External Referral",
                    "Online Store",
                    "Partner",
                    "Public Relations",
                    "Sales Email Alias",
                    "Seminar Partner",
                    "Internal Seminar",
                    "Trade Show",
                    "Web Download",
                    "Web Research",
                    "Chat",
                ),
            ),
            _sys("Description", "Description", "textarea"),
            *_common(),
        ],
    )
    deals = ModuleDef(
        "Deals",
        "Deal",
        "Deals",
        "1000000000004",
        "Deal_Name",
        [
            _sys("Deal_Name", "Deal Name", "text", mandatory=True, length=120),
            _sys("Stage", "Stage", "picklist", mandatory=True, picklist=DEAL_STAGES, forecast=STAGE_FORECAST),
            _sys("Pipeline", "Pipeline", "picklist", mandatory=True, picklist=(STANDARD_PIPELINE,)),
            _sys("Closing_Date", "Closing Date", "date"),
            _sys("Amount", "Amount", "currency"),
            _sys("Probability", "Probability (%)", "integer", length=3),
            _sys("Expected_Revenue", "Expected Revenue", "currency", read_only=True),
            _sys("Account_Name", "Account Name", "lookup", lookup="Accounts"),
            _sys("Contact_Name", "Contact Name", "lookup", lookup="Contacts"),
            _sys("Type", "Type", "picklist", picklist=("-None-", "Existing Business", "New Business")),
            _sys("Lead_Source", "Lead Source", "text", length=120),
            _sys("Next_Step", "Next Step", "text", length=100),
            _sys("Reason_For_Loss__s", "Reason For Loss", "text", length=120),
            _sys("Currency", "Currency", "picklist", picklist=()),
            _sys("Description", "Description", "textarea"),
            *_common(),
            _sys("Xero_Invoice_ID", "Xero Invoice ID", "text", custom=True, length=64),
            _sys("Xero_Invoice_Number", "Xero Invoice Number", "text", custom=True, length=64),
            _sys("Payment_Status", "Payment Status", "picklist", custom=True, picklist=PAYMENT_STATUSES),
            _sys("Amount_Paid", "Amount Paid", "currency", custom=True),
            _sys("Last_Payment_Date", "Last Payment Date", "date", custom=True),
            _sys("Payment_Risk", "Payment Risk", "picklist", custom=True, picklist=RISK_BANDS),
            _sys("Expected_Pay_Date", "Expected Pay Date", "date", custom=True),
        ],
    )
    products = ModuleDef(
        "Products",
        "Product",
        "Products",
        "1000000000005",
        "Product_Name",
        [
            _sys("Product_Name", "Product Name", "text", mandatory=True, length=200),
            _sys("Product_Code", "Product Code", "text", length=40),
            _sys("Product_Active", "Product Active", "boolean"),
            _sys("Product_Category", "Product Category", "text", length=120),
            _sys("Unit_Price", "Unit Price", "currency"),
            _sys("Tax", "Tax", "multiselectpicklist"),
            _sys("Taxable", "Taxable", "boolean"),
            _sys("Description", "Description", "textarea"),
            _sys("Currency", "Currency", "picklist", picklist=()),
            *_common(),
        ],
    )
    invoices = ModuleDef(
        "Invoices",
        "Invoice",
        "Invoices",
        "1000000000006",
        "Subject",
        [
            _sys("Subject", "Subject", "text", mandatory=True, length=255),
            _sys("Invoice_Number", "Invoice Number", "autonumber", read_only=True),
            _sys("Invoice_Date", "Invoice Date", "date"),
            _sys("Due_Date", "Due Date", "date"),
            _sys("Status", "Status", "picklist", picklist=INVOICE_STATUSES),
            _sys("Account_Name", "Account Name", "lookup", mandatory=True, lookup="Accounts"),
            _sys("Contact_Name", "Contact Name", "lookup", lookup="Contacts"),
            _sys("Sales_Order", "Sales Order", "text", length=120),
            _sys("Purchase_Order", "Purchase Order", "text", length=120),
            _sys("Sub_Total", "Sub Total", "currency", read_only=True),
            _sys("Discount", "Discount", "currency"),
            _sys("Tax", "Tax", "currency", read_only=True),
            _sys("Adjustment", "Adjustment", "currency"),
            _sys("Grand_Total", "Grand Total", "currency", read_only=True),
            *_address("Billing"),
            *_address("Shipping"),
            _sys("Terms_and_Conditions", "Terms and Conditions", "textarea"),
            _sys("Currency", "Currency", "picklist", picklist=()),
            _sys("Description", "Description", "textarea"),
            _sys("Invoiced_Items", "Invoiced Items", "subform", mandatory=True, subform="Invoiced_Items"),
            *_common(),
            _sys(
                "Xero_Invoice_ID",
                "Xero Invoice ID",
                "text",
                custom=True,
                unique=True,
                external="org",
                length=64,
            ),
            _sys("Deal_Name", "Deal Name", "lookup", custom=True, lookup="Deals"),
            _sys("Payment_Status", "Payment Status", "picklist", custom=True, picklist=PAYMENT_STATUSES),
            _sys("Amount_Paid", "Amount Paid", "currency", custom=True),
            _sys("Last_Payment_Date", "Last Payment Date", "date", custom=True),
        ],
    )
    tasks = ModuleDef(
        "Tasks",
        "Task",
        "Tasks",
        "1000000000007",
        "Subject",
        [
            _sys("Subject", "Subject", "text", mandatory=True, length=255),
            _sys("Due_Date", "Due Date", "date"),
            _sys("Status", "Status", "picklist", picklist=TASK_STATUSES),
            _sys("Priority", "Priority", "picklist", picklist=("High", "Highest", "Low", "Lowest", "Normal")),
            # "Related To": a record of the module `$se_module` names (Accounts, Deals, ...)
            _sys("What_Id", "Related To", "lookup", lookup=SE_MODULE),
            _sys("Who_Id", "Contact Name", "lookup", lookup="Contacts"),
            _sys("Send_Notification_Email", "Send Notification Email", "boolean"),
            _sys("Closed_Time", "Closed Time", "datetime", read_only=True),
            _sys("Description", "Description", "textarea"),
            *_common(),
        ],
    )
    modules = [accounts, contacts, deals, products, invoices, tasks]
    for m in modules:
        for i, f in enumerate(m.fields):
            f.id = f"{m.id}{i + 100:04d}"
    return modules


def label_to_api_name(label: str) -> str:
    """Zoho derives a custom field's API name from its label: spaces and symbols become `_`."""
    name = re.sub(r"[^0-9A-Za-z]+", "_", label.strip()).strip("_")
    return name or "Field"


MODULE_IDS = {
    "Accounts": "1000000000002",
    "Contacts": "1000000000003",
    "Deals": "1000000000004",
    "Products": "1000000000005",
    "Invoices": "1000000000006",
    "Tasks": "1000000000007",
}


def field_json(f: FieldDef) -> dict:
    """One field as `GET /settings/fields` returns it (the keys the SDK's converter reads)."""
    out: dict = {
        "api_name": f.api_name,
        "id": f.id,
        "field_label": f.label,
        "display_label": f.label,
        "data_type": f.data_type,
        "json_type": f.json_type,
        "length": f.max_length or 0,
        "system_mandatory": f.mandatory,
        "custom_field": f.custom,
        "read_only": f.read_only,
        "field_read_only": f.read_only,
        "visible": True,
        "unique": {"casesensitive": "false"} if f.unique else {},
        "external": {"type": f.external, "show": True} if f.external else None,
        "decimal_place": 2 if f.data_type in ("currency", "double", "decimal") else None,
        "lookup": (
            {"module": {"api_name": f.lookup, "id": MODULE_IDS.get(f.lookup, "1000000000001")}}
            if f.lookup and f.lookup != "users"
            else {}
        ),
        "pick_list_values": [
            {"display_value": v, "actual_value": v, "id": f"{f.id}{i:03d}", "type": "used"}
            for i, v in enumerate(f.picklist)
        ],
    }
    for i, kind in enumerate(f.forecast):  # a stage: what the value means, whatever the org calls it
        out["pick_list_values"][i].update(
            forecast_type=kind,
            sequence_number=i + 1,
            probability=STAGE_PROBABILITY.get(f.picklist[i], FORECAST_PROBABILITY.get(kind, 50)),
        )
    if f.data_type == "subform":
        out["subform"] = {"module": f.subform or f.api_name, "id": f.id}
    return out


def module_json(m: ModuleDef) -> dict:
    """One module as `GET /settings/modules` returns it."""
    return {
        "api_name": m.api_name,
        "module_name": m.plural,
        "singular_label": m.singular,
        "plural_label": m.plural,
        "id": m.id,
        "api_supported": True,
        "generated_type": m.generated_type,
        "creatable": True,
        "editable": True,
        "deletable": True,
        "viewable": True,
        "global_search_supported": True,
        "visibility": 1,
        "status": "visible",
    }


def copy_modules(modules: list[ModuleDef]) -> list[ModuleDef]:
    return [replace(m, fields=[replace(f) for f in m.fields]) for m in modules]


def profile_modules(profile: Profile) -> list[ModuleDef]:
    """The modules and fields of an org of this profile: its edition's modules, the custom fields it has
    (under its own names), its stage and Account_Type picklists, Currency only in a multi-currency org."""
    modules = [m for m in copy_modules(_STANDARD) if m.api_name not in profile.absent_modules]
    for m in modules:
        kept = []
        for f in m.fields:
            if not profile.has_field(m.api_name, f.api_name) or (
                f.api_name == "Deal_Name" and m.api_name == "Invoices" and not profile.custom_fields
            ):
                continue
            rename = profile.renames.get((m.api_name, f.api_name))
            if rename:
                f.api_name, f.label = rename.api_name, rename.label
                words = dict(rename.values)
                f.picklist = tuple(words.get(v, v) for v in f.picklist)
            if f.api_name == "Stage":
                f.picklist = tuple(profile.won_stage if v == WON_STAGE else v for v in f.picklist)
            if f.api_name == "Account_Type" and profile.extra_account_types:
                f.picklist = (*f.picklist, *profile.extra_account_types)
            kept.append(f)
        m.fields = kept
    return modules


def stage_probabilities(mdef: ModuleDef | None) -> dict[str, int]:
    """Stage value -> the probability Zoho sets when a deal enters it (by forecast type for renamed stages)."""
    stage = mdef.field("Stage") if mdef else None
    if stage is None:
        return dict(STAGE_PROBABILITY)
    return {
        v: STAGE_PROBABILITY.get(v, FORECAST_PROBABILITY.get(kind, 50))
        for v, kind in zip(stage.picklist, stage.forecast, strict=False)
    }


_STANDARD = standard_modules()
