"""Detector workers: vectorised anomaly detection over columnar batches of readings."""

from detectors.jit import check_cache

check_cache()  # before any kernel module is imported (see detectors/jit.py)
