"""Notification channels, routes and escalation tiers (alerting.notify in the config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from common.settings import Section

PriorityName = Literal["low", "medium", "high", "critical"]
LevelName = Literal["blue", "yellow", "orange", "red"]


class Channel(Section):
    """Where a notification goes."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["webhook", "smtp", "alertmanager"]
    url: str | None = None  # webhook URL, or Alertmanager base URL
    secret: SecretStr | None = None  # webhook HMAC-SHA256 key
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    mail_from: str = "chemwatch@localhost"
    mail_to: tuple[str, ...] = ()
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_s: float = Field(default=1.0, gt=0)  # first retry delay; doubles, with jitter
    backoff_max_s: float = Field(default=300.0, gt=0)


class Tier(Section):
    """An escalation step: fires ``after_s`` after activation while still unacknowledged."""

    after_s: float = Field(default=0.0, ge=0)
    channels: tuple[str, ...] = Field(min_length=1)


class Route(Section):
    """Which alarms and incidents a chain of tiers covers."""

    sites: tuple[str, ...] = ()  # empty: every site
    min_priority: PriorityName = "high"
    min_level: LevelName = "yellow"
    alarms: bool = True
    incidents: bool = True
    tiers: tuple[Tier, ...] = Field(min_length=1)
    # after the last tier: notify its channels again every repeat_s until acknowledged
    repeat_s: float | None = Field(default=None, gt=0)


class NotifySettings(Section):
    channels: tuple[Channel, ...] = ()
    routes: tuple[Route, ...] = ()
    every_s: float = Field(default=0.5, gt=0)

    @model_validator(mode="after")
    def _known_channels(self) -> NotifySettings:
        names = {c.name for c in self.channels}
        for c in self.channels:
            if c.kind in ("webhook", "alertmanager") and not c.url:
                raise ValueError(f"channel {c.name!r} ({c.kind}) needs a url")
        for r, route in enumerate(self.routes):
            for t, tier in enumerate(route.tiers):
                unknown = set(tier.channels) - names
                if unknown:
                    raise ValueError(
                        f"routes[{r}].tiers[{t}] names unknown channel(s) {sorted(unknown)}"
                    )
        return self
