"""Organisation profiles: the shapes of org the sandbox can be, so the suite meets more than the one we had in mind.

A profile sets an organisation's metadata and capabilities (currencies, Zoho edition and modules, which
custom fields exist and under which names, the won stage's label, the data centre); the generator then
draws records that fit it, and states which discrepancy kinds can exist there at all. The world, both
emulators and the server read the same `Profile`; it imports nothing, so every part of the sandbox may.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The integration's custom fields, per CRM module: everything `xz setup zoho` creates. A "bare" org has
# none of them until setup runs.
INTEGRATION_FIELDS: dict[str, tuple[str, ...]] = {
    "Accounts": ("Xero_Contact_ID", "Tax_Number", "Outstanding_Balance", "Overdue_Balance", "Payment_Risk",
                 "Expected_Pay_Date"),
    "Deals": ("Xero_Invoice_ID", "Xero_Invoice_Number", "Payment_Status", "Amount_Paid", "Last_Payment_Date",
              "Payment_Risk", "Expected_Pay_Date"),
    "Invoices": ("Xero_Invoice_ID", "Payment_Status", "Amount_Paid", "Last_Payment_Date"),
}  # fmt: skip
WON_STAGE = "Closed Won"  # the standard pipeline's won stage (its forecast_type is "Closed Won" too)


@dataclass(frozen=True, slots=True)
class Rename:
    """A field the org keeps under its own API name (and label), with its own picklist words."""

    api_name: str
    label: str
    values: tuple[tuple[str, str], ...] = ()  # (our value, the org's value)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    summary: str
    country: str = ""  # the organisations' country (ISO alpha-2); "" = drawn from the seed
    single_currency: bool = (
        False  # one currency in the books; no Currency fields and mc_status false in the CRM
    )
    edition: str = ""  # the Zoho edition; "" = drawn from the seed
    absent_modules: tuple[str, ...] = ()  # CRM modules the edition lacks
    composite: bool = True  # POST /__composite_requests available
    deal_products: bool = True  # the Deals -> Products related list available
    custom_fields: bool = True  # False: none of INTEGRATION_FIELDS until `xz setup zoho` creates them
    renames: dict[tuple[str, str], Rename] = field(default_factory=dict)  # (module, our api name) -> Rename
    won_stage: str = WON_STAGE
    extra_account_types: tuple[str, ...] = ()
    separate_accounts_server: bool = False  # a non-US data centre: accounts server and API on two origins
    data_centre: str = "us"  # the `location` the accounts server names in its consent redirect

    def has_field(self, module: str, api_name: str) -> bool:
        """Whether the org has this field of ours (by our name) at all: renamed fields count as present."""
        if module in self.absent_modules:
            return False
        if api_name in ("Currency", "Exchange_Rate") and self.single_currency:
            return False
        return self.custom_fields or api_name not in INTEGRATION_FIELDS.get(module, ())

    def api_name(self, module: str, api_name: str) -> str:
        """The org's API name for one of our fields."""
        rename = self.renames.get((module, api_name))
        return rename.api_name if rename else api_name

    def value(self, module: str, api_name: str, value: str) -> str:
        """The org's picklist word for one of our values."""
        rename = self.renames.get((module, api_name))
        return dict(rename.values).get(value, value) if rename else value

    def field_mapping(self) -> dict[str, dict]:
        """What a person connecting this org writes in its connection's Zoho mapping (`fields`, `values`):
        the org's names and picklist words for our fields. Empty when the org uses our names."""
        fields = {f"{m}.{ours}": r.api_name for (m, ours), r in self.renames.items() if r.api_name != ours}
        values = {f"{m}.{ours}": dict(r.values) for (m, ours), r in self.renames.items() if r.values}
        return {k: v for k, v in (("fields", fields), ("values", values)) if v}

    def undetectable(self) -> dict[str, str]:
        """Discrepancy kinds that cannot exist in this org, each with the reason."""
        out: dict[str, str] = {}
        if self.single_currency:
            out["currency_mismatch"] = (
                "single-currency org: every record is in the home currency (the CRM has no Currency field)"
            )
        if not self.custom_fields:
            out["payment_status_stale"] = (
                "no Payment_Status field until `xz setup zoho` creates it, and then it is empty: nothing is stale yet"
            )
            out["balance_mismatch"] = (
                "no Outstanding_Balance field until `xz setup zoho` creates it, and then it is empty: nothing is wrong yet"
            )
        if "Invoices" in self.absent_modules:
            out["invoice_missing_in_crm"] = (
                f"the {self.edition or 'org'} edition has no Invoices module: the CRM keeps no invoice to be missing"
            )
        return out


_INVOICE_STATUS = (("Paid", "Fully Paid"),)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("full", "every custom field, every endpoint, several currencies (mc_status true)"),
        Profile(
            "single-currency",
            "one currency: Zoho without Currency fields (mc_status false), Xero in its base currency only",
            single_currency=True,
        ),
        Profile(
            "bare",
            "none of the integration's custom fields until `xz setup zoho` creates them",
            custom_fields=False,
        ),
        Profile(
            "standard",
            "Zoho Standard edition: no Invoices module, no Composite API, no Deals -> Products related list",
            edition="Standard",
            absent_modules=("Invoices",),
            composite=False,
            deal_products=False,
        ),
        Profile(
            "renamed",
            "the org's own names: won stage 'Deal Won', more Account_Type values, link fields named otherwise",
            renames={
                ("Accounts", "Xero_Contact_ID"): Rename("Xero_ID", "Xero ID"),
                ("Deals", "Xero_Invoice_ID"): Rename("Accounting_Invoice_ID", "Accounting Invoice ID"),
                ("Deals", "Payment_Status"): Rename("Invoice_Status", "Invoice Status", _INVOICE_STATUS),
                ("Invoices", "Xero_Invoice_ID"): Rename("Xero_Invoice_Ref", "Xero Invoice Ref"),
                ("Invoices", "Payment_Status"): Rename("Invoice_Status", "Invoice Status", _INVOICE_STATUS),
            },
            won_stage="Deal Won",
            extra_account_types=("Key Account", "Former Customer", "Channel Partner"),
        ),
        Profile(
            "uk",
            "GBP with VAT, Zoho's EU data centre (accounts server and API on separate origins), Europe/London",
            country="GB",
            separate_accounts_server=True,
            data_centre="eu",
        ),
        Profile("us", "USD with US sales tax, an America/ time zone", country="US"),
    )
}
PROFILE_NAMES = tuple(PROFILES)
DEFAULT_PROFILE = "full"


def get_profile(profile: str | Profile | None) -> Profile:
    """The profile by name (None: full); an unknown name is a ValueError naming the choices."""
    if isinstance(profile, Profile):
        return profile
    name = profile or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    return PROFILES[name]
