"""`StravaSimulator`: the object tests, benchmarks and the CLI hold on to.

It owns the app state and the server thread and exposes the ground truth and the knobs (dataset
changes, faults, limits, token expiry) as plain Python methods, so a test never has to reach into
the HTTP layer to arrange a scenario.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from strava_pipeline.simulator.config import SimulatorConfig
from strava_pipeline.simulator.routes import RequestLogEntry, SimulatorApp
from strava_pipeline.simulator.server import ServerThread

if TYPE_CHECKING:
    from strava_pipeline.simulator.export import ExportManifest


class StravaSimulator:
    """A Strava-compatible HTTP server with one synthetic athlete; also a context manager."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.app = SimulatorApp(self.config)
        self._server: ServerThread | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> StravaSimulator:
        if self._server is None:
            self._server = ServerThread(self.app, self.config.host, self.config.port)
            self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> StravaSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- identity --------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        host, port = self._server.address
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/v3"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def client_id(self) -> int:
        return self.app.client_id

    @property
    def client_secret(self) -> str:
        return self.app.client_secret

    @property
    def athlete_id(self) -> int:
        return self.app.athlete_id

    @property
    def clock(self) -> Callable[[], float]:
        return self.app.clock

    # --- OAuth -----------------------------------------------------------------------------------
    def authorize(self, scope: str = "read,activity:read_all,profile:read_all") -> dict[str, Any]:
        """Grant the demo app access as the athlete would; returns Strava's code-exchange body."""
        return self.app.authorize(scope)

    def expire_access_tokens(self) -> None:
        self.app.oauth.expire_all()

    # --- ground truth and dataset changes ---------------------------------------------------------
    def activities(self) -> list[dict[str, Any]]:
        """Every SummaryActivity (private and manual included), newest first."""
        return self.app.dataset.summaries()

    def activity_ids(self) -> set[int]:
        return self.app.dataset.ids()

    def add_activity(self, start_date_local: datetime | str | None = None, sport_type: str = "Run",
                     **overrides: Any) -> int:
        """Add an activity; `zone`, `manual`, `private`, `minutes`, `name` shape the design, any other
        keyword overrides the served summary field. Returns the new id."""
        return self.app.dataset.add(start_date_local, sport_type, **overrides)

    def replay_activities(self, summaries: list[dict[str, Any]]) -> None:
        """Replace the synthetic activities with recorded ones, listed verbatim (paging, before/after)."""
        self.app.dataset.replay(summaries)

    def update_activity(self, activity_id: int, **fields: Any) -> dict[str, Any]:
        self.app.streams.forget(activity_id)
        return self.app.dataset.update(activity_id, **fields)

    def delete_activity(self, activity_id: int) -> None:
        self.app.dataset.delete(activity_id)
        self.app.streams.forget(activity_id)

    # --- bulk export ------------------------------------------------------------------------------
    def write_export(self, path: str | os.PathLike[str], **options: Any) -> ExportManifest:
        """Write the athlete's Strava bulk-export archive (`export_<id>.zip`) into `path`; returns its manifest.

        Options are those of `strava_pipeline.simulator.export.write_export` (language, layout, formats,
        file_formats, missing_files, truncated_files, unpacked, workers). Works whether or not the server runs.
        """
        from strava_pipeline.simulator.export import write_export  # fit-tool is loaded only when exporting

        return write_export(self.app.dataset, path, **options)

    # --- request log, faults, limits ---------------------------------------------------------------
    @property
    def request_log(self) -> list[RequestLogEntry]:
        return self.app.request_log()

    def clear_request_log(self) -> None:
        self.app.clear_request_log()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Return once no request is being handled (slow answers to clients that timed out included)."""
        if not self.app.wait_idle(timeout):
            raise TimeoutError(f"the simulator was still handling requests after {timeout:g} s")

    def set_faults(self, spec: str) -> None:
        self.app.faults.set(spec)

    def set_rate_limits(self, read: tuple[int, int] | None = None,
                        overall: tuple[int, int] | None = None) -> None:
        self.app.limiter.set_limits(read=read, overall=overall)

    def reset_rate_usage(self) -> None:
        self.app.limiter.reset()
