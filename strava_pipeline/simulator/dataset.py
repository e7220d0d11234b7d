"""The synthetic athlete: profile, gear and activity summaries, deterministic from a seed.

Summaries are built eagerly (a thousand of them in well under a second) from a compact "design"
per activity: route waypoints, an analytic elevation profile, pauses, and target averages. The
streams generator (`streams.py`) later expands the same design into per-second samples, so the
summary totals agree with the streams without the streams ever being built up front.

The dataset can change while the server runs (tests of incremental sync add, edit and delete
activities), so every public method takes the dataset lock.
"""

from __future__ import annotations

import copy
import json
import math
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polyline

from strava_pipeline.simulator.sports import BIKES, PROFILES, SHOES, ZONES, SportProfile

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Highest average power, as a fraction of FTP, of a simulated ride longer than three hours.
LONG_RIDE_MAX_INTENSITY = 0.7
ALT_GRID = 120  # points used to derive elevation totals from the analytic profile
_SIN = [math.sin(2 * math.pi * i / ALT_GRID) for i in range(ALT_GRID)]
_COS = [math.cos(2 * math.pi * i / ALT_GRID) for i in range(ALT_GRID)]
WAYPOINTS = 48


_COUNTRIES = {"America/Los_Angeles": "United States", "Europe/Paris": "France", "Asia/Tokyo": "Japan",
              "Europe/London": "United Kingdom"}


