"""The parser of ``activities.csv`` from Strava's bulk export archive ("Download your data").

Pure: bytes in, an :class:`ActivitiesCsv` out; no Dagster, no files. What real archives do, and what this
module therefore handles (see ``/work/shared/strava/EXPORT-FACTS.md``):

* **Names repeat.** ``Elapsed Time``, ``Distance``, ``Max Heart Rate``, ``Relative Effort`` and ``Commute``
  each appear twice: a display block (columns 1-15, the athlete's units) and a raw block (Strava's units).
  Columns are therefore addressed by ``(name, occurrence)``, never by position.
* **The column set grows** (87..103 columns seen): optional columns may be absent (their fields are
  ``None``) and unknown columns are kept verbatim in :attr:`CsvRow.values` / :attr:`ActivitiesCsv.columns`,
  so the raw layer loses nothing the normalised layer does not understand yet.
* **The language follows the account**: English, German (day-first dates, decimal commas, translated
  activity types) and the pre-2019 lower-case header. The layout is read from the header, never guessed
  from values; an unknown header raises :class:`ExportFormatError` naming the cells it could not map.
* **Rows are messy**: quoted line breaks, commas, quotes and emoji in free text (hence the ``csv`` module),
  a UTF-8 BOM, ``#error#`` cells (treated as missing), ids above 2^31. One bad row fails only itself
  (:attr:`CsvRow.error`); the file as a whole still parses.

The mapping is table-driven: :data:`FIELDS` says, per canonical field, which English ``(name, occurrence)``
columns feed it (in order of preference) and how to convert the cell; :data:`GERMAN_NAMES` translates the
English names; :data:`PRE_2019_FIELDS` covers the old header. Supporting another language is one more
translation table, not more code.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, Literal

__all__ = [
    "ENGLISH_HEADER",
    "FIELDS",
    "GERMAN_NAMES",
    "GERMAN_TYPES",
    "PRE_2019_HEADER",
    "ActivitiesCsv",
    "CsvRow",
    "ExportActivity",
    "ExportFormatError",
    "parse_activities_csv",
    "parse_activity_date",
    "sport_type_of",
]

Layout = Literal["en", "de", "pre-2019"]

#: Strava writes this in cells it could not compute; it means "missing", not a value.
ERROR_MARKER: Final = "#error#"


class ExportFormatError(ValueError):
    """The file is not an ``activities.csv`` this parser knows: its header maps to no known layout.

    A ``ValueError`` so callers that treat bad input generically still catch it; the message names the
    file, the header cells that could not be mapped and the layouts that were expected, which is what a
    user needs to report a new Strava format.
    """


@dataclass(frozen=True)
class ExportActivity:
    """One row normalised to Strava's API units and names (metres, seconds, m/s, UTC, ``sport_type``).

    Every field but the id and the start is optional: older files lack columns, manual activities lack
    most values and Strava writes ``#error#`` into some cells. Fields after ``filename`` are additions
    beyond the shared contract; they have defaults so positional construction keeps working.
    """

    activity_id: int
    start_date_utc: datetime
    name: str | None
    sport_type: str | None
    description: str | None
    elapsed_time_s: float | None
    moving_time_s: float | None
    distance_m: float | None
    elevation_gain_m: float | None
    max_speed_mps: float | None
    average_speed_mps: float | None
    max_heartrate_bpm: float | None
    average_heartrate_bpm: float | None
    average_watts: float | None
    average_cadence: float | None
    calories: float | None
    relative_effort: float | None
    perceived_exertion: float | None
    private_note: str | None
    gear_name: str | None
    commute: bool | None
    total_steps: float | None
    grade_adjusted_distance_m: float | None
    weather_condition: str | None
    weather_temperature_c: float | None
    filename: str | None
    #: The ``Activity Type`` cell as written (display name in the file's language), before mapping.
    activity_type_display: str | None = None
    #: The display block's distance in the athlete's unit (km, or miles for imperial accounts): not converted.
    display_distance: float | None = None
    elevation_loss_m: float | None = None
    elevation_low_m: float | None = None
    elevation_high_m: float | None = None
    max_watts: float | None = None
    weighted_average_watts: float | None = None
    max_cadence: float | None = None
    average_temperature_c: float | None = None
    max_temperature_c: float | None = None


@dataclass(frozen=True)
class CsvRow:
    """One CSV record: always the verbatim cells (the raw layer), plus the normalised activity if possible.

    ``values`` has one cell per header column; only a record whose cell count differs from the header's
    (then ``error`` says so) has a different length, and its cells are kept exactly as read.
    ``warnings`` lists optional cells that could not be read (the field became ``None``); they do not fail
    the row, because one odd value in, say, ``Weather Temperature`` must not hide an otherwise good activity.
    """

    line: int
    values: tuple[str, ...]
    activity: ExportActivity | None
    error: str | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActivitiesCsv:
    """The parsed file: its layout, its header as the raw layer's key, and every record."""

    source: str
    layout: str
    columns: tuple[tuple[str, int], ...]
    rows: tuple[CsvRow, ...]

    @property
    def activities(self) -> tuple[ExportActivity, ...]:
        """The rows that could be normalised, in file order."""
        return tuple(row.activity for row in self.rows if row.activity is not None)

    @property
    def errors(self) -> tuple[CsvRow, ...]:
        """The rows that could not be normalised (they are still in :attr:`rows`, raw)."""
        return tuple(row for row in self.rows if row.error is not None)


