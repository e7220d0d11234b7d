"""A bad database URL fails loudly but never prints its password, whichever way it is bad.

The command runs in a subprocess because what leaks is what reaches the terminal: the exception message
and the traceback Python prints (psycopg's conninfo errors echo the whole URL).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from strava_pipeline.storage import databases
from strava_pipeline.storage.databases import DatabaseUrlError, mask_url, normalize_database_url

#: Spelled out, not imported: the name users set is the contract.
DATABASE_URL_ENV = "STRAVA_PIPELINE_DATABASE_URL"
SECRET = "s3cr3tPW"

BAD_URLS = {
    # SQLAlchemy-style: converted to plain postgresql://, then nothing listens on localhost:5432 (or auth fails).
    "sqlalchemy_driver": f"postgresql+psycopg2://user:{SECRET}@localhost:5432/db",
    "port_not_a_number": f"postgres://user:{SECRET}@host:notaport/db",
    "unresolvable_host": f"postgresql://user:{SECRET}@nohost.invalid/db",
    # libpq splits at the first '@', so the rest of the password would become (and be shown as) the host.
    "raw_at_in_password": f"postgresql://user:{SECRET}@x@localhost:1/db",
    # Valid URL, decoded password "s3cr3tPW@x": the message must hide both spellings.
    "encoded_at_in_password": f"postgresql://user:{SECRET}%40x@localhost:1/db",
    "bad_percent_encoding": f"postgresql://user:{SECRET}%ZZ@localhost:1/db",
    "password_in_query": f"postgresql://localhost:1/db?user=user&password={SECRET}",
    "unclosed_ipv6_bracket": f"postgresql://user:{SECRET}@[::1/db",
}


def _clean_env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRAVA", "DAGSTER", "PG"))}
    env[DATABASE_URL_ENV] = url
    env["STRAVA_PIPELINE_DATA_DIR"] = str(tmp_path / "data")
    return env


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_db_migrate_with_a_bad_url_fails_naming_the_variable_without_the_password(url: str, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "strava_pipeline.cli", "db", "migrate"],
        env=_clean_env(tmp_path, url), cwd=cwd, capture_output=True, text=True, timeout=60,
    )
    output = result.stdout + result.stderr
    assert SECRET not in output, output
    assert "s3cr3t" not in output.lower(), output
    assert DATABASE_URL_ENV in output, output
    assert result.returncode != 0, output


_OPEN_INSTANCE = """
import os
from strava_pipeline.cli.runtime import dagster_instance, pipeline_environment
from strava_pipeline.settings import Settings
with pipeline_environment(Settings.from_env()) as settings, dagster_instance() as instance:
    print(settings.database_url == os.environ["STRAVA_PIPELINE_DATABASE_URL"], settings.database_url.split(":")[0])
    print("runs", instance.get_runs_count())
"""


@pytest.mark.parametrize("scheme", ["postgresql+psycopg2", "postgresql+psycopg", "postgres"])
def test_sqlalchemy_and_postgres_schemes_are_converted_for_psycopg_and_dagster(
    scheme: str, pg_url: str, tmp_path: Path
) -> None:
    """The converted URL is the one exported: psycopg (migrations) and dagster-postgres (SQLAlchemy, which
    rejects ``postgres://``) both open it."""
    url = scheme + pg_url.removeprefix("postgresql")
    result = subprocess.run(
        [sys.executable, "-c", _OPEN_INSTANCE],
        env=_clean_env(tmp_path, url), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["True", "postgresql", "runs", "0"], result.stdout


def test_connect_scrubs_the_password_from_psycopg_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg's message may quote the conninfo (encoded or decoded); none of it survives, nor the chain."""
    url = f"postgresql://user:{SECRET}%40x@localhost:1/db?sslpassword={SECRET}2"

    def failing_connect(conninfo: str, **kwargs: object) -> None:
        raise psycopg.OperationalError(f"bad conninfo {conninfo!r} for password '{SECRET}@x'")

    monkeypatch.setattr(databases.psycopg, "connect", failing_connect)
    with pytest.raises(databases.DatabaseConnectionError) as caught:
        databases.connect(url)
    assert isinstance(caught.value, psycopg.OperationalError)
    assert SECRET not in str(caught.value)
    assert DATABASE_URL_ENV in str(caught.value)
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:pw@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("postgresql://user:@host/db", "postgresql://user:***@host/db"),
        ("postgresql+psycopg2://u:p%40ss@h/db", "postgresql+psycopg2://u:***@h/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://postgres@/postgres?host=/tmp/x", "postgresql://postgres@/postgres?host=/tmp/x"),
        ("postgresql://h/db?user=u&password=pw&sslmode=require", "postgresql://h/db?user=u&password=***&sslmode=require"),
        ("postgresql://u:pw@[::1/db", "postgresql://u:***@[::1/db"),
        ("host=h user=u password=pw dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='p w' dbname=d", "host=h password=*** dbname=d"),
        ("not a url", "not a url"),
    ],
)
def test_mask_url_hides_every_password_spelling(url: str, expected: str) -> None:
    assert mask_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg2://u:pw@h:5432/db", "postgresql://u:pw@h:5432/db"),
        ("postgresql+psycopg://u:pw@h/db", "postgresql://u:pw@h/db"),
        ("postgres://u:pw@h/db", "postgresql://u:pw@h/db"),
        ("postgresql://postgres@/postgres?host=/tmp/x", "postgresql://postgres@/postgres?host=/tmp/x"),
        ("postgresql://u:p%40ss@h1:5432,h2:5433/db", "postgresql://u:p%40ss@h1:5432,h2:5433/db"),
        ("postgresql://u:pw@[::1]:5432/db", "postgresql://u:pw@[::1]:5432/db"),
    ],
)
def test_normalize_accepts_libpq_and_sqlalchemy_spellings(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://u:pw@h/db", "scheme"),
        ("host=h password=pw", "postgresql://"),
        ("postgresql://u:pw@h:notaport/db", "port"),
        ("postgresql://u:pw@h:70000/db", "port"),
        ("postgresql://u:p@w@h/db", "%40"),
        ("postgresql://u:p/w@h/db", "(?i)percent-encode"),
        ("postgresql://u:p%zzw@h/db", "%25"),
        ("postgresql://u:pw@[::1/db", r"\]"),
    ],
)
def test_normalize_refuses_malformed_urls_with_the_password_masked(url: str, reason: str) -> None:
    with pytest.raises(DatabaseUrlError, match=reason) as caught:
        normalize_database_url(url)
    message = str(caught.value)
    assert DATABASE_URL_ENV in message
    assert "pw" not in message.replace("password", "")
    assert isinstance(caught.value, ValueError)
