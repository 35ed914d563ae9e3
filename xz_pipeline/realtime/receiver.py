"""The webhook receiver (`xz webhooks`): Xero and QuickBooks webhooks, Zoho notifications and Salesforce
Outbound Messages into the inbox.

Both endpoints authenticate first (Xero: HMAC over the raw body; Zoho: the URL secret and the channel
token), store the announced changes durably, and only then answer, with an empty body, well inside
Xero's 5 seconds. Bodies are size-limited before they are read whole. The access log is our own and
shows only the path: Zoho's notify URL carries a secret in its query string.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xz_pipeline import settings
from xz_pipeline.core.oauth import TokenStore
from xz_pipeline.quickbooks import webhooks as qbo_hooks
from xz_pipeline.quickbooks.client import remembered_realm
from xz_pipeline.realtime.inbox import Inbox, InboxEvent, iso
from xz_pipeline.salesforce import webhooks as sf_hooks
from xz_pipeline.salesforce.client import org_id_of
from xz_pipeline.xero import webhooks as xero_hooks
from xz_pipeline.zoho import webhooks as zoho_hooks

MAX_BODY = 1 << 20  # 1 MiB: Xero batches are small; Zoho sends ids only
# A body whose values cannot be interpreted is answered 400, never 500 (the parsers raise their own
# ValueError subclasses; the rest is what a value no parser foresaw could still raise).
UNREADABLE = (ValueError, TypeError, KeyError, OverflowError, RecursionError, OSError)
log = logging.getLogger("xz.webhooks")


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class Receiver:
    """Holds the inbox and the connections; the connections are read when first needed (at serve time)."""

    def __init__(self, inbox: Inbox | None = None, connections: list[settings.Connection] | None = None,
                 *, max_body: int = MAX_BODY) -> None:  # fmt: skip
        self._inbox = inbox
        self._connections = connections
        self.max_body = max_body

    @property
    def inbox(self) -> Inbox:
        if self._inbox is None:
            self._inbox = Inbox()
        return self._inbox

    @property
    def connections(self) -> list[settings.Connection]:
        if self._connections is None:
            self._connections = settings.load_connections()
        return self._connections

    # -- Xero -----------------------------------------------------------------------------------

    async def xero(self, request: Request) -> Response:
        try:
            body = await _read_body(request, self.max_body)
        except BodyTooLarge:
            return Response(status_code=413)
        keys = {c.xero.webhook_key for c in self.connections if c.xero and c.xero.webhook_key}
        if not xero_hooks.verify_signature(keys, body, request.headers.get("x-xero-signature")):
            return Response(status_code=401)
        try:
            events = xero_hooks.parse_events(body)
        except UNREADABLE:  # the parser's own error, or one it did not foresee: the sender's fault either way
            return Response(status_code=400)
        by_tenant = {c.xero.tenant_id: c.name for c in self.connections if c.xero and c.xero.tenant_id}
        rows = [
            InboxEvent(
                dedupe=e.dedupe_key(),
                source="xero",
                connection=by_tenant.get(e.tenant_id),
                tenant_id=e.tenant_id,
                asset=e.asset,
                record_id=e.resource_id,
                deleted=False,
                event_time=_xero_time(e.event_date),
            )  # fmt: skip
            for e in events
            if e.asset is not None
        ]
        return await self._store(rows)

    # -- QuickBooks Online ----------------------------------------------------------------------

    async def quickbooks(self, request: Request) -> Response:
        try:
            body = await _read_body(request, self.max_body)
        except BodyTooLarge:
            return Response(status_code=413)
        qbo = [c for c in self.connections if c.quickbooks]
        verifiers = {c.quickbooks.webhook_verifier for c in qbo if c.quickbooks.webhook_verifier}
        if not qbo_hooks.verify_signature(verifiers, body, request.headers.get("intuit-signature")):
            return Response(status_code=401)
        try:
            events = qbo_hooks.parse_events(body)
        except UNREADABLE:
            return Response(status_code=400)
        store = TokenStore(settings.xz_home() / "tokens")
        by_realm = {
            c.quickbooks.realm_id or remembered_realm(store, c.name, c.quickbooks.client_id): c.name
            for c in qbo
        }
        rows = [
            InboxEvent(
                dedupe=e.dedupe_key(),
                source="quickbooks",
                connection=by_realm.get(e.realm_id),
                tenant_id=e.realm_id,
                asset=e.asset,
                record_id=e.record_id,
                deleted=e.deleted,
                event_time=_xero_time(e.changed_at),
            )
            for e in events
            if e.asset is not None
        ]
        return await self._store(rows)

    # -- Zoho -----------------------------------------------------------------------------------

    async def zoho(self, request: Request) -> Response:
        secret = request.query_params.get(zoho_hooks.URL_SECRET_PARAM)
        conn = None
        for c in self.connections:
            if (
                c.zoho
                and c.zoho.notify_token
                and zoho_hooks.same(zoho_hooks.url_secret(c.zoho.notify_token), secret)
            ):
                conn = c
        if conn is None:
            return Response(status_code=401)
        try:
            body = await _read_body(request, self.max_body)
        except BodyTooLarge:
            return Response(status_code=413)
        try:
            note = zoho_hooks.parse_notification(body)
        except UNREADABLE:
            return Response(status_code=400)
        if not zoho_hooks.same(zoho_hooks.channel_token(conn.zoho.notify_token), note.token):
            return Response(status_code=401)
        if note.asset is None:
            return Response(status_code=200)  # a module we do not mirror
        rows = [
            InboxEvent(
                dedupe=note.dedupe_key(i),
                source="zoho",
                connection=conn.name,
                tenant_id=None,
                asset=note.asset,
                record_id=i,
                deleted=note.deleted,
                event_time=iso(note.server_time),
            )  # fmt: skip
            for i in note.ids
        ]
        return await self._store(rows)

    # -- Salesforce -----------------------------------------------------------------------------

    async def salesforce(self, request: Request) -> Response:
        """Outbound Messages: the org (and the URL secret, when configured) decide the connection; each
        notification is stored under its Id, then acknowledged with `<Ack>true</Ack>` (a retry of one
        already stored is acknowledged again and stored nothing)."""
        try:
            body = await _read_body(request, self.max_body)
        except BodyTooLarge:
            return Response(status_code=413)
        try:
            message = sf_hooks.parse_message(body)
        except UNREADABLE:
            return Response(status_code=400)
        store = TokenStore(settings.xz_home() / "tokens")
        conn = None
        for c in self.connections:
            if c.salesforce is None:
                continue
            org = (
                c.salesforce.org_id
                or org_id_of(await run_in_threadpool(store.load, c.name, "salesforce"))
                or ""
            )
            secret = c.salesforce.notify_token
            given = request.query_params.get(sf_hooks.URL_SECRET_PARAM)
            if sf_hooks.same_org(org, message.organization_id) and (
                not secret or sf_hooks.same_secret(secret, given)
            ):
                conn = c
        if conn is None:
            return Response(status_code=401)
        rows = [
            InboxEvent(
                dedupe=message.dedupe_key(n),
                source="salesforce",
                connection=conn.name,
                tenant_id=message.organization_id,
                asset=n.asset,
                record_id=n.record_id,
                deleted=False,
                event_time=iso(n.modified) if n.modified else iso(datetime.now(UTC)),
            )  # fmt: skip
            for n in message.notifications
            if n.asset is not None
        ]
        stored = await self._store(rows)
        if stored.status_code != 200:
            return stored
        return Response(sf_hooks.ACK, status_code=200, media_type="text/xml; charset=utf-8")

    async def _store(self, rows: list[InboxEvent]) -> Response:
        try:
            await run_in_threadpool(self.inbox.add, rows)
        except Exception as exc:  # not stored → not acknowledged: the sender retries
            log.error("inbox write failed: %s", type(exc).__name__)
            return Response(status_code=503)
        return Response(status_code=200)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


def _xero_time(value: str) -> str:
    """eventDateUtc is ISO without an offset, in UTC."""
    from datetime import UTC, datetime

    try:
        dt = datetime.fromisoformat(value.rstrip("Z"))
        return iso(dt if dt.tzinfo else dt.replace(tzinfo=UTC))
    except (ValueError, OverflowError):  # not a time, or one UTC cannot hold (year 1 at +14:00)
        return iso(datetime.now(UTC))


class AccessLog:
    """ASGI middleware: method, path (never the query string), status, milliseconds."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [0]

        async def _send(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            log.info(
                "%s %s %s %.0fms",
                scope["method"],
                scope["path"],
                status[0],
                (time.perf_counter() - start) * 1000,
            )


def build_app(inbox: Inbox | None = None, connections: list[settings.Connection] | None = None,
              *, max_body: int = MAX_BODY) -> AccessLog:  # fmt: skip
    r = Receiver(inbox, connections, max_body=max_body)
    app = Starlette(
        routes=[
            Route("/webhooks/xero", r.xero, methods=["POST"]),
            Route("/webhooks/zoho", r.zoho, methods=["POST"]),
            Route("/webhooks/quickbooks", r.quickbooks, methods=["POST"]),
            Route("/webhooks/salesforce", r.salesforce, methods=["POST"]),
            Route("/health", r.health, methods=["GET"]),
        ]
    )
    app.state.receiver = r
    return AccessLog(app)


def serve_in_thread(host: str = "127.0.0.1", port: int = 0, *, inbox: Inbox | None = None,
                    connections: list[settings.Connection] | None = None) -> tuple[str, Callable[[], None]]:  # fmt: skip
    """Serve the receiver from a daemon thread; returns its base URL and a function that stops it."""
    config = uvicorn.Config(build_app(inbox, connections), host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", timeout_graceful_shutdown=2)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="xz-webhooks", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the webhook receiver did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}"

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return url, stop


# -- `xz webhooks` ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (default 8787)")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (uvicorn handles both); 0 on a clean stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        connections = settings.load_connections()
    except settings.SettingsError as exc:
        print(f"xz webhooks: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "connection", None):  # `xz webhooks --connection NAME` (checked by the CLI)
        connections = [c for c in connections if c.name == args.connection]
    if not connections:
        print("xz webhooks: no connection configured (docs/configuration.md)", file=sys.stderr)
        return 2
    inbox = Inbox()
    print(f"xz webhooks: Xero → http://{args.host}:{args.port}/webhooks/xero ; Zoho channels are enabled by the "
          f"zoho_channels sensor ; Salesforce Outbound Messages → http://{args.host}:{args.port}/webhooks/salesforce"
          f" ; inbox {inbox.path}", flush=True)  # fmt: skip
    uvicorn.run(build_app(inbox, connections), host=args.host, port=args.port, access_log=False,
                log_level="info", lifespan="off")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="xz webhooks", description="Receive Xero webhooks and Zoho notifications."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
