"""The raw response object the client hands to the raw (landing) layer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import simdjson

from .errors import StravaPayloadError

__all__ = ["ApiResponse", "check_json", "decode_json", "redact_url"]

_SECRET_PARAMS = frozenset({"access_token", "refresh_token", "client_secret", "code"})


def redact_url(url: str) -> str:
    """Drop secret query parameters from ``url``.

    We never put tokens in URLs ourselves (Bearer header only), this is defence in depth so that a URL we
    store or log can never carry one, e.g. if a redirect or a future change added it.
    """
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() not in _SECRET_PARAMS]
    if len(kept) == len(pairs):
        return url
    return urlunsplit(parts._replace(query=urlencode(kept, safe=",")))


def check_json(body: bytes, url: str) -> None:
    """Raise :class:`StravaPayloadError` (as :func:`decode_json` would) unless ``body`` is whole JSON.

    The client proves every body whole before it lands but keeps only the bytes, so there is no need to
    build Python objects: simdjson validates a 150 kB stream set about three times faster than orjson
    parses it. A body simdjson refuses (it also refuses numbers beyond 64 bits, which ``json`` accepts)
    goes to :func:`decode_json`, whose verdict and error message are the ones that count.
    Whole is not storable: ``json`` accepts NaN and Infinity, which jsonb refuses; whether a streams body
    may land is ``transforms.streams.unstorable_reason``'s verdict, judged by ingest before landing.
    """
    try:
        simdjson.Parser().parse(body)
        return
    except (ValueError, RuntimeError):  # simdjson's errors; a UnicodeDecodeError is a ValueError
        pass
    decode_json(body, url)


def decode_json(body: bytes, url: str) -> Any:
    """Parse a JSON body, turning any decoding failure into a :class:`StravaPayloadError` naming URL and
    offset.

    orjson parses about three times faster than ``json``; only a body orjson refuses goes to ``json``,
    whose verdict and error positions are the ones we report, so what is accepted and what an error says
    do not depend on the fast path.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise StravaPayloadError(
            f"Strava response from {url} is not valid UTF-8 at byte {exc.start} ({len(body)} bytes received)",
            url=url,
            offset=exc.start,
        ) from None
    except json.JSONDecodeError as exc:
        # exc.pos is a character offset into the decoded text; convert it to a byte offset into the body.
        byte_offset = len(exc.doc[: exc.pos].encode("utf-8")) if isinstance(exc.doc, str) else exc.pos
        raise StravaPayloadError(
            f"Strava response from {url} is not valid JSON: {exc.msg} at byte {byte_offset} "
            f"({len(body)} bytes received; truncated or malformed)",
            url=url,
            offset=byte_offset,
        ) from None


@dataclass(frozen=True)
class ApiResponse:
    """One successful Strava API response, kept verbatim so the raw layer can store exactly what Strava sent.

    ``url`` never contains an access token (we authenticate with a header; see :func:`redact_url`).
    ``headers`` is case-insensitive (a ``requests`` structure); ``dict(resp.headers)`` gives a plain dict.
    """

    url: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    fetched_at: datetime

    def json(self) -> Any:
        """Parse the body; raises :class:`StravaPayloadError` naming the URL and byte offset on bad JSON."""
        return decode_json(self.body, self.url)

    def __repr__(self) -> str:  # the body can be megabytes: keep reprs (and log lines) short
        return (
            f"ApiResponse(url={self.url!r}, status={self.status}, body=<{len(self.body)} bytes>, "
            f"fetched_at={self.fetched_at.isoformat()})"
        )
