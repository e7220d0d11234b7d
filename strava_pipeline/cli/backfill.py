"""Headless backfills: materialise a date range in batches, in this process, without a daemon.

For cron, CI and the demo. Each batch is one Dagster run recorded in the instance (visible in the UI)
covering up to ``MAX_PARTITIONS_PER_RUN`` days, the same batching the UI's backfill policy uses, so a
multi-year backfill costs one activity listing per batch and commits each batch as it completes: an
interrupted backfill keeps every finished batch.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import requests

from strava_pipeline.cli.progress import CommandProgress
from strava_pipeline.defs import build_definitions
from strava_pipeline.defs._dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    LoadableTargetOrigin,
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
    in_process_execution,
)
from strava_pipeline.defs.assets.streams import STREAMS_CACHE, StreamsConfig
from strava_pipeline.defs.automation import SYNC_JOB_NAME
from strava_pipeline.defs.partitions import MAX_PARTITIONS_PER_RUN, PARTITION_COLUMN
from strava_pipeline.defs.resources import LandedDataResource, strava_client
from strava_pipeline.ingest.changes import days_between
from strava_pipeline.ingest.prefetch import StreamPrefetcher
from strava_pipeline.settings import Settings
from strava_pipeline.storage.parquet_store import ParquetStore
from strava_pipeline.transforms.sport_filter import parse_sport_types


@dataclass
class BackfillReport:
    """What a headless backfill did, run by run."""

    run_ids: list[str] = field(default_factory=list)
    batches: list[tuple[date, date]] = field(default_factory=list)
    #: Every asset-check evaluation of the runs, in run order.
    checks: list[dg.AssetCheckEvaluation] = field(default_factory=list)


class BackfillUsageError(ValueError):
    """Arguments that name nothing to do (a range ending before it starts, an unknown asset): exit 2."""


class ApiAccessError(RuntimeError):
    """The selected assets call Strava, which cannot be reached as configured; ``exit_code`` 2 when a setting
    is wrong (no credentials, a wrong STRAVA_BASE_URL), 1 when the network is."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: The code location ``strava-pipeline ui`` serves (its module, and Dagster's name for it).
CODE_LOCATION = "strava_pipeline.definitions"
#: Dagster's name for the one repository of a ``Definitions`` object.
REPOSITORY = "__repository__"
#: The job of ``import``'s runs (``defs.automation.build_archive_jobs``); backfill and sync runs are ``sync_days``.
ARCHIVE_JOB_NAME = "archive_days"
#: Tags on every run a command makes (beside Dagster's partition-range tags): the runs list shows them.
COMMAND_TAG = "strava_pipeline/command"
RANGE_TAG = "strava_pipeline/range"
BATCH_TAG = "strava_pipeline/batch"
#: Assets that call Strava need this resource.
STRAVA_RESOURCE = "strava"
#: How long the check that STRAVA_BASE_URL answers at all may take.
CONNECT_CHECK_SECONDS = 5.0


def job_origin(job_name: str) -> RemoteJobOrigin:
    """Where the UI finds ``job_name``: the code location ``strava-pipeline ui`` serves. A run carrying it is
    listed under that job and drawn on the Overview timeline (which skips runs without an origin)."""
    target = LoadableTargetOrigin(executable_path=sys.executable, module_name=CODE_LOCATION)
    location = ManagedGrpcPythonEnvCodeLocationOrigin(loadable_target_origin=target, location_name=CODE_LOCATION)
    return RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(location, REPOSITORY), job_name=job_name)


@contextmanager
def _runs_created_with_origin(instance: dg.DagsterInstance, origin: RemoteJobOrigin) -> Iterator[None]:
    """Give the runs ``execute_in_process`` creates on ``instance`` a code-location origin.

    Dagster's in-process execution records none and takes none; the instance's ``create_run_for_job`` does,
    so it is wrapped on this one instance object for the call (the CLI creates runs from its main thread).
    """
    original = instance.create_run_for_job

    def create_run_for_job(*args: object, **kwargs: object) -> dg.DagsterRun:
        kwargs.setdefault("remote_job_origin", origin)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    instance.create_run_for_job = create_run_for_job  # type: ignore[method-assign]
    try:
        yield
    finally:
        del instance.create_run_for_job  # the class's method again


