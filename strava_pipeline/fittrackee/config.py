"""The sink's settings, from the environment (a ``.env`` file is loaded by ``Settings.from_env`` first).

| Variable | Meaning |
|---|---|
| ``FITTRACKEE_URL`` | The instance, e.g. ``https://fittrackee.example.org``. Unset: the sink is off. |
| ``FITTRACKEE_CLIENT_ID`` | The OAuth2 app created in FitTrackee (Settings > Apps). |
| ``FITTRACKEE_CLIENT_SECRET`` | Its secret (passed to Dagster as an ``EnvVar``, never stored by us). |
| ``FITTRACKEE_DELETE_REMOVED`` | ``true`` (default): an activity gone from the mirror is deleted there too. |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import FitTrackeeConfigError

__all__ = ["FitTrackeeSettings", "normalize_instance_url", "parse_bool"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    """A boolean variable; anything but the usual spellings names the variable."""
    if value is None or not value.strip():
        return default
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FitTrackeeConfigError(f"{name} must be true or false (got {value!r})")


def normalize_instance_url(url: str) -> str:
    """``https://host[/prefix]`` without a trailing slash; a bare path or another scheme names the variable."""
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FitTrackeeConfigError("FITTRACKEE_URL must be the instance's address, like "
                                    f"https://fittrackee.example.org (got {url!r})")
    if parts.query or parts.fragment:
        raise FitTrackeeConfigError("FITTRACKEE_URL must not hold a query or fragment: give the instance's "
                                    "address only")
    return text


@dataclass(frozen=True)
class FitTrackeeSettings:
    """The FitTrackee part of the configuration."""

    url: str | None
    client_id: str | None
    client_secret: str | None
    delete_removed: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FitTrackeeSettings:
        env = os.environ if environ is None else environ
        url = env.get("FITTRACKEE_URL") or None
        return cls(
            url=normalize_instance_url(url) if url else None,
            client_id=(env.get("FITTRACKEE_CLIENT_ID") or "").strip() or None,
            client_secret=env.get("FITTRACKEE_CLIENT_SECRET") or None,
            delete_removed=parse_bool("FITTRACKEE_DELETE_REMOVED", env.get("FITTRACKEE_DELETE_REMOVED"), True),
        )

    def disabled_reason(self) -> str | None:
        """Why the sink is off (the variables to set), or None when it is configured."""
        missing = [name for name, value in (("FITTRACKEE_URL", self.url), ("FITTRACKEE_CLIENT_ID", self.client_id),
                                            ("FITTRACKEE_CLIENT_SECRET", self.client_secret)) if not value]
        if not missing:
            return None
        return (f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: to upload activities to "
                "FitTrackee, create an OAuth2 app in your instance (Settings > Apps) and set FITTRACKEE_URL, "
                "FITTRACKEE_CLIENT_ID and FITTRACKEE_CLIENT_SECRET")
