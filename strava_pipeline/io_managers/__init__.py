"""Dagster IO managers: how asset outputs are written to (and read back from) PostgreSQL and Parquet."""
