-- Two facts every stream planner, check and sensor needs from a raw summary, read from the payload once
-- when the raw frame is built instead of parsing the JSON again in three places. Rows landed before this
-- migration get `manual` from their payload here; their fingerprint (a Python digest) is filled in by the
-- next materialisation of their day, and readers compute it from the payload until then.
ALTER TABLE strava.activities_raw
    ADD COLUMN manual boolean,
    ADD COLUMN summary_fingerprint text;

UPDATE strava.activities_raw SET manual = coalesce((payload ->> 'manual')::boolean, false);
