"""A Zoho org's schema as discovered: its modules, fields, picklists (the Stage's forecast types among
them) and org facts (home currency, multi-currency, time zone, edition), kept in `meta.vendor_schema`.

Orgs differ: a single-currency org has no `Currency` field, an org nobody ran `xz setup zoho` on has none
of our custom fields, a Standard edition has no Invoices module. Every list, search and related-list call
asks only for what the org has (`keep`), and every write sends only what it has (`writable`); what is
missing is named with what it disables (`missing_report`, `status_lines` for `xz status`). The schema is
read again after `MAX_AGE` and whenever a call names an unknown field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.redact import get_logger
from xz_pipeline.core.store import Store
from xz_pipeline.zoho import fieldmap, tables
from xz_pipeline.zoho.fieldmap import DEFAULT, FieldMap

log = get_logger(__name__)

VENDOR = "zoho"
USED_MODULES = ("Accounts", "Contacts", "Deals", "Invoices", "Products")
# Modules written but never mirrored: only whether the org offers them is kept (their standard fields
# are written as they are), so no metadata call is spent on them.
WRITTEN_MODULES = ("Tasks",)
MAX_AGE = timedelta(hours=24)
# What Zoho answers for an endpoint or module an org (edition, grant) does not offer.
NOT_OFFERED = frozenset(
    {
        "INVALID_URL_PATTERN",
        "NOT_SUPPORTED",
        "FEATURE_NOT_SUPPORTED",
        "OAUTH_SCOPE_MISMATCH",
        "INVALID_MODULE",
    }
)
ALWAYS = frozenset({"id", "Owner", "Created_Time", "Modified_Time", "Tag"})  # every module has them

# What a missing field of ours (our API name) turns off; anything else only leaves its column NULL.
DISABLES: dict[tuple[str, str], str] = {
    ("Accounts", "Currency"): "the account's own currency (the org's home currency stands in)",
    (
        "Accounts",
        "Xero_Contact_ID",
    ): "explicit customer links; xero_customer_to_crm (CRM accounts are upserted on it)",
    ("Accounts", "Tax_Number"): "matching and corrections by tax number",
    ("Accounts", "Outstanding_Balance"): "balance_mismatch; the balances payment_to_crm keeps",
    ("Accounts", "Overdue_Balance"): "the overdue balance payment_to_crm keeps",
    ("Deals", "Currency"): "the deal's own currency (the org's home currency stands in)",
    (
        "Deals",
        "Xero_Invoice_ID",
    ): "explicit deal-invoice links; recording the invoice won_deal_to_invoice raises",
    ("Deals", "Xero_Invoice_Number"): "recording the invoice number on the deal",
    ("Deals", "Payment_Status"): "payment_status_stale on deals; payment_to_crm's payment status on deals",
    ("Deals", "Amount_Paid"): "payment_to_crm's amount paid on deals",
    ("Deals", "Last_Payment_Date"): "payment_to_crm's last payment date on deals",
    ("Invoices", "Currency"): "the CRM invoice's own currency (the org's home currency stands in)",
    ("Invoices", "Xero_Invoice_ID"): "explicit links of CRM invoices to books invoices",
    ("Invoices", "Payment_Status"): "payment_to_crm's payment status on CRM invoices",
    ("Invoices", "Amount_Paid"): "payment_to_crm's amount paid on CRM invoices",
    ("Invoices", "Last_Payment_Date"): "payment_to_crm's last payment date on CRM invoices",
    ("Accounts", "Payment_Risk"): "payment_risk_to_crm's risk band on accounts",
    ("Accounts", "Expected_Pay_Date"): "payment_risk_to_crm's expected pay date on accounts",
    ("Deals", "Payment_Risk"): "payment_risk_to_crm's risk band on deals",
    ("Deals", "Expected_Pay_Date"): "payment_risk_to_crm's expected pay date on deals",
}


def not_offered(exc: ApiError) -> bool:
    """Whether an error says the org does not offer this endpoint or module (not a passing failure)."""
    return exc.code in NOT_OFFERED or exc.status == 404


def _pick(value: Mapping) -> dict:
    category = value.get("forecast_category")
    if isinstance(category, Mapping):
        category = category.get("name")
    return {
        "actual_value": value.get("actual_value"),
        "display_value": value.get("display_value"),
        "forecast_type": value.get("forecast_type"),
        "forecast_category": category,
    }


@dataclass
class OrgSchema:
    """One connection's org as last read. `known` is False when its metadata could not be read: then
    every field is taken to exist except those a call has since reported unknown."""

    connection: str
    read_at: datetime
    modules: dict[str, dict[str, dict]] = field(default_factory=dict)  # module -> field -> {type, picklist}
    absent: dict[str, str] = field(default_factory=dict)  # module -> why it is not there
    org: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)  # an endpoint not offered -> why
    unknown: set[tuple[str, str]] = field(default_factory=set)  # fields calls reported unknown
    known: bool = True
    store: Store | None = field(default=None, repr=False, compare=False)

    # -- questions ----------------------------------------------------------------------------

    def has_module(self, module: str) -> bool:
        return module not in self.absent and (not self.known or module in self.modules)

    def has(self, module: str, api_name: str) -> bool:
        if (module, api_name) in self.unknown or not self.has_module(module):
            return False
        return not self.known or api_name in ALWAYS or api_name in self.modules.get(module, {})

    def keep(self, module: str, fields: Iterable[str]) -> list[str]:
        """The asked fields the org has, in order."""
        return [f for f in fields if self.has(module, f)]

    def missing(self, module: str, fields: Iterable[str]) -> list[str]:
        return [f for f in fields if not self.has(module, f)]

    def writable(self, module: str, record: Mapping) -> dict:
        """A write record without the fields the org lacks (`id` always stays)."""
        return {k: v for k, v in record.items() if k == "id" or self.has(module, k)}

    def stages(self) -> dict[str, str]:
        """Deal stage -> its forecast type ("Closed Won", "Closed Lost", "Open"), as the org defines them."""
        picks = self.modules.get("Deals", {}).get("Stage", {}).get("picklist") or []
        return {p["actual_value"]: p["forecast_type"] for p in picks if p.get("forecast_type")}

    @property
    def home_currency(self) -> str | None:
        return self.org.get("home_currency") or None

    @property
    def multi_currency(self) -> bool | None:
        value = self.org.get("multi_currency")
        return None if value is None else value == "true"

    # -- what calls learn ---------------------------------------------------------------------

    def forget(self, module: str, api_name: str) -> None:
        """A call reported `api_name` unknown: it is not asked for again, and the schema is read again
        by the next `ensure` (its row stored as stale)."""
        self.unknown.add((module, api_name))
        self.modules.get(module, {}).pop(api_name, None)
        if self.store is not None:
            with self.store.write() as con:
                con.execute(
                    "update meta.vendor_schema set read_at = ? where connection = ? and vendor = ?",
                    [datetime(1970, 1, 1, tzinfo=UTC), self.connection, VENDOR],
                )

    def unavailable(self, endpoint: str, reason: str) -> None:
        """The org does not offer `endpoint`: remembered until the schema is next read."""
        self.endpoints[endpoint] = reason
        if self.store is not None:
            with self.store.write() as con:
                con.execute(
                    "insert or replace into meta.vendor_schema values (?, ?, '@endpoint', ?, 'unavailable', "
                    "null, ?, ?)",
                    [self.connection, VENDOR, endpoint, reason[:500], datetime.now(UTC)],
                )


# -- discovery and storage --------------------------------------------------------------------


def discover(client, connection: str) -> OrgSchema:
    """Read the org's metadata: `settings/modules`, `settings/fields` of each module we use, `org`."""
    schema = OrgSchema(connection, datetime.now(UTC))
    try:
        offered = {m.get("api_name") for m in client.modules() if m.get("api_supported", True)}
    except ApiError as exc:
        if exc.transient:
            raise
        log.warning("zoho %s: the org's modules could not be read (%s); fields are asked as configured",
                    connection, exc)  # fmt: skip
        schema.known = False
        schema.org["schema_error"] = str(exc)[:300]
        return schema
    for module in WRITTEN_MODULES:
        if module in offered:
            schema.modules[module] = {}
        else:
            schema.absent[module] = f"the org has no {module} module (edition?)"
    for module in USED_MODULES:
        if module not in offered:
            schema.absent[module] = f"the org has no {module} module (edition?)"
            continue
        try:
            fields = client.fields(module)
        except ApiError as exc:
            if exc.transient or not (not_offered(exc) or exc.code == "INVALID_DATA"):
                raise
            schema.absent[module] = f"{module} is not offered: {exc.code}"
            continue
        schema.modules[module] = {
            str(f["api_name"]): {
                "type": f.get("data_type"),
                "picklist": [_pick(v) for v in f.get("pick_list_values") or [] if isinstance(v, Mapping)],
            }
            for f in fields
            if f.get("api_name")
        }
    try:
        org = client.org()
    except ApiError as exc:
        if exc.transient:
            raise
        org = {}
    licence = org.get("license_details") if isinstance(org.get("license_details"), Mapping) else {}
    facts = {
        "home_currency": org.get("iso_code") or org.get("currency"),
        "multi_currency": None if org.get("mc_status") is None else str(bool(org["mc_status"])).lower(),
        "time_zone": org.get("time_zone"),
        "edition": licence.get("paid_type"),
        "country": org.get("country_code"),
    }
    schema.org.update({k: str(v) for k, v in facts.items() if v not in (None, "")})
    return schema


