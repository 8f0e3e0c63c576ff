"""Ingest bridge: MQTT sensor readings -> validated columnar batches on Kafka."""
