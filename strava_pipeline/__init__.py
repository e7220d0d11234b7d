"""strava_pipeline: an ELT pipeline on Dagster mirroring a Strava athlete into Parquet and PostgreSQL.

Layers, each importing only the ones before it: ``strava`` (API client) and ``simulator`` (a Strava of
our own), ``transforms`` (pure functions), ``storage`` (Parquet, PostgreSQL), then the Dagster glue
(``assets``, ``io_managers``, ``resources``, ``checks``, ``schedules``, ``sensors``, ``definitions``)
and the ``cli``.
"""