# ---------------------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------------------

#: The 2025-2026 English header in order, as EXPORT-FACTS.md and the contract list it. They call it 96 columns,
#: but the list has 94 names; public importers' fixtures agree with 94 (their 103-column header is these 94 plus
#: :data:`ENGLISH_NEWER_COLUMNS`). Used for the set of known names, never for positions.
ENGLISH_HEADER: Final[tuple[str, ...]] = (
    "Activity ID", "Activity Date", "Activity Name", "Activity Type", "Activity Description", "Elapsed Time",
    "Distance", "Max Heart Rate", "Relative Effort", "Commute", "Activity Private Note", "Activity Gear",
    "Filename", "Athlete Weight", "Bike Weight", "Elapsed Time", "Moving Time", "Distance", "Max Speed",
    "Average Speed", "Elevation Gain", "Elevation Loss", "Elevation Low", "Elevation High", "Max Grade",
    "Average Grade", "Average Positive Grade", "Average Negative Grade", "Max Cadence", "Average Cadence",
    "Max Heart Rate", "Average Heart Rate", "Max Watts", "Average Watts", "Calories", "Max Temperature",
    "Average Temperature", "Relative Effort", "Total Work", "Number of Runs", "Uphill Time", "Downhill Time",
    "Other Time", "Perceived Exertion", "Type", "Start Time", "Weighted Average Power", "Power Count",
    "Prefer Perceived Exertion", "Perceived Relative Effort", "Commute", "Total Weight Lifted", "From Upload",
    "Grade Adjusted Distance", "Weather Observation Time", "Weather Condition", "Weather Temperature",
    "Apparent Temperature", "Dewpoint", "Humidity", "Weather Pressure", "Wind Speed", "Wind Gust",
    "Wind Bearing", "Precipitation Intensity", "Sunrise Time", "Sunset Time", "Moon Phase", "Bike", "Gear",
    "Precipitation Probability", "Precipitation Type", "Cloud Cover", "Weather Visibility", "UV Index",
    "Weather Ozone", "Jump Count", "Total Grit", "Average Flow", "Flagged", "Average Elapsed Speed",
    "Dirt Distance", "Newly Explored Distance", "Newly Explored Dirt Distance", "Activity Count",
    "Total Steps", "Carbon Saved", "Pool Length", "Training Load", "Intensity", "Average Grade Adjusted Pace",
    "Timer Time", "Total Cycles", "Media",
)  # fmt: skip

#: Columns newer files add before ``Media``, in this order (101 and 103 column exports); known, not normalised.
ENGLISH_NEWER_COLUMNS: Final[tuple[str, ...]] = (
    "Recovery", "With Pet", "Competition", "Long Run", "For a Cause", "With Kid", "Downhill Distance",
    "Total Sets", "Total Reps",
)  # fmt: skip

