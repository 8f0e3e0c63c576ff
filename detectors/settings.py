"""Settings of the detector workers."""

from __future__ import annotations

from pydantic import Field

from common.settings import BaseProcessSettings, HttpSettings, Section


class DetectorOptions(Section):
    group_id: str = "chemwatch-detectors"
    # Static group membership (Kafka KIP-345): a worker restarted under the same id within
    # the session timeout gets its partitions back at once instead of waiting out the
    # dead member's session and a rebalance of the whole group (docs/scale-out.md). It
    # must be unique per worker and stable across its restarts (e.g. a StatefulSet pod
    # name). Unset: dynamic membership. A static member that stops does not leave the
    # group, so its partitions move to others only after the session timeout.
    group_instance_id: str | None = Field(default=None, min_length=1, max_length=249)
    max_records: int = Field(default=500, ge=1)  # Kafka records (batches) per poll
    poll_timeout_ms: int = Field(default=200, ge=1)
    # Readings detected (and their condition events sent) but not yet written; beyond
    # this the worker waits until the write in flight commits before it polls again
    # (chemwatch_detectors_backpressure_seconds). 200,000 cost
    # throughput at 80k readings/s (66.7-68.3k end to end against 72.5-74.5k before the
    # queue, 29 Nov 21:30); 40,000 gave 71.9-75.2k: a backlog waits better in Kafka.
    max_queued_readings: int = Field(default=40_000, ge=1)
    # A write waits up to this long after its first poll's detection for more polls to
    # write with it, unless ``write_batch_readings`` are queued already. Alarms do not
    # wait for writes; this only delays when readings become visible in the database.
    write_linger_ms: int = Field(default=100, ge=0, le=5_000)
    write_batch_readings: int = Field(default=20_000, ge=1)
    # Detector state and the resume offsets are checkpointed together every this many
    # seconds (and on partition revoke and shutdown); readings and conditions are written
    # with every poll, and a restart replays from the checkpoint (idempotent writes,
    # deterministic event ids). 0 = checkpoint with every poll.
    snapshot_interval_s: float = Field(default=5.0, ge=0)
    # How often the clock is consulted for stale sensors (no reading for k x interval).
    tick_interval_s: float = Field(default=1.0, gt=0)
    # Plain PostgreSQL: the batch transaction only appends its rollup aggregates (a COPY
    # into rollup_pending); they are folded into readings_1m/1h once per tick, so the
    # upserts are off the batches' path (migration 0041). False folds them inside each
    # batch transaction, as before.
    defer_rollups: bool = True
    # Test hook for the crash-safety tests: exit hard (as kill -9 would) right before
    # the database commit of the N-th batch. 0 = never.
    fault_exit_before_commit: int = Field(default=0, ge=0)


class DetectorSettings(BaseProcessSettings):
    http: HttpSettings = HttpSettings(port=9102)
    detectors: DetectorOptions = DetectorOptions()
