"""Which FitTrackee sport each Strava ``sport_type`` becomes.

FitTrackee has a fixed, smaller list of sports (identified by label; ids differ between instances, and an
administrator may deactivate some), so each Strava sport lists FitTrackee labels in order of preference and
the first one active on the instance wins. Later FitTrackee versions added sports (1.x: padel, skating,
whitewater): the preferences name them first and fall back to what older instances have.

**Fallback**: a Strava sport FitTrackee has no equivalent for (gym work, team and court games, sailing, …),
or one Strava adds after this list was written, becomes :data:`FALLBACK_SPORT` ("Walking": FitTrackee's most
neutral human-powered sport). Nothing is lost: the workout's notes name the Strava sport. If even that sport
is deactivated, the first active sport of the instance is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["FALLBACK_SPORT", "STRAVA_TO_FITTRACKEE", "preferred_labels", "resolve_sport"]

FALLBACK_SPORT = "Walking"

_ROAD = ("Cycling (Sport)",)
_TRANSPORT = ("Cycling (Transport)", "Cycling (Sport)")
_RACKET = ("Tennis (Outdoor)",)

#: Every Strava SportType (models.schema.json) -> FitTrackee labels, most fitting first. An empty tuple:
#: FitTrackee has nothing close, the fallback applies.
STRAVA_TO_FITTRACKEE: Mapping[str, tuple[str, ...]] = {
    "AlpineSki": ("Skiing (Alpine)",),
    "BackcountrySki": ("Skiing (Alpine)", "Skiing (Cross Country)"),
    "Badminton": _RACKET,
    "Basketball": (),
    "Canoeing": ("Canoeing",),
    "Cricket": (),
    "Crossfit": (),
    "Dance": (),
    "EBikeRide": ("Mountain Biking (Electric)", *_TRANSPORT),
    "Elliptical": (),
    "EMountainBikeRide": ("Mountain Biking (Electric)", "Mountain Biking"),
    "Golf": (),
    "GravelRide": ("Cycling (Sport)",),
    "Handcycle": _ROAD,
    "HighIntensityIntervalTraining": (),
    "Hike": ("Hiking",),
    "IceSkate": ("Ice Skating",),
    "InlineSkate": ("Inline Skating",),
    "Kayaking": ("Kayaking",),
    "Kitesurf": ("Windsurfing",),
    "MountainBikeRide": ("Mountain Biking",),
    "NordicSki": ("Skiing (Cross Country)",),
    "Padel": ("Padel (Outdoor)", *_RACKET),
    "PhysicalTherapy": (),
    "Pickleball": _RACKET,
    "Pilates": (),
    "Racquetball": _RACKET,
    "Ride": _ROAD,
    "RockClimbing": ("Mountaineering",),
    "RollerSki": ("Skiing (Cross Country)",),
    "Rowing": ("Rowing",),
    "Run": ("Running",),
    "Sail": (),
    "Skateboard": ("Inline Skating",),
    "Snowboard": ("Skiing (Alpine)",),
    "Snowshoe": ("Snowshoes",),
    "Soccer": (),
    "Squash": _RACKET,
    "StairStepper": (),
    "StandUpPaddling": ("Standup Paddleboarding",),
    "Surfing": ("Standup Paddleboarding",),
    "Swim": ("Open Water Swimming",),
    "TableTennis": _RACKET,
    "Tennis": _RACKET,
    "TrailRun": ("Trail", "Running"),
    "Velomobile": _ROAD,
    "VirtualRide": ("Cycling (Virtual)", "Cycling (Sport)"),
    "VirtualRow": ("Rowing",),
    "VirtualRun": ("Running",),
    "Volleyball": (),
    "Walk": ("Walking",),
    "WeightTraining": (),
    "Wheelchair": (),
    "Windsurf": ("Windsurfing",),
    "Workout": (),
    "Yoga": (),
}

#: Rides that are commutes go to FitTrackee's transport cycling.
_COMMUTE_OVERRIDES: Mapping[str, tuple[str, ...]] = {"Ride": _TRANSPORT, "GravelRide": _TRANSPORT}


def preferred_labels(sport_type: str | None, *, commute: bool = False) -> tuple[str, ...]:
    """The FitTrackee labels for a Strava sport, most fitting first, ending with the fallback."""
    labels = (_COMMUTE_OVERRIDES.get(sport_type or "") if commute else None) or STRAVA_TO_FITTRACKEE.get(
        sport_type or "", ()
    )
    return (*labels, FALLBACK_SPORT) if FALLBACK_SPORT not in labels else labels


def resolve_sport(sport_type: str | None, available: Mapping[str, int] | Iterable[str], *,
                  commute: bool = False) -> str:
    """The label to use on an instance whose active sports are ``available`` (labels, or label -> id)."""
    active = list(available)
    if not active:
        raise ValueError("the FitTrackee instance has no active sport")
    for label in preferred_labels(sport_type, commute=commute):
        if label in active:
            return label
    return active[0]
