"""Pure functions from raw Strava payloads to typed Polars frames and training metrics (no I/O)."""