#: English column name -> German names. The first name of each tuple is the shared contract's (what the
#: simulator writes); the others are names seen in real German exports, quoted by public importers: a
#: 92-column German header in a Rust importer's test fixture, a 101-column index map in a Python
#: ``import_archive.py`` and the README of a Python ``strava_import.py``. Both are accepted because the
#: contract and reality differ (e.g. ``Maximale Herzfrequenz`` vs the real ``Max. Herzfrequenz``).
#: Columns missing here keep their English name in German files (per the contract), which the lookup also
#: accepts.
GERMAN_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    "Activity ID": ("Aktivitäts-ID",),
    "Activity Date": ("Aktivitätsdatum",),
    "Activity Name": ("Name der Aktivität",),
    "Activity Type": ("Aktivitätsart",),
    "Activity Description": ("Beschreibung der Aktivität", "Aktivitätsbeschreibung"),
    "Elapsed Time": ("Verstrichene Zeit",),
    "Distance": ("Distanz",),
    "Max Heart Rate": ("Maximale Herzfrequenz", "Max. Herzfrequenz"),
    "Relative Effort": ("Relative Anstrengung", "Relative Leistung"),
    "Commute": ("Pendeln",),
    "Activity Private Note": ("Private Notiz zur Aktivität", "Hinweis zur Privatsphäre für Aktivitäten"),
    "Activity Gear": ("Aktivitätsausrüstung",),
    "Filename": ("Dateiname",),
    "Athlete Weight": ("Sportlergewicht",),
    "Bike Weight": ("Fahrradgewicht",),
    "Moving Time": ("Bewegungszeit",),
    "Max Speed": ("Maximale Geschwindigkeit", "Höchstgeschw."),
    "Average Speed": ("Durchschnittliche Geschwindigkeit",),
    "Elevation Gain": ("Höhenzunahme",),
    "Elevation Loss": ("Höhenabnahme", "Höhenunterschied"),
    "Elevation Low": ("Niedrigste Höhe", "Min. Höhe"),
    "Elevation High": ("Höchste Höhe", "Max. Höhe"),
    "Max Grade": ("Maximale Steigung", "Max. Steigung"),
    "Average Grade": ("Durchschnittliche Steigung",),
    "Average Positive Grade": ("Durchschnittliche positive Steigung",),
    "Average Negative Grade": ("Durchschnittliche negative Steigung",),
    "Max Cadence": ("Maximale Trittfrequenz", "Max. Tritt-/Schrittfrequenz"),
    "Average Cadence": ("Durchschnittliche Trittfrequenz",),
    "Average Heart Rate": ("Durchschnittliche Herzfrequenz",),
    "Max Watts": ("Maximale Wattleistung", "Max. Watt"),
    "Average Watts": ("Durchschnittliche Wattleistung", "Durchschnittliche Watt"),
    "Calories": ("Kalorien",),
    "Max Temperature": ("Maximale Temperatur", "Max. Temperatur"),
    "Average Temperature": ("Durchschnittstemperatur", "Durchschnittliche Temperatur"),
    "Total Work": ("Gesamtarbeit",),
    "Number of Runs": ("Anzahl Läufe",),
    "Uphill Time": ("Bergaufzeit",),
    "Downhill Time": ("Bergabzeit",),
    "Other Time": ("Andere Zeit",),
    "Perceived Exertion": ("Empfundene Anstrengung", "Gefühlte Anstrengung"),
    "Type": ("Art",),
    "Start Time": ("Startzeit",),
    "Weighted Average Power": ("Gewichtete Durchschnittsleistung", "Gewichtete durchschnittliche Leistung"),
    "Power Count": ("Leistungszahl",),
    "Prefer Perceived Exertion": ("Gefühlte Anstrengung verwenden",),
    "Perceived Relative Effort": ("Gefühlte relative Leistung",),
    "Total Weight Lifted": ("Insgesamt gestemmtes Gewicht",),
    "From Upload": ("Von Upload",),
    "Grade Adjusted Distance": ("Steigungsbereinigte Distanz", "Auf Steigung angepasste Distanz"),
    "Weather Observation Time": ("Wetterbeobachtungszeit",),
    "Weather Condition": ("Wetterbedingungen", "Wetterlage"),
    "Weather Temperature": ("Wettertemperatur", "Wetter: Temperatur"),
    "Apparent Temperature": ("Scheinbare Temperatur",),
    "Dewpoint": ("Taupunkt",),
    "Humidity": ("Luftfeuchtigkeit",),
    "Weather Pressure": ("Wetter: Druck",),
    "Wind Speed": ("Windgeschwindigkeit",),
    "Wind Gust": ("Windböe",),
    "Wind Bearing": ("Windrichtung",),
    "Precipitation Intensity": ("Niederschlagsintensität",),
    "Sunrise Time": ("Sonnenaufgangszeit",),
    "Sunset Time": ("Sonnenuntergangszeit",),
    "Moon Phase": ("Mondphase",),
    "Bike": ("Fahrrad",),
    "Gear": ("Ausrüstung",),
    "Precipitation Probability": ("Niederschlagswahrscheinlichkeit",),
    "Precipitation Type": ("Niederschlagsart",),
    "Cloud Cover": ("Wolkendecke",),
    "Weather Visibility": ("Wetter: Sichtbarkeit",),
    "UV Index": ("UV-Index",),
    "Weather Ozone": ("Wetter: Ozon",),
    "Jump Count": ("Sprunganzahl",),
    "Total Grit": ("Schwierigkeit insgesamt",),
    "Average Flow": ("Durchschnittlicher Flow",),
    "Flagged": ("Markiert",),
    "Average Elapsed Speed": ("Durchschnittsgeschwindigkeit im Aufzeichnungszeitraum",),
    "Dirt Distance": ("Auf Schotter zurückgelegte Distanz",),
    "Newly Explored Distance": ("Neu getestete Distanz",),
    "Newly Explored Dirt Distance": ("Neu getestete Schotterdistanz",),
    "Activity Count": ("Aktivitätsanzahl",),
    "Total Steps": ("Schritte gesamt", "Schritte insgesamt"),
    "Carbon Saved": ("Eingesparte CO₂-Emissionen",),
    "Pool Length": ("Pool-Länge",),
    "Training Load": ("Trainingsbelastung",),
    "Intensity": ("Intensität",),
    "Average Grade Adjusted Pace": ("Durchschnittliches auf Steigung angepasstes Tempo",),
    "Timer Time": ("Stoppuhr-Zeit",),
    "Total Cycles": ("Zyklen gesamt",),
    "Recovery": ("Regeneration",),
    "With Pet": ("Mit Haustier",),
    "Competition": ("Wettbewerb",),
    "Long Run": ("Langer Lauf",),
    "For a Cause": ("Für einen guten Zweck",),
    "With Kid": ("Mit Kind",),
    "Downhill Distance": ("Abfahrtsdistanz",),
    "Media": ("Medien",),
}

