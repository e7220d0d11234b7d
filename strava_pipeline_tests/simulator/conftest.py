"""Fixtures for the simulator tests: a running simulator, an authorised client, the recordings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from strava_pipeline.simulator import ManualClock, SimulatorConfig, StravaSimulator

# CI clones the repo with `shared/` beside it; locally that is /work/shared.
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "strava"
RECORDINGS = SHARED / "recordings"
FULL_SCOPE = "read,activity:read_all,profile:read_all"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a multiple of 900 and of 86400


def shared_available() -> bool:
    return (SHARED / "models.schema.json").exists()


needs_shared = pytest.mark.skipif(not shared_available(), reason=f"reference material not found at {SHARED}")


@cache
def cassette(relpath: str) -> list[dict[str, Any]]:
    """Interactions of a VCR cassette (Ruby VCR `http_interactions` or vcrpy `interactions`)."""
    data = yaml.safe_load((RECORDINGS / relpath).read_text())
    return data.get("http_interactions") or data.get("interactions") or []


def cassette_bodies(relpath: str) -> list[tuple[str, int, Any]]:
    """(uri, status, parsed JSON body) for every interaction whose body is JSON."""
    out = []
    for it in cassette(relpath):
        raw = it["response"]["body"]["string"]
        try:
            body = json.loads(raw)
        except (TypeError, ValueError):
            continue
        out.append((it["request"]["uri"], it["response"]["status"]["code"], body))
    return out


class Api:
    """A tiny Strava client for tests: one keep-alive session, bearer auth, no retries."""

    def __init__(self, sim: StravaSimulator, token: str | None) -> None:
        self.sim = sim
        self.session = requests.Session()
        self.token = token

    def get(self, path: str, token: str | None = None, **params: Any) -> requests.Response:
        tok = token if token is not None else self.token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return self.session.get(self.sim.base_url + "/api/v3" + path, params=params, headers=headers, timeout=10)

    def post_oauth(self, path: str, **data: Any) -> requests.Response:
        return self.session.post(self.sim.base_url + path, data=data, timeout=10)

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.post_oauth("/oauth/token", client_id=self.sim.client_id, client_secret=self.sim.client_secret,
                               grant_type="refresh_token", refresh_token=refresh_token)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + 12 * 3600 + 5)


@pytest.fixture
def config(clock: ManualClock) -> SimulatorConfig:
    return SimulatorConfig(seed=7, start_date=date(2025, 1, 1), end_date=date(2025, 12, 31), activities=80,
                           clock=clock, read_limit=(10_000, 100_000), overall_limit=(20_000, 200_000))


@pytest.fixture
def sim(config: SimulatorConfig) -> Iterator[StravaSimulator]:
    with StravaSimulator(config) as running:
        yield running


@pytest.fixture
def api(sim: StravaSimulator) -> Api:
    return Api(sim, sim.authorize(FULL_SCOPE)["access_token"])


@pytest.fixture
def make_api(sim: StravaSimulator):
    def make(scope: str) -> Api:
        return Api(sim, sim.authorize(scope)["access_token"])

    return make
