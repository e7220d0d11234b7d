"""HTTP transport for the Strava API: one pooled session, bounded retries that respect the budget, error classes.

Every GET that may reach Strava costs budget (by default 100 reads / 15 min and 1,000 / day), so retries are
split by whether an attempt can have been counted.

Retry accounting — who retries what, and why:

* **Connection establishment** (DNS, refused, connect timeout) is retried by urllib3's ``Retry`` mounted on the
  ``HTTPAdapter`` (``connect=max_retries``, exponential backoff with ``backoff_jitter``).  Those attempts never
  reach Strava, so they cost no budget and need not pass through the rate limiter.
* **Everything after the request may have reached Strava** (read timeouts, connection resets, truncated
  bodies, 5xx, malformed JSON on a 200) is retried by *our* loop, because every such attempt may count
  against the budget and must go through :meth:`RateLimiter.acquire` / :meth:`RateLimiter.observe`.  urllib3
  is configured with ``read=0, status=0, other=0`` so it never retries these behind the limiter's back.
* **429** is never retried by urllib3 (``status=0`` and ``respect_retry_after_header=False``: urllib3 would
  otherwise retry a 429 carrying ``Retry-After``); the limiter marks the window exhausted and our loop waits for
  the reset, then retries the same request (at most ``max_429_retries`` times).
* **POSTs** (``/oauth/token``, ``/oauth/deauthorize``) go through :meth:`Transport.post_fresh`: only urllib3's
  connect retries, never a resend once the request may have left; :mod:`.oauth` explains why.
* **Oversized bodies** (more than ``max_response_bytes``, ``STRAVA_MAX_RESPONSE_MB``) are never retried: the
  next answer would be as large.  Bodies are streamed and counted, so at most the limit is ever held in memory.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.util.retry import Retry

from .errors import (
    INACTIVE_HINT,
    RECONNECT_HINT,
    StravaAppInactiveError,
    StravaAuthError,
    StravaError,
    StravaHTTPError,
    StravaNotFoundError,
    StravaPayloadError,
    StravaRateLimitError,
    StravaScopeError,
    StravaTransientError,
    is_app_inactive,
)
from .rate_limiter import RateLimiter
from .responses import ApiResponse, check_json, decode_json, redact_url
from .tokens import TokenStore

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "Credentials", "StravaResponseTooLargeError", "Transport"]

_USER_AGENT = "strava_pipeline/0.1 (+requests)"

#: Far above any real Strava body (a long activity's full stream set is a few tens of MiB), far below what
#: eight concurrent stream downloads may cost in memory.
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
#: Read size while streaming a body: the most the limit can be overshot by before the read is abandoned.
_READ_CHUNK = 64 * 1024


def _now_utc() -> datetime:
    return datetime.now(UTC)


class StravaResponseTooLargeError(StravaPayloadError):
    """A response body is larger than the configured limit (``STRAVA_MAX_RESPONSE_MB``).

    Raised without retrying: the same request would return the same body.  ``limit`` is the limit in bytes,
    ``received`` how many body bytes were read before giving up (0 if ``Content-Length`` already said so),
    ``declared`` the ``Content-Length``, when sent.
    """

    def __init__(self, message: str, *, url: str, limit: int, received: int, declared: int | None) -> None:
        super().__init__(message, url=url)
        self.limit = limit
        self.received = received
        self.declared = declared


def _size_text(n: int) -> str:
    """``256 MiB`` for whole mebibytes (how the setting is given), else the exact byte count."""
    mib = 1024 * 1024
    return f"{n // mib} MiB" if n >= mib and n % mib == 0 else f"{n} bytes"


def _content_length(headers: Mapping[str, str]) -> int | None:
    """The declared body length, or None when absent or unparsable (urllib3 then judges the framing)."""
    value = (headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def _fault(body: bytes) -> Mapping[str, Any]:
    """Strava's error body ``{"message": ..., "errors": [{"resource", "field", "code"}]}``, or {}."""
    try:
        data = decode_json(body, "")
    except StravaPayloadError:
        return {}
    return data if isinstance(data, Mapping) else {}


