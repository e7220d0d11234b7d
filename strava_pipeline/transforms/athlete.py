"""Typed athlete profile and gear from the raw ``/athlete``, ``/athlete/zones`` and ``/gear`` documents."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from strava_pipeline.transforms.errors import PayloadError
from strava_pipeline.transforms.fields import Field, extract_frame, schema_of

UTC_TS = pl.Datetime("us", "UTC")

#: One row per document fetched for the athlete: the profile, the zones, and each piece of gear.  A document
#: Strava answered 404 for (a gear deleted since ``/athlete`` listed it) is kept with :data:`NOT_FOUND_PAYLOAD`
#: as its payload: ``strava.athlete_raw`` has no status column, and no Strava document has a ``not_found`` key.
ATHLETE_RAW_SCHEMA: dict[str, pl.DataType] = {
    "resource": pl.String,
    "resource_id": pl.String,
    "fetched_at": UTC_TS,
    "payload": pl.String,
}

NOT_FOUND_PAYLOAD = '{"not_found": true, "status": 404}'


def is_not_found(document: Any) -> bool:
    """Whether a parsed ``athlete_raw`` payload is the not-found marker rather than a Strava document."""
    return isinstance(document, Mapping) and document.get("not_found") is True


ATHLETE_FIELDS: tuple[Field, ...] = (
    Field("athlete_id", ("id",), pl.Int64, required=True),
    Field("username", ("username",), pl.String),
    Field("firstname", ("firstname",), pl.String),
    Field("lastname", ("lastname",), pl.String),
    Field("city", ("city",), pl.String),
    Field("state", ("state",), pl.String),
    Field("country", ("country",), pl.String),
    Field("sex", ("sex",), pl.String),
    Field("premium", ("premium",), pl.Boolean),
    Field("summit", ("summit",), pl.Boolean),
    Field("created_at", ("created_at",), UTC_TS),
    Field("updated_at", ("updated_at",), UTC_TS),
    Field("weight_kg", ("weight",), pl.Float64),
    Field("ftp_w", ("ftp",), pl.Int64),
    Field("measurement_preference", ("measurement_preference",), pl.String),
)

#: Heart-rate zone bounds flattened into columns so SQL users need no JSON functions.
HR_ZONE_COUNT = 5
ZONE_COLUMNS: dict[str, pl.DataType] = {
    **{f"hr_zone_{i}_min_bpm": pl.Int64 for i in range(1, HR_ZONE_COUNT + 1)},
    "hr_zones_custom": pl.Boolean,
}

ATHLETE_SCHEMA: dict[str, pl.DataType] = {
    **schema_of(ATHLETE_FIELDS),
    **ZONE_COLUMNS,
    "fetched_at": UTC_TS,
}

GEAR_FIELDS: tuple[Field, ...] = (
    Field("gear_id", ("id",), pl.String, required=True),
    Field("name", ("name",), pl.String),
    Field("nickname", ("nickname",), pl.String),
    Field("brand_name", ("brand_name",), pl.String),
    Field("model_name", ("model_name",), pl.String),
    Field("description", ("description",), pl.String),
    Field("primary", ("primary",), pl.Boolean),
    Field("retired", ("retired",), pl.Boolean),
    Field("distance_m", ("distance",), pl.Float64),
    Field("frame_type", ("frame_type",), pl.Int64),
)
GEAR_SCHEMA: dict[str, pl.DataType] = {
    **schema_of(GEAR_FIELDS),
    "gear_type": pl.String,
    "fetched_at": UTC_TS,
}


def gear_ids(athlete: Mapping[str, Any]) -> list[str]:
    """Ids of the athlete's bikes and shoes, in profile order, without duplicates."""
    ids: list[str] = []
    for key in ("bikes", "shoes"):
        for item in athlete.get(key) or []:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str) and item["id"] not in ids:
                ids.append(item["id"])
    return ids


def _documents(raw: pl.DataFrame, resource: str) -> list[tuple[str, Any, Any]]:
    """The parsed documents of a kind, not-found markers left out (they have no fields to type)."""
    rows = raw.filter(pl.col("resource") == resource)
    out = []
    for resource_id, payload, fetched_at in rows.select("resource_id", "payload", "fetched_at").iter_rows():
        label = f"{resource} {resource_id}"
        try:
            document = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise PayloadError(label, "<payload>", f"is not valid JSON: {exc}") from None
        if not is_not_found(document):
            out.append((label, document, fetched_at))
    return out


def athlete_frame(raw: pl.DataFrame) -> pl.DataFrame:
    """The athlete profile as one typed row, with heart-rate zone lower bounds from ``/athlete/zones``."""
    profiles = _documents(raw, "athlete")
    if not profiles:
        return pl.DataFrame(schema=ATHLETE_SCHEMA)
    label, profile, fetched_at = profiles[-1]
    frame = extract_frame([(label, profile)], ATHLETE_FIELDS)
    zone_values: dict[str, Any] = dict.fromkeys(ZONE_COLUMNS)
    zones_docs = _documents(raw, "zones")
    if zones_docs:
        zlabel, zones, _ = zones_docs[-1]
        hr = zones.get("heart_rate") if isinstance(zones, Mapping) else None
        if isinstance(hr, Mapping):
            zone_values["hr_zones_custom"] = bool(hr.get("custom_zones"))
            zone_list = hr.get("zones") or []
            if not isinstance(zone_list, list):
                raise PayloadError(zlabel, "heart_rate.zones", "is not an array")
            for i, zone in enumerate(zone_list[:HR_ZONE_COUNT], start=1):
                if not isinstance(zone, Mapping) or not isinstance(zone.get("min"), int | float):
                    raise PayloadError(zlabel, f"heart_rate.zones[{i - 1}].min", "is not a number")
                zone_values[f"hr_zone_{i}_min_bpm"] = int(zone["min"])
    extra = pl.DataFrame({k: [v] for k, v in zone_values.items()}, schema=ZONE_COLUMNS)
    return pl.concat([frame, extra], how="horizontal").with_columns(
        pl.lit(fetched_at, dtype=UTC_TS).alias("fetched_at")
    )


def gear_frame(raw: pl.DataFrame) -> pl.DataFrame:
    """One typed row per bike or shoe (Strava prefixes bike ids with ``b`` and shoe ids with ``g``).

    A gear recorded as not found has no row: the table lists the gear Strava has, not nulls with a flag.
    """
    docs = _documents(raw, "gear")
    if not docs:
        return pl.DataFrame(schema=GEAR_SCHEMA)
    frame = extract_frame([(label, doc) for label, doc, _ in docs], GEAR_FIELDS)
    return frame.with_columns(
        pl.when(pl.col("gear_id").str.starts_with("b")).then(pl.lit("bike")).otherwise(pl.lit("shoes"))
        .alias("gear_type"),
        pl.Series("fetched_at", [f for _, _, f in docs], dtype=UTC_TS),
    ).select(list(GEAR_SCHEMA))
