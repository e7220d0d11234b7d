"""The local calendar date of an archive activity: the partition it lands in.

The archive's ``Activity Date`` is UTC and it has no time-zone column, but partitions follow the date on
the athlete's wall clock. In order of trust:

1. ``api``: the API summary's ``start_date_local``, when the API has listed the activity (its row of record);
2. ``fit_local_timestamp``: a FIT file's ``activity`` message records the local wall-clock time beside UTC;
3. ``gps_timezone``: the time zone at the recording's first GPS point (offline lookup with tzfpy);
4. ``configured_timezone``: ``STRAVA_PIPELINE_TIMEZONE`` (manual entries, indoor sessions without a FIT).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzfpy

__all__ = ["LocalStart", "local_start"]


@dataclass(frozen=True)
class LocalStart:
    """An activity's local start, the rule that found it, and the zone (or fixed offset) it implies."""

    local: datetime  # naive wall-clock time
    rule: str
    timezone: str | None
    utc_offset_s: int

    @property
    def date(self) -> date:
        return self.local.date()


def _in_zone(start_utc: datetime, zone: str, rule: str) -> LocalStart | None:
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    local = start_utc.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    return LocalStart(local.replace(tzinfo=None), rule, zone, int(offset.total_seconds()))


def local_start(
    start_utc: datetime,
    *,
    fit_local_timestamp: datetime | None = None,
    fit_timestamp_utc: datetime | None = None,
    first_position: tuple[float, float] | None = None,
    configured_timezone: str = "UTC",
) -> LocalStart:
    """The activity's local start by the first of rules 2-4 that applies (see the module docstring; the
    caller applies rule 1, the API's own date, which only it knows).

    ``fit_local_timestamp`` and ``fit_timestamp_utc`` are the FIT activity message's two clocks at the same
    instant: their difference is the offset that applies to ``start_utc``.
    """
    start_utc = start_utc.astimezone(UTC)
    if fit_local_timestamp is not None and fit_timestamp_utc is not None:
        offset = fit_local_timestamp.replace(tzinfo=None) - fit_timestamp_utc.astimezone(UTC).replace(tzinfo=None)
        # Real offsets are whole quarter hours within +-14 h; anything else is a device clock gone wrong.
        seconds = round(offset.total_seconds() / 900) * 900
        if abs(seconds) <= 14 * 3600:
            local = start_utc.replace(tzinfo=None) + timedelta(seconds=seconds)
            return LocalStart(local, "fit_local_timestamp", None, seconds)
    if first_position is not None:
        lat, lng = first_position
        zone = tzfpy.get_tz(lng, lat) if -90 <= lat <= 90 and -180 <= lng <= 180 else ""
        found = _in_zone(start_utc, zone, "gps_timezone") if zone else None
        if found is not None:
            return found
    found = _in_zone(start_utc, configured_timezone, "configured_timezone")
    if found is None:
        raise ValueError(f"STRAVA_PIPELINE_TIMEZONE={configured_timezone!r} is not a known time zone")
    return found
