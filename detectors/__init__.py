"""Detector workers: vectorised anomaly detection over columnar batches of readings."""
