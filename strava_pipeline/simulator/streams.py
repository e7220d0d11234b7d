"""Activity streams, generated lazily from an activity's design and cached serialised.

Generation is seeded by (dataset seed, activity id), so the same activity always yields the same
samples no matter when or how often it is fetched. The serialised JSON of each stream type is kept
in a bounded LRU cache (a one-hour activity is a few hundred kB of JSON, and a thousand of them
would not fit comfortably in memory), and whole response bodies for a given key set are cached as
well so that repeated fetches cost a dictionary lookup.
"""

from __future__ import annotations

import json
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from strava_pipeline.simulator.dataset import Activity

DOCUMENTED = (
    "time", "distance", "latlng", "altitude", "velocity_smooth", "heartrate", "cadence", "watts",
    "temp", "moving", "grade_smooth",
)


def generate(act: Activity, seed: int) -> dict[str, list[Any]]:
    """All stream types this activity has, as equal-length lists (index i = one sample)."""
    rng = random.Random(f"{seed}:{act.id}:streams")
    times: list[int] = []
    t = 0
    while t < act.elapsed:
        times.append(t)
        t += 1 if act.dt_max == 1 else rng.randint(1, act.dt_max)
    times.append(act.elapsed)
    n = len(times)
    paused = [False] * n
    for i, ts in enumerate(times):
        for start, length in act.pauses:
            if start < ts <= start + length:
                paused[i] = True
                break
    moving = [not p for p in paused]
    moving[0] = False

    # Speed: a smooth multiplicative wander around 1, zero while paused; scaled to hit the distance.
    mult = 1.0
    raw_v: list[float] = []
    for i in range(n):
        mult += 0.15 * (1.0 - mult) + rng.gauss(0, 0.03)
        mult = min(1.3, max(0.7, mult))
        raw_v.append(mult if moving[i] else 0.0)
    raw_d = [0.0]
    for i in range(1, n):
        raw_d.append(raw_d[-1] + raw_v[i] * (times[i] - times[i - 1]))
    scale = act.distance / raw_d[-1] if raw_d[-1] > 0 else 0.0
    dist = [round(d * scale, 1) for d in raw_d]
    avg = act.distance / act.moving_time if act.moving_time > 0 else 0.0
    vmax = avg * act.max_speed_factor
    velocity = [round(min(v * scale, vmax), 3) for v in raw_v]

    out: dict[str, list[Any]] = {"time": times, "distance": dist}
    total = act.distance
    fracs = [d / total if total > 0 else i / max(1, n - 1) for i, d in enumerate(dist)]
    if act.has_gps and act.waypoints:
        wps = act.waypoints
        legs = len(wps) - 1
        latlng = []
        for f in fracs:
            pos = min(f * legs, legs - 1e-9)
            k = int(pos)
            r = pos - k
            (a_lat, a_lng), (b_lat, b_lng) = wps[k], wps[k + 1]
            latlng.append([
                round(a_lat + (b_lat - a_lat) * r + rng.uniform(-8e-6, 8e-6), 6),
                round(a_lng + (b_lng - a_lng) * r + rng.uniform(-8e-6, 8e-6), 6),
            ])
        out["latlng"] = latlng
    if act.alt_terms and total > 0:
        out["altitude"] = [round(act.altitude_at(f), 1) for f in fracs]
    out["velocity_smooth"] = velocity
    if act.hr is not None:
        out["heartrate"] = _around(rng, act.hr[0], act.hr[1], moving, spread=6.0, floor=60)
    if act.cadence is not None:
        out["cadence"] = _around(rng, act.cadence, act.cadence + 15, moving, spread=3.0, floor=0, rest=0)
    if act.watts is not None and act.device_watts:
        out["watts"] = _around(rng, act.watts, act.watts * 3, moving, spread=35.0, floor=0, rest=0)
    if act.watts_calc and act.watts is not None:
        out["watts_calc"] = _around(rng, act.watts, act.watts * 3, moving, spread=25.0, floor=0, rest=0)
    if act.temp is not None:
        drift = rng.uniform(-2, 2)
        out["temp"] = [round(act.temp + drift * (i / n - 0.5)) for i in range(n)]
    out["moving"] = moving
    if "altitude" in out:
        out["grade_smooth"] = [round(max(-35.0, min(35.0, act.grade_at(f))), 1) for f in fracs]
    return out


