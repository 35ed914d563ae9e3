"""A Salesforce org's schema as discovered by describe: the sObjects we use, their fields (type, picklist
values, external-id flag) and org facts (default currency, multi-currency, edition), kept in
`meta.vendor_schema` (vendor `salesforce`).

Orgs differ: a single-currency org has no `CurrencyIsoCode`, an org nobody ran `xz setup salesforce` on has
none of our custom fields, an edition may hide products. Every SOQL query asks only for the fields the org
has (`keep`: a query naming one it lacks fails whole with INVALID_FIELD) and every write sends only what
it has (`writable`); what is missing is named with what it disables (`missing_report`). The schema is read
again after `MAX_AGE`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.redact import get_logger
from xz_pipeline.core.store import Store
from xz_pipeline.salesforce.fieldmap import DEFAULT, FieldMap

log = get_logger(__name__)

VENDOR = "salesforce"
USED_OBJECTS = ("Account", "Contact", "Opportunity", "OpportunityLineItem", "Product2")
MAX_AGE = timedelta(hours=24)
ALWAYS = frozenset({"Id"})
NULL_ONLY = "its column stays NULL"  # what a missing field that turns nothing off costs

# What a missing field of ours (our API name) turns off; anything else only leaves its column NULL.
DISABLES: dict[tuple[str, str], str] = {
    ("Account", "CurrencyIsoCode"): "the account's own currency (the org's default currency stands in)",
    ("Account", "Books_Customer_Id__c"): "explicit customer links; upserting CRM accounts by their books id",
    ("Account", "Tax_Number__c"): "matching and corrections by tax number",
    ("Account", "Outstanding_Balance__c"): "balance_mismatch; the balances payment_to_crm keeps",
    ("Account", "Overdue_Balance__c"): "the overdue balance payment_to_crm keeps",
    ("Account", "Payment_Risk__c"): "payment_risk_to_crm's risk band on accounts",
    ("Account", "Expected_Pay_Date__c"): "payment_risk_to_crm's expected pay date on accounts",
    ("Opportunity", "CurrencyIsoCode"): "the opportunity's own currency (the org's default stands in)",
    (
        "Opportunity",
        "Books_Invoice_Id__c",
    ): "explicit deal-invoice links; recording the invoice won_deal_to_invoice raises",
    ("Opportunity", "Books_Invoice_Number__c"): "recording the invoice number on the opportunity",
    ("Opportunity", "Payment_Status__c"): "payment_status_stale on deals; payment_to_crm's payment status",
    ("Opportunity", "Amount_Paid__c"): "payment_to_crm's amount paid on deals",
    ("Opportunity", "Last_Payment_Date__c"): "payment_to_crm's last payment date on deals",
    ("Opportunity", "Payment_Risk__c"): "payment_risk_to_crm's risk band on deals",
    ("Opportunity", "Expected_Pay_Date__c"): "payment_risk_to_crm's expected pay date on deals",
}


def not_offered(exc: ApiError) -> bool:
    """Whether an error says the org does not offer this object or endpoint (not a passing failure)."""
    return exc.status == 404 or exc.code in ("NOT_FOUND", "INVALID_TYPE", "FUNCTIONALITY_NOT_ENABLED")


@dataclass
class OrgSchema:
    """One connection's org as last read. `known` is False when describe could not be read: then every
    field is taken to exist except those a call has since reported unknown."""

    connection: str
    read_at: datetime
    objects: dict[str, dict[str, dict]] = field(default_factory=dict)  # sObject -> field -> facts
    absent: dict[str, str] = field(default_factory=dict)  # sObject -> why it is not there
    org: dict[str, str] = field(default_factory=dict)
    unknown: set[tuple[str, str]] = field(default_factory=set)
    known: bool = True
    store: Store | None = field(default=None, repr=False, compare=False)

    def has_object(self, sobject: str) -> bool:
        return sobject not in self.absent and (not self.known or sobject in self.objects)

    def has(self, sobject: str, name: str) -> bool:
        if (sobject, name) in self.unknown or not self.has_object(sobject):
            return False
        return not self.known or name in ALWAYS or name in self.objects.get(sobject, {})

    def keep(self, sobject: str, fields: Iterable[str]) -> list[str]:
        """The asked fields the org has, in order (a relationship path `Account.Name` by its id field)."""
        return [f for f in fields if self.has(sobject, _base(sobject, f))]

    def writable(self, sobject: str, record: Mapping) -> dict:
        """A write record without the fields the org lacks (`id`/`attributes` always stay)."""
        return {k: v for k, v in record.items() if k in ("id", "Id", "attributes") or self.has(sobject, k)}

    def external_id(self, sobject: str, name: str) -> bool:
        return bool(self.objects.get(sobject, {}).get(name, {}).get("external_id")) or not self.known

    def picklist(self, sobject: str, name: str) -> list[str]:
        return [p["value"] for p in self.objects.get(sobject, {}).get(name, {}).get("picklist") or []]

    @property
    def home_currency(self) -> str | None:
        return self.org.get("home_currency") or None


def _base(sobject: str, name: str) -> str:
    """`Account.Name` (a parent's field) is there when the lookup `AccountId` is."""
    if "." not in name:
        return name
    head = name.split(".", 1)[0]
    return head[:-3] + "__c" if head.endswith("__r") else head + "Id"


def _facts(f: Mapping) -> dict:
    picks = [
        {"value": p.get("value"), "label": p.get("label"), "active": p.get("active", True)}
        for p in f.get("picklistValues") or []
        if isinstance(p, Mapping) and p.get("value") is not None
    ]
    return {"type": f.get("type"), "picklist": picks, "external_id": bool(f.get("externalId")),
            "custom": bool(f.get("custom"))}  # fmt: skip


def discover(client, connection: str) -> OrgSchema:
    """Describe each sObject we use (one call each) and read the org's default currency."""
    schema = OrgSchema(connection, datetime.now(UTC))
    for sobject in USED_OBJECTS:
        try:
            described = client.describe(sobject)
        except ApiError as exc:
            if exc.transient:
                raise
            if not_offered(exc):
                schema.absent[sobject] = f"the org does not offer {sobject} ({exc.code})"
                continue
            log.warning("salesforce %s: %s could not be described (%s); fields are asked as configured",
                        connection, sobject, exc)  # fmt: skip
            schema.known = False
            schema.org["schema_error"] = str(exc)[:300]
            return schema
        fields = [f for f in described.get("fields") or [] if isinstance(f, Mapping) and f.get("name")]
        schema.objects[sobject] = {str(f["name"]): _facts(f) for f in fields}
    org = client.organization()
    multi = any("CurrencyIsoCode" in fields for fields in schema.objects.values())
    facts = {
        "home_currency": org.get("DefaultCurrencyIsoCode"),
        "multi_currency": str(multi).lower(),
        "edition": org.get("OrganizationType"),
        "org_id": org.get("Id") or client.org_id,
    }
    schema.org.update({k: str(v) for k, v in facts.items() if v not in (None, "")})
    return schema


def save(store: Store, schema: OrgSchema, fm: FieldMap = DEFAULT) -> None:
    """Replace the connection's Salesforce rows in `meta.vendor_schema` with `schema` and the field mapping in
    force (`@mapping` rows: the views ask under which name the org keeps one of our fields)."""
    rows: list[tuple] = []
    for sobject, fields in schema.objects.items():
        rows.append((sobject, "", "sobject", None, "offered"))
        for name, f in fields.items():
            picks = json.dumps(f["picklist"]) if f["picklist"] else None
            rows.append((sobject, name, f["type"], picks, "external_id" if f.get("external_id") else None))
    rows += [(s, "", "sobject", None, f"absent: {why}") for s, why in schema.absent.items()]
    rows += [("@org", k, "fact", None, v) for k, v in schema.org.items()]
    rows += [("@org", "known", "fact", None, str(schema.known).lower())]
    rows += [("@mapping", f"{s}.{ours}", "field", None, theirs) for (s, ours), theirs in fm.names]
    store.replace_vendor_schema(schema.connection, VENDOR, rows, schema.read_at)
    schema.store = store


def load(store: Store, connection: str) -> OrgSchema | None:
    """The schema last saved for `connection`, or None."""
    rows = store.vendor_schema_rows(connection, VENDOR)
    if not rows:
        return None
    schema = OrgSchema(connection, min(r[5] for r in rows), store=store)
    for sobject, name, type_, picks, value in (r[:5] for r in rows):
        if sobject == "@mapping":
            continue
        if sobject == "@org":
            if name == "known":
                schema.known = value == "true"
            else:
                schema.org[name] = value
        elif name == "":
            if value and value.startswith("absent: "):
                schema.absent[sobject] = value[len("absent: ") :]
            else:
                schema.objects.setdefault(sobject, {})
        else:
            schema.objects.setdefault(sobject, {})[name] = {
                "type": type_, "picklist": json.loads(picks) if picks else [], "external_id": value == "external_id",
            }  # fmt: skip
    return schema


def ensure(
    client, store: Store | None, connection: str, fm: FieldMap = DEFAULT, *, max_age: timedelta = MAX_AGE
) -> OrgSchema:
    """The org's schema, from the mirror when fresh, else described (and saved); the client then asks only
    for what the org has."""
    schema = load(store, connection) if store is not None else None
    if schema is None or datetime.now(UTC) - schema.read_at > max_age:
        schema = discover(client, connection)
        if store is not None:
            save(store, schema, fm)
    client.schema = schema
    return schema


def missing_report(
    schema: OrgSchema, wanted: Mapping[str, Iterable[str]], fm: FieldMap = DEFAULT
) -> list[dict]:
    """Each wanted field (our names per sObject) the org lacks, under the org's name, with what it disables."""
    out = []
    for sobject, fields in wanted.items():
        if not schema.has_object(sobject):
            continue
        for ours in fields:
            theirs = fm.api(sobject, ours)
            if not schema.has(sobject, _base(sobject, theirs)):
                out.append({"field": f"{sobject}.{theirs}",
                            "disables": DISABLES.get((sobject, ours), NULL_ONLY)})  # fmt: skip
    return sorted(out, key=lambda m: m["disables"] == NULL_ONLY)  # what it turns off first


def status_lines(store: Store, connections: Iterable[str]) -> list[str]:
    """One line per connection for `xz status`: when the org was described, its facts, how many of the fields
    we read it has, what it lacks (with what that turns off) and the objects it does not offer."""
    from xz_pipeline.salesforce import fieldmap, tables

    out = []
    for connection in connections:
        schema = load(store, connection)
        if schema is None:
            out.append(
                f"salesforce schema {connection}: not described yet (the first Salesforce sync does it)"
            )
            continue
        fm = fieldmap.load(connection)
        facts = ", ".join(f"{k} {v}" for k, v in sorted(schema.org.items()) if k != "schema_error")
        line = f"salesforce schema {connection}: described {schema.read_at:%Y-%m-%d %H:%M} UTC" + (
            f" ({facts})" if facts else ""
        )
        if not schema.known:
            out.append(
                line + f"; describe failed, fields asked as configured: {schema.org.get('schema_error', '')}"
            )
            continue
        wanted = {s: f for s, f in tables.FIELDS.items() if schema.has_object(s)}
        missing = missing_report(schema, wanted, fm)
        total = sum(len(f) for f in wanted.values())
        line += f"; fields found {total - len(missing)} of {total}"
        turns_off = [m for m in missing if m["disables"] != NULL_ONLY]
        if turns_off:
            line += "; missing: " + "; ".join(f"{m['field']} ({m['disables']})" for m in turns_off)
        if len(turns_off) < len(missing):
            line += "; missing (their columns stay NULL): " + ", ".join(
                m["field"] for m in missing if m["disables"] == NULL_ONLY
            )
        if schema.absent:
            line += "; not offered: " + ", ".join(sorted(schema.absent))
        out.append(line)
    return out