def check_range(start: date, end: date, *, history_start: date, timezone: str) -> None:
    """Refuse a range that names no day to backfill, saying which argument to change and how."""
    today = datetime.now(ZoneInfo(timezone)).date()
    if start > today:
        raise BackfillUsageError(f"--start {start} is in the future (today is {today} in {timezone}, "
                                 "STRAVA_PIPELINE_TIMEZONE): give a date up to today")
    if end < history_start:
        raise BackfillUsageError(f"--end {end} is before STRAVA_HISTORY_START {history_start}: nothing to "
                                 "backfill; give a later --end, or set an earlier STRAVA_HISTORY_START")
    if start > end:
        raise BackfillUsageError(f"--start {start} is after --end {end}: give the earlier date as --start")


def calls_strava(definitions: dg.Definitions, select: Sequence[str] | None) -> bool:
    """Whether any selected asset (every asset when ``select`` is None) calls the Strava API."""
    assets = [a for a in definitions.assets or () if isinstance(a, dg.AssetsDefinition)]
    return any(STRAVA_RESOURCE in a.required_resource_keys for a in _select(assets, select))


def check_api_access(settings: Settings) -> None:
    """Fail in seconds, naming the setting, when Strava cannot be used: no credentials, or nothing listening
    at STRAVA_BASE_URL (the client would retry a refused connection for half a minute, then say "try again
    later"). Costs no API request: only a TCP connection is opened (skipped behind a proxy)."""
    if not (settings.client_id and settings.client_secret):
        raise ApiAccessError(
            "no Strava API credentials: set STRAVA_CLIENT_ID and STRAVA_CLIENT_SECRET (your API application, "
            "https://www.strava.com/settings/api) and run `strava-pipeline auth`; or try `strava-pipeline demo` "
            "(a simulated athlete), or `strava-pipeline import PATH` (an export archive, no credentials needed)"
        )
    url = settings.base_url
    configured = bool(os.environ.get("STRAVA_BASE_URL"))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiAccessError(f"STRAVA_BASE_URL={url} is not an http(s) URL: unset it for https://www.strava.com, "
                             "or give the simulator's address, e.g. http://127.0.0.1:8765")
    if requests.utils.get_environ_proxies(url):
        return  # the proxy is what we would connect to; the client reports what it says
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ApiAccessError(f"STRAVA_BASE_URL={url} has an invalid port ({exc})") from None
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_CHECK_SECONDS).close()
    except OSError as exc:
        reason = ("host not found" if isinstance(exc, socket.gaierror) else "connection refused"
                  if isinstance(exc, ConnectionRefusedError) else f"no answer in {CONNECT_CHECK_SECONDS:.0f} s"
                  if isinstance(exc, TimeoutError) else exc.strerror or type(exc).__name__)
        if configured:
            raise ApiAccessError(f"STRAVA_BASE_URL={url} is unreachable ({reason}): check the URL (unset it for "
                                 "https://www.strava.com; the simulator runs with `strava-pipeline simulate`)"
                                 ) from None
        raise ApiAccessError(f"cannot reach {url} ({reason}; STRAVA_BASE_URL): check the network connection, "
                             "then run the command again", exit_code=1) from None


def preflight(settings: Settings, start: date, end: date, select: Sequence[str] | None) -> None:
    """A command's checks of its arguments and settings, made before the database starts: each mistake is one
    message naming the argument or variable (``BackfillUsageError``, ``ApiAccessError``)."""
    check_range(start, end, history_start=settings.history_start, timezone=settings.timezone)
    if calls_strava(build_definitions(settings), select):
        check_api_access(settings)


def date_batches(start: date, end: date, size: int = MAX_PARTITIONS_PER_RUN) -> Iterator[tuple[date, date]]:
    """Split an inclusive date range into consecutive inclusive batches of at most ``size`` days."""
    current = start
    while current <= end:
        last = min(end, current + timedelta(days=size - 1))
        yield current, last
        current = last + timedelta(days=1)


