"""Prometheus metrics of the detector workers."""

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from common import kafka as kafka_clients

READINGS = Counter("chemwatch_detectors_readings_total", "Readings processed")
STORED = Counter("chemwatch_detectors_readings_stored_total", "Readings newly stored (not replays)")
BAD_RECORDS = Counter(
    "chemwatch_detectors_bad_records_total", "Kafka records that were not batches"
)
UNKNOWN_SENSORS = Counter(
    "chemwatch_detectors_unknown_sensor_readings_total", "Readings of sensors not in the registry"
)
TRANSITIONS = Counter(
    "chemwatch_detectors_transitions_total", "Condition transitions", ["condition", "state"]
)
BATCH_SECONDS = Histogram("chemwatch_detectors_batch_seconds", "Time to process and commit a poll")
LAG_SECONDS = Gauge(
    "chemwatch_detectors_source_lag_seconds",
    "Now minus source time of the newest reading processed",
)
DB_ERRORS = Counter(
    "chemwatch_detectors_db_errors_total", "Database errors recovered from (reconnect + replay)"
)
DB_WRITE_SECONDS = Histogram(
    "chemwatch_detectors_db_write_seconds",
    "Time of one poll's database transaction (readings, rollups, anomalies, offsets, state)",
)
KAFKA_LAG = Gauge(
    "chemwatch_detectors_kafka_lag",
    "Offsets between the end of an assigned readings partition and the worker's position",
    ["topic", "partition"],
)


async def record_lag(consumer: Any) -> None:
    """Set KAFKA_LAG from the consumer after a poll (partitions no longer assigned vanish)."""
    lag = await kafka_clients.consumer_lag(consumer)
    KAFKA_LAG.clear()
    for (topic, partition), offsets in lag.items():
        KAFKA_LAG.labels(topic, str(partition)).set(offsets)
