"""`xz setup zoho`: create, once, the custom fields the integration reads and writes in Zoho CRM.

Idempotent by construction: the org's field metadata is read first and only absent fields are created
(a second run creates nothing), matched by API name or label as Zoho derives one from the other. A field
that exists with another type is reported, never altered: changing a field's type loses data in Zoho.
Invoices is an inventory module that lower editions lack; without it its fields are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.redact import get_logger
from xz_pipeline.zoho.client import ZohoClient

log = get_logger(__name__)

PAYMENT_STATUSES = ("Unpaid", "Partially Paid", "Paid", "Overdue")


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


CUSTOM_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "Accounts": (
        FieldSpec("Xero_Contact_ID", "Xero Contact ID", "text", length=64, external=True),
        FieldSpec("Tax_Number", "Tax Number", "text", length=50),
        FieldSpec("Outstanding_Balance", "Outstanding Balance", "currency"),
        FieldSpec("Overdue_Balance", "Overdue Balance", "currency"),
    ),
    "Deals": (
        FieldSpec("Xero_Invoice_ID", "Xero Invoice ID", "text", length=64),
        FieldSpec("Xero_Invoice_Number", "Xero Invoice Number", "text", length=64),
        FieldSpec("Payment_Status", "Payment Status", "picklist", picklist=PAYMENT_STATUSES),
        FieldSpec("Amount_Paid", "Amount Paid", "currency"),
        FieldSpec("Last_Payment_Date", "Last Payment Date", "date"),
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


def ensure_custom_fields(client: ZohoClient) -> list[str]:
    """Create the integration's custom fields where absent; returns the `Module.Field` names created."""
    available = {m.get("api_name") for m in client.modules() if m.get("api_supported", True)}
    created: list[str] = []
    for module, specs in CUSTOM_FIELDS.items():
        if module not in available:
            log.warning("zoho setup: the org has no %s module (edition?); its fields are skipped", module)
            continue
        existing = client.fields(module)
        missing = []
        for spec in specs:
            found = _present(spec, existing)
            if found is None:
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
            lacking = [v for v in spec.picklist if v not in have]
            if lacking:
                log.warning("zoho setup: %s.%s lacks picklist values %s", module, spec.api_name, lacking)
        if not missing:
            continue
        results = client.create_fields(module, [s.body() for s in missing])
        for spec, result in zip(missing, results, strict=True):
            if result.ok:
                created.append(f"{module}.{spec.api_name}")
            elif result.code == "DUPLICATE_DATA":
                log.info("zoho setup: %s.%s was created meanwhile", module, spec.api_name)
            else:
                raise ApiError(
                    "zoho",
                    400,
                    result.code,
                    f"could not create {module}.{spec.api_name}: {result.message}",
                    field=result.field,
                    endpoint="POST settings/fields",
                )
    return created
