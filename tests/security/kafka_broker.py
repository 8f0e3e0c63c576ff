"""A private Kafka with a SASL_SSL listener (SCRAM-SHA-512 over TLS), for the security tests.

Started by the stack manager (`chemwatch stack up --only kafka`) in its own home on free
ports, with a CA and server certificate made for the run by the openssl CLI; the shared
Kafka is never touched. Services reach it only through the SASL_SSL listener.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chemwatch.ports import free_port
from common.settings import KafkaSettings
from tests.ingest.private_kafka import PrivateKafka
from tests.security.broker import make_ca

KAFKA_USER = "cw-service"
# Spaces and quotes on purpose: the password must survive env, settings and SCRAM intact.
KAFKA_PASSWORD = "kfk-pw 'Uq7\" Zr3Lm9Tx"


class SecuredKafka(PrivateKafka):
    """A private broker whose clients connect with SASL_SSL (SCRAM-SHA-512) on ``sasl_port``."""

    def __init__(self, home: Path) -> None:
        super().__init__(home / "home")
        self.ca_file, cert, key = make_ca(home)
        self.sasl_port = free_port()
        doc = yaml.safe_load(self.config.read_text())
        doc["stack"] |= {
            "kafka_sasl_ssl_port": self.sasl_port,
            "kafka_tls_certfile": str(cert),
            "kafka_tls_keyfile": str(key),
            "kafka_scram_users": [{"username": KAFKA_USER, "password": KAFKA_PASSWORD}],
        }
        self.config.write_text(yaml.safe_dump(doc))

    def settings(self, **update: Any) -> KafkaSettings:
        """Client settings for the SASL_SSL listener (override any field)."""
        fields: dict[str, Any] = {
            "bootstrap_servers": f"127.0.0.1:{self.sasl_port}",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": KAFKA_USER,
            "sasl_password": KAFKA_PASSWORD,
            "ssl_cafile": self.ca_file,
            "partitions": 3,
        }
        return KafkaSettings.model_validate(fields | update)

    def env(self, **update: str | None) -> dict[str, str]:
        """CHEMWATCH_KAFKA__* for a service using this broker; a None value leaves a key out."""
        values: dict[str, str | None] = {
            "BOOTSTRAP_SERVERS": f"127.0.0.1:{self.sasl_port}",
            "SECURITY_PROTOCOL": "SASL_SSL",
            "SASL_MECHANISM": "SCRAM-SHA-512",
            "SASL_USERNAME": KAFKA_USER,
            "SASL_PASSWORD": KAFKA_PASSWORD,
            "SSL_CAFILE": str(self.ca_file),
        } | {k.upper(): v for k, v in update.items()}
        return {f"CHEMWATCH_KAFKA__{k}": v for k, v in values.items() if v is not None}

    def log_text(self) -> str:
        """The broker's own log (server log and stdout)."""
        kafka_dir = self.home / "kafka"
        return "".join(p.read_text(errors="replace") for p in sorted(kafka_dir.glob("*.log")))
