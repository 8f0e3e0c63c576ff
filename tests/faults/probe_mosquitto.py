"""Experiment, not a test: where does a ``kill -9`` of Mosquitto lose readings?

Builds the fault rig of ``test_faults.py`` (private stack, pipeline, 200 readings/s) and
kills Mosquitto ``KILLS`` times. Around each kill it captures the broker's outgoing TCP
traffic on ``lo`` (tcpdump) and samples the socket queues (``ss``); optionally it stops
the bridge (SIGSTOP) for ``STALL_MS`` right before the kill, as a loaded machine
deschedules it. After the restart it waits until the database stops growing and prints
one JSON line per kill: readings lost, when they were published relative to the kill,
how many of them the broker had already written to a client socket (found in the
capture), and how many reached Kafka. docs/faults.md has the results.

Needs root (tcpdump on lo) and ``apt-get install tcpdump``::

    CHEMWATCH_STACK_HOME=/work/main/.chemwatch \\
        .venv/bin/python -m tests.faults.probe_mosquitto /tmp/probe 6 400
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.faults.harness import (
    Ledger,
    Load,
    Pipeline,
    PrivateStack,
    loaded_pipeline,
    missing_in_kafka,
)
from tests.fixtures.processes import wait_until

RATE = 200.0


def client_streams(path: Path) -> list[bytes]:
    """The TCP payload of each connection in a pcap file, in sequence order."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {0: 4, 1: 14, 113: 16, 276: 20}[linktype]
    segments: dict[tuple[int, int], dict[int, bytes]] = {}
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8 : off + 12])[0]
        ip = data[off + 16 + link_len : off + 16 + incl]
        off += 16 + incl
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        tcp = ip[(ip[0] & 15) * 4 : struct.unpack("!H", ip[2:4])[0]]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if payload:
            segments.setdefault((sport, dport), {})[seq] = payload  # retransmits collapse
    return [b"".join(p for _, p in sorted(s.items())) for s in segments.values()]


class QueueSampler:
    """``ss`` lines of the broker's connections every 50 ms until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = f"( sport = :{self.port} or dport = :{self.port} )"
        while not self._stop.is_set():
            out = subprocess.run(["ss", "-tnH", query], capture_output=True, text=True).stdout
            self.samples.append((time.time(), out.strip().splitlines()))
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def last_before(self, ms: int) -> list[str]:
        """Connections with bytes queued (Recv-Q or Send-Q) in the last sample before ``ms``."""
        before = [lines for t, lines in self.samples if t * 1000 <= ms]
        return [x for x in before[-1] if x.split()[1:3] != ["0", "0"]] if before else []


def kill_once(
    stack: PrivateStack, pipeline: Pipeline, load: Load, ledger: Ledger, out: Path,
    checked: tuple[int, int], stall_ms: int, phase_s: float,
) -> tuple[dict[str, Any], tuple[int, int]]:  # fmt: skip
    """One kill -9 and restart; returns the row and the new ledger cut."""
    first, after = checked
    upto, last_ts = load.mark()
    wait_until(lambda: ledger.count(after, last_ts) >= upto - first, 120, "caught up")
    port = stack.settings.mqtt.port
    pcap = out / f"kill-{int(time.time())}.pcap"
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-s", "0", "-U", "-w", str(pcap), f"tcp src port {port}"],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    sampler = QueueSampler(port)
    time.sleep(phase_s)
    bridge = pipeline["ingest"].pid
    if stall_ms:
        os.kill(bridge, signal.SIGSTOP)
        time.sleep(stall_ms / 1000)
    fault_ms = int(time.time() * 1000)
    stack.kill("mosquitto")
    if stall_ms:
        os.kill(bridge, signal.SIGCONT)
    sampler.stop()
    time.sleep(3)
    stack.up("mosquitto")
    upto, last_ts = load.mark()
    want, last, since = upto - first, -1, time.monotonic()
    deadline = since + 150
    while time.monotonic() < deadline:  # until all stored, or no progress for 10 s
        n = ledger.count(after, last_ts)
        if n >= want:
            break
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > 10:
            break
        time.sleep(0.2)
    time.sleep(1)
    dump.terminate()
    dump.wait()
    missing = sorted(
        load.published(first, upto) - ledger.stored(after, last_ts), key=lambda m: m[1]
    )
    row: dict[str, Any] = {
        "stall_ms": stall_ms,
        "lost": len(missing),
        "queued_at_kill": sampler.last_before(fault_ms),
    }
    if missing:
        rel = [(ts - fault_ms) / 1000 for _, ts in missing]
        row["lost_published_s"] = [round(rel[0], 3), round(rel[-1], 3)]
        streams = client_streams(pcap)
        row["lost_written_to_a_client_socket"] = sum(
            any(f'"ts":{ts},'.encode() in s for s in streams) for _, ts in missing
        )
        row["lost_in_kafka"] = missing_in_kafka(pipeline.settings, set(missing))
    pcap.unlink()
    return row, (upto, last_ts)


def main(out: Path, kills: int, stall_ms: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with loaded_pipeline(out, RATE) as (stack, pipeline, load, ledger):
        checked = (0, 0)
        for k in range(kills):
            phase_s = 2.0 + (k % 4) * 0.25  # vary the phase against the 1 s autosave
            row, checked = kill_once(stack, pipeline, load, ledger, out, checked, stall_ms, phase_s)
            print(json.dumps({"kill": k} | row), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
