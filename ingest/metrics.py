"""Prometheus metrics of the ingest bridge."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("chemwatch_ingest_messages_total", "MQTT messages received")
READINGS = Counter("chemwatch_ingest_readings_total", "Readings accepted and produced to Kafka")
REJECTED = Counter(
    "chemwatch_ingest_rejected_total", "Payloads or batch entries rejected", ["reason"]
)
FLUSH_SECONDS = Histogram(
    "chemwatch_ingest_flush_seconds", "Time to produce one flush to Kafka and get acks"
)
QUEUE_DEPTH = Gauge("chemwatch_ingest_queue_depth", "MQTT messages waiting to be processed")
MQTT_CONNECTED = Gauge("chemwatch_ingest_mqtt_connected", "1 while connected to the MQTT broker")
KAFKA_RETRIES = Counter(
    "chemwatch_ingest_kafka_retries_total", "Flushes retried after Kafka errors"
)
