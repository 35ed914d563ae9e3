"""OAuth 2.0 tokens: a file store shared by every process, and refresh that never loses a rotated token.

Xero rotates the refresh token on every refresh and keeps the old one alive for a 30-minute grace
period only; two processes that refresh the same grant independently break each other. So every
refresh happens under a per-connection file lock, re-reads the store first (another process may
already have refreshed), and persists the rotated refresh token before the new access token is used.
If that save fails, the new token is dropped: the old refresh token, still in the store, stays valid
for the grace period and the next attempt recovers with it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from filelock import FileLock

from xz_pipeline.core.errors import ApiError, AuthError, grant_hint
from xz_pipeline.core.http import HttpClient
from xz_pipeline.core.redact import get_logger, register_secret

log = get_logger(__name__)

DEFAULT_LEEWAY = timedelta(seconds=60)
LOCK_TIMEOUT = 120.0  # a refresh is one HTTP call; two minutes means a stuck process, not contention
# A token request refused for good (wrong secret, dead refresh token) is not sent again by this process for
# this long: every asset of a run would otherwise repeat it (and Zoho limits token requests per minute).
REFUSAL_MEMORY = 300.0


@dataclass
class TokenSet:
    """One connection's tokens for one vendor; the repr never shows them."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    scope: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        register_secret(self.access_token, self.refresh_token)

    def valid_at(self, now: datetime, leeway: timedelta = DEFAULT_LEEWAY) -> bool:
        return bool(self.access_token) and now + leeway < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.astimezone(UTC).isoformat(),
            "scope": self.scope,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenSet:
        return cls(
            access_token=data.get("access_token", ""),
            refresh_token=data.get("refresh_token", ""),
            expires_at=datetime.fromisoformat(data["expires_at"]).astimezone(UTC),
            scope=data.get("scope", ""),
            extra=dict(data.get("extra") or {}),
        )

    @classmethod
    def from_response(
        cls, body: dict[str, Any], *, now: datetime, previous_refresh: str = "", extra: dict | None = None
    ) -> TokenSet:
        """From a token endpoint answer; a vendor that does not rotate (Zoho) keeps the previous refresh token."""
        try:
            access = body["access_token"]
            expires_in = float(body.get("expires_in", 1800))
        except (KeyError, TypeError, ValueError) as exc:
            raise AuthError(
                "oauth", 200, "invalid_token_response", "the token endpoint gave no access token"
            ) from exc
        known = {"access_token", "refresh_token", "expires_in", "scope", "token_type", "id_token"}
        kept = {k: v for k, v in body.items() if k not in known and isinstance(v, str | int | float | bool)}
        return cls(
            access_token=access,
            refresh_token=body.get("refresh_token") or previous_refresh,
            expires_at=now + timedelta(seconds=expires_in),
            scope=body.get("scope", "") or "",
            extra={**kept, **(extra or {})},
        )


