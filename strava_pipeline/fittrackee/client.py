"""A small FitTrackee API client: OAuth2 (authorisation code with PKCE, refresh), workouts, sports, profile.

Only what the sink needs, each endpoint as FitTrackee documents it (``docs/en/api/*`` of its repository):

* ``GET <instance>/profile/apps/authorize?...`` — the consent page of FitTrackee's web UI; it posts to
  ``POST /api/oauth/authorize`` and sends the browser to the app's redirect URI with ``code`` and ``state``;
* ``POST /api/oauth/token`` — code exchange and refresh (client id and secret in the form body, FitTrackee's
  only method; the refresh token rotates and the old one is revoked);
* ``GET /api/sports``, ``GET /api/auth/profile`` (time zone: workouts without a file are dated in it);
* ``POST /api/workouts`` (multipart: ``file`` + ``data`` JSON), ``POST /api/workouts/no_gpx`` (JSON),
  ``PATCH /api/workouts/<id>``, ``DELETE /api/workouts/<id>``, ``GET /api/workouts``.

Requests go through :class:`~strava_pipeline.fittrackee.rate_limit.FitTrackeeRateLimiter`. Idempotent methods
are retried on connection errors and 5xx; an upload (``POST``) only when it surely did not reach the server
(connect error, 429): retrying one that may have been stored would upload the workout twice.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from .errors import RECONNECT_HINT, FitTrackeeAuthError, FitTrackeeError, FitTrackeeHTTPError
from .rate_limit import FitTrackeeRateLimiter
from .tokens import FitTrackeeTokens, FitTrackeeTokenStore

__all__ = ["SCOPE", "FitTrackeeClient", "pkce_pair"]

#: What the sink asks for: write workouts, read them back (idempotency checks, tests), read the profile
#: (its time zone dates workouts without a file).
SCOPE = "workouts:read workouts:write profile:read"
_IDEMPOTENT = {"GET", "PATCH", "DELETE", "PUT"}
_TRANSIENT_STATUS = {500, 502, 503, 504}
_MAX_429 = 20
_MAX_TRANSIENT = 4


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``(code_verifier, code_challenge)`` for ``S256`` (RFC 7636)."""
    import secrets

    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _bucket(method: str, path: str) -> str:
    """FitTrackee's limits are per route and method: ``PATCH /api/workouts/<id>`` is one bucket."""
    path = re.sub(r"^(/api/workouts/)(?!no_gpx$)[^/]+", r"\1<id>", path.split("?", 1)[0])
    return f"{method} {path}"


