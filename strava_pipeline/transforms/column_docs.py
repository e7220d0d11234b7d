"""What every column of every table means: the one place a column is documented.

Dagster's column schema (``dg.TableColumn(description=...)``, built in ``defs.metadata``) and PostgreSQL's
``COMMENT ON COLUMN`` (the migration ``storage/sql/0013_column_comments.sql``, generated from this mapping
by :func:`column_comments_sql`) both come from :data:`COLUMN_DOCS`, so the UI, ``\\d+ strava.activities``
in psql and a BI tool's column tooltips say the same thing. A column added to a table needs its line here
and a migration commenting it: ``strava_pipeline_tests/defs/test_column_docs.py`` fails until both exist,
and prints the ``COMMENT`` statements to add.

Units are in the column names (``_m``, ``_s``, ``_bpm``, ``_w``); a description says what the number is,
where it comes from and when it is null.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The PostgreSQL schema of every table below.
SCHEMA = "strava"

_ACTIVITY_ID = "Strava's id of the activity."
_ACTIVITY_DATE = ("The activity's local calendar date (its start on the athlete's wall clock): the daily "
                  "partition the row belongs to.")
_FETCHED_AT = "When the pipeline received this document from Strava (UTC)."
_SPORT_TYPE = "Strava's sport type (Run, Ride, TrailRun, ...); free text, Strava keeps adding sports."

#: table -> column -> description. Order follows the tables' columns.
COLUMN_DOCS: Mapping[str, Mapping[str, str]] = {
    "athlete_raw": {
        "resource": "Which document: 'athlete' (/athlete), 'zones' (/athlete/zones) or 'gear' (/gear/{id}).",
        "resource_id": "The document's id: the athlete id, or the gear id for 'gear'.",
        "fetched_at": _FETCHED_AT,
        "payload": ("The response body verbatim (JSON); a gear Strava answered 404 for is kept as "
                    '{"not_found": true, "status": 404}.'),
    },
    "athlete": {
        "athlete_id": "Strava's id of the athlete.",
        "username": "The athlete's Strava username.",
        "firstname": "First name on the profile.",
        "lastname": "Last name on the profile.",
        "city": "City on the profile.",
        "state": "State or region on the profile.",
        "country": "Country on the profile.",
        "sex": "'M' or 'F' as set on the profile; null if not set.",
        "premium": "Deprecated by Strava: whether the athlete has a subscription (see summit).",
        "summit": "Whether the athlete has a Strava subscription.",
        "created_at": "When the Strava account was created (UTC).",
        "updated_at": "When the profile last changed (UTC).",
        "weight_kg": "Body weight on the profile, kg.",
        "ftp_w": "Functional threshold power on the profile, W: the basis of intensity factor and TSS.",
        "measurement_preference": "Units the athlete prefers in Strava: 'meters' or 'feet'.",
        "hr_zone_1_min_bpm": "Lower bound of heart-rate zone 1, bpm (/athlete/zones; null without profile:read_all).",
        "hr_zone_2_min_bpm": "Lower bound of heart-rate zone 2, bpm.",
        "hr_zone_3_min_bpm": "Lower bound of heart-rate zone 3, bpm.",
        "hr_zone_4_min_bpm": "Lower bound of heart-rate zone 4, bpm.",
        "hr_zone_5_min_bpm": "Lower bound of heart-rate zone 5 (the top zone), bpm.",
        "hr_zones_custom": "Whether the athlete set the heart-rate zones by hand (else Strava derives them).",
        "fetched_at": _FETCHED_AT,
    },
    "gear": {
        "gear_id": "Strava's id of the bike ('b...') or pair of shoes ('g...').",
        "name": "Display name Strava shows for the gear.",
        "nickname": "The nickname the athlete gave it.",
        "brand_name": "Brand.",
        "model_name": "Model.",
        "description": "The athlete's description of the gear.",
        "primary": "Whether it is the athlete's default bike or shoes.",
        "retired": "Whether the athlete retired it.",
        "distance_m": "Total distance Strava has recorded with it, m.",
        "frame_type": "Bikes: Strava's frame type (1 mountain, 2 cross, 3 road, 4 time trial, 5 gravel); "
                      "null for shoes.",
        "gear_type": "'bike' or 'shoes'.",
        "fetched_at": _FETCHED_AT,
    },
    "activities_raw": {
        "activity_id": _ACTIVITY_ID,
        "activity_date": _ACTIVITY_DATE,
        "fetched_at": "When /athlete/activities listed this summary (UTC).",
        "payload": ("The SummaryActivity exactly as Strava listed it (JSON); only {\"id\": ...} when the "
                    "summary was rejected (see rejected)."),
        "manual": "Whether it is a manual entry (no recording, so no streams); read from the payload.",
        "summary_fingerprint": ("Digest of the summary fields the recording depends on (start, times, "
                                "distance, upload): when it changes, the streams are fetched again."),
        "rejected": ("Why PostgreSQL's jsonb could not store the summary (NaN, \\u0000, invalid UTF-8); "
                     "null for every stored summary. A rejected summary has no activities row."),
        "payload_text": "The rejected summary verbatim as text; null when payload holds it.",
    },
    "export_activities_raw": {
        "activity_id": _ACTIVITY_ID,
        "activity_date": _ACTIVITY_DATE + " Found by the rule in local_date_rule.",
        "archive_sha256": "SHA-256 of the export archive (export_<id>.zip) this row came from.",
        "csv_line": "First line of the row in the archive's activities.csv.",
        "row": "The activities.csv row verbatim as JSON [[header, occurrence, value], ...], unknown columns "
               "included.",
        "summary": "The same activity in Strava's SummaryActivity shape (JSON), derived from the row and the "
                   "original file; null if the row is unusable.",
        "file_path": "Path of the activity's original upload inside the archive; null for manual entries.",
        "file_sha256": "SHA-256 of the original file's bytes: its name in the raw blob store.",
        "file_format": "Format of the original file: 'fit', 'gpx' or 'tcx' (gzipped or not).",
        "file_size": "Size of the original file, bytes.",
        "samples": "Samples (records, trackpoints) read from the original file.",
        "status": "'ok' (file read), 'no_file' (manual entry), 'missing_file' (named but not in the "
                  "archive) or 'failed' (error says why).",
        "error": "Why the row or its file could not be read; null when status is 'ok' or 'no_file'.",
        "local_date_rule": "Which rule found the local date: 'api', 'fit_local_timestamp', 'gps_timezone' or "
                           "'configured_timezone' (STRAVA_PIPELINE_TIMEZONE).",
        "imported_at": "When the archive was imported (UTC).",
    },
    "activities": {
        "activity_id": _ACTIVITY_ID,
        "activity_date": _ACTIVITY_DATE,
        "athlete_id": "Strava's id of the athlete who recorded it.",
        "name": "The activity's title.",
        "sport_type": _SPORT_TYPE,
        "type": "Strava's older, coarser activity type (deprecated in favour of sport_type).",
        "workout_type": "Strava's workout type: runs 0 default, 1 race, 2 long run, 3 workout; rides 10 "
                        "default, 11 race, 12 workout; null if never set.",
        "start_date": "Start time (UTC).",
        "start_date_local": "Start time on the athlete's wall clock (no time zone).",
        "timezone": "Strava's time zone of the start, e.g. '(GMT+01:00) Europe/Berlin'.",
        "utc_offset_s": "Offset of start_date_local from UTC at the start, s.",
        "distance_m": "Distance, m.",
        "moving_time_s": "Moving time as Strava computes it, s.",
        "elapsed_time_s": "Elapsed time from start to finish, pauses included, s.",
        "total_elevation_gain_m": "Elevation gain as Strava computes it, m.",
        "elev_high_m": "Highest elevation, m.",
        "elev_low_m": "Lowest elevation, m.",
        "average_speed_mps": "Average speed over moving time, m/s.",
        "max_speed_mps": "Maximum speed, m/s.",
        "has_heartrate": "Whether the recording has heart rate.",
        "average_heartrate_bpm": "Average heart rate as Strava computes it, bpm; null without heart rate.",
        "max_heartrate_bpm": "Maximum heart rate, bpm; null without heart rate.",
        "average_cadence_rpm": "Average cadence, rpm (runs: steps per minute of one foot).",
        "average_watts": "Average power, W (measured, or Strava's estimate for rides: see device_watts).",
        "weighted_average_watts": "Strava's weighted average power, W; rides with a power meter only.",
        "max_watts": "Maximum power, W; power meter only.",
        "kilojoules_kj": "Work done, kJ; rides only.",
        "device_watts": "Whether power came from a power meter (false: Strava's estimate).",
        "average_temp_c": "Average temperature the device recorded, °C.",
        "suffer_score": "Strava's Relative Effort (its older name 'suffer score'); needs heart rate.",
        "calories_kcal": "Energy Strava estimates, kcal.",
        "start_lat": "Latitude of the start, degrees; null without GPS (or inside a privacy zone).",
        "start_lng": "Longitude of the start, degrees.",
        "end_lat": "Latitude of the finish, degrees.",
        "end_lng": "Longitude of the finish, degrees.",
        "summary_polyline": "The route as a Google encoded polyline at summary resolution; null without GPS.",
        "trainer": "Recorded on an indoor trainer or treadmill.",
        "commute": "Marked as a commute.",
        "manual": "Entered by hand (no recording, no streams).",
        "private": "Visible to the athlete only (legacy flag; see visibility).",
        "visibility": "Who may see it: 'everyone', 'followers_only' or 'only_me'.",
        "flagged": "Flagged on Strava (e.g. a suspected wrong sport or a car ride).",
        "gear_id": "The bike or shoes used (gear.gear_id); null if none.",
        "device_name": "The device that recorded it, e.g. 'Garmin Forerunner 265'.",
        "upload_id": "Strava's id of the upload that created it; null for manual entries.",
        "external_id": "The uploaded file's name or the device's id for the recording.",
        "achievement_count": "Achievements (PRs, segment top tens) earned.",
        "kudos_count": "Kudos received.",
        "comment_count": "Comments received.",
        "athlete_count": "Athletes who took part (group activities), at least 1.",
        "photo_count": "Photos attached (Instagram photos excluded).",
        "pr_count": "Personal records set on segments.",
        "fetched_at": "When the summary was received from Strava or read from the archive (UTC).",
        "source": "Where the row of record came from: 'api' (Strava's listing) or 'export' (the archive only).",
        "relative_effort": "Relative Effort from the export archive; null for activities the archive lacks.",
        "perceived_exertion": "Perceived exertion the athlete entered, 1-10 (export archive).",
        "private_note": "The athlete's private note (export archive).",
        "gear_name": "Name of the gear used, as the export archive writes it.",
        "weather_condition": "Weather at the start, as Strava recorded it (export archive).",
        "weather_temperature_c": "Air temperature at the start, °C (export archive).",
        "total_steps": "Steps counted by the device (export archive).",
        "grade_adjusted_distance_m": "Grade-adjusted distance, m: the flat distance of equal effort (export "
                                     "archive; runs).",
    },
    "streams_raw": {
        "activity_id": _ACTIVITY_ID,
        "activity_date": _ACTIVITY_DATE,
        "summary_fingerprint": "The summary's fingerprint when the streams were fetched (see "
                               "activities_raw.summary_fingerprint): a different one means fetch again.",
        "status": "'ok' (streams received) or 'not_found' (Strava answered 404; never requested again).",
        "fetched_at": _FETCHED_AT,
        "payload": "The /activities/{id}/streams body verbatim (JSON, keyed by stream type); null for "
                   "'not_found'.",
    },
    "activity_streams": {
        "activity_id": _ACTIVITY_ID,
        "activity_date": _ACTIVITY_DATE,
        "sample_index": "Position of the sample in the recording, from 0.",
        "time_s": "Seconds since the start of the recording.",
        "lat": "Latitude, degrees; null without GPS.",
        "lng": "Longitude, degrees; null without GPS.",
        "altitude_m": "Altitude, m.",
        "distance_m": "Distance covered since the start, m.",
        "velocity_mps": "Speed, smoothed, m/s.",
        "heartrate_bpm": "Heart rate, bpm; null without a heart-rate sensor.",
        "cadence_rpm": "Cadence, rpm (runs: steps per minute of one foot).",
        "watts": "Power, W; null without a power meter.",
        "temp_c": "Temperature the device measured, °C.",
        "moving": "Whether the athlete was moving at this sample (Strava's flag; for an archive file, from its speed).",
        "grade_pct": "Gradient, smoothed, %.",
        "source": "'api' (Strava's streams) or 'export' (the archive's original file).",
    },
    "activity_metrics": {
        "activity_id": _ACTIVITY_ID,
        "activity_date": _ACTIVITY_DATE,
        "sport_type": _SPORT_TYPE,
        "moving_time_s": "Moving time from the streams, s; null without streams (manual entries).",
        "elevation_gain_m": "Elevation gain from the smoothed altitude stream (with hysteresis), m.",
        "avg_heartrate_bpm": "Heart rate averaged over moving time (time-weighted), bpm.",
        "max_heartrate_bpm": "Maximum heart rate, bpm.",
        "hr_zone_1_s": "Moving seconds in the athlete's heart-rate zone 1.",
        "hr_zone_2_s": "Moving seconds in heart-rate zone 2.",
        "hr_zone_3_s": "Moving seconds in heart-rate zone 3.",
        "hr_zone_4_s": "Moving seconds in heart-rate zone 4.",
        "hr_zone_5_s": "Moving seconds in heart-rate zone 5.",
        "best_400m_s": "Fastest elapsed time over 400 m within the activity, s (interpolated between samples).",
        "best_1km_s": "Fastest elapsed time over 1 km, s.",
        "best_1mile_s": "Fastest elapsed time over one mile (1609.344 m), s.",
        "best_5km_s": "Fastest elapsed time over 5 km, s.",
        "best_10km_s": "Fastest elapsed time over 10 km, s.",
        "best_half_marathon_s": "Fastest elapsed time over a half marathon (21.0975 km), s.",
        "best_marathon_s": "Fastest elapsed time over a marathon (42.195 km), s.",
        "power_5s_w": "Best mean power over 5 s (power curve; stops count as 0 W), W.",
        "power_1min_w": "Best mean power over 1 min, W.",
        "power_5min_w": "Best mean power over 5 min, W.",
        "power_20min_w": "Best mean power over 20 min, W.",
        "power_60min_w": "Best mean power over 60 min, W.",
        "normalized_power_w": "Normalized power (30 s rolling mean, 4th-power average), W.",
        "intensity_factor": "Normalized power / the athlete's FTP; null without power or FTP.",
        "tss": "Training Stress Score; null without power or FTP.",
        "trimp": "Banister TRIMP from heart rate over moving time; null without heart rate.",
        "load": "The activity's training load: tss if known, else trimp (see load_source).",
        "load_source": "Which figure load is: 'tss', 'trimp', or null (no load).",
    },
    "daily_training_load": {
        "date": "A calendar day (local): every day from the first activity through today, rest days included.",
        "load": "Sum of the day's activity loads (activity_metrics.load); 0 on rest days.",
        "ctl": "Chronic training load, 'fitness': exponentially weighted load over 42 days.",
        "atl": "Acute training load, 'fatigue': exponentially weighted load over 7 days.",
        "tsb": "Training stress balance, 'form': yesterday's ctl minus atl.",
    },
    "weekly_summary": {
        "iso_year": "ISO 8601 year of the week (differs from the calendar year around New Year).",
        "iso_week": "ISO 8601 week number, 1-53.",
        "week_start": "Monday of the week (local dates).",
        "sport_type": _SPORT_TYPE,
        "activity_count": "Activities of this sport in the week.",
        "distance_m": "Total distance (Strava's summary figures), m.",
        "moving_time_s": "Total moving time (Strava's summary figures), s.",
        "elevation_gain_m": "Total elevation gain: from the streams where present, else Strava's, m.",
        "load": "Total training load (activities without metrics count 0).",
    },
    "partition_versions": {
        "table_name": "The table (strava.<asset>) a partition belongs to.",
        "partition_key": "The partition: a local date 'YYYY-MM-DD', or '' for an unpartitioned table.",
        "switch_id": ("Id of the write that last replaced the partition; its Parquet file carries the same id "
                      "(none for a partition written before this table existed)."),
        "row_count": "Rows the write put into the partition (the same in PostgreSQL and Parquet).",
        "committed_at": "When that write committed (UTC).",
    },
}


def description(table: str, column: str) -> str | None:
    """The column's description, or None when it has none (a test fails until it does)."""
    return COLUMN_DOCS.get(table, {}).get(column)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def column_comments_sql(docs: Mapping[str, Mapping[str, str]] = COLUMN_DOCS, schema: str = SCHEMA) -> str:
    """``COMMENT ON COLUMN`` statements for ``docs``: the text of the comments migration (or, given only the
    changed columns, of the next one). Identifiers are always quoted (``"primary"``, ``"row"`` are keywords)."""
    lines = []
    for table, columns in docs.items():
        for column, text in columns.items():
            target = ".".join(_identifier(part) for part in (schema, table, column))
            lines.append(f"COMMENT ON COLUMN {target} IS {_literal(text)};")
    return "\n".join(lines) + "\n"
