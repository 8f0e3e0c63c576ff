"""Escalation and notifications: webhook (HMAC-signed), SMTP e-mail, Alertmanager."""
