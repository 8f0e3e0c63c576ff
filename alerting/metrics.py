"""Prometheus metrics of the alerting service."""

from typing import Any

from prometheus_client import Counter, Gauge

from common import kafka as kafka_clients

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
KAFKA_LAG = Gauge(
    "chemwatch_alerting_kafka_lag",
    "Offsets between the end of an assigned conditions partition and the consumer's position",
    ["topic", "partition"],
)


async def record_lag(consumer: Any) -> None:
    """Set KAFKA_LAG from the consumer after a poll (partitions no longer assigned vanish)."""
    lag = await kafka_clients.consumer_lag(consumer)
    KAFKA_LAG.clear()
    for (topic, partition), offsets in lag.items():
        KAFKA_LAG.labels(topic, str(partition)).set(offsets)