#: Dagster's own switches for writing a ranged run's events in bulk. Batch size: each output's per-day
#: materialisation events go to the event log in one INSERT (PostgreSQL storage) instead of one round
#: trip each. Planned subset: one "materialisation planned" event per asset for a run's whole day range
#: instead of one per day. The price of the second is Dagster's: partitions of a failed headless batch
#: show as missing, not failed, in the UI (the command itself reports the failure and raises).
EVENT_BATCHING_ENV = {"DAGSTER_EVENT_BATCH_SIZE": "1000", "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}


@contextmanager
def batched_event_writes() -> Iterator[None]:
    """Turn on Dagster's bulk event writes for the duration of a headless backfill, then restore.

    Without them, a year of daily partitions costs two event-log writes per asset and day, which
    dominated a backfill over a sparse history (a 1,000-activity, two-year ingest spent more time
    recording empty days than loading samples). Values the user exported win.
    """
    saved = {name: os.environ.get(name) for name in EVENT_BATCHING_ENV}
    for name, value in EVENT_BATCHING_ENV.items():
        os.environ.setdefault(name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start_prefetch(settings: Settings) -> StreamPrefetcher | None:
    """A prefetcher of the coming batches' streams (see ``StreamPrefetcher``), if there are credentials.

    Its client never waits for a rate-limit window (``max_wait_seconds=0``): it only spends budget that is
    free right now, and when that runs out the runs' own requests wait as usual.
    """
    if not (settings.client_id and settings.client_secret):
        return None
    client = strava_client(settings, max_wait_seconds=0)
    store = ParquetStore(settings.parquet_dir)
    return StreamPrefetcher(
        client,
        LandedDataResource(data_dir=str(settings.data_dir)).landing_cache(STREAMS_CACHE),
        lambda asset, days, columns: store.read(asset, days, columns=columns),
        StreamsConfig().max_concurrent_requests,
        parse_sport_types(settings.sport_types),
    )


def _holds(assets: Sequence[dg.AssetsDefinition], name: str) -> bool:
    return any(a.key.to_user_string() == name for a in assets)


def _select(assets: Sequence[dg.AssetsDefinition], names: Sequence[str] | None) -> list[dg.AssetsDefinition]:
    known = {a.key.to_user_string(): a for a in assets}
    if not names:
        return list(assets)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BackfillUsageError(f"--select: unknown asset(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [known[n] for n in names]


def _batch_size(asset: dg.AssetsDefinition, cap: int) -> int:
    """Days per run for an asset: its backfill policy's limit, never more than ``cap``."""
    policy = asset.backfill_policy
    limit = policy.max_partitions_per_run if policy is not None else None
    return min(cap, limit) if limit else cap


def _policy_groups(assets: Sequence[dg.AssetsDefinition], cap: int) -> list[list[dg.AssetsDefinition]]:
    """Consecutive assets (in dependency order) that share a batch size run together."""
    groups: list[list[dg.AssetsDefinition]] = []
    for asset in assets:
        if groups and _batch_size(groups[-1][0], cap) == _batch_size(asset, cap):
            groups[-1].append(asset)
        else:
            groups.append([asset])
    return groups


def _downstream_of_partitioned(assets: Sequence[dg.AssetsDefinition]) -> set[dg.AssetKey]:
    """Unpartitioned assets fed (directly or not) by partitioned ones: they run after every batch."""
    late = {a.key for a in assets if a.partitions_def is not None}
    changed = True
    while changed:
        changed = False
        for a in assets:
            if a.key not in late and late & set(a.dependency_keys):
                late.add(a.key)
                changed = True
    return {a.key for a in assets if a.partitions_def is None and a.key in late}


def run_backfill(
    settings: Settings,
    start: date,
    end: date,
    *,
    select: Sequence[str] | None = None,
    definitions: dg.Definitions | None = None,
    instance: dg.DagsterInstance | None = None,
    batch_days: int = MAX_PARTITIONS_PER_RUN,
    progress: Callable[[str], None] | CommandProgress | None = None,
    log_level: str = "WARNING",
    refetch: bool = False,
    command: str = "backfill",
    job_name: str = SYNC_JOB_NAME,
) -> BackfillReport:
    """Materialise the selected assets for ``start..end`` (inclusive, local dates).

    Unpartitioned assets (the athlete profile) run once first; partitioned ones run batch by batch,
    each group of assets in batches of its own backfill policy's size (a year of summaries, a month of
    streams), upstream groups first; unpartitioned assets built from partitioned ones (the daily
    training load, weekly summary, report) run once last. The asset checks of the selected assets run
    with them (blocking ones stop a batch's downstream assets and fail it).
    While the runs load, the streams of the coming quarters are fetched ahead into the landing cache
    (each quarter as soon as its summaries have landed), so network time overlaps loading; a request
    is still made at most once per activity.
    A failed batch raises, leaving every earlier batch committed in both stores. Dagster's own event
    log lines go to the console from ``log_level`` up (the limiter's waits are warnings); every event is
    in the instance either way. ``definitions``: the process's code location (built from ``settings``
    when not given); its assets, checks and resources are what run.

    Each run is recorded as a run of the code location's job ``job_name`` (a subset of its assets), with
    the range, ``command`` and batch in its tags, so the UI's runs list and Overview timeline show it.
    ``progress``: a :class:`CommandProgress` the caller owns, or where its lines go (None: the terminal,
    live when it is one); the batches, counts and closing totals are reported there.
    """
    if definitions is None:
        definitions = build_definitions(settings)
    assets = [a for a in definitions.assets or () if isinstance(a, dg.AssetsDefinition)]
    selected = _select(assets, select)
    first = max(start, settings.history_start)
    partitions_def = next((a.partitions_def for a in assets if a.partitions_def is not None), None)
    last_key = partitions_def.get_last_partition_key() if partitions_def is not None else None
    if last_key is not None:
        end = min(end, date.fromisoformat(last_key))
    if end < first:
        raise BackfillUsageError(f"nothing to backfill: {start}..{end} ends before STRAVA_HISTORY_START "
                                 f"{settings.history_start} (or after today)")
    with contextlib.ExitStack() as stack:
        if instance is None:
            # One instance for every batch (an ephemeral instance per run costs ~0.3 s of set-up each),
            # disposed at the end so its temporary directory goes with it.
            instance = stack.enter_context(dg.DagsterInstance.ephemeral())
        if not isinstance(progress, CommandProgress):
            progress = stack.enter_context(CommandProgress(progress))
        tags = {COMMAND_TAG: command, RANGE_TAG: f"{first}..{end}"}
        return _run_batches(settings, definitions, assets, selected, first, end, instance, batch_days, progress,
                            log_level, refetch, tags=tags, job_name=job_name)


def _run_batches(
    settings: Settings,
    definitions: dg.Definitions,
    assets: Sequence[dg.AssetsDefinition],
    selected: Sequence[dg.AssetsDefinition],
    first: date,
    end: date,
    instance: dg.DagsterInstance,
    batch_days: int,
    progress: CommandProgress,
    log_level: str,
    refetch: bool = False,
    *,
    tags: dict[str, str],
    job_name: str,
) -> BackfillReport:
    """The runs of :func:`run_backfill`, in order, on one instance."""
    runnable = [*assets, *(definitions.asset_checks or ())]
    resources = dict(definitions.resources or {})
    report = BackfillReport()
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    store = ParquetStore(settings.parquet_dir)
    runs = 0

    def run(group: Sequence[dg.AssetsDefinition], label: str, days: Sequence[date] = (),
            range_tags: dict[str, str] | None = None, final: bool = True) -> None:
        nonlocal runs
        runs += 1
        config = dict(run_config)
        if refetch and _holds(group, "streams_raw"):  # Dagster refuses config for an op the run does not hold
            config["ops"] = {"streams_raw": {"config": {"refetch": True}}}
        progress.batch_started(runs, label, [a.key.to_user_string() for a in group], days)
        run_tags = {**tags, BATCH_TAG: f"{runs}/{total}", **(range_tags or {})}
        result = _execute(runnable, group, resources, instance, job_name=job_name, tags=run_tags, run_config=config)
        report.run_ids.append(result.run_id)
        report.checks.extend(result.get_asset_check_evaluations())
        progress.batch_finished(result.run_id, samples=_rows_in_run(result, group, "activity_streams"),
                                final_for_days=final)
        if days and any(_holds(group, a) for a in ("activities", "activities_raw", "export_activities_raw")):
            progress.activities(_activities_by_day(store, days))

    late = _downstream_of_partitioned(assets)
    unpartitioned = [a for a in selected if a.partitions_def is None and a.key not in late]
    partitioned = [a for a in selected if a.partitions_def is not None]
    derived = [a for a in selected if a.key in late]
    groups = _policy_groups(partitioned, batch_days)
    batches = [list(date_batches(first, end, _batch_size(group[0], batch_days))) for group in groups]
    total = bool(unpartitioned) + sum(len(b) for b in batches) + bool(derived)
    progress.plan(total)
    progress.activities(_activities_by_day(store, days_between(first, end)))
    # Stream batches still to hand to the prefetcher, each once the summaries of all its days have landed.
    ahead = next((list(b) for g, b in zip(groups, batches, strict=True) if _holds(g, "streams_raw")), [])
    lists_summaries = _holds(partitioned, "activities_raw")
    # A forced refetch requests everything itself (the prefetcher would reuse what it finds landed).
    prefetcher = _start_prefetch(settings) if ahead and not refetch else None

    def prefetch_through(landed_until: date) -> None:
        while prefetcher is not None and ahead and ahead[0][1] <= landed_until:
            prefetcher.add(days_between(*ahead.pop(0)))

    with batched_event_writes():
        try:
            if unpartitioned:
                run(unpartitioned, "athlete")
            if not lists_summaries:
                prefetch_through(end)
            for group, group_batches in zip(groups, batches, strict=True):
                lands_summaries = _holds(group, "activities_raw")
                for batch_start, batch_end in group_batches:
                    range_tags = {
                        ASSET_PARTITION_RANGE_START_TAG: batch_start.isoformat(),
                        ASSET_PARTITION_RANGE_END_TAG: batch_end.isoformat(),
                    }
                    run(group, f"{batch_start}..{batch_end}", days_between(batch_start, batch_end), range_tags,
                        final=group is groups[-1])
                    report.batches.append((batch_start, batch_end))
                    if lands_summaries:
                        prefetch_through(batch_end)
                prefetch_through(end)
            if derived:
                run(derived, "whole history")
        finally:
            if prefetcher is not None:
                prefetcher.stop()
    return report


def _execute(
    runnable: Sequence[dg.AssetsDefinition],
    group: Sequence[dg.AssetsDefinition],
    resources: dict[str, object],
    instance: dg.DagsterInstance,
    *,
    job_name: str,
    tags: dict[str, str],
    run_config: dict[str, object],
) -> dg.ExecuteInProcessResult:
    """One in-process run of ``group`` (and its checks), as ``dg.materialize`` makes it, but recorded as a run
    of the code location's job ``job_name`` with the group as its asset selection: the runs list names the
    job and the assets instead of ``__ephemeral_asset_job__``, and re-executing it from the UI works."""
    definitions = dg.Definitions(assets=runnable, resources=resources,
                                 jobs=[dg.define_asset_job(job_name, selection=list(group))])
    job = definitions.resolve_job_def(job_name)
    with _runs_created_with_origin(instance, job_origin(job_name)), _outputs_not_kept():
        return job.execute_in_process(run_config=run_config, instance=instance, tags=tags,
                                      asset_selection=[a.key for a in group])


@contextmanager
def _outputs_not_kept() -> Iterator[None]:
    """Make ``execute_in_process`` drop each step's output once its IO manager has stored it.

    It keeps every output value for the result's ``output_for_node``, which the backfill never reads: a
    quarter's raw payloads stayed in memory while the typed samples were built, loaded and checked. The
    switch is the one Dagster's own function takes, set for this call (the CLI runs from its main thread).
    """
    execute = in_process_execution.core_execute_in_process

    def without_outputs(*args: Any, **kwargs: Any) -> dg.ExecuteInProcessResult:
        kwargs["output_capturing_enabled"] = False
        return execute(*args, **kwargs)

    in_process_execution.core_execute_in_process = without_outputs  # type: ignore[assignment]
    try:
        yield
    finally:
        in_process_execution.core_execute_in_process = execute


def _rows_in_run(result: dg.ExecuteInProcessResult, group: Sequence[dg.AssetsDefinition], asset: str) -> int:
    """Rows the run wrote to ``asset`` (the IO manager's ``rows_in_run``, copied onto each day's event)."""
    if not _holds(group, asset):
        return 0
    for materialization in result.asset_materializations_for_node(asset):
        value = materialization.metadata.get("rows_in_run")
        if value is not None:
            return int(value.value)  # type: ignore[arg-type]
    return 0


def _activities_by_day(store: ParquetStore, days: Sequence[date]) -> dict[date, int]:
    """Landed activities (API or archive) per day: what the progress counts activities in."""
    counts = dict.fromkeys(days, 0)
    frame = store.read("activities", days, columns=[PARTITION_COLUMN])
    if frame.height:
        for day, n in frame.group_by(PARTITION_COLUMN).agg(pl.len()).iter_rows():
            if day in counts:
                counts[day] = n
    return counts