def _message(response: requests.Response) -> str:
    """FitTrackee's error message (``{"status": ..., "message": ...}``), without echoing a request."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or f"HTTP {response.status_code}"
    if isinstance(body, Mapping):
        text = body.get("message") or body.get("error_description") or body.get("error") or body.get("status")
        if body.get("errored_workouts"):
            text = f"{text}: {body['errored_workouts']}"
        return str(text)[:500]
    return f"HTTP {response.status_code}"


class FitTrackeeClient:
    """One user's access to one FitTrackee instance through an OAuth2 app; thread-safe.

    ``requests_made`` counts every request sent (by ``"METHOD /route"``), so callers can prove a run made none.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        token_store: FitTrackeeTokenStore,
        *,
        limiter: FitTrackeeRateLimiter | None = None,
        timeout: tuple[float, float] = (10.0, 120.0),
        session: requests.Session | None = None,
        shutdown: threading.Event | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_store = token_store
        self.log = logger or logging.getLogger("strava_pipeline.fittrackee")
        self.limiter = limiter or FitTrackeeRateLimiter(shutdown=shutdown, logger=self.log)
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = "strava-pipeline (FitTrackee sink)"
        self._refresh_lock = threading.Lock()
        self.requests_made: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"FitTrackeeClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> FitTrackeeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- OAuth2 ------------------------------------------------------------------------------------------------

    def authorization_url(self, *, redirect_uri: str, state: str, code_challenge: str, scope: str = SCOPE) -> str:
        """The consent page to send the user to (FitTrackee's web UI, PKCE ``S256``)."""
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                           "scope": scope, "state": state, "code_challenge": code_challenge,
                           "code_challenge_method": "S256"})
        return f"{self.base_url}/profile/apps/authorize?{query}"

    def _token_request(self, form: Mapping[str, str], previous: FitTrackeeTokens | None) -> FitTrackeeTokens:
        data = {**form, "client_id": self.client_id, "client_secret": self._client_secret}
        response = self._send("POST", "/api/oauth/token", data=data, authenticated=False)
        if response.status_code in (400, 401):
            raise FitTrackeeAuthError(f"FitTrackee refused the {form['grant_type']} grant ({_message(response)}); "
                                      f"{RECONNECT_HINT}")
        if response.status_code != 200:
            raise FitTrackeeHTTPError(f"FitTrackee's token endpoint answered HTTP {response.status_code} "
                                      f"({_message(response)})", status=response.status_code)
        try:
            payload = response.json()
        except ValueError:
            raise FitTrackeeError("FitTrackee's token endpoint answered something that is not JSON") from None
        return FitTrackeeTokens.from_token_response(payload, previous=previous)

    def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> FitTrackeeTokens:
        """Trade the authorisation code for tokens, name the user (profile) and save both in the store."""
        tokens = self._token_request({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                      "code_verifier": code_verifier}, None)
        self.token_store.save(tokens)
        try:
            username = self.profile().get("username")
        except FitTrackeeError:
            username = None
        if username:
            tokens = FitTrackeeTokens(tokens.access_token, tokens.refresh_token, tokens.expires_at, tokens.scope,
                                      str(username))
            self.token_store.save(tokens)
        return tokens

    def _current_tokens(self, *, force_refresh: bool = False, rejected: str | None = None) -> FitTrackeeTokens:
        tokens = self.token_store.require()
        if not force_refresh and not tokens.needs_refresh():
            return tokens
        with self._refresh_lock, self.token_store.lock():
            tokens = self.token_store.require()  # another process may have refreshed meanwhile
            if tokens.needs_refresh() or (force_refresh and tokens.access_token == rejected):
                tokens = self._token_request({"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
                                             tokens)
                self.token_store.save(tokens)  # before use: the old refresh token is revoked now
                self.log.info("FitTrackee access token refreshed (valid %.0f h)", tokens.seconds_left() / 3600)
            return tokens

    # -- transport ---------------------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, authenticated: bool = True, **kwargs: Any) -> requests.Response:
        """One logical request: rate limit, retries, and (authenticated) one refresh on a 401."""
        bucket = _bucket(method, path)
        url = f"{self.base_url}{path}"
        refreshed = False
        rate_limited = transient = 0
        while True:
            headers: dict[str, str] = {}
            token = ""
            if authenticated:
                token = self._current_tokens().access_token
                headers["Authorization"] = f"Bearer {token}"
            self.limiter.before(bucket)
            files = kwargs.get("files")
            if files:  # a retried upload must send the file from its start again
                for value in files.values():
                    handle = value[1] if isinstance(value, tuple) else value
                    if hasattr(handle, "seek"):
                        handle.seek(0)
            self.requests_made[bucket] += 1
            try:
                response = self._session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except requests.exceptions.ConnectTimeout as exc:
                error: Exception = exc
                retry = True
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                error = exc
                retry = method in _IDEMPOTENT
            else:
                wait = self.limiter.after(bucket, response.status_code, response.headers)
                if wait is not None:
                    rate_limited += 1
                    if rate_limited > _MAX_429:
                        raise FitTrackeeHTTPError(f"FitTrackee answered 429 to {bucket} {rate_limited} times in a "
                                                  "row; run again later", status=429)
                    self.limiter.backoff(bucket, wait)
                    continue
                if response.status_code == 401 and authenticated and not refreshed:
                    refreshed = True
                    self._current_tokens(force_refresh=True, rejected=token)
                    continue
                if response.status_code in _TRANSIENT_STATUS and method in _IDEMPOTENT and transient < _MAX_TRANSIENT:
                    transient += 1
                    self._pause(min(30.0, 2.0 ** transient), f"{bucket}: HTTP {response.status_code}")
                    continue
                return response
            transient += 1
            if not retry or transient > _MAX_TRANSIENT:
                kind = type(error).__name__
                raise FitTrackeeHTTPError(f"could not reach FitTrackee at {self.base_url} ({kind}) for {bucket}; "
                                          "check FITTRACKEE_URL and that the instance is up") from None
            self._pause(min(30.0, 2.0 ** transient), f"{bucket}: {type(error).__name__}")

    def _pause(self, seconds: float, why: str) -> None:
        self.log.warning("FitTrackee: retrying in %.0fs (%s)", seconds, why)
        stop = self.limiter.shutdown or threading.Event()
        if stop.wait(seconds):
            self.limiter.check_shutdown()

    def _json(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """One request whose answer must be JSON with one of the ``expect`` statuses (else a typed error)."""
        response = self._send(method, path, **kwargs)
        if response.status_code in expect:
            if response.status_code == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise FitTrackeeError(f"FitTrackee answered {method} {path} with something that is not JSON") from None
        if response.status_code == 401:
            raise FitTrackeeAuthError(f"FitTrackee rejected the access token ({_message(response)}); {RECONNECT_HINT}")
        if response.status_code == 403:
            raise FitTrackeeAuthError(f"FitTrackee refused {method} {path} ({_message(response)}): the app needs the "
                                      f"scopes {SCOPE!r} and the account must not be suspended; {RECONNECT_HINT}")
        raise FitTrackeeHTTPError(f"FitTrackee answered {method} {path} with HTTP {response.status_code}: "
                                  f"{_message(response)}", status=response.status_code)

    # -- API ---------------------------------------------------------------------------------------------------

    def profile(self) -> dict[str, Any]:
        """The user's profile (``username``, ``timezone``, ``nb_workouts``, ...)."""
        body = self._json("GET", "/api/auth/profile")
        return dict((body or {}).get("data") or {})

    def sports(self) -> dict[str, int]:
        """Active sports, label -> id, in id order."""
        body = self._json("GET", "/api/sports")
        sports = ((body or {}).get("data") or {}).get("sports") or []
        active = [s for s in sports if s.get("is_active", True) and s.get("is_active_for_user", True)]
        return {str(s["label"]): int(s["id"]) for s in sorted(active, key=lambda s: int(s["id"]))}

    @staticmethod
    def _workout(body: Any) -> dict[str, Any]:
        workouts = ((body or {}).get("data") or {}).get("workouts") or []
        if not workouts:
            raise FitTrackeeError("FitTrackee accepted the workout but returned none")
        return dict(workouts[0])

    def upload_file(self, path: Path, data: Mapping[str, Any], *, content: bytes | None = None) -> dict[str, Any]:
        """Create a workout from a GPX file (``content`` instead of the file's bytes, named as ``path``);
        ``data`` holds ``sport_id``, ``title``, ``notes``."""
        with contextlib.ExitStack() as stack:
            handle = io.BytesIO(content) if content is not None else stack.enter_context(open(path, "rb"))
            body = self._json("POST", "/api/workouts", expect=(200, 201),
                              files={"file": (path.name, handle, "application/octet-stream")},
                              data={"data": json.dumps(dict(data), ensure_ascii=False)})
        if (body or {}).get("status") == "in_progress":
            raise FitTrackeeError(f"FitTrackee queued {path.name} as a background task instead of creating the "
                                  "workout; upload single files, not archives")
        return self._workout(body)

    def max_file_size(self) -> int | None:
        """The instance's largest accepted workout file, bytes (``GET /api/config``), if it says."""
        body = self._json("GET", "/api/config", authenticated=False)
        value = ((body or {}).get("data") or {}).get("max_single_file_size")
        return int(value) if isinstance(value, int | float) and value > 0 else None

    def upload_without_file(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Create a workout from values (``sport_id``, ``workout_date``, ``distance`` km, ``duration`` s, ...)."""
        return self._workout(self._json("POST", "/api/workouts/no_gpx", expect=(200, 201), json=dict(data)))

    def update_workout(self, workout_id: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """Change a workout; None when it no longer exists (deleted in FitTrackee)."""
        try:
            return self._workout(self._json("PATCH", f"/api/workouts/{workout_id}", json=dict(data)))
        except FitTrackeeHTTPError as exc:
            if exc.status == 404:
                return None
            raise

    def delete_workout(self, workout_id: str) -> bool:
        """Delete a workout; False when it was already gone."""
        try:
            self._json("DELETE", f"/api/workouts/{workout_id}", expect=(200, 204))
        except FitTrackeeHTTPError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def workout(self, workout_id: str) -> dict[str, Any] | None:
        """One workout, or None."""
        try:
            return self._workout(self._json("GET", f"/api/workouts/{workout_id}"))
        except FitTrackeeHTTPError as exc:
            if exc.status == 404:
                return None
            raise

    def iter_workouts(self, *, per_page: int = 100) -> Iterator[dict[str, Any]]:
        """Every workout of the user, newest first."""
        page = 1
        while True:
            body = self._json("GET", f"/api/workouts?{urlencode({'page': page, 'per_page': per_page})}")
            workouts = ((body or {}).get("data") or {}).get("workouts") or []
            yield from workouts
            pagination = (body or {}).get("pagination") or {}
            if not workouts or not pagination.get("has_next"):
                return
            page += 1
