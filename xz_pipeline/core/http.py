"""The one place that speaks HTTP: a pooled session with timeouts, retries, rate budgets and metering.

Policy, in the order a call meets it:
1. the tenant's concurrency cap (a semaphore per tenant key, shared by every client in the process);
2. the tenant's rate budget: the vendor's remaining-count headers from earlier answers, minus what we
   sent since, say whether the call fits; if the minute budget is spent the call waits until our
   oldest call in the window ages out (so at steady state the vendor never has to answer 429), and
   if a day budget is spent it fails with `RateLimitExhausted` naming the limit;
3. the call itself, with (connect, read) timeouts;
4. retries with exponential backoff and jitter on 5xx, connection errors, timeouts and unreadable
   bodies — for reads always, for writes only when they carry an idempotency key (or the caller
   declares them safe to repeat); 429 waits for Retry-After (or backs off) and is counted apart;
5. one refresh-and-retry on 401 when an `Auth` is given.
The retry loop is our own rather than urllib3's `Retry` because it must wait on the rate budget,
meter every attempt, re-read JSON bodies and sleep on an injectable clock; the backoff formula is
urllib3's (factor * 2**n, capped, with jitter).

Nothing here logs a header, a body or a query string: log lines and errors name the method and path.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from xz_pipeline.core.errors import ApiError, RateLimitExhausted, TransportError
from xz_pipeline.core.redact import get_logger, redact

log = get_logger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Timer(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class RealTimer:
    """Real time; tests inject a timer whose sleep advances a manual clock instead."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class Auth(Protocol):
    def headers(self) -> dict[str, str]: ...
    def refresh_after_unauthorized(self, sent_headers: dict[str, str]) -> bool: ...


# -- metering ---------------------------------------------------------------------------------------


