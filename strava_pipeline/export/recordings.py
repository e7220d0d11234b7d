"""The original activity files of a bulk export, decoded to one row per recorded sample.

The archive keeps each upload as it was sent: FIT (binary), GPX 1.0/1.1 or TCX v2 (XML), each optionally
gzipped; the file name says which. Every FIT ``record`` message, GPX ``trkpt`` and TCX ``Trackpoint``
becomes exactly one row, in file order: nothing is dropped, invented or resampled, and a value the file
lacks stays null (``transforms.recorded_streams.complete_streams`` derives speed, grade and moving).

FIT is decoded by fitfast (Rust: one pass over a 700 kB file takes 15 ms, an hour at 1 Hz decodes in
~9 ms all told, about 20x faster than fitdecode) where its answer is known to be exact, and by fitdecode
(pure Python; agrees with every records CSV we have) otherwise. Measured on real files, fitfast 0.1.0
refuses valid files whose header CRC is 0x0000 (older Garmin devices), truncates the ``enhanced_speed``
it expands from ``speed`` by 1 mm/s in ~0.5 % of records, does not expand ``compressed_speed_distance``
and lets a developer field named like a native one overwrite it. So ``speed``/``altitude`` as written
are read before their expanded ``enhanced_`` twins (equal otherwise), and fitdecode takes over when
fitfast fails, when records carry neither speed nor distance, or when a native field name appears among
the file's bytes; ``Recording.decoder`` says which ran. XML goes through lxml with entities never
expanded and no DTD or network access; an entity declaration is refused before parsing, so a
billion-laughs file costs microseconds.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import PurePosixPath
from typing import Any

import fitdecode
import fitfast
import numpy as np
import polars as pl
from fitdecode.types import DevFieldDefinition
from lxml import etree

from strava_pipeline.transforms.recorded_streams import RECORDING_SCHEMA

__all__ = ["FORMATS", "RECORDING_SCHEMA", "Recording", "RecordingError", "decode_recording"]

#: File name endings (lower case, after an optional ``.gz``) and the format each names.
FORMATS: dict[str, str] = {".fit": "fit", ".gpx": "gpx", ".tcx": "tcx"}

#: A decompressed file larger than this is refused (real ones are a few MB; this stops a gzip bomb).
MAX_DECOMPRESSED_BYTES = 256 * 2**20

_FITFAST = f"fitfast {version('fitfast')}"
_FITDECODE = f"fitdecode {version('fitdecode')}"
_LXML = f"lxml {version('lxml')}"

#: 1989-12-31T00:00:00Z, the FIT epoch, in Unix seconds; FIT times below 0x10000000 count from power-on.
_FIT_EPOCH = 631_065_600
_FIT_ABSOLUTE = _FIT_EPOCH + 0x10000000
_SEMICIRCLE_DEG = 180 / 2**31

# FIT record fields we read, by field number (profile names; fitfast names its columns so).
_FIT_RECORD = {
    253: "timestamp", 0: "position_lat", 1: "position_long", 2: "altitude", 78: "enhanced_altitude",
    5: "distance", 6: "speed", 73: "enhanced_speed", 3: "heart_rate", 4: "cadence", 7: "power",
    13: "temperature", 9: "grade",
}
_FIT_COLUMNS = tuple(_FIT_RECORD.values())
# A developer field with one of these names would shadow the native column in fitfast's output.
_FIT_NATIVE_NAMES = tuple(name.encode() for name in _FIT_COLUMNS)
_FIT_SPORTS: dict[int, str] = fitdecode.profile.FIELD_TYPES["sport"].enum

# An entity declaration as UTF-8/ASCII and UTF-16 bytes; other encodings meet the DTD check after parsing.
_ENTITY_DECLARATIONS = tuple("<!ENTITY".encode(codec) for codec in ("ascii", "utf-16-le", "utf-16-be"))
_LXML_WHERE = re.compile(r", line \d+, column \d+$")


class RecordingError(ValueError):
    """A file that cannot be decoded: ``name`` is the file, ``problem`` what is wrong with it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across worker processes
        return (type(self), (self.name, self.problem))


