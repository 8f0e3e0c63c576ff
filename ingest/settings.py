"""Settings of the ingest bridge."""

from __future__ import annotations

from pydantic import Field

from common.settings import BaseProcessSettings, HttpSettings, Section


class IngestOptions(Section):
    client_id: str = "chemwatch-ingest-1"
    # Bridges sharing this group split the MQTT traffic ($share/<group>/...).
    share_group: str = "chemwatch-ingest"
    linger_ms: int = Field(default=20, ge=0, le=5000)
    max_batch_readings: int = Field(default=20_000, ge=1)
    max_future_skew_s: float = Field(default=300.0, ge=0)
    max_age_s: float = Field(default=86_400.0, gt=0)
    max_payload_bytes: int = Field(default=1_048_576, ge=64)


class IngestSettings(BaseProcessSettings):
    http: HttpSettings = HttpSettings(port=9101)
    ingest: IngestOptions = IngestOptions()
