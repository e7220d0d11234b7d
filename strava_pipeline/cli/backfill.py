"""Headless backfills: materialise a date range in batches, in this process, without a daemon.

For cron, CI and the demo. Each batch is one Dagster run recorded in the instance (visible in the UI)
covering up to ``MAX_PARTITIONS_PER_RUN`` days, the same batching the UI's backfill policy uses, so a
multi-year backfill costs one activity listing per batch and commits each batch as it completes: an
interrupted backfill keeps every finished batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg

from strava_pipeline.defs import build_definitions
from strava_pipeline.defs._dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from strava_pipeline.defs.assets.streams import STREAMS_CACHE, StreamsConfig
from strava_pipeline.defs.partitions import MAX_PARTITIONS_PER_RUN
from strava_pipeline.defs.resources import LandedDataResource, strava_client
from strava_pipeline.ingest.changes import days_between
from strava_pipeline.ingest.prefetch import StreamPrefetcher
from strava_pipeline.settings import Settings
from strava_pipeline.storage.parquet_store import ParquetStore


@dataclass
class BackfillReport:
    """What a headless backfill did, run by run."""

    run_ids: list[str] = field(default_factory=list)
    batches: list[tuple[date, date]] = field(default_factory=list)
    #: Every asset-check evaluation of the runs, in run order.
    checks: list[dg.AssetCheckEvaluation] = field(default_factory=list)


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
    )


def _holds(assets: Sequence[dg.AssetsDefinition], name: str) -> bool:
    return any(a.key.to_user_string() == name for a in assets)


def _select(assets: Sequence[dg.AssetsDefinition], names: Sequence[str] | None) -> list[dg.AssetsDefinition]:
    known = {a.key.to_user_string(): a for a in assets}
    if not names:
        return list(assets)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
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
    progress: Callable[[str], None] = print,
    log_level: str = "WARNING",
    refetch: bool = False,
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
        raise ValueError(f"nothing to backfill: {start}..{end} ends before history start {first}")
    with contextlib.ExitStack() as stack:
        if instance is None:
            # One instance for every batch (an ephemeral instance per run costs ~0.3 s of set-up each),
            # disposed at the end so its temporary directory goes with it.
            instance = stack.enter_context(dg.DagsterInstance.ephemeral())
        return _run_batches(settings, definitions, assets, selected, first, end, instance, batch_days, progress,
                            log_level, refetch)


def _run_batches(
    settings: Settings,
    definitions: dg.Definitions,
    assets: Sequence[dg.AssetsDefinition],
    selected: Sequence[dg.AssetsDefinition],
    first: date,
    end: date,
    instance: dg.DagsterInstance,
    batch_days: int,
    progress: Callable[[str], None],
    log_level: str,
    refetch: bool = False,
) -> BackfillReport:
    """The runs of :func:`run_backfill`, in order, on one instance."""
    runnable = [*assets, *(definitions.asset_checks or ())]
    resources = dict(definitions.resources or {})
    report = BackfillReport()
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}

    def run(group: Sequence[dg.AssetsDefinition], label: str, tags: dict[str, str] | None = None) -> None:
        config = dict(run_config)
        if refetch and _holds(group, "streams_raw"):  # Dagster refuses config for an op the run does not hold
            config["ops"] = {"streams_raw": {"config": {"refetch": True}}}
        result = dg.materialize(runnable, selection=group, resources=resources, instance=instance, tags=tags,
                                run_config=config)
        report.run_ids.append(result.run_id)
        report.checks.extend(result.get_asset_check_evaluations())
        names = ", ".join(a.key.to_user_string() for a in group)
        progress(f"{label} [{names}]: run {result.run_id} succeeded")

    late = _downstream_of_partitioned(assets)
    unpartitioned = [a for a in selected if a.partitions_def is None and a.key not in late]
    partitioned = [a for a in selected if a.partitions_def is not None]
    derived = [a for a in selected if a.key in late]
    groups = _policy_groups(partitioned, batch_days)
    batches = [list(date_batches(first, end, _batch_size(group[0], batch_days))) for group in groups]
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
                    tags = {
                        ASSET_PARTITION_RANGE_START_TAG: batch_start.isoformat(),
                        ASSET_PARTITION_RANGE_END_TAG: batch_end.isoformat(),
                    }
                    run(group, f"{batch_start}..{batch_end}", tags)
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
