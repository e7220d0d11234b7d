"""`strava-pipeline auth`: connect a Strava account (OAuth authorisation-code flow) and show its status.

The flow, as Strava documents it for a local application:

1. we send the athlete to ``/oauth/authorize`` with a random ``state``;
2. Strava redirects the browser to ``http://127.0.0.1:<port>/exchange_token?state=…&code=…&scope=…``, which a
   one-shot loopback server (bound to 127.0.0.1 only) receives — or, on a machine without a browser, the
   athlete pastes that URL back to us;
3. we check ``state`` (a mismatch means the redirect is not the answer to *our* request: nothing is stored),
   exchange the single-use code for tokens and save them in the 0600 token store;
4. we compare the *granted* scopes (the athlete may untick boxes) with what the pipeline needs and say what is
   lost without each missing one.

No Dagster here, and no token is ever printed: ``--status`` shows the athlete, scopes, expiry and API usage.
"""

from __future__ import annotations

import html
import secrets
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from strava_pipeline.fittrackee import SCOPE as FITTRACKEE_SCOPE
from strava_pipeline.fittrackee import (
    FitTrackeeClient,
    FitTrackeeConfigError,
    FitTrackeeError,
    FitTrackeeSettings,
    FitTrackeeTokens,
    FitTrackeeTokenStore,
    pkce_pair,
)
from strava_pipeline.settings import Settings
from strava_pipeline.strava import StravaClient, StravaError, Tokens, TokenStore

__all__ = [
    "AUTH_SCOPE",
    "DEFAULT_PORT",
    "AuthFlowError",
    "auth_status",
    "fittrackee_auth_status",
    "missing_scope_warnings",
    "parse_redirect",
    "run_auth",
    "run_fittrackee_auth",
]

#: What the pipeline asks for, in the order Strava's consent screen shows it.
AUTH_SCOPE = "read,profile:read_all,activity:read_all"
DEFAULT_PORT = 8721
CALLBACK_PATH = "/exchange_token"

#: What the athlete loses without each scope we ask for.
SCOPE_LOSSES: Mapping[str, str] = {
    "read": "public profile data: the athlete, gear and activities cannot be read at all",
    "profile:read_all": "heart-rate and power zones (athlete_raw skips /athlete/zones; zone-based metrics "
    "fall back to defaults) and full gear details",
    "activity:read_all": "private ('Only Me') activities and privacy-zone data are skipped "
    "(only activities visible to followers/everyone are mirrored)",
}


class AuthFlowError(StravaError):
    """The authorisation did not complete (denied, state mismatch, no code, timeout); nothing was stored."""


@dataclass(frozen=True)
class Redirect:
    """The parts of Strava's redirect we use."""

    code: str
    scope: str | None


def _granted(scope: str | None) -> frozenset[str]:
    return frozenset(s.strip() for s in (scope or "").replace(" ", ",").split(",") if s.strip())


def missing_scope_warnings(granted_scope: str | None, wanted: str = AUTH_SCOPE) -> list[str]:
    """One human sentence per wanted scope that was not granted (empty when everything was)."""
    granted = _granted(granted_scope)
    lines = []
    for scope in _granted(wanted):
        if scope in granted:
            continue
        loss = SCOPE_LOSSES.get(scope, "the data it covers")
        if scope == "activity:read_all" and "activity:read" not in granted:
            loss = "every activity: without activity:read or activity:read_all no activity can be listed"
        lines.append(f"scope {scope} was not granted: without it, {loss}")
    return sorted(lines)


def parse_redirect(url: str, expected_state: str, *, provider: str = "Strava",
                   command: str = "strava-pipeline auth") -> Redirect:
    """Validate the provider's redirect (a full URL or just its query string) and return the code and scope."""
    text = url.strip()
    query = urlsplit(text).query if ("://" in text or text.startswith("/")) else text.lstrip("?")
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if params.get("error"):
        if params["error"] == "access_denied":
            raise AuthFlowError(f"authorisation was denied on {provider}'s page (error=access_denied); nothing was "
                                f"stored. Run `{command}` again and click Authorize.")
        raise AuthFlowError(f"{provider} reported an authorisation error ({params['error']}); nothing was stored")
    state = params.get("state")
    if not state or not secrets.compare_digest(state, expected_state):
        raise AuthFlowError("the redirect's state does not match this authorisation request (a stale browser "
                            f"tab, or a forged redirect); nothing was stored. Run `{command}` again.")
    code = params.get("code")
    if not code:
        raise AuthFlowError("the redirect carries no authorisation code; nothing was stored")
    return Redirect(code=code, scope=params.get("scope"))


