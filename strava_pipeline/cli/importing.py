"""``strava-pipeline import PATH``: a Strava export archive into the mirror, with zero API requests.

Staging copies the archive into the raw layer and indexes it (``ingest.export_import``); then the export
assets and everything downstream are materialised for the days the archive changed, headlessly, as a
backfill would. No asset that calls Strava is selected, so an import works without credentials and
without a subscription.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from strava_pipeline.cli.backfill import ARCHIVE_JOB_NAME, BackfillReport, run_backfill
from strava_pipeline.cli.progress import CommandProgress
from strava_pipeline.defs.automation import ARCHIVE_DAY_ASSETS
from strava_pipeline.ingest.export_import import StagedArchive, api_local_dates, stage_archive
from strava_pipeline.settings import Settings


@dataclass
class ImportReport:
    staged: StagedArchive
    backfill: BackfillReport | None


def run_import(
    settings: Settings,
    path: Path,
    *,
    instance: dg.DagsterInstance | None = None,
    progress: Callable[[str], None] | None = None,
    log_level: str = "WARNING",
) -> ImportReport:
    """Stage the archive at ``path`` and materialise the days it changed.

    ``progress``: where the lines go (None: the terminal, live when it is one), as for ``run_backfill``;
    the runs are recorded as runs of the code location's ``archive_days`` job.
    """
    with CommandProgress(progress) as tracker:
        staged = stage_archive(path, settings.data_dir, timezone=settings.timezone,
                               api_dates=api_local_dates(settings.data_dir))
        counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(staged.statuses.items()))
        tracker.note(f"{path.name}: {staged.activities} activities ({counts}), {staged.samples} samples"
                     + (", files read by " + ", ".join(f"{d} ({n})" for d, n in staged.decoders.items())
                        if staged.decoders else ""))
        for what, why in staged.refused:
            tracker.note(f"  refused {what}: {why}")
        if not staged.days:
            tracker.note("Nothing changed since the last import of this archive: nothing to materialise.")
            return ImportReport(staged, None)
        first, last = staged.days[0], staged.days[-1]
        tracker.note(f"Materialising {len(staged.days)} changed days between {first} and {last} ...")
        report = run_backfill(settings, first, last, select=list(ARCHIVE_DAY_ASSETS), instance=instance,
                              progress=tracker, log_level=log_level, command="import", job_name=ARCHIVE_JOB_NAME)
        return ImportReport(staged, report)
