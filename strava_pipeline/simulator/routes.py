"""Request handling: Strava's API and OAuth endpoints plus the simulator's admin endpoints.

Transport-free on purpose: `SimulatorApp.handle` maps a parsed `Request` to a `Response`, and the
HTTP server (`server.py`) only moves bytes. That keeps every Strava rule testable in one place.

Order of checks for `/api/v3/*`, as on Strava: route -> access token (401) -> rate limits (429;
counted only for authenticated requests, since the application is known by its token) -> fault
injection -> scopes and the handler.

Listing order follows the real API (see recordings): newest first, except that a request with
`after` and no `before` comes back oldest first.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from strava_pipeline.simulator import bodies, detail
from strava_pipeline.simulator.config import SimulatorConfig
from strava_pipeline.simulator.dataset import Activity, Dataset, epoch_of
from strava_pipeline.simulator.faults import Fault, FaultInjector, FaultSpecError
from strava_pipeline.simulator.oauth import OAuthError, TokenStore, parse_scopes, scope_string
from strava_pipeline.simulator.rate_limits import RateLimiter
from strava_pipeline.simulator.streams import StreamCache

SECRET_PARAMS = ("access_token", "refresh_token", "client_secret", "code")
#: JSON keys `POST /_simulator/export` passes on to `export.write_export` (besides the required "path").
_EXPORT_OPTIONS = ("language", "layout", "formats", "file_formats", "missing_files", "truncated_files", "unpacked",
                   "workers")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json; charset=utf-8"
    fault: Fault | None = None  # transport-level faults the server must act out


@dataclass(frozen=True)
class RequestLogEntry:
    """One request as the simulator saw it (secrets in the query are masked)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    time: float
    duration: float


def masked(query: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k in SECRET_PARAMS else v) for k, v in query.items()}


_API_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/api/v3/athlete/?$"), "athlete"),
    (re.compile(r"^/api/v3/athlete/zones/?$"), "athlete/zones"),
    (re.compile(r"^/api/v3/athlete/activities/?$"), "athlete/activities"),
    (re.compile(r"^/api/v3/athletes/(?P<id>[^/]+)/stats/?$"), "stats"),
    (re.compile(r"^/api/v3/gear/(?P<id>[^/]+)/?$"), "gear"),
    (re.compile(r"^/api/v3/activities/(?P<id>[^/]+)/?$"), "activities"),
    (re.compile(r"^/api/v3/activities/(?P<id>[^/]+)/laps/?$"), "laps"),
    (re.compile(r"^/api/v3/activities/(?P<id>[^/]+)/streams(?:/(?P<keys>[^/]+))?/?$"), "streams"),
]


