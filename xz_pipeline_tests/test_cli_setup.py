"""`xz setup zoho` on an org without our fields (the `bare` profile): it creates them, reads the org again at
once, and the next sync writes back through them instead of skipping their policies for a day."""

from __future__ import annotations

from xz_pipeline import cli, runner
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox


def _skipped(store: Store) -> set[str]:
    with store.read() as con:
        return {
            r[0]
            for r in con.execute(
                "select distinct policy from writeback.plan where status = 'skipped'"
            ).fetchall()
        }


def _has_field(store: Store, module: str, field: str) -> bool:
    with store.read() as con:
        return bool(
            con.execute(
                "select count(*) from meta.vendor_schema where module = ? and field = ?", [module, field]
            ).fetchone()[0]
        )


def test_setup_then_sync_writes_through_the_new_fields(xz_home, monkeypatch, capsys):
    monkeypatch.setenv("XZ_ZOHO_SUBFORMS", "off")
    with SandboxServer(seed=43, size="tiny", profile="bare") as sb:
        export_sandbox(monkeypatch, sb)
        inst = runner.instance()
        assert all(o.success for o in runner.sync(inst=inst))
        store = Store(only_mirror())
        assert "xero_customer_to_crm" in _skipped(store)
        assert not _has_field(store, "Accounts", "Xero_Contact_ID")

        assert cli.main(["setup", "zoho"]) == 0
        out = capsys.readouterr().out
        assert "Accounts.Xero_Contact_ID" in out and "field(s) created" in out
        assert _has_field(store, "Accounts", "Xero_Contact_ID")  # read again at once, not in a day

        # filling the new fields on every deal is a mass change: the guard stops it with a line saying what to do
        (blocked,) = runner.sync(inst=inst, apply=True)
        assert not blocked.success
        assert "blocked by writeback_guard" in blocked.error and "--approve" in blocked.error
        outcomes = runner.sync(inst=inst, apply=True, approve=True)
        assert all(o.success for o in outcomes), [(o.error, o.failed_checks) for o in outcomes]
        # the approval is said, not silent: what the guard let past names the table and the limit
        assert any("records changed" in r and "limit" in r for r in outcomes[0].approved_past)
        assert "xero_customer_to_crm" not in _skipped(store)
        org = sb.org_ids[0]
        linked = [a for a in sb.zoho.dump(org, "Accounts") if a.get("Xero_Contact_ID")]
        assert linked, "accounts created by write-back carry the Xero contact id"