class TokenStore:
    """`<directory>/<connection>-<vendor>.json`, mode 0600, replaced atomically, one file lock per pair."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._locks: dict[str, FileLock] = {}
        self._guard = threading.Lock()

    def _name(self, connection: str, vendor: str) -> str:
        for part in (connection, vendor):
            if not part or "/" in part or "\\" in part or part.startswith("."):
                raise ValueError(f"not a usable connection/vendor name: {part!r}")
        return f"{connection}-{vendor}"

    def path(self, connection: str, vendor: str) -> Path:
        return self.directory / f"{self._name(connection, vendor)}.json"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.directory, 0o700)

    def load(self, connection: str, vendor: str) -> TokenSet | None:
        path = self.path(connection, vendor)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise AuthError(
                vendor, None, "token_store_unreadable", f"cannot read the token store file {path}"
            ) from exc
        return TokenSet.from_json(data)

    def save(self, connection: str, vendor: str, tokens: TokenSet) -> None:
        """Write to a 0600 temp file in the same folder, fsync, then os.replace: readers see old or new, never half."""
        self._ensure_dir()
        path = self.path(connection, vendor)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=self.directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(tokens.to_json(), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def delete(self, connection: str, vendor: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(connection, vendor).unlink()

    def lock(self, connection: str, vendor: str, timeout: float = LOCK_TIMEOUT) -> FileLock:
        """A context manager held while refreshing: across threads and processes, one refresh at a time."""
        self._ensure_dir()
        name = self._name(connection, vendor)
        with self._guard:
            lock = self._locks.get(name)
            if lock is None:
                lock = FileLock(str(self.directory / f".{name}.lock"), timeout=timeout, mode=0o600)
                self._locks[name] = lock
        return lock


_refusals: dict[str, tuple[float, AuthError]] = {}
_refusals_lock = threading.Lock()


def _remember_refusal(key: str, error: AuthError) -> None:
    with _refusals_lock:
        _refusals[key] = (time.monotonic() + REFUSAL_MEMORY, error)


def _refused_recently(key: str) -> AuthError | None:
    """The refusal this process met for the same request less than REFUSAL_MEMORY seconds ago, if any."""
    with _refusals_lock:
        found = _refusals.get(key)
        if found is None:
            return None
        until, error = found
        if time.monotonic() >= until:
            del _refusals[key]
            return None
    return AuthError(error.vendor, error.status, error.code, error.message, endpoint=error.endpoint)


def forget_refusals() -> None:
    """Send refused token requests again (after a configuration change in a long-lived process, or a test)."""
    with _refusals_lock:
        _refusals.clear()


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class OAuthSession:
    """Gives a valid access token for one connection and vendor, refreshing under the store's lock.

    grant="refresh_token": the usual flow; the first refresh uses the stored refresh token, or the
    bootstrap one (from the environment) when the store has none or the bootstrap changed since.
    grant="client_credentials": Xero custom connections; no refresh token, a new access token on demand.
    """

    def __init__(
        self,
        *,
        vendor: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        store: TokenStore,
        connection: str,
        http: HttpClient,
        bootstrap_refresh_token: str | None = None,
        grant: str = "refresh_token",
        client_auth: str = "basic",
        scope: str | None = None,
        header_scheme: str = "Bearer",
        leeway: timedelta = DEFAULT_LEEWAY,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if grant not in ("refresh_token", "client_credentials"):
            raise ValueError(f"unsupported grant {grant!r}")
        if client_auth not in ("basic", "form"):
            raise ValueError(f"unsupported client auth {client_auth!r}")
        register_secret(client_secret, bootstrap_refresh_token)
        self.vendor, self.token_url = vendor, token_url
        self.client_id, self._client_secret = client_id, client_secret
        self.store, self.connection, self.http = store, connection, http
        self._bootstrap = bootstrap_refresh_token or None
        self.grant, self.client_auth, self.scope = grant, client_auth, scope
        self.header_scheme, self.leeway = header_scheme, leeway
        self._now = now or (lambda: datetime.now(UTC))
        self._tokens: TokenSet | None = None
        self._loaded = False
        self._lock = threading.Lock()
        self.refreshes = 0  # token calls this session made (for tests and metering)

    def __repr__(self) -> str:
        return f"OAuthSession(vendor={self.vendor!r}, connection={self.connection!r}, grant={self.grant!r})"

    # -- what callers use -----------------------------------------------------------------------

    def access_token(self) -> str:
        with self._lock:
            if not self._loaded:
                self._tokens = self.store.load(self.connection, self.vendor)
                self._loaded = True
            tokens = self._tokens
            if (
                tokens is not None
                and tokens.valid_at(self._now(), self.leeway)
                and self._bootstrap_matches(tokens)
            ):
                return tokens.access_token
            stale = tokens.access_token if tokens else None
            return self._refresh_locked(stale).access_token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"{self.header_scheme} {self.access_token()}"}

    def refresh_after_unauthorized(self, sent_headers: dict[str, str]) -> bool:
        """Called on a 401: refresh unless another thread or process already replaced the token we sent."""
        sent = sent_headers.get("Authorization", "").partition(" ")[2]
        with self._lock:
            self._refresh_locked(stale=sent or None)
        return True

    def force_refresh(self) -> None:
        """Replace the access token this session would use now (tests, and callers that know it is dead)."""
        with self._lock:
            if not self._loaded:
                self._tokens = self.store.load(self.connection, self.vendor)
                self._loaded = True
            self._refresh_locked(stale=self._tokens.access_token if self._tokens else None)

    @property
    def tokens(self) -> TokenSet | None:
        return self._tokens

    # -- the refresh ----------------------------------------------------------------------------

    def _bootstrap_matches(self, tokens: TokenSet) -> bool:
        """A bootstrap token different from the one the store grew from means someone re-consented."""
        if self.grant != "refresh_token" or not self._bootstrap:
            return True
        seen = tokens.extra.get("bootstrap")
        return seen is None or seen == _fingerprint(self._bootstrap)

    def _refresh_locked(self, stale: str | None) -> TokenSet:
        with self.store.lock(self.connection, self.vendor):
            current = self.store.load(self.connection, self.vendor)
            now = self._now()
            if (
                current is not None
                and current.access_token != stale
                and current.valid_at(now, self.leeway)
                and self._bootstrap_matches(current)
            ):
                log.debug("%s/%s: adopting a token refreshed elsewhere", self.connection, self.vendor)
                self._tokens = current
                return current
            fresh = self._obtain(current, now)
            try:
                self.store.save(self.connection, self.vendor, fresh)
            except OSError as exc:
                # The rotated token is lost with this process; the stored one is still valid for the grace period.
                self._tokens = current
                raise AuthError(
                    self.vendor,
                    None,
                    "token_store_write_failed",
                    "could not persist the rotated refresh token; the previous one stays usable for the "
                    "vendor's grace period, so retry soon",
                ) from exc
            self._tokens = fresh
            return fresh

    def _obtain(self, current: TokenSet | None, now: datetime) -> TokenSet:
        if self.grant == "client_credentials":
            form = {"grant_type": "client_credentials"}
            if self.scope:
                form["scope"] = self.scope
            return TokenSet.from_response(self._post(form), now=now)
        candidates: list[str] = []
        stored = current.refresh_token if current else ""
        if self._bootstrap and (current is None or not self._bootstrap_matches(current)):
            candidates.append(self._bootstrap)
        if stored and stored not in candidates:
            candidates.append(stored)
        if self._bootstrap and self._bootstrap not in candidates:
            candidates.append(self._bootstrap)  # a store from an older grant: the bootstrap may still work
        if not candidates:
            raise AuthError(
                self.vendor,
                None,
                "no_refresh_token",
                f"no refresh token for connection {self.connection!r}: run `xz auth {self.vendor}` "
                "or set the bootstrap refresh token",
            )
        last: AuthError | None = None
        for refresh in candidates:
            try:
                body = self._post({"grant_type": "refresh_token", "refresh_token": refresh})
            except AuthError as exc:
                if exc.code != "invalid_grant":
                    raise
                last = exc
                continue
            # The bootstrap is now either consumed or known stale: either way, not to be tried again.
            extra = {"bootstrap": _fingerprint(self._bootstrap)} if self._bootstrap else {}
            return TokenSet.from_response(body, now=now, previous_refresh=refresh, extra=extra)
        assert last is not None
        raise last

    def _post(self, form: dict[str, str]) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.client_auth == "basic":
            pair = f"{self.client_id}:{self._client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            form = {**form, "client_id": self.client_id, "client_secret": self._client_secret}
        key = self._refusal_key(form)
        remembered = _refused_recently(key)
        if remembered is not None:
            raise remembered
        self.refreshes += 1
        try:
            reply = self.http.request(
                "POST",
                self.token_url,
                endpoint="oauth token",
                data=form,
                headers=headers,
                # Safe to repeat: a lost answer leaves the old refresh token valid for the grace period.
                retry_writes=True,
                raise_for_status=False,
            )
        except ApiError as exc:
            if exc.transient:  # unreachable or overloaded: not a refusal, and `xz auth` would not help
                raise
            raise AuthError(self.vendor, exc.status, exc.code, exc.message, endpoint="oauth token") from exc
        body = reply.data if isinstance(reply.data, dict) else {}
        if reply.status >= 400 or "error" in body:
            code = str(body.get("error") or f"http_{reply.status}")
            hint = grant_hint(self.vendor, code) or "the token endpoint refused the request"
            refused = AuthError(self.vendor, reply.status, code, hint, endpoint="oauth token")
            if reply.status < 500 and reply.status != 429:
                _remember_refusal(key, refused)
            raise refused
        return body

    def _refusal_key(self, form: dict[str, str]) -> str:
        """Who asked for what (secrets only as a hash): the same request would be refused the same way."""
        material = "\0".join(
            [self.token_url, self.client_id, self._client_secret, form.get("grant_type", ""),
             form.get("refresh_token", ""), form.get("scope", "")]
        )  # fmt: skip
        return hashlib.sha256(material.encode()).hexdigest()


# -- the consent flow (authorization code + PKCE) --------------------------------------------------


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    code_verifier: str = field(repr=False)


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorization_url(
    authorize_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: list[str] | str,
    state: str | None = None,
    extra: dict[str, str] | None = None,
) -> AuthorizationRequest:
    """The consent URL to open in a browser, with a fresh `state` and a PKCE S256 challenge."""
    verifier, challenge = pkce_pair()
    state = state or secrets.token_urlsafe(24)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scopes if isinstance(scopes, str) else " ".join(scopes),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **(extra or {}),
    }
    sep = "&" if "?" in authorize_url else "?"
    return AuthorizationRequest(
        url=f"{authorize_url}{sep}{urlencode(params)}", state=state, code_verifier=verifier
    )


def exchange_code(
    http: HttpClient,
    token_url: str,
    *,
    vendor: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    returned_state: str | None = None,
    expected_state: str | None = None,
    client_auth: str = "basic",
    now: Callable[[], datetime] | None = None,
) -> TokenSet:
    """Trade the callback's code for tokens; refuses a callback whose `state` is not the one we sent."""
    if expected_state is not None and returned_state != expected_state:
        raise AuthError(
            vendor, None, "state_mismatch", "the consent callback's state does not match the request"
        )
    register_secret(client_secret, code, code_verifier)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    headers = {"Accept": "application/json"}
    if client_auth == "basic":
        headers["Authorization"] = (
            "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        )
    else:
        form.update(client_id=client_id, client_secret=client_secret)
    reply = http.request(
        "POST", token_url, endpoint="oauth token", data=form, headers=headers, raise_for_status=False
    )
    body = reply.data if isinstance(reply.data, dict) else {}
    if reply.status >= 400 or "error" in body:
        raise AuthError(
            vendor,
            reply.status,
            str(body.get("error") or f"http_{reply.status}"),
            "the code exchange was refused",
        )
    return TokenSet.from_response(body, now=(now or (lambda: datetime.now(UTC)))())
