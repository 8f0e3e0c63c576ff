-- Alerting: how far the change log has been published to the Kafka `alarms` topic
-- (transactional outbox: every alarm change, whoever made it, reaches Kafka).
CREATE TABLE IF NOT EXISTS change_relay (
    name     text PRIMARY KEY,
    last_id  bigint NOT NULL DEFAULT 0
);