def iso_z(moment: datetime) -> str:
    """Strava's timestamp format: seconds precision and a literal Z (also on local times)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def zone_label(zone: str) -> str:
    """Strava's `timezone` label uses the zone's standard (non-DST) offset, e.g. "(GMT-08:00) ..."."""
    tz = ZoneInfo(zone)
    probe = datetime(2024, 1, 15, 12, tzinfo=tz)
    std = probe.utcoffset() - (probe.dst() or timedelta(0))  # type: ignore[operator]
    minutes = int(std.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"(GMT{sign}{minutes // 60:02d}:{minutes % 60:02d}) {zone}"


@dataclass
class Activity:
    """One activity's design; `summary()` renders the public SummaryActivity JSON."""

    id: int
    athlete_id: int
    sport: str
    name: str
    start_utc: datetime
    zone: str
    elapsed: int
    pauses: list[tuple[int, int]]  # (start offset s, duration s)
    distance: float
    max_speed_factor: float
    manual: bool
    private: bool
    trainer: bool
    commute: bool
    gear_id: str | None
    device_name: str | None
    dt_max: int  # sampling: every 1..dt_max seconds
    waypoints: list[tuple[float, float]] | None
    alt_base: float
    alt_terms: list[tuple[float, float, float]]  # (amplitude m, cycles over route, phase)
    hr: tuple[int, int] | None  # (average, max)
    cadence: float | None
    watts: int | None
    device_watts: bool
    temp: int | None
    watts_calc: bool
    workout_type: int | None
    kudos: int
    comments: int
    athlete_count: int
    photos: int
    achievements: int
    prs: int
    upload_id: int | None
    external_id: str | None
    description: str
    calories: float
    suffer_score: float | None
    overrides: dict[str, Any] = field(default_factory=dict)
    _summary: dict[str, Any] | None = None

    # --- derived numbers -------------------------------------------------------------------
    @property
    def profile(self) -> SportProfile:
        return PROFILES.get(self.sport, PROFILES["Run"])

    @property
    def moving_time(self) -> int:
        return self.elapsed - sum(d for _, d in self.pauses)

    @property
    def has_gps(self) -> bool:
        return self.waypoints is not None and not self.manual

    @property
    def has_streams(self) -> bool:
        return not self.manual

    def altitude_at(self, frac: float) -> float:
        return self.alt_base + sum(a * math.sin(2 * math.pi * c * frac + p) for a, c, p in self.alt_terms)

    def grade_at(self, frac: float) -> float:
        """Slope in percent of the analytic elevation profile."""
        if self.distance <= 0:
            return 0.0
        slope = sum(a * 2 * math.pi * c * math.cos(2 * math.pi * c * frac + p) for a, c, p in self.alt_terms)
        return slope / self.distance * 100

    def elevation_stats(self) -> tuple[float, float, float]:
        """(total gain, high, low) from the analytic profile on a grid, as summaries report.

        Uses sine/cosine tables (cycles are whole numbers) so a thousand summaries stay cheap.
        """
        alts = [self.alt_base] * (ALT_GRID + 1)
        for amp, cycles, phase in self.alt_terms:
            c = int(cycles)
            ca, sa = amp * math.cos(phase), amp * math.sin(phase)
            alts = [alt + ca * _SIN[(c * i) % ALT_GRID] + sa * _COS[(c * i) % ALT_GRID]
                    for i, alt in enumerate(alts)]
        gain = 0.0
        prev = alts[0]
        for alt in alts:
            if alt > prev:
                gain += alt - prev
            prev = alt
        return gain, max(alts), min(alts)

    @property
    def start_epoch(self) -> int:
        return int((self.start_utc - EPOCH).total_seconds())

    # --- rendering -------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """SummaryActivity JSON (resource_state 2), with edits applied; cached until changed."""
        if self._summary is None:
            self._summary = self._render()
            self._summary.update(self.overrides)
        return self._summary

    def invalidate(self) -> None:
        self._summary = None

    def _render(self) -> dict[str, Any]:
        prof = self.profile
        local = self.start_utc.astimezone(ZoneInfo(self.zone))
        offset = local.utcoffset() or timedelta(0)
        moving = self.moving_time
        avg_speed = round(self.distance / moving, 3) if moving > 0 else 0.0
        gps = self.has_gps
        out: dict[str, Any] = {
            "resource_state": 2,
            "athlete": {"id": self.athlete_id, "resource_state": 1},
            "name": self.name,
            "distance": round(self.distance, 1),
            "moving_time": moving,
            "elapsed_time": self.elapsed,
            "total_elevation_gain": 0.0,
            "type": prof.type,
            "sport_type": self.sport,
            "workout_type": self.workout_type,
            "id": self.id,
            "start_date": iso_z(self.start_utc),
            "start_date_local": iso_z(local.replace(tzinfo=None)),
            "timezone": zone_label(self.zone),
            "utc_offset": float(offset.total_seconds()),
            "location_city": None,
            "location_state": None,
            # Strava stopped geocoding in 2016-ish; only some (older-style) activities carry a country.
            "location_country": _COUNTRIES.get(self.zone) if self.id % 3 == 0 else None,
            "achievement_count": self.achievements,
            "kudos_count": self.kudos,
            "comment_count": self.comments,
            "athlete_count": self.athlete_count,
            "photo_count": 0,
            "map": {
                "id": f"a{self.id}",
                "summary_polyline": polyline.encode(self.waypoints, 5) if gps and self.waypoints else "",
                "resource_state": 2,
            },
            "trainer": self.trainer,
            "commute": self.commute,
            "manual": self.manual,
            "private": self.private,
            "visibility": "only_me" if self.private else "everyone",
            "flagged": False,
            "gear_id": self.gear_id,
            "start_latlng": [round(v, 6) for v in self.waypoints[0]] if gps and self.waypoints else [],
            "end_latlng": [round(v, 6) for v in self.waypoints[-1]] if gps and self.waypoints else [],
            "average_speed": avg_speed,
            "max_speed": round(avg_speed * self.max_speed_factor, 3) if not self.manual else 0.0,
        }
        if self.cadence is not None and not self.manual:
            out["average_cadence"] = round(self.cadence, 1)
        if self.watts is not None and not self.manual:
            out["average_watts"] = float(self.watts)
            out["kilojoules"] = round(self.watts * moving / 1000, 1)
            out["device_watts"] = self.device_watts
        if self.temp is not None and not self.manual:
            out["average_temp"] = self.temp
        has_hr = self.hr is not None and not self.manual
        out["has_heartrate"] = has_hr
        if has_hr and self.hr:
            out["average_heartrate"] = float(self.hr[0])
            out["max_heartrate"] = float(self.hr[1])
        out["heartrate_opt_out"] = False
        out["display_hide_heartrate_option"] = has_hr
        if not self.manual and self.distance > 0:
            gain, high, low = self.elevation_stats()
            out["total_elevation_gain"] = round(gain, 1)
            out["elev_high"] = round(high, 1)
            out["elev_low"] = round(low, 1)
        out["upload_id"] = self.upload_id
        if self.upload_id is not None:
            out["upload_id_str"] = str(self.upload_id)
        out["external_id"] = self.external_id
        out["from_accepted_tag"] = False
        out["pr_count"] = self.prs
        out["total_photo_count"] = self.photos
        out["has_kudoed"] = False
        if (has_hr or self.manual) and self.suffer_score is not None:
            out["suffer_score"] = self.suffer_score
        if self.device_name is not None:
            out["device_name"] = self.device_name
        return out