@dataclass(frozen=True)
class Recording:
    """One decoded file: its samples (``RECORDING_SCHEMA``, one row per recorded sample) and what it says."""

    format: str  # "fit" | "gpx" | "tcx"
    samples: pl.DataFrame
    #: The FIT session's start_time, else the first timed sample's time.
    start_utc: datetime | None
    #: FIT ``activity.local_timestamp`` as written (naive wall-clock time). Devices write the activity
    #: message at the end; ``local_timestamp_utc`` is the same instant in UTC, the difference the offset.
    local_start: datetime | None
    sport: str | None  # FIT session sport ("running"), TCX Activity Sport ("Biking"), GPX trk type
    decoder: str  # e.g. "fitfast 0.1.0", "fitdecode 0.11.0", "lxml 6.1.3"
    local_timestamp_utc: datetime | None = None


def decode_recording(data: bytes, name: str, *, fit_decoder: str = "auto") -> Recording:
    """Decode one original file; ``name`` (e.g. ``activities/123.fit.gz``) decides the format.

    ``fit_decoder``: "auto" (fitfast where exact, else fitdecode), or "fitdecode" / "fitfast" to force one
    (fitfast raises RecordingError where "auto" would fall back). Raises RecordingError naming the file.
    """
    lowered = name.lower()
    gzipped = lowered.endswith(".gz")
    kind = FORMATS.get(PurePosixPath(lowered.removesuffix(".gz")).suffix)
    if kind is None:
        raise RecordingError(name, "not a recording (expected .fit, .gpx or .tcx, optionally .gz)")
    if gzipped:
        data = _gunzip(data, name)
    if kind == "fit":
        return _decode_fit(data, name, fit_decoder)
    root = _parse_xml(data, name)
    return _decode_gpx(root, name) if kind == "gpx" else _decode_tcx(root, name)


def _gunzip(data: bytes, name: str) -> bytes:
    """Every member of a gzip stream, refusing a truncated, corrupt or oversized one."""
    if data[:2] != b"\x1f\x8b":
        raise RecordingError(name, "not a gzip file")
    parts: list[bytes] = []
    total = 0
    while True:
        stream = zlib.decompressobj(wbits=31)
        try:
            part = stream.decompress(data, MAX_DECOMPRESSED_BYTES + 1 - total)
        except zlib.error as exc:
            raise RecordingError(name, f"corrupt gzip data ({exc})") from None
        total += len(part)
        if total > MAX_DECOMPRESSED_BYTES:
            raise RecordingError(name, f"decompresses to more than {MAX_DECOMPRESSED_BYTES // 2**20} MiB")
        parts.append(part)
        if not stream.eof:
            raise RecordingError(name, "gzip stream truncated")
        data = stream.unused_data
        if not data.strip(b"\x00"):  # end, or the zero padding some writers leave
            return b"".join(parts)
        if data[:2] != b"\x1f\x8b":
            raise RecordingError(name, "trailing garbage after the gzip stream")


# --- FIT -------------------------------------------------------------------------------------------------

@dataclass
class _Fit:
    """A FIT file's record columns (float64, NaN = absent; times in Unix seconds) and the messages we need."""

    columns: dict[str, np.ndarray]
    session_start: float | None = None
    sport: str | None = None
    activity_time: float | None = None
    activity_local: float | None = None


def _decode_fit(data: bytes, name: str, decoder: str) -> Recording:
    if decoder not in ("auto", "fitfast", "fitdecode"):
        raise ValueError(f"unknown FIT decoder {decoder!r}")
    fit = _fit_fitfast(data, strict=decoder == "fitfast") if decoder != "fitdecode" else None
    used = _FITFAST
    if fit is None:
        if decoder == "fitfast":
            raise RecordingError(name, "fitfast cannot decode this FIT file exactly")
        fit, used = _fit_fitdecode(data, name), _FITDECODE
    return _fit_recording(fit, used)


def _fit_fitfast(data: bytes, *, strict: bool) -> _Fit | None:
    """fitfast's decoding, or None where it is not known to be exact (see the module docstring)."""
    if not strict and any(field in data for field in _FIT_NATIVE_NAMES):
        return None
    try:
        raw = fitfast.records(data, degrees=False)
    except fitfast.FitDecodeError:
        return None
    if not strict and raw and not raw.keys() & {"speed", "enhanced_speed", "distance"}:
        return None  # speed and distance may sit in compressed_speed_distance, which fitfast skips
    n = len(next(iter(raw.values()))) if raw else 0
    nan = np.full(n, np.nan)
    fit = _Fit({column: raw.get(column, nan) for column in _FIT_COLUMNS})
    session = fitfast.records(data, "session")
    fit.session_start = _first(session.get("start_time"))
    sport = _first(session.get("sport"))
    if sport is None:
        sport = _first(fitfast.records(data, "sport").get("sport"))
    fit.sport = None if sport is None else _FIT_SPORTS.get(int(sport), str(int(sport)))
    activity = fitfast.records(data, "activity")
    fit.activity_time = _first(activity.get("timestamp"))
    fit.activity_local = _first(activity.get("local_timestamp"))
    return fit


