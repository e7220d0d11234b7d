"""Typed activity summaries from raw ``/athlete/activities`` payloads.

Units live in column names (``distance_m``, ``moving_time_s``) so nobody has to guess whether a
number is metres or miles. ``sport_type`` stays free text: Strava keeps adding sports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import polars as pl

from strava_pipeline.transforms.errors import PayloadError
from strava_pipeline.transforms.fields import Field, coerce, extract_frame, parse_date, schema_of
from strava_pipeline.transforms.streams import jsonb_unstorable_reason

UTC_TS = pl.Datetime("us", "UTC")
LOCAL_TS = pl.Datetime("us")

ACTIVITY_RAW_SCHEMA: dict[str, pl.DataType] = {
    "activity_id": pl.Int64,
    "activity_date": pl.Date,
    "fetched_at": UTC_TS,
    "payload": pl.String,
    # Read from the payload once, here, for everyone who plans streams or checks them.
    "manual": pl.Boolean,
    "summary_fingerprint": pl.String,
    # A summary jsonb cannot store (NaN, \u0000: see ``summary_unstorable_reason``) still lands, so one bad
    # activity never fails its batch: ``rejected`` says why, ``payload_text`` keeps it verbatim and
    # ``payload`` holds only ``{"id": <id>}``. Both are null for every storable summary.
    "rejected": pl.String,
    "payload_text": pl.String,
}

#: ``export_activities_raw``: one row per ``activities.csv`` row of the newest archive holding the activity.
#: ``row`` is the CSV row verbatim as JSON ``[[header, occurrence, value], ...]`` (unknown columns included);
#: ``summary`` is the same activity in SummaryActivity shape, derived from the row and the original file;
#: ``file_*`` register the original upload (its bytes are in the raw blob store under ``file_sha256``).
#: ``status``: ``ok`` (file decoded), ``no_file`` (manual entry), ``missing_file`` (listed, not in the
#: archive) or ``failed`` (``error`` says why).
EXPORT_ACTIVITY_RAW_SCHEMA: dict[str, pl.DataType] = {
    "activity_id": pl.Int64,
    "activity_date": pl.Date,
    "archive_sha256": pl.String,
    "csv_line": pl.Int32,
    "row": pl.String,
    "summary": pl.String,
    "file_path": pl.String,
    "file_sha256": pl.String,
    "file_format": pl.String,
    "file_size": pl.Int64,
    "samples": pl.Int64,
    "status": pl.String,
    "error": pl.String,
    "local_date_rule": pl.String,
    "imported_at": UTC_TS,
}

#: Summary fields whose change means the recording itself changed (a crop, a re-upload). A rename, a
#: new kudo or a gear change does not alter streams, so it must not cost an API request.
STREAM_RELEVANT_FIELDS: tuple[str, ...] = (
    "start_date", "elapsed_time", "moving_time", "distance", "upload_id", "external_id", "manual",
    "has_heartrate", "device_watts",
)


def summary_fingerprint(summary: Mapping[str, Any]) -> str:
    """A digest of the summary fields that change when an activity's recording changes."""
    relevant = {key: summary.get(key) for key in STREAM_RELEVANT_FIELDS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


ACTIVITY_FIELDS: tuple[Field, ...] = (
    Field("activity_id", ("id",), pl.Int64, required=True),
    Field("activity_date", ("start_date_local",), pl.Date, required=True),
    Field("athlete_id", ("athlete", "id"), pl.Int64),
    Field("name", ("name",), pl.String),
    Field("sport_type", ("sport_type",), pl.String),
    Field("type", ("type",), pl.String),
    Field("workout_type", ("workout_type",), pl.Int64),
    Field("start_date", ("start_date",), UTC_TS, required=True),
    Field("start_date_local", ("start_date_local",), LOCAL_TS, required=True),
    Field("timezone", ("timezone",), pl.String),
    Field("utc_offset_s", ("utc_offset",), pl.Int64),
    Field("distance_m", ("distance",), pl.Float64),
    Field("moving_time_s", ("moving_time",), pl.Int64),
    Field("elapsed_time_s", ("elapsed_time",), pl.Int64),
    Field("total_elevation_gain_m", ("total_elevation_gain",), pl.Float64),
    Field("elev_high_m", ("elev_high",), pl.Float64),
    Field("elev_low_m", ("elev_low",), pl.Float64),
    Field("average_speed_mps", ("average_speed",), pl.Float64),
    Field("max_speed_mps", ("max_speed",), pl.Float64),
    Field("has_heartrate", ("has_heartrate",), pl.Boolean),
    Field("average_heartrate_bpm", ("average_heartrate",), pl.Float64),
    Field("max_heartrate_bpm", ("max_heartrate",), pl.Float64),
    Field("average_cadence_rpm", ("average_cadence",), pl.Float64),
    Field("average_watts", ("average_watts",), pl.Float64),
    Field("weighted_average_watts", ("weighted_average_watts",), pl.Float64),
    Field("max_watts", ("max_watts",), pl.Float64),
    Field("kilojoules_kj", ("kilojoules",), pl.Float64),
    Field("device_watts", ("device_watts",), pl.Boolean),
    Field("average_temp_c", ("average_temp",), pl.Float64),
    Field("suffer_score", ("suffer_score",), pl.Float64),
    Field("calories_kcal", ("calories",), pl.Float64),
    Field("start_lat", ("start_latlng", 0), pl.Float64),
    Field("start_lng", ("start_latlng", 1), pl.Float64),
    Field("end_lat", ("end_latlng", 0), pl.Float64),
    Field("end_lng", ("end_latlng", 1), pl.Float64),
    Field("summary_polyline", ("map", "summary_polyline"), pl.String),
    Field("trainer", ("trainer",), pl.Boolean),
    Field("commute", ("commute",), pl.Boolean),
    Field("manual", ("manual",), pl.Boolean),
    Field("private", ("private",), pl.Boolean),
    Field("visibility", ("visibility",), pl.String),
    Field("flagged", ("flagged",), pl.Boolean),
    Field("gear_id", ("gear_id",), pl.String),
    Field("device_name", ("device_name",), pl.String),
    Field("upload_id", ("upload_id",), pl.Int64),
    Field("external_id", ("external_id",), pl.String),
    Field("achievement_count", ("achievement_count",), pl.Int64),
    Field("kudos_count", ("kudos_count",), pl.Int64),
    Field("comment_count", ("comment_count",), pl.Int64),
    Field("athlete_count", ("athlete_count",), pl.Int64),
    Field("photo_count", ("photo_count",), pl.Int64),
    Field("pr_count", ("pr_count",), pl.Int64),
)

#: What only the bulk-export archive records (null for activities the archive has not seen). The archive's
#: summaries carry these under the column names (``export.summaries`` writes them from the CSV row).
ARCHIVE_ONLY_FIELDS: tuple[Field, ...] = (
    Field("relative_effort", ("relative_effort",), pl.Float64),
    Field("perceived_exertion", ("perceived_exertion",), pl.Float64),
    Field("private_note", ("private_note",), pl.String),
    Field("gear_name", ("gear_name",), pl.String),
    Field("weather_condition", ("weather_condition",), pl.String),
    Field("weather_temperature_c", ("weather_temperature_c",), pl.Float64),
    Field("total_steps", ("total_steps",), pl.Int64),
    Field("grade_adjusted_distance_m", ("grade_adjusted_distance_m",), pl.Float64),
)

#: Where a row of ``activities`` (or ``activity_streams``) came from: the API, or the export archive.
SOURCES = ("api", "export")

ACTIVITY_SCHEMA: dict[str, pl.DataType] = {
    **schema_of(ACTIVITY_FIELDS), "fetched_at": UTC_TS, "source": pl.String, **schema_of(ARCHIVE_ONLY_FIELDS),
}


def activity_label(payload: Any) -> str:
    """How errors name an activity: by id when it has one."""
    if isinstance(payload, Mapping) and payload.get("id") is not None:
        return f"activity {payload.get('id')}"
    return "activity <without id>"


def activity_local_date(payload: Mapping[str, Any]) -> date:
    """The partition an activity belongs to: its local calendar date.

    ``start_date_local`` is the athlete's wall clock with a misleading ``Z``; its date part is the day
    the athlete would say the activity happened on, which is what daily partitions must follow.
    """
    value = payload.get("start_date_local") if isinstance(payload, Mapping) else None
    if value is None:
        raise PayloadError(activity_label(payload), "start_date_local", "is missing")
    try:
        return parse_date(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(activity_label(payload), "start_date_local", f"is not a date: {exc}") from None


def activity_id_of(payload: Any) -> int:
    """The activity id, validated."""
    if not isinstance(payload, Mapping) or payload.get("id") is None:
        raise PayloadError(activity_label(payload), "id", "is missing")
    try:
        return coerce(payload["id"], pl.Int64)
    except (TypeError, ValueError) as exc:
        raise PayloadError(activity_label(payload), "id", f"is not an integer: {exc}") from None


def summary_unstorable_reason(text: str) -> str | None:
    """Why a summary's JSON text cannot be the jsonb ``payload``, or None: the rule streams bodies follow too.

    Python's ``json`` reads NaN and Infinity, and a ``\\u0000`` escape or a lone surrogate into a ``str``;
    PostgreSQL refuses all of them, so storing one would fail the write of the whole batch.
    """
    try:
        body = text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate from a "\\udXXX" escape
        return f"is not valid UTF-8: {exc}"
    return jsonb_unstorable_reason(body)


def _storable_text(summary: Mapping[str, Any], text: str) -> str:
    """``text``, or the summary with ASCII escapes when it holds a lone surrogate, which no UTF-8 column
    (text, Parquet) can store as a character."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(summary, separators=(",", ":"))
    return text


def raw_activities_frame(
    summaries: Iterable[Mapping[str, Any]], fetched_at: Any, days: Iterable[date] | None = None
) -> pl.DataFrame:
    """Raw-layer rows for the activities whose local date falls in ``days`` (all when None).

    The payload is kept as JSON text exactly as parsed from Strava, so the typed layer can be rebuilt
    at any time without an API request. Duplicate ids within a listing (Strava pages can shift while
    an athlete uploads) keep the first occurrence, which is the newest listing position. A summary jsonb
    cannot store lands rejected (see ``ACTIVITY_RAW_SCHEMA``) instead of failing the batch.
    """
    wanted = set(days) if days is not None else None
    ids: list[int] = []
    dates: list[date] = []
    payloads: list[str] = []
    manual: list[bool] = []
    fingerprints: list[str] = []
    rejected: list[str | None] = []
    verbatim: list[str | None] = []
    seen: set[int] = set()
    for summary in summaries:
        activity_id = activity_id_of(summary)
        local_date = activity_local_date(summary)
        if (wanted is not None and local_date not in wanted) or activity_id in seen:
            continue
        seen.add(activity_id)
        ids.append(activity_id)
        dates.append(local_date)
        text = json.dumps(summary, ensure_ascii=False, separators=(",", ":"))
        reason = summary_unstorable_reason(text)
        payloads.append(text if reason is None else json.dumps({"id": activity_id}))
        rejected.append(reason)
        verbatim.append(None if reason is None else _storable_text(summary, text))
        manual.append(bool(summary.get("manual")))
        fingerprints.append(summary_fingerprint(summary))
    return pl.DataFrame(
        {
            "activity_id": ids,
            "activity_date": dates,
            "fetched_at": [fetched_at] * len(ids),
            "payload": payloads,
            "manual": manual,
            "summary_fingerprint": fingerprints,
            "rejected": rejected,
            "payload_text": verbatim,
        },
        schema=ACTIVITY_RAW_SCHEMA,
    )


def with_summary_columns(raw: pl.DataFrame) -> pl.DataFrame:
    """``activities_raw`` rows with ``manual`` and ``summary_fingerprint``, computed from the payload for rows
    that landed before those columns existed (mirrors made by version 0.1), as they are otherwise."""
    if {"manual", "summary_fingerprint"} <= set(raw.columns):
        return raw
    if raw.width == 0:  # never materialised
        return pl.DataFrame(schema=ACTIVITY_RAW_SCHEMA)
    summaries = [json.loads(p) for p in raw.get_column("payload").to_list()]
    return raw.with_columns(
        pl.Series("manual", [bool(s.get("manual")) for s in summaries], pl.Boolean),
        pl.Series("summary_fingerprint", [summary_fingerprint(s) for s in summaries], pl.String),
    )


def accepted_summaries(raw: pl.DataFrame) -> pl.DataFrame:
    """``activities_raw`` rows without the rejected ones (whose ``payload`` is only their id); rows landed
    before the ``rejected`` column existed were all accepted."""
    if "rejected" not in raw.columns:
        return raw
    return raw.filter(pl.col("rejected").is_null())


def _typed(ids: list[Any], payloads: list[Any], fields: tuple[Field, ...]) -> pl.DataFrame:
    parsed = []
    for activity_id, payload in zip(ids, payloads, strict=True):
        try:
            parsed.append((f"activity {activity_id}", json.loads(payload)))
        except json.JSONDecodeError as exc:
            raise PayloadError(f"activity {activity_id}", "<payload>", f"is not valid JSON: {exc}") from None
    return extract_frame(parsed, fields)


def activities_frame(raw: pl.DataFrame, export_raw: pl.DataFrame | None = None) -> pl.DataFrame:
    """Typed activities from the API's raw rows and the archive's; raises PayloadError naming the activity and
    field on bad data.

    The API summary is the row of record for an activity both sources know; the archive adds what only it
    has (``ARCHIVE_ONLY_FIELDS``) and every activity the API has not listed (``source`` = ``export``). A
    summary the API listed but ``activities_raw`` rejected is left out (the ``summaries_storable`` check names
    it), not replaced by the archive's row.
    """
    fields = (*ACTIVITY_FIELDS, *ARCHIVE_ONLY_FIELDS)
    frames = []
    listed = raw["activity_id"] if raw.height else pl.Series("activity_id", [], pl.Int64)
    raw = accepted_summaries(raw)
    if raw.height:
        api = _typed(raw["activity_id"].to_list(), raw["payload"].to_list(), fields)
        frames.append(api.with_columns(raw["fetched_at"].alias("fetched_at"), pl.lit("api").alias("source")))
    exported = pl.DataFrame()
    if export_raw is not None and export_raw.height:
        usable = export_raw.filter(pl.col("summary").is_not_null())
        exported = _typed(usable["activity_id"].to_list(), usable["summary"].to_list(), fields).with_columns(
            usable["imported_at"].alias("fetched_at"), pl.lit("export").alias("source"))
    if frames and exported.height:
        archive_only = [f.column for f in ARCHIVE_ONLY_FIELDS]
        extra = exported.select("activity_id", *(pl.col(c).alias(f"_{c}") for c in archive_only))
        api = frames[0].join(extra, on="activity_id", how="left").with_columns(
            pl.coalesce(c, f"_{c}").alias(c) for c in archive_only
        )
        frames = [api.drop(f"_{c}" for c in archive_only)]
    if exported.height:
        exported = exported.filter(~pl.col("activity_id").is_in(listed.implode()))
    if exported.height:
        frames.append(exported)
    if not frames:
        return pl.DataFrame(schema=ACTIVITY_SCHEMA)
    return pl.concat([f.select(list(ACTIVITY_SCHEMA)) for f in frames], how="vertical")


#: The widest distance between a local wall clock and UTC (UTC+14 in Kiribati, UTC-12 on Baker Island).
LOCAL_DATE_MARGIN_S = 14 * 3600


def listing_window(first_day: date, last_day: date) -> tuple[int, int]:
    """The ``after``/``before`` epoch seconds that cover every activity whose local date is in the range.

    Strava filters the listing on the UTC start time, but partitions follow the local date, so the
    window is widened by 14 hours on each side; activities in the margin are dropped after listing.
    """
    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=UTC)
    return int(start.timestamp()) - LOCAL_DATE_MARGIN_S - 1, int(end.timestamp()) + LOCAL_DATE_MARGIN_S
