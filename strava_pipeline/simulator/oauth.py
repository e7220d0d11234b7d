"""OAuth 2.0 as Strava implements it: codes, six-hour access tokens, strictly rotating refresh tokens.

The rules are the ones pipelines get wrong in production, so they are enforced exactly:
- a code is single-use;
- every refresh returns a NEW refresh token and the old one is rejected at once (Strava's docs:
  "Once a new refresh token is returned, the older refresh token is invalidated immediately");
- an access token with more than an hour left is handed out again instead of a new one;
- deauthorize revokes every token of the athlete.
Tokens are random (`secrets`), never logged.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

KNOWN_SCOPES = (
    "read", "read_all", "profile:read_all", "profile:write", "activity:read", "activity:read_all",
    "activity:write",
)


@dataclass
class AccessToken:
    token: str
    athlete_id: int
    scopes: frozenset[str]
    expires_at: int
    revoked: bool = False


@dataclass
class Grant:
    """What a code or refresh token stands for."""

    athlete_id: int
    scopes: frozenset[str]
    access: AccessToken | None = None  # the access token last issued under this grant


class OAuthError(Exception):
    """A token-endpoint failure; `field`/`resource` follow Strava's error body."""

    def __init__(self, status: int, resource: str, field: str, code: str = "invalid") -> None:
        super().__init__(f"{resource}.{field} {code}")
        self.status, self.resource, self.field, self.code = status, resource, field, code


def parse_scopes(text: str) -> frozenset[str]:
    """Comma-delimited (Strava), tolerating spaces; unknown scopes are dropped as Strava does."""
    items = {s.strip() for s in text.replace(" ", ",").split(",") if s.strip()}
    return frozenset(s for s in items if s in KNOWN_SCOPES)


def scope_string(scopes: frozenset[str]) -> str:
    return ",".join(s for s in KNOWN_SCOPES if s in scopes)


class TokenStore:
    """All codes and tokens of the one demo application."""

    def __init__(self, client_id: int, client_secret: str, ttl: int, clock: Callable[[], float]) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, Grant] = {}
        self._refresh: dict[str, Grant] = {}
        self._access: dict[str, AccessToken] = {}

    def check_client(self, client_id: str | None, client_secret: str | None = None, *,
                     need_secret: bool = True) -> None:
        if str(client_id or "") != str(self.client_id):
            raise OAuthError(400, "Application", "client_id")
        if need_secret and client_secret != self.client_secret:
            raise OAuthError(401, "Application", "client_secret")

    def issue_code(self, athlete_id: int, scopes: frozenset[str]) -> str:
        code = secrets.token_hex(20)
        with self._lock:
            self._codes[code] = Grant(athlete_id, scopes)
        return code

    def _new_access(self, grant: Grant, now: int) -> AccessToken:
        tok = AccessToken(secrets.token_hex(20), grant.athlete_id, grant.scopes, now + self.ttl)
        self._access[tok.token] = tok
        grant.access = tok
        return tok

    def exchange_code(self, code: str | None) -> tuple[Grant, AccessToken, str]:
        now = int(self.clock())
        with self._lock:
            grant = self._codes.pop(code or "", None)
            if grant is None:
                raise OAuthError(400, "RequestToken", "code")
            access = self._new_access(grant, now)
            refresh = secrets.token_hex(20)
            self._refresh[refresh] = grant
            return grant, access, refresh

    def refresh(self, refresh_token: str | None) -> tuple[Grant, AccessToken, str]:
        """Strict rotation: the presented token dies, a new one is returned."""
        now = int(self.clock())
        with self._lock:
            grant = self._refresh.pop(refresh_token or "", None)
            if grant is None:
                raise OAuthError(400, "RefreshToken", "refresh_token")
            access = grant.access
            if access is None or access.revoked or access.expires_at - now <= 3600:
                access = self._new_access(grant, now)
            new_refresh = secrets.token_hex(20)
            self._refresh[new_refresh] = grant
            return grant, access, new_refresh

    def lookup(self, token: str | None) -> AccessToken | None:
        """The live access token, or None if unknown, expired or revoked."""
        if not token:
            return None
        with self._lock:
            tok = self._access.get(token)
        if tok is None or tok.revoked or tok.expires_at <= self.clock():
            return None
        return tok

    def deauthorize(self, athlete_id: int) -> None:
        with self._lock:
            for tok in self._access.values():
                if tok.athlete_id == athlete_id:
                    tok.revoked = True
            for key in [k for k, g in self._refresh.items() if g.athlete_id == athlete_id]:
                del self._refresh[key]

    def expire_all(self) -> None:
        """Make every access token expire now (refresh tokens stay valid)."""
        now = int(self.clock())
        with self._lock:
            for tok in self._access.values():
                tok.expires_at = min(tok.expires_at, now)
