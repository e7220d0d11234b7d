"""Parquet and PostgreSQL writers, schema migrations, the embedded PostgreSQL server (knows nothing of Strava)."""
