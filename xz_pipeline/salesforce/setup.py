"""`xz setup salesforce`: create, once, the custom fields the integration reads and writes in Salesforce.

Through the Tooling API (`POST /tooling/sobjects/CustomField`). Idempotent by construction: the org is
described first and only absent fields are created (a second run creates nothing). A field the connection
maps to one of the org's own (`[connections.<name>.salesforce.fields]`) is never created under our name.
The books ids are external-id fields (unique, case-insensitive), which is what upserts key on.

A field created through the Tooling API has no field-level security yet: until the integration user is
granted it (a permission set), the REST API neither describes nor accepts it. Setup describes the org
again after creating and names the fields still invisible, with what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xz_pipeline.core.errors import ApiError
from xz_pipeline.salesforce.client import SalesforceClient
from xz_pipeline.salesforce.fieldmap import DEFAULT, FieldMap

PAYMENT_STATUSES = ("Unpaid", "Partially Paid", "Paid", "Overdue")
RISK_BANDS = ("Low", "Medium", "High")


@dataclass(frozen=True)
class FieldSpec:
    api_name: str
    label: str
    type: str  # Text | Currency | Date | Picklist
    length: int | None = None
    external_id: bool = False
    picklist: tuple[str, ...] = ()

    def metadata(self) -> dict:
        out: dict = {"label": self.label, "type": self.type}
        if self.type == "Text":
            out["length"] = self.length or 255
        if self.type == "Currency":
            out.update(precision=16, scale=2)
        if self.external_id:
            out.update(externalId=True, unique=True, caseSensitive=False)
        if self.picklist:
            out["valueSet"] = {
                "restricted": True,
                "valueSetDefinition": {"sorted": False, "value": [{"fullName": v, "label": v, "default": False}
                                                                  for v in self.picklist]},
            }  # fmt: skip
        return out


CUSTOM_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "Account": (
        FieldSpec("Books_Customer_Id__c", "Books Customer ID", "Text", 64, external_id=True),
        FieldSpec("Tax_Number__c", "Tax Number", "Text", 50),
        FieldSpec("Outstanding_Balance__c", "Outstanding Balance", "Currency"),
        FieldSpec("Overdue_Balance__c", "Overdue Balance", "Currency"),
        FieldSpec("Payment_Risk__c", "Payment Risk", "Picklist", picklist=RISK_BANDS),
        FieldSpec("Expected_Pay_Date__c", "Expected Pay Date", "Date"),
    ),
    "Opportunity": (
        FieldSpec("Books_Invoice_Id__c", "Books Invoice ID", "Text", 64, external_id=True),
        FieldSpec("Books_Invoice_Number__c", "Books Invoice Number", "Text", 64),
        FieldSpec("Payment_Status__c", "Payment Status", "Picklist", picklist=PAYMENT_STATUSES),
        FieldSpec("Amount_Paid__c", "Amount Paid", "Currency"),
        FieldSpec("Last_Payment_Date__c", "Last Payment Date", "Date"),
        FieldSpec("Payment_Risk__c", "Payment Risk", "Picklist", picklist=RISK_BANDS),
        FieldSpec("Expected_Pay_Date__c", "Expected Pay Date", "Date"),
    ),
}


@dataclass
class SetupResult:
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)  # ours -> the org's own field
    invisible: list[str] = field(default_factory=list)  # created, but the API user cannot see them yet


def _described(client: SalesforceClient, sobject: str) -> set[str]:
    return {str(f.get("name")) for f in client.describe(sobject).get("fields") or [] if isinstance(f, dict)}


def setup_connection(client: SalesforceClient, fm: FieldMap = DEFAULT) -> SetupResult:
    """Create the absent custom fields (ours, not mapped elsewhere); say what was there and what the API
    user cannot see yet."""
    result = SetupResult()
    for sobject, specs in CUSTOM_FIELDS.items():
        have = _described(client, sobject)
        for spec in specs:
            name = f"{sobject}.{spec.api_name}"
            theirs = fm.api(sobject, spec.api_name)
            if theirs != spec.api_name:
                result.mapped[name] = f"{sobject}.{theirs}"
                continue
            if spec.api_name in have:
                result.present.append(name)
                continue
            try:
                client.create_custom_field(name, spec.metadata())
            except ApiError as exc:
                if exc.code != "DUPLICATE_DEVELOPER_NAME":  # made meanwhile, or hidden from this user
                    raise
            result.created.append(name)
    for sobject in CUSTOM_FIELDS:
        created = [n for n in result.created if n.startswith(f"{sobject}.")]
        if created:
            have = _described(client, sobject)
            result.invisible += [n for n in created if n.split(".", 1)[1] not in have]
    return result