@dataclass
class _Counts:
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0  # wall time spent inside HTTP calls (sending, waiting, reading)

    def as_dict(self) -> dict[str, int | float]:
        return {
            "calls": self.calls,
            "retries": self.retries,
            "throttled": self.throttled,
            "errors": self.errors,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class DayBudget:
    """What a day-long limit (Xero's day, Zoho's credits) still allows, as our estimate says.

    `peak` is the largest remaining count the vendor has reported: a lower bound of the day's limit.
    """

    vendor: str
    limit: str
    remaining: int
    peak: int


@dataclass(frozen=True)
class Paging:
    """The paging facts of the last list answer: Xero's `pagination` (page, pageCount, itemCount) or
    Zoho's `info` (page, more_records); None where the answer did not say."""

    page: int | None
    page_count: int | None
    item_count: int | None
    more: bool | None


class CallMeter:
    """Counts every attempt per endpoint: calls, retries, 429s, failed attempts and bytes received.

    The client also shows the meter the rate budgets it spends from and the paging facts of list
    answers, so whoever holds the meter (an extract asset) can plan a long read against the day's budget
    without knowing the vendor's client.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = _Counts()
        self._by_endpoint: dict[str, _Counts] = {}
        self.waited_seconds = 0.0
        self._budgets: dict[str, tuple[RateBudget, Timer]] = {}
        self.budget_calls = 0  # calls sent against a rate budget (token requests spend none)
        self.paging: Paging | None = None

    def watch(self, budget: RateBudget, timer: Timer, *, spent: bool) -> None:
        """A call went to `budget` (a tenant's or org's), whose windows tick on `timer`; `spent` when the
        vendor counted it (a 429 or a 401 for an expired token spends nothing)."""
        with self._lock:
            self._budgets.setdefault(budget.key, (budget, timer))
            self.budget_calls += int(spent)

    def day_budget(self) -> DayBudget | None:
        """The tightest day-long budget among those the metered calls spent from; None while no answer
        has reported one (before the first call, or Zoho before half its credits are spent)."""
        with self._lock:
            budgets = list(self._budgets.values())
        known = [d for d in (b.day_budget(t) for b, t in budgets) if d is not None]
        return min(known, key=lambda d: d.remaining, default=None)

    def saw_paging(self, data: Any) -> None:
        """Keep the paging facts of a list answer (ignored for answers without any)."""
        if not isinstance(data, dict):
            return
        xero, zoho = data.get("pagination"), data.get("info")
        if isinstance(xero, dict) and "pageCount" in xero:
            paging = Paging(
                _int(xero.get("page")), _int(xero.get("pageCount")), _int(xero.get("itemCount")), None
            )
        elif isinstance(zoho, dict) and "more_records" in zoho:
            paging = Paging(_int(zoho.get("page")), None, None, bool(zoho.get("more_records")))
        else:
            return
        with self._lock:
            self.paging = paging

    def record(
        self,
        endpoint: str,
        *,
        nbytes: int = 0,
        retry: bool = False,
        throttled: bool = False,
        error: bool = False,
        seconds: float = 0.0,
    ) -> None:
        with self._lock:
            for c in (self._total, self._by_endpoint.setdefault(endpoint, _Counts())):
                c.seconds += seconds
                c.calls += 1
                c.retries += int(retry)
                c.throttled += int(throttled)
                c.errors += int(error)
                c.bytes += nbytes

    def waited(self, seconds: float) -> None:
        with self._lock:
            self.waited_seconds += seconds

    def calls(self, endpoint: str | None = None) -> int:
        with self._lock:
            c = self._total if endpoint is None else self._by_endpoint.get(endpoint, _Counts())
            return c.calls

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-able totals plus a per-endpoint breakdown, for Dagster metadata."""
        with self._lock:
            out: dict[str, Any] = self._total.as_dict()
            out["waited_seconds"] = round(self.waited_seconds, 3)
            out["endpoints"] = {k: v.as_dict() for k, v in sorted(self._by_endpoint.items())}
            return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- rate budgets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitSpec:
    """A vendor limit announced by a remaining-count header.

    `window` is in seconds; `wait` says whether to wait for it (a minute) or fail at once (a day);
    `shared` limits (Xero's app-wide minute) are counted across every tenant of the process.
    """

    name: str
    header: str
    window: float
    wait: bool = True
    shared: bool = False


XERO_LIMITS = (
    LimitSpec("minute", "X-MinLimit-Remaining", 60.0),
    LimitSpec("appminute", "X-AppMinLimit-Remaining", 60.0, shared=True),
    LimitSpec("day", "X-DayLimit-Remaining", 86400.0, wait=False),
)
# Zoho reports remaining credits (rolling 24 h, per org) once half are spent; a call costs at least one
# credit, so counting one per call never over-estimates what we have spent.
ZOHO_LIMITS = (LimitSpec("credits", "X-API-CREDITS-REMAINING", 86400.0, wait=False),)


# The vendor counts a call when it arrives, a little after we stamped it: treat our calls as leaving its
# rolling window this much later than our own clock says (measured: without it, a budget run down to zero
# drew an occasional 429 at the window's edge).
AGE_MARGIN = 1.0


class _Window:
    """Our estimate of one remaining count: the last header value, less the calls sent since,
    plus those of our own calls that have aged out of the vendor's rolling window since."""

    def __init__(self, spec: LimitSpec) -> None:
        self.spec = spec
        self.sent: deque[tuple[float, int]] = deque()  # (monotonic time, sequence number) of our calls
        self.seq = 0
        self.base: int | None = None
        self.base_at = 0.0
        self.base_seq = 0
        self.peak = 0  # the largest remaining count the vendor reported

    def add(self, now: float) -> None:
        self.seq += 1
        self.sent.append((now, self.seq))

    def remaining(self, now: float) -> int | None:
        if self.base is None:
            return None
        cutoff = now - self.spec.window - AGE_MARGIN
        since = sum(1 for _, n in self.sent if n > self.base_seq)
        aged = sum(
            1 for t, n in self.sent if n <= self.base_seq and self.base_at - self.spec.window < t <= cutoff
        )
        return self.base - since + aged

    def observe(self, value: int, now: float, in_flight_others: int) -> None:
        # Calls still in flight may or may not be counted in `value`: assume not, and stay on the safe side.
        self.base = max(0, value - in_flight_others)
        self.peak = max(self.peak, value)
        self.base_at = now
        self.base_seq = self.seq
        while self.sent and self.sent[0][0] <= now - self.spec.window:
            self.sent.popleft()

    def next_free(self, now: float) -> float | None:
        """When (monotonic) our oldest call in the window leaves it; None if none of ours is in it."""
        for t, _ in self.sent:
            if t + self.spec.window + AGE_MARGIN > now:
                return t + self.spec.window + AGE_MARGIN
        return None


PROBE_DELAY = 1.0  # someone else spent the budget: look again this much later


class RateBudget:
    """One tenant's (or org's) budget: concurrency cap plus the header-fed limits."""

    def __init__(
        self, key: str, specs: tuple[LimitSpec, ...], concurrency: int, shared: dict[str, _Window]
    ) -> None:
        self.key = key
        self.semaphore = threading.BoundedSemaphore(max(1, concurrency))
        self.concurrency = max(1, concurrency)
        self._lock = threading.Lock()
        self._windows = {
            s.name: (shared.setdefault(s.name, _Window(s)) if s.shared else _Window(s)) for s in specs
        }
        self.in_flight = 0

    def reserve(self, timer: Timer, vendor: str, endpoint: str, max_wait: float) -> float:
        """Block until one call fits; returns the seconds waited. Raises when a non-waiting limit is spent."""
        waited = 0.0
        while True:
            with self._lock:
                now = timer.monotonic()
                delay, limit, probes = 0.0, "", []
                for w in self._windows.values():
                    left = w.remaining(now)
                    if left is None or left > 0:
                        continue
                    if not w.spec.wait:
                        raise RateLimitExhausted(vendor, w.spec.name, endpoint=endpoint)
                    free_at = w.next_free(now)
                    if free_at is None:
                        probes.append(w)
                        free_at = now + PROBE_DELAY
                    if free_at - now > delay:
                        delay, limit = free_at - now, w.spec.name
                if delay <= 0:
                    for w in self._windows.values():
                        w.add(now)
                    self.in_flight += 1
                    return waited
            if waited + delay > max_wait:
                raise RateLimitExhausted(vendor, limit, retry_after=delay, endpoint=endpoint)
            log.info("%s %s: %s budget spent, waiting %.1fs", vendor, self.key, limit, delay)
            timer.sleep(delay + 0.01)
            waited += delay + 0.01
            with self._lock:
                for w in probes:  # the vendor's next answer tells us where we stand
                    w.base = None

    def day_budget(self, timer: Timer) -> DayBudget | None:
        """The tightest of the limits we do not wait for (a day's), estimated now; None until reported."""
        with self._lock:
            now = timer.monotonic()
            found = None
            for w in self._windows.values():
                left = None if w.spec.wait else w.remaining(now)
                if left is not None and (found is None or left < found.remaining):
                    found = DayBudget(self.key.split(":", 1)[0], w.spec.name, max(0, left), w.peak)
            return found

    def settle(self, headers: Mapping[str, str] | None, timer: Timer) -> None:
        """A call came back (or failed): feed the vendor's remaining counts into the estimate."""
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            if not headers:
                return
            now = timer.monotonic()
            for w in self._windows.values():
                raw = headers.get(w.spec.header)
                if raw is None:
                    continue
                try:
                    value = int(float(raw))
                except ValueError:
                    continue
                w.observe(value, now, self.in_flight)

    def forget(self, timer: Timer) -> None:
        """After a 429 we trust the vendor's Retry-After over our estimate."""
        with self._lock:
            for w in self._windows.values():
                w.base = None


class Budgets:
    """Process-wide registry, so every client of one tenant shares one semaphore and one budget."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[str, RateBudget] = {}
        self._shared: dict[str, dict[str, _Window]] = {}

    def get(self, vendor: str, key: str, specs: tuple[LimitSpec, ...], concurrency: int) -> RateBudget:
        with self._lock:
            full = f"{vendor}:{key}"
            budget = self._budgets.get(full)
            if budget is None:
                budget = RateBudget(full, specs, concurrency, self._shared.setdefault(vendor, {}))
                self._budgets[full] = budget
            return budget


BUDGETS = Budgets()


# -- retry policy -----------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """How many attempts, how long between them, and how long we are willing to be throttled."""

    attempts: int = 6  # first try included
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.5  # +- fraction of the backoff
    retry_statuses: frozenset[int] = frozenset({500, 502, 503, 504})
    throttle_waits: int = 20  # 429s tolerated per call
    max_retry_after: float = 300.0  # a longer Retry-After means the budget is gone for now
    budget_max_wait: float = 120.0
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, retry_number: int) -> float:
        base = min(self.backoff_max, self.backoff_factor * (2 ** (retry_number - 1)))
        return max(0.0, base * (1 + self.jitter * self.rng.uniform(-1, 1)))


# -- the client -------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    content: bytes
    data: Any = None  # parsed JSON, when the body is JSON


ErrorParser = Callable[[Reply, str], ApiError]


def _default_error(vendor: str) -> ErrorParser:
    def parse(reply: Reply, endpoint: str) -> ApiError:
        message = ""
        if isinstance(reply.data, dict):
            message = str(
                reply.data.get("message") or reply.data.get("Message") or reply.data.get("error") or ""
            )
        return ApiError(
            vendor,
            reply.status,
            f"HTTP{reply.status}",
            redact(message)[:300] or "request failed",
            endpoint=endpoint,
        )

    return parse


class HttpClient:
    """A pooled `requests.Session` with the policy above; one per vendor client."""

    def __init__(
        self,
        vendor: str,
        *,
        timeout: float | tuple[float, float] = 30.0,
        meter: CallMeter | None = None,
        retry: RetryPolicy | None = None,
        limits: tuple[LimitSpec, ...] = (),
        concurrency: int = 5,
        budgets: Budgets | None = None,
        timer: Timer | None = None,
        error_parser: ErrorParser | None = None,
        user_agent: str = "xz-pipeline",
        pool_size: int = 10,
    ) -> None:
        self.vendor = vendor
        self.timeout = timeout if isinstance(timeout, tuple) else (min(10.0, timeout), timeout)
        self.meter = meter or CallMeter()
        self.retry = retry or RetryPolicy()
        self.limits = limits
        self.concurrency = concurrency
        self.budgets = budgets or BUDGETS
        self.timer = timer or RealTimer()
        self.error_parser = error_parser or _default_error(vendor)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = user_agent

    def close(self) -> None:
        self.session.close()

    def budget(self, key: str) -> RateBudget:
        return self.budgets.get(self.vendor, key, self.limits, self.concurrency)

    def request(
        self,
        method: str,
        url: str,
        *,
        endpoint: str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        retry_writes: bool = False,
        budget_key: str | None = None,
        auth: Auth | None = None,
        expect_json: bool = True,
        raise_for_status: bool = True,
    ) -> Reply:
        method = method.upper()
        path = urlsplit(url).path
        endpoint = endpoint or f"{method} {path}"
        where = f"{method} {path}"
        repeatable = method in READ_METHODS or bool(idempotency_key) or retry_writes
        budget = self.budget(budget_key) if budget_key else None
        policy = self.retry
        attempt = throttles = 0
        refreshed = False
        retrying = False
        while True:
            send_headers = dict(headers or {})
            if idempotency_key:
                send_headers["Idempotency-Key"] = idempotency_key
            if auth is not None:
                send_headers.update(auth.headers())
            if budget is not None:
                budget.semaphore.acquire()
            reply: Reply | None = None
            failure: str | None = None
            safe = False
            try:
                if budget is not None:
                    waited = budget.reserve(self.timer, self.vendor, where, policy.budget_max_wait)
                    self.meter.watch(budget, self.timer, spent=False)
                    if waited:
                        self.meter.waited(waited)
                attempt += 1
                started = time.monotonic()
                try:
                    resp = self.session.request(
                        method,
                        url,
                        params=params,
                        headers=send_headers,
                        json=json_body,
                        data=data,
                        timeout=self.timeout,
                    )
                    content = resp.content
                    reply = Reply(resp.status_code, resp.headers, content)
                except requests.ConnectTimeout:
                    failure = "connect timeout"
                    safe = True
                except requests.Timeout:
                    failure = "read timeout"
                    safe = False
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                    failure = f"connection error ({type(exc).__name__})"
                    safe = False
                finally:
                    elapsed = time.monotonic() - started
                    if budget is not None:
                        budget.settle(reply.headers if reply is not None else None, self.timer)
            finally:
                if budget is not None:
                    budget.semaphore.release()

            if reply is None:
                self.meter.record(endpoint, retry=retrying, error=True, seconds=elapsed)
                if (repeatable or safe) and attempt < policy.attempts:
                    self._pause(policy.backoff(attempt), where, failure)
                    retrying = True
                    continue
                raise TransportError(self.vendor, f"{failure} after {attempt} attempt(s)", endpoint=where)

            status = reply.status
            throttled = status == 429
            if budget is not None:
                self.meter.watch(budget, self.timer, spent=status not in (401, 429))
            self.meter.record(
                endpoint,
                nbytes=len(reply.content),
                retry=retrying,
                throttled=throttled,
                error=status >= 400,
                seconds=elapsed,
            )
            if throttled:
                throttles += 1
                problem = (reply.headers.get("X-Rate-Limit-Problem") or "").lower()
                retry_after = _retry_after(reply.headers)
                if problem == "day" or (retry_after is not None and retry_after > policy.max_retry_after):
                    raise RateLimitExhausted(
                        self.vendor, problem or "rate", retry_after=retry_after, endpoint=where
                    )
                if throttles > policy.throttle_waits:
                    raise RateLimitExhausted(
                        self.vendor, problem or "rate", retry_after=retry_after, endpoint=where
                    )
                if budget is not None:
                    budget.forget(self.timer)
                # A refused call spent nothing, so it is always safe to send again.
                self._pause(
                    retry_after if retry_after is not None else policy.backoff(throttles),
                    where,
                    f"429 {problem}".strip(),
                )
                retrying = True
                continue
            if status == 401 and auth is not None and not refreshed:
                refreshed = auth.refresh_after_unauthorized(send_headers)
                if refreshed:
                    log.info("%s %s: 401, token refreshed, retrying once", self.vendor, where)
                    retrying = True
                    continue
            if status in policy.retry_statuses and repeatable and attempt < policy.attempts:
                retry_after = _retry_after(reply.headers)
                delay = policy.backoff(attempt)
                if retry_after is not None and retry_after <= policy.max_retry_after:
                    delay = max(delay, retry_after)
                self._pause(delay, where, f"HTTP {status}")
                retrying = True
                continue
            if expect_json and reply.content and 200 <= status < 300 or _is_json(reply):
                try:
                    reply.data = json.loads(reply.content)
                except ValueError:
                    if 200 <= status < 300:
                        if repeatable and attempt < policy.attempts:
                            self._pause(policy.backoff(attempt), where, "unreadable JSON body")
                            retrying = True
                            continue
                        raise TransportError(
                            self.vendor, f"unreadable JSON body after {attempt} attempt(s)", endpoint=where
                        ) from None
            if status >= 400 and raise_for_status:
                raise self.error_parser(reply, where)
            if status < 300:
                self.meter.saw_paging(reply.data)
            log.debug(
                "%s %s -> %s (%d attempt(s), %d bytes)",
                self.vendor,
                where,
                status,
                attempt,
                len(reply.content),
            )
            return reply

    def _pause(self, seconds: float, where: str, why: str | None) -> None:
        log.info("%s %s: %s, retrying in %.2fs", self.vendor, where, why, seconds)
        self.meter.waited(seconds)
        self.timer.sleep(seconds)


def _is_json(reply: Reply) -> bool:
    return "json" in (reply.headers.get("Content-Type") or "").lower() and bool(reply.content)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None
