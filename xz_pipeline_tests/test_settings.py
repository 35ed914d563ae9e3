"""Configuration: one connection from the environment, several from the connections file."""

from __future__ import annotations

import pytest

from xz_pipeline import settings

ENV = {
    "XERO_CLIENT_ID": "xid",
    "XERO_CLIENT_SECRET": "xsecret-value",
    "XERO_REFRESH_TOKEN": "xrefresh-value",
    "XERO_API_URL": "http://127.0.0.1:9/",
    "ZOHO_CLIENT_ID": "zid",
    "ZOHO_CLIENT_SECRET": "zsecret-value",
}


def test_one_connection_from_the_environment(tmp_path):
    env = {**ENV, "XZ_HOME": str(tmp_path)}
    (conn,) = settings.load_connections(env)
    assert conn.name == "default"
    assert conn.xero.api_url == "http://127.0.0.1:9" and conn.xero.identity_url == settings.XERO_IDENTITY_URL
    assert conn.zoho.accounts_url == settings.ZOHO_ACCOUNTS_URL and conn.zoho.api_domain == ""
    shown = repr(conn)
    assert "xsecret-value" not in shown and "xrefresh-value" not in shown and "zsecret-value" not in shown


def test_connections_file_wins_and_names_each_connection(tmp_path):
    (tmp_path / "connections.toml").write_text(
        '[connections.acme]\nXERO_CLIENT_ID = "a"\nXERO_CLIENT_SECRET = "s"\n\n'
        '[connections.globex]\nZOHO_CLIENT_ID = "z"\nZOHO_CLIENT_SECRET = "t"\n'
    )
    env = {**ENV, "XZ_HOME": str(tmp_path)}
    conns = {c.name: c for c in settings.load_connections(env)}
    assert set(conns) == {"acme", "globex"}
    assert conns["acme"].xero.client_id == "a" and conns["acme"].zoho is None
    assert conns["globex"].zoho.client_id == "z" and conns["globex"].xero is None
    with pytest.raises(settings.SettingsError, match="'nope' is not configured"):
        settings.get_connection("nope", env)


def test_a_missing_secret_is_named(tmp_path):
    env = {"XZ_HOME": str(tmp_path), "XERO_CLIENT_ID": "x"}
    with pytest.raises(settings.SettingsError, match="XERO_CLIENT_SECRET is missing in the environment"):
        settings.load_connections(env)


def test_realtime_and_schedule_knobs_are_read_here_with_clear_errors():
    assert settings.poll_share({}) == 0.1 and settings.poll_share({"XZ_POLL_SHARE": "5"}) == 1.0
    with pytest.raises(settings.SettingsError, match="XZ_POLL_SHARE"):
        settings.poll_share({"XZ_POLL_SHARE": "lots"})
    assert (
        settings.public_url({"XZ_PUBLIC_URL": " https://hooks.example.com "}) == "https://hooks.example.com"
    )
    assert settings.public_url({}) == ""
    assert settings.mirror_cron({}) == "*/15 * * * *"
    assert settings.full_sweep_cron({"XZ_FULL_SWEEP_CRON": "0 3 * * *"}) == "0 3 * * *"


def test_a_changed_connections_file_is_read_again(tmp_path):
    """The parsed file is kept between calls (each asset of each connection asks), never past a change."""
    path, env = tmp_path / "connections.toml", {"XZ_HOME": str(tmp_path)}
    path.write_text('[connections.acme]\nbooks = "xero"\ncrm = "zoho"\n')
    assert settings.not_paired("acme", "salesforce", env) is not None
    assert settings.load_connections(env) == settings.load_connections(env)
    path.write_text('[connections.acme]\nbooks = "xero"\ncrm = "salesforce"\n')  # the same length
    assert settings.get_connection("acme", env).crm == "salesforce"
    assert settings.not_paired("acme", "salesforce", env) is None
    path.unlink()  # no file: the environment's connection again
    assert [c.name for c in settings.load_connections({**ENV, "XZ_HOME": str(tmp_path)})] == ["default"]


def test_mappings_read_the_connections_file_once_per_text(tmp_path, monkeypatch):
    """Each Zoho step of each connection asks for its field mapping: the file is parsed once while it stays
    the same (a parse of a 1,000-connection file takes ~0.2 s), a change is read, and a caller's edit of
    the mapping it got does not leak into the next caller's."""
    path, env = tmp_path / "connections.toml", {"XZ_HOME": str(tmp_path)}
    path.write_text(
        '[connections.acme]\nbooks = "xero"\ncrm = "zoho"\n'
        '[connections.acme.zoho.fields]\nDeals = { Invoice_Number = "Xero_Invoice" }\n'
        '[connections.acme.projects.cost_rates]\n"ann@acme.test" = "40.00"\n'
    )
    parses = []
    real = settings.tomllib.loads
    monkeypatch.setattr(settings.tomllib, "loads", lambda text: parses.append(1) or real(text))
    first, where = settings.zoho_mapping_doc("acme", env)
    assert first == {"fields": {"Deals": {"Invoice_Number": "Xero_Invoice"}}}
    assert where.endswith("[connections.acme.zoho]")
    first["fields"]["Deals"]["Invoice_Number"] = "edited"
    for _ in range(5):
        assert (
            settings.zoho_mapping_doc("acme", env)[0]["fields"]["Deals"]["Invoice_Number"] == "Xero_Invoice"
        )
    assert settings.project_cost_rates("acme", env) == {"ann@acme.test": settings.Decimal("40.00")}
    assert settings.get_connection("acme", env).crm == "zoho"
    assert settings.salesforce_mapping_doc("acme", env)[0] == {}
    assert len(parses) == 1
    path.write_text('[connections.acme]\nbooks = "xero"\ncrm = "zoho"\n')
    assert settings.zoho_mapping_doc("acme", env)[0] == {}
    assert len(parses) == 2