class _CallbackServer(HTTPServer):
    """One-shot loopback server: keeps the first query string received on the callback path."""

    allow_reuse_address = True

    def __init__(self, port: int, path: str = CALLBACK_PATH) -> None:
        self.received: str | None = None
        self.done = threading.Event()
        self.callback_path = path
        super().__init__(("127.0.0.1", port), _CallbackHandler)


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != self.server.callback_path:
            self.send_error(404)
            return
        if self.server.received is None:
            self.server.received = parts.query
            self.server.done.set()
        params = parse_qs(parts.query)
        if "error" in params:
            message = "Authorisation was not granted. You can close this tab."
        else:
            message = "strava-pipeline received the authorisation. You can close this tab and return to the terminal."
        body = f"<!doctype html><title>strava-pipeline</title><p>{html.escape(message)}</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _client(settings: Settings) -> StravaClient:
    if not settings.client_id or not settings.client_secret:
        raise AuthFlowError(
            "STRAVA_CLIENT_ID and STRAVA_CLIENT_SECRET must be set (create an API application at "
            "https://www.strava.com/settings/api and copy its Client ID and Client Secret)"
        )
    store = TokenStore(settings.token_file, seed_refresh_token=settings.refresh_token)
    return StravaClient(
        base_url=settings.base_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        token_store=store,
    )


def _await_redirect(url: str, redirect_uri: str, server: _CallbackServer | None, *, provider: str, paste: bool,
                    open_browser: Callable[[str], object], stdin: TextIO | None, out: Callable[[str], None],
                    timeout: float) -> str:
    """Show the consent URL, then return the redirect: received by ``server``, or pasted (``paste``)."""
    out("Open this URL in a browser and authorise the application:")
    out(f"  {url}")
    if paste:
        out("Your browser is then sent to a 127.0.0.1 address that will not load; that is expected.")
        out("Paste the full address from the browser's address bar here and press Enter:")
        line = (stdin or sys.stdin).readline()
        if not line.strip():
            raise AuthFlowError("no redirect URL was pasted; nothing was stored")
        return line
    assert server is not None
    try:
        opened = open_browser(url)
    except Exception:
        opened = False
    if not opened:
        out("(Could not open a browser automatically: open the URL above yourself.)")
    out(f"Waiting for {provider} to redirect to {redirect_uri} ...")
    deadline = time.monotonic() + timeout
    server.timeout = 0.5
    while not server.done.is_set():
        if time.monotonic() > deadline:
            raise AuthFlowError(f"no redirect received within {timeout:.0f}s; nothing was stored")
        server.handle_request()
    return server.received or ""


def run_auth(
    settings: Settings,
    *,
    port: int = DEFAULT_PORT,
    paste: bool = False,
    scope: str = AUTH_SCOPE,
    open_browser: Callable[[str], object] = webbrowser.open,
    stdin: TextIO | None = None,
    out: Callable[[str], None] = print,
    timeout: float = 600.0,
) -> Tokens:
    """Run the whole flow and return the stored tokens (never printed). ``port=0`` picks a free port."""
    state = secrets.token_urlsafe(24)
    with _client(settings) as client:
        server: _CallbackServer | None = None
        try:
            if not paste:
                try:
                    server = _CallbackServer(port)
                except OSError as exc:
                    raise AuthFlowError(
                        f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); pass --port with a free port "
                        "(and use the same host in your Strava app's callback domain), or use --no-browser"
                    ) from None
                port = server.server_address[1]
            redirect_uri = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
            url = client.authorization_url(redirect_uri=redirect_uri, scope=scope, state=state)
            received = _await_redirect(url, redirect_uri, server, provider="Strava", paste=paste,
                                       open_browser=open_browser, stdin=stdin, out=out, timeout=timeout)
        finally:
            if server is not None:
                server.server_close()
        redirect = parse_redirect(received, state)
        tokens = client.exchange_code(redirect.code, scope=redirect.scope)
    who = tokens.athlete_name or "the athlete"
    if tokens.athlete_id is not None:
        who += f" (id {tokens.athlete_id})"
    out(f"Connected {who}; tokens saved to {settings.token_file} (mode 0600).")
    out(f"Granted scopes: {tokens.scope or 'unknown'}")
    for warning in missing_scope_warnings(tokens.scope):
        out(f"WARNING: {warning}")
    return tokens


