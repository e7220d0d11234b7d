"""Every column of every table is documented once (``transforms.column_docs``), and that text is what both
the Dagster UI (the assets' column schema) and PostgreSQL (``COMMENT ON COLUMN``, after the migrations)
show."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import psycopg

from strava_pipeline.defs import build_definitions
from strava_pipeline.settings import Settings
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline.transforms.column_docs import COLUMN_DOCS, SCHEMA, column_comments_sql

#: Tables of schema strava still waiting for their descriptions, each with the reason. A new table fails
#: this test until its columns are in COLUMN_DOCS and a migration comments them.
NOT_YET_DOCUMENTED = {
    "fittrackee_workouts": "the FitTrackee sink's bookkeeping table (0013), being written concurrently",
}

_COMMENTS = """
SELECT c.table_name, c.column_name,
       col_description(format('%%I.%%I', c.table_schema, c.table_name)::regclass, c.ordinal_position)
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'
ORDER BY c.table_name, c.ordinal_position
"""


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        client_id=None, client_secret=None, refresh_token=None, base_url="http://127.0.0.1:9", data_dir=tmp_path,
        token_file=tmp_path / "tokens.json", history_start=date(2020, 1, 1), database_url=None,
        timezone="UTC", rate_window_seconds=900, sync_lookback_days=3, sensor_interval_seconds=1800,
        request_timeout_seconds=60.0,
    )


def _dagster_columns(tmp_path: Path) -> dict[str, dict[str, str | None]]:
    """asset -> column -> description, from each table asset's definition metadata (what the UI shows)."""
    tables: dict[str, dict[str, str | None]] = {}
    for asset in build_definitions(_settings(tmp_path)).assets or ():
        assert isinstance(asset, dg.AssetsDefinition)
        for spec in asset.specs:
            schema = (spec.metadata or {}).get("dagster/column_schema")
            if isinstance(schema, dg.TableSchemaMetadataValue):
                schema = schema.schema
            if schema is not None:
                tables[spec.key.to_user_string()] = {c.name: c.description for c in schema.columns}
    return tables


def test_every_column_of_every_table_asset_has_its_description_in_the_ui(tmp_path: Path) -> None:
    tables = _dagster_columns(tmp_path)
    assert set(tables) >= {"activities", "activity_streams", "activity_metrics", "athlete", "weekly_summary"}
    for table, columns in tables.items():
        missing = [c for c, text in columns.items() if not text]
        assert not missing, f"{table}: columns without a description in COLUMN_DOCS: {missing}"
        assert columns == dict(COLUMN_DOCS[table]), f"{table}: the asset's columns differ from COLUMN_DOCS"


def test_every_column_of_every_table_has_the_same_comment_in_postgresql(pg_url: str, tmp_path: Path) -> None:
    apply_migrations(pg_url)
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(_COMMENTS, (SCHEMA,)).fetchall()
    database: dict[str, dict[str, str | None]] = {}
    for table, column, comment in rows:
        database.setdefault(table, {})[column] = comment

    undocumented = set(database) - set(COLUMN_DOCS) - set(NOT_YET_DOCUMENTED)
    assert not undocumented, f"tables without descriptions in transforms/column_docs.py: {sorted(undocumented)}"
    for table, docs in COLUMN_DOCS.items():
        assert set(database.get(table, {})) == set(docs), f"{table}: COLUMN_DOCS and the table's columns differ"
        stale = {column: text for column, text in docs.items() if database[table][column] != text}
        assert not stale, (
            f"{table}: PostgreSQL's comments differ from COLUMN_DOCS; add a migration with:\n"
            + column_comments_sql({table: stale})
        )
    # The UI documents the same columns the database does, table by table.
    for table, columns in _dagster_columns(tmp_path).items():
        assert columns == database[table], f"{table}: the UI's and PostgreSQL's descriptions differ"


def test_comment_statements_quote_keywords_and_apostrophes() -> None:
    sql = column_comments_sql({"gear": {"primary": "The athlete's default bike"}})
    assert sql == 'COMMENT ON COLUMN "strava"."gear"."primary" IS \'The athlete\'\'s default bike\';\n'