class SimulatorApp:
    """All simulator state behind one object: dataset, tokens, limits, faults, request log."""

    def __init__(self, config: SimulatorConfig) -> None:
        import random
        from datetime import UTC, datetime

        self.config = config
        self.clock: Callable[[], float] = config.clock or time.time
        now = self.clock()
        end = config.end_date or datetime.fromtimestamp(now, UTC).date()
        self.dataset = Dataset(config.seed, config.start_date, end, config.activities,
                               config.activity_seconds, now)
        rng = random.Random(f"app:{config.seed}")
        self.client_id = rng.randint(10_000, 199_999)
        self.client_secret = f"{rng.getrandbits(160):040x}"
        self.oauth = TokenStore(self.client_id, self.client_secret, config.token_ttl_seconds, self.clock)
        self.limiter = RateLimiter(config.read_limit, config.overall_limit, config.window_seconds, self.clock)
        self.faults = FaultInjector(config.faults, config.seed, config.slow_seconds_default)
        self.streams = StreamCache(config.seed, config.stream_cache_mb * 2**20)
        self._log: deque[RequestLogEntry] = deque(maxlen=200_000)  # bounded for long CLI sessions
        self._log_lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def athlete_id(self) -> int:
        return self.dataset.athlete.id

    # --- request log ---------------------------------------------------------------------------
    def log(self, entry: RequestLogEntry) -> None:
        with self._log_lock:
            self._log.append(entry)

    def request_log(self) -> list[RequestLogEntry]:
        with self._log_lock:
            return list(self._log)

    def request_started(self) -> None:
        """Count a request in flight (the server calls this before handling, :meth:`request_done` after)."""
        with self._idle:
            self._in_flight += 1

    def request_done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled; False if ``timeout`` seconds pass first.

        A client that gave up on a slow answer has moved on while the server still sleeps: its request is
        logged only when the answer is finally sent, so a test that counts slow answers waits for this.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    # --- programmatic OAuth ----------------------------------------------------------------------
    def authorize(self, scope: str) -> dict[str, Any]:
        code = self.oauth.issue_code(self.athlete_id, parse_scopes(scope))
        _, access, refresh = self.oauth.exchange_code(code)
        return self._token_body(access, refresh, with_athlete=True)

    def _token_body(self, access: Any, refresh: str, *, with_athlete: bool) -> dict[str, Any]:
        now = int(self.clock())
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_at": access.expires_at,
            "expires_in": access.expires_at - now,
            "refresh_token": refresh,
            "access_token": access.token,
        }
        if with_athlete:
            body["athlete"] = bodies.summary_athlete(self.dataset.athlete)
        return body

    # --- dispatch --------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        path = req.path
        if path.startswith("/_simulator/"):
            return self._admin(req)
        if path.startswith("/api/v3/oauth/"):
            path = path[len("/api/v3") :]
        if path.startswith("/oauth/"):
            return self._oauth(req, path)
        if path.startswith("/api/v3/"):
            return self._api(req)
        return Response(404, bodies.RESOURCE_NOT_FOUND)

    # --- OAuth -----------------------------------------------------------------------------------
    def _params(self, req: Request) -> dict[str, str]:
        params = dict(req.query)
        if req.body:
            ctype = req.headers.get("Content-Type", "") or ""
            text = req.body.decode("utf-8", "replace")
            if "json" in ctype:
                try:
                    data = json.loads(text)
                    params.update({k: str(v) for k, v in data.items()})
                except (ValueError, AttributeError):
                    pass
            else:
                params.update({k: v[-1] for k, v in urllib.parse.parse_qs(text).items()})
        return params

    def _oauth(self, req: Request, path: str) -> Response:
        p = self._params(req)
        try:
            if path.rstrip("/") == "/oauth/authorize" and req.method == "GET":
                return self._authorize_redirect(p)
            if path.rstrip("/") == "/oauth/token" and req.method == "POST":
                fault = self.faults.draw("token")
                if fault is not None and (fault.status or fault.kind in ("malformed", "expired", "inactive")):
                    return self._fault_response(fault, [])
                resp = self._token(p)
                resp.fault = fault
                return resp
            if path.rstrip("/") == "/oauth/deauthorize" and req.method == "POST":
                token = p.get("access_token") or _bearer(req)
                tok = self.oauth.lookup(token)
                if tok is None:
                    return Response(401, bodies.INVALID_TOKEN)
                self.oauth.deauthorize(tok.athlete_id)
                return Response(200, bodies.dumps({"access_token": token}))
        except OAuthError as err:
            message = "Bad Request" if err.status == 400 else "Authorization Error"
            return Response(err.status, bodies.fault(message, err.resource, err.field, err.code))
        return Response(404, bodies.RESOURCE_NOT_FOUND)

    def _authorize_redirect(self, p: dict[str, str]) -> Response:
        self.oauth.check_client(p.get("client_id"), need_secret=False)
        redirect = p.get("redirect_uri")
        if not redirect:
            return Response(400, bodies.bad_request("Application", "redirect_uri"))
        if p.get("response_type") != "code":
            return Response(400, bodies.bad_request("Application", "response_type"))
        scopes = parse_scopes(p.get("scope", "read"))
        if not scopes:
            return Response(400, bodies.bad_request("Authorize", "scope"))
        code = self.oauth.issue_code(self.athlete_id, scopes)
        query = urllib.parse.urlencode({"state": p.get("state", ""), "code": code, "scope": scope_string(scopes)})
        location = redirect + ("&" if "?" in redirect else "?") + query
        return Response(302, b"", [("Location", location)], content_type="text/html; charset=utf-8")

    def _token(self, p: dict[str, str]) -> Response:
        self.oauth.check_client(p.get("client_id"), p.get("client_secret"))
        grant_type = p.get("grant_type")
        if grant_type == "authorization_code":
            _, access, refresh = self.oauth.exchange_code(p.get("code"))
            return Response(200, bodies.dumps(self._token_body(access, refresh, with_athlete=True)))
        if grant_type == "refresh_token":
            _, access, refresh = self.oauth.refresh(p.get("refresh_token"))
            return Response(200, bodies.dumps(self._token_body(access, refresh, with_athlete=False)))
        return Response(400, bodies.bad_request("Application", "grant_type"))

    # --- API -------------------------------------------------------------------------------------
    def _api(self, req: Request) -> Response:
        match = None
        endpoint = ""
        for pattern, name in _API_ROUTES:
            match = pattern.match(req.path)
            if match:
                endpoint = name
                break
        if match is None or req.method != "GET":
            return Response(404, bodies.RESOURCE_NOT_FOUND, self.limiter.peek())
        tok = self.oauth.lookup(req.query.get("access_token") or _bearer(req))
        if tok is None:
            return Response(401, bodies.INVALID_TOKEN, self.limiter.peek())
        allowed, headers = self.limiter.hit(read=True)
        if not allowed:
            return Response(429, bodies.RATE_LIMITED, headers)
        fault = self.faults.draw(endpoint)
        if fault is not None and (fault.status or fault.kind in ("malformed", "expired", "inactive")):
            return self._fault_response(fault, headers)
        handler = getattr(self, "_ep_" + endpoint.replace("/", "_"))
        resp: Response = handler(tok, match, req.query)
        resp.headers = headers + resp.headers
        if fault is not None:
            if fault.kind == "noheaders":
                resp.headers = [h for h in resp.headers if not h[0].lower().startswith("x-")]
            else:
                resp.fault = fault
        return resp

    @staticmethod
    def _fault_response(fault: Fault, headers: list[tuple[str, str]]) -> Response:
        if fault.status:
            return Response(fault.status, bodies.SERVER_ERROR, headers)
        if fault.kind == "expired":
            return Response(401, bodies.INVALID_TOKEN, headers)
        if fault.kind == "inactive":
            return Response(403, bodies.APP_INACTIVE, headers)
        return Response(200, bodies.MALFORMED, headers)

    # scope helpers
    @staticmethod
    def _activity_scope(tok: Any) -> Response | None:
        if not tok.scopes & {"activity:read", "activity:read_all"}:
            return Response(401, bodies.missing_scope("activity:read_permission"))
        return None

    def _visible_activity(self, tok: Any, raw_id: str) -> tuple[Activity | None, Response | None]:
        denied = self._activity_scope(tok)
        if denied is not None:
            return None, denied
        act = self.dataset.get(int(raw_id)) if raw_id.isdigit() else None
        if act is None or act.athlete_id != tok.athlete_id:
            return None, Response(404, bodies.not_found("Activity"))
        if act.summary().get("visibility") == "only_me" and "activity:read_all" not in tok.scopes:
            return None, Response(404, bodies.not_found("Activity"))
        return act, None

    def _gear_distances(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for act in self.dataset.ordered():
            s = act.summary()
            if s.get("gear_id"):
                totals[s["gear_id"]] = totals.get(s["gear_id"], 0.0) + s["distance"]
        return totals

    def _ep_athlete(self, tok: Any, match: re.Match[str], q: dict[str, str]) -> Response:
        a = self.dataset.athlete
        if "profile:read_all" in tok.scopes:
            return Response(200, bodies.dumps(bodies.detailed_athlete(a, self._gear_distances())))
        return Response(200, bodies.dumps(bodies.summary_athlete(a)))

    def _ep_athlete_zones(self, tok: Any, match: re.Match[str], q: dict[str, str]) -> Response:
        if "profile:read_all" not in tok.scopes:
            return Response(401, bodies.missing_scope("profile:read_permission"))
        return Response(200, bodies.dumps(bodies.zones(self.dataset.athlete)))

    def _ep_stats(self, tok: Any, match: re.Match[str], q: dict[str, str]) -> Response:
        if match["id"] != str(tok.athlete_id):
            return Response(403, bodies.fault("Authorization Error", "Athlete", "id", "invalid"))
        return Response(200, bodies.dumps(bodies.stats(self.dataset.ordered(), self.clock())))

    def _ep_gear(self, tok: Any, match: re.Match[str], q: dict[str, str]) -> Response:
        g = self.dataset.gear(match["id"])
        if g is None:
            return Response(404, bodies.not_found("Gear"))
        return Response(200, bodies.dumps(bodies.detailed_gear(g, self._gear_distances().get(g.id, 0.0))))

    def _ep_athlete_activities(self, tok: Any, match: re.Match[str], q: dict[str, str]) -> Response:
        denied = self._activity_scope(tok)
        if denied is not None:
            return denied
        ints: dict[str, int | None] = {}
        for name in ("before", "after", "page", "per_page"):
            raw = q.get(name)
            if raw is None or raw == "":
                ints[name] = None
                continue
            try:
                ints[name] = int(float(raw))
            except ValueError:
                return Response(400, bodies.bad_request("Application", name))
        page = ints["page"] if ints["page"] is not None else 1
        per_page = ints["per_page"] if ints["per_page"] is not None else 30
        if page < 1:
            return Response(400, bodies.bad_request("Application", "page"))
        if per_page < 1:
            return Response(400, bodies.bad_request("Application", "per_page"))
        per_page = min(per_page, 200)
        before, after = ints["before"], ints["after"]
        read_all = "activity:read_all" in tok.scopes
        rows = []
        for act in self.dataset.ordered():
            s = act.summary()
            if s.get("visibility") == "only_me" and not read_all:
                continue
            start = epoch_of(s["start_date"])
            if before is not None and start >= before:
                continue
            if after is not None and start <= after:
                continue
            rows.append(s)
        if after is not None and before is None:
            rows.reverse()
        chunk = rows[(page - 1) * per_page : page * per_page]
        return Response(200, bodies.dumps(chunk))

    def _ep_activities(self, tok: Any, match: re.Match[str], q: dict[str, str]) -> Response:
        act, err = self._visible_activity(tok, match["id"])
        if act is None:
            return err  # type: ignore[return-value]
        derived = self.streams.derived(act) if act.has_streams else None
        gear = None
        summary = act.summary()
        gear_id = summary.get("gear_id")
        if gear_id:
            g = self.dataset.gear(gear_id)
            if g is not None:
                gear = bodies.summary_gear(g, self._gear_distances().get(g.id, 0.0))
        return Response(200, bodies.dumps(detail.detailed(act, derived, summary, gear)))

    def _ep_laps(self, tok: Any, match: re.Match[str], q: dict[str, str]) -> Response:
        act, err = self._visible_activity(tok, match["id"])
        if act is None:
            return err  # type: ignore[return-value]
        if not act.has_streams:
            return Response(200, b"[]")
        return Response(200, bodies.dumps(detail.laps(act, self.streams.derived(act), act.summary())))

    def _ep_streams(self, tok: Any, match: re.Match[str], q: dict[str, str]) -> Response:
        act, err = self._visible_activity(tok, match["id"])
        if act is None:
            return err  # type: ignore[return-value]
        resolution = q.get("resolution")
        if resolution is not None and resolution not in ("low", "medium", "high"):
            return Response(400, bodies.bad_request("Application", "resolution"))
        if not act.has_streams:
            return Response(404, bodies.RESOURCE_NOT_FOUND)
        raw_keys = match["keys"] or q.get("keys", "")
        keys = [k.strip() for k in raw_keys.split(",") if k.strip()]
        by_type = q.get("key_by_type", "").lower() == "true"
        return Response(200, self.streams.body(act, keys, by_type))

    # --- admin -----------------------------------------------------------------------------------
    def _admin(self, req: Request) -> Response:
        path = req.path.rstrip("/")
        try:
            data = json.loads(req.body) if req.body.strip() else {}
        except ValueError:
            data = None
        m = re.match(r"^/_simulator/activities/(\d+)$", path)
        try:
            if path == "/_simulator/activities" and req.method == "GET":
                return Response(200, bodies.dumps(self.dataset.summaries()))
            if path == "/_simulator/activities" and req.method == "POST" and isinstance(data, dict):
                new_id = self.dataset.add(**data)
                return Response(201, bodies.dumps({"id": new_id}))
            if m and req.method == "PATCH" and isinstance(data, dict):
                self.streams.forget(int(m[1]))
                return Response(200, bodies.dumps(self.dataset.update(int(m[1]), **data)))
            if m and req.method == "DELETE":
                self.dataset.delete(int(m[1]))
                self.streams.forget(int(m[1]))
                return Response(204)
            if path == "/_simulator/requests" and req.method == "GET":
                return Response(200, bodies.dumps([asdict(e) for e in self.request_log()]))
            if path == "/_simulator/requests" and req.method == "DELETE":
                self.clear_request_log()
                return Response(204)
            if path == "/_simulator/faults" and req.method == "POST":
                spec = data.get("spec", "") if isinstance(data, dict) else req.body.decode()
                self.faults.set(spec)
                return Response(200, bodies.dumps({"spec": spec}))
            if path == "/_simulator/expire_tokens" and req.method == "POST":
                self.oauth.expire_all()
                return Response(204)
            if path == "/_simulator/export" and req.method == "POST" and isinstance(data, dict) and data.get("path"):
                from strava_pipeline.simulator.export import write_export  # fit-tool only when exporting

                options = {k: v for k, v in data.items() if k in _EXPORT_OPTIONS}
                if isinstance(options.get("file_formats"), dict):  # JSON object keys are strings
                    options["file_formats"] = {int(k): v for k, v in options["file_formats"].items()}
                try:
                    manifest = write_export(self.dataset, str(data["path"]), **options)
                except OSError as err:
                    raise ValueError(f"cannot write the archive: {err}") from err
                return Response(200, bodies.dumps(manifest.summary()))
            if path == "/_simulator/rate_limits" and req.method == "POST" and isinstance(data, dict):
                self.limiter.set_limits(
                    read=tuple(data["read"]) if "read" in data else None,  # type: ignore[arg-type]
                    overall=tuple(data["overall"]) if "overall" in data else None,  # type: ignore[arg-type]
                )
                if data.get("reset"):
                    self.limiter.reset()
                return Response(204)
        except KeyError:
            return Response(404, bodies.not_found("Activity"))
        except (TypeError, ValueError, FaultSpecError) as err:
            return Response(400, bodies.dumps({"message": "Bad Request", "errors": [], "detail": str(err)}))
        return Response(404, bodies.RESOURCE_NOT_FOUND)


def _bearer(req: Request) -> str | None:
    auth = req.headers.get("Authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None
