"""The sandbox on loopback: both emulators served by uvicorn, with credentials the pipeline can use.

`SandboxServer` is what tests, `xz demo`, `xz dev` and `xz sandbox` start. It generates one world per
connection, seeds one Xero tenant and one Zoho org per world (or loads a hand-made fixture folder),
registers an OAuth client per vendor, grants a refresh token per connection as if a person had
consented, wraps each app in the fault middleware and serves each vendor on its own origin. `env(i)`
gives the docs/configuration.md variables for connection i, so the pipeline runs against the sandbox exactly
as it runs against the real services: over HTTP, through the token endpoints.

Credentials are derived from the seed, so the same `--seed` always prints the same client ids and
secrets (refresh tokens come from the emulators and change per start).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import uvicorn

from xz_pipeline.sandbox.clock import Clock
from xz_pipeline.sandbox.faults import FAULTS_HELP, Fault, FaultMiddleware, coerce_faults
from xz_pipeline.sandbox.profiles import DEFAULT_PROFILE, PROFILE_NAMES, PROFILES, get_profile

SIZES = ("tiny", "demo", "medium", "large")
START_TIMEOUT = 15.0
# Where a local `xz auth` may send the browser back to after consent.
REDIRECT_URIS = ("http://localhost:8765/callback", "http://127.0.0.1:8765/callback")

ENV_KEYS = (
    "XERO_CLIENT_ID",
    "XERO_CLIENT_SECRET",
    "XERO_REFRESH_TOKEN",
    "XERO_TENANT_ID",
    "XERO_WEBHOOK_KEY",
    "XERO_API_URL",
    "XERO_IDENTITY_URL",
    "XERO_LOGIN_URL",
    "ZOHO_CLIENT_ID",
    "ZOHO_CLIENT_SECRET",
    "ZOHO_REFRESH_TOKEN",
    "ZOHO_ACCOUNTS_URL",
    "ZOHO_API_DOMAIN",
    "ZOHO_NOTIFY_TOKEN",
)
# With `books="quickbooks"` the books lines are these instead of the XERO_* ones (and XZ_BOOKS=quickbooks).
QBO_ENV_KEYS = (
    "QBO_CLIENT_ID",
    "QBO_CLIENT_SECRET",
    "QBO_REFRESH_TOKEN",
    "QBO_REALM_ID",
    "QBO_API_URL",
    "QBO_TOKEN_URL",
    "QBO_AUTH_URL",
    "QBO_WEBHOOK_VERIFIER",
)
# With `crm="salesforce"` the CRM lines are these instead of the ZOHO_* ones (and XZ_CRM=salesforce).
SF_ENV_KEYS = (
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_REFRESH_TOKEN",
    "SALESFORCE_LOGIN_URL",
    "SALESFORCE_INSTANCE_URL",
)
BOOKS = ("xero", "quickbooks")
CRMS = ("zoho", "salesforce")


def _derive(seed: int, label: str, n: int = 64) -> str:
    """A stable hex secret for (seed, label): the same seed prints the same credentials."""
    return hashlib.sha256(f"xz-sandbox:{seed}:{label}".encode()).hexdigest()[:n]


class LoopbackServer:
    """One ASGI app served by uvicorn in a daemon thread (port 0 → a free port)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "sandbox") -> None:
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name=f"xz-{name}", daemon=True)
        self.host = host
        self.port = 0

    def start(self) -> LoopbackServer:
        if self.port:
            return self  # already serving (e.g. `with server:` after start())
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"{self.thread.name} failed to start on {self.host}:{self.config.port}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.thread.name} did not start within {START_TIMEOUT:.0f}s")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SandboxServer:
    """Both emulators on loopback, seeded, with one set of credentials per connection."""

    def __init__(
        self,
        *,
        seed: int = 7,
        size: str = "demo",
        profile: str = DEFAULT_PROFILE,
        habits: str = "realistic",
        connections: int = 1,
        fixture_dir: str | Path | None = None,
        faults: str | Iterable[Fault] | None = None,
        clock: Clock | None = None,
        xero_limits: Any = None,
        zoho_limits: Any = None,
        webhook_url: str | None = None,
        host: str = "127.0.0.1",
        xero_port: int = 0,
        zoho_port: int = 0,
        deliver_every: float | None = None,
        books: str = "xero",
        qbo_limits: Any = None,
        qbo_webhook_format: str = "cloudevents",
        crm: str = "zoho",
        sf_limits: Any = None,
        sf_outbound_url: str | None = None,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be >= 1")
        if books not in BOOKS:
            raise ValueError(f"books must be one of {', '.join(BOOKS)}, got {books!r}")
        if crm not in CRMS:
            raise ValueError(f"crm must be one of {', '.join(CRMS)}, got {crm!r}")
        if crm == "salesforce" and fixture_dir is not None:
            raise ValueError(
                "a fixture folder holds Zoho records; use the generated world with crm=salesforce"
            )
        if books == "quickbooks" and fixture_dir is not None:
            raise ValueError(
                "a fixture folder holds Xero records; use the generated world with books=quickbooks"
            )
        if fixture_dir is not None and connections != 1:
            raise ValueError("a fixture folder describes one connection; use connections=1")
        self.seed, self.size, self.connections = seed, size, connections
        self.profile = get_profile(profile)  # an unknown name fails here, before anything starts
        self.habits = habits  # world.habits.MODES
        self.fixture_dir = Path(fixture_dir) if fixture_dir is not None else None
        self.faults = coerce_faults(faults)  # parse now: a bad spec fails before anything starts
        self.clock = clock
        self.xero_limits, self.zoho_limits = xero_limits, zoho_limits
        self.webhook_url = webhook_url
        self.host, self.xero_port, self.zoho_port = host, xero_port, zoho_port
        self.deliver_every = deliver_every
        self.xero_client_id = _derive(seed, "xero-client-id", 32).upper()
        self.xero_client_secret = _derive(seed, "xero-client-secret", 48)
        self.xero_webhook_key = _derive(seed, "xero-webhook-key", 64)
        self.zoho_client_id = "1000." + _derive(seed, "zoho-client-id", 30).upper()
        self.zoho_client_secret = _derive(seed, "zoho-client-secret", 42)
        self.zoho_notify_token = _derive(seed, "zoho-notify-token", 32)
        self.books = books
        self.qbo_limits, self.qbo_webhook_format = qbo_limits, qbo_webhook_format
        self.qbo_client_id = "AB" + _derive(seed, "qbo-client-id", 48)
        self.qbo_client_secret = _derive(seed, "qbo-client-secret", 40)
        self.qbo_webhook_verifier = _derive(seed, "qbo-webhook-verifier", 36)
        self.crm, self.sf_limits, self.sf_outbound_url = crm, sf_limits, sf_outbound_url
        self.sf_client_id = "3MVG9" + _derive(seed, "salesforce-client-id", 80)
        self.sf_client_secret = _derive(seed, "salesforce-client-secret", 64).upper()
        self._sf: Any = None
        self._sf_orgs: list[str] = []
        self._sf_tokens: list[str] = []
        self.sf_faults: FaultMiddleware | None = None
        self._realms: list[str] = []
        self._qbo_tokens: list[str] = []
        self._qbo: Any = None
        self.qbo_faults: FaultMiddleware | None = None
        self._worlds: list[Any] = []
        self._tenants: list[str] = []
        self._orgs: list[str] = []
        self._xero_tokens: list[str] = []
        self._zoho_tokens: list[str] = []
        self._xero: Any = None
        self._zoho: Any = None
        self._servers: dict[str, LoopbackServer] = {}
        self.xero_faults: FaultMiddleware | None = None
        self.zoho_faults: FaultMiddleware | None = None
        self.zoho_accounts_faults: FaultMiddleware | None = None  # a separate accounts server's
        self._delivery_stop = threading.Event()
        self._delivery: threading.Thread | None = None
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._started:
            return self
        from xz_pipeline.sandbox.zoho import ZohoEmulator

        if self.books == "quickbooks":
            from xz_pipeline.sandbox.quickbooks import QuickBooksEmulator

            self._qbo = QuickBooksEmulator(clock=self.clock, limits=self.qbo_limits)
        else:
            from xz_pipeline.sandbox.xero import XeroEmulator

            self._xero = XeroEmulator(clock=self.clock, limits=self.xero_limits)
        if self.crm == "salesforce":
            from xz_pipeline.sandbox.salesforce import SalesforceEmulator

            self._sf = SalesforceEmulator(clock=self.clock, limits=self.sf_limits)
            if self.clock is None:  # wall-clock time: Outbound Message back-off compressed (2 h -> 7 s)
                self._sf.outbound.retry_scale = 0.001
        else:
            self._zoho = ZohoEmulator(clock=self.clock, limits=self.zoho_limits)
        self._seed_state()
        if self._qbo is not None:
            self.qbo_faults = FaultMiddleware(
                self._qbo.app, self.faults, self._qbo, vendor="quickbooks", seed=self.seed
            )
        else:
            self.xero_faults = FaultMiddleware(
                self._xero.app, self.faults, self._xero, vendor="xero", seed=self.seed
            )
        split = self.profile.separate_accounts_server and self._sf is None
        served = [
            ("quickbooks", self.qbo_faults, self.xero_port, self._qbo)
            if self._qbo is not None
            else ("xero", self.xero_faults, self.xero_port, self._xero),
        ]
        if self._sf is not None:  # the login host, then one instance host per org (each org its own origin)
            self.sf_faults = FaultMiddleware(
                self._sf.app, self.faults, self._sf, vendor="salesforce", seed=self.seed
            )
            served.append(("salesforce", self.sf_faults, self.zoho_port, self._sf))
            served += [(f"salesforce-{i + 1}", self.sf_faults, 0, None) for i in range(len(self._sf_orgs))]
        else:
            self.zoho_faults = FaultMiddleware(
                self._zoho.api_app if split else self._zoho.app,
                self.faults,
                self._zoho,
                vendor="zoho",
                seed=self.seed,
            )
            served.append(("zoho", self.zoho_faults, self.zoho_port, self._zoho))
        if split:  # a non-US data centre: the accounts server on its own origin, the API on another
            self._zoho.location = self.profile.data_centre
            self.zoho_accounts_faults = FaultMiddleware(
                self._zoho.accounts_app, self.faults, self._zoho, vendor="zoho", seed=self.seed
            )
            served.append(("zoho-accounts", self.zoho_accounts_faults, 0, None))
        try:
            for name, mw, port, emulator in served:
                server = LoopbackServer(mw, host=self.host, port=port, name=f"{name}-emulator").start()
                self._servers[name] = server
                if emulator is not None:
                    emulator.base_url = server.url
            if split:
                self._zoho.accounts_url = self._servers["zoho-accounts"].url
            for i, org_id in enumerate(self._sf_orgs):
                self._sf.set_instance_url(org_id, self._servers[f"salesforce-{i + 1}"].url)
                if self.sf_outbound_url:
                    self._sf.set_outbound(org_id, self.sf_outbound_url)
            if self.webhook_url and self._qbo is not None:
                self._qbo.set_webhook(self.webhook_url, self.qbo_webhook_verifier, self.qbo_webhook_format)
            elif self.webhook_url:
                self._xero.set_webhook(self.webhook_url, self.xero_webhook_key)
            if self.deliver_every:
                self._delivery = threading.Thread(
                    target=self._deliver_loop, name="xz-sandbox-delivery", daemon=True
                )
                self._delivery.start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def _seed_state(self) -> None:
        if self._qbo is not None:
            self._seed_quickbooks()
            return
        xero, zoho = self._xero, self._zoho
        xero.register_client(self.xero_client_id, self.xero_client_secret, list(REDIRECT_URIS))
        if self._sf is not None:
            self._seed_salesforce_crm()
            return
        zoho.register_client(self.zoho_client_id, self.zoho_client_secret, list(REDIRECT_URIS))
        if self.fixture_dir is not None:
            from xz_pipeline.sandbox.fixtures import load_fixture_dir

            tenant_id, org_id = load_fixture_dir(self.fixture_dir, xero, zoho, self.profile)
            self._tenants.append(tenant_id)
            self._orgs.append(org_id)
        else:
            from xz_pipeline.sandbox.world import generate

            for index in range(self.connections):
                world = generate(
                    seed=self.seed, size=self.size, index=index, profile=self.profile, habits=self.habits
                )
                self._worlds.append(world)
                self._tenants.append(xero.seed_world(world))
                self._orgs.append(zoho.seed_world(world))
        for tenant_id, org_id in zip(self._tenants, self._orgs, strict=True):
            self._xero_tokens.append(xero.grant_refresh_token(self.xero_client_id, [tenant_id]))
            self._zoho_tokens.append(zoho.grant_refresh_token(self.zoho_client_id, org_id))

    def _seed_quickbooks(self) -> None:
        """One QBO company per generated world (the books side), the same Zoho orgs as with Xero."""
        from xz_pipeline.sandbox.world import generate

        qbo, zoho = self._qbo, self._zoho
        qbo.register_client(self.qbo_client_id, self.qbo_client_secret, list(REDIRECT_URIS))
        if self._sf is not None:
            self._seed_salesforce_crm()
            return
        zoho.register_client(self.zoho_client_id, self.zoho_client_secret, list(REDIRECT_URIS))
        for index in range(self.connections):
            world = generate(
                seed=self.seed, size=self.size, index=index, profile=self.profile, habits=self.habits
            )
            self._worlds.append(world)
            self._tenants.append(world.books.tenant_id)
            self._realms.append(qbo.seed_world(world))
            self._orgs.append(zoho.seed_world(world))
        for realm, org_id in zip(self._realms, self._orgs, strict=True):
            self._qbo_tokens.append(qbo.grant_refresh_token(self.qbo_client_id, realm))
            self._zoho_tokens.append(zoho.grant_refresh_token(self.zoho_client_id, org_id))

    def _seed_salesforce_crm(self) -> None:
        """The books side as usual, and one Salesforce org per generated world in place of the Zoho org."""
        from xz_pipeline.sandbox.salesforce.seed import rename_deal_references
        from xz_pipeline.sandbox.world import generate

        sf = self._sf
        sf.register_client(self.sf_client_id, self.sf_client_secret, list(REDIRECT_URIS))
        for index in range(self.connections):
            world = generate(
                seed=self.seed, size=self.size, index=index, profile=self.profile, habits=self.habits
            )
            self._worlds.append(world)
            org_id = sf.seed_world(world)  # first: the books name deals (`DEAL-<id>`) by the org's ids
            rename_deal_references(world, sf.id_map(org_id))
            if self._qbo is not None:
                self._tenants.append(world.books.tenant_id)
                self._realms.append(self._qbo.seed_world(world))
                self._qbo_tokens.append(self._qbo.grant_refresh_token(self.qbo_client_id, self._realms[-1]))
            else:
                self._tenants.append(self._xero.seed_world(world))
                self._xero_tokens.append(
                    self._xero.grant_refresh_token(self.xero_client_id, [self._tenants[-1]])
                )
            self._sf_orgs.append(org_id)
            self._orgs.append(self._sf_orgs[-1])
            self._sf_tokens.append(sf.grant_refresh_token(self.sf_client_id, self._sf_orgs[-1]))

    def _deliver_loop(self) -> None:
        """Push queued webhooks and notifications, as the real services do on their own."""
        books = self._qbo if self._qbo is not None else self._xero
        crm_flush = self._sf.flush_outbound if self._sf is not None else self._zoho.flush_notifications
        while not self._delivery_stop.wait(self.deliver_every):
            for flush in (books.flush_webhooks, crm_flush):
                try:
                    flush()
                except Exception as exc:  # a receiver that is down must not stop the sandbox
                    print(f"xz sandbox: delivery failed: {type(exc).__name__}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self._delivery_stop.set()
        if self._delivery is not None:
            self._delivery.join(5)
        for mw in (
            self.xero_faults,
            self.qbo_faults,
            self.zoho_faults,
            self.zoho_accounts_faults,
            self.sf_faults,
        ):
            if mw is not None:
                mw.close()
        for server in self._servers.values():
            server.stop()
        self._servers.clear()
        self._started = False

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what callers read ---------------------------------------------------------------------

    @property
    def xero(self) -> Any:
        return self._xero

    @property
    def zoho(self) -> Any:
        return self._zoho

    @property
    def quickbooks(self) -> Any:
        """The QuickBooks emulator (None unless books="quickbooks")."""
        return self._qbo

    @property
    def salesforce(self) -> Any:
        """The Salesforce emulator (None unless crm="salesforce")."""
        return self._sf

    @property
    def crm_emulator(self) -> Any:
        """Whichever emulator plays the CRM role."""
        return self._sf if self._sf is not None else self._zoho

    @property
    def salesforce_url(self) -> str:
        """The Salesforce login host (OAuth); each org's API is on its own instance URL (`env`)."""
        return self._server("salesforce").url

    @property
    def salesforce_org_ids(self) -> list[str]:
        return list(self._sf_orgs)

    @property
    def books_emulator(self) -> Any:
        """Whichever emulator plays the books role."""
        return self._qbo if self._qbo is not None else self._xero

    @property
    def realm_ids(self) -> list[str]:
        """The QBO realm per connection (empty unless books="quickbooks")."""
        return list(self._realms)

    @property
    def quickbooks_url(self) -> str:
        return self._server("quickbooks").url

    def id_maps(self, index: int = 0) -> dict[str, dict[str, str]]:
        """{vendor: {world id: vendor id}} for connection `index`, for vendors whose ids are not the world's."""
        maps = {}
        if self._qbo is not None:
            maps["quickbooks"] = self._qbo.id_map(self._realms[index])
        if self._sf is not None:
            maps["salesforce"] = self._sf.id_map(self._sf_orgs[index])
        return maps

    @property
    def worlds(self) -> list[Any]:
        """The generated worlds, one per connection (empty when seeded from a fixture folder)."""
        return list(self._worlds)

    @property
    def tenant_ids(self) -> list[str]:
        return list(self._tenants)

    @property
    def org_ids(self) -> list[str]:
        return list(self._orgs)

    @property
    def xero_url(self) -> str:
        return self._server("xero").url

    @property
    def zoho_url(self) -> str:
        """The Zoho API's origin (with a separate accounts server, only the API answers here)."""
        return self._server("zoho").url

    @property
    def zoho_accounts_url(self) -> str:
        """The Zoho accounts server's origin: the API's own unless the profile's data centre splits them."""
        return self._server("zoho-accounts" if self.profile.separate_accounts_server else "zoho").url

    def _server(self, name: str) -> LoopbackServer:
        if name not in self._servers:
            raise RuntimeError("the sandbox is not running: use `with SandboxServer(...) as sb` or start()")
        return self._servers[name]

    def connection_name(self, index: int) -> str:
        return f"sandbox-{index + 1}"

    def env(self, index: int = 0) -> dict[str, str]:
        """The environment (docs/configuration.md) for connection `index`: the pipeline needs nothing else."""
        if self._qbo is not None:
            return self._crm_env(self._env_quickbooks(index), index)
        if self._sf is not None:
            env = {"XERO_CLIENT_ID": self.xero_client_id, "XERO_CLIENT_SECRET": self.xero_client_secret,
                   "XERO_REFRESH_TOKEN": self._xero_tokens[index], "XERO_TENANT_ID": self._tenants[index],
                   "XERO_WEBHOOK_KEY": self.xero_webhook_key, "XERO_API_URL": self.xero_url,
                   "XERO_IDENTITY_URL": self.xero_url, "XERO_LOGIN_URL": self.xero_url}  # fmt: skip
            return self._crm_env(env, index)
        xero_url, zoho_url = self.xero_url, self.zoho_url
        if not 0 <= index < len(self._tenants):
            raise IndexError(f"connection {index} does not exist (0..{len(self._tenants) - 1})")
        env = {
            "XERO_CLIENT_ID": self.xero_client_id,
            "XERO_CLIENT_SECRET": self.xero_client_secret,
            "XERO_REFRESH_TOKEN": self._xero_tokens[index],
            "XERO_TENANT_ID": self._tenants[index],
            "XERO_WEBHOOK_KEY": self.xero_webhook_key,
            "XERO_API_URL": xero_url,
            "XERO_IDENTITY_URL": xero_url,
            "XERO_LOGIN_URL": xero_url,
            "ZOHO_CLIENT_ID": self.zoho_client_id,
            "ZOHO_CLIENT_SECRET": self.zoho_client_secret,
            "ZOHO_REFRESH_TOKEN": self._zoho_tokens[index],
            "ZOHO_ACCOUNTS_URL": self.zoho_accounts_url,
            "ZOHO_API_DOMAIN": zoho_url,
            "ZOHO_NOTIFY_TOKEN": self.zoho_notify_token,
        }
        mapping = self.profile.field_mapping()
        if mapping:  # the org keeps our fields under its own names: the mapping a person would configure
            env["XZ_ZOHO_FIELDS"] = json.dumps(mapping, sort_keys=True)
        if self.profile.separate_accounts_server:
            # As a person connects a non-US org: only the accounts server is configured; the API's origin
            # comes from the token response's api_domain (docs/configuration.md).
            del env["ZOHO_API_DOMAIN"]
        return env

    def _crm_env(self, env: dict[str, str], index: int) -> dict[str, str]:
        """With crm="salesforce": SALESFORCE_* and XZ_CRM=salesforce in place of the ZOHO_* lines."""
        if self._sf is None:
            return env
        from xz_pipeline.sandbox.salesforce.schema import field_mapping

        env = {k: v for k, v in env.items() if not k.startswith(("ZOHO_", "XZ_ZOHO_"))}
        org_id = self._sf_orgs[index]
        env.update({
            "XZ_CRM": "salesforce",
            "SALESFORCE_CLIENT_ID": self.sf_client_id,
            "SALESFORCE_CLIENT_SECRET": self.sf_client_secret,
            "SALESFORCE_REFRESH_TOKEN": self._sf_tokens[index],
            "SALESFORCE_LOGIN_URL": self.salesforce_url,
            "SALESFORCE_INSTANCE_URL": self._sf.orgs[org_id].instance_url,
        })  # fmt: skip
        mapping = field_mapping(self.profile)
        if mapping:  # the org keeps our fields under its own names: the mapping a person would configure
            env["XZ_SALESFORCE_FIELDS"] = json.dumps(mapping, sort_keys=True)
        return env

    def _env_quickbooks(self, index: int) -> dict[str, str]:
        """QBO_* and XZ_BOOKS=quickbooks in place of the XERO_* lines; the Zoho side as with Xero."""
        if not 0 <= index < len(self._realms):
            raise IndexError(f"connection {index} does not exist (0..{len(self._realms) - 1})")
        from xz_pipeline.sandbox.quickbooks.auth import CONSENT_PATH, TOKEN_PATH

        url, zoho_url = self.quickbooks_url, self.zoho_url if self._zoho is not None else ""
        env = {
            "XZ_BOOKS": "quickbooks",
            "QBO_CLIENT_ID": self.qbo_client_id,
            "QBO_CLIENT_SECRET": self.qbo_client_secret,
            "QBO_REFRESH_TOKEN": self._qbo_tokens[index],
            "QBO_REALM_ID": self._realms[index],
            "QBO_API_URL": url,
            "QBO_TOKEN_URL": url + TOKEN_PATH,
            "QBO_AUTH_URL": url + CONSENT_PATH,
            "QBO_WEBHOOK_VERIFIER": self.qbo_webhook_verifier,
        }
        if self._zoho is None:
            return env
        env |= {
            "ZOHO_CLIENT_ID": self.zoho_client_id,
            "ZOHO_CLIENT_SECRET": self.zoho_client_secret,
            "ZOHO_REFRESH_TOKEN": self._zoho_tokens[index],
            "ZOHO_ACCOUNTS_URL": self.zoho_accounts_url,
            "ZOHO_API_DOMAIN": zoho_url,
            "ZOHO_NOTIFY_TOKEN": self.zoho_notify_token,
        }
        mapping = self.profile.field_mapping()
        if mapping:
            env["XZ_ZOHO_FIELDS"] = json.dumps(mapping, sort_keys=True)
        if self.profile.separate_accounts_server:
            del env["ZOHO_API_DOMAIN"]
        return env

    def export_lines(self, index: int = 0) -> list[str]:
        return [f"export {k}={shlex.quote(v)}" for k, v in self.env(index).items()]

    def write_connections_file(self, path: str | Path | None = None) -> Path:
        """Write `$XZ_HOME/connections.toml` (or `path`): one `[connections.sandbox-N]` table each."""
        target = Path(path) if path is not None else _xz_home() / "connections.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Written by `xz sandbox`: one table per connection (keys: docs/configuration.md).", ""]
        for index in range(len(self._tenants)):
            lines.append(f'[connections."{self.connection_name(index)}"]')
            # JSON string escapes are valid TOML basic-string escapes.
            env = self.env(index)
            mapping = json.loads(env.pop("XZ_ZOHO_FIELDS", "{}"))
            sf_mapping = json.loads(env.pop("XZ_SALESFORCE_FIELDS", "{}"))
            if env.pop("XZ_BOOKS", "") == "quickbooks":
                lines.append('books = "quickbooks"')
            if env.pop("XZ_CRM", "") == "salesforce":
                lines.append('crm = "salesforce"')
            lines += [f"{key} = {json.dumps(value)}" for key, value in env.items()]
            lines.append("")
            if mapping.get("fields"):
                lines.append(f'[connections."{self.connection_name(index)}".zoho.fields]')
                lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(mapping["fields"].items())]
                lines.append("")
            for key, table in sorted(mapping.get("values", {}).items()):
                lines.append(f'[connections."{self.connection_name(index)}".zoho.values.{json.dumps(key)}]')
                lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(table.items())]
                lines.append("")
            if sf_mapping.get("fields"):
                lines.append(f'[connections."{self.connection_name(index)}".salesforce.fields]')
                lines += [
                    f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(sf_mapping["fields"].items())
                ]
                lines.append("")
            for key, table in sorted(sf_mapping.get("values", {}).items()):
                lines.append(
                    f'[connections."{self.connection_name(index)}".salesforce.values.{json.dumps(key)}]'
                )
                lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(table.items())]
                lines.append("")
        tmp = target.with_suffix(".toml.tmp")
        tmp.write_text("\n".join(lines))
        os.chmod(tmp, 0o600)  # it holds client secrets and refresh tokens
        os.replace(tmp, target)
        return target

    def write_manifests(self, directory: str | Path) -> list[Path]:
        """Write each world's ground-truth manifest as `<dir>/<connection name>.json`."""
        from xz_pipeline.sandbox.world import write_manifest

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, world in enumerate(self._worlds):
            path = out / f"{self.connection_name(index)}.json"
            write_manifest(world, path, id_maps=self.id_maps(index))
            paths.append(path)
        return paths


