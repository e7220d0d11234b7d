"""Fixtures that start a real FitTrackee (see ``instance.py``), shared by the unit and end-to-end tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from strava_pipeline.storage.databases import create_database, drop_database
from strava_pipeline.storage.embedded_postgres import EmbeddedPostgres
from strava_pipeline_tests.fittrackee.instance import (
    FitTrackeeInstance,
    fittrackee_instance,
    fittrackee_venv,
    redis_server,
    tile_server,
)


@pytest.fixture(scope="session")
def fittrackee_env() -> Path:
    """FitTrackee's virtualenv (created once per version, then cached)."""
    return fittrackee_venv()


@pytest.fixture(scope="session")
def fittrackee_redis(fittrackee_env: Path) -> Iterator[str]:
    with redis_server(fittrackee_env) as url:
        yield url


@pytest.fixture(scope="session")
def fittrackee_tiles() -> Iterator[str]:
    with tile_server() as url:
        yield url


@pytest.fixture(scope="session")
def make_fittrackee(pg_server: EmbeddedPostgres, fittrackee_env: Path, fittrackee_redis: str,
                    fittrackee_tiles: str) -> Iterator[Callable[..., FitTrackeeInstance]]:
    """Start a FitTrackee on its own database (and Redis database number); all stopped at the end."""
    stack = ExitStack()
    counter = iter(range(1, 16))

    def make(*, rate_limits: str = "300 per 5 minutes") -> FitTrackeeInstance:
        configured = os.environ.get("FITTRACKEE_TEST_DATABASE_URL")
        if configured:  # a PostGIS-enabled server, for FitTrackee 1.x
            url = configured
        else:
            name = f"fittrackee_{uuid.uuid4().hex[:10]}"
            url = create_database(pg_server.url, name)
            stack.callback(drop_database, pg_server.url, name)
        return stack.enter_context(fittrackee_instance(url, f"{fittrackee_redis}/{next(counter)}", fittrackee_tiles,
                                                       rate_limits=rate_limits, venv=fittrackee_env))

    with stack:
        yield make


@pytest.fixture(scope="session")
def fittrackee(make_fittrackee: Callable[..., FitTrackeeInstance]) -> FitTrackeeInstance:
    """A FitTrackee with its default rate limit (300 requests per 5 minutes per route), shared by a session."""
    return make_fittrackee()
