-- Retention on plain PostgreSQL: drop whole partitions past storage_policy's windows,
-- trim the default partitions, and create partitions `ahead`. Run by every migrate
-- (service start) and by `chemwatch db maintain` (schedule it daily).
-- Returns one line per action.
CREATE OR REPLACE FUNCTION storage_maintain() RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
    pol storage_policy;
    part record;
    keep interval;
    n bigint;
BEGIN
    SELECT * INTO pol FROM storage_policy;
    FOR part IN
        SELECT c.relname, p.relname AS parent,
               CASE WHEN c.relname ~ '_p\d{8}$'
                    THEN (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp
                    ELSE (to_date(right(c.relname, 6), 'YYYYMM')::timestamp + interval '1 month')
               END AT TIME ZONE 'UTC' AS upper_bound
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent
         WHERE i.inhparent IN (to_regclass('readings'), to_regclass('readings_1m'),
                               to_regclass('readings_1h'))
           AND c.relname ~ '_p(\d{6}|\d{8})$'
         ORDER BY 1
    LOOP
        keep := CASE WHEN part.parent = 'readings' THEN pol.raw_keep ELSE pol.rollup_keep END;
        IF part.upper_bound <= now() - keep THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            RETURN NEXT 'dropped ' || part.relname;
        END IF;
    END LOOP;
    DELETE FROM readings_default WHERE time < now() - pol.raw_keep;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN RETURN NEXT format('deleted %s rows from readings_default', n); END IF;
    DELETE FROM readings_1m_default WHERE bucket < now() - pol.rollup_keep;
    DELETE FROM readings_1h_default WHERE bucket < now() - pol.rollup_keep;
    n := ensure_time_partitions(now() - interval '1 day', now() + pol.ahead);
    IF n > 0 THEN RETURN NEXT format('created %s partitions', n); END IF;
END
$fn$;
