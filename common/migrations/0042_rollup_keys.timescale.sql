-- Rollup tables keyed by the integer sensor key: plain PostgreSQL only (see the .postgres
-- variant). On TimescaleDB readings_1m / readings_1h are continuous aggregates over
-- readings_raw joined with sensor_keys (0040), already grouped by the integer key and
-- written by TimescaleDB, not by the writer (rollups_by_writer() is false), and
-- rollup_pending stays empty. Nothing to change: this version is recorded so that both
-- flavours have the same migration numbers.
SELECT 1;