#: The pre-2019 header (before about July 2019): lower-case, distances in metres, dates ``2018-09-12 15:02:23``.
PRE_2019_HEADER: Final[tuple[str, ...]] = (
    "id", "date", "name", "type", "description", "elapsed_time", "distance", "commute", "gear", "filename",
)  # fmt: skip

#: Strava's English display names (``Activity Type``) -> API ``sport_type``. Only names whose CamelCase
#: spelling is not the sport type need to be here, but listing the common ones documents what we expect.
ENGLISH_TYPES: Final[Mapping[str, str]] = {
    "Run": "Run",
    "Ride": "Ride",
    "Swim": "Swim",
    "Hike": "Hike",
    "Walk": "Walk",
    "Yoga": "Yoga",
    "Rowing": "Rowing",
    "Workout": "Workout",
    "Weight Training": "WeightTraining",
    "Virtual Ride": "VirtualRide",
    "Virtual Run": "VirtualRun",
    "Virtual Row": "VirtualRow",
    "Trail Run": "TrailRun",
    "Mountain Bike Ride": "MountainBikeRide",
    "Gravel Ride": "GravelRide",
    "E-Bike Ride": "EBikeRide",
    "E-Mountain Bike Ride": "EMountainBikeRide",
    "Alpine Ski": "AlpineSki",
    "Backcountry Ski": "BackcountrySki",
    "Nordic Ski": "NordicSki",
    "Ice Skate": "IceSkate",
    "Inline Skate": "InlineSkate",
    "Rock Climbing": "RockClimbing",
    "Stand Up Paddling": "StandUpPaddling",
    "Stair-Stepper": "StairStepper",
    "Stair Stepper": "StairStepper",
    "HIIT": "HighIntensityIntervalTraining",
    "High Intensity Interval Training": "HighIntensityIntervalTraining",
    "Football (Soccer)": "Soccer",
    "Soccer": "Soccer",
    "Table Tennis": "TableTennis",
    "Canoe": "Canoeing",
    "Canoeing": "Canoeing",
    "Kayaking": "Kayaking",
}

#: German ``Aktivitätsart`` values -> ``sport_type``. The contract's names first, then spellings seen in a
#: public German-archive importer (``Wandern``, ``Gewichtstraining``, ``Traillauf``, ``Mountainbikefahrt``,
#: ``Gravelfahrt``, ``Training`` ...); both are accepted.
GERMAN_TYPES: Final[Mapping[str, str]] = {
    "Lauf": "Run",
    "Radfahrt": "Ride",
    "Schwimmen": "Swim",
    "Wanderung": "Hike",
    "Spaziergang": "Walk",
    "Krafttraining": "WeightTraining",
    "Virtuelle Radfahrt": "VirtualRide",
    "Virtueller Lauf": "VirtualRun",
    "Trailrun": "TrailRun",
    "Mountainbike-Fahrt": "MountainBikeRide",
    "Gravel-Fahrt": "GravelRide",
    "Yoga": "Yoga",
    "Rudern": "Rowing",
    "Workout": "Workout",
    # Seen in real German exports (public importers):
    "Wandern": "Hike",
    "Gewichtstraining": "WeightTraining",
    "Training": "Workout",
    "Traillauf": "TrailRun",
    "Mountainbikefahrt": "MountainBikeRide",
    "Gravelfahrt": "GravelRide",
    "E-Bike-Fahrt": "EBikeRide",
    "Ski Alpin": "AlpineSki",
    "Skitouren": "BackcountrySki",
    "Snowboarden": "Snowboard",
    "Langlauf": "NordicSki",
    "Schneeschuhwanderung": "Snowshoe",
    "Eislaufen": "IceSkate",
    "Inlineskaten": "InlineSkate",
    "Klettern": "RockClimbing",
    "Kanufahrt": "Canoeing",
    "Kajakfahren": "Kayaking",
    "Ellipsentrainer": "Elliptical",
    "Fußball": "Soccer",
    "Surfen": "Surfing",
    "Windsurfen": "Windsurf",
    "Kitesurfen": "Kitesurf",
    "Segeln": "Sail",
}

