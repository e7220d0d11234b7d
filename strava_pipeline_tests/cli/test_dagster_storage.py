"""Several processes opening the Dagster instance on a new database at once (two backfills started
together, or the UI's daemon and webserver) all succeed: Dagster's tables are created exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg

PROCESSES = 4

# Each child imports everything first, says so, and opens the instance only when the test says go, so
# the processes reach Dagster's table creation together rather than a Dagster import (~2 s) apart.
CHILD = textwrap.dedent("""
    import sys
    from strava_pipeline.cli.runtime import dagster_instance, pipeline_environment
    from strava_pipeline.settings import Settings

    print("ready", flush=True)
    sys.stdin.readline()
    with pipeline_environment(Settings.from_env()), dagster_instance() as instance:
        print("runs:", len(instance.get_run_records()), flush=True)
""")


def test_processes_opening_the_instance_together_on_a_new_database_all_succeed(pg_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRAVA", "DAGSTER"))}
    children = []
    for n in range(PROCESSES):
        child_env = {**env, "STRAVA_PIPELINE_DATABASE_URL": pg_url, "STRAVA_PIPELINE_DATA_DIR": str(tmp_path / f"d{n}")}
        children.append(subprocess.Popen([sys.executable, "-c", CHILD], env=child_env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n", child.communicate()[0]
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=120)[0] for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert [child.returncode for child in children] == [0] * PROCESSES, "\n----\n".join(outputs)
    assert all(out.strip().endswith("runs: 0") for out in outputs), outputs
    # dagster-postgres retries a creation that collided with another process's, and logs this warning:
    # the collisions its retry does not cover (``type "instigators" already exists``) are what failed runs.
    assert not any("Retrying failed database creation" in out for out in outputs), outputs
    with psycopg.connect(pg_url) as conn:
        stamped = conn.execute("SELECT count(*) FROM alembic_version").fetchone()
    assert stamped == (1,)  # one migration history, stamped once
