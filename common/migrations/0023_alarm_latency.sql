-- Alerting: what applying one condition event looks up, indexed, so that its cost does
-- not grow with the journal. The chatter check counts one alarm's activations in a
-- short window; with only the time index it read every alarm's journal rows of that
-- window.
CREATE INDEX IF NOT EXISTS alarm_journal_activations_idx
    ON alarm_journal (alarm_id, time) WHERE action = 'active';