Kind = Literal["id", "date", "text", "float", "bool", "sport", "path"]


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field: the English ``(name, occurrence)`` columns that feed it, best first, and its kind.

    The first candidate whose cell holds a value wins, so ``(("Elapsed Time", 1), ("Elapsed Time", 0))``
    reads the raw block and falls back to the display block.
    """

    field: str
    kind: Kind
    english: tuple[tuple[str, int], ...]
    pre_2019: tuple[str, ...] = ()


#: Canonical field -> columns. Raw block (occurrence 1) before display block (occurrence 0) where a name
#: repeats: the raw block is in Strava's units. ``Distance`` has no display fallback on purpose: the
#: display value is in the athlete's unit (km or miles), so it goes to ``display_distance`` unconverted.
FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("activity_id", "id", (("Activity ID", 0),), ("id",)),
    FieldSpec("start_date_utc", "date", (("Activity Date", 0),), ("date",)),
    FieldSpec("name", "text", (("Activity Name", 0),), ("name",)),
    FieldSpec("sport_type", "sport", (("Activity Type", 0),), ("type",)),
    FieldSpec("activity_type_display", "text", (("Activity Type", 0),), ("type",)),
    FieldSpec("description", "text", (("Activity Description", 0),), ("description",)),
    FieldSpec("elapsed_time_s", "float", (("Elapsed Time", 1), ("Elapsed Time", 0)), ("elapsed_time",)),
    FieldSpec("moving_time_s", "float", (("Moving Time", 0),)),
    FieldSpec("distance_m", "float", (("Distance", 1),), ("distance",)),
    FieldSpec("display_distance", "float", (("Distance", 0),)),
    FieldSpec("elevation_gain_m", "float", (("Elevation Gain", 0),)),
    FieldSpec("elevation_loss_m", "float", (("Elevation Loss", 0),)),
    FieldSpec("elevation_low_m", "float", (("Elevation Low", 0),)),
    FieldSpec("elevation_high_m", "float", (("Elevation High", 0),)),
    FieldSpec("max_speed_mps", "float", (("Max Speed", 0),)),
    FieldSpec("average_speed_mps", "float", (("Average Speed", 0),)),
    FieldSpec("max_heartrate_bpm", "float", (("Max Heart Rate", 1), ("Max Heart Rate", 0))),
    FieldSpec("average_heartrate_bpm", "float", (("Average Heart Rate", 0),)),
    FieldSpec("max_watts", "float", (("Max Watts", 0),)),
    FieldSpec("average_watts", "float", (("Average Watts", 0),)),
    FieldSpec("weighted_average_watts", "float", (("Weighted Average Power", 0),)),
    FieldSpec("max_cadence", "float", (("Max Cadence", 0),)),
    FieldSpec("average_cadence", "float", (("Average Cadence", 0),)),
    FieldSpec("calories", "float", (("Calories", 0),)),
    FieldSpec("max_temperature_c", "float", (("Max Temperature", 0),)),
    FieldSpec("average_temperature_c", "float", (("Average Temperature", 0),)),
    FieldSpec("relative_effort", "float", (("Relative Effort", 1), ("Relative Effort", 0))),
    FieldSpec("perceived_exertion", "float", (("Perceived Exertion", 0),)),
    FieldSpec("private_note", "text", (("Activity Private Note", 0),)),
    FieldSpec("gear_name", "text", (("Activity Gear", 0),), ("gear",)),
    FieldSpec("commute", "bool", (("Commute", 1), ("Commute", 0)), ("commute",)),
    FieldSpec("total_steps", "float", (("Total Steps", 0),)),
    FieldSpec("grade_adjusted_distance_m", "float", (("Grade Adjusted Distance", 0),)),
    FieldSpec("weather_condition", "text", (("Weather Condition", 0),)),
    FieldSpec("weather_temperature_c", "float", (("Weather Temperature", 0),)),
    FieldSpec("filename", "path", (("Filename", 0),), ("filename",)),
)

_REQUIRED_KINDS: Final = frozenset({"id", "date"})


# ---------------------------------------------------------------------------------------------------------
# Header handling
# ---------------------------------------------------------------------------------------------------------


def _norm(cell: str) -> str:
    """The comparison key of a header cell: no BOM, no surrounding or doubled whitespace, case-folded.

    Matching is forgiving about case and spacing (hand-edited files, ``Activity Id``) but exact about words.
    """
    return " ".join(cell.replace("\ufeff", "").split()).casefold()


def _names_for(layout: Layout, english: str) -> tuple[str, ...]:
    """Every spelling of an English column in ``layout``: German files keep untranslated names in English."""
    if layout == "de":
        return (*GERMAN_NAMES.get(english, ()), english)
    return (english,)


#: The cells that identify each layout (all of them must be present).
_LAYOUT_KEYS: Final[Mapping[Layout, tuple[tuple[str, ...], ...]]] = {
    "en": (("Activity ID",), ("Activity Date",)),
    "de": (GERMAN_NAMES["Activity ID"], GERMAN_NAMES["Activity Date"]),
    "pre-2019": (("id",), ("date",)),
}

_KNOWN_NAMES: Final[Mapping[Layout, frozenset[str]]] = {
    "en": frozenset(_norm(n) for n in (*ENGLISH_HEADER, *ENGLISH_NEWER_COLUMNS)),
    "de": frozenset(
        _norm(n) for english in (*ENGLISH_HEADER, *ENGLISH_NEWER_COLUMNS) for n in _names_for("de", english)
    ),
    "pre-2019": frozenset(_norm(n) for n in PRE_2019_HEADER),
}

_EXPECTED: Final = (
    "expected an English (Activity ID, Activity Date, Activity Name, ...), German (Aktivitäts-ID, "
    "Aktivitätsdatum, Name der Aktivität, ...) or pre-2019 (id,date,name,type,...) header"
)


def _detect_layout(header: Sequence[str], source: str) -> Layout:
    """The layout whose identifying cells are all in the header; the one recognising most cells on a tie.

    Detection looks only at the header, so a file of nothing but manual activities (no dates in a given
    form, no decimals) is still recognised, and values never change what a column means.
    """
    keys = {_norm(cell) for cell in header}
    candidates = [
        layout
        for layout, required in _LAYOUT_KEYS.items()
        if all(any(_norm(name) in keys for name in names) for names in required)
    ]
    if candidates:
        return max(candidates, key=lambda layout: len(keys & _KNOWN_NAMES[layout]))
    known = frozenset().union(*_KNOWN_NAMES.values())
    unmapped = [cell for cell in header if _norm(cell) not in known]
    if unmapped:
        raise ExportFormatError(f"{source}: cannot map header cells {unmapped!r}; {_EXPECTED}")
    raise ExportFormatError(f"{source}: header cells {list(header)!r} have no activity id and date column; {_EXPECTED}")


@dataclass(frozen=True)
class _Source:
    """Where a field's candidate column sits in this file, and how to name it in a message."""

    index: int
    label: str


