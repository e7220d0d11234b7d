"""Per-sport physiology and equipment used by the synthetic athlete.

Kept apart from the generator so the numbers that make a run look like a run (speed, duration,
heart rate, which sensors a device has) can be read and tuned in one table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SportProfile:
    """What an activity of one sport_type looks like; ranges are (low, high)."""

    sport_type: str
    type: str  # the deprecated `type` field; differs from sport_type for TrailRun, MountainBikeRide
    weight: float  # relative frequency
    speed: tuple[float, float]  # moving speed, m/s
    minutes: tuple[float, float]
    gps: bool
    trainer: bool
    hr_avg: tuple[int, int]
    cadence: tuple[float, float] | None
    watts: tuple[float, float] | None  # average power as a fraction of the athlete's FTP; None = no power
    power_meter_rate: float  # chance of a real power meter (device_watts, watts stream)
    temp_rate: float
    climb: tuple[float, float]  # amplitude of the elevation profile, metres
    manual_rate: float
    gear: str | None  # "shoe", "road", "mtb", "trainer", "hike"
    devices: tuple[str, ...]
    names: tuple[str, ...]
    foot: bool  # gets splits (runs, walks, hikes)


PROFILES: dict[str, SportProfile] = {
    p.sport_type: p
    for p in (
        SportProfile(
            "Run", "Run", 32, (2.6, 3.9), (25, 80), True, False, (138, 162), (78, 90), None, 0, 0.5,
            (2, 10), 0.02, "shoe", ("Garmin Forerunner 265", "COROS PACE 3", "Apple Watch Series 9"),
            ("Morning Run", "Lunch Run", "Evening Run 🌇", "朝ラン", "Вечерняя пробежка", "Tempo 🔥",
             "Αγώνας 10K", "Easy run with Zoë", "جري الصباح", "Parkrun 🏃‍♀️"), True,
        ),
        SportProfile(
            "TrailRun", "Run", 4, (1.9, 3.0), (45, 150), True, False, (140, 160), (74, 84), None, 0, 0.5,
            (40, 150), 0.0, "shoe", ("Garmin Fenix 7", "COROS VERTIX 2"),
            ("Trail Run ⛰️", "Sentier du matin", "山道トレイル", "Griffith Park loop"), True,
        ),
        SportProfile(
            "Ride", "Ride", 18, (6.0, 9.0), (50, 200), True, False, (125, 150), (80, 95), (0.55, 0.85), 0.6, 0.6,
            (10, 80), 0.01, "road", ("Garmin Edge 540", "Wahoo ELEMNT BOLT"),
            ("Morning Ride", "Sortie vélo du dimanche 🥐", "Coffee ride ☕", "Велопрогулка",
             "サイクリング 🚴", "Hill repeats"), False,
        ),
        SportProfile(
            "MountainBikeRide", "Ride", 3, (3.5, 5.5), (60, 180), True, False, (130, 155), (70, 85),
            (0.5, 0.8), 0.0, 0.5, (40, 120), 0.0, "mtb", ("Garmin Edge 840",),
            ("MTB 🤘", "Singletrack sesh", "VTT en forêt"), False,
        ),
        SportProfile(
            "VirtualRide", "VirtualRide", 8, (7.0, 10.0), (30, 90), False, True, (135, 158), (82, 95),
            (0.6, 0.95), 1.0, 0.3, (10, 60), 0.0, "trainer", ("Zwift",),
            ("Zwift - Watopia 🏝️", "Zwift - Tempus Fugit in Watopia", "Zwift - 東京ループ",
             "Zwift - Pacer Group Ride"), False,
        ),
        SportProfile(
            "Swim", "Swim", 8, (0.6, 1.0), (20, 60), False, False, (118, 140), None, None, 0, 0.0,
            (0, 0), 0.05, None, ("Garmin Swim 2", "Apple Watch Ultra"),
            ("Pool swim 🏊‍♂️", "Natation", "水泳", "Lunch Swim"), False,
        ),
        SportProfile(
            "Hike", "Hike", 6, (0.9, 1.4), (90, 300), True, False, (112, 135), (48, 58), None, 0, 0.4,
            (80, 300), 0.03, "hike", ("Garmin Fenix 7", "Apple Watch Ultra"),
            ("Hike ⛰️", "Randonnée au sommet", "高尾山ハイキング", "Поход", "Mt. Baldy via the ski hut"), True,
        ),
        SportProfile(
            "Walk", "Walk", 12, (1.1, 1.6), (20, 75), True, False, (95, 115), (52, 60), None, 0, 0.3,
            (1, 6), 0.04, "hike", ("Apple Watch Series 9", "Garmin Forerunner 265"),
            ("Morning Walk", "Evening Walk 🐕", "散歩", "Balade au parc", "Прогулка"), True,
        ),
        SportProfile(
            "WeightTraining", "WeightTraining", 6, (0.0, 0.0), (30, 70), False, False, (100, 125), None, None,
            0, 0.3, (0, 0), 0.6, None, ("Apple Watch Series 9", "Garmin Forerunner 265"),
            ("Leg day 🏋️", "Gym 💪", "Силовая тренировка", "筋トレ"), False,
        ),
    )
}

ZONES: tuple[tuple[str, float, tuple[float, float], float], ...] = (
    # (IANA zone, weight, home (lat, lng), base altitude m)
    ("America/Los_Angeles", 0.68, (34.0736, -118.2400), 90.0),
    ("Europe/Paris", 0.14, (48.8566, 2.3522), 35.0),
    ("Asia/Tokyo", 0.12, (35.6812, 139.7671), 40.0),
    ("Europe/London", 0.06, (51.5072, -0.1276), 20.0),
)

BIKES = (
    ("Canyon Endurace", "Canyon", "Endurace CF 7", 3, 8.2, "road"),
    ("Trek Marlin", "Trek", "Marlin 7", 1, 13.1, "mtb"),
    ("Wahoo KICKR bike", "Wahoo", "KICKR Bike", 4, 40.0, "trainer"),
)
SHOES = (
    ("Hoka Clifton 9", "Hoka", "Clifton 9", "shoe", False),
    ("Nike Pegasus 40", "Nike", "Pegasus 40", "shoe", True),
    ("Salomon X Ultra", "Salomon", "X Ultra 4", "hike", False),
)
