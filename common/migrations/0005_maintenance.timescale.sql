-- Retention on TimescaleDB: policies (background jobs) that drop whole chunks past
-- storage_policy's windows. Run by every migrate (service start) and by
-- `chemwatch db maintain`; it (re)creates the policies when the windows changed.
-- Returns one line per action.
CREATE OR REPLACE FUNCTION storage_maintain() RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
    pol storage_policy;
    target record;
    current interval;
BEGIN
    SELECT * INTO pol FROM storage_policy;
    FOR target IN
        SELECT * FROM (VALUES ('readings', pol.raw_keep), ('readings_1m', pol.rollup_keep),
                              ('readings_1h', pol.rollup_keep)) AS t(name, keep)
    LOOP
        SELECT (j.config ->> 'drop_after')::interval INTO current
          FROM timescaledb_information.jobs j
         WHERE j.proc_name = 'policy_retention'
           AND j.hypertable_name = CASE WHEN target.name = 'readings' THEN 'readings' ELSE (
                 SELECT materialization_hypertable_name
                   FROM timescaledb_information.continuous_aggregates
                  WHERE view_name = target.name AND view_schema = current_schema())
               END
           AND j.hypertable_schema IN (current_schema(), '_timescaledb_internal');
        IF current IS DISTINCT FROM target.keep THEN
            PERFORM remove_retention_policy(target.name, if_exists => true);
            PERFORM add_retention_policy(target.name, drop_after => target.keep);
            RETURN NEXT format('retention policy on %s: drop after %s', target.name, target.keep);
        END IF;
    END LOOP;
END
$fn$;
