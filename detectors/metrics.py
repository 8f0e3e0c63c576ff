"""Prometheus metrics of the detector workers."""

from prometheus_client import Counter, Gauge, Histogram

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
BATCH_SECONDS = Histogram(
    "chemwatch_detectors_batch_seconds",
    "Time from a poll's detection to its commit (with any wait for the previous write)",
)
DETECT_SECONDS = Histogram(
    "chemwatch_detectors_detect_seconds",
    "Time to decode and detect one poll (its condition events are sent right after)",
)
POLL_READINGS = Histogram(
    "chemwatch_detectors_poll_readings",
    "Readings per poll",
    buckets=(10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000),
)
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
BACKPRESSURE_SECONDS = Histogram(
    "chemwatch_detectors_backpressure_seconds",
    "Time detection stood still because the database was behind (more than "
    "detectors.max_queued_readings waiting to be written); alarms wait too",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
KAFKA_LAG = Gauge(
    "chemwatch_detectors_kafka_lag",
    "Offsets between the end of an assigned readings partition and the worker's position",
    ["topic", "partition"],
)
