"""Prometheus metrics of the ingest bridge (names are listed in docs/ingest.md)."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "chemwatch_ingest_messages_total",
    "MQTT messages received, by site (from the topic; 'unknown' for anything else)",
    ["site"],
)
READINGS = Counter(
    "chemwatch_ingest_readings_total", "Readings accepted and produced to Kafka, by site", ["site"]
)
REJECTED = Counter(
    "chemwatch_ingest_rejected_total", "Payloads or batch entries rejected", ["reason"]
)
PRODUCE_SECONDS = Histogram(
    "chemwatch_ingest_produce_seconds",
    "Time from handing a flush to the Kafka producer until every record is acknowledged",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
)
INFLIGHT = Gauge(
    "chemwatch_ingest_inflight_messages", "MQTT messages received but not yet acknowledged"
)
INFLIGHT_BUDGET = Gauge(
    "chemwatch_ingest_inflight_budget", "Most unacknowledged MQTT messages allowed (Receive Max)"
)
MQTT_CONNECTED = Gauge("chemwatch_ingest_mqtt_connected", "1 while connected to the MQTT broker")
KAFKA_CONNECTED = Gauge(
    "chemwatch_ingest_kafka_connected", "1 while the last Kafka produce or metadata check worked"
)
STALE_ACKS = Counter(
    "chemwatch_ingest_stale_acks_skipped_total",
    "MQTT messages forwarded but not acknowledged because they came on an earlier"
    " connection (their packet ids may name other messages now)",
)
KAFKA_RETRIES = Counter(
    "chemwatch_ingest_kafka_retries_total", "Kafka records re-sent after produce errors"
)
AUTO_REGISTERED = Counter(
    "chemwatch_ingest_auto_registered_sensors_total",
    "Unknown sensors accepted because ingest.auto_register is on",
)
SEQUENCE_GAPS = Counter(
    "chemwatch_ingest_sparkplug_seq_gaps_total", "Sparkplug sequence-number gaps seen"
)
REBIRTHS = Counter(
    "chemwatch_ingest_sparkplug_rebirth_requests_total", "NCMD Node Control/Rebirth requests sent"
)
STALE = Counter(
    "chemwatch_ingest_sparkplug_stale_total",
    "Sensors marked stale (quality bad, NaN) because their node or device died",
)
