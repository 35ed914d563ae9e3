"""Two sandbox connections mirrored side by side, each in its own file, never mixed; `xz sync` reports both."""

from __future__ import annotations

import pandas as pd

from xz_pipeline import cli, runner, settings
from xz_pipeline.core.store import Store
from xz_pipeline.reconcile import review
from xz_pipeline.sandbox.server import SandboxServer


def test_two_connections_side_by_side(xz_home, capsys):
    with SandboxServer(seed=5, size="tiny", connections=2) as sb:
        sb.write_connections_file(settings.connections_file())
        names = [c.name for c in settings.load_connections()]
        assert len(names) == 2
        outcomes = runner.sync(inst=runner.instance())
        assert [o.connection for o in outcomes] == names and all(o.success for o in outcomes)
        assert sorted(settings.mirror_connections()) == sorted(names)  # one file per connection
        for index, name in enumerate(names):
            with Store(settings.mirror_path(name)).read() as con:
                tenant, org = sb.tenant_ids[index], sb.org_ids[index]
                contacts = {c["ContactID"] for c in sb.xero.dump(tenant, "Contacts")}
                mirrored = {
                    r[0]
                    for r in con.execute(
                        "select contact_id from xero.contacts where connection = ?", [name]
                    ).fetchall()
                }
                assert mirrored == contacts
                deals = con.execute(
                    "select count(*) from zoho.deals where connection = ?", [name]
                ).fetchone()[0]
                assert deals == len(sb.zoho.dump(org, "Deals"))
                books = con.execute(
                    "select count(*) from canonical.books_customers where connection = ?", [name]
                ).fetchone()[0]
                assert books == len(contacts)
                others = con.execute(
                    "select count(*) from landing.records where connection <> ?", [name]
                ).fetchone()[0]
                assert others == 0  # nothing of the other connection in this one's file

        assert cli.main(["sync", "--only", "mirror", "--connection", names[1]]) == 0
        out = capsys.readouterr().out
        assert names[1] in out and "xero.contacts" in out

        stores = {name: Store(settings.mirror_path(name)) for name in names}
        waiting = pd.concat([review.pending(s) for s in stores.values()], ignore_index=True)
        assert cli.main(["review"]) == 0
        listed = capsys.readouterr().out
        if waiting.empty:
            assert "nothing waiting" in listed
        else:
            first = waiting.iloc[0]
            assert first["books_id"] in listed
            target = [first["connection"], first["books_id"], first["crm_id"]]
            assert cli.main(["review", "reject", *target, "--by", "test"]) == 0
            store = stores[first["connection"]]
            assert first["books_id"] not in set(review.pending(store)["books_id"])
            assert len(review.decisions(store)) == 1
        assert cli.main(["review", "accept", names[0]]) == 2
        assert cli.main(["status"]) == 0
        out = capsys.readouterr().out
        assert all(name in out for name in names) and "Invoices" in out and "access token until" in out
        env = sb.env(0)
        assert env["XERO_CLIENT_SECRET"] not in out and env["ZOHO_REFRESH_TOKEN"] not in out
