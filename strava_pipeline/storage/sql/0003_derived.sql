-- Derived tables, built from the typed layer only (never an API request). Each is named after the
-- Dagster asset that writes it. activity_metrics is partitioned by activity_date like the activities it
-- summarises; daily_training_load and weekly_summary are rebuilt whole on every materialisation.
-- Durations are fractional seconds (best efforts are interpolated between samples).

CREATE TABLE strava.activity_metrics (
    activity_id         bigint  NOT NULL UNIQUE,
    activity_date       date    NOT NULL,  -- local calendar date: the partition key
    sport_type          text,
    moving_time_s       double precision,
    elevation_gain_m    double precision,  -- from the altitude stream (smoothed, with hysteresis)
    avg_heartrate_bpm   double precision,  -- time-weighted over moving time
    max_heartrate_bpm   double precision,
    hr_zone_1_s         double precision,  -- moving seconds in each of the athlete's HR zones
    hr_zone_2_s         double precision,
    hr_zone_3_s         double precision,
    hr_zone_4_s         double precision,
    hr_zone_5_s         double precision,
    best_400m_s         double precision,  -- fastest elapsed time over the distance within the activity
    best_1km_s          double precision,
    best_1mile_s        double precision,
    best_5km_s          double precision,
    best_10km_s         double precision,
    best_half_marathon_s double precision,
    best_marathon_s     double precision,
    power_5s_w          double precision,  -- best mean power over the duration (power curve)
    power_1min_w        double precision,
    power_5min_w        double precision,
    power_20min_w       double precision,
    power_60min_w       double precision,
    normalized_power_w  double precision,
    intensity_factor    double precision,  -- NP / FTP (NULL without an FTP)
    tss                 double precision,  -- Training Stress Score (NULL without power or FTP)
    trimp               double precision,  -- Banister TRIMP from heart rate
    load                double precision,  -- tss, else trimp: the input of daily_training_load
    load_source         text CHECK (load_source IN ('tss', 'trimp'))
);
CREATE INDEX activity_metrics_activity_date ON strava.activity_metrics (activity_date);

CREATE TABLE strava.daily_training_load (
    date date PRIMARY KEY,              -- every calendar day from the first activity through today
    load double precision NOT NULL,     -- sum of the day's activity loads, 0 on rest days
    ctl  double precision NOT NULL,     -- chronic training load, "fitness" (42-day)
    atl  double precision NOT NULL,     -- acute training load, "fatigue" (7-day)
    tsb  double precision NOT NULL      -- training stress balance, "form": yesterday's ctl - atl
);

CREATE TABLE strava.weekly_summary (
    iso_year         integer NOT NULL,
    iso_week         integer NOT NULL,
    week_start       date    NOT NULL,  -- the Monday of the ISO week (local dates)
    sport_type       text,
    activity_count   bigint  NOT NULL,
    distance_m       double precision NOT NULL,
    moving_time_s    double precision NOT NULL,
    elevation_gain_m double precision NOT NULL,
    load             double precision NOT NULL
);
CREATE INDEX weekly_summary_week_start ON strava.weekly_summary (week_start, sport_type);
