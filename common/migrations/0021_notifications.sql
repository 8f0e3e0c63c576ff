-- Alerting notifications: one row per (occurrence, tier, channel), the idempotency key.
-- A row is created once when its escalation tier falls due, then delivered with retries;
-- after max_attempts it is dead-lettered (status 'dead') for an operator to look at.
CREATE TABLE IF NOT EXISTS notifications (
    idempotency_key  text PRIMARY KEY,          -- '{subject}:{tier}:{channel}'
    subject          text        NOT NULL,      -- 'alarm:{occurrence}' or 'incident:{id}:{level}'
    tier             integer     NOT NULL,
    channel          text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    last_error       text,
    payload          jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_due_idx ON notifications (next_attempt_at)
    WHERE status = 'pending';
