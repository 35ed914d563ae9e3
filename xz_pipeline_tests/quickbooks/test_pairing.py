"""The books/crm pairing: each connection names its books (xero | quickbooks) and crm (zoho | salesforce) in
connections.toml or XZ_BOOKS / XZ_CRM; QBO settings from QBO_* or `[connections.X.quickbooks]`; an unknown
vendor is one line naming the key, the value and where it was read."""

from __future__ import annotations

import pytest

from xz_pipeline import settings

QBO_ENV = {"QBO_CLIENT_ID": "qid", "QBO_CLIENT_SECRET": "qsecret", "QBO_REFRESH_TOKEN": "qrt", "QBO_REALM_ID": "9130",
           "QBO_API_URL": "http://127.0.0.1:1/", "QBO_WEBHOOK_VERIFIER": "verif"}  # fmt: skip


def _write(home, text: str) -> dict[str, str]:
    (home / "connections.toml").write_text(text)
    return {"XZ_HOME": str(home)}


def test_mixed_pairs_in_one_connections_file(tmp_path):
    env = _write(
        tmp_path,
        """
[connections.au]
xero_client_id = "x"
xero_client_secret = "xs"
zoho_client_id = "z"
zoho_client_secret = "zs"

[connections.us]
books = "quickbooks"
crm = "zoho"
zoho_client_id = "z2"
zoho_client_secret = "zs2"

[connections.us.quickbooks]
client_id = "qid"
client_secret = "qsecret"
realm_id = "4620816365"
api_url = "http://127.0.0.1:9/"

[connections.eu]
books = "QuickBooks"
crm = "salesforce"
QBO_CLIENT_ID = "q3"
QBO_CLIENT_SECRET = "qs3"
""",
    )
    conns = {c.name: c for c in settings.load_connections(env)}
    assert (conns["au"].books, conns["au"].crm, conns["au"].quickbooks) == ("xero", "zoho", None)
    us = conns["us"]
    assert (us.books, us.crm, us.xero) == ("quickbooks", "zoho", None)
    assert (us.quickbooks.client_id, us.quickbooks.realm_id, us.quickbooks.api_url) == (
        "qid",
        "4620816365",
        "http://127.0.0.1:9",
    )
    assert us.quickbooks.token_url == settings.QBO_TOKEN_URL and us.zoho.client_id == "z2"
    assert (conns["eu"].books, conns["eu"].crm, conns["eu"].quickbooks.client_id) == (
        "quickbooks",
        "salesforce",
        "q3",
    )
    assert us.uses("quickbooks") and us.uses("zoho") and not us.uses("xero")
    assert "qsecret" not in repr(us) and "qsecret" not in repr(us.quickbooks)


def test_the_environment_connection(tmp_path):
    env = {
        "XZ_HOME": str(tmp_path),
        **QBO_ENV,
        "XZ_BOOKS": "quickbooks",
        "ZOHO_CLIENT_ID": "z",
        "ZOHO_CLIENT_SECRET": "s",
    }
    (conn,) = settings.load_connections(env)
    assert (conn.books, conn.crm, conn.quickbooks.realm_id, conn.quickbooks.webhook_verifier) == (
        "quickbooks", "zoho", "9130", "verif")  # fmt: skip
    assert conn.quickbooks.api_url == "http://127.0.0.1:1"
    default = settings.load_connections(
        {"XZ_HOME": str(tmp_path), "XERO_CLIENT_ID": "x", "XERO_CLIENT_SECRET": "s"}
    )
    assert (default[0].books, default[0].crm) == ("xero", "zoho")


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (
            {"XZ_BOOKS": "sage"},
            "xz_books = 'sage' in the environment is not a books system: use xero or quickbooks",
        ),
        ({"XZ_CRM": "hubspot"}, "xz_crm = 'hubspot' in the environment is not a CRM: use zoho or salesforce"),
    ],
)
def test_an_unknown_vendor_is_one_line(tmp_path, where, expected):
    with pytest.raises(settings.SettingsError) as err:
        settings.load_connections({"XZ_HOME": str(tmp_path), **QBO_ENV, **where})
    assert str(err.value) == expected and "\n" not in str(err.value)


def test_an_unknown_vendor_in_the_file_names_the_connection(tmp_path):
    env = _write(
        tmp_path, '[connections.x]\nbooks = "myob"\nxero_client_id = "a"\nxero_client_secret = "b"\n'
    )
    with pytest.raises(
        settings.SettingsError, match=r"books = 'myob' in .*connections.toml \[connections.x\] is not a books"
    ):
        settings.load_connections(env)


def test_a_qbo_client_id_without_its_secret(tmp_path):
    env = _write(
        tmp_path, '[connections.x]\nbooks = "quickbooks"\n[connections.x.quickbooks]\nclient_id = "a"\n'
    )
    with pytest.raises(settings.SettingsError, match=r"QBO_CLIENT_SECRET is missing in .*\[connections.x\]"):
        settings.load_connections(env)
