"""Settings of the alerting service."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from common.settings import BaseProcessSettings, HttpSettings, Section

Role = Literal["viewer", "operator", "supervisor", "admin"]


class ApiUser(Section):
    """An API client: a name for the journal, a bearer token and a role."""

    name: str
    token: SecretStr
    role: Role = "viewer"


class AlertingOptions(Section):
    group_id: str = "chemwatch-alerting"
    users: tuple[ApiUser, ...] = ()


class AlertingSettings(BaseProcessSettings):
    http: HttpSettings = HttpSettings(port=8080)
    alerting: AlertingOptions = AlertingOptions()
