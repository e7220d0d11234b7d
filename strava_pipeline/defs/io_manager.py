"""The IO manager every table asset uses: PostgreSQL and Parquet, partition by partition.

Re-materialising a partition replaces exactly that partition in both stores, all or nothing
(:mod:`storage.partition_switch`): the Parquet files are staged, PostgreSQL deletes the partition's rows
and COPYs the new ones in one transaction that also records the switch, and only then are the staged files
renamed into place. A run killed in between is finished (or undone) by the next read or write of the
asset. A day with no rows loses its file, so stale rows disappear. Downstream assets read Parquet, so
rebuilding derived tables needs neither the API nor the database.
"""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import psycopg

from strava_pipeline.defs.metadata import frame_metadata, total_rows_metadata
from strava_pipeline.ingest.stream_plan import committed_keys
from strava_pipeline.storage.embedded_postgres import resolve_database_url
from strava_pipeline.storage.landing_cache import LandingCache
from strava_pipeline.storage.migrations import apply_migrations
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.storage.partition_switch import PartitionSwitcher
from strava_pipeline.storage.postgres_writer import PartitionWriteError

#: PostgreSQL schema holding every table the pipeline writes.
DB_SCHEMA = "strava"
#: Which switch wrote each partition of each table (see storage.partition_switch).
VERSIONS_TABLE = f"{DB_SCHEMA}.partition_versions"
#: Every partitioned table holds an activity's rows in one day (its local date): writing an activity into
#: a day removes it from the day it was in, in both stores, so a moved start lands instead of violating
#: the tables' unique ids.
ENTITY_KEY = "activity_id"

_migration_lock = threading.Lock()
_migrated: set[str] = set()


def ready_database_url(configured_url: str | None, data_dir: Path) -> str:
    """The database URL, with the embedded server started if needed and migrations applied once."""
    url = resolve_database_url(configured_url, data_dir)
    with _migration_lock:
        if url not in _migrated:
            apply_migrations(url)
            _migrated.add(url)
    return url


def partition_column_of(definition_metadata: Any) -> str:
    """Partitioned assets declare which column holds their partition date."""
    column = (definition_metadata or {}).get("partition_column")
    if not column:
        raise dg.DagsterInvariantViolationError(
            "partitioned assets written by the warehouse IO manager need metadata 'partition_column'"
        )
    return str(column)


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Writes polars frames to ``strava.<asset>`` in PostgreSQL and to ``<data dir>/parquet/<asset>``."""

    data_dir: str
    database_url: str | None = None

    @property
    def parquet(self) -> ParquetStore:
        """The Parquet side of the warehouse."""
        return ParquetStore(Path(self.data_dir) / "parquet")

    def connection_url(self) -> str:
        """The PostgreSQL URL (configured, or the embedded server under the data dir)."""
        return ready_database_url(self.database_url, Path(self.data_dir))

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        """Replace the output's partitions (or the whole table) in both stores as one switch."""
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()} must return a polars DataFrame")
        asset = context.asset_key.path[-1]
        table = f"{DB_SCHEMA}.{asset}"
        partitions: list[date] | None = None
        column: str | None = None
        if context.has_asset_partitions:
            column = partition_column_of(context.definition_metadata)
            partitions = [date.fromisoformat(key) for key in context.asset_partition_keys]
        try:
            switcher = self.switcher()
        except psycopg.OperationalError as exc:  # migrations run on first use: this is the first connection
            which = f"{partitions[0]}..{partitions[-1]}" if partitions else "the whole table"
            raise PartitionWriteError(
                f"cannot reach PostgreSQL to write {table} ({which}); nothing was written: {exc}"
            ) from None
        result = switcher.replace(
            asset,
            table,
            obj,
            partition_column=column,
            partitions=partitions,
            entity_key=ENTITY_KEY if partitions is not None and ENTITY_KEY in obj.columns else None,
        )
        if partitions is not None:
            location = str(Path(self.data_dir) / "parquet" / asset)
            written = len(partitions)
        else:
            location = str(self.parquet.unpartitioned_path(asset))
            written = 1
        for line in result.recovered:
            context.log.warning(line)
        extra: dict[str, Any] = {}
        if result.moved_from:
            # An activity whose start moved to another day: it left these days in both stores.
            extra["moved_from_days"] = dg.MetadataValue.json(
                {d.isoformat(): n for d, n in sorted(result.moved_from.items())}
            )
        if cache := (context.definition_metadata or {}).get("landing_cache"):
            # Committed in both stores: the write-ahead copies of these rows are now redundant.
            LandingCache(Path(self.data_dir) / "landing" / str(cache)).discard(committed_keys(obj))
        # The UI's "Row count": the whole table's, not this run's.
        context.add_output_metadata(total_rows_metadata(self.connection_url(), table, VERSIONS_TABLE))
        context.add_output_metadata(
            frame_metadata(
                obj, partitions=written, postgres_table=table, parquet_path=dg.MetadataValue.path(location), **extra
            )
        )

    def switcher(self) -> PartitionSwitcher:
        """Writes both stores as one switch, and finishes or undoes switches a killed run left behind."""
        return PartitionSwitcher(self.parquet, self.connection_url(), versions_table=VERSIONS_TABLE)

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        """Read the upstream asset's partitions (or whole table) from Parquet, after finishing any switch of
        it that a killed run left half done (so a downstream asset never computes from the old copy)."""
        asset = context.asset_key.path[-1]
        if PartitionSwitcher.has_pending(self.parquet, asset):
            for line in self.switcher().recover(asset):
                context.log.warning(line)
        if context.has_asset_partitions:
            days = [date.fromisoformat(key) for key in context.asset_partition_keys]
            return self.parquet.read(asset, days)
        return self.parquet.read(asset)
