-- Views for the questions people ask most. They read the typed and derived tables, so they are always
-- as fresh as the last materialisation; the pipeline never writes to them. Distances in km, times as
-- PostgreSQL intervals (moving_time) next to plain seconds, pace both as a number and as 'M:SS' text.

-- Runs, newest first: pace in minutes per km, heart rate from the streams (Strava's summary as fallback).
CREATE VIEW strava.runs AS
SELECT
    a.activity_id,
    a.activity_date,
    a.start_date_local,
    a.name,
    a.sport_type,
    round((a.distance_m / 1000.0)::numeric, 2)                               AS distance_km,
    a.moving_time_s,
    make_interval(secs => a.moving_time_s)                                   AS moving_time,
    round((a.moving_time_s / 60.0 / NULLIF(a.distance_m / 1000.0, 0))::numeric, 2)
                                                                             AS pace_min_per_km,
    CASE WHEN a.distance_m > 0 AND a.moving_time_s > 0 THEN
        (round(a.moving_time_s / (a.distance_m / 1000.0))::bigint / 60)::text || ':' ||
        lpad((round(a.moving_time_s / (a.distance_m / 1000.0))::bigint % 60)::text, 2, '0')
    END                                                                      AS pace_per_km,
    round(coalesce(m.avg_heartrate_bpm, a.average_heartrate_bpm)::numeric, 1) AS avg_heartrate_bpm,
    m.max_heartrate_bpm,
    round(coalesce(m.elevation_gain_m, a.total_elevation_gain_m)::numeric, 1) AS elevation_gain_m,
    m.best_1km_s,
    m.best_5km_s,
    m.trimp,
    m.load
FROM strava.activities a
LEFT JOIN strava.activity_metrics m USING (activity_id)
WHERE a.sport_type IN ('Run', 'TrailRun', 'VirtualRun');

-- Rides (every cycling sport type), with power: average, normalized, intensity factor and TSS.
CREATE VIEW strava.rides AS
SELECT
    a.activity_id,
    a.activity_date,
    a.start_date_local,
    a.name,
    a.sport_type,
    round((a.distance_m / 1000.0)::numeric, 2)                               AS distance_km,
    a.moving_time_s,
    make_interval(secs => a.moving_time_s)                                   AS moving_time,
    round((a.distance_m / NULLIF(a.moving_time_s, 0) * 3.6)::numeric, 1)    AS avg_speed_kmh,
    round(coalesce(m.elevation_gain_m, a.total_elevation_gain_m)::numeric, 1) AS elevation_gain_m,
    round(a.average_watts::numeric, 0)                                       AS avg_power_w,
    round(m.normalized_power_w::numeric, 0)                                  AS normalized_power_w,
    round(m.intensity_factor::numeric, 2)                                    AS intensity_factor,
    round(m.tss::numeric, 1)                                                 AS tss,
    round(m.power_20min_w::numeric, 0)                                       AS power_20min_w,
    round(coalesce(m.avg_heartrate_bpm, a.average_heartrate_bpm)::numeric, 1) AS avg_heartrate_bpm,
    a.trainer,
    m.load
FROM strava.activities a
LEFT JOIN strava.activity_metrics m USING (activity_id)
WHERE a.sport_type IN ('Ride', 'MountainBikeRide', 'GravelRide', 'EBikeRide', 'EMountainBikeRide',
                       'VirtualRide', 'Velomobile', 'Handcycle');

-- Fitness (CTL), fatigue (ATL) and form (TSB) per day, with TrainingPeaks' usual reading of form.
CREATE VIEW strava.fitness AS
SELECT
    date,
    round(load::numeric, 1)    AS load,
    round(ctl::numeric, 1)     AS fitness,
    round(atl::numeric, 1)     AS fatigue,
    round(tsb::numeric, 1)     AS form,
    CASE
        WHEN tsb > 25  THEN 'transition'
        WHEN tsb > 5   THEN 'fresh'
        WHEN tsb > -10 THEN 'neutral'
        WHEN tsb > -30 THEN 'optimal training'
        ELSE 'overreaching'
    END                        AS form_zone
FROM strava.daily_training_load;

-- Weekly volume per sport in friendly units.
CREATE VIEW strava.weekly_volume AS
SELECT
    week_start,
    iso_year,
    iso_week,
    sport_type,
    activity_count,
    round((distance_m / 1000.0)::numeric, 1)       AS distance_km,
    round((moving_time_s / 3600.0)::numeric, 2)     AS moving_hours,
    round(elevation_gain_m::numeric, 0)             AS elevation_gain_m,
    round(load::numeric, 0)                         AS load
FROM strava.weekly_summary;
