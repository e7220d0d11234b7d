-- Which version of each partition both stores hold. A re-materialisation writes its Parquet files under
-- staged names, then commits its PostgreSQL rows together with one row per partition here, then renames the
-- staged files into place. The commit is the point of no return: a run killed after it is finished by the
-- next one (its switch id is here), a run killed before it is rolled back (its switch id is not). The
-- Parquet file of a partition carries the same switch id in its footer, which is what the blocking
-- stores_agree check compares, with the row counts of both stores.
CREATE TABLE strava.partition_versions (
    table_name    text        NOT NULL,
    partition_key text        NOT NULL,  -- YYYY-MM-DD, or '' for an unpartitioned table
    switch_id     text        NOT NULL,
    row_count     bigint      NOT NULL,
    committed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, partition_key)
);
