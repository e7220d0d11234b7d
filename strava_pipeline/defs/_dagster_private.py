"""Every import from Dagster's private modules, in one place: the one file to fix on a Dagster upgrade.

Dagster exposes no public name for these; each is used for a reason given beside it.
"""

# The type ``define_asset_job`` returns, for annotations of the schedule and sensor builders.
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# The event type that carries a run's process id (RUN_START), to tell a killed run from a live one.
from dagster._core.events import DagsterEventType

# How an in-process step waits for a concurrency-pool slot: patched so it sleeps between claims and says
# who holds the slot (Dagster 1.13 polls without sleeping and logs the wait at DEBUG only).
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

# The run tags that make one run cover a range of daily partitions (what the UI's backfills set).
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG", "ASSET_PARTITION_RANGE_START_TAG", "DagsterEventType",
    "InstanceConcurrencyContext", "UnresolvedAssetJobDefinition",
]