def _xz_home() -> Path:
    return Path(os.environ.get("XZ_HOME") or "./.xz").resolve()


# --------------------------------------------------------------------------------------------
# CLI: `xz sandbox` and `python -m xz_pipeline.sandbox.server`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `xz sandbox` options; also used by the main `xz` CLI for its `sandbox` subcommand."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the fault grammar's layout
    parser.epilog = FAULTS_HELP
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--size", choices=SIZES, default="demo", help="world size (default demo)")
    parser.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default=DEFAULT_PROFILE,
        help="organisation profile (default full): "
        + "; ".join(f"{name}: {p.summary}" for name, p in PROFILES.items()),
    )
    parser.add_argument("--connections", type=int, default=1, help="how many org pairs (default 1)")
    parser.add_argument(
        "--fixture", metavar="DIR", help="seed from a fixture folder instead of the generator"
    )
    parser.add_argument("--faults", metavar="SPEC", help="inject faults (grammar below)")
    parser.add_argument(
        "--books", choices=BOOKS, default="xero", help="the books system to emulate (default xero)"
    )
    parser.add_argument("--crm", choices=CRMS, default="zoho", help="the CRM to emulate (default zoho)")
    parser.add_argument(
        "--webhook-url", metavar="URL", help="deliver the books emulator's webhooks to this receiver"
    )
    parser.add_argument("--xero-port", type=int, default=0, help="Xero emulator port (default: a free port)")
    parser.add_argument("--zoho-port", type=int, default=0, help="Zoho emulator port (default: a free port)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--manifest", metavar="PATH", help="write the ground-truth manifest(s) here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xz sandbox",
        description="Serve the books (Xero or QuickBooks Online) and Zoho emulators on loopback until stopped, "
        "and print the environment that points the pipeline at them.",
    )
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Start the sandbox, print how to reach it, serve until SIGINT/SIGTERM; 0 on a clean stop."""
    if args.connections < 1:
        print("xz sandbox: --connections must be >= 1", file=sys.stderr)
        return 2
    try:
        sandbox = SandboxServer(
            seed=args.seed,
            size=args.size,
            profile=getattr(args, "profile", DEFAULT_PROFILE),
            connections=args.connections,
            fixture_dir=args.fixture,
            faults=args.faults,
            webhook_url=args.webhook_url,
            host=args.host,
            xero_port=args.xero_port,
            zoho_port=args.zoho_port,
            deliver_every=1.0,
            books=getattr(args, "books", "xero"),
            crm=getattr(args, "crm", "zoho"),
            sf_outbound_url=_outbound_url(args.webhook_url)
            if getattr(args, "crm", "") == "salesforce"
            else None,
        )
    except ValueError as exc:
        print(f"xz sandbox: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = _install_stop_handlers(stop)
    try:
        with sandbox:
            if args.manifest and not sandbox.worlds:
                print("# --manifest: a fixture folder has no generated ground truth", file=sys.stderr)
            elif args.manifest:
                if len(sandbox.worlds) == 1:
                    from xz_pipeline.sandbox.world import write_manifest

                    Path(args.manifest).parent.mkdir(parents=True, exist_ok=True)
                    write_manifest(sandbox.worlds[0], Path(args.manifest), id_maps=sandbox.id_maps(0))
                else:
                    sandbox.write_manifests(args.manifest)
                print(f"# manifest: {args.manifest}", file=sys.stderr, flush=True)
            books = (
                f"QuickBooks emulator {sandbox.quickbooks_url}"
                if sandbox.books == "quickbooks"
                else f"Xero emulator {sandbox.xero_url}"
            )
            if sandbox.crm == "salesforce":
                crm = f"Salesforce emulator {sandbox.salesforce_url} (login)"
            else:
                crm = f"Zoho emulator {sandbox.zoho_url}" + (
                    f" (accounts server {sandbox.zoho_accounts_url})"
                    if sandbox.profile.separate_accounts_server
                    else ""
                )
            print(f"# xz sandbox ({sandbox.profile.name}): {books}, {crm}", file=sys.stderr, flush=True)
            if sandbox.connections > 1:
                print(sandbox.write_connections_file(), flush=True)
            else:
                print("\n".join(sandbox.export_lines(0)), flush=True)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        _restore_handlers(previous)
    return 0


def _outbound_url(webhook_url: str | None) -> str | None:
    """Outbound Messages go to the receiver's /webhooks/salesforce, on the origin given for webhooks."""
    if not webhook_url:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(webhook_url)
    return f"{parts.scheme}://{parts.netloc}/webhooks/salesforce"


def _install_stop_handlers(stop: threading.Event) -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    return previous


def _restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


serve_forever = run  # the name the sandbox brief uses; `xz sandbox` mounts add_arguments + run


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