def _column_label(cell: str, occurrence: int) -> str:
    """``Distance`` or ``Distance (2nd)``: messages name the column as the user sees it in the file."""
    if occurrence == 0:
        return cell
    ordinal = {1: "2nd", 2: "3rd"}.get(occurrence, f"{occurrence + 1}th")
    return f"{cell} ({ordinal})"


def _resolve(header: Sequence[str], layout: Layout) -> dict[str, tuple[_Source, ...]]:
    """Per canonical field, the columns of this file that feed it, best first, found by (name, occurrence)."""
    positions: dict[tuple[str, int], int] = {}
    seen: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _norm(cell)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        positions[(key, occurrence)] = index

    resolved: dict[str, tuple[_Source, ...]] = {}
    for spec in FIELDS:
        if layout == "pre-2019":
            wanted = [(name, 0) for name in spec.pre_2019]
        else:
            wanted = [(name, occ) for english, occ in spec.english for name in _names_for(layout, english)]
        sources: list[_Source] = []
        for name, occurrence in wanted:
            index = positions.get((_norm(name), occurrence))
            if index is not None and all(s.index != index for s in sources):
                sources.append(_Source(index, _column_label(header[index].strip(), occurrence)))
        resolved[spec.field] = tuple(sources)
    return resolved


def _columns(header: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``(cell verbatim, occurrence)`` per header cell: the raw layer's key, unique even where names repeat."""
    seen: dict[str, int] = {}
    out: list[tuple[str, int]] = []
    for cell in header:
        occurrence = seen.get(cell, 0)
        seen[cell] = occurrence + 1
        out.append((cell, occurrence))
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------


class _CellError(ValueError):
    """A cell that cannot be read as its field's kind; the message is completed with the column's name."""


def _is_missing(cell: str) -> bool:
    """Empty, blank or Strava's ``#error#`` marker: no value (never an error)."""
    stripped = cell.strip()
    return not stripped or stripped.casefold() == ERROR_MARKER


_SPACES: Final = re.compile(r"[\s\u00a0\u202f\u2009']")
_THOUSANDS_COMMA: Final = re.compile(r"^[+-]?\d{1,3}(,\d{3})+$")


def _parse_number(cell: str, decimal_comma: bool) -> float:
    """A decimal number in either convention: ``18.96``, ``18,96``, ``1.234,5``, ``1,234.5``, ``1 234,5``.

    German (and Czech) files use a decimal comma; their raw block has been seen with points too, so both
    are read. Where both separators occur the last one is the decimal separator. A lone comma in an
    English file is a thousands separator only in the unambiguous ``1,234`` shape.
    """
    text = _SPACES.sub("", cell)
    if "," in text:
        comma_is_decimal = text.rfind(",") > text.rfind(".") if "." in text else not _THOUSANDS_COMMA.match(text)
        if decimal_comma and "." not in text:
            comma_is_decimal = True
        text = text.replace(".", "").replace(",", ".") if comma_is_decimal else text.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        raise _CellError("is not a number") from None
    if not math.isfinite(value):
        raise _CellError("is not a finite number")
    return value


_INTEGER: Final = re.compile(r"^\d+$")


def _parse_id(cell: str) -> int:
    """A positive integer of any size (ids exceed 2^31); no float or exponent spelling."""
    text = cell.strip()
    if not _INTEGER.match(text) or int(text) <= 0:
        raise _CellError("is not a positive integer")
    return int(text)


_TRUE: Final = frozenset({"true", "1", "1.0", "yes", "ja", "wahr", "t", "y"})
_FALSE: Final = frozenset({"false", "0", "0.0", "no", "nein", "falsch", "f", "n"})


def _parse_bool(cell: str) -> bool:
    """``true``/``false`` (display block), ``1``/``0`` (raw block), and the German words, case-insensitive."""
    text = cell.strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _CellError("is not a boolean")


# Dates: every form is unambiguous on its own, so none depends on the layout except the numeric slash form.
_TIME: Final = (
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,6})\d*)?)?"
    r"(?:\s*(?P<ampm>[AaPp])\.?\s?[Mm]\.?)?"
    r"(?:\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}:?\d{2}))?"
)
_ISO: Final = re.compile(rf"^(?P<year>\d{{4}})-(?P<month>\d{{1,2}})-(?P<day>\d{{1,2}})(?:[T ]\s*|\s+){_TIME}$")
_MONTH_FIRST: Final = re.compile(
    rf"^(?:[^\W\d_]+\.?,?\s+)??(?P<mname>[^\W\d_]{{3,}})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+"
    rf"(?P<year>\d{{4}}),?\s+(?:at\s+)?{_TIME}$"
)
_DAY_FIRST_NAME: Final = re.compile(
    rf"^(?P<day>\d{{1,2}})\.?\s+(?P<mname>[^\W\d_]{{3,}})\.?,?\s+(?P<year>\d{{4}}),?\s+(?:um\s+)?{_TIME}$"
)
_DOTTED: Final = re.compile(
    rf"^(?P<day>\d{{1,2}})\.\s*(?P<month>\d{{1,2}})\.\s*(?P<year>\d{{4}})\.?,?\s+(?:um\s+)?{_TIME}$"
)
_SLASHED: Final = re.compile(rf"^(?P<a>\d{{1,2}})/(?P<b>\d{{1,2}})/(?P<year>\d{{4}}),?\s+{_TIME}$")

