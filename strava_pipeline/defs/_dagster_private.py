"""Every import from Dagster's private modules, in one place: the one file to fix on a Dagster upgrade.

Dagster exposes no public name for these; each is used for a reason given beside it.
"""

# Which materialisation an asset-check evaluation judged: the checks record one evaluation per partition of
# a ranged run themselves (AssetCheckResult has no partition), and the UI counts a partition's evaluation
# only when it names that partition's latest materialisation.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

# The type ``define_asset_job`` returns, for annotations of the schedule and sensor builders.
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# What the event log stores for a check, to store a run's per-day check results in bulk
# (``defs.check_result_batches``): Dagster's PostgreSQL event log stores each with its own statements.
from dagster._core.errors import DagsterInvariantViolationError

# The event type that carries a run's process id (RUN_START), to tell a killed run from a live one.
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry

# Where ``execute_in_process`` turns on keeping every step's output value for its result: the CLI's
# backfills turn it off (``cli.backfill``), as a quarter's raw payloads stayed in memory for the whole run.
from dagster._core.execution import execute_in_process as in_process_execution

# How an in-process step waits for a concurrency-pool slot: patched so it sleeps between claims and says
# who holds the slot (Dagster 1.13 polls without sleeping and logs the wait at DEBUG only).
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

# Where a run's job lives (code location, repository): set on the CLI's in-process runs, since the UI's
# Overview timeline skips every run without one and the runs list cannot link it to its job.
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

# The run tags that make one run cover a range of daily partitions (what the UI's backfills set).
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "AssetCheckEvaluationTargetMaterializationData",
    "AssetCheckExecutionRecordStatus",
    "DagsterEventType",
    "DagsterInvariantViolationError",
    "EventLogEntry",
    "InstanceConcurrencyContext",
    "LoadableTargetOrigin",
    "ManagedGrpcPythonEnvCodeLocationOrigin",
    "RemoteJobOrigin",
    "RemoteRepositoryOrigin",
    "UnresolvedAssetJobDefinition",
    "in_process_execution",
]
