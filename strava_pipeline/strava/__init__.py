"""Strava API v3 client (no Dagster here): OAuth token store, rate limiter and HTTP client.

Everything other modules need is re-exported here::

    from strava_pipeline.strava import StravaClient, TokenStore, RateLimiter, ApiResponse, ...
"""

from .client import ALL_STREAM_KEYS, DEFAULT_SCOPE, StravaClient
from .errors import (
    StravaAppInactiveError,
    StravaAuthError,
    StravaError,
    StravaHTTPError,
    StravaNotFoundError,
    StravaPayloadError,
    StravaRateLimitError,
    StravaScopeError,
    StravaTransientError,
)
from .rate_limiter import RateLimiter, RateLimitSnapshot, WindowUsage, parse_rate_headers, parse_rate_pair
from .responses import ApiResponse
from .tokens import Tokens, TokenStore

__all__ = [
    "ALL_STREAM_KEYS",
    "DEFAULT_SCOPE",
    "ApiResponse",
    "RateLimitSnapshot",
    "RateLimiter",
    "StravaAppInactiveError",
    "StravaAuthError",
    "StravaClient",
    "StravaError",
    "StravaHTTPError",
    "StravaNotFoundError",
    "StravaPayloadError",
    "StravaRateLimitError",
    "StravaScopeError",
    "StravaTransientError",
    "TokenStore",
    "Tokens",
    "WindowUsage",
    "parse_rate_headers",
    "parse_rate_pair",
]
