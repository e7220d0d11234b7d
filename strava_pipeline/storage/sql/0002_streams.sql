-- Per-activity streams: the raw responses (one row per non-manual activity, a 404 recorded as
-- status 'not_found' so it is never requested again) and the typed samples (one row per sample).

CREATE TABLE strava.streams_raw (
    activity_id         bigint      NOT NULL UNIQUE,
    activity_date       date        NOT NULL,
    summary_fingerprint text        NOT NULL,  -- summary fields the recording depends on, hashed
    status              text        NOT NULL CHECK (status IN ('ok', 'not_found')),
    fetched_at          timestamptz NOT NULL,
    payload             jsonb                  -- verbatim body; NULL when Strava answered 404
);
CREATE INDEX streams_raw_activity_date ON strava.streams_raw (activity_date);

CREATE TABLE strava.activity_streams (
    activity_id   bigint   NOT NULL,
    activity_date date     NOT NULL,
    sample_index  integer  NOT NULL,
    time_s        integer,
    lat           double precision,
    lng           double precision,
    altitude_m    double precision,
    distance_m    double precision,
    velocity_mps  double precision,
    heartrate_bpm smallint,
    cadence_rpm   double precision,
    watts         smallint,
    temp_c        smallint,
    moving        boolean,
    grade_pct     double precision,
    PRIMARY KEY (activity_id, sample_index)
);
CREATE INDEX activity_streams_activity_date ON strava.activity_streams (activity_date);
