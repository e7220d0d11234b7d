"""The ``activities.csv`` parser against files shaped like real Strava archives.

The headers are written out here from EXPORT-FACTS.md and the shared contract (not taken from the module),
so a test fails if the parser's tables drift from what Strava writes. Each test asserts something an
importer relies on: the right column of a repeated name, units, UTC dates, ids beyond 2^31, unknown columns
kept, bad rows isolated and unknown layouts refused with a message naming the cells.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strava_pipeline.export.activities_csv import (
    ActivitiesCsv,
    ExportFormatError,
    parse_activities_csv,
    parse_activity_date,
    sport_type_of,
)

SOURCE = "export_123.zip:activities.csv"

#: The contract's "96-column" English header. It lists 94 names (EXPORT-FACTS.md has the same list), which is
#: also what public importers' fixtures show for 2025-2026; the parser does not care about the count.
EN = [
    "Activity ID",
    "Activity Date",
    "Activity Name",
    "Activity Type",
    "Activity Description",
    "Elapsed Time",
    "Distance",
    "Max Heart Rate",
    "Relative Effort",
    "Commute",
    "Activity Private Note",
    "Activity Gear",
    "Filename",
    "Athlete Weight",
    "Bike Weight",
    "Elapsed Time",
    "Moving Time",
    "Distance",
    "Max Speed",
    "Average Speed",
    "Elevation Gain",
    "Elevation Loss",
    "Elevation Low",
    "Elevation High",
    "Max Grade",
    "Average Grade",
    "Average Positive Grade",
    "Average Negative Grade",
    "Max Cadence",
    "Average Cadence",
    "Max Heart Rate",
    "Average Heart Rate",
    "Max Watts",
    "Average Watts",
    "Calories",
    "Max Temperature",
    "Average Temperature",
    "Relative Effort",
    "Total Work",
    "Number of Runs",
    "Uphill Time",
    "Downhill Time",
    "Other Time",
    "Perceived Exertion",
    "Type",
    "Start Time",
    "Weighted Average Power",
    "Power Count",
    "Prefer Perceived Exertion",
    "Perceived Relative Effort",
    "Commute",
    "Total Weight Lifted",
    "From Upload",
    "Grade Adjusted Distance",
    "Weather Observation Time",
    "Weather Condition",
    "Weather Temperature",
    "Apparent Temperature",
    "Dewpoint",
    "Humidity",
    "Weather Pressure",
    "Wind Speed",
    "Wind Gust",
    "Wind Bearing",
    "Precipitation Intensity",
    "Sunrise Time",
    "Sunset Time",
    "Moon Phase",
    "Bike",
    "Gear",
    "Precipitation Probability",
    "Precipitation Type",
    "Cloud Cover",
    "Weather Visibility",
    "UV Index",
    "Weather Ozone",
    "Jump Count",
    "Total Grit",
    "Average Flow",
    "Flagged",
    "Average Elapsed Speed",
    "Dirt Distance",
    "Newly Explored Distance",
    "Newly Explored Dirt Distance",
    "Activity Count",
    "Total Steps",
    "Carbon Saved",
    "Pool Length",
    "Training Load",
    "Intensity",
    "Average Grade Adjusted Pace",
    "Timer Time",
    "Total Cycles",
    "Media",
]

#: The contract's German names (what the simulator writes); other columns stay English in German files.
CONTRACT_DE = {
    "Activity ID": "Aktivitäts-ID",
    "Activity Date": "Aktivitätsdatum",
    "Activity Name": "Name der Aktivität",
    "Activity Type": "Aktivitätsart",
    "Activity Description": "Beschreibung der Aktivität",
    "Elapsed Time": "Verstrichene Zeit",
    "Distance": "Distanz",
    "Max Heart Rate": "Maximale Herzfrequenz",
    "Relative Effort": "Relative Anstrengung",
    "Commute": "Pendeln",
    "Activity Private Note": "Private Notiz zur Aktivität",
    "Activity Gear": "Aktivitätsausrüstung",
    "Filename": "Dateiname",
    "Athlete Weight": "Sportlergewicht",
    "Bike Weight": "Fahrradgewicht",
    "Moving Time": "Bewegungszeit",
    "Max Speed": "Maximale Geschwindigkeit",
    "Average Speed": "Durchschnittliche Geschwindigkeit",
    "Elevation Gain": "Höhenzunahme",
    "Elevation Loss": "Höhenabnahme",
    "Elevation Low": "Niedrigste Höhe",
    "Elevation High": "Höchste Höhe",
    "Max Grade": "Maximale Steigung",
    "Average Grade": "Durchschnittliche Steigung",
    "Max Cadence": "Maximale Trittfrequenz",
    "Average Cadence": "Durchschnittliche Trittfrequenz",
    "Average Heart Rate": "Durchschnittliche Herzfrequenz",
    "Max Watts": "Maximale Wattleistung",
    "Average Watts": "Durchschnittliche Wattleistung",
    "Calories": "Kalorien",
    "Max Temperature": "Maximale Temperatur",
    "Average Temperature": "Durchschnittstemperatur",
    "Perceived Exertion": "Empfundene Anstrengung",
    "Start Time": "Startzeit",
    "Weighted Average Power": "Gewichtete Durchschnittsleistung",
    "Grade Adjusted Distance": "Steigungsbereinigte Distanz",
    "Weather Condition": "Wetterbedingungen",
    "Weather Temperature": "Wettertemperatur",
    "Total Steps": "Schritte gesamt",
    "Gear": "Ausrüstung",
    "Media": "Medien",
}

#: A 92-column header of a real German export, as quoted in a public importer's test fixture.
REAL_DE_92 = [
    "Aktivitäts-ID",
    "Aktivitätsdatum",
    "Name der Aktivität",
    "Aktivitätsart",
    "Aktivitätsbeschreibung",
    "Verstrichene Zeit",
    "Distanz",
    "Max. Herzfrequenz",
    "Relative Leistung",
    "Pendeln",
    "Hinweis zur Privatsphäre für Aktivitäten",
    "Aktivitätsausrüstung",
    "Dateiname",
    "Sportlergewicht",
    "Fahrradgewicht",
    "Verstrichene Zeit",
    "Bewegungszeit",
    "Distanz",
    "Höchstgeschw.",
    "Durchschnittliche Geschwindigkeit",
    "Höhenzunahme",
    "Höhenunterschied",
    "Min. Höhe",
    "Max. Höhe",
    "Max. Steigung",
    "Durchschnittliche Steigung",
    "Durchschnittliche positive Steigung",
    "Durchschnittliche negative Steigung",
    "Max. Tritt-/Schrittfrequenz",
    "Durchschnittliche Trittfrequenz",
    "Max. Herzfrequenz",
    "Durchschnittliche Herzfrequenz",
    "Max. Watt",
    "Durchschnittliche Watt",
    "Kalorien",
    "Max. Temperatur",
    "Durchschnittliche Temperatur",
    "Relative Leistung",
    "Gesamtarbeit",
    "Anzahl Läufe",
    "Bergaufzeit",
    "Bergabzeit",
    "Andere Zeit",
    "Gefühlte Anstrengung",
    "Art",
    "Startzeit",
    "Gewichtete durchschnittliche Leistung",
    "Leistungszahl",
    "Gefühlte Anstrengung verwenden",
    "Gefühlte relative Leistung",
    "Pendeln",
    "Insgesamt gestemmtes Gewicht",
    "Von Upload",
    "Auf Steigung angepasste Distanz",
    "Wetterbeobachtungszeit",
    "Wetterlage",
    "Wetter: Temperatur",
    "Scheinbare Temperatur",
    "Taupunkt",
    "Luftfeuchtigkeit",
    "Wetter: Druck",
    "Windgeschwindigkeit",
    "Windböe",
    "Windrichtung",
    "Niederschlagsintensität",
    "Sonnenaufgangszeit",
    "Sonnenuntergangszeit",
    "Mondphase",
    "Fahrrad",
    "Ausrüstung",
    "Niederschlagswahrscheinlichkeit",
    "Niederschlagsart",
    "Wolkendecke",
    "Wetter: Sichtbarkeit",
    "UV-Index",
    "Wetter: Ozon",
    "Sprunganzahl",
    "Schwierigkeit insgesamt",
    "Durchschnittlicher Flow",
    "Markiert",
    "Durchschnittsgeschwindigkeit im Aufzeichnungszeitraum",
    "Auf Schotter zurückgelegte Distanz",
    "Neu getestete Distanz",
    "Neu getestete Schotterdistanz",
    "Aktivitätsanzahl",
    "Schritte insgesamt",
    "Eingesparte CO₂-Emissionen",
    "Pool-Länge",
    "Trainingsbelastung",
    "Intensität",
    "Durchschnittliches auf Steigung angepasstes Tempo",
    "Medien",
]

PRE_2019 = ["id", "date", "name", "type", "description", "elapsed_time", "distance", "commute", "gear", "filename"]

Cells = dict[tuple[str, int], str]


def build(header: list[str], rows: list[Cells], *, newline: str = "\n", bom: bool = False) -> bytes:
    """A CSV file as Strava writes it: ``rows`` give cells by (header name, occurrence); the rest are empty.

    Cells with a delimiter, quote or any line break are quoted (``csv.writer`` leaves a lone ``\\r`` unquoted
    when the line terminator is ``\\n``, which no real export does).
    """

    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text

    lines = [",".join(cell(name) for name in header)]
    for cells in rows:
        seen: dict[str, int] = {}
        line = []
        for name in header:
            occurrence = seen.get(name, 0)
            seen[name] = occurrence + 1
            line.append(cell(cells.get((name, occurrence), "")))
        lines.append(",".join(line))
    return (b"\xef\xbb\xbf" if bom else b"") + "".join(line + newline for line in lines).encode("utf-8")


def translate(cells: Cells, names: dict[str, str]) -> Cells:
    return {(names.get(name, name), occurrence): value for (name, occurrence), value in cells.items()}


DESCRIPTION = 'Intervals, 6 × 800 m\nsaid "never again" 😅\r\nthen did it again'

RUN: Cells = {
    ("Activity ID", 0): "21538875902",  # > 2^31
    ("Activity Date", 0): "Oct 7, 2020, 2:43:11 PM",
    ("Activity Name", 0): 'Morning Run 🏃\u200d♀️, "fast"',
    ("Activity Type", 0): "Run",
    ("Activity Description", 0): DESCRIPTION,
    ("Elapsed Time", 0): "3602",
    ("Distance", 0): "18.96",
    ("Max Heart Rate", 0): "171",
    ("Relative Effort", 0): "88",
    ("Commute", 0): "false",
    ("Activity Private Note", 0): "legs heavy",
    ("Activity Gear", 0): "Pegasus 40",
    ("Filename", 0): "activities/12116271787.fit.gz",
    ("Elapsed Time", 1): "3601.5",
    ("Moving Time", 0): "3500",
    ("Distance", 1): "18962.80078125",
    ("Max Speed", 0): "5.9",
    ("Average Speed", 0): "5.4179",
    ("Elevation Gain", 0): "120.5",
    ("Max Heart Rate", 1): "172.0",
    ("Average Heart Rate", 0): "150.25",
    ("Average Watts", 0): "#error#",
    ("Calories", 0): "1024",
    ("Relative Effort", 1): "89.0",
    ("Perceived Exertion", 0): "7.0",
    ("Commute", 1): "0",
    ("Total Steps", 0): "15000",
    ("Grade Adjusted Distance", 0): "19100.5",
    ("Weather Condition", 0): "Clear",
    ("Weather Temperature", 0): "12.5",
    ("Media", 0): "media/abc.jpg|media/def.jpg",
}

MANUAL: Cells = {
    ("Activity ID", 0): "9363646543",
    ("Activity Date", 0): "Jan 1, 2021, 12:05:00 AM",
    ("Activity Name", 0): "Gym",
    ("Activity Type", 0): "Weight Training",
    ("Elapsed Time", 0): "1800",
    ("Commute", 0): "true",
    ("Filename", 0): "",
}

RIDE: Cells = {
    ("Activity ID", 0): "4412",
    ("Activity Date", 0): "Jul 14, 2024, 11:59:59 PM",
    ("Activity Name", 0): "Zwift",
    ("Activity Type", 0): "Virtual Ride",
    ("Elapsed Time", 1): "2400.0",
    ("Distance", 1): "30000.0",
    ("Average Watts", 0): "231.4",
    ("Filename", 0): "activities/4412.tcx.gz",
}


def parse(data: bytes) -> ActivitiesCsv:
    return parse_activities_csv(data, SOURCE)


# --- English, 96 columns -------------------------------------------------------------------------------


def test_english_contract_header_maps_repeated_names_by_occurrence_and_normalises_units() -> None:
    result = parse(build(EN, [RUN, MANUAL, RIDE]))

    assert result.source == SOURCE
    assert result.layout == "en"
    assert len(result.columns) == len(EN) == 94
    assert result.columns[6] == ("Distance", 0) and result.columns[17] == ("Distance", 1)
    assert len(set(result.columns)) == 94  # (name, occurrence) is a unique key even with repeated names
    assert [row.error for row in result.rows] == [None, None, None]

    run = result.rows[0].activity
    assert run is not None
    assert run.activity_id == 21538875902 > 2**31
    assert run.start_date_utc == datetime(2020, 10, 7, 14, 43, 11, tzinfo=UTC)
    assert run.start_date_utc.utcoffset() is not None
    assert run.name == 'Morning Run 🏃\u200d♀️, "fast"'
    assert run.description == DESCRIPTION
    assert run.sport_type == "Run"
    assert run.distance_m == 18962.80078125  # the raw block's metres, not the display km
    assert run.display_distance == 18.96
    assert run.elapsed_time_s == 3601.5  # the raw (second) Elapsed Time, not the display one
    assert run.moving_time_s == 3500
    assert run.max_heartrate_bpm == 172.0
    assert run.relative_effort == 89.0
    assert run.average_heartrate_bpm == 150.25
    assert run.max_speed_mps == 5.9 and run.average_speed_mps == 5.4179
    assert run.elevation_gain_m == 120.5
    assert run.calories == 1024
    assert run.perceived_exertion == 7.0
    assert run.private_note == "legs heavy"
    assert run.gear_name == "Pegasus 40"
    assert run.commute is False
    assert run.total_steps == 15000
    assert run.grade_adjusted_distance_m == 19100.5
    assert run.weather_condition == "Clear" and run.weather_temperature_c == 12.5
    assert run.filename == "activities/12116271787.fit.gz"
    # "#error#" is missing, not a failure, and the raw layer still has it verbatim.
    assert run.average_watts is None
    assert result.rows[0].warnings == ()
    assert result.rows[0].values[EN.index("Average Watts")] == "#error#"
    assert result.rows[0].values[4] == DESCRIPTION
    assert len(result.rows[0].values) == 94

    manual = result.rows[1].activity
    assert manual is not None
    assert manual.filename is None  # manual activity: no file in the archive
    assert manual.sport_type == "WeightTraining"
    assert manual.start_date_utc == datetime(2021, 1, 1, 0, 5, tzinfo=UTC)  # 12:05 AM is just after midnight
    assert manual.elapsed_time_s == 1800  # no raw Elapsed Time: falls back to the display block
    assert manual.distance_m is None and manual.description is None
    assert manual.commute is True

    ride = result.rows[2].activity
    assert ride is not None
    assert ride.sport_type == "VirtualRide"
    assert ride.average_watts == 231.4
    assert ride.start_date_utc == datetime(2024, 7, 14, 23, 59, 59, tzinfo=UTC)

    assert result.activities == (run, manual, ride)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_numbers_count_the_physical_lines_of_multi_line_records(newline: str) -> None:
    result = parse(build(EN, [RUN, MANUAL, RIDE], newline=newline))

    # RUN's description holds two line breaks, so it spans lines 2-4 and MANUAL starts on line 5.
    assert [row.line for row in result.rows] == [2, 5, 6]


def test_older_87_column_file_leaves_missing_optional_columns_empty() -> None:
    dropped = {"Total Steps", "Carbon Saved", "Pool Length", "Training Load", "Intensity", "Timer Time", "Total Cycles"}
    header = [name for name in EN if name not in dropped]
    assert len(header) == 87

    result = parse(build(header, [RUN]))

    assert result.layout == "en" and len(result.columns) == 87
    run = result.rows[0].activity
    assert run is not None
    assert run.total_steps is None  # the column does not exist yet in this file
    assert run.distance_m == 18962.80078125 and run.calories == 1024 and run.max_heartrate_bpm == 172.0
    assert run.weather_temperature_c == 12.5


def test_newer_103_column_file_keeps_unknown_columns_verbatim() -> None:
    # The real 103-column order: nine newer columns before Media.
    newer = ["Recovery", "With Pet", "Competition", "Long Run", "For a Cause", "With Kid", "Downhill Distance"]
    newer += ["Total Sets", "Total Reps"]
    header = [*EN[:-1], *newer, "Media"]
    assert len(header) == 103
    cells = {**RUN, ("Competition", 0): "true", ("Total Sets", 0): "5", ("Total Reps", 0): " 50 "}

    result = parse(build(header, [cells]))

    assert len(result.columns) == 103
    assert result.columns[-1] == ("Media", 0)
    row = result.rows[0]
    by_column = dict(zip(result.columns, row.values, strict=True))
    assert by_column[("Competition", 0)] == "true"
    assert by_column[("Total Sets", 0)] == "5"
    assert by_column[("Total Reps", 0)] == " 50 "  # verbatim, spaces included
    assert by_column[("Media", 0)] == "media/abc.jpg|media/def.jpg"
    assert row.activity is not None and row.activity.distance_m == 18962.80078125
    assert row.activity.total_steps == 15000


def test_columns_are_found_by_name_not_position() -> None:
    header = list(EN)
    header.insert(2, "Brand New Column")  # an unknown column inside the display block
    header.remove("Activity Type")
    header.append("Activity Type")  # and a known one moved to the end
    cells = {**RUN, ("Brand New Column", 0): "surprise"}

    result = parse(build(header, [cells]))

    run = result.rows[0].activity
    assert run is not None
    assert run.name == RUN[("Activity Name", 0)]
    assert run.sport_type == "Run"
    assert run.distance_m == 18962.80078125 and run.elapsed_time_s == 3601.5
    assert result.rows[0].values[2] == "surprise"
    assert result.columns[2] == ("Brand New Column", 0)


def test_utf8_bom_is_not_part_of_the_first_column_name() -> None:
    result = parse(build(EN, [RUN], bom=True))

    assert result.layout == "en"
    assert result.columns[0] == ("Activity ID", 0)
    assert result.rows[0].activity is not None and result.rows[0].activity.activity_id == 21538875902


# --- German --------------------------------------------------------------------------------------------


def test_german_contract_names_decimal_commas_and_day_first_dates() -> None:
    header = [CONTRACT_DE.get(name, name) for name in EN]
    run = {
        **translate(RUN, CONTRACT_DE),
        ("Aktivitäts-ID", 0): "4242424242424",
        ("Aktivitätsdatum", 0): "07.10.2020, 14:43:11",
        ("Aktivitätsart", 0): "Lauf",
        ("Distanz", 0): "18,96",
        ("Distanz", 1): "18962,80078125",
        ("Verstrichene Zeit", 1): "3601,5",
        ("Durchschnittliche Geschwindigkeit", 0): "5,4179",
        ("Wettertemperatur", 0): "-3,5",
        ("Pendeln", 0): "true",
        ("Pendeln", 1): "1",
    }
    ride = {
        ("Aktivitäts-ID", 0): "2",
        ("Aktivitätsdatum", 0): "01.02.2021, 06:05:04",
        ("Aktivitätsart", 0): "Virtuelle Radfahrt",
    }
    gym = {
        ("Aktivitäts-ID", 0): "3",
        ("Aktivitätsdatum", 0): "13.12.2022, 23:00:00",
        ("Aktivitätsart", 0): "Krafttraining",
    }
    odd = {("Aktivitäts-ID", 0): "4", ("Aktivitätsdatum", 0): "13.12.2022, 23:00:00", ("Aktivitätsart", 0): "Eisbaden"}

    result = parse(build(header, [run, ride, gym, odd]))

    assert result.layout == "de"
    assert ("Distanz", 1) in result.columns and ("Maximale Herzfrequenz", 1) in result.columns
    assert [row.error for row in result.rows] == [None] * 4
    first = result.rows[0].activity
    assert first is not None
    assert first.activity_id == 4242424242424
    assert first.start_date_utc == datetime(2020, 10, 7, 14, 43, 11, tzinfo=UTC)  # day first, 24 h
    assert first.sport_type == "Run"
    assert first.activity_type_display == "Lauf"
    assert first.distance_m == 18962.80078125 and first.display_distance == 18.96
    assert first.elapsed_time_s == 3601.5
    assert first.average_speed_mps == 5.4179
    assert first.weather_temperature_c == -3.5
    assert first.max_heartrate_bpm == 172.0
    assert first.description == DESCRIPTION and first.name == RUN[("Activity Name", 0)]
    assert first.commute is True
    assert first.filename == "activities/12116271787.fit.gz"
    second, third, fourth = (row.activity for row in result.rows[1:])
    assert second is not None and second.start_date_utc == datetime(2021, 2, 1, 6, 5, 4, tzinfo=UTC)
    assert second.sport_type == "VirtualRide"
    assert third is not None and third.sport_type == "WeightTraining"
    assert fourth is not None and fourth.sport_type == "Eisbaden"  # unknown type kept, not dropped


def test_german_names_of_real_exports_are_accepted_too() -> None:
    assert len(REAL_DE_92) == 92
    cells: Cells = {
        ("Aktivitäts-ID", 0): "19404735112",
        ("Aktivitätsdatum", 0): "21.07.2026, 15:09:27",
        ("Name der Aktivität", 0): "Lauf am Nachmittag",
        ("Aktivitätsart", 0): "Lauf",
        ("Aktivitätsbeschreibung", 0): "locker, mit Steigerungen",
        ("Verstrichene Zeit", 0): "1390",
        ("Distanz", 0): "2,81",
        ("Max. Herzfrequenz", 0): "190",
        ("Hinweis zur Privatsphäre für Aktivitäten", 0): "privat",
        ("Verstrichene Zeit", 1): "1390.0",
        ("Bewegungszeit", 0): "1380.0",
        ("Distanz", 1): "2810.5",  # real German raw blocks have been seen with decimal points
        ("Höchstgeschw.", 0): "4.9",
        ("Max. Herzfrequenz", 1): "191.0",
        ("Durchschnittliche Herzfrequenz", 0): "148.0",
        ("Durchschnittliche Watt", 0): "201,5",
        ("Relative Leistung", 1): "33",
        ("Gefühlte Anstrengung", 0): "6",
        ("Auf Steigung angepasste Distanz", 0): "2900,0",
        ("Wetterlage", 0): "Bewölkt",
        ("Wetter: Temperatur", 0): "18,5",
        ("Schritte insgesamt", 0): "4200",
    }

    result = parse(build(REAL_DE_92, [cells]))

    assert result.layout == "de"
    activity = result.rows[0].activity
    assert activity is not None, result.rows[0].error
    assert activity.start_date_utc == datetime(2026, 7, 21, 15, 9, 27, tzinfo=UTC)
    assert activity.description == "locker, mit Steigerungen"
    assert activity.private_note == "privat"
    assert activity.distance_m == 2810.5 and activity.display_distance == 2.81
    assert activity.moving_time_s == 1380.0
    assert activity.max_speed_mps == 4.9
    assert activity.max_heartrate_bpm == 191.0
    assert activity.average_watts == 201.5
    assert activity.relative_effort == 33
    assert activity.perceived_exertion == 6
    assert activity.grade_adjusted_distance_m == 2900.0
    assert activity.weather_condition == "Bewölkt" and activity.weather_temperature_c == 18.5
    assert activity.total_steps == 4200


# --- pre-2019 ------------------------------------------------------------------------------------------


def test_pre_2019_lower_case_header_with_metres_and_iso_dates() -> None:
    data = (
        b"id,date,name,type,description,elapsed_time,distance,commute,gear,filename\n"
        b"1834567890,2018-09-12 15:02:23,Lunch Ride,Ride,,3600,25012.3,false,Canyon,activities/1834567890.gpx\n"
        b'1834567891,2018-09-13 06:00:00,Treadmill,Run,"easy, flat",1800,5000,true,,\n'
    )

    result = parse(data)

    assert result.layout == "pre-2019"
    assert result.columns == tuple((name, 0) for name in PRE_2019)
    ride, run = result.activities
    assert ride.activity_id == 1834567890
    assert ride.start_date_utc == datetime(2018, 9, 12, 15, 2, 23, tzinfo=UTC)
    assert ride.distance_m == 25012.3  # metres already
    assert ride.elapsed_time_s == 3600 and ride.moving_time_s is None
    assert ride.sport_type == "Ride" and ride.gear_name == "Canyon" and ride.commute is False
    assert ride.description is None
    assert ride.filename == "activities/1834567890.gpx"
    assert run.description == "easy, flat" and run.commute is True
    assert run.gear_name is None and run.filename is None


# --- bad rows and bad files ----------------------------------------------------------------------------


def test_a_bad_row_fails_alone_with_a_message_naming_column_and_value() -> None:
    bad_id = {**MANUAL, ("Activity ID", 0): "abc"}
    bad_date = {**MANUAL, ("Activity ID", 0): "77", ("Activity Date", 0): "sometime last week"}
    no_id = {**MANUAL, ("Activity ID", 0): "#error#"}

    result = parse(build(EN, [RUN, bad_id, bad_date, no_id, RIDE]))

    assert len(result.rows) == 5
    assert [row.activity is not None for row in result.rows] == [True, False, False, False, True]
    id_error = result.rows[1].error
    assert id_error is not None and "Activity ID" in id_error and "'abc'" in id_error
    date_error = result.rows[2].error
    assert date_error is not None and "Activity Date" in date_error and "'sometime last week'" in date_error
    missing = result.rows[3].error
    assert missing is not None and "Activity ID" in missing and "missing" in missing
    # The rows still land raw.
    assert result.rows[1].values[0] == "abc"
    assert result.rows[2].values[1] == "sometime last week"
    assert [row.line for row in result.errors] == [5, 6, 7]
    assert [a.activity_id for a in result.activities] == [21538875902, 4412]


def test_german_bad_date_names_the_german_column() -> None:
    header = [CONTRACT_DE.get(name, name) for name in EN]
    cells = {("Aktivitäts-ID", 0): "5", ("Aktivitätsdatum", 0): "31.02.2021, 10:00:00"}

    row = parse(build(header, [cells])).rows[0]

    assert row.activity is None
    assert row.error is not None and "Aktivitätsdatum" in row.error and "'31.02.2021, 10:00:00'" in row.error


def test_an_unreadable_optional_value_becomes_none_with_a_warning_not_a_failure() -> None:
    cells = {**RUN, ("Calories", 0): "lots", ("Distance", 1): "far"}

    row = parse(build(EN, [cells])).rows[0]

    assert row.error is None and row.activity is not None
    assert row.activity.calories is None and row.activity.distance_m is None
    assert any("Calories" in w and "'lots'" in w for w in row.warnings)
    assert any("Distance (2nd)" in w and "'far'" in w for w in row.warnings)


def test_a_record_with_the_wrong_number_of_cells_fails_alone() -> None:
    data = build(EN, [RUN]) + b'123,"Oct 7, 2020, 2:43:11 PM",short\n' + build(EN, [RIDE]).split(b"\n", 1)[1]

    result = parse(data)

    assert [row.activity is not None for row in result.rows] == [True, False, True]
    short = result.rows[1]
    assert short.values == ("123", "Oct 7, 2020, 2:43:11 PM", "short")
    assert short.error is not None and "3 cells" in short.error and "94" in short.error


def test_unknown_header_raises_export_format_error_naming_the_cells() -> None:
    with pytest.raises(ExportFormatError) as caught:
        parse(b"Foo,Bar,Activity Name\n1,2,3\n")

    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert SOURCE in message
    assert "['Foo', 'Bar']" in message  # the cells it could not map, not the one it knows
    assert "Activity ID" in message and "Aktivitäts-ID" in message and "id,date" in message


def test_broken_en_gb_header_is_refused_with_its_cells_named() -> None:
    cell = "translation missing: en-GB.lib.export.portability_exporter.activities.horton_values.type"

    with pytest.raises(ExportFormatError, match="translation missing: en-GB"):
        parse(f"{cell},{cell}\n1,2\n".encode())


def test_empty_file_raises_export_format_error() -> None:
    with pytest.raises(ExportFormatError, match=f"{SOURCE}.*empty"):
        parse(b"\xef\xbb\xbf")


def test_header_only_file_has_no_rows() -> None:
    result = parse(build(EN, []))

    assert result.layout == "en" and result.rows == () and len(result.columns) == 94


# --- values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "layout", "expected"),
    [
        ("Oct 7, 2020, 2:43:11 PM", "en", datetime(2020, 10, 7, 14, 43, 11, tzinfo=UTC)),
        ("Oct 7, 2020, 2:43:11\u202fPM", "en", datetime(2020, 10, 7, 14, 43, 11, tzinfo=UTC)),  # ICU 72+
        ("October 7, 2020 at 2:43:11 pm", "en", datetime(2020, 10, 7, 14, 43, 11, tzinfo=UTC)),
        ("Dec 31, 2020, 12:00:00 PM", "en", datetime(2020, 12, 31, 12, 0, 0, tzinfo=UTC)),
        ("07.10.2020, 14:43:11", "de", datetime(2020, 10, 7, 14, 43, 11, tzinfo=UTC)),
        ("7.10.2020 14:43", "de", datetime(2020, 10, 7, 14, 43, tzinfo=UTC)),
        ("7. Okt. 2020, 14:43:11", "de", datetime(2020, 10, 7, 14, 43, 11, tzinfo=UTC)),
        ("6. 9. 2026 11:18:40", "de", datetime(2026, 9, 6, 11, 18, 40, tzinfo=UTC)),  # Czech style
        ("2018-09-12 15:02:23", "pre-2019", datetime(2018, 9, 12, 15, 2, 23, tzinfo=UTC)),
        ("2018-09-12T15:02:23Z", "en", datetime(2018, 9, 12, 15, 2, 23, tzinfo=UTC)),
        ("2018-09-12T17:02:23+02:00", "en", datetime(2018, 9, 12, 15, 2, 23, tzinfo=UTC)),
        ("10/7/2020, 2:43:11 PM", "en", datetime(2020, 10, 7, 14, 43, 11, tzinfo=UTC)),
        ("7/10/2020, 14:43:11", "de", datetime(2020, 10, 7, 14, 43, 11, tzinfo=UTC)),
    ],
)
def test_activity_date_forms(cell: str, layout: str, expected: datetime) -> None:
    assert parse_activity_date(cell, layout) == expected


@pytest.mark.parametrize("cell", ["", "yesterday", "Feb 30, 2020, 1:00:00 PM", "Oct 7, 2020, 13:00:00 PM", "2020"])
def test_activity_date_rejects_non_dates(cell: str) -> None:
    with pytest.raises(ValueError):
        parse_activity_date(cell)


@pytest.mark.parametrize(
    ("display", "layout", "sport_type"),
    [
        ("Run", "en", "Run"),
        ("Weight Training", "en", "WeightTraining"),
        ("E-Bike Ride", "en", "EBikeRide"),
        ("Mountain Bike Ride", "en", "MountainBikeRide"),
        ("Padel Tennis Doubles", "en", "PadelTennisDoubles"),  # unknown: CamelCase, never dropped
        ("Lauf", "de", "Run"),
        ("Wanderung", "de", "Hike"),
        ("Wandern", "de", "Hike"),  # spelling of real German exports
        ("Mountainbike-Fahrt", "de", "MountainBikeRide"),
        ("Gravel-Fahrt", "de", "GravelRide"),
        ("Trailrun", "de", "TrailRun"),
        ("Rudern", "de", "Rowing"),
        ("Virtual Ride", "de", "VirtualRide"),  # an untranslated name in a German file
        ("Bergsteigen im Nebel", "de", "BergsteigenImNebel"),
        ("🧗", "en", "🧗"),  # nothing to CamelCase: kept as written, never dropped
    ],
)
def test_sport_type_mapping(display: str, layout: str, sport_type: str) -> None:
    assert sport_type_of(display, layout) == sport_type


free_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1).filter(
    lambda s: s.strip() != "" and s.strip().casefold() != "#error#"
)


@settings(max_examples=60, deadline=None)
@given(name=free_text, description=free_text)
def test_free_text_survives_exactly(name: str, description: str) -> None:
    """Whatever the athlete typed (commas, quotes, line breaks, emoji) comes back unchanged."""
    cells = {**RIDE, ("Activity Name", 0): name, ("Activity Description", 0): description}

    row = parse(build(EN, [cells, RIDE])).rows[0]

    assert row.activity is not None
    assert row.activity.name == name and row.activity.description == description
    assert row.values[2] == name and row.values[4] == description
