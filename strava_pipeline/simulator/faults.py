"""Fault injection: make chosen endpoints fail the ways the real Strava (and the internet) fail.

SPEC grammar (the same for `--faults`, `SimulatorConfig(faults=...)`, `sim.set_faults(...)` and
`POST /_simulator/faults`)::

    SPEC     := RULE ( ("," | ";" | whitespace) RULE )*      empty SPEC = no faults
    RULE     := ENDPOINT ":" KIND "=" AMOUNT [ "@" SECONDS ]
    ENDPOINT := athlete | athlete/zones | athlete/activities | activities | streams | laps
              | gear | stats | token | *                      (* = every endpoint, token included)
    KIND     := 500 | 502 | 503 | ... (any 5xx)   answer that status with {"message":"error"}
              | slow        sleep SECONDS (default 10) before answering normally (client timeouts)
              | reset       close the connection with no response (SO_LINGER 0 -> TCP RST)
              | truncate    correct status and headers (Content-Length of the full body), half the body
              | malformed   200 with a body that is not JSON
              | noheaders   a normal answer without the X-Ratelimit-* headers
              | expired     401 with Strava's invalid/expired access-token body
              | inactive    403 Application/Status/Inactive: the app owner has no subscription (June 2026)
    AMOUNT   := RATE      a probability in [0, 1] drawn per matching request
              | "#" N     exactly the next N matching requests

Examples: ``streams:500=0.3,athlete/activities:reset=0.1``; ``streams:slow=0.5@3`` (half the stream
requests take 3 s); ``streams:500=#3`` (the next three stream requests fail, then all succeed).

Rules are tried in the order given; the first that fires decides. Probabilities come from a
`random.Random(seed)` owned by the injector, so a single-threaded run is reproducible.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass

ENDPOINTS = ("athlete", "athlete/zones", "athlete/activities", "activities", "streams", "laps", "gear",
             "stats", "token", "*")
KINDS = ("slow", "reset", "truncate", "malformed", "noheaders", "expired", "inactive")
_RULE = re.compile(r"^(?P<ep>[\w/*]+):(?P<kind>\w+)=(?P<amount>#\d+|[\d.]+)(?:@(?P<secs>[\d.]+))?$")


class FaultSpecError(ValueError):
    """The SPEC string does not follow the grammar."""


@dataclass
class FaultRule:
    endpoint: str
    kind: str  # "slow", "reset", ... or a status code as a string ("500")
    rate: float | None  # probability, or None when `remaining` counts down
    remaining: int | None
    seconds: float | None

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None


@dataclass(frozen=True)
class Fault:
    """A fault that fired for one request."""

    kind: str
    seconds: float = 0.0

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None


def parse(spec: str) -> list[FaultRule]:
    rules = []
    for item in re.split(r"[,;\s]+", spec.strip()):
        if not item:
            continue
        m = _RULE.match(item)
        if m is None:
            raise FaultSpecError(f"bad fault rule {item!r}: expected ENDPOINT:KIND=RATE|#N[@SECONDS]")
        ep, kind, amount, secs = m["ep"], m["kind"], m["amount"], m["secs"]
        if ep not in ENDPOINTS:
            raise FaultSpecError(f"unknown endpoint {ep!r} in {item!r}; one of {', '.join(ENDPOINTS)}")
        if kind not in KINDS and not (kind.isdigit() and 500 <= int(kind) <= 599):
            raise FaultSpecError(f"unknown fault kind {kind!r} in {item!r}; 5xx or one of {', '.join(KINDS)}")
        if amount.startswith("#"):
            rate, remaining = None, int(amount[1:])
        else:
            rate, remaining = float(amount), None
            if not 0 <= rate <= 1:
                raise FaultSpecError(f"rate {rate} out of [0, 1] in {item!r}")
        rules.append(FaultRule(ep, kind, rate, remaining, float(secs) if secs else None))
    return rules


class FaultInjector:
    """Decides, per request, whether a fault fires."""

    def __init__(self, spec: str, seed: int, slow_default: float = 10.0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"faults:{seed}")
        self.slow_default = slow_default
        self.rules = parse(spec)

    def set(self, spec: str) -> None:
        rules = parse(spec)
        with self._lock:
            self.rules = rules

    def draw(self, endpoint: str) -> Fault | None:
        with self._lock:
            for rule in self.rules:
                if rule.endpoint not in (endpoint, "*"):
                    continue
                if rule.remaining is not None:
                    if rule.remaining <= 0:
                        continue
                    rule.remaining -= 1
                elif self._rng.random() >= (rule.rate or 0.0):
                    continue
                secs = rule.seconds if rule.seconds is not None else self.slow_default
                return Fault(rule.kind, secs if rule.kind == "slow" else 0.0)
        return None
