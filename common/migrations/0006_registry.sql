-- The plant registry (examples/plant.yaml) mirrored for SQL and Grafana, upserted by
-- `chemwatch registry sync`. Nothing is deleted: what left the YAML becomes inactive,
-- so history (readings, alarms) keeps its names.
CREATE TABLE IF NOT EXISTS sites (
    site_id         text PRIMARY KEY,
    name            text        NOT NULL,
    enterprise      text        NOT NULL,
    region          text        NOT NULL,
    people_exposed  integer     NOT NULL DEFAULT 0,
    active          boolean     NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS units (
    unit_id                   text PRIMARY KEY,
    site_id                   text        NOT NULL REFERENCES sites,
    name                      text        NOT NULL,
    kind                      text        NOT NULL,
    area                      text        NOT NULL DEFAULT '',  -- console / operator area
    inventories               jsonb       NOT NULL DEFAULT '[]',
    relief_set_pressure_barg  double precision,
    active                    boolean     NOT NULL DEFAULT true,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS units_site_idx ON units (site_id);

CREATE TABLE IF NOT EXISTS sensors (
    sensor_id    text PRIMARY KEY,
    unit_id      text        NOT NULL REFERENCES units,
    site_id      text        NOT NULL REFERENCES sites,
    kind         text        NOT NULL,
    substance    text,
    eng_unit     text        NOT NULL,
    range_low    double precision NOT NULL,
    range_high   double precision NOT NULL,
    limit_ll     double precision,
    limit_l      double precision,
    limit_h      double precision,
    limit_hh     double precision,
    deadband     double precision NOT NULL DEFAULT 0,
    interval_s   double precision NOT NULL,
    description  text        NOT NULL DEFAULT '',
    active       boolean     NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sensors_unit_idx ON sensors (unit_id);
