"""`xz status`'s lines for a Salesforce connection (`schema.status_lines`): when describe last read the org, its
facts, how many of the fields we read it has, what it lacks and what that turns off. A bare org, nobody
having run `xz setup salesforce` on it, lacks our custom fields; after setup it lacks none of them."""

from __future__ import annotations

from datetime import timedelta

from xz_pipeline import settings
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.core.store import Store
from xz_pipeline.salesforce import schema as sf_schema
from xz_pipeline.salesforce.setup import setup_connection
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.salesforce.test_orgs import client_of

CONNECTION = "acme"


def _fields_found(line: str) -> tuple[int, int]:
    found, total = line.split("fields found ")[1].split(";")[0].split(" of ")
    return int(found), int(total)


def test_status_lines_before_and_after_setup(xz_home):
    store = Store(settings.mirror_path(CONNECTION))
    with store.write() as con:
        con.execute("select 1")
    assert sf_schema.status_lines(store, [CONNECTION]) == [
        f"salesforce schema {CONNECTION}: not described yet (the first Salesforce sync does it)"
    ]
    with (
        SandboxServer(seed=11, size="tiny", crm="salesforce", profile="bare") as sb,
        client_of(sb, TokenStore(xz_home / "tokens")) as c,
    ):
        sf_schema.ensure(c, store, CONNECTION)
        [bare] = sf_schema.status_lines(store, [CONNECTION])
        assert bare.startswith(f"salesforce schema {CONNECTION}: described ")
        assert f"org_id {c.org_id}" in bare and "home_currency " in bare
        found, total = _fields_found(bare)
        assert 0 < found < total  # the standard fields, none of ours
        assert "missing: Account.Books_Customer_Id__c (explicit customer links" in bare
        assert "Opportunity.Payment_Status__c (payment_status_stale" in bare
        assert "not offered" not in bare

        setup_connection(c)
        sf_schema.ensure(c, store, CONNECTION, max_age=timedelta(0))
        [ready] = sf_schema.status_lines(store, [CONNECTION])
        found, total = _fields_found(ready)
        assert found == total and "missing" not in ready  # describe names every standard field we read
