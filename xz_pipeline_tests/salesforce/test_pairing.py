"""A connection whose crm is Salesforce: its settings from the connections file (keys with or without the
SALESFORCE_ prefix, the field mapping), the Zoho side saying it has nothing to do, write-back's CRM writer
routed to Salesforce, and the definitions carrying the Salesforce assets, checks and polling sensor."""

from __future__ import annotations

import pytest

from xz_pipeline import settings
from xz_pipeline.salesforce import fieldmap

TOML = """
[connections.acme]
crm = "salesforce"
XERO_CLIENT_ID = "x"
XERO_CLIENT_SECRET = "xs"

[connections.acme.salesforce]
client_id = "3MVG9abc"
SALESFORCE_CLIENT_SECRET = "sf-secret-123456"
login_url = "https://test.salesforce.com/"
org_id = "00DHs0000012345"

[connections.acme.salesforce.fields]
"Account.Books_Customer_Id__c" = "Xero_Id__c"

[connections.acme.salesforce.values.Opportunity]
Payment_Status__c = { paid = "Fully Paid" }

[connections.zed]
ZOHO_CLIENT_ID = "z"
ZOHO_CLIENT_SECRET = "zs"
"""


def test_a_salesforce_connection_from_the_connections_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XZ_HOME", str(tmp_path))
    (tmp_path / "connections.toml").write_text(TOML)
    acme = settings.get_connection("acme")
    assert (acme.books, acme.crm) == ("xero", "salesforce")
    sf = acme.salesforce
    assert (sf.client_id, sf.login_url, sf.org_id) == (
        "3MVG9abc",
        "https://test.salesforce.com",
        "00DHs0000012345",
    )
    assert "sf-secret-123456" not in repr(acme)
    fm = fieldmap.load("acme")
    assert fm.api("Account", "Books_Customer_Id__c") == "Xero_Id__c"
    assert fm.value_in("Opportunity", "Payment_Status__c", "Fully Paid") == "paid"
    assert "nothing to do with zoho" in settings.not_paired("acme", "zoho")
    assert settings.not_paired("acme", "salesforce") is None
    assert "nothing to do with salesforce" in settings.not_paired("zed", "salesforce")


def test_an_unknown_field_in_the_mapping_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XZ_HOME", str(tmp_path))
    (tmp_path / "connections.toml").write_text(
        TOML.replace('"Account.Books_Customer_Id__c"', '"Account.Name"')
    )
    with pytest.raises(settings.SettingsError) as bad:
        fieldmap.load("acme")
    assert "Account.Name is not one of ours" in str(bad.value) and "\n" not in str(bad.value)


def test_write_back_reaches_the_connections_own_crm(tmp_path, monkeypatch):
    from xz_pipeline.definitions import CrmWriterResource, defs
    from xz_pipeline.salesforce.writer import SalesforceCrmWriter
    from xz_pipeline.zoho.writer import ZohoCrmWriter

    monkeypatch.setenv("XZ_HOME", str(tmp_path))
    (tmp_path / "connections.toml").write_text(TOML)
    assert isinstance(CrmWriterResource().writer("acme"), SalesforceCrmWriter)
    assert isinstance(CrmWriterResource().writer("zed"), ZohoCrmWriter)
    repo = defs.get_repository_def()
    names = {k.to_user_string() for k in repo.assets_defs_by_key}
    assert {"salesforce_accounts", "salesforce_opportunities", "salesforce_opportunity_line_items"} <= names
    assert repo.has_sensor_def("salesforce_polling_sensor")
    checks = {
        k.name for k in repo.asset_graph.asset_check_keys if k.asset_key.path[0].startswith("salesforce")
    }
    assert "opportunities_schema" in checks
