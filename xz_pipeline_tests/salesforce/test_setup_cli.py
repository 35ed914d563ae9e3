"""`xz doctor` and `xz setup salesforce` on a bare org: the integration's fields created once, said in words, the mirror's
view of the org refreshed; a second run creates nothing."""

from __future__ import annotations

from xz_pipeline import cli, settings
from xz_pipeline.core.store import Store
from xz_pipeline.salesforce import schema as sf_schema
from xz_pipeline.salesforce.setup import CUSTOM_FIELDS
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.sandbox_env import export_sandbox


def test_setup_creates_the_fields_once_and_says_so(monkeypatch, xz_home, capsys):
    wanted = sum(len(specs) for specs in CUSTOM_FIELDS.values())
    with SandboxServer(seed=3, size="tiny", crm="salesforce", profile="bare") as sb:
        export_sandbox(monkeypatch, sb, "acme")
        store = Store(settings.mirror_path("acme"))
        with store.write() as con:
            store.ensure_base(con)  # a mirror exists: setup describes the org into it again
        assert cli.main(["doctor", "--connection", "acme"]) == 0  # missing fields warn, they do not block
        out = capsys.readouterr().out
        assert (
            "Xero and Salesforce configured" in out and "Salesforce lacks Account.Books_Customer_Id__c" in out
        )
        assert "API calls left in the rolling 24 hours" in out
        assert cli.main(["setup", "salesforce", "--connection", "acme"]) == 0
        out = capsys.readouterr().out
        assert f"xz setup salesforce: {wanted} field(s) created: Account.Books_Customer_Id__c" in out
        schema = sf_schema.load(store, "acme")
        assert schema.has("Account", "Books_Customer_Id__c") and schema.external_id(
            "Opportunity", "Books_Invoice_Id__c"
        )
        assert cli.main(["setup", "salesforce", "--connection", "acme"]) == 0
        assert f"xz setup salesforce: 0 field(s) created; {wanted} already there" in capsys.readouterr().out
        cli.main(["doctor", "--connection", "acme"])
        assert "Salesforce: every field the integration keeps" in capsys.readouterr().out
        created = [r for r in sb.salesforce.received if r.path.endswith("/tooling/sobjects/CustomField")]
        assert len(created) == wanted
