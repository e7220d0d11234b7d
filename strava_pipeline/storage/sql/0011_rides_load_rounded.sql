-- strava.rides showed `load` unrounded (e.g. 12.3456); round it to one decimal like every other figure of
-- the view. The column turns from double precision into numeric, which CREATE OR REPLACE VIEW cannot do, so
-- the view is dropped and created again (no view of ours depends on it; a user's dependent view makes this
-- migration fail loudly instead of being dropped silently). Same columns, same order; only `load` changes.
DROP VIEW strava.rides;

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
    round(m.load::numeric, 1)                                                AS load
FROM strava.activities a
LEFT JOIN strava.activity_metrics m USING (activity_id)
WHERE a.sport_type IN ('Ride', 'MountainBikeRide', 'GravelRide', 'EBikeRide', 'EMountainBikeRide',
                       'VirtualRide', 'Velomobile', 'Handcycle');