def _around(rng: random.Random, mean: float, peak: float, moving: list[bool], *, spread: float,
            floor: float, rest: float | None = None) -> list[int]:
    """An integer series averaging `mean` over moving samples, capped at and touching `peak`."""
    n = len(moving)
    level = 0.0
    values: list[float] = []
    for _ in range(n):
        level += 0.1 * (0.0 - level) + rng.gauss(0, spread * 0.3)
        values.append(level)
    idx = [i for i in range(n) if moving[i]] or list(range(n))
    shift = mean - sum(values[i] for i in idx) / len(idx)
    series: list[int] = []
    for i, v in enumerate(values):
        if not moving[i] and rest is not None:
            series.append(int(rest))
        else:
            series.append(round(max(floor, min(peak, v + shift))))
    if idx:
        top = max(idx, key=lambda i: values[i])
        series[top] = round(peak) if rest is None else series[top]
    return series


@dataclass
class StreamEntry:
    """One activity's serialised streams plus the numbers the detailed activity needs."""

    fragments: dict[str, bytes]  # type -> JSON of {"data":...,"series_type":...} without "type"
    size: int
    derived: dict[str, Any]
    bodies: OrderedDict[tuple[tuple[str, ...], bool], bytes]


class StreamCache:
    """LRU of serialised streams per activity; thread-safe; regenerates on demand."""

    def __init__(self, seed: int, max_bytes: int = 256 * 2**20) -> None:
        self.seed = seed
        self.max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[int, int], StreamEntry] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _weight(entry: StreamEntry) -> int:
        return sum(map(len, entry.fragments.values())) + sum(map(len, entry.bodies.values()))

    def _trim(self) -> None:
        """Evict least recently used activities until the cache fits (keep at least one)."""
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            self._bytes -= self._weight(old)

    def entry(self, act: Activity) -> StreamEntry:
        key = (act.id, act.elapsed)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        streams = generate(act, self.seed)
        size = len(streams["time"])
        fragments = {}
        for name, data in streams.items():
            meta = {"data": data, "series_type": "distance", "original_size": size, "resolution": "high"}
            fragments[name] = json.dumps(meta, separators=(",", ":")).encode()
        from strava_pipeline.simulator.detail import derive  # detail imports this module

        made = StreamEntry(fragments, size, derive(act, streams), OrderedDict())
        with self._lock:
            if key not in self._entries:
                self._entries[key] = made
                self._bytes += self._weight(made)
                self._trim()
            return self._entries.get(key, made)

    def body(self, act: Activity, keys: list[str], key_by_type: bool) -> bytes:
        """The response body for a streams request, Strava's selection rules applied."""
        entry = self.entry(act)
        wanted: list[str] = []
        for k in keys:
            if k in entry.fragments and k not in wanted and k in DOCUMENTED:
                wanted.append(k)
        if "distance" not in wanted and "distance" in entry.fragments:
            wanted.append("distance")  # the series_type stream always comes back
        for extra in entry.fragments:
            if extra not in DOCUMENTED:
                wanted.append(extra)  # undocumented types (watts_calc) arrive unasked
        cache_key = (tuple(wanted), key_by_type)
        with self._lock:
            cached = entry.bodies.get(cache_key)
        if cached is not None:
            return cached
        if key_by_type:
            parts = [b'"' + k.encode() + b'":' + entry.fragments[k] for k in wanted]
            body = b"{" + b",".join(parts) + b"}"
        else:
            parts = [b'{"type":"' + k.encode() + b'",' + entry.fragments[k][1:] for k in wanted]
            body = b"[" + b",".join(parts) + b"]"
        with self._lock:
            live = self._entries.get((act.id, act.elapsed)) is entry
            if cache_key not in entry.bodies:
                entry.bodies[cache_key] = body
                self._bytes += len(body) if live else 0
            while len(entry.bodies) > 4:
                _, dropped = entry.bodies.popitem(last=False)
                self._bytes -= len(dropped) if live else 0
            self._trim()
        return body

    def derived(self, act: Activity) -> dict[str, Any]:
        return self.entry(act).derived

    def forget(self, activity_id: int) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == activity_id]:
                self._bytes -= self._weight(self._entries.pop(key))

