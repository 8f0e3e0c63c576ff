-- Alerting: full ISA-18.2 alarm management, noise handling, incidents, change log.

-- `state` is what the operator sees (an overlay such as SHELVED wins); `base_state`
-- keeps being evaluated underneath (NORMAL / UNACK / ACKED / RTNUN), so that on
-- release an alarm that is still abnormal comes back as UNACK.
ALTER TABLE alarms
    ADD COLUMN IF NOT EXISTS base_state     text        NOT NULL DEFAULT 'NORMAL',
    ADD COLUMN IF NOT EXISTS priority       text        NOT NULL DEFAULT 'low',
    ADD COLUMN IF NOT EXISTS category       text        NOT NULL DEFAULT 'process',
    ADD COLUMN IF NOT EXISTS area           text        NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS shelved_until  timestamptz,
    ADD COLUMN IF NOT EXISTS shelve_reason  text,
    ADD COLUMN IF NOT EXISTS shelved_by     text,
    ADD COLUMN IF NOT EXISTS out_of_service boolean     NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS suppressed     boolean     NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS chattering     boolean     NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS chatter_count  integer     NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS activations    integer     NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS flood_id       bigint,
    ADD COLUMN IF NOT EXISTS acked_at       timestamptz,
    ADD COLUMN IF NOT EXISTS acked_by       text;
UPDATE alarms SET base_state = state WHERE base_state = 'NORMAL' AND state <> 'NORMAL';
CREATE INDEX IF NOT EXISTS alarms_area_idx ON alarms (site_id, area);

ALTER TABLE alarm_journal ADD COLUMN IF NOT EXISTS occurrence_id uuid;
CREATE INDEX IF NOT EXISTS alarm_journal_occurrence_idx ON alarm_journal (occurrence_id);
CREATE INDEX IF NOT EXISTS alarm_journal_time_idx ON alarm_journal (time);

-- The journal is a record: rows are only ever added.
CREATE OR REPLACE FUNCTION alarm_journal_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alarm_journal is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS alarm_journal_no_change ON alarm_journal;
CREATE TRIGGER alarm_journal_no_change BEFORE UPDATE OR DELETE ON alarm_journal
    FOR EACH ROW EXECUTE FUNCTION alarm_journal_append_only();
DROP TRIGGER IF EXISTS alarm_journal_no_truncate ON alarm_journal;
CREATE TRIGGER alarm_journal_no_truncate BEFORE TRUNCATE ON alarm_journal
    FOR EACH STATEMENT EXECUTE FUNCTION alarm_journal_append_only();

-- Units in maintenance mode: their alarms are suppressed by design.
CREATE TABLE IF NOT EXISTS unit_modes (
    unit_id      text PRIMARY KEY,
    maintenance  boolean     NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    set_by       text        NOT NULL,
    set_at       timestamptz NOT NULL DEFAULT now()
);

-- Alarm floods per console (site + area), with the first-out alarm.
CREATE TABLE IF NOT EXISTS floods (
    id              bigserial PRIMARY KEY,
    site_id         text        NOT NULL,
    area            text        NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    first_alarm_id  text        NOT NULL,
    alarm_count     integer     NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS floods_open_idx ON floods (site_id, area) WHERE ended_at IS NULL;

-- Major-risk incidents: correlated conditions with a four-colour level.
CREATE TABLE IF NOT EXISTS incidents (
    id           bigserial PRIMARY KEY,
    rule_id      text        NOT NULL,
    title        text        NOT NULL,
    scope_key    text        NOT NULL,
    site_id      text        NOT NULL,
    unit_id      text,
    area         text        NOT NULL DEFAULT '',
    level        text        NOT NULL CHECK (level IN ('blue', 'yellow', 'orange', 'red')),
    confidence   real        NOT NULL DEFAULT 1.0,
    opened_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    closed_at    timestamptz,
    acked_at     timestamptz,
    acked_by     text,
    alarm_ids    text[]      NOT NULL DEFAULT '{}',
    details      jsonb       NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open_idx ON incidents (rule_id, scope_key)
    WHERE closed_at IS NULL;

-- Ordered log of every alarm / incident / flood change: the SSE stream's source, so
-- a client reconnecting with Last-Event-ID gets everything after that id. Writers
-- take a transaction-level advisory lock before appending, so ids commit in order.
CREATE TABLE IF NOT EXISTS change_log (
    id         bigserial PRIMARY KEY,
    time       timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind       text        NOT NULL,
    entity_id  text        NOT NULL,
    payload    jsonb       NOT NULL
);

-- Sessions of users who logged in with a password (token stored as a SHA-256 hash).
CREATE TABLE IF NOT EXISTS api_sessions (
    token_sha256  text PRIMARY KEY,
    username      text        NOT NULL,
    role          text        NOT NULL,
    expires_at    timestamptz NOT NULL
);