#: First three letters (case-folded) of English and German month names.
_MONTHS: Final[Mapping[str, int]] = {
    "jan": 1, "jän": 1, "feb": 2, "mar": 3, "mär": 3, "mrz": 3, "apr": 4, "may": 5, "mai": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "okt": 10, "nov": 11, "dec": 12, "dez": 12,
}  # fmt: skip


def _month_number(name: str) -> int:
    month = _MONTHS.get(name.casefold()[:3])
    if month is None:
        raise _CellError("has an unknown month name")
    return month


def parse_activity_date(cell: str, layout: str = "en") -> datetime:
    """An ``Activity Date`` cell as a tz-aware UTC datetime (Strava writes UTC; a written offset is honoured).

    Accepted forms: English ``Oct 7, 2020, 2:43:11 PM`` (also full month names, 24 h, Unicode narrow
    spaces before ``PM`` as newer ICU writes them), German ``07.10.2020, 14:43:11``, Czech
    ``6. 9. 2026 11:18:40``, day-first month names ``7. Okt. 2020, 14:43:11``, ISO / pre-2019
    ``2018-09-12 15:02:23`` (``T``, fractions, ``Z``/offsets) and ``10/7/2020, 2:43:11 PM`` (month first
    in English files, day first otherwise: the only form where ``layout`` matters).

    Raises ``ValueError`` with a short reason when the cell is none of these or not a real date.
    """
    text = " ".join(cell.split())  # also folds the no-break and narrow spaces ICU puts before "PM"
    parts: dict[str, Any] | None = None
    for pattern in (_ISO, _DOTTED, _MONTH_FIRST, _DAY_FIRST_NAME, _SLASHED):
        match = pattern.match(text)
        if match is None:
            continue
        parts = match.groupdict()
        if "mname" in parts:
            parts["month"] = _month_number(parts.pop("mname"))
        if "a" in parts:
            first, second = int(parts.pop("a")), int(parts.pop("b"))
            parts["month"], parts["day"] = (first, second) if layout == "en" else (second, first)
        break
    if parts is None:
        raise _CellError("is not a date in a form Strava writes")
    hour = int(parts["hour"])
    if parts["ampm"] is not None:
        if not 1 <= hour <= 12:
            raise _CellError("has an hour outside 1..12 with AM/PM")
        hour = hour % 12 + (12 if parts["ampm"].casefold() == "p" else 0)
    try:
        value = datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            hour,
            int(parts["minute"]),
            int(parts["second"] or 0),
            int((parts["fraction"] or "0").ljust(6, "0")),
            tzinfo=_zone(parts["zone"]),
        )
    except ValueError:
        raise _CellError("is not a valid calendar date or time") from None
    return value.astimezone(UTC)


def _zone(zone: str | None) -> timezone:
    if zone is None or zone.upper() in {"Z", "UTC", "GMT"}:
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


_WORD_SPLIT: Final = re.compile(r"[^\w]+")
_ENGLISH_TYPES_KEYED: Final = {name.casefold(): sport for name, sport in ENGLISH_TYPES.items()}
_GERMAN_TYPES_KEYED: Final = {name.casefold(): sport for name, sport in GERMAN_TYPES.items()}


def sport_type_of(display: str, layout: str = "en") -> str:
    """Strava's ``sport_type`` for an ``Activity Type`` display name in the file's language.

    Known names come from :data:`GERMAN_TYPES` (German files, which sometimes keep English names) and
    :data:`ENGLISH_TYPES`; any other name is never dropped but becomes CamelCase without spaces or
    punctuation (``Weight Training`` -> ``WeightTraining``, ``E-Bike Ride`` -> ``EBikeRide``), which is
    how Strava spells its sport types, so a name already in that form passes through unchanged.
    """
    text = " ".join(display.split())
    tables = (_ENGLISH_TYPES_KEYED, _GERMAN_TYPES_KEYED)
    if layout == "de":
        tables = tables[::-1]
    for table in tables:
        sport = table.get(text.casefold())
        if sport is not None:
            return sport
    camel = "".join(word[:1].upper() + word[1:] for word in _WORD_SPLIT.split(text) if word)
    return camel or text  # a name of symbols only (an emoji) is kept as written rather than lost


