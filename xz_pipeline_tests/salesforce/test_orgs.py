"""Orgs as they come: a bare org read without one INVALID_FIELD and set up once through the Tooling API, and an
org whose connected app rotates refresh tokens (each rotation persisted; the spent token refused)."""

from __future__ import annotations

import pytest

from xz_pipeline.core.errors import AuthError, explain
from xz_pipeline.core.oauth import TokenStore, forget_refusals
from xz_pipeline.salesforce import schema as sf_schema
from xz_pipeline.salesforce import tables
from xz_pipeline.salesforce.client import SalesforceClient
from xz_pipeline.salesforce.setup import CUSTOM_FIELDS, setup_connection
from xz_pipeline.salesforce.writer import SalesforceCrmWriter
from xz_pipeline.sandbox.server import SandboxServer


def client_of(sb, store: TokenStore, refresh: str | None = "env") -> SalesforceClient:
    env = sb.env(0)
    return SalesforceClient(client_id=env["SALESFORCE_CLIENT_ID"], client_secret=env["SALESFORCE_CLIENT_SECRET"],
                            refresh_token=env["SALESFORCE_REFRESH_TOKEN"] if refresh == "env" else refresh,
                            login_url=env["SALESFORCE_LOGIN_URL"], token_store=store, connection="acme")  # fmt: skip


def test_a_bare_org_is_read_without_invalid_field_and_set_up_once(tmp_path):
    with (
        SandboxServer(seed=11, size="tiny", crm="salesforce", profile="bare") as sb,
        client_of(sb, TokenStore(tmp_path / "tokens")) as c,
    ):
        schema = sf_schema.ensure(c, None, "acme")
        missing = {m["field"] for m in sf_schema.missing_report(schema, tables.FIELDS)}
        assert {"Account.Books_Customer_Id__c", "Opportunity.Payment_Status__c"} <= missing
        start = len(sb.salesforce.received)
        counts = {s: sum(len(p) for p in c.select(s, tables.fields(s))) for s in tables.FIELDS}
        queries = [r for r in sb.salesforce.received[start:] if r.path.endswith("/query/")]
        assert all(n > 0 for n in counts.values()) and all(r.status == 200 for r in queries)
        assert not [r for r in queries if "__c" in r.query["q"]]  # never a field the org lacks
        caps = SalesforceCrmWriter(c, "acme").capabilities()
        assert "xz setup salesforce" in caps.missing_fields[("account", "books_link")]
        assert "no CRM invoices" in caps.missing_fields[("invoice", "payment_status")]

        first = setup_connection(c)
        wanted = {f"{s}.{f.api_name}" for s, specs in CUSTOM_FIELDS.items() for f in specs}
        assert set(first.created) == wanted and first.invisible == []
        tooling = [r for r in sb.salesforce.received if "/tooling/sobjects/CustomField" in r.path]
        assert len(tooling) == len(wanted) and all(r.status == 201 for r in tooling)
        again = setup_connection(c)
        assert again.created == [] and set(again.present) == wanted  # idempotent: nothing sent twice
        assert len([r for r in sb.salesforce.received if "/tooling/sobjects/CustomField" in r.path]) == len(
            wanted
        )
        fresh = sf_schema.discover(c, "acme")
        assert fresh.external_id("Account", "Books_Customer_Id__c")
        assert fresh.picklist("Opportunity", "Payment_Status__c") == [
            "Unpaid",
            "Partially Paid",
            "Paid",
            "Overdue",
        ]


def test_rotated_refresh_tokens_are_persisted_and_the_spent_one_refused(tmp_path):
    forget_refusals()
    with SandboxServer(seed=11, size="tiny", crm="salesforce", profile="renamed") as sb:
        bootstrap = sb.env(0)["SALESFORCE_REFRESH_TOKEN"]
        store = TokenStore(tmp_path / "tokens")
        with client_of(sb, store) as c:
            c.query("select Id from Product2")
            first = store.load("acme", "salesforce")
            assert first.refresh_token != bootstrap and first.extra.get("instance_url")  # rotated, saved
            c.auth.force_refresh()
            second = store.load("acme", "salesforce")
            assert second.refresh_token not in (bootstrap, first.refresh_token)
        with client_of(sb, store) as later:  # another process: the stored grant, not the spent bootstrap
            assert later.query("select Id from Product2") and later.auth.refreshes == 0
        # only the spent bootstrap to go on
        with client_of(sb, TokenStore(tmp_path / "other")) as stale, pytest.raises(AuthError) as refused:
            stale.query("select Id from Product2")
        verdict = explain(refused.value)
        assert refused.value.code == "invalid_grant" and not verdict.retry
        assert "xz auth salesforce" in verdict.message
