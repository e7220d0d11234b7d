"""HTTP client for the parts of the Strava API v3 the pipeline mirrors.

The API budget (by default 100 reads / 15 min and 1,000 / day) is the scarcest resource of the product, so
this client is built around three rules: never waste a request, never lose work to a 429, never lose a
rotated refresh token.  The rules live where they are enforced; this module only knows the endpoints:

* :mod:`.transport` — the pooled session, the bounded retry loop and its accounting (which layer retries
  what, and why), error classification, usage snapshots.
* :mod:`.oauth` — the token life cycle: refresh with rotation under the store lock, authorisation URL, code
  exchange, deauthorisation, and why a token request is never resent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .errors import StravaPayloadError, StravaScopeError
from .oauth import DEFAULT_SCOPE, OAuthSession
from .rate_limiter import RateLimiter
from .responses import ApiResponse
from .tokens import Tokens, TokenStore
from .transport import DEFAULT_MAX_RESPONSE_BYTES, Transport

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

_ACTIVITY_SCOPES = ("activity:read", "activity:read_all")


class StravaClient:
    """Strava API v3 client: authenticated GETs with rate limiting, token rotation and bounded retries.

    Thread-safe for concurrent calls (one session, a connection pool of ``pool_size``; token refreshes are
    serialised by the token store's lock).  Secrets never appear in logs, exceptions, reprs or returned URLs.
    ``sleep`` and ``clock`` are injectable for tests; the rate limiter has its own.  Composes a
    :class:`~.transport.Transport` (``_transport``) and an :class:`~.oauth.OAuthSession` (``_oauth``).
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        refresh_margin_seconds: float = 3600,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        log = logger or logging.getLogger("strava_pipeline.strava")
        self._transport = Transport(
            base_url=base_url,
            rate_limiter=rate_limiter if rate_limiter is not None else RateLimiter(),
            token_store=token_store,
            timeout=timeout,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            pool_size=pool_size,
            logger=log,
            backoff_jitter=backoff_jitter,
            backoff_max=backoff_max,
            max_429_retries=max_429_retries,
            max_payload_retries=max_payload_retries,
            sleep=sleep,
            max_response_bytes=max_response_bytes,
        )
        self._oauth = OAuthSession(
            transport=self._transport,
            client_id=str(client_id),
            client_secret=client_secret,
            token_store=token_store,
            refresh_margin_seconds=refresh_margin_seconds,
            logger=log,
            clock=clock,
        )
        self.base_url = self._transport.base_url
        self.api_url = self._transport.api_url
        self.client_id = self._oauth.client_id
        self.token_store = token_store
        self.rate_limiter = self._transport.rate_limiter
        self.timeout = timeout
        #: Attempt counters, for diagnostics and tests (the transport's dict itself, so always current).
        self.stats: dict[str, int] = self._transport.stats

    def __repr__(self) -> str:
        return f"StravaClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    def __enter__(self) -> StravaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Save the last usage snapshot and release connections."""
        self._transport.close()

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

    # -- OAuth (delegated) ---------------------------------------------------------------------------------

    def authorization_url(
        self, *, redirect_uri: str, scope: str = DEFAULT_SCOPE, state: str, approval_prompt: str = "auto"
    ) -> str:
        """The URL to send the athlete to (``/oauth/authorize``); scopes are comma-separated."""
        return self._oauth.authorization_url(
            redirect_uri=redirect_uri, scope=scope, state=state, approval_prompt=approval_prompt
        )

    def exchange_code(self, code: str, *, scope: str | None = None) -> Tokens:
        """Exchange an authorisation code for tokens and store them (``scope``: the granted one, from the redirect)."""
        return self._oauth.exchange_code(code, scope=scope)

    def deauthorize(self) -> None:
        """Revoke this application's access for the athlete (all tokens die) and forget the stored tokens."""
        self._oauth.deauthorize()

    # -- helpers -------------------------------------------------------------------------------------------

    def _preflight_scope(self, any_of: Sequence[str], endpoint: str) -> None:
        """Fail before spending a request when the granted scope is known to lack what ``endpoint`` needs."""
        granted = self._oauth.granted_scopes()
        if granted is None or granted & set(any_of):
            return
        raise StravaScopeError(
            f"the Strava authorisation does not include `{any_of[0]}` (granted: {','.join(sorted(granted))}), "
            f"which {endpoint} needs; run `strava-pipeline auth` to reconnect and approve that permission",
            scope=any_of[0],
            granted=",".join(sorted(granted)),
        )

    def _get(
        self, path: str, params: Mapping[str, Any] | None = None, *, not_found_ok: bool = False
    ) -> ApiResponse | None:
        """One logical GET through the transport's bounded retry loop, authenticated by the OAuth session."""
        return self._transport.get(path, params, auth=self._oauth, not_found_ok=not_found_ok)

    @staticmethod
    def _require(response: ApiResponse | None) -> ApiResponse:
        assert response is not None  # only not_found_ok requests may return None
        return response