def _format_usage(usage: Mapping[str, Any] | None) -> list[str]:
    if not usage:
        return ["API usage: none seen yet (no run has called Strava with these tokens)"]
    lines = [f"API usage seen last (at {usage.get('taken_at', '?')}):"]
    for w in usage.get("windows") or []:
        if not isinstance(w, Mapping):
            continue
        limit = w.get("limit")
        line = f"  {w.get('bucket')} {w.get('window')}: {w.get('usage')}/{limit if limit is not None else '?'}"
        if w.get("exhausted"):
            line += " (exhausted)"
        line += f", resets {w.get('resets_at')}"
        lines.append(line)
    return lines


def auth_status(settings: Settings, *, now: float | None = None) -> tuple[bool, str]:
    """``(connected, report)``: the athlete, granted scopes, access-token expiry and last API usage.

    Never includes a token.
    """
    store = TokenStore(settings.token_file, seed_refresh_token=settings.refresh_token)
    tokens = store.load()
    lines = [f"Token store: {settings.token_file}"]
    if tokens is None:
        lines.append("Not connected: run `strava-pipeline auth` to connect a Strava account.")
        return False, "\n".join(lines)
    if tokens.athlete_id is None and not tokens.access_token:
        lines.append("Athlete: unknown (seeded from STRAVA_REFRESH_TOKEN; not used yet)")
    elif tokens.athlete_id is None:
        # Only the authorisation-code exchange names the athlete; a refresh answer never does, so a store
        # seeded from STRAVA_REFRESH_TOKEN works but stays anonymous.
        lines.append("Athlete: connected (not recorded: the tokens came from STRAVA_REFRESH_TOKEN, and a token "
                     "refresh does not name the athlete; `strava-pipeline auth` records it)")
    else:
        name = tokens.athlete_name or "name not recorded"
        lines.append(f"Athlete: {name} (id {tokens.athlete_id})")
    lines.append(f"Granted scopes: {tokens.scope or 'unknown'}")
    if tokens.scope is not None:
        lines.extend(f"WARNING: {w}" for w in missing_scope_warnings(tokens.scope))
    if not tokens.access_token or not tokens.expires_at:
        lines.append("Access token: none yet (obtained on the next run from the refresh token)")
    else:
        at = datetime.fromtimestamp(tokens.expires_at, tz=UTC)
        left = tokens.seconds_left(now)
        if left <= 0:
            when = f"expired at {at:%Y-%m-%d %H:%M:%S} UTC (renewed automatically on the next run)"
        else:
            when = f"expires at {at:%Y-%m-%d %H:%M:%S} UTC (in {int(left // 3600)}h {int(left % 3600 // 60)}m)"
        lines.append(f"Access token: {when}")
    lines.extend(_format_usage(store.load_usage()))
    return True, "\n".join(lines)


def main(args: Any) -> int:
    """CLI entry (``strava-pipeline auth``); ``args`` has ``status``, ``port`` and ``paste``."""
    settings = Settings.from_env()
    if args.status:
        connected, report = auth_status(settings)
        print(report)
        return 0 if connected else 1
    try:
        run_auth(settings, port=args.port, paste=args.paste)
    except StravaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing was stored", file=sys.stderr)
        return 130
    return 0


# -- FitTrackee ------------------------------------------------------------------------------------------------
# `strava-pipeline auth fittrackee`: the same loopback flow for the FitTrackee sink's OAuth2 app, with PKCE
# (FitTrackee supports only the authorisation-code grant; the client secret goes in the token request's body).
# The app is created by the user in FitTrackee (Settings > Apps) with the redirect URL printed below.

FITTRACKEE_PORT = 8722
FITTRACKEE_CALLBACK_PATH = "/callback"
FITTRACKEE_COMMAND = "strava-pipeline auth fittrackee"


def fittrackee_redirect_uri(port: int = FITTRACKEE_PORT) -> str:
    """The redirect URL the FitTrackee app must list (exactly: FitTrackee compares it as a string)."""
    return f"http://127.0.0.1:{port}{FITTRACKEE_CALLBACK_PATH}"


def _fittrackee_store(settings: Settings, ft: FitTrackeeSettings) -> tuple[str, str, str, FitTrackeeTokenStore]:
    reason = ft.disabled_reason()
    if reason is not None or not (ft.url and ft.client_id and ft.client_secret):
        raise FitTrackeeConfigError(reason or "FitTrackee is not configured")
    store = FitTrackeeTokenStore(settings.token_file, instance_url=ft.url, client_id=ft.client_id)
    return ft.url, ft.client_id, ft.client_secret, store


