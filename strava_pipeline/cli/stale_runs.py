"""Runs whose process died (``kill -9``, a crash, a reboot) and the Strava API slot they still hold.

A headless run executes in the CLI's own process, with no daemon to monitor it: killed while a step
holds the ``strava_api`` pool's only slot, it stays STARTED and keeps the slot, and every later run waits
for it forever. Each command therefore fails such runs and frees their slots when it opens the instance.

Dagster records no host for a run, only the pid of the process that wrote each event: a run counts as
dead when that pid is gone on this host, or was reused by a process created after the run started. A
run executing on another host sharing the database would look dead too; the pipeline runs on one host.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime

import dagster as dg
import psutil

from strava_pipeline.defs._dagster_private import DagsterEventType, InstanceConcurrencyContext
from strava_pipeline.defs.resources import STRAVA_API_POOL

logger = logging.getLogger(__name__)

_IN_FLIGHT = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
#: What a run launcher logs once it has spawned the run's process (a run launched from the UI).
_STARTED_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\)")
#: Slack between a process's creation and the run start it recorded (clock granularity).
_CREATE_SLACK_SECONDS = 2.0
#: How often a step waiting for a pool slot says so again.
_WAIT_MESSAGE_SECONDS = 60.0


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process executing the run: the writer of its RUN_START event (``DagsterEvent.pid``),
    else the child pid a launcher reported. None when nothing says (a run still being launched)."""
    entries = instance.all_logs(run_id, of_type={DagsterEventType.RUN_START, DagsterEventType.ENGINE_EVENT})
    for entry in entries:
        event = entry.dagster_event
        if event is not None and event.event_type == DagsterEventType.RUN_START and event.pid is not None:
            return event.pid
    for entry in entries:
        match = _STARTED_PROCESS.search(entry.message or "")
        if match:
            return int(match.group(1))
    return None


def _alive(pid: int, started: float) -> bool:
    """Whether ``pid`` is still the process that started the run at ``started`` (a Unix time)."""
    if not psutil.pid_exists(pid):
        return False
    try:
        return psutil.Process(pid).create_time() <= started + _CREATE_SLACK_SECONDS
    except psutil.NoSuchProcess:
        return False


def fail_killed_runs(instance: dg.DagsterInstance, report: Callable[[str], None] = print) -> list[str]:
    """Mark failed every in-flight run whose process is gone and free its concurrency slots.

    Also frees Strava API slots still held by runs already finished (killed runs someone marked failed
    in the UI without freeing them). Returns the ids of the runs failed here.
    """
    failed: list[str] = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=_IN_FLIGHT)):
        run = record.dagster_run
        pid = _run_pid(instance, run.run_id)
        started = record.start_time or record.create_timestamp.timestamp()
        if pid is None or _alive(pid, started):
            continue
        instance.report_run_failed(run, f"The process running this run (pid {pid}) is gone: it was killed.")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
        when = datetime.fromtimestamp(started).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        report(f"run {run.run_id} (started {when}) was killed: marked failed and its Strava API slot freed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits and STRAVA_API_POOL in storage.get_concurrency_keys():
        for slot in storage.get_concurrency_info(STRAVA_API_POOL).claimed_slots:
            run = instance.get_run_by_id(slot.run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(slot.run_id)
    return failed


def _slot_holders(instance: dg.DagsterInstance, pool: str) -> str:
    info = instance.event_log_storage.get_concurrency_info(pool)
    holders = [f"run {s.run_id} (step {s.step_key})" for s in info.claimed_slots]
    return ", ".join(holders) or "nothing (a slot is being handed over)"


def install_slot_wait_reporting() -> None:
    """Make a step waiting for a pool slot sleep between claims and say, at WARNING, what holds the slot.

    Dagster 1.13's in-process executor retries a blocked claim on a back-off (1 s growing to 15 s; no
    setting changes it), but ``interval_to_next_pending_claim_check`` returns ``min(0, ...)``, never
    positive, so the executor loop never sleeps between those claims: it spins a core. Its own "Step
    blocked by limit for pool" event is logged at DEBUG, below the CLI's console level, and names no
    holder, so a waiting backfill printed nothing. Idempotent.
    """
    if getattr(InstanceConcurrencyContext, "_strava_pipeline_patched", False):
        return
    original_claim = InstanceConcurrencyContext.claim
    last_said: dict[tuple[str, str], float] = {}

    def interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
        if not self._pending_claims or not self._pending_timeouts:
            return 0.0
        return max(0.0, min(self._pending_timeouts.values()) - time.time())

    def claim(self: InstanceConcurrencyContext, concurrency_key: str, step_key: str, step_priority: int = 0) -> bool:
        claimed = original_claim(self, concurrency_key, step_key, step_priority)
        key = (self._run_id, step_key)
        if claimed:
            last_said.pop(key, None)
        elif time.monotonic() - last_said.get(key, -_WAIT_MESSAGE_SECONDS) >= _WAIT_MESSAGE_SECONDS:
            last_said[key] = time.monotonic()
            logger.warning("step %s is waiting for a slot of pool %s, held by %s", step_key, concurrency_key,
                           _slot_holders(self._instance, concurrency_key))
        return claimed

    InstanceConcurrencyContext.interval_to_next_pending_claim_check = interval_to_next_pending_claim_check
    InstanceConcurrencyContext.claim = claim
    InstanceConcurrencyContext._strava_pipeline_patched = True
