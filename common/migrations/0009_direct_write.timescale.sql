-- The direct write path (common/store.write_readings, since 0009); see the .postgres
-- variant. Here the continuous aggregates maintain readings_1m / readings_1h, so the
-- writer sends no rollups and fold_staged_rollups() is never called (kept a no-op so
-- that both flavours have the same functions).
CREATE OR REPLACE FUNCTION rollups_by_writer() RETURNS boolean
LANGUAGE sql IMMUTABLE AS 'SELECT false';

CREATE OR REPLACE FUNCTION fold_staged_rollups() RETURNS void
LANGUAGE sql AS 'SELECT';

CREATE OR REPLACE FUNCTION stored_rollup_buckets(
    ids text[], lo_m timestamptz, hi_m timestamptz, lo_h timestamptz, hi_h timestamptz
) RETURNS TABLE (hourly boolean, codes integer[], buckets bigint[])
LANGUAGE sql STABLE AS 'SELECT NULL::boolean, NULL::integer[], NULL::bigint[] WHERE false';
