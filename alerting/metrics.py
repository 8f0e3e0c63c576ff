"""Prometheus metrics of the alerting service."""

from prometheus_client import Counter, Gauge

EVENTS = Counter("chemwatch_alerting_events_total", "Condition events consumed", ["result"])
CHANGES = Counter("chemwatch_alerting_alarm_changes_total", "Alarm state changes", ["to_state"])
ANNUNCIATED = Gauge("chemwatch_alerting_annunciated_alarms", "Alarms not in NORMAL state")
API_REQUESTS = Counter("chemwatch_alerting_api_requests_total", "API requests", ["route", "status"])
NOTIFICATIONS = Counter(
    "chemwatch_alerting_notification_attempts_total",
    "Notification delivery attempts",
    ["channel", "result"],  # sent | retry | dead
)
SSE_CLIENTS = Gauge("chemwatch_alerting_sse_clients", "Open live-stream (SSE) connections")
SSE_DROPPED = Counter(
    "chemwatch_alerting_sse_dropped_total",
    "Live-stream clients dropped for falling sse_queue_size changes behind (they resume by id)",
)
KAFKA_LAG = Gauge(
    "chemwatch_alerting_kafka_lag",
    "Offsets between the end of an assigned conditions partition and the consumer's position",
    ["topic", "partition"],
)
RELAY_READS = Counter(
    "chemwatch_alerting_relay_reads_total", "Reads of the change log by the Kafka relay"
)
