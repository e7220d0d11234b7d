"""HTTP client for the parts of the Strava API v3 the pipeline mirrors.

The API budget (by default 100 reads / 15 min and 1,000 / day) is the scarcest resource of the product, so
this client is built around three rules: never waste a request, never lose work to a 429, never lose a
rotated refresh token.

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
* **POST /oauth/token** is only ever retried by urllib3's *connect* retries, i.e. when the request provably never
  left this machine.  Once it may have reached Strava we never resend it: if Strava processed it, it rotated the
  refresh token and the old one is dead, so a resend cannot succeed and only turns a transient network error
  into a misleading "invalid token" error; worse, presenting an already-rotated refresh token is exactly what
  OAuth refresh-token reuse detection treats as theft, revoking the whole grant including the token a
  concurrent or earlier attempt obtained (Strava does not document whether it does this; we do not find
  out the hard way).  Refreshes are also serialised across processes by the token-store lock, so no two
  refreshes with the same token are ever in flight.  Token requests do not pass through the rate limiter
  (they are not /api/v3 calls, and waiting while holding the store lock would block every process).  A refresh
  that failed in flight raises :class:`StravaTransientError` and leaves the store untouched: the next run
  retries with the stored token, which still works unless Strava had rotated it (then reconnecting is the
  only remedy, whatever we did).  Token requests use a fresh connection so a stale keep-alive connection can't
  fail them after sending.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.util.retry import Retry

from .errors import (
    RECONNECT_HINT,
    StravaAuthError,
    StravaError,
    StravaHTTPError,
    StravaNotFoundError,
    StravaPayloadError,
    StravaRateLimitError,
    StravaScopeError,
    StravaTransientError,
)
from .rate_limiter import RateLimiter
from .responses import ApiResponse, check_json, decode_json, redact_url
from .tokens import Tokens, TokenStore

__all__ = ["ALL_STREAM_KEYS", "DEFAULT_SCOPE", "StravaClient"]

#: Every documented stream type (swagger ``keys`` enum).  Undocumented extra types in replies are kept as-is.
ALL_STREAM_KEYS: tuple[str, ...] = (
    "time",
    "distance",
    "latlng",
    "altitude",
    "velocity_smooth",
    "heartrate",
    "cadence",
    "watts",
    "temp",
    "moving",
    "grade_smooth",
)

#: What the pipeline asks for: profile (zones, gear) and every activity including "Only Me" ones.
DEFAULT_SCOPE = "read,activity:read_all,profile:read_all"

_ACTIVITY_SCOPES = ("activity:read", "activity:read_all")
_USER_AGENT = "strava_pipeline/0.1 (+requests)"


def _now_utc() -> datetime:
    return datetime.now(UTC)


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


class StravaClient:
    """Strava API v3 client: authenticated GETs with rate limiting, token rotation and bounded retries.

    Thread-safe for concurrent calls (one session, a connection pool of ``pool_size``; token refreshes are
    serialised by the token store's lock).  Secrets never appear in logs, exceptions, reprs or returned URLs.
    ``sleep`` and ``clock`` are injectable for tests; the rate limiter has its own.
    """

    def __init__(
        self,
        *,
        base_url: str = "https://www.strava.com",
        client_id: str | int,
        client_secret: str,
        token_store: TokenStore,
        rate_limiter: RateLimiter | None = None,
        timeout: tuple[float, float] = (10, 60),
        max_retries: int = 5,
        backoff_factor: float = 1.0,
        pool_size: int = 16,
        logger: logging.Logger | None = None,
        backoff_jitter: float | None = None,
        backoff_max: float = 60.0,
        max_429_retries: int = 5,
        max_payload_retries: int = 3,
        refresh_margin_seconds: float = 3600,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_url = f"{self.base_url}/api/v3"
        self.client_id = str(client_id)
        self._client_secret = client_secret
        self.token_store = token_store
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter()
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.max_429_retries = max(0, int(max_429_retries))
        self.max_payload_retries = max(0, int(max_payload_retries))
        self.backoff_factor = max(0.0, backoff_factor)
        self.backoff_jitter = self.backoff_factor if backoff_jitter is None else max(0.0, backoff_jitter)
        self.backoff_max = backoff_max
        self.refresh_margin_seconds = refresh_margin_seconds
        self._log = logger or logging.getLogger("strava_pipeline.strava")
        self._sleep = sleep
        self._clock = clock
        self._tokens: Tokens | None = None
        self._tokens_lock = threading.Lock()
        self._usage_saved_at = 0.0
        self._pool_size = pool_size
        self._session = self._new_session(pool_size)
        #: Attempt counters, for diagnostics and tests.
        self.stats: dict[str, int] = {
            "requests": 0,
            "retries_transient": 0,
            "retries_payload": 0,
            "retries_429": 0,
            "refreshes": 0,
        }

    def __repr__(self) -> str:
        return f"StravaClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    def __enter__(self) -> StravaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- session -------------------------------------------------------------------------------------------

    def _connect_retry(self) -> Retry:
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
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=self._connect_retry())
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"User-Agent": _USER_AGENT, "Accept": "application/json"})
        session.trust_env = True
        return session

    def close(self) -> None:
        """Save the last usage snapshot and release connections."""
        self._save_usage(force=True)
        self._session.close()

    # -- public API endpoints ------------------------------------------------------------------------------

    def get_athlete(self) -> ApiResponse:
        """``GET /athlete``: the authenticated athlete (detailed with ``profile:read_all``)."""
        return self._require(self._get("/athlete"))

    def get_athlete_zones(self) -> ApiResponse:
        """``GET /athlete/zones`` (needs ``profile:read_all``)."""
        self._preflight_scope(("profile:read_all",), "/athlete/zones")
        return self._require(self._get("/athlete/zones"))

    def get_gear(self, gear_id: str) -> ApiResponse:
        """``GET /gear/{id}`` (string ids: ``b…`` bikes, ``g…`` shoes)."""
        return self._require(self._get(f"/gear/{gear_id}"))

    def get_athlete_stats(self, athlete_id: int) -> ApiResponse:
        """``GET /athletes/{id}/stats`` (the id must be the authenticated athlete's)."""
        return self._require(self._get(f"/athletes/{int(athlete_id)}/stats"))

    def get_activity(self, activity_id: int, *, include_all_efforts: bool | None = None) -> ApiResponse:
        """``GET /activities/{id}``: a DetailedActivity.  404 (deleted) raises :class:`StravaNotFoundError`."""
        self._preflight_scope(_ACTIVITY_SCOPES, "/activities/{id}")
        params = None if include_all_efforts is None else {"include_all_efforts": str(include_all_efforts).lower()}
        return self._require(self._get(f"/activities/{int(activity_id)}", params))

    def iter_activity_pages(
        self, *, after: int | None = None, before: int | None = None, per_page: int = 200
    ) -> Iterator[ApiResponse]:
        """Yield every non-empty page of ``GET /athlete/activities``; the terminating ``[]`` is not yielded.

        Stops only on an empty page: Strava returns short pages that are not the last one (recorded: 10, then 4,
        then 0 items), so stopping at a short page would silently lose activities.  N activities cost
        ``ceil(N / per_page) + 1`` requests.
        """
        self._preflight_scope(_ACTIVITY_SCOPES, "/athlete/activities")
        page = 1
        while True:
            params: dict[str, Any] = {}
            if before is not None:
                params["before"] = int(before)
            if after is not None:
                params["after"] = int(after)
            params["page"] = page
            params["per_page"] = int(per_page)
            response = self._require(self._get("/athlete/activities", params))
            items = response.json()
            if not isinstance(items, list):
                raise StravaPayloadError(
                    f"Strava response from {response.url} is a JSON {type(items).__name__}, expected a list",
                    url=response.url,
                )
            if not items:
                return
            yield response
            page += 1

    def get_activity_streams(self, activity_id: int, keys: Sequence[str] = ALL_STREAM_KEYS) -> ApiResponse | None:
        """``GET /activities/{id}/streams?keys=…&key_by_type=true``; None when Strava answers 404.

        A 404 here means "this activity has no streams" (manual activities, some indoor ones), not a failure,
        and retrying it would only burn budget.
        """
        self._preflight_scope(_ACTIVITY_SCOPES, "/activities/{id}/streams")
        params = {"keys": ",".join(keys), "key_by_type": "true"}
        return self._get(f"/activities/{int(activity_id)}/streams", params, not_found_ok=True)

    # -- OAuth ---------------------------------------------------------------------------------------------

    def authorization_url(
        self, *, redirect_uri: str, scope: str = DEFAULT_SCOPE, state: str, approval_prompt: str = "auto"
    ) -> str:
        """The URL to send the athlete to (``/oauth/authorize``); scopes are comma-separated."""
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "approval_prompt": approval_prompt,
            }
        )
        # Scopes stay readable (``read,activity:read_all``): ',' and ':' are legal in a query string.
        query += f"&scope={quote(scope, safe=',:')}&{urlencode({'state': state})}"
        return f"{self.base_url}/oauth/authorize?{query}"

    def exchange_code(self, code: str, *, scope: str | None = None) -> Tokens:
        """Exchange an authorisation code for tokens and store them.

        ``scope`` is the *granted* scope from the redirect (``?scope=…``): Strava's token response does not
        include it and the athlete may have unticked boxes.  Codes are single-use, so this is never retried.
        """
        with self.token_store.lock():
            payload = self._token_request({"grant_type": "authorization_code", "code": code}, what="code exchange")
            tokens = Tokens.from_oauth_response(payload, scope=scope)
            self.token_store.save(tokens)
            with self._tokens_lock:
                self._tokens = tokens
        self._log.info("connected Strava athlete %s (scope %s)", tokens.athlete_id or "?", tokens.scope or "unknown")
        return tokens

    def deauthorize(self) -> None:
        """Revoke this application's access for the athlete (all tokens die) and forget the stored tokens."""
        access = self._access_token()
        with requests.Session() as session:
            session.mount("https://", HTTPAdapter(max_retries=self._connect_retry()))
            session.mount("http://", HTTPAdapter(max_retries=self._connect_retry()))
            try:
                resp = session.post(
                    f"{self.base_url}/oauth/deauthorize",
                    data={"access_token": access},
                    headers={"Authorization": f"Bearer {access}", "User-Agent": _USER_AGENT},
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                raise StravaTransientError(
                    f"could not reach Strava to deauthorize ({type(exc).__name__}); nothing was changed"
                ) from exc
        self.rate_limiter.observe(resp.headers, resp.status_code)
        if resp.status_code not in (200, 401):
            raise StravaHTTPError(
                f"Strava refused to deauthorize: HTTP {resp.status_code} {_fault_text(_fault(resp.content))}",
                status=resp.status_code,
                url=f"{self.base_url}/oauth/deauthorize",
            )
        self.token_store.clear()
        with self._tokens_lock:
            self._tokens = None
        self._log.info("deauthorized the Strava athlete and cleared the stored tokens")

    # -- tokens --------------------------------------------------------------------------------------------

    def _access_token(self) -> str:
        """A usable access token, refreshing (under the store lock) when under an hour is left."""
        with self._tokens_lock:
            tokens = self._tokens
        if tokens is None:
            tokens = self.token_store.require()
            with self._tokens_lock:
                self._tokens = tokens
        if tokens.needs_refresh(self._clock(), margin=self.refresh_margin_seconds):
            tokens = self._refresh(rejected_access_token=None)
        return tokens.access_token

    def _refresh(self, *, rejected_access_token: str | None) -> Tokens:
        """Refresh the access token, unless another thread/process already did.

        Holds the store lock for the whole read → POST → save sequence so exactly one refresh happens per
        rotation; re-reads the store inside the lock and adopts a token someone else obtained meanwhile.
        The rotated refresh token is saved (atomically, fsynced) *before* the new access token is used.
        """
        with self.token_store.lock():
            current = self.token_store.require()
            fresh = (
                current.access_token
                and not current.needs_refresh(self._clock(), margin=self.refresh_margin_seconds)
                and current.access_token != rejected_access_token
            )
            if fresh:
                self._log.debug("using an access token refreshed by another process")
                with self._tokens_lock:
                    self._tokens = current
                return current
            payload = self._token_request(
                {"grant_type": "refresh_token", "refresh_token": current.refresh_token}, what="token refresh"
            )
            tokens = Tokens.from_oauth_response(payload, previous=current)
            try:
                self.token_store.save(tokens)
            except OSError as exc:
                raise StravaAuthError(
                    f"Strava issued a new refresh token but it could not be saved to {self.token_store.path} "
                    f"({exc.strerror or type(exc).__name__}); the previous token is now invalid, so fix the "
                    f"problem and {RECONNECT_HINT}"
                ) from None
            with self._tokens_lock:
                self._tokens = tokens
            self.stats["refreshes"] += 1
        self._log.info(
            "refreshed the Strava access token (valid until %s UTC%s)",
            f"{datetime.fromtimestamp(tokens.expires_at, tz=UTC):%Y-%m-%d %H:%M:%S}",
            ", refresh token rotated" if tokens.refresh_token != current.refresh_token else "",
        )
        return tokens

    def _token_request(self, grant: Mapping[str, str], *, what: str) -> Mapping[str, Any]:
        """POST ``/oauth/token``; see the module docstring for why it is never resent once it may have arrived."""
        url = f"{self.base_url}/oauth/token"
        data = {"client_id": self.client_id, "client_secret": self._client_secret, **grant}
        # A fresh connection: a stale pooled keep-alive connection could fail *after* sending, which we
        # could not safely retry.  Connect-level retries (request never sent) stay on.
        with requests.Session() as session:
            session.mount("https://", HTTPAdapter(max_retries=self._connect_retry()))
            session.mount("http://", HTTPAdapter(max_retries=self._connect_retry()))
            try:
                resp = session.post(
                    url,
                    data=data,
                    timeout=self.timeout,
                    headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
                )
            except requests.RequestException as exc:
                if _never_sent(exc):
                    raise StravaTransientError(
                        f"could not connect to Strava for the {what} after {self.max_retries + 1} attempts; "
                        "the stored tokens are unchanged, try again later"
                    ) from exc
                raise StravaTransientError(
                    f"the {what} request failed after it may have reached Strava ({type(exc).__name__}); it is "
                    "not resent because a processed refresh rotates the token. The stored tokens are unchanged: "
                    f"try again later, and if that fails with an authorisation error, {RECONNECT_HINT}"
                ) from exc
        self.rate_limiter.observe(resp.headers, resp.status_code)
        status = resp.status_code
        if status == 200:
            try:
                payload = decode_json(resp.content, url)
            except StravaPayloadError as exc:
                raise StravaAuthError(
                    f"Strava's reply to the {what} was not valid JSON (byte {exc.offset}); if a new refresh token "
                    f"was issued it is lost: if the next run fails to authenticate, {RECONNECT_HINT}"
                ) from None
            if not isinstance(payload, Mapping) or not payload.get("access_token") or not payload.get("refresh_token"):
                raise StravaAuthError(
                    f"Strava's reply to the {what} has no access/refresh token; if the next run fails to "
                    f"authenticate, {RECONNECT_HINT}"
                )
            return payload
        fault = _fault(resp.content)
        if status in (400, 401, 403):
            fields = {str(e.get("field")) for e in fault.get("errors") or [] if isinstance(e, Mapping)}
            if fields & {"client_id", "client_secret"}:
                raise StravaAuthError(
                    f"Strava rejected the application credentials during the {what} (HTTP {status}: "
                    f"{_fault_text(fault)}); check STRAVA_CLIENT_ID and STRAVA_CLIENT_SECRET"
                )
            if grant.get("grant_type") == "authorization_code":
                raise StravaAuthError(
                    f"Strava rejected the authorisation code (HTTP {status}: {_fault_text(fault)}); codes are "
                    "single-use and short-lived: run `strava-pipeline auth` again"
                )
            raise StravaAuthError(
                f"Strava rejected the stored refresh token (HTTP {status}: {_fault_text(fault)}): the athlete "
                f"revoked access or the token was superseded; {RECONNECT_HINT}"
            )
        if status == 429:
            raise StravaRateLimitError(f"Strava rate-limited the {what} (HTTP 429); try again after the reset")
        raise StravaTransientError(
            f"Strava answered HTTP {status} to the {what} ({_fault_text(fault)}); the stored tokens are "
            "unchanged, try again later"
        )

    def _preflight_scope(self, any_of: Sequence[str], endpoint: str) -> None:
        """Fail before spending a request when the granted scope is known to lack what ``endpoint`` needs."""
        with self._tokens_lock:
            tokens = self._tokens
        if tokens is None:
            tokens = self.token_store.load()
        granted = tokens.granted_scopes() if tokens is not None else None
        if granted is None or granted & set(any_of):
            return
        raise StravaScopeError(
            f"the Strava authorisation does not include `{any_of[0]}` (granted: {','.join(sorted(granted))}), "
            f"which {endpoint} needs; run `strava-pipeline auth` to reconnect and approve that permission",
            scope=any_of[0],
            granted=",".join(sorted(granted)),
        )

    # -- the request loop ----------------------------------------------------------------------------------

    def _backoff(self, attempt: int, reason: str, url: str) -> None:
        delay = min(self.backoff_max, self.backoff_factor * (2 ** (attempt - 1)))
        delay += random.uniform(0, self.backoff_jitter) if self.backoff_jitter else 0.0
        self._log.warning("%s from %s; retry %d in %.2fs", reason, url, attempt, delay)
        if delay > 0:
            self._sleep(delay)

    @staticmethod
    def _require(response: ApiResponse | None) -> ApiResponse:
        assert response is not None  # only not_found_ok requests may return None
        return response

    def _get(
        self, path: str, params: Mapping[str, Any] | None = None, *, not_found_ok: bool = False
    ) -> ApiResponse | None:
        """One logical GET: as many attempts as the bounded retry rules allow, each counted by the limiter."""
        url = f"{self.api_url}{path}"
        query = urlencode(params, safe=",") if params else None
        display_url = f"{url}?{query}" if query else url
        transient = payload_failures = rate_limited = 0
        auth_retried = False
        while True:
            access = self._access_token()
            self.rate_limiter.acquire()
            self.stats["requests"] += 1
            started = time.monotonic()
            try:
                resp = self._session.get(
                    url, params=query, headers={"Authorization": f"Bearer {access}"}, timeout=self.timeout
                )
                body = resp.content
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
            self._save_usage()
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
                missing = _missing_scope(fault)
                if missing is not None:
                    scope, field = missing
                    granted = self._tokens.scope if self._tokens is not None else None
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
                    self._refresh(rejected_access_token=access)
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

    def _save_usage(self, *, force: bool = False, interval: float = 30.0) -> None:
        """Record the usage snapshot in the token store (for ``auth --status``), at most every ``interval`` s."""
        now = time.monotonic()
        if not force and now - self._usage_saved_at < interval:
            return
        self._usage_saved_at = now
        try:
            self.token_store.update_usage(self.rate_limiter.snapshot())
        except (OSError, StravaError) as exc:  # diagnostics only: never fail a run for this
            self._log.debug("could not save the usage snapshot: %s", exc)
