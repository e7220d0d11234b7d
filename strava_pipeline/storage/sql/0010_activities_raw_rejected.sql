-- A summary PostgreSQL's jsonb refuses (NaN or Infinity, which Python's json reads; a \u0000 escape; a lone
-- surrogate) used to fail the write of its whole batch. It now lands rejected, by the rule streams bodies
-- follow (transforms.streams.jsonb_unstorable_reason): `rejected` says why, `payload_text` keeps the summary
-- verbatim as text (text stores all of it) and `payload` holds only {"id": <id>}, so `payload` stays
-- NOT NULL jsonb for every reader. Both columns are null for every summary stored as jsonb.
ALTER TABLE strava.activities_raw
    ADD COLUMN rejected text,
    ADD COLUMN payload_text text,
    ADD CONSTRAINT activities_raw_rejected_kept CHECK ((rejected IS NULL) = (payload_text IS NULL));
