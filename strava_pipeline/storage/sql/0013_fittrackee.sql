-- The FitTrackee sink's memory: which workout on which FitTrackee instance holds each Strava activity, and
-- the hash of what was sent, so an unchanged activity is never uploaded twice, an edited one is updated (or
-- replaced when its recording changed) and a deleted one can be deleted there too.
-- workout_id NULL: the old workout was deleted during a replacement and the new upload is still to come.
CREATE TABLE strava.fittrackee_workouts (
    instance_url   text        NOT NULL,  -- FITTRACKEE_URL, normalised (no trailing slash)
    activity_id    bigint      NOT NULL,
    workout_id     text,                  -- FitTrackee's workout id (a short uuid string)
    activity_date  date        NOT NULL,  -- local date of the activity when it was sent
    sport_type     text,                  -- Strava sport_type sent
    sport_label    text        NOT NULL,  -- the FitTrackee sport it went to
    with_file      boolean     NOT NULL,  -- uploaded with its GPX/TCX file (else through /workouts/no_gpx)
    track_hash     text,                  -- hash of the track points of the file uploaded (or refused)
    recording_hash text        NOT NULL,  -- what a PATCH cannot change: the track (or date/distance/duration)
    payload_hash   text        NOT NULL,  -- everything sent: a change means an update
    uploaded_at    timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (instance_url, activity_id)
);
