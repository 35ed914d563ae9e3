"""Which of a Salesforce org's fields hold the integration's own data, and in which words.

`xz setup salesforce` creates our custom fields under our names (`Books_Customer_Id__c`, an external id, on
Account; the books invoice id, number and payment fields on Opportunity). An org that already keeps them
under other names maps them per connection (`[connections.<name>.salesforce.fields]`, picklist words in
`[connections.<name>.salesforce.values.<Field>]`; `XZ_SALESFORCE_FIELDS` for the environment's
connection). Everything else in this folder speaks our names: records are renamed on their way out
(`outgoing`) and typing reads the org's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xz_pipeline import settings

# The integration's own fields per sObject (our API names): what `xz setup salesforce` creates.
OWN_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": ("Books_Customer_Id__c", "Tax_Number__c", "Outstanding_Balance__c", "Overdue_Balance__c",
                "Payment_Risk__c", "Expected_Pay_Date__c"),
    "Opportunity": ("Books_Invoice_Id__c", "Books_Invoice_Number__c", "Payment_Status__c", "Amount_Paid__c",
                    "Last_Payment_Date__c", "Payment_Risk__c", "Expected_Pay_Date__c"),
}  # fmt: skip
# External-id fields (unique, case-insensitive): what upserts key on.
EXTERNAL_IDS = {("Account", "Books_Customer_Id__c"), ("Opportunity", "Books_Invoice_Id__c")}


@dataclass(frozen=True)
class FieldMap:
    """(sObject, our API name) -> the org's API name, where they differ; (sObject, our field) -> {our picklist
    value: the org's}."""

    names: tuple[tuple[tuple[str, str], str], ...] = ()
    values: tuple[tuple[tuple[str, str], tuple[tuple[str, str], ...]], ...] = ()

    def api(self, sobject: str, ours: str) -> str:
        return dict(self.names).get((sobject, ours), ours)

    def value_out(self, sobject: str, ours: str, value: object) -> object:
        table = dict(dict(self.values).get((sobject, ours), ()))
        return table.get(value, value) if isinstance(value, str) else value

    def value_in(self, sobject: str, ours: str, value: object) -> object:
        table = {theirs: mine for mine, theirs in dict(self.values).get((sobject, ours), ())}
        return table.get(value, value) if isinstance(value, str) else value

    def outgoing(self, sobject: str, record: Mapping[str, object]) -> dict:
        """A record in our names and words, in the org's."""
        return {self.api(sobject, k): self.value_out(sobject, k, v) for k, v in record.items()}

    def mapped(self) -> dict[str, str]:
        return {f"{s}.{f}": theirs for (s, f), theirs in self.names}


DEFAULT = FieldMap()


def _keys(raw: Mapping, where: str, what: str) -> dict[tuple[str, str], object]:
    """`{"Account.Tax_Number__c": x}` or `{"Account": {"Tax_Number__c": x}}` -> {(sObject, field): x}."""
    out: dict[tuple[str, str], object] = {}
    for key, value in raw.items():
        key = str(key)
        if key in OWN_FIELDS and isinstance(value, Mapping):
            out.update({(key, str(f)): v for f, v in value.items()})
            continue
        sobject, dot, fld = key.partition(".")
        if not dot:
            raise settings.SettingsError(f"{where}: {what} {key!r} must be written Object.Field__c")
        out[(sobject, fld)] = value
    for sobject, fld in out:
        if fld not in OWN_FIELDS.get(sobject, ()):
            known = ", ".join(f"{s}.{f}" for s, fs in OWN_FIELDS.items() for f in fs)
            raise settings.SettingsError(f"{where}: {what} {sobject}.{fld} is not one of ours ({known})")
    return out


def parse(doc: Mapping, where: str) -> FieldMap:
    unknown = sorted(set(doc) - {"fields", "values"})
    if unknown:
        raise settings.SettingsError(f"{where}: unknown keys {', '.join(unknown)} (fields, values)")
    names = {k: str(v) for k, v in _keys(doc.get("fields") or {}, where, "field").items()}
    values = {}
    for k, table in _keys(doc.get("values") or {}, where, "values of").items():
        if not isinstance(table, Mapping):
            raise settings.SettingsError(
                f"{where}: values.{k[1]} must be a table of our value = the org's value"
            )
        values[k] = tuple(sorted((str(a), str(b)) for a, b in table.items()))
    return FieldMap(
        tuple(sorted((k, v) for k, v in names.items() if v != k[1])), tuple(sorted(values.items()))
    )


def load(connection: str, environ: Mapping[str, str] | None = None) -> FieldMap:
    """The field mapping of one connection (the defaults when none is configured)."""
    doc, where = settings.salesforce_mapping_doc(connection, environ)
    return parse(doc, where) if doc else DEFAULT
