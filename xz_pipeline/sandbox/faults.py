"""Fault injection for the sandbox: the unreliable parts of the outside world, on demand.

Real APIs throttle, fail, hang, hang up, expire tokens early and send half a body. A client that has
only ever talked to a polite emulator has never been tested, so the sandbox can misbehave on purpose,
deterministically, from one spec string (the `--faults` flag of `xz sandbox`) or from Python
(`parse_faults(...)` or `Fault(...)` objects handed to `FaultMiddleware` / `SandboxServer`).

Grammar (whitespace around tokens is ignored)::

    spec    := fault ( ";" fault )*
    fault   := kind [ ":" arg ] [ "@" option ( "," option )* ]
    kind    := "429" | "5xx" | "slow" | "drop" | "expired" | "malformed"
    option  := "rate=" F        fire on each matching call with probability F (0 < F <= 1), seeded RNG
             | "nth=" N         fire on the Nth matching call only (1-based)
             | "every=" N       fire on every Nth matching call (N, 2N, 3N, ...)
             | "burst=" K       once fired, also hit the next K-1 matching calls (K consecutive in all)
             | "path=" PREFIX   only requests whose path starts with PREFIX
             | "method=" M      only these methods, "|"-separated: GET or PUT|POST
             | "vendor=" V      xero | zoho | quickbooks | salesforce | both (default both)
             | "seed=" N        the RNG seed for rate= (default: derived from the server's seed)

At most one of rate/nth/every; with none of them the fault hits every matching call. Args per kind:

    429[:problem]     the emulator's own 429 (`rate_limit_response()`), headers and body as the vendor
                      sends them; for Xero `problem` is minute|day|appminute|concurrent (default minute)
    5xx[:code]        500..504 with a body shaped like the vendor's (Xero: problem JSON for 500, plain
                      text for 503; Zoho: INTERNAL_ERROR JSON for 500; HTML gateway pages for 502/504);
                      without a code each hit picks 500, 502 or 503 from the seeded RNG
    slow[:seconds]    the request is processed, then its response is held back `seconds` (default 30),
                      longer than a sane client timeout: the client gives up although the write happened
    drop[:before|after]  the connection is closed with no response at all; `before` (default) never
                      reaches the emulator, `after` lets the emulator act and then hangs up
    expired           the request's access token is expired in the emulator (`expire_access_token`),
                      then the request proceeds and the emulator answers with its real 401
    malformed         the request is processed; the client gets a 200 whose JSON body is cut in half

Example: ``429@nth=3,burst=2;5xx:503@rate=0.1;slow:5@nth=7;drop@every=10,path=/api.xro/2.0/Invoices``.

Every fault counts the requests that match its filters, in arrival order, so `nth`/`every` and the
seeded `rate` draws are reproducible for a given request sequence. When several faults fire on one
call, the first in the spec wins. The OAuth endpoints (token, revocation, consent) are never faulted
unless the fault's path filter names them (e.g. ``5xx@path=/connect/token``), so a fault meant for
the data API does not lock a client out for good.

A call answered by a fault (429, 5xx, drop:before) never reaches the emulator, so it is not in the
emulator's `received` list; the middleware's `injected` counter and `events` log say what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

KINDS = ("429", "5xx", "slow", "drop", "expired", "malformed")
VENDORS = ("xero", "zoho", "quickbooks", "salesforce", "both")
XERO_429_PROBLEMS = ("minute", "day", "appminute", "concurrent")
FIVE_XX_CODES = (500, 501, 502, 503, 504)
DEFAULT_SLOW_SECONDS = 30.0

# OAuth endpoints of both vendors (token, revocation, consent): a fault only hits them when its
# path filter is itself inside one of these areas.
AUTH_PREFIXES = ("/connect/", "/identity/", "/oauth/", "/oauth2/", "/.well-known/", "/services/oauth2/")

FAULTS_HELP = """\
Fault spec: FAULT[;FAULT...], FAULT = KIND[:ARG][@OPT,OPT...]
  kinds: 429[:minute|day|appminute|concurrent]  the vendor's own rate-limit answer
         5xx[:500..504]                         a server error with the vendor's body (default: 500/502/503)
         slow[:SECONDS]                         hold the response back (default 30 s)
         drop[:before|after]                    close the connection with no response
         expired                                expire the request's access token, then let the 401 happen
         malformed                              a 200 whose JSON body is cut short
  options: rate=F | nth=N | every=N (one trigger; none = every call), burst=K,
           path=/prefix, method=GET|POST, vendor=xero|zoho|quickbooks|salesforce|both, seed=N
  e.g. '429@nth=3,burst=2;5xx:503@rate=0.1;slow:5@nth=7;drop@every=10;expired@nth=2;malformed@rate=0.05'
  OAuth endpoints are skipped unless path= names them."""


@dataclass(frozen=True)
class Fault:
    """One fault rule: what to do (kind, arg), when (trigger) and to which requests (filters)."""

    kind: str
    arg: str = ""
    rate: float | None = None
    nth: int | None = None
    every: int | None = None
    burst: int = 1
    path: str = ""
    methods: tuple[str, ...] = ()
    vendor: str = "both"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        if sum(t is not None for t in (self.rate, self.nth, self.every)) > 1:
            raise ValueError("use at most one of rate=, nth=, every=")
        if self.rate is not None and not (0 < self.rate <= 1 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")
        for name in ("nth", "every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")
        if self.path and not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', got {self.path!r}")
        if self.vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {', '.join(VENDORS)}, got {self.vendor!r}")
        for m in self.methods:
            if not m.isalpha() or m != m.upper():
                raise ValueError(f"method must be an upper-case HTTP method, got {m!r}")
        self._check_arg()

    def _check_arg(self) -> None:
        arg = self.arg
        if not arg:
            return
        if self.kind == "429":
            if arg not in XERO_429_PROBLEMS:
                raise ValueError(f"429 problem must be one of {', '.join(XERO_429_PROBLEMS)}, got {arg!r}")
        elif self.kind == "5xx":
            if not arg.isdigit() or int(arg) not in FIVE_XX_CODES:
                raise ValueError(f"5xx code must be one of {', '.join(map(str, FIVE_XX_CODES))}, got {arg!r}")
        elif self.kind == "slow":
            try:
                seconds = float(arg)
            except ValueError:
                raise ValueError(f"slow takes seconds, got {arg!r}") from None
            if not (seconds >= 0 and math.isfinite(seconds)):
                raise ValueError(f"slow seconds must be >= 0, got {arg!r}")
        elif self.kind == "drop":
            if arg not in ("before", "after"):
                raise ValueError(f"drop takes before|after, got {arg!r}")
        else:
            raise ValueError(f"{self.kind} takes no argument, got {arg!r}")

    @property
    def seconds(self) -> float:
        """How long a `slow` fault holds a response back."""
        return float(self.arg) if self.arg else DEFAULT_SLOW_SECONDS

    def applies_to(self, vendor: str, method: str, path: str) -> bool:
        """Whether a request is one this fault counts (its trigger decides whether it fires)."""
        if self.vendor not in ("both", vendor):
            return False
        if self.methods and method.upper() not in self.methods:
            return False
        if self.path and not path.startswith(self.path):
            return False
        return not (is_auth_path(path) and not is_auth_path(self.path))

    def __str__(self) -> str:
        head = self.kind + (f":{self.arg}" if self.arg else "")
        opts = []
        if self.rate is not None:
            opts.append(f"rate={self.rate:g}")
        if self.nth is not None:
            opts.append(f"nth={self.nth}")
        if self.every is not None:
            opts.append(f"every={self.every}")
        if self.burst != 1:
            opts.append(f"burst={self.burst}")
        if self.path:
            opts.append(f"path={self.path}")
        if self.methods:
            opts.append("method=" + "|".join(self.methods))
        if self.vendor != "both":
            opts.append(f"vendor={self.vendor}")
        if self.seed is not None:
            opts.append(f"seed={self.seed}")
        return head + ("@" + ",".join(opts) if opts else "")


def is_auth_path(path: str) -> bool:
    return any(path.startswith(p) for p in AUTH_PREFIXES)


def format_faults(faults: Iterable[Fault]) -> str:
    """The spec string that `parse_faults` turns back into the same faults."""
    return ";".join(str(f) for f in faults)


def parse_faults(spec: str) -> list[Fault]:
    """Parse a fault spec (see the module docstring); a ValueError names the offending token."""
    faults = []
    for raw in spec.replace("\n", ";").split(";"):
        token = raw.strip()
        if not token:
            continue
        try:
            faults.append(_parse_one(token))
        except ValueError as exc:
            raise ValueError(f"bad fault {token!r}: {exc}") from None
    return faults


def _parse_one(token: str) -> Fault:
    head, _, options = token.partition("@")
    kind, _, arg = head.strip().partition(":")
    kwargs: dict[str, Any] = {"kind": kind.strip().lower(), "arg": arg.strip().lower()}
    if "@" in token and not options.strip():
        raise ValueError("'@' must be followed by options")
    for opt in options.split(",") if options.strip() else ():
        key, eq, value = opt.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or not value:
            raise ValueError(f"option {opt.strip()!r} must be key=value")
        if key in kwargs and key not in ("kind", "arg"):
            raise ValueError(f"option {key!r} given twice")
        try:
            if key == "rate":
                kwargs["rate"] = float(value)
            elif key in ("nth", "every", "burst", "seed"):
                kwargs[key] = int(value)
            elif key == "path":
                kwargs["path"] = value
            elif key == "method":
                kwargs["methods"] = tuple(m.strip().upper() for m in value.split("|"))
            elif key == "vendor":
                kwargs["vendor"] = value.lower()
            else:
                raise KeyError(key)
        except KeyError:
            raise ValueError(
                f"unknown option {key!r} (expected rate, nth, every, burst, path, method, vendor, seed)"
            ) from None
        except ValueError:
            raise ValueError(f"option {key}= needs a number, got {value!r}") from None
    return Fault(**kwargs)


def coerce_faults(faults: str | Iterable[Fault] | None) -> list[Fault]:
    """Accept a spec string, a list of `Fault`s or None."""
    if faults is None:
        return []
    if isinstance(faults, str):
        return parse_faults(faults)
    out = list(faults)
    for f in out:
        if not isinstance(f, Fault):
            raise TypeError(f"expected Fault objects, got {type(f).__name__}")
    return out


# --------------------------------------------------------------------------------------------
# Vendor-shaped server errors


_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
)
_REASONS = {
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
}


def server_error(vendor: str, code: int) -> tuple[bytes, str]:
    """(body, content type) of a `code` answer as the vendor's edge or API sends it.

    Sources: /work/shared/notes/xero-api.md §9 (500 problem JSON, as reported in XeroAPI/xero-node#466;
    plain text when the API is offline) and zoho-api.md §14 (INTERNAL_ERROR). 502/504 come from a
    load balancer, not the API, hence HTML.
    """
    if vendor == "xero":
        if code == 500:
            body = {
                "Title": "An error occurred",
                "Detail": "An error occurred in Xero. Check the API Status page "
                "http://status.developer.xero.com for current service status.",
                "Status": 500,
                "Instance": str(uuid.uuid4()),
            }
            return json.dumps(body).encode(), "application/json; charset=utf-8"
        if code == 501:
            body = {
                "ErrorNumber": 20,
                "Type": "NotImplementedException",
                "Message": "The method is not implemented",
            }
            return json.dumps(body).encode(), "application/json; charset=utf-8"
        if code == 503:
            return b"The Xero API is temporarily unavailable", "text/plain; charset=utf-8"
    elif vendor == "quickbooks":  # QBO's SystemFault (notes A.5: 503 also appears under load)
        if code in (500, 501, 503):
            error = {"Message": "An application error has occurred while processing your request",
                     "Detail": "System Failure Error: An unknown error occurred.", "code": "10000"}  # fmt: skip
            body = {"Fault": {"Error": [error], "type": "SystemFault"}}
            return json.dumps(body).encode(), "application/json;charset=UTF-8"
    elif vendor == "salesforce":  # the REST API's own error list; 503 is its "server unavailable"
        if code in (500, 501, 503):
            err = {500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you "
                         "contact support: 1234567890-12345 (-1234567890)"),
                   501: ("NOT_IMPLEMENTED", "The requested operation is not implemented"),
                   503: ("SERVER_UNAVAILABLE", "Server is temporarily unavailable")}[code]  # fmt: skip
            return json.dumps(
                [{"message": err[1], "errorCode": err[0]}]
            ).encode(), "application/json;charset=UTF-8"
    else:
        if code in (500, 501):
            body = {
                "code": "INTERNAL_ERROR",
                "details": {},
                "message": "Internal Server Error",
                "status": "error",
            }
            return json.dumps(body).encode(), "application/json;charset=UTF-8"
    page = _GATEWAY_PAGE.format(code=code, reason=_REASONS[code])
    return page.encode(), "text/html"


# --------------------------------------------------------------------------------------------
# The middleware


class _Dropped(Exception):
    """Raised inside the middleware when no transport could be closed (non-uvicorn servers)."""


@dataclass
class InjectedFault:
    kind: str
    detail: str
    method: str
    path: str
    call: int  # the matching-call number of the fault that fired


class _FaultState:
    def __init__(self, fault: Fault, seed: str) -> None:
        self.fault = fault
        self.calls = 0
        self.burst_left = 0
        self.rng = random.Random(f"{fault.seed}" if fault.seed is not None else seed)

    def step(self) -> bool:
        """Count one matching call; True when the fault fires on it."""
        f = self.fault
        self.calls += 1
        draw = self.rng.random() if f.rate is not None else 1.0  # drawn every call: reproducible
        if self.burst_left > 0:
            self.burst_left -= 1
            return True
        if f.nth is not None:
            fired = self.calls == f.nth
        elif f.every is not None:
            fired = self.calls % f.every == 0
        elif f.rate is not None:
            fired = draw < f.rate
        else:
            fired = True
        if fired:
            self.burst_left = f.burst - 1
        return fired


class FaultMiddleware:
    """Pure ASGI middleware that applies faults in front of one emulator.

    `emulator` supplies the vendor's own answers (`rate_limit_response`) and token expiry
    (`expire_access_token`); `vendor` ("xero"/"zoho") is taken from the emulator's class name when
    not given. `injected` counts what was injected, by kind; `events` keeps the latest 1,000.
    """

    def __init__(
        self,
        app: Any,
        faults: str | Iterable[Fault] | None,
        emulator: Any = None,
        *,
        vendor: str | None = None,
        seed: int = 0,
    ) -> None:
        self.app = app
        self.emulator = emulator
        self.vendor = vendor or _vendor_of(emulator)
        if self.vendor not in ("xero", "zoho", "quickbooks", "salesforce"):
            raise ValueError(f"vendor must be xero, zoho, quickbooks or salesforce, got {self.vendor!r}")
        self.faults = coerce_faults(faults)
        self._states = [
            _FaultState(f, f"{seed}:{self.vendor}:{i}:{f}")
            for i, f in enumerate(self.faults)
            if f.vendor in ("both", self.vendor)
        ]
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.injected: Counter[str] = Counter()
        self.events: deque[InjectedFault] = deque(maxlen=1000)

    def close(self) -> None:
        """Cut short any response being held back by a `slow` fault (server shutdown)."""
        self._closing.set()

    def _decide(self, method: str, path: str) -> tuple[Fault, int] | None:
        with self._lock:
            chosen = None
            for state in self._states:
                if state.fault.applies_to(self.vendor, method, path) and state.step() and chosen is None:
                    chosen = (state.fault, state.calls)
            return chosen

    def _record(self, fault: Fault, detail: str, method: str, path: str, call: int) -> None:
        with self._lock:
            self.injected[fault.kind] += 1
            self.events.append(InjectedFault(fault.kind, detail, method, path, call))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._states:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        decision = self._decide(method, path)
        if decision is None:
            await self.app(scope, receive, send)
            return
        fault, call = decision
        handler = getattr(self, "_" + {"429": "too_many", "5xx": "server_error"}.get(fault.kind, fault.kind))
        await handler(fault, call, scope, receive, send)

    # -- one handler per kind ------------------------------------------------------------------

    async def _too_many(self, fault: Fault, call: int, scope: dict, receive: Any, send: Any) -> None:
        emulator = self._need("rate_limit_response")
        if self.vendor == "xero":
            problem = fault.arg or "minute"
            response = emulator.rate_limit_response(problem)
        else:
            problem = ""
            response = emulator.rate_limit_response()
        self._record(fault, problem, scope["method"], scope["path"], call)
        await response(scope, receive, send)

    async def _server_error(self, fault: Fault, call: int, scope: dict, receive: Any, send: Any) -> None:
        if fault.arg:
            code = int(fault.arg)
        else:
            code = random.Random(f"{self.vendor}:{fault}:{call}").choice((500, 502, 503))
        body, content_type = server_error(self.vendor, code)
        self._record(fault, str(code), scope["method"], scope["path"], call)
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _slow(self, fault: Fault, call: int, scope: dict, receive: Any, send: Any) -> None:
        self._record(fault, f"{fault.seconds:g}s", scope["method"], scope["path"], call)
        delayed = False

        async def late_send(message: dict) -> None:
            nonlocal delayed
            if not delayed:
                delayed = True
                await self._sleep(fault.seconds)
            await send(message)

        await self.app(scope, receive, late_send)

    async def _sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._closing.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    async def _drop(self, fault: Fault, call: int, scope: dict, receive: Any, send: Any) -> None:
        mode = fault.arg or "before"
        self._record(fault, mode, scope["method"], scope["path"], call)
        if mode == "after":

            async def swallow(message: dict) -> None:
                return None

            await self.app(scope, receive, swallow)
        await _hang_up(send)

    async def _expired(self, fault: Fault, call: int, scope: dict, receive: Any, send: Any) -> None:
        token = _bearer(scope)
        if token:
            self._need("expire_access_token").expire_access_token(token)
            self._record(fault, "", scope["method"], scope["path"], call)
        await self.app(scope, receive, send)

    async def _malformed(self, fault: Fault, call: int, scope: dict, receive: Any, send: Any) -> None:
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = truncate_json(b"".join(chunks))
        headers = [
            (k, v)
            for k, v in (start or {}).get("headers", [])
            if k.lower() not in (b"content-length", b"content-type", b"content-encoding")
        ]
        headers += [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        self._record(fault, str((start or {}).get("status", "")), scope["method"], scope["path"], call)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _need(self, hook: str) -> Any:
        if self.emulator is None or not hasattr(self.emulator, hook):
            raise RuntimeError(f"this fault needs an emulator with {hook}()")
        return self.emulator


def truncate_json(body: bytes) -> bytes:
    """Cut a JSON body so that it no longer parses (never returns valid JSON)."""
    cut = body[: len(body) // 2] if len(body) > 2 else b""
    with contextlib.suppress(ValueError):
        json.loads(cut)
        cut = b'{"' + cut  # e.g. "123" cut to "1" still parses
    return cut or b'{"'


def _bearer(scope: dict) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == b"authorization":
            _, _, token = value.decode("latin-1").partition(" ")
            return token.strip()
    return ""


def _vendor_of(emulator: Any) -> str:
    name = type(emulator).__name__.lower()
    for vendor in ("xero", "zoho", "quickbooks", "salesforce"):
        if name.startswith(vendor):
            return vendor
    return ""


async def _hang_up(send: Any) -> None:
    """Close the client's connection without a byte of response.

    ASGI has no "abort": raising before `http.response.start` makes uvicorn answer 500. uvicorn's
    `send` is a bound method of its request cycle, which holds the transport; closing it (FIN, no
    response) and letting the loop run `connection_lost` marks the cycle disconnected, so uvicorn
    then sends nothing and logs nothing. The client sees "connection closed without response".
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "close"):
        raise _Dropped("connection dropped by fault injection")
    transport.close()
    cycle = send.__self__
    for _ in range(100):  # connection_lost runs on a later loop iteration
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0)