def run_fittrackee_auth(
    settings: Settings,
    ft: FitTrackeeSettings | None = None,
    *,
    port: int = FITTRACKEE_PORT,
    paste: bool = False,
    open_browser: Callable[[str], object] = webbrowser.open,
    stdin: TextIO | None = None,
    out: Callable[[str], None] = print,
    timeout: float = 600.0,
) -> FitTrackeeTokens:
    """Connect the FitTrackee account of ``FITTRACKEE_URL``; tokens go to the token store (never printed)."""
    url, client_id, secret, store = _fittrackee_store(settings, ft or FitTrackeeSettings.from_env())
    state = secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    with FitTrackeeClient(url, client_id, secret, store) as client:
        server: _CallbackServer | None = None
        try:
            if not paste:
                try:
                    server = _CallbackServer(port, FITTRACKEE_CALLBACK_PATH)
                except OSError as exc:
                    raise AuthFlowError(
                        f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); pass --port with a free port "
                        "(and list the same redirect URL in your FitTrackee app), or use --no-browser"
                    ) from None
                port = server.server_address[1]
            redirect_uri = fittrackee_redirect_uri(port)
            out(f"Your FitTrackee app (Settings > Apps on {url}) must list the redirect URL {redirect_uri}")
            out(f"and the scopes {FITTRACKEE_SCOPE}.")
            authorize = client.authorization_url(redirect_uri=redirect_uri, state=state, code_challenge=challenge)
            received = _await_redirect(authorize, redirect_uri, server, provider="FitTrackee", paste=paste,
                                       open_browser=open_browser, stdin=stdin, out=out, timeout=timeout)
        finally:
            if server is not None:
                server.server_close()
        redirect = parse_redirect(received, state, provider="FitTrackee", command=FITTRACKEE_COMMAND)
        tokens = client.exchange_code(redirect.code, redirect_uri=redirect_uri, code_verifier=verifier)
    out(f"Connected FitTrackee user {tokens.username or '(name unknown)'} on {url}; tokens saved to "
        f"{settings.token_file} (mode 0600).")
    out(f"Granted scopes: {tokens.scope or 'unknown'}")
    missing = set(FITTRACKEE_SCOPE.split()) - set((tokens.scope or "").split())
    if tokens.scope is not None and missing:
        out(f"WARNING: scopes {', '.join(sorted(missing))} were not granted: add them to the app in FitTrackee "
            f"and run `{FITTRACKEE_COMMAND}` again (uploads need workouts:write, dating manual entries profile:read)")
    return tokens


def fittrackee_auth_status(settings: Settings, ft: FitTrackeeSettings | None = None, *,
                           now: float | None = None) -> tuple[bool, str]:
    """``(connected, report)`` for the FitTrackee sink: instance, user, scopes, token expiry; never a token."""
    ft = ft or FitTrackeeSettings.from_env()
    lines = [f"Token store: {settings.token_file}"]
    if not ft.url or not ft.client_id:
        lines.append(ft.disabled_reason() or "FitTrackee is not configured")
        return False, "\n".join(lines)
    tokens = FitTrackeeTokenStore(settings.token_file, instance_url=ft.url, client_id=ft.client_id).load()
    lines.append(f"FitTrackee: {ft.url} (app {ft.client_id})")
    if tokens is None:
        lines.append(f"Not connected: run `{FITTRACKEE_COMMAND}`.")
        return False, "\n".join(lines)
    lines.append(f"User: {tokens.username or 'not recorded'}")
    lines.append(f"Granted scopes: {tokens.scope or 'unknown'}")
    at = datetime.fromtimestamp(tokens.expires_at, tz=UTC)
    left = tokens.seconds_left(now)
    state = "expired" if left <= 0 else f"expires in {int(left // 86400)}d {int(left % 86400 // 3600)}h"
    lines.append(f"Access token: {state} ({at:%Y-%m-%d %H:%M:%S} UTC; renewed automatically while the refresh "
                 "token is valid)")
    if ft.client_secret is None:
        lines.append("WARNING: FITTRACKEE_CLIENT_SECRET is not set: the sink cannot renew tokens or run")
    return True, "\n".join(lines)


def main_fittrackee(args: Any) -> int:
    """CLI entry (``strava-pipeline auth fittrackee``); ``args`` has ``status``, ``port`` and ``paste``."""
    settings = Settings.from_env()
    try:
        ft = FitTrackeeSettings.from_env()
        if args.status:
            connected, report = fittrackee_auth_status(settings, ft)
            print(report)
            return 0 if connected else 1
        run_fittrackee_auth(settings, ft, port=args.port, paste=args.paste)
    except FitTrackeeConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FitTrackeeError, AuthFlowError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing was stored", file=sys.stderr)
        return 130
    return 0