# ---------------------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------------------


def _converter(kind: Kind, layout: Layout) -> Callable[[str], Any]:
    """The cell -> value function for a field kind in this layout."""
    decimal_comma = layout == "de"
    converters: dict[Kind, Callable[[str], Any]] = {
        "id": _parse_id,
        "date": lambda cell: parse_activity_date(cell, layout),
        "text": lambda cell: cell,
        "path": lambda cell: cell.strip().replace("\\", "/"),
        "float": lambda cell: _parse_number(cell, decimal_comma),
        "bool": _parse_bool,
        "sport": lambda cell: sport_type_of(cell, layout),
    }
    return converters[kind]


_ACTIVITY_FIELDS: Final = frozenset(f.name for f in fields(ExportActivity))
assert {spec.field for spec in FIELDS} == _ACTIVITY_FIELDS, "FIELDS must cover ExportActivity exactly"


def _quote(cell: str, limit: int = 80) -> str:
    """The cell as shown in a message: repr-quoted and shortened, so a long description cannot flood a log."""
    return repr(cell if len(cell) <= limit else cell[: limit - 1] + "…")


class _RowParser:
    """Turns one record into a :class:`CsvRow`, with the file's column resolution computed once."""

    def __init__(self, header: Sequence[str], layout: Layout) -> None:
        self.width = len(header)
        resolved = _resolve(header, layout)
        self.plan = [(spec, resolved[spec.field], _converter(spec.kind, layout)) for spec in FIELDS]

    def parse(self, line: int, cells: list[str], note: str | None = None) -> CsvRow:
        values = tuple(cells)
        if len(cells) != self.width:
            error = f"line {line}: the record has {len(cells)} cells but the header has {self.width}"
            return CsvRow(line, values, None, error)
        found: dict[str, Any] = {}
        warnings: list[str] = [note] if note else []
        errors: list[str] = []
        for spec, sources, convert in self.plan:
            value: Any = None
            for source in sources:
                cell = cells[source.index]
                if _is_missing(cell):
                    continue
                try:
                    value = convert(cell)
                    break
                except ValueError as exc:
                    message = f"{source.label} {_quote(cell)} {exc}"
                    (errors if spec.kind in _REQUIRED_KINDS else warnings).append(message)
            if value is None and spec.kind in _REQUIRED_KINDS and not errors:
                errors.append(f"{sources[0].label if sources else spec.field} is missing")
            found[spec.field] = value
        if errors:
            return CsvRow(line, values, None, "; ".join(errors), tuple(warnings))
        return CsvRow(line, values, ExportActivity(**found), None, tuple(warnings))


# ---------------------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, bool]:
    """UTF-8 text without the BOM Strava writes; undecodable bytes become U+FFFD (reported on their rows)."""
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return data.decode("utf-8-sig", errors="replace"), True


def _records(text: str) -> Iterable[tuple[int, list[str] | None, str | None]]:
    """``(first physical line, cells, csv error)`` per record; blank lines are skipped.

    The start line is the reader's line count after the previous record plus one, which stays right when
    quoted line breaks make a record span several lines.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    previous = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield previous + 1, None, str(exc)
            previous = reader.line_num
            continue
        start, previous = previous + 1, reader.line_num
        if cells:
            yield start, cells, None


def parse_activities_csv(data: bytes, source: str) -> ActivitiesCsv:
    """Parse the bytes of an ``activities.csv``; ``source`` (``export_1.zip:activities.csv``) names it in messages.

    Raises :class:`ExportFormatError` only for a file without a recognisable header (empty, or a layout
    this parser does not know); every problem of a single record is reported on its :class:`CsvRow`.
    """
    text, lossy = _decode(data)
    records = iter(_records(text))
    header: list[str] | None = None
    for _line, cells, problem in records:
        if cells is None:
            raise ExportFormatError(f"{source}: the header line cannot be read as CSV ({problem}); {_EXPECTED}")
        header = cells
        break
    if header is None:
        raise ExportFormatError(f"{source}: the file is empty (no header); {_EXPECTED}")
    layout = _detect_layout(header, source)
    parser = _RowParser(header, layout)
    rows: list[CsvRow] = []
    for line, cells, problem in records:
        if cells is None:
            rows.append(CsvRow(line, (), None, f"line {line}: not readable as CSV ({problem})"))
            continue
        note = None
        if lossy and any("\ufffd" in cell for cell in cells):
            note = f"line {line}: bytes that are not UTF-8 were replaced by U+FFFD"
        rows.append(parser.parse(line, cells, note))
    return ActivitiesCsv(source=source, layout=layout, columns=_columns(header), rows=tuple(rows))