def _fault_text(fault: Mapping[str, Any]) -> str:
    """A short, secret-free description of a Strava fault body for error messages."""
    message = str(fault.get("message") or "").strip()
    details = []
    for err in fault.get("errors") or []:
        if isinstance(err, Mapping):
            details.append("/".join(str(err.get(k) or "") for k in ("resource", "field", "code")))
    text = message or "no message"
    return f"{text} ({', '.join(details)})" if details else text


def _bytes_received(exc: BaseException) -> int | None:
    """How many body bytes arrived before a truncated read failed (urllib3's IncompleteRead), if known."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        partial = getattr(item, "partial", None)
        if isinstance(partial, int):
            return partial
        match = re.search(r"IncompleteRead\((\d+) bytes read", str(item))
        if match:
            return int(match.group(1))
        if isinstance(item, BaseException):
            stack.extend(a for a in item.args if isinstance(a, BaseException))
            stack.extend(x for x in (item.__cause__, item.__context__) if x is not None)
    return None


def _never_sent(exc: BaseException) -> bool:
    """True if the request provably never left this machine: the connection could not be established.

    urllib3 has then already spent its connect retries; requests reports this as a plain ConnectionError
    wrapping MaxRetryError(NewConnectionError/ConnectTimeoutError), so look inside.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    for arg in exc.args:
        if isinstance(arg, MaxRetryError):
            return isinstance(arg.reason, ConnectTimeoutError)  # NewConnectionError is a subclass
        if isinstance(arg, ConnectTimeoutError):
            return True
    return False


def _describe_network_error(exc: BaseException) -> str:
    """A short human name for a network failure (requests wraps most of them in a generic ConnectionError)."""
    text = str(exc)
    if isinstance(exc, requests.Timeout) or "Read timed out" in text:
        return "read timeout"
    if "reset" in text.lower() or "aborted" in text.lower() or "RemoteDisconnected" in text:
        return "connection reset"
    return type(exc).__name__


def _missing_scope(fault: Mapping[str, Any]) -> tuple[str, str] | None:
    """If the fault says a permission is missing, return (scope, raw field), e.g. ("activity:read", ...)."""
    for err in fault.get("errors") or []:
        if isinstance(err, Mapping) and str(err.get("code") or "").lower() == "missing":
            field = str(err.get("field") or "")
            scope = field.removesuffix("_permission") or field
            return scope, field
    return None


class Credentials(Protocol):
    """What the request loop needs from the token life cycle (:class:`~.oauth.OAuthSession` provides it).

    A protocol so the transport does not depend on the OAuth module, which itself posts through the transport.
    """

    def access_token(self) -> str:
        """A usable access token (refreshed first if it is about to expire)."""
        ...

    def refresh(self, *, rejected_access_token: str | None) -> object:
        """Obtain a new access token after Strava rejected ``rejected_access_token``."""
        ...

    @property
    def cached_scope(self) -> str | None:
        """The granted scope of the tokens in use, for error messages; None if unknown."""
        ...


