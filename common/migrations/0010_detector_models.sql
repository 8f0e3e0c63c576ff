-- Trained detector models (e.g. PCA T2/Q per unit), versioned: a retrain adds a row, the
-- workers use the newest version of each (unit, kind).
CREATE TABLE IF NOT EXISTS detector_models (
    unit_id      text        NOT NULL,
    kind         text        NOT NULL,
    version      integer     NOT NULL,
    trained_at   timestamptz NOT NULL DEFAULT now(),
    train_from   timestamptz NOT NULL,
    train_to     timestamptz NOT NULL,
    n_rows       integer     NOT NULL,
    model        jsonb       NOT NULL,
    PRIMARY KEY (unit_id, kind, version)
);
