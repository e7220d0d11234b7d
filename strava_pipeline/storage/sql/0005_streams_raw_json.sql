-- streams_raw keeps Strava's streams response as `json`, not `jsonb`.
-- Measured: loading 141 one-hour responses (21 MB) took 4.9 s as jsonb and 1.5 s as json, because jsonb
-- parses every number of every sample into its binary form on the way in. `json` also keeps the body
-- byte for byte as Strava sent it, which is what a raw layer promises; queries cast with `payload::jsonb`.
ALTER TABLE strava.streams_raw ALTER COLUMN payload TYPE json USING payload::json;
