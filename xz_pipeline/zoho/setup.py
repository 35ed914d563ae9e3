"""`xz setup zoho`: create, once, the custom fields the integration reads and writes in Zoho CRM.

Idempotent by construction: the org's field metadata is read first and only absent fields are created
(a second run creates nothing), matched by API name or label as Zoho derives one from the other. A field
that exists with another type is reported, never altered: changing a field's type loses data in Zoho.
Invoices is an inventory module that lower editions lack; without it its fields are skipped. Only the
fields of the enabled write-back policies are created; fields the connection maps to the org's own are
never created under our names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.redact import get_logger
from xz_pipeline.zoho.client import ZohoClient
from xz_pipeline.zoho.fieldmap import DEFAULT, FieldMap

log = get_logger(__name__)

PAYMENT_STATUSES = ("Unpaid", "Partially Paid", "Paid", "Overdue")
RISK_BANDS = ("Low", "Medium", "High")  # insights.payment_risk's bands, as the CRM shows them
PROJECT_STATUSES = ("In Progress", "Over Budget", "Closed")  # projects_to_crm's (writeback/projects.py)


@dataclass(frozen=True)
class FieldSpec:
    """A custom field: its label (Zoho derives the API name from it), type and options."""

    api_name: str
    label: str
    data_type: str
    length: int | None = None
    external: bool = False  # an org-wide external id: upsert/lookup by the Xero id
    picklist: tuple[str, ...] = ()

    def body(self) -> dict:
        out: dict = {"field_label": self.label, "data_type": self.data_type}
        if self.length:
            out["length"] = self.length
        if self.external:
            out["external"] = {"type": "org", "show": True}
        if self.data_type == "currency":
            out["decimal_place"] = 2
        if self.picklist:
            out["pick_list_values"] = [{"display_value": v, "actual_value": v} for v in self.picklist]
        return out


PROJECT_SPECS = (
    FieldSpec("Hours_Delivered", "Hours Delivered", "double"),
    FieldSpec("Unbilled_Amount", "Unbilled Amount", "currency"),
    FieldSpec("Project_Status", "Project Status", "picklist", picklist=PROJECT_STATUSES),
)
# Fields made only when their policy is asked for by name (never by "every field"): projects_to_crm's.
OPT_IN_FIELDS: dict[str, tuple[FieldSpec, ...]] = {"Accounts": PROJECT_SPECS, "Deals": PROJECT_SPECS}
CUSTOM_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "Accounts": (
        FieldSpec("Xero_Contact_ID", "Xero Contact ID", "text", length=64, external=True),
        FieldSpec("Tax_Number", "Tax Number", "text", length=50),
        FieldSpec("Outstanding_Balance", "Outstanding Balance", "currency"),
        FieldSpec("Overdue_Balance", "Overdue Balance", "currency"),
        FieldSpec("Payment_Risk", "Payment Risk", "picklist", picklist=RISK_BANDS),
        FieldSpec("Expected_Pay_Date", "Expected Pay Date", "date"),
    ),
    "Deals": (
        FieldSpec("Xero_Invoice_ID", "Xero Invoice ID", "text", length=64),
        FieldSpec("Xero_Invoice_Number", "Xero Invoice Number", "text", length=64),
        FieldSpec("Payment_Status", "Payment Status", "picklist", picklist=PAYMENT_STATUSES),
        FieldSpec("Amount_Paid", "Amount Paid", "currency"),
        FieldSpec("Last_Payment_Date", "Last Payment Date", "date"),
        FieldSpec("Payment_Risk", "Payment Risk", "picklist", picklist=RISK_BANDS),
        FieldSpec("Expected_Pay_Date", "Expected Pay Date", "date"),
    ),
    "Invoices": (
        FieldSpec("Xero_Invoice_ID", "Xero Invoice ID", "text", length=64, external=True),
        FieldSpec("Payment_Status", "Payment Status", "picklist", picklist=PAYMENT_STATUSES),
        FieldSpec("Amount_Paid", "Amount Paid", "currency"),
        FieldSpec("Last_Payment_Date", "Last Payment Date", "date"),
    ),
}


def _present(spec: FieldSpec, existing: list[dict]) -> dict | None:
    for f in existing:
        if f.get("api_name") == spec.api_name:
            return f
        if str(f.get("field_label") or "").strip().lower() == spec.label.lower():
            return f
    return None


# Which of our fields each write-back policy needs: setup creates only those of the enabled policies.
POLICY_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "xero_customer_to_crm": (("Accounts", "Xero_Contact_ID"), ("Accounts", "Tax_Number")),
    "field_corrections": (("Accounts", "Tax_Number"),),
    "won_deal_to_invoice": (("Deals", "Xero_Invoice_ID"), ("Deals", "Xero_Invoice_Number")),
    "payment_to_crm": (
        ("Accounts", "Outstanding_Balance"),
        ("Accounts", "Overdue_Balance"),
        *(
            (m, f)
            for m in ("Deals", "Invoices")
            for f in ("Payment_Status", "Amount_Paid", "Last_Payment_Date")
        ),
        ("Invoices", "Xero_Invoice_ID"),
    ),
    "payment_risk_to_crm": tuple(
        (m, f) for m in ("Accounts", "Deals") for f in ("Payment_Risk", "Expected_Pay_Date")
    ),
    "projects_to_crm": tuple((m, s.api_name) for m in ("Accounts", "Deals") for s in PROJECT_SPECS),
}
QUOTA_CODES = ("LIMIT_EXCEEDED",)


class SetupResult(list):
    """The `Module.Field` names created; `skipped`: policy -> why its fields could not all be created."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}


