-- The UI's "Row count" of a table is the sum of its partitions' row_count here, kept in the same
-- transaction as the rows: counting the table instead scanned all of it once per materialisation, which
-- grows with the square of a backfill's length. Partitions written before 0012 have no row here, so record
-- them, with no switch id: their Parquet files carry none either, which is what the stores_agree check
-- compares (NULL = no switch recorded, as before).
ALTER TABLE strava.partition_versions ALTER COLUMN switch_id DROP NOT NULL;

INSERT INTO strava.partition_versions (table_name, partition_key, switch_id, row_count)
SELECT 'strava.athlete_raw', '', NULL, count(*) FROM strava.athlete_raw HAVING count(*) > 0
UNION ALL SELECT 'strava.athlete', '', NULL, count(*) FROM strava.athlete HAVING count(*) > 0
UNION ALL SELECT 'strava.gear', '', NULL, count(*) FROM strava.gear HAVING count(*) > 0
UNION ALL SELECT 'strava.daily_training_load', '', NULL, count(*) FROM strava.daily_training_load HAVING count(*) > 0
UNION ALL SELECT 'strava.weekly_summary', '', NULL, count(*) FROM strava.weekly_summary HAVING count(*) > 0
UNION ALL SELECT 'strava.activities_raw', activity_date::text, NULL, count(*) FROM strava.activities_raw GROUP BY 2
UNION ALL SELECT 'strava.activities', activity_date::text, NULL, count(*) FROM strava.activities GROUP BY 2
UNION ALL SELECT 'strava.streams_raw', activity_date::text, NULL, count(*) FROM strava.streams_raw GROUP BY 2
UNION ALL SELECT 'strava.activity_streams', activity_date::text, NULL, count(*) FROM strava.activity_streams GROUP BY 2
UNION ALL SELECT 'strava.activity_metrics', activity_date::text, NULL, count(*) FROM strava.activity_metrics GROUP BY 2
UNION ALL SELECT 'strava.export_activities_raw', activity_date::text, NULL, count(*)
          FROM strava.export_activities_raw GROUP BY 2
ON CONFLICT (table_name, partition_key) DO NOTHING;

COMMENT ON COLUMN "strava"."partition_versions"."switch_id" IS 'Id of the write that last replaced the partition; its Parquet file carries the same id (none for a partition written before this table existed).';