def save(store: Store, schema: OrgSchema, fm: FieldMap = DEFAULT) -> None:
    """Replace the connection's rows in `meta.vendor_schema` with `schema` (and the mapping in force)."""
    t = schema.read_at
    rows: list[tuple] = []
    for module, fields in schema.modules.items():
        rows.append((module, "", "module", None, "offered"))
        for name, info in fields.items():
            picks = json.dumps(info["picklist"]) if info["picklist"] else None
            rows.append((module, name, info["type"], picks, None))
    rows += [(module, "", "module", None, f"absent: {why}") for module, why in schema.absent.items()]
    rows += [("@org", k, "fact", None, v) for k, v in schema.org.items()]
    rows += [("@org", "known", "fact", None, str(schema.known).lower())]
    rows += [("@endpoint", k, "unavailable", None, v) for k, v in schema.endpoints.items()]
    rows += _mapping_rows(fm)
    store.replace_vendor_schema(schema.connection, VENDOR, rows, t)
    schema.store = store


def _mapping_rows(fm: FieldMap) -> list[tuple]:
    rows = [("@mapping", "customer_types", "list", json.dumps(list(fm.customer_types)), None)]
    values = dict(fm.values)
    for (module, ours), theirs in fm.names:
        rows.append(
            (
                "@mapping",
                f"{module}.{ours}",
                "field",
                json.dumps(dict(values.get((module, ours), ()))),
                theirs,
            )
        )
    for (module, ours), table in fm.values:
        if (module, ours) not in dict(fm.names):
            rows.append(("@mapping", f"{module}.{ours}", "values", json.dumps(dict(table)), ours))
    return rows