def wanted_fields(policies: Iterable[str] | None) -> set[tuple[str, str]]:
    """(module, our API name) of the fields the given policies need (all of ours when None)."""
    if policies is None:
        return {(m, s.api_name) for m, specs in CUSTOM_FIELDS.items() for s in specs}
    return {mf for p in policies for mf in POLICY_FIELDS.get(p, ())}


def ensure_custom_fields(
    client: ZohoClient, policies: Iterable[str] | None = None, fm: FieldMap = DEFAULT
) -> SetupResult:
    """Create, where absent, the custom fields of the enabled policies (`policies`: their names; None:
    every field); a field the connection maps to one of the org's own counts as present. A creation the
    org refuses for its custom-field quota skips the policies that need it, with the reason."""
    policies = None if policies is None else list(policies)
    wanted = wanted_fields(policies)
    available = {m.get("api_name") for m in client.modules() if m.get("api_supported", True)}
    created = SetupResult()
    for module, all_specs in CUSTOM_FIELDS.items():
        all_specs = (*all_specs, *OPT_IN_FIELDS.get(module, ()))
        specs = [s for s in all_specs if (module, s.api_name) in wanted]
        if not specs:
            continue
        if module not in available:
            log.warning("zoho setup: the org has no %s module (edition?); its fields are skipped", module)
            continue
        existing = client.fields(module)
        missing = []
        for spec in specs:
            theirs = fm.api(module, spec.api_name)
            found = (
                next((f for f in existing if f.get("api_name") == theirs), None)
                if theirs != spec.api_name
                else _present(spec, existing)
            )
            if found is None:
                if theirs != spec.api_name:
                    log.warning(
                        "zoho setup: %s.%s is mapped to %s, which the org lacks; not created",
                        module,
                        spec.api_name,
                        theirs,
                    )
                else:
                    missing.append(spec)
                continue
            if found.get("data_type") != spec.data_type:
                log.warning(
                    "zoho setup: %s.%s exists as %s, expected %s; left as it is",
                    module,
                    found.get("api_name"),
                    found.get("data_type"),
                    spec.data_type,
                )
            have = {str(v.get("actual_value")) for v in found.get("pick_list_values") or []}
            lacking = [fm.value_out(module, spec.api_name, v) for v in spec.picklist]
            lacking = [v for v in lacking if v not in have]
            if lacking:
                log.warning("zoho setup: %s.%s lacks picklist values %s", module, theirs, lacking)
        if not missing:
            continue
        try:
            results: list = client.create_fields(module, [spec.body() for spec in missing])
        except ApiError as exc:
            if exc.code not in QUOTA_CODES:
                raise
            results = [exc] * len(missing)  # the whole call refused for the quota
        for spec, result in zip(missing, results, strict=True):
            code, message = result.code, result.message
            if getattr(result, "ok", False):
                created.append(f"{module}.{spec.api_name}")
            elif code == "DUPLICATE_DATA":
                log.info("zoho setup: %s.%s was created meanwhile", module, spec.api_name)
            elif code in QUOTA_CODES:
                why = f"Zoho refused {module}.{spec.api_name}: {code} (the edition's custom-field quota): {message}"
                for policy, fields in POLICY_FIELDS.items():
                    if (module, spec.api_name) in fields and (policies is None or policy in policies):
                        created.skipped.setdefault(policy, why)
                log.warning("zoho setup: %s", why)
            else:
                raise ApiError("zoho", 400, code, f"could not create {module}.{spec.api_name}: {message}",
                               field=getattr(result, "field", None), endpoint="POST settings/fields")  # fmt: skip
    return created


def setup_connection(client: ZohoClient, connection: str) -> SetupResult:
    """`xz setup zoho` for one connection: the fields of its enabled write-back policies, under its mapping."""
    from xz_pipeline.writeback.policies import POLICIES, load_policies
    from xz_pipeline.zoho import fieldmap

    policies = load_policies(connection)
    enabled = [p for p in POLICIES if policies.active(p)]
    return ensure_custom_fields(client, enabled, fieldmap.load(connection))
