"""The OAuth life cycle: authorisation URL, code exchange, access-token refresh with rotation, deauthorisation.

Losing a rotated refresh token means the athlete has to reconnect, so every token request follows one rule.

**POST /oauth/token** is only ever retried by urllib3's *connect* retries, i.e. when the request provably never
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
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests

from .errors import (
    INACTIVE_HINT,
    RECONNECT_HINT,
    StravaAppInactiveError,
    StravaAuthError,
    StravaHTTPError,
    StravaPayloadError,
    StravaRateLimitError,
    StravaTransientError,
    is_app_inactive,
)
from .responses import decode_json
from .tokens import Tokens, TokenStore
from .transport import _USER_AGENT, Transport, _fault, _fault_text, _never_sent

__all__ = ["DEFAULT_SCOPE", "OAuthSession"]

#: What the pipeline asks for: profile (zones, gear) and every activity including "Only Me" ones.
DEFAULT_SCOPE = "read,activity:read_all,profile:read_all"


class OAuthSession:
    """One application's tokens for one athlete: cached in memory, persisted and locked by the token store.

    Thread-safe: the in-memory copy has its own lock, refreshes are serialised by the store's (cross-process)
    lock.  Implements :class:`~.transport.Credentials` for the request loop.  ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        client_id: str,
        client_secret: str,
        token_store: TokenStore,
        refresh_margin_seconds: float,
        logger: logging.Logger,
        clock: Callable[[], float],
    ) -> None:
        self._transport = transport
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_store = token_store
        self.refresh_margin_seconds = refresh_margin_seconds
        self._log = logger
        self._clock = clock
        self._tokens: Tokens | None = None
        self._tokens_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OAuthSession(client_id={self.client_id!r}, token_store={self.token_store!r})"

    # -- athlete-facing steps ------------------------------------------------------------------------------

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
        return f"{self._transport.base_url}/oauth/authorize?{query}"

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
        access = self.access_token()
        url = f"{self._transport.base_url}/oauth/deauthorize"
        try:
            resp = self._transport.post_fresh(
                url,
                data={"access_token": access},
                headers={"Authorization": f"Bearer {access}", "User-Agent": _USER_AGENT},
            )
        except requests.RequestException as exc:
            raise StravaTransientError(
                f"could not reach Strava to deauthorize ({type(exc).__name__}); nothing was changed"
            ) from exc
        if resp.status_code not in (200, 401):
            raise StravaHTTPError(
                f"Strava refused to deauthorize: HTTP {resp.status_code} {_fault_text(_fault(resp.content))}",
                status=resp.status_code,
                url=url,
            )
        self.token_store.clear()
        with self._tokens_lock:
            self._tokens = None
        self._log.info("deauthorized the Strava athlete and cleared the stored tokens")

    # -- tokens for the request loop -----------------------------------------------------------------------

    @property
    def cached_scope(self) -> str | None:
        """The scope of the tokens in use (None before the first call or if Strava never said)."""
        tokens = self._tokens
        return tokens.scope if tokens is not None else None

    def granted_scopes(self) -> frozenset[str] | None:
        """The granted scopes, from memory or the store, without a request; None when unknown."""
        with self._tokens_lock:
            tokens = self._tokens
        if tokens is None:
            tokens = self.token_store.load()
        return tokens.granted_scopes() if tokens is not None else None

    def access_token(self) -> str:
        """A usable access token, refreshing (under the store lock) when under an hour is left."""
        with self._tokens_lock:
            tokens = self._tokens
        if tokens is None:
            tokens = self.token_store.require()
            with self._tokens_lock:
                self._tokens = tokens
        if tokens.needs_refresh(self._clock(), margin=self.refresh_margin_seconds):
            tokens = self.refresh(rejected_access_token=None)
        return tokens.access_token

    def refresh(self, *, rejected_access_token: str | None) -> Tokens:
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
            self._transport.stats["refreshes"] += 1
        self._log.info(
            "refreshed the Strava access token (valid until %s UTC%s)",
            f"{datetime.fromtimestamp(tokens.expires_at, tz=UTC):%Y-%m-%d %H:%M:%S}",
            ", refresh token rotated" if tokens.refresh_token != current.refresh_token else "",
        )
        return tokens

    def _token_request(self, grant: Mapping[str, str], *, what: str) -> Mapping[str, Any]:
        """POST ``/oauth/token``; see the module docstring for why it is never resent once it may have arrived."""
        url = f"{self._transport.base_url}/oauth/token"
        data = {"client_id": self.client_id, "client_secret": self._client_secret, **grant}
        try:
            resp = self._transport.post_fresh(
                url, data=data, headers={"User-Agent": _USER_AGENT, "Accept": "application/json"}
            )
        except requests.RequestException as exc:
            if _never_sent(exc):
                raise StravaTransientError(
                    f"could not connect to Strava for the {what} after {self._transport.max_retries + 1} attempts; "
                    "the stored tokens are unchanged, try again later"
                ) from exc
            raise StravaTransientError(
                f"the {what} request failed after it may have reached Strava ({type(exc).__name__}); it is "
                "not resent because a processed refresh rotates the token. The stored tokens are unchanged: "
                f"try again later, and if that fails with an authorisation error, {RECONNECT_HINT}"
            ) from exc
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
        if status == 403 and is_app_inactive(fault):
            raise StravaAppInactiveError(f"Strava refused the {what} (HTTP 403 Inactive): {INACTIVE_HINT}")
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