class Transport:
    """The pooled session and the bounded retry loop every API GET goes through.

    Thread-safe (one session, a connection pool of ``pool_size``).  ``sleep`` is injectable for tests; the rate
    limiter has its own.  ``token_store`` only receives usage snapshots (for ``auth --status``).
    """

    def __init__(
        self,
        *,
        base_url: str,
        rate_limiter: RateLimiter,
        token_store: TokenStore,
        timeout: tuple[float, float],
        max_retries: int,
        backoff_factor: float,
        pool_size: int,
        logger: logging.Logger,
        backoff_jitter: float | None,
        backoff_max: float,
        max_429_retries: int,
        max_payload_retries: int,
        sleep: Callable[[float], None],
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_url = f"{self.base_url}/api/v3"
        self.rate_limiter = rate_limiter
        self.token_store = token_store
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.max_429_retries = max(0, int(max_429_retries))
        self.max_payload_retries = max(0, int(max_payload_retries))
        self.max_response_bytes = max(1, int(max_response_bytes))
        self.backoff_factor = max(0.0, backoff_factor)
        self.backoff_jitter = self.backoff_factor if backoff_jitter is None else max(0.0, backoff_jitter)
        self.backoff_max = backoff_max
        self._log = logger
        self._sleep = sleep
        self._usage_saved_at = 0.0
        self.session = self._new_session(pool_size)
        #: Attempt counters, for diagnostics and tests ("refreshes" is counted by the OAuth side).
        self.stats: dict[str, int] = {
            "requests": 0,
            "retries_transient": 0,
            "retries_payload": 0,
            "retries_429": 0,
            "refreshes": 0,
        }

    # -- session -------------------------------------------------------------------------------------------

    def connect_retry(self) -> Retry:
        """urllib3 policy: retry only failures to *establish* a connection (the request was never sent)."""
        return Retry(
            total=None,
            connect=self.max_retries,
            read=0,
            status=0,
            other=0,
            redirect=0,
            allowed_methods=None,
            status_forcelist=(),
            backoff_factor=self.backoff_factor,
            backoff_jitter=self.backoff_jitter,
            backoff_max=self.backoff_max,
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=False,
        )

    def _new_session(self, pool_size: int) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=self.connect_retry())
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"User-Agent": _USER_AGENT, "Accept": "application/json"})
        # The environment's proxy (HTTPS_PROXY, NO_PROXY) and CA bundle (REQUESTS_CA_BUNDLE) for the API,
        # read once: requests otherwise reads them on every request, walking os.environ twice (measured:
        # 0.95 ms of each streams request's CPU, on threads sharing the GIL). No .netrc lookup either: the
        # client always sends its own Bearer token, which a netrc entry for the host would replace.
        settings = session.merge_environment_settings(self.api_url, {}, None, None, None)
        session.proxies.update(settings["proxies"])
        session.verify, session.cert = settings["verify"], settings["cert"]
        session.trust_env = False
        return session

    def close(self) -> None:
        """Save the last usage snapshot and release connections."""
        self.save_usage(force=True)
        self.session.close()

    def post_fresh(self, url: str, *, data: dict[str, str], headers: dict[str, str]) -> requests.Response:
        """POST once on a new connection (connect retries only) and let the limiter observe the answer.

        A stale pooled keep-alive connection could fail *after* sending, which a POST cannot safely retry.
        Network failures propagate as :class:`requests.RequestException`: only the caller knows what a resend
        would cost.
        """
        with requests.Session() as session:
            session.mount("https://", HTTPAdapter(max_retries=self.connect_retry()))
            session.mount("http://", HTTPAdapter(max_retries=self.connect_retry()))
            resp = session.post(url, data=data, headers=headers, timeout=self.timeout)
        self.rate_limiter.observe(resp.headers, resp.status_code)
        return resp

    # -- the request loop ----------------------------------------------------------------------------------

    def _backoff(self, attempt: int, reason: str, url: str) -> None:
        delay = min(self.backoff_max, self.backoff_factor * (2 ** (attempt - 1)))
        delay += random.uniform(0, self.backoff_jitter) if self.backoff_jitter else 0.0
        self._log.warning("%s from %s; retry %d in %.2fs", reason, url, attempt, delay)
        if delay > 0:
            self._sleep(delay)

    def _read_body(self, resp: requests.Response) -> tuple[bytes | None, int]:
        """The whole body and its size, or (None, bytes read) as soon as it proves larger than
        ``max_response_bytes`` (the connection is then closed).

        Streamed in ``_READ_CHUNK`` reads so an oversized body costs at most the limit in memory; a
        ``Content-Length`` above the limit is refused before reading anything.  Truncation and decoding errors
        surface as with ``resp.content`` (same ``iter_content`` path).
        """
        limit = self.max_response_bytes
        declared = _content_length(resp.headers)
        if declared is not None and declared > limit:
            resp.close()
            return None, 0
        chunks: list[bytes] = []
        received = 0
        for chunk in resp.iter_content(_READ_CHUNK):
            received += len(chunk)
            if received > limit:
                resp.close()  # the rest unread: drop the connection rather than drain it back into the pool
                return None, received
            chunks.append(chunk)
        return b"".join(chunks), received

    def _too_large(self, resp: requests.Response, received: int, display_url: str) -> StravaResponseTooLargeError:
        """The error for a body over the limit: names the URL (token-free), the limit and the setting."""
        url = redact_url(resp.url or display_url)
        limit = self.max_response_bytes
        declared = _content_length(resp.headers)
        seen = f"Content-Length {declared} bytes" if received == 0 else f"stopped reading after {received} bytes"
        return StravaResponseTooLargeError(
            f"{url}: response larger than {_size_text(limit)} (STRAVA_MAX_RESPONSE_MB); HTTP {resp.status_code}, "
            f"{seen}. Not retried (it would be as large next time): raise STRAVA_MAX_RESPONSE_MB to accept it",
            url=url,
            limit=limit,
            received=received,
            declared=declared,
        )

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        auth: Credentials,
        not_found_ok: bool = False,
    ) -> ApiResponse | None:
        """One logical GET: as many attempts as the bounded retry rules allow, each counted by the limiter."""
        url = f"{self.api_url}{path}"
        query = urlencode(params, safe=",") if params else None
        display_url = f"{url}?{query}" if query else url
        transient = payload_failures = rate_limited = 0
        auth_retried = False
        while True:
            access = auth.access_token()
            self.rate_limiter.acquire()
            self.stats["requests"] += 1
            started = time.monotonic()
            try:
                resp = self.session.get(
                    url, params=query, headers={"Authorization": f"Bearer {access}"}, timeout=self.timeout, stream=True
                )
                try:
                    body, size = self._read_body(resp)
                except BaseException:
                    resp.close()
                    raise
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
                # The body was cut short (fewer bytes than Content-Length) or undecodable: a payload failure.
                self.rate_limiter.observe({}, 0)
                payload_failures += 1
                received = _bytes_received(exc)
                if payload_failures > self.max_payload_retries:
                    raise StravaPayloadError(
                        f"Strava response from {display_url} was truncated at byte {received} "
                        f"({type(exc).__name__}); still bad after {payload_failures} attempts",
                        url=display_url,
                        offset=received,
                    ) from exc
                self.stats["retries_payload"] += 1
                self._backoff(payload_failures, f"truncated body (byte {received})", display_url)
                continue
            except requests.RequestException as exc:
                self.rate_limiter.observe({}, 0)
                if _never_sent(exc):
                    # urllib3 already retried establishing the connection; Strava never saw these attempts.
                    raise StravaTransientError(
                        f"could not connect to Strava for {display_url} after {self.max_retries + 1} attempts"
                    ) from exc
                # Read timeout, connection reset...: the request may have been counted by Strava.
                transient += 1
                if transient > self.max_retries:
                    raise StravaTransientError(
                        f"{_describe_network_error(exc)} for {display_url}; gave up after {transient} attempts"
                    ) from exc
                self.stats["retries_transient"] += 1
                self._backoff(transient, _describe_network_error(exc), display_url)
                continue
            status = resp.status_code
            returned_url = redact_url(resp.url or display_url)
            self.rate_limiter.observe(resp.headers, status)
            self.save_usage()
            if body is None:
                raise self._too_large(resp, size, display_url)
            self._log.debug(
                "GET %s -> %d (%d bytes, %.0f ms)", returned_url, status, len(body), (time.monotonic() - started) * 1e3
            )

            if status == 200:
                try:
                    check_json(body, returned_url)
                except StravaPayloadError as exc:
                    payload_failures += 1
                    if payload_failures > self.max_payload_retries:
                        raise StravaPayloadError(
                            f"{exc} — still bad after {payload_failures} attempts", url=returned_url, offset=exc.offset
                        ) from None
                    self.stats["retries_payload"] += 1
                    self._backoff(payload_failures, f"bad JSON at byte {exc.offset}", returned_url)
                    continue
                return ApiResponse(
                    url=returned_url,
                    status=status,
                    body=body,
                    headers=CaseInsensitiveDict(resp.headers),
                    fetched_at=_now_utc(),
                )
            if status == 404 and not_found_ok:
                return None
            if status == 429:
                rate_limited += 1
                if rate_limited > self.max_429_retries:
                    snap = self.rate_limiter.snapshot()
                    raise StravaRateLimitError(
                        f"Strava kept answering 429 for {returned_url} after {rate_limited} attempts "
                        f"(usage: {snap}); try again after the daily reset"
                    )
                self.stats["retries_429"] += 1
                continue  # acquire() waits for the window the 429 marked exhausted
            if status in (401, 403):
                fault = _fault(body)
                if status == 403 and is_app_inactive(fault):
                    raise StravaAppInactiveError(f"Strava refused {returned_url} (HTTP 403 Inactive): {INACTIVE_HINT}")
                missing = _missing_scope(fault)
                if missing is not None:
                    scope, field = missing
                    granted = auth.cached_scope
                    raise StravaScopeError(
                        f"Strava says the authorisation lacks the `{scope}` permission ({field} missing) for "
                        f"{returned_url} (granted: {granted or 'unknown'}); run `strava-pipeline auth` to "
                        "reconnect and approve that permission",
                        scope=scope,
                        granted=granted,
                    )
                if status == 401 and not auth_retried:
                    # Revoked or expired early: one refresh (or adopt another process's), then one retry.
                    auth_retried = True
                    self._log.info("access token rejected (HTTP 401: %s); refreshing once", _fault_text(fault))
                    auth.refresh(rejected_access_token=access)
                    continue
                if status == 401:
                    raise StravaAuthError(
                        f"Strava rejected the access token for {returned_url} even after a refresh "
                        f"(HTTP 401: {_fault_text(fault)}); {RECONNECT_HINT}"
                    )
                raise StravaHTTPError(
                    f"Strava refused {returned_url} (HTTP 403: {_fault_text(fault)})", status=403, url=returned_url
                )
            if status >= 500:
                transient += 1
                if transient > self.max_retries:
                    raise StravaTransientError(
                        f"Strava answered HTTP {status} for {returned_url}; gave up after {transient} attempts"
                    )
                self.stats["retries_transient"] += 1
                self._backoff(transient, f"HTTP {status}", returned_url)
                continue
            fault = _fault(body)
            if status == 404:
                raise StravaNotFoundError(
                    f"Strava has no {returned_url} (HTTP 404: {_fault_text(fault)})", status=404, url=returned_url
                )
            raise StravaHTTPError(
                f"Strava answered HTTP {status} for {returned_url}: {_fault_text(fault)}",
                status=status,
                url=returned_url,
            )

    def save_usage(self, *, force: bool = False, interval: float = 30.0) -> None:
        """Record the usage snapshot in the token store (for ``auth --status``), at most every ``interval`` s."""
        now = time.monotonic()
        if not force and now - self._usage_saved_at < interval:
            return
        self._usage_saved_at = now
        try:
            self.token_store.update_usage(self.rate_limiter.snapshot())
        except (OSError, StravaError) as exc:  # diagnostics only: never fail a run for this
            self._log.debug("could not save the usage snapshot: %s", exc)
