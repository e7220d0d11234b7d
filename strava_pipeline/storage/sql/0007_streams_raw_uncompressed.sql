-- streams_raw payloads are stored uncompressed (STORAGE EXTERNAL: out of line, no pglz).
-- Measured on 100 one-hour responses (14.7 MB): COPY took 0.91 s with PostgreSQL's default pglz
-- compression and 0.28 s without, for 3x the disk (15.4 MB instead of 5.1 MB). Streams are most of the
-- bytes a backfill loads, the compact copy of the raw layer is the zstd Parquet, and this server is not
-- built with lz4. Applies to rows written from now on.
ALTER TABLE strava.streams_raw ALTER COLUMN payload SET STORAGE EXTERNAL;
