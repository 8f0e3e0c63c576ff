"""Alerting service: ISA-18.2 alarm lifecycle, journal, HTTP API."""
