-- Core tables of the pipeline. Every statement is idempotent.

-- readings and their rollups: 0004 (TimescaleDB or partitioned PostgreSQL).

-- Condition transitions found by the detectors; also the outbox for the
-- `conditions` topic (published = false until Kafka has acknowledged it).
CREATE TABLE IF NOT EXISTS anomalies (
    event_id       uuid PRIMARY KEY,
    occurrence_id  uuid             NOT NULL,
    time           timestamptz      NOT NULL,
    activated_at   timestamptz      NOT NULL,
    state          text             NOT NULL CHECK (state IN ('active', 'cleared')),
    site_id        text             NOT NULL,
    unit_id        text             NOT NULL,
    sensor_id      text             NOT NULL,
    condition      text             NOT NULL,
    severity       text             NOT NULL,
    value          double precision NOT NULL,
    threshold      double precision NOT NULL,
    detector       text             NOT NULL,
    explanation    text             NOT NULL,
    payload        jsonb            NOT NULL,
    published      boolean          NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS anomalies_time_idx ON anomalies (time DESC);
CREATE INDEX IF NOT EXISTS anomalies_unpublished_idx ON anomalies (time) WHERE NOT published;

-- Kafka positions of the detector workers, written in the same transaction as the
-- data they produced: the database, not Kafka, is the truth about what is done.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id     text    NOT NULL,
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint  NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

CREATE TABLE IF NOT EXISTS detector_state (
    unit_id     text        NOT NULL,
    detector    text        NOT NULL,
    state       jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, detector)
);

-- One alarm per (source, condition): its current state.
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id        text PRIMARY KEY,        -- '{sensor}:{condition}'
    site_id         text        NOT NULL,
    unit_id         text        NOT NULL,
    sensor_id       text        NOT NULL,
    condition       text        NOT NULL,
    state           text        NOT NULL,    -- ISA-18.2 state name (UNACK, ACKED, RTNUN, NORMAL)
    active          boolean     NOT NULL,
    severity        text        NOT NULL,
    value           double precision NOT NULL,
    threshold       double precision NOT NULL,
    explanation     text        NOT NULL,
    occurrence_id   uuid        NOT NULL,
    activated_at    timestamptz NOT NULL,
    cleared_at      timestamptz,
    updated_at      timestamptz NOT NULL
);

-- Every condition event applied and every operator action; never updated or deleted.
CREATE TABLE IF NOT EXISTS alarm_journal (
    id          bigserial PRIMARY KEY,
    time        timestamptz NOT NULL DEFAULT now(),
    alarm_id    text        NOT NULL,
    event_id    uuid        UNIQUE,          -- condition event applied (NULL for operator actions)
    action      text        NOT NULL,
    from_state  text,
    to_state    text        NOT NULL,
    username    text        NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS alarm_journal_alarm_idx ON alarm_journal (alarm_id, time);
