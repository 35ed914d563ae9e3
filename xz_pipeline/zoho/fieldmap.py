"""Which of a Zoho org's fields hold the integration's own data, and in which words.

The integration keeps a few fields of its own in the CRM (the Xero contact link on Accounts, the invoice
link, number, payment status, amount paid and last payment date on Deals and Invoices, tax number and
balances, and the payment risk and expected pay date insights computes on Accounts and Deals). `xz setup zoho` creates them under our names; an org that already keeps its Xero id in
`Xero_ID`, or its payment state in a picklist `Invoice_Status` saying "Fully Paid", maps them per
connection instead (`[connections.<name>.zoho.fields]`, `[connections.<name>.zoho.values.<Field>]`,
`customer_types`; `XZ_ZOHO_FIELDS` for the environment's connection). Everything else in this folder
speaks our names: records are renamed on their way out (`outgoing`) and typing reads the org's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xz_pipeline import settings

# The integration's own fields per module (our API names): what `xz setup zoho` creates.
# Payment_Risk (a picklist: Low, Medium, High) and Expected_Pay_Date are what the payment-risk insight
# writes on accounts and deals (policy payment_risk_to_crm).
OWN_FIELDS: dict[str, tuple[str, ...]] = {
    "Accounts": ("Xero_Contact_ID", "Tax_Number", "Outstanding_Balance", "Overdue_Balance", "Payment_Risk",
                 "Expected_Pay_Date", "Hours_Delivered", "Unbilled_Amount", "Project_Status"),
    "Deals": ("Xero_Invoice_ID", "Xero_Invoice_Number", "Payment_Status", "Amount_Paid", "Last_Payment_Date",
              "Payment_Risk", "Expected_Pay_Date", "Hours_Delivered", "Unbilled_Amount", "Project_Status"),
    "Invoices": ("Xero_Invoice_ID", "Payment_Status", "Amount_Paid", "Last_Payment_Date"),
}  # fmt: skip
DEFAULT_CUSTOMER_TYPES = ("Customer",)


@dataclass(frozen=True)
class FieldMap:
    """(module, our API name) -> the org's API name, where they differ; (module, our field) -> {our picklist
    value: the org's}; the Account_Type values that make an account a customer."""

    names: tuple[tuple[tuple[str, str], str], ...] = ()
    values: tuple[tuple[tuple[str, str], tuple[tuple[str, str], ...]], ...] = ()
    customer_types: tuple[str, ...] = DEFAULT_CUSTOMER_TYPES

    def api(self, module: str, ours: str) -> str:
        """The org's API name of one of our fields."""
        return dict(self.names).get((module, ours), ours)

    def value_out(self, module: str, ours: str, value: object) -> object:
        """Our picklist value as the org writes it."""
        table = dict(dict(self.values).get((module, ours), ()))
        return table.get(value, value) if isinstance(value, str) else value

    def value_in(self, module: str, ours: str, value: object) -> object:
        """The org's picklist value in our words (values it does not map pass as they are)."""
        table = {theirs: mine for mine, theirs in dict(self.values).get((module, ours), ())}
        return table.get(value, value) if isinstance(value, str) else value

    def outgoing(self, module: str, record: Mapping[str, object]) -> dict:
        """A record in our names and words, in the org's (keys renamed, picklist values translated)."""
        return {self.api(module, k): self.value_out(module, k, v) for k, v in record.items()}

    def mapped(self) -> dict[str, str]:
        """`Module.Field` -> the org's name, for metadata and `xz status`."""
        return {f"{m}.{f}": theirs for (m, f), theirs in self.names}


DEFAULT = FieldMap()


def _module_keys(raw: Mapping, where: str, what: str) -> dict[tuple[str, str], object]:
    """`{"Deals.Payment_Status": x}`, `{"Deals": {"Payment_Status": x}}` (TOML's dotted keys) or a bare
    `{"Payment_Status": x}` (every module that has the field) -> {(module, field): x}."""
    out: dict[tuple[str, str], object] = {}
    for key, value in raw.items():
        key = str(key)
        if key in OWN_FIELDS and isinstance(value, Mapping):
            for fld, v in value.items():
                out[(key, str(fld))] = v
            continue
        module, dot, fld = key.partition(".")
        if dot:
            out[(module, fld)] = value
            continue
        modules = [m for m, own in OWN_FIELDS.items() if key in own] or list(OWN_FIELDS)
        for m in modules:
            out[(m, key)] = value
    for module, fld in out:
        if module not in OWN_FIELDS or fld not in OWN_FIELDS[module]:
            known = ", ".join(f"{m}.{f}" for m, fs in OWN_FIELDS.items() for f in fs)
            raise settings.SettingsError(f"{where}: {what} {module}.{fld} is not one of ours ({known})")
    return out


def parse(doc: Mapping, where: str) -> FieldMap:
    """A FieldMap from the raw `[connections.<name>.zoho]` table (or XZ_ZOHO_FIELDS)."""
    unknown = sorted(set(doc) - {"fields", "values", "customer_types"})
    if unknown:
        raise settings.SettingsError(
            f"{where}: unknown keys {', '.join(unknown)} (fields, values, customer_types)"
        )
    names = {k: str(v) for k, v in _module_keys(doc.get("fields") or {}, where, "field").items()}
    values = {}
    for k, table in _module_keys(doc.get("values") or {}, where, "values of").items():
        if not isinstance(table, Mapping):
            raise settings.SettingsError(
                f"{where}: values.{k[1]} must be a table of our value = the org's value"
            )
        values[k] = tuple(sorted((str(a), str(b)) for a, b in table.items()))
    types = doc.get("customer_types", DEFAULT_CUSTOMER_TYPES)
    if isinstance(types, str) or not all(isinstance(t, str) for t in types):
        raise settings.SettingsError(f"{where}: customer_types is a list of Account_Type values")
    return FieldMap(
        names=tuple(sorted((k, v) for k, v in names.items() if v != k[1])),
        values=tuple(sorted(values.items())),
        customer_types=tuple(types),
    )


def load(connection: str, environ: Mapping[str, str] | None = None) -> FieldMap:
    """The field mapping of one connection (the defaults when none is configured)."""
    doc, where = settings.zoho_mapping_doc(connection, environ)
    return parse(doc, where) if doc else DEFAULT
