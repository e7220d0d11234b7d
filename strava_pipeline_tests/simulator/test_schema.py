"""Every response body of every endpoint validates against the Strava models (models.schema.json)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
import pytest

from strava_pipeline_tests.simulator.conftest import SHARED, Api, needs_shared

pytestmark = needs_shared

STREAM_MODELS = {
    "time": "TimeStream", "distance": "DistanceStream", "latlng": "LatLngStream", "altitude": "AltitudeStream",
    "velocity_smooth": "SmoothVelocityStream", "heartrate": "HeartrateStream", "cadence": "CadenceStream",
    "watts": "PowerStream", "temp": "TemperatureStream", "moving": "MovingStream",
    "grade_smooth": "SmoothGradeStream",
}
ALL_KEYS = ",".join(STREAM_MODELS)


@cache
def _definitions() -> dict[str, Any]:
    return json.loads((SHARED / "models.schema.json").read_text())["definitions"]


@cache
def _validator(model: str) -> jsonschema.Draft7Validator:
    schema = {"$ref": f"#/definitions/{model}", "definitions": _definitions()}
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def validate(body: Any, model: str) -> None:
    """Validate against `#/definitions/<model>`, resolving `$ref`s within the same document.

    Stream `data` arrays hold thousands of samples; jsonschema walks them slowly, so the schema sees
    the first and last 50 samples and a plain loop checks that every sample has the same JSON type.
    """
    body = normalise(body)
    if model.endswith("Stream") and isinstance(body.get("data"), list) and len(body["data"]) > 100:
        data = body["data"]
        kinds = {_kind(x) for x in data}
        assert len(kinds) == 1, f"{model} mixes sample types {kinds}"
        body = {**body, "data": data[:50] + data[-50:]}
    _validator(model).validate(body)


def _kind(x: Any) -> str:
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int | float):
        return "int" if isinstance(x, int) else "float-or-int"
    return type(x).__name__


def normalise(body: Any) -> Any:
    """Undo the one known disagreement between the derived schema and the live API.

    The schema's LatLng needs exactly two numbers, but real 2025 bodies carry `start_latlng: []` for
    activities without GPS (see API-FACTS.md and the real all_athlete_activities.yml). `[]` stands
    for "no position" and is checked as null.
    """
    if isinstance(body, list):
        return [normalise(x) for x in body]
    if isinstance(body, dict):
        return {k: (None if k.endswith("_latlng") and v == [] else normalise(v)) for k, v in body.items()}
    return body


def test_known_discrepancy_is_real() -> None:
    from strava_pipeline_tests.simulator.conftest import cassette_bodies

    real = [a for _, _, page in cassette_bodies("strava-ruby-client/client/all_athlete_activities.yml")
            for a in page]
    assert any(a["start_latlng"] == [] for a in real)
    for a in real[:200]:
        validate(a, "SummaryActivity")


def test_every_endpoint_validates(sim, api: Api) -> None:
    r = api.get("/athlete")
    assert r.status_code == 200
    athlete = r.json()
    validate(athlete, "DetailedAthlete")
    validate(api.get("/athlete/zones").json(), "Zones")
    validate(api.get(f"/athletes/{sim.athlete_id}/stats").json(), "ActivityStats")
    for gear in athlete["bikes"] + athlete["shoes"]:
        validate(gear, "SummaryGear")
        r = api.get(f"/gear/{gear['id']}")
        assert r.status_code == 200
        validate(r.json(), "DetailedGear")

    listed = []
    page = 1
    while True:
        r = api.get("/athlete/activities", page=page, per_page=50)
        assert r.status_code == 200
        if not r.json():
            break
        listed.extend(r.json())
        page += 1
    assert len(listed) == len(sim.activities())
    for item in listed:
        validate(item, "SummaryActivity")

    # One activity per kind is enough for detail/laps/streams: they share renderers.
    kinds: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in listed:
        kinds.setdefault((item["sport_type"], item["manual"], item["private"], item["has_heartrate"]), item)
    assert len(kinds) >= 9
    for item in kinds.values():
        aid = item["id"]
        detailed = api.get(f"/activities/{aid}")
        assert detailed.status_code == 200
        validate(detailed.json(), "DetailedActivity")
        laps = api.get(f"/activities/{aid}/laps")
        assert laps.status_code == 200
        for lap in laps.json():
            validate(lap, "Lap")
        streams = api.get(f"/activities/{aid}/streams", keys=ALL_KEYS, key_by_type="true")
        if item["manual"]:
            assert streams.status_code == 404
            validate(streams.json(), "Fault")
            continue
        assert streams.status_code == 200
        by_type = streams.json()
        validate({k: {**v, "data": v["data"][:20]} for k, v in by_type.items()}, "StreamSet")
        for name, stream in by_type.items():
            validate(stream, STREAM_MODELS.get(name, "BaseStream"))
        array = api.get(f"/activities/{aid}/streams", keys=ALL_KEYS)
        for stream in array.json():
            validate(stream, STREAM_MODELS.get(stream["type"], "BaseStream"))


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        ("/athlete", "not-a-token", 401),
        ("/activities/1", None, 404),
        ("/gear/nope", None, 404),
        ("/no/such/endpoint", None, 404),
    ],
)
def test_error_bodies_are_faults(api: Api, path: str, token: str | None, status: int) -> None:
    r = api.get(path, token=token)
    assert r.status_code == status
    validate(r.json(), "Fault")


def test_oauth_bodies(sim, api: Api) -> None:
    tokens = sim.authorize("read,activity:read")
    validate(tokens["athlete"], "SummaryAthlete")
    bad = api.refresh("nope")
    assert bad.status_code == 400
    validate(bad.json(), "Fault")
