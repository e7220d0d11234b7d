-- Raw and typed tables of the first vertical slice: athlete profile, gear, activity summaries.
-- Every table is named after the Dagster asset that writes it; the asset's partition column
-- (activity_date, the activity's local calendar date) is indexed because every write replaces
-- whole partitions. Unique activity ids make a duplicate impossible rather than merely unlikely.

CREATE SCHEMA IF NOT EXISTS strava;

CREATE TABLE strava.athlete_raw (
    resource     text        NOT NULL,   -- 'athlete', 'zones' or 'gear'
    resource_id  text        NOT NULL,
    fetched_at   timestamptz NOT NULL,
    payload      jsonb       NOT NULL,   -- verbatim response body
    UNIQUE (resource, resource_id)
);

CREATE TABLE strava.athlete (
    athlete_id             bigint PRIMARY KEY,
    username               text,
    firstname              text,
    lastname               text,
    city                   text,
    state                  text,
    country                text,
    sex                    text,
    premium                boolean,
    summit                 boolean,
    created_at             timestamptz,
    updated_at             timestamptz,
    weight_kg              double precision,
    ftp_w                  bigint,
    measurement_preference text,
    hr_zone_1_min_bpm      bigint,
    hr_zone_2_min_bpm      bigint,
    hr_zone_3_min_bpm      bigint,
    hr_zone_4_min_bpm      bigint,
    hr_zone_5_min_bpm      bigint,
    hr_zones_custom        boolean,
    fetched_at             timestamptz NOT NULL
);

CREATE TABLE strava.gear (
    gear_id     text PRIMARY KEY,
    name        text,
    nickname    text,
    brand_name  text,
    model_name  text,
    description text,
    "primary"   boolean,
    retired     boolean,
    distance_m  double precision,
    frame_type  bigint,
    gear_type   text NOT NULL,           -- 'bike' or 'shoes'
    fetched_at  timestamptz NOT NULL
);

CREATE TABLE strava.activities_raw (
    activity_id   bigint      NOT NULL UNIQUE,
    activity_date date        NOT NULL,  -- local calendar date: the partition key
    fetched_at    timestamptz NOT NULL,
    payload       jsonb       NOT NULL   -- one SummaryActivity exactly as listed by Strava
);
CREATE INDEX activities_raw_activity_date ON strava.activities_raw (activity_date);

CREATE TABLE strava.activities (
    activity_id            bigint    NOT NULL UNIQUE,
    activity_date          date      NOT NULL,
    athlete_id             bigint,
    name                   text,
    sport_type             text,
    type                   text,
    workout_type           bigint,
    start_date             timestamptz NOT NULL,
    start_date_local       timestamp   NOT NULL,
    timezone               text,
    utc_offset_s           bigint,
    distance_m             double precision,
    moving_time_s          bigint,
    elapsed_time_s         bigint,
    total_elevation_gain_m double precision,
    elev_high_m            double precision,
    elev_low_m             double precision,
    average_speed_mps      double precision,
    max_speed_mps          double precision,
    has_heartrate          boolean,
    average_heartrate_bpm  double precision,
    max_heartrate_bpm      double precision,
    average_cadence_rpm    double precision,
    average_watts          double precision,
    weighted_average_watts double precision,
    max_watts              double precision,
    kilojoules_kj          double precision,
    device_watts           boolean,
    average_temp_c         double precision,
    suffer_score           double precision,
    calories_kcal          double precision,
    start_lat              double precision,
    start_lng              double precision,
    end_lat                double precision,
    end_lng                double precision,
    summary_polyline       text,
    trainer                boolean,
    commute                boolean,
    manual                 boolean,
    private                boolean,
    visibility             text,
    flagged                boolean,
    gear_id                text,
    device_name            text,
    upload_id              bigint,
    external_id            text,
    achievement_count      bigint,
    kudos_count            bigint,
    comment_count          bigint,
    athlete_count          bigint,
    photo_count            bigint,
    pr_count               bigint,
    fetched_at             timestamptz NOT NULL
);
CREATE INDEX activities_activity_date ON strava.activities (activity_date);
