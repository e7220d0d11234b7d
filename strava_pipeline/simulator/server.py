"""HTTP plumbing: a threaded HTTP/1.1 server that writes each response in one `sendall`.

Plain `http.server` writes the status line, headers and body in several small sends; with Nagle's
algorithm and delayed ACKs that adds ~40 ms to every keep-alive request. Here the whole response
is built as one bytes object and the socket has TCP_NODELAY, so a request costs well under a
millisecond of transport.

The transport-level faults (reset, truncate, slow) are acted out here, because only this layer
owns the socket.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from strava_pipeline.simulator.routes import Request, RequestLogEntry, Response, SimulatorApp, masked

_REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


class SimulatorHTTPServer(ThreadingHTTPServer):
    """One thread per connection; daemon threads so a stuck client never blocks shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: SimulatorApp) -> None:
        self.app = app
        super().__init__(address, SimulatorHandler)


class SimulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StravaSimulator/1.0"
    server: SimulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr log: request lines carry access tokens."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        app = self.server.app
        app.request_started()
        try:
            self._handle(app)
        finally:
            app.request_done()

    def _handle(self, app: SimulatorApp) -> None:
        started = time.perf_counter()
        wall = app.clock()
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        req = Request(self.command, urllib.parse.unquote(url.path), query, self.headers, body)
        try:
            resp = app.handle(req)
        except Exception:  # a bug in a handler must not kill the connection silently
            import traceback

            traceback.print_exc()
            resp = Response(500, b'{"message":"error"}')
        latency = app.config.latency_ms
        if latency:
            time.sleep(latency / 1000)
        fault = resp.fault
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        reset = fault is not None and fault.kind == "reset"
        # Log before the client can see the outcome, so a test reading the log right after its
        # request always finds it. A reset is logged with status 0 (no response was sent).
        if not req.path.startswith("/_simulator/"):
            app.log(RequestLogEntry(req.method, req.path, masked(query), 0 if reset else resp.status, wall,
                                    time.perf_counter() - started))
        if reset:
            self._reset()
        else:
            self._send(resp, truncate=fault is not None and fault.kind == "truncate")

    def _send(self, resp: Response, *, truncate: bool) -> None:
        lines = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}"]
        lines.append(f"Date: {self.date_time_string()}")
        lines.append(f"Content-Type: {resp.content_type}")
        lines.append(f"Content-Length: {len(resp.body)}")
        for name, value in resp.headers:
            lines.append(f"{name}: {value}")
        if truncate or self.close_connection:
            lines.append("Connection: close")
            self.close_connection = True
        else:
            lines.append("Connection: keep-alive")
        payload = resp.body[: len(resp.body) // 2] if truncate else resp.body
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + payload
        try:
            self.connection.sendall(data)
        except OSError:
            self.close_connection = True

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 makes close() send a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class ServerThread:
    """Runs a `SimulatorHTTPServer` in a background thread."""

    def __init__(self, app: SimulatorApp, host: str, port: int) -> None:
        self.httpd = SimulatorHTTPServer((host, port), app)
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="strava-simulator", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