@dataclass
class Gear:
    """A bike or a pair of shoes."""

    id: str
    name: str
    brand: str
    model: str
    kind: str  # road | mtb | trainer | shoe | hike
    primary: bool
    retired: bool
    frame_type: int | None = None
    weight: float | None = None


@dataclass
class Athlete:
    """The one athlete behind the demo app."""

    id: int
    username: str
    firstname: str
    lastname: str
    city: str
    state: str
    country: str
    sex: str
    weight: float
    ftp: int
    max_hr: int
    created_at: str
    gear: list[Gear]


class ActivityFactory:
    """Builds activity designs; the same factory state always yields the same activity."""

    def __init__(self, athlete: Athlete, activity_seconds: int | None = None) -> None:
        self.athlete = athlete
        self.activity_seconds = activity_seconds

    def gear_for(self, kind: str | None, rng: random.Random) -> str | None:
        if kind is None:
            return None
        options = [g for g in self.athlete.gear if g.kind == kind and not g.retired]
        if not options:
            options = [g for g in self.athlete.gear if g.kind == kind]
        if not options or rng.random() < 0.05:
            return None
        primary = [g for g in options if g.primary]
        return (primary[0] if primary and rng.random() < 0.7 else rng.choice(options)).id

    def build(
        self,
        rng: random.Random,
        activity_id: int,
        sport: str,
        start_local: datetime,
        zone: str,
        *,
        manual: bool | None = None,
        private: bool | None = None,
        minutes: float | None = None,
        name: str | None = None,
        watts_calc: bool | None = None,
    ) -> Activity:
        prof = PROFILES[sport]
        tz = ZoneInfo(zone)
        start_utc = start_local.replace(tzinfo=tz).astimezone(UTC)
        is_manual = manual if manual is not None else rng.random() < prof.manual_rate
        is_private = private if private is not None else rng.random() < 0.03
        if self.activity_seconds is not None:
            elapsed = int(self.activity_seconds)
        else:
            elapsed = int((minutes if minutes is not None else rng.uniform(*prof.minutes)) * 60)
        pauses: list[tuple[int, int]] = []
        if not is_manual and elapsed > 600:
            for _ in range(rng.randint(0, 1 + elapsed // 1800)):
                length = rng.randint(15, 240)
                at = rng.randint(120, max(121, elapsed - length - 120))
                if all(at + length < s or at > s + d for s, d in pauses):
                    pauses.append((at, length))
            pauses.sort()
            if sum(d for _, d in pauses) > elapsed // 3:
                pauses = []
        moving = elapsed - sum(d for _, d in pauses)
        speed = rng.uniform(*prof.speed)
        distance = round(speed * moving, 1)
        if is_manual and sport == "WeightTraining":
            distance = 0.0
        home_zone = next(z for z in ZONES if z[0] == zone)
        waypoints = None
        if prof.gps and not is_manual and distance > 0:
            waypoints = self._route(rng, home_zone[2], distance)
        amp = rng.uniform(*prof.climb)
        terms = []
        if amp > 0:
            n_terms = rng.randint(2, 4)
            for k in range(n_terms):
                terms.append((amp / (k + 1) ** 2, float(rng.randint(1, 2) + k), rng.uniform(0, 2 * math.pi)))
        base = home_zone[3] + (900.0 if sport in ("Hike", "TrailRun") else 0.0) + amp
        hr = None
        if rng.random() < (0.6 if sport == "Swim" else 0.93):
            avg_hr = rng.randint(*prof.hr_avg)
            hr = (avg_hr, min(self.athlete.max_hr, avg_hr + rng.randint(12, 30)))
        watts = None
        if prof.watts:
            # Relative to the athlete's FTP, as real riders pace: nobody holds threshold for five hours.
            intensity = rng.uniform(*prof.watts)
            if moving > 3 * 3600:
                intensity = min(intensity, LONG_RIDE_MAX_INTENSITY)
            watts = round(self.athlete.ftp * intensity)
        device_watts = watts is not None and rng.random() < prof.power_meter_rate
        is_calc = watts_calc if watts_calc is not None else sport == "VirtualRide"
        temp = rng.randint(4, 31) if rng.random() < prof.temp_rate else None
        kudos = rng.randint(0, 25)
        photos = rng.choice([0, 0, 0, 0, 1, 2, 4])
        workout_type = None
        if prof.type == "Run":
            workout_type = rng.choice([0, 0, 0, 0, 1, 2, 3])
        elif prof.type in ("Ride", "VirtualRide"):
            workout_type = rng.choice([10, 10, 10, 11, 12])
        device = None if is_manual else rng.choice(prof.devices)
        upload_id = None if is_manual else activity_id + rng.randint(10**8, 2 * 10**9)
        if is_manual:
            external_id = None
        elif device == "Zwift":
            external_id = f"zwift-activity-{rng.randint(10**17, 10**18 - 1)}.fit"
        elif device and device.startswith("Garmin"):
            external_id = f"garmin_ping_{rng.randint(10**11, 10**12 - 1)}"
        else:
            external_id = f"{rng.getrandbits(64):016X}.fit"
        mass = self.athlete.weight
        kcal_per_s = {"Ride": 0.18, "VirtualRide": 0.2, "Swim": 0.16, "WeightTraining": 0.08}.get(prof.type, 0.17)
        calories = round(moving * kcal_per_s * mass / 70, 1)
        suffer = float(round(moving / 60 * ((hr[0] if hr else 120) - 90) / 40))
        return Activity(
            id=activity_id,
            athlete_id=self.athlete.id,
            sport=sport,
            name=name or rng.choice(prof.names),
            start_utc=start_utc,
            zone=zone,
            elapsed=elapsed,
            pauses=pauses,
            distance=distance,
            max_speed_factor=rng.uniform(1.25, 1.6),
            manual=is_manual,
            private=is_private,
            trainer=prof.trainer,
            commute=prof.type == "Ride" and not prof.trainer and rng.random() < 0.1,
            gear_id=self.gear_for(prof.gear, rng),
            device_name=device,
            dt_max=rng.choice([1, 1, 2, 3, 5]),
            waypoints=waypoints,
            alt_base=base,
            alt_terms=terms,
            hr=hr if not is_manual else None,
            cadence=rng.uniform(*prof.cadence) if prof.cadence else None,
            watts=watts,
            device_watts=device_watts,
            temp=temp,
            watts_calc=is_calc,
            workout_type=workout_type,
            kudos=kudos,
            comments=rng.choice([0, 0, 0, 1, 2]),
            athlete_count=rng.choice([1, 1, 1, 2, 3]),
            photos=photos,
            achievements=rng.choice([0, 0, 1, 3]),
            prs=rng.choice([0, 0, 0, 1]),
            upload_id=upload_id,
            external_id=external_id,
            description=rng.choice(["", "Felt good.", "Beau temps ☀️", "脚が重い", "Legs were toast 🥵"]),
            calories=calories,
            suffer_score=suffer,
        )

    @staticmethod
    def _route(rng: random.Random, home: tuple[float, float], distance: float) -> list[tuple[float, float]]:
        """A continuous wandering route of WAYPOINTS legs that starts near home."""
        lat = home[0] + rng.uniform(-0.02, 0.02)
        lng = home[1] + rng.uniform(-0.02, 0.02)
        heading = rng.uniform(0, 2 * math.pi)
        leg = distance / WAYPOINTS
        points = [(lat, lng)]
        for i in range(WAYPOINTS):
            heading += rng.gauss(0, 0.35)
            if i == WAYPOINTS // 2:
                heading += math.pi * rng.uniform(0.5, 1.0)  # turn for home, roughly
            lat += leg * math.cos(heading) / 111_320
            lng += leg * math.sin(heading) / (111_320 * math.cos(math.radians(lat)))
            points.append((lat, lng))
        return points


# Activities forced into every dataset, so edge cases exist even when the random draw misses them.
# (sport, zone, local time, extra kwargs)
SPECIALS: tuple[tuple[str, str, time, dict[str, Any]], ...] = (
    ("Run", "America/Los_Angeles", time(23, 30), {"name": "Midnight-ish run 🌙"}),  # next UTC day
    ("Run", "Asia/Tokyo", time(6, 30), {"name": "皇居ラン"}),  # previous UTC day
    ("Hike", "America/Los_Angeles", time(6, 0), {"minutes": 540, "name": "Mt. Whitney day hike 🏔️"}),
    ("Ride", "Europe/Paris", time(7, 0), {"minutes": 500, "name": "Paris–Rouen–Paris 🚴"}),
    ("WeightTraining", "America/Los_Angeles", time(18, 0), {"manual": True}),
    ("Run", "America/Los_Angeles", time(12, 0), {"manual": True, "name": "Treadmill (forgot watch)"}),
    ("Run", "America/Los_Angeles", time(7, 0), {"private": True, "name": "Private recovery run 🔒"}),
    ("Ride", "America/Los_Angeles", time(8, 0), {"private": True}),
    ("VirtualRide", "America/Los_Angeles", time(19, 0), {"watts_calc": True}),
    ("Swim", "Europe/Paris", time(0, 30), {"name": "Nage de minuit"}),  # previous UTC day
)


def make_athlete(rng: random.Random) -> Athlete:
    athlete_id = rng.randint(10_000_000, 99_999_999)
    gear: list[Gear] = []
    for i, (name, brand, model, frame, weight, kind) in enumerate(BIKES):
        gear.append(Gear(f"b{rng.randint(10**6, 10**8)}", name, brand, model, kind, i == 0, False, frame, weight))
    for i, (name, brand, model, kind, retired) in enumerate(SHOES):
        gear.append(Gear(f"g{rng.randint(10**6, 10**8)}", name, brand, model, kind, i == 0, retired))
    return Athlete(
        id=athlete_id,
        username=f"sim_athlete_{athlete_id}",
        firstname=rng.choice(["Zoë", "Kenji", "Amélie", "Ольга", "Sam"]),
        lastname=rng.choice(["Okafor", "Nakamura", "Dubois", "Иванова", "García"]),
        city="Los Angeles",
        state="CA",
        country="United States",
        sex=rng.choice(["M", "F"]),
        weight=round(rng.uniform(55, 85), 1),
        ftp=rng.randint(190, 290),
        max_hr=rng.randint(182, 198),
        created_at="2017-03-14T16:20:00Z",
        gear=gear,
    )


@dataclass
class RecordedActivity:
    """A real recorded SummaryActivity served verbatim (replay of public recordings).

    It has no design to generate streams or details from, so those endpoints answer 404 for it.
    """

    id: int
    athlete_id: int
    recorded: dict[str, Any]
    manual: bool = True
    has_streams: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {**self.recorded, **self.overrides}

    def invalidate(self) -> None:
        """Nothing is derived from a recording."""


class Dataset:
    """The athlete and its activities, mutable at run time under one lock."""

    def __init__(self, seed: int, start: date, end: date, count: int, activity_seconds: int | None,
                 now: float) -> None:
        self.seed = seed
        self.lock = threading.RLock()
        rng = random.Random(seed)
        self.athlete = make_athlete(rng)
        self.factory = ActivityFactory(self.athlete, activity_seconds)
        self._activities: dict[int, Activity] = {}
        self._added = 0
        self._generate(rng, start, max(start, end), count, now)
        for act in self._activities.values():
            act.summary()  # render eagerly: the first listing must not pay for a thousand summaries
        self.version = 0  # bumped on every change; lets caches notice edits
        self._ordered: tuple[int, list[Activity]] | None = None

    # --- generation ------------------------------------------------------------------------
    def _generate(self, rng: random.Random, start: date, end: date, count: int, now: float) -> None:
        span = (end - start).days + 1
        sports = list(PROFILES)
        weights = [PROFILES[s].weight for s in sports]
        zones = [z[0] for z in ZONES]
        zone_weights = [z[1] for z in ZONES]
        special_slots = rng.sample(range(count), min(count, len(SPECIALS))) if count else []
        plans: list[tuple[datetime, str, str, dict[str, Any]]] = []
        for i in range(count):
            day = start + timedelta(days=int(rng.random() * span))
            if i in special_slots:
                sport, zone, at, extra = SPECIALS[special_slots.index(i)]
            else:
                sport = rng.choices(sports, weights)[0]
                zone = rng.choices(zones, zone_weights)[0]
                at = time(rng.choice([6, 7, 7, 8, 12, 17, 18, 19]), rng.randint(0, 59), rng.randint(0, 59))
                extra = {"minutes": 8 * 60 + rng.uniform(5, 90)} if rng.random() < 0.01 else {}
            plans.append((datetime.combine(day, at), sport, zone, extra))
        # ids grow with start time like Strava's; sort by the UTC instant first.
        plans.sort(key=lambda p: p[0].replace(tzinfo=ZoneInfo(p[2])).astimezone(UTC))
        next_id = rng.randint(10_000_000_000, 11_000_000_000)
        for local, sport, zone, extra in plans:
            next_id += rng.randint(10_000, 5_000_000)
            act = self.factory.build(random.Random(f"{self.seed}:{next_id}"), next_id, sport, local, zone, **extra)
            # Never generate the future: an activity must have ended before "now".
            while act.start_epoch + act.elapsed > now and act.start_utc.date() > start:
                act.start_utc -= timedelta(days=1)
            self._activities[next_id] = act
        self._next_id = next_id

    # --- queries -----------------------------------------------------------------------------
    def get(self, activity_id: int) -> Activity | None:
        with self.lock:
            return self._activities.get(activity_id)

    def ordered(self) -> list[Activity]:
        """All activities, newest first (by the start_date actually served); cached per dataset version."""
        with self.lock:
            if self._ordered is None or self._ordered[0] != self.version:
                acts = sorted(self._activities.values(),
                              key=lambda a: (_epoch_of(a.summary()["start_date"]), a.id), reverse=True)
                self._ordered = (self.version, acts)
            return list(self._ordered[1])

    def summaries(self) -> list[dict[str, Any]]:
        return json.loads(json.dumps([a.summary() for a in self.ordered()]))

    def ids(self) -> set[int]:
        with self.lock:
            return set(self._activities)

    def replay(self, summaries: list[dict[str, Any]]) -> None:
        """Serve exactly these recorded summaries instead of the synthetic activities."""
        with self.lock:
            self._activities = {
                int(s["id"]): RecordedActivity(int(s["id"]), self.athlete.id, copy.deepcopy(s)) for s in summaries
            }
            self.version += 1

    def gear(self, gear_id: str) -> Gear | None:
        return next((g for g in self.athlete.gear if g.id == gear_id), None)

    # --- changes -----------------------------------------------------------------------------
    def add(self, start_date_local: datetime | str | None = None, sport_type: str = "Run",
            **overrides: Any) -> int:
        """Create an activity (a new upload) and return its id; unknown sports fall back to Run's design."""
        with self.lock:
            self._added += 1
            rng = random.Random(f"{self.seed}:added:{self._added}")
            self._next_id += rng.randint(10_000, 5_000_000)
            new_id = self._next_id
            zone = overrides.pop("zone", None) or "America/Los_Angeles"
            if isinstance(start_date_local, str):
                start_date_local = datetime.fromisoformat(start_date_local.rstrip("Z"))
            if start_date_local is None:
                start_date_local = datetime.now(ZoneInfo(zone)).replace(tzinfo=None, microsecond=0)
            elif start_date_local.tzinfo is not None:
                start_date_local = start_date_local.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
            design = {k: overrides.pop(k) for k in ("manual", "private", "minutes", "name") if k in overrides}
            sport = sport_type if sport_type in PROFILES else "Run"
            act = self.factory.build(rng, new_id, sport, start_date_local, zone, **design)
            if sport != sport_type:
                overrides.setdefault("sport_type", sport_type)
                overrides.setdefault("type", sport_type)
            act.overrides.update(_consistent(overrides))
            act.invalidate()
            self._activities[new_id] = act
            self.version += 1
            return new_id

    def update(self, activity_id: int, **fields: Any) -> dict[str, Any]:
        """Edit fields of the served summary (e.g. name, sport_type, private); returns the new summary."""
        with self.lock:
            act = self._activities.get(activity_id)
            if act is None:
                raise KeyError(activity_id)
            act.overrides.update(_consistent(fields))
            act.invalidate()
            self.version += 1
            return copy.deepcopy(act.summary())

    def delete(self, activity_id: int) -> None:
        with self.lock:
            if self._activities.pop(activity_id, None) is None:
                raise KeyError(activity_id)
            self.version += 1


def _consistent(fields: dict[str, Any]) -> dict[str, Any]:
    """Keep paired fields in step: private <-> visibility."""
    out = dict(fields)
    if "private" in out and "visibility" not in out:
        out["visibility"] = "only_me" if out["private"] else "everyone"
    elif "visibility" in out and "private" not in out:
        out["private"] = out["visibility"] == "only_me"
    return out


def _epoch_of(stamp: str) -> int:
    return int((datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - EPOCH).total_seconds())


epoch_of = _epoch_of
