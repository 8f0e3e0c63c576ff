-- How long data is kept and how far ahead partitions are made: one row, changed by
-- `chemwatch db retention` and applied by storage_maintain() (0005).
CREATE TABLE IF NOT EXISTS storage_policy (
    id           boolean     PRIMARY KEY DEFAULT true CHECK (id),  -- at most one row
    raw_keep     interval    NOT NULL DEFAULT interval '90 days',
    rollup_keep  interval    NOT NULL DEFAULT interval '730 days',
    ahead        interval    NOT NULL DEFAULT interval '3 days',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (raw_keep > interval '0' AND rollup_keep >= raw_keep AND ahead >= interval '0')
);
INSERT INTO storage_policy DEFAULT VALUES ON CONFLICT DO NOTHING;
