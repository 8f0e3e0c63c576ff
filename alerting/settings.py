"""Settings of the alerting service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from alerting.notify.settings import NotifySettings
from common.settings import BaseProcessSettings, HttpSettings, Section

Role = Literal["viewer", "operator", "supervisor", "admin"]


class ApiUser(Section):
    """An API client: a name for the journal, a role, and a bearer token and/or a password.

    ``password_hash`` is an argon2 hash (``chemwatch alerting hash-password``); the
    plain password is never stored.
    """

    name: str
    token: SecretStr | None = None
    password_hash: SecretStr | None = None
    role: Role = "viewer"


class AlertingOptions(Section):
    group_id: str = "chemwatch-alerting"
    # How long Kafka may hold the condition consumer's fetch while it has no new data.
    # The client keeps one fetch in flight per broker and leaves out partitions whose
    # records it still buffers, so an event arriving on such a partition (every probe of
    # one unit shares one) waits for the fetch in flight: with Kafka's default of 500 ms
    # that was most of the alerting stage's p99 (~600 ms at 40k readings/s). Idle, the
    # consumer then fetches 20 times a second.
    fetch_max_wait_ms: int = Field(default=50, ge=0, le=10_000)
    users: tuple[ApiUser, ...] = ()
    rules: Path | None = Path("examples/rules.yaml")
    session_ttl_s: float = Field(default=12 * 3600, gt=0)
    tick_s: float = Field(default=1.0, gt=0)  # shelving expiry, flood end, incident close
    chatter_activations: int = Field(default=3, ge=2)
    chatter_window_s: float = Field(default=60, gt=0)
    chatter_shelve_s: float = Field(default=600, gt=0)
    flood_start: int = Field(default=10, ge=1)
    flood_end: int = Field(default=5, ge=1)
    flood_window_s: float = Field(default=600, gt=0)
    incident_quiet_s: float = Field(default=300, ge=0)
    default_shelve_s: float = Field(default=3600, gt=0)
    max_shelve_s: float = Field(default=8 * 3600, gt=0)
    notify: NotifySettings = NotifySettings()
    # Changes a live-stream (SSE) client may have waiting; a client that falls this far
    # behind (it stopped reading) is dropped, so it holds neither memory nor the others
    # up, and resumes by Last-Event-ID when it reconnects.
    sse_queue_size: int = Field(default=10_000, ge=1)
    # Largest request body the API accepts (413 above it); actions carry a short comment.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)


class AlertingSettings(BaseProcessSettings):
    http: HttpSettings = HttpSettings(port=8080)
    alerting: AlertingOptions = AlertingOptions()