def _first(values: np.ndarray | None) -> float | None:
    if values is None:
        return None
    known = values[~np.isnan(values)]
    return float(known[0]) if known.size else None


def _fit_fitdecode(data: bytes, name: str) -> _Fit:
    columns: dict[str, list[float]] = {column: [] for column in _FIT_COLUMNS}
    appenders = [(column, values.append) for column, values in columns.items()]
    fit = _Fit({})
    session_sport = sport_sport = None
    try:
        # WARN, not RAISE: a definition whose field size disagrees with the profile (COROS) is read as
        # bytes with a warning; truncation, bad headers and CRCs raise either way.
        with fitdecode.FitReader(data, processor=None, check_crc=fitdecode.CrcCheck.RAISE,
                                 error_handling=fitdecode.ErrorHandling.WARN) as reader:
            for frame in reader:
                if frame.frame_type != fitdecode.FIT_FRAME_DATA:
                    continue
                number = frame.global_mesg_num
                if number == 20:  # record
                    row: dict[str, float] = {}
                    for field in frame.fields:
                        column = _FIT_RECORD.get(field.def_num)
                        value = field.value
                        if column is None or value is None or not isinstance(value, int | float):
                            continue
                        if field.field_def is None:  # expanded from a component: the written field wins
                            row.setdefault(column, value)
                        elif not isinstance(field.field_def, DevFieldDefinition):
                            row[column] = value
                    for column, append in appenders:
                        append(row.get(column, np.nan))
                elif number == 18 and fit.session_start is None:  # session
                    fit.session_start = _fit_time(frame.get_value(2, fallback=None))
                    session_sport = frame.get_value(5, fallback=None)
                elif number == 12 and sport_sport is None:  # sport
                    sport_sport = frame.get_value(1, fallback=None)
                elif number == 34 and fit.activity_time is None:  # activity
                    fit.activity_time = _fit_time(frame.get_value(253, fallback=None))
                    fit.activity_local = _fit_time(frame.get_value(5, fallback=None))
    except fitdecode.FitEOFError as exc:
        raise RecordingError(name, f"FIT file truncated at byte {exc.offset + exc.got}") from None
    except fitdecode.FitHeaderError as exc:
        raise RecordingError(name, f"not a valid FIT file ({exc})") from None
    except fitdecode.FitCRCError as exc:
        raise RecordingError(name, f"FIT file corrupt ({exc})") from None
    except fitdecode.FitParseError as exc:
        detail = str(exc).partition(": ")[2]  # e.g. "local message 11 not defined"
        where = f"FIT file corrupt at byte {exc.offset}"
        raise RecordingError(name, f"{where} ({detail})" if detail else where) from None
    except (fitdecode.FitError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise RecordingError(name, f"FIT file undecodable ({type(exc).__name__}: {exc})") from None
    fit.columns = {column: np.asarray(values, dtype=np.float64) for column, values in columns.items()}
    fit.columns["timestamp"] += _FIT_EPOCH
    sport = session_sport if session_sport is not None else sport_sport
    fit.sport = None if sport is None else str(sport)
    return fit


def _fit_time(raw: Any) -> float | None:
    return float(raw) + _FIT_EPOCH if isinstance(raw, int) else None


def _fit_recording(fit: _Fit, decoder: str) -> Recording:
    c = fit.columns
    ts = c["timestamp"]
    absolute = np.where(ts >= _FIT_ABSOLUTE, ts, np.nan)
    timed = ts[~np.isnan(ts)]
    speed = np.where(np.isnan(c["speed"]), c["enhanced_speed"], c["speed"])
    altitude = np.where(np.isnan(c["altitude"]), c["enhanced_altitude"], c["altitude"])
    samples = pl.DataFrame([
        _times(absolute * 1e6),
        _typed("time_s", ts - timed[0] if timed.size else ts, pl.Int32),
        _typed("lat", c["position_lat"] * _SEMICIRCLE_DEG, pl.Float64),
        _typed("lng", c["position_long"] * _SEMICIRCLE_DEG, pl.Float64),
        _typed("altitude_m", altitude, pl.Float64),
        _typed("distance_m", c["distance"], pl.Float64),
        _typed("velocity_mps", speed, pl.Float64),
        _typed("heartrate_bpm", c["heart_rate"], pl.Int16),
        _typed("cadence_rpm", c["cadence"], pl.Float64),
        _typed("watts", c["power"], pl.Int16),
        _typed("temp_c", c["temperature"], pl.Int16),
        pl.Series("moving", [None] * ts.size, dtype=pl.Boolean),
        _typed("grade_pct", c["grade"], pl.Float64),
    ])
    first = absolute[~np.isnan(absolute)]
    start = fit.session_start if fit.session_start is not None and fit.session_start >= _FIT_ABSOLUTE else None
    if start is None and first.size:
        start = float(first[0])
    local = None
    if fit.activity_local is not None:
        local = datetime(1970, 1, 1) + timedelta(seconds=fit.activity_local)
    return Recording(
        format="fit",
        samples=samples,
        start_utc=_utc(start),
        local_start=local,
        sport=fit.sport,
        decoder=decoder,
        local_timestamp_utc=_utc(fit.activity_time) if local is not None else None,
    )


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _typed(name: str, values: np.ndarray, dtype: pl.DataType) -> pl.Series:
    """A column from floats (NaN = null); integer columns are rounded, out-of-range values become null."""
    series = pl.Series(name, values, dtype=pl.Float64, nan_to_null=True)
    if dtype.is_integer():
        return series.round().cast(dtype, strict=False)
    return series


def _times(us: np.ndarray) -> pl.Series:
    return pl.Series("timestamp", us, dtype=pl.Float64, nan_to_null=True).round().cast(pl.Int64).cast(
        RECORDING_SCHEMA["timestamp"])


# --- GPX and TCX -----------------------------------------------------------------------------------------

def _parse_xml(data: bytes, name: str) -> etree._Element:
    """The document's root, parsed without expanding entities or reading DTDs or the network."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    data = data.lstrip(b" \t\r\n")  # Strava's TCX files start with ~10 spaces before <?xml
    if any(declaration in data for declaration in _ENTITY_DECLARATIONS):
        raise RecordingError(name, "XML entity declarations are refused")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        message = _LXML_WHERE.sub("", str(exc.msg or exc))
        raise RecordingError(name, f"malformed XML at line {exc.lineno}: {message}") from None
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):  # declared in an encoding the scan missed
        raise RecordingError(name, "XML entity declarations are refused")
    return root


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def _namespace(root: etree._Element) -> str:
    return root.tag.partition("}")[0] + "}" if root.tag.startswith("{") else ""


# Descendant element (local name) -> column; the first occurrence in a point wins.
_GPX_FIELDS = {
    "ele": "altitude_m", "time": "time", "hr": "heartrate_bpm", "heartrate": "heartrate_bpm",
    "cad": "cadence_rpm", "cadence": "cadence_rpm", "atemp": "temp_c", "temp": "temp_c",
    "power": "watts", "PowerInWatts": "watts", "speed": "velocity_mps",
}
_TCX_FIELDS = {
    "Time": "time", "LatitudeDegrees": "lat", "LongitudeDegrees": "lng", "AltitudeMeters": "altitude_m",
    "DistanceMeters": "distance_m", "Value": "heartrate_bpm", "Cadence": "cadence_rpm", "RunCadence": "run_cadence",
    "Speed": "velocity_mps", "Watts": "watts",
}


def _points(points: Any, fields: dict[str, str], attributes: dict[str, str]) -> dict[str, list[str | None]]:
    """Text of each wanted descendant of each point (None where absent), one list per column."""
    columns: dict[str, list[str | None]] = {c: [] for c in {*fields.values(), *attributes.values()}}
    by_tag: dict[str, str] = {}
    for point in points:
        row: dict[str, str | None] = {column: point.get(attribute) for attribute, column in attributes.items()}
        for element in point.iterdescendants():
            tag = element.tag
            if not isinstance(tag, str):  # comments, processing instructions
                continue
            column = by_tag.get(tag)
            if column is None:
                column = by_tag[tag] = fields.get(_local_name(tag), "")
            if column and column not in row:
                row[column] = element.text
        for column, values in columns.items():
            values.append(row.get(column))
    return columns


def _xml_samples(columns: dict[str, list[str | None]], name: str, what: str) -> pl.DataFrame:
    """Typed samples from the points' texts: one polars pass for every numeric column (~50 µs an operation)."""
    us = _xml_times(columns.pop("time"), name, what)
    timed = us[~np.isnan(us)]
    texts = pl.DataFrame({column: pl.Series(values, dtype=pl.String) for column, values in columns.items()})
    texts = texts.select(pl.all().str.strip_chars().replace("", None))
    number = {column: pl.col(column).cast(pl.Float64, strict=False) for column in texts.columns}
    bad = texts.select((pl.col(c).is_not_null() & e.is_null()).any() for c, e in number.items()).row(0, named=True)
    for column, failed in bad.items():
        if failed:
            values = texts.get_column(column)
            i = int((values.is_not_null() & values.cast(pl.Float64, strict=False).is_null()).arg_true()[0])
            raise RecordingError(name, f"{what} {i + 1} has {column} {values[i]!r}, not a number")
    typed = []
    for column, dtype in RECORDING_SCHEMA.items():
        if column in ("timestamp", "time_s"):
            continue
        if column not in number:
            typed.append(pl.lit(None, dtype=dtype).alias(column))
        elif dtype.is_integer():
            typed.append(number[column].round().cast(dtype, strict=False))
        else:
            typed.append(number[column])
    samples = texts.select(typed) if texts.height else pl.DataFrame(schema={
        c: t for c, t in RECORDING_SCHEMA.items() if c not in ("timestamp", "time_s")})
    return samples.with_columns(
        _times(us), _typed("time_s", (us - timed[0]) / 1e6 if timed.size else us, pl.Int32),
    ).select(list(RECORDING_SCHEMA))


def _xml_times(values: list[str | None], name: str, what: str) -> np.ndarray:
    """Microseconds since 1970 (NaN where absent); ISO 8601, a time without offset being UTC."""
    out = np.full(len(values), np.nan)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for i, text in enumerate(values):
        if text is None or not (text := text.strip()):
            continue
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise RecordingError(name, f"{what} {i + 1} has time {text!r}, not an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        out[i] = (moment - epoch) // timedelta(microseconds=1)
    return out


def _xml_recording(kind: str, samples: pl.DataFrame, sport: str | None, fallback_start: str | None) -> Recording:
    timed = samples.get_column("timestamp").drop_nulls()
    start = timed[0] if timed.len() else None
    if start is None and fallback_start:
        try:
            start = datetime.fromisoformat(fallback_start.strip())
            start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        except ValueError:
            start = None
    return Recording(format=kind, samples=samples, start_utc=start, local_start=None, sport=sport, decoder=_LXML)


def _decode_gpx(root: etree._Element, name: str) -> Recording:
    if _local_name(root.tag) != "gpx":
        raise RecordingError(name, f"not a GPX document (its root element is <{_local_name(root.tag)}>)")
    ns = _namespace(root)
    columns = _points(root.iter(f"{ns}trkpt"), _GPX_FIELDS, {"lat": "lat", "lon": "lng"})
    sport = root.findtext(f"{ns}trk/{ns}type")
    return _xml_recording("gpx", _xml_samples(columns, name, "trkpt"), sport.strip() if sport else None, None)


def _decode_tcx(root: etree._Element, name: str) -> Recording:
    if _local_name(root.tag) != "TrainingCenterDatabase":
        raise RecordingError(name, f"not a TCX document (its root element is <{_local_name(root.tag)}>)")
    ns = _namespace(root)
    columns = _points(root.iter(f"{ns}Trackpoint"), _TCX_FIELDS, {})
    run_cadence = columns.pop("run_cadence")
    columns["cadence_rpm"] = [c if c is not None else r for c, r in zip(columns["cadence_rpm"], run_cadence,
                                                                      strict=True)]
    activity = next(root.iter(f"{ns}Activity"), None)
    sport = activity.get("Sport") if activity is not None else None
    identity = activity.findtext(f"{ns}Id") if activity is not None else None
    return _xml_recording("tcx", _xml_samples(columns, name, "Trackpoint"), sport, identity)