def load(store: Store, connection: str) -> OrgSchema | None:
    """The schema last saved for `connection`, or None."""
    rows = store.vendor_schema_rows(connection, VENDOR)
    if not rows:
        return None
    schema = OrgSchema(connection, min(r[5] for r in rows), store=store)
    for module, name, type_, picks, value in (r[:5] for r in rows):
        if module == "@org":
            if name == "known":
                schema.known = value == "true"
            else:
                schema.org[name] = value
        elif module == "@endpoint":
            schema.endpoints[name] = value
        elif module == "@mapping":
            continue
        elif name == "":
            if value and value.startswith("absent: "):
                schema.absent[module] = value[len("absent: ") :]
            else:
                schema.modules.setdefault(module, {})
        else:
            schema.modules.setdefault(module, {})[name] = {
                "type": type_,
                "picklist": json.loads(picks) if picks else [],
            }
    return schema


def ensure(
    client, store: Store | None, connection: str, fm: FieldMap = DEFAULT, *, max_age: timedelta = MAX_AGE
) -> OrgSchema:
    """The org's schema, read from the mirror when fresh, else from the API (and saved); the client then
    asks only for what the org has, and reads it again when a call names an unknown field."""
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
    """Each wanted field (our names per module) the org lacks, under the org's name, with what it disables."""
    out = []
    for module, fields in wanted.items():
        if not schema.has_module(module):
            continue
        for ours in fields:
            theirs = fm.api(module, ours)
            if not schema.has(module, theirs):
                out.append(
                    {
                        "field": f"{module}.{theirs}",
                        "disables": DISABLES.get((module, ours), "its column stays NULL"),
                    }
                )
    return out


def status_lines(store: Store, connections: Iterable[str]) -> list[str]:
    """One line per connection for `xz status`: when the org was read, its facts, what it lacks."""
    out = []
    for connection in connections:
        schema = load(store, connection)
        if schema is None:
            out.append(f"zoho schema {connection}: not read yet (the first Zoho sync reads it)")
            continue
        fm = fieldmap.load(connection)
        facts = ", ".join(f"{k} {v}" for k, v in sorted(schema.org.items()) if k != "schema_error")
        line = f"zoho schema {connection}: read {schema.read_at:%Y-%m-%d %H:%M} UTC" + (
            f" ({facts})" if facts else ""
        )
        missing = missing_report(schema, tables.FIELDS, fm)
        if missing:
            line += "; missing: " + "; ".join(f"{m['field']} ({m['disables']})" for m in missing)
        gone = [*schema.absent, *schema.endpoints]
        if gone:
            line += "; not offered: " + ", ".join(gone)
        out.append(line)
    return out
