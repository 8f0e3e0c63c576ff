"""Senders: webhook (HMAC-SHA256 signed JSON), SMTP e-mail, Prometheus Alertmanager.

Each raises on failure (HTTP status not 2xx, connection error, SMTP error); the
delivery loop retries. Every request carries the notification's idempotency key so
a receiver can drop a duplicate sent after a crash between sending and recording.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import httpx

from alerting.notify.settings import Channel

SIGNATURE_HEADER = "X-ChemWatch-Signature"
TIMESTAMP_HEADER = "X-ChemWatch-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """'sha256=<hex>' of HMAC-SHA256 over '<timestamp>.<body>' (replays show a stale time)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _summary(payload: dict[str, Any]) -> str:
    if payload["kind"] == "incident":
        return f"{payload['level'].upper()} incident at {payload['site_id']}: {payload['title']}"
    return (
        f"{payload['priority'].upper()} alarm {payload['alarm_id']} at {payload['site_id']}:"
        f" {payload['explanation']}"
    )


def send_webhook(
    channel: Channel, payload: dict[str, Any], key: str, client: httpx.Client, now: datetime
) -> None:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(now.timestamp()))
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": key,
        TIMESTAMP_HEADER: timestamp,
    }
    if channel.secret is not None:
        headers[SIGNATURE_HEADER] = signature(channel.secret.get_secret_value(), timestamp, body)
    assert channel.url is not None
    client.post(
        channel.url, content=body, headers=headers, timeout=channel.timeout_s
    ).raise_for_status()


def send_alertmanager(
    channel: Channel, payload: dict[str, Any], key: str, client: httpx.Client, now: datetime
) -> None:
    labels = {
        "alertname": "ChemWatchIncident" if payload["kind"] == "incident" else "ChemWatchAlarm",
        "site": payload["site_id"],
        "tier": str(payload["tier"]),
        "idempotency_key": key,
    }
    if payload["kind"] == "incident":
        labels |= {"level": payload["level"], "rule": payload["rule_id"]}
    else:
        labels |= {
            "alarm_id": payload["alarm_id"],
            "unit": payload["unit_id"],
            "priority": payload["priority"],
        }
    alert = {
        "labels": labels,
        "annotations": {"summary": _summary(payload)},
        "startsAt": now.isoformat(),
    }
    assert channel.url is not None
    client.post(
        channel.url.rstrip("/") + "/api/v2/alerts", json=[alert], timeout=channel.timeout_s
    ).raise_for_status()


def send_email(channel: Channel, payload: dict[str, Any], key: str, now: datetime) -> None:
    message = EmailMessage()
    message["Subject"] = "[ChemWatch] " + _summary(payload)
    message["From"] = channel.mail_from
    message["To"] = ", ".join(channel.mail_to)
    message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@chemwatch>"
    message["X-ChemWatch-Idempotency-Key"] = key
    message.set_content(
        _summary(payload)
        + f"\n\nEscalation tier {payload['tier']} at {now.isoformat()}\n\n"
        + json.dumps(payload, indent=2, sort_keys=True)
    )
    with smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=channel.timeout_s) as smtp:
        smtp.send_message(message)
