-- Alerting: wake the readers of the change log (live stream, Kafka relay) when changes
-- commit, instead of leaving them to find out on their next poll (alerting/listen.py).
-- One notification per statement; PostgreSQL delivers it at commit and folds identical
-- ones of a transaction into one. The payload is the schema, so deployments sharing a
-- database (and the tests' private schemas) wake only their own readers.
CREATE OR REPLACE FUNCTION change_log_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chemwatch_change_log', TG_TABLE_SCHEMA);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS change_log_notify ON change_log;
CREATE TRIGGER change_log_notify AFTER INSERT ON change_log
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_notify();
