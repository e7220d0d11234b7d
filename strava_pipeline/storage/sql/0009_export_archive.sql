-- Strava's bulk export archive as a second source of the same tables.
-- export_activities_raw: one row per activities.csv row (verbatim, every column, unknown ones included)
-- with the original upload it names (path in the archive, SHA-256 of its bytes in the raw blob store,
-- format, size) and how it was read. Text, not jsonb: verbatim means byte for byte (and \u0000 survives).
CREATE TABLE strava.export_activities_raw (
    activity_id     bigint      NOT NULL UNIQUE,
    activity_date   date        NOT NULL,  -- local calendar date: the partition key
    archive_sha256  text        NOT NULL,  -- the archive this row came from
    csv_line        integer,
    "row"           text        NOT NULL,  -- [[header, occurrence, value], ...]
    summary         text,                  -- the activity in SummaryActivity shape (row + file)
    file_path       text,
    file_sha256     text,
    file_format     text,
    file_size       bigint,
    samples         bigint,
    status          text        NOT NULL CHECK (status IN ('ok', 'no_file', 'missing_file', 'failed')),
    error           text,
    local_date_rule text        NOT NULL,
    imported_at     timestamptz NOT NULL
);
CREATE INDEX export_activities_raw_activity_date ON strava.export_activities_raw (activity_date);

-- One row per activity whatever its source; what only the archive knows, in typed columns.
ALTER TABLE strava.activities
    ADD COLUMN source                    text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'export')),
    ADD COLUMN relative_effort           double precision,
    ADD COLUMN perceived_exertion        double precision,
    ADD COLUMN private_note              text,
    ADD COLUMN gear_name                 text,
    ADD COLUMN weather_condition         text,
    ADD COLUMN weather_temperature_c     double precision,
    ADD COLUMN total_steps               bigint,
    ADD COLUMN grade_adjusted_distance_m double precision;

ALTER TABLE strava.activity_streams
    ADD COLUMN source text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'export'));
