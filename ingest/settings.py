"""Settings of the ingest bridge."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.settings import BaseProcessSettings, HttpSettings, Section


class IngestOptions(Section):
    client_id: str = "chemwatch-ingest-1"
    # Bridges sharing this group split the MQTT traffic ($share/<group>/...).
    share_group: str = "chemwatch-ingest"
    linger_ms: int = Field(default=20, ge=0, le=5000)
    # MQTT messages per flush at most.
    max_batch_messages: int = Field(default=5_000, ge=1)
    max_future_skew_s: float = Field(default=300.0, ge=0)
    max_age_s: float = Field(default=86_400.0, gt=0)
    max_payload_bytes: int = Field(default=1_048_576, ge=64)
    # Accept readings of sensors the registry does not know (flagged uncertain, counted,
    # logged). Off by default: an unknown sensor is usually a typo or a rogue publisher.
    auto_register: bool = False
    # MQTT messages handed to the bridge but not yet acknowledged (MQTT 5 Receive
    # Maximum): the broker stops sending at this many, so memory stays bounded when
    # Kafka is slow or down (at most inflight_budget x max_payload_bytes of payload).
    inflight_budget: int = Field(default=2000, ge=1, le=65535)
    # Kafka flushes that may await their acks at once (acked to MQTT in order).
    max_pending_flushes: int = Field(default=4, ge=1, le=64)
    # Readings per Kafka record at most: with 64-character sensor ids a record stays
    # well below Kafka's 1 MB default request size.
    max_record_readings: int = Field(default=5_000, ge=1)
    # Consume Sparkplug B for the groups the registry maps (one bridge only: see docs).
    sparkplug: bool = False
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    kafka_linger_ms: int = Field(default=5, ge=0, le=1000)


class IngestSettings(BaseProcessSettings):
    http: HttpSettings = HttpSettings(port=9101)
    ingest: IngestOptions = IngestOptions()
