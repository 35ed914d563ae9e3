"""`xz auth xero|zoho`: the OAuth consent flow for a real organisation, with a loopback redirect.

A person opens the consent URL, approves, and the vendor redirects the browser to our loopback
callback with `code` and `state`; the code is exchanged (PKCE for Xero; `state` checked for both) and
the tokens go to the token store, where every later run finds them. Nothing is printed but the URL.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from xz_pipeline import settings
from xz_pipeline.core.errors import AuthError
from xz_pipeline.core.http import HttpClient
from xz_pipeline.core.oauth import TokenSet, TokenStore, authorization_url, exchange_code
from xz_pipeline.xero.client import XeroClient, complete_consent, consent_request

# Register this redirect URI with your Xero and Zoho apps (Xero accepts http only for localhost).
DEFAULT_REDIRECT_URI = "http://localhost:8765/callback"
ZOHO_SCOPES = (
    "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.coql.READ,ZohoCRM.notifications.ALL,"
    "ZohoCRM.users.READ,ZohoCRM.org.READ,ZohoCRM.composite_requests.CUSTOM"
)


def redirect_uri() -> str:
    return os.environ.get("XZ_REDIRECT_URI", DEFAULT_REDIRECT_URI)


class CallbackReceiver:
    """Serves the redirect URI's port on loopback until one callback arrives; keeps its query."""

    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        self.path = parts.path or "/"
        self.params: dict[str, str] = {}
        self.arrived = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlsplit(self.path)
                if url.path != receiver.path:
                    self.send_error(404)
                    return
                receiver.params = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = b"xz-pipeline: consent received, you can close this window.\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                receiver.arrived.set()

            def log_message(self, *args) -> None:  # the query holds the code: never log it
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", parts.port or 80), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CallbackReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, timeout: float) -> dict[str, str]:
        if not self.arrived.wait(timeout):
            raise TimeoutError(f"no consent callback within {timeout:.0f}s")
        if "error" in self.params:
            raise AuthError("consent", None, self.params["error"], "the consent was refused")
        return self.params


def authorize_xero(
    connection: str, open_url: Callable[[str], object], *, timeout: float = 300.0
) -> list[dict]:
    """Consent for a Xero organisation; stores the tokens and returns the tenants it connected."""
    xs = settings.get_connection(connection).xero
    if xs is None:
        raise settings.SettingsError(f"connection {connection!r} has no Xero settings (XERO_CLIENT_ID)")
    uri, store = redirect_uri(), TokenStore(settings.xz_home() / "tokens")
    request = consent_request(xs.login_url, client_id=xs.client_id, redirect_uri=uri)
    with CallbackReceiver(uri) as receiver:
        open_url(request.url)
        params = receiver.wait(timeout)
    complete_consent(
        identity_url=xs.identity_url, client_id=xs.client_id, client_secret=xs.client_secret, request=request,
        code=params.get("code", ""), returned_state=params.get("state"), redirect_uri=uri, token_store=store,
        connection=connection,
    )  # fmt: skip
    with XeroClient(
        client_id=xs.client_id, client_secret=xs.client_secret, refresh_token=None, api_url=xs.api_url,
        identity_url=xs.identity_url, token_store=store, connection=connection,
    ) as client:  # fmt: skip
        return client.tenants()


def authorize_zoho(connection: str, open_url: Callable[[str], object], *, timeout: float = 300.0) -> TokenSet:
    """Consent for a Zoho CRM org; stores the tokens (with the org's `api_domain`)."""
    zs = settings.get_connection(connection).zoho
    if zs is None:
        raise settings.SettingsError(f"connection {connection!r} has no Zoho settings (ZOHO_CLIENT_ID)")
    uri, store = redirect_uri(), TokenStore(settings.xz_home() / "tokens")
    request = authorization_url(
        f"{zs.accounts_url}/oauth/v2/auth", client_id=zs.client_id, redirect_uri=uri, scopes=ZOHO_SCOPES,
        extra={"access_type": "offline", "prompt": "consent"},
    )  # fmt: skip
    with CallbackReceiver(uri) as receiver:
        open_url(request.url)
        params = receiver.wait(timeout)
    # The callback names the data centre's accounts server that issued the code: exchange it there.
    accounts = params.get("accounts-server") or zs.accounts_url
    http = HttpClient("zoho", timeout=30.0)
    try:
        tokens = exchange_code(
            http, f"{accounts.rstrip('/')}/oauth/v2/token", vendor="zoho", client_id=zs.client_id,
            client_secret=zs.client_secret, code=params.get("code", ""), redirect_uri=uri,
            code_verifier=request.code_verifier, returned_state=params.get("state"),
            expected_state=request.state, client_auth="form",
        )  # fmt: skip
    finally:
        http.close()
    with store.lock(connection, "zoho"):
        store.save(connection, "zoho", tokens)
    return tokens


def authorize_salesforce(
    connection: str, open_url: Callable[[str], object], *, timeout: float = 300.0
) -> TokenSet:
    """Consent for a Salesforce org (PKCE); stores the tokens with the org's `instance_url` and identity."""
    from xz_pipeline.salesforce.client import complete_consent as sf_complete
    from xz_pipeline.salesforce.client import consent_request as sf_request
    from xz_pipeline.salesforce.resources import sf_settings

    ss, uri = sf_settings(connection), redirect_uri()
    request = sf_request(ss.login_url, client_id=ss.client_id, redirect_uri=uri)
    with CallbackReceiver(uri) as receiver:
        open_url(request.url)
        params = receiver.wait(timeout)
    return sf_complete(login_url=ss.login_url, client_id=ss.client_id, client_secret=ss.client_secret, request=request,
                       params=params, redirect_uri=uri, token_store=TokenStore(settings.xz_home() / "tokens"),
                       connection=connection)  # fmt: skip
