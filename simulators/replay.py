"""``chemwatch replay``: stream a CSV dataset into MQTT at a chosen speed.

Columns map onto registry sensors with ``--map 'COLUMN=SENSOR[*SCALE][+OFFSET]'``,
e.g. SKAB's loop pressure onto a pump discharge transmitter::

    chemwatch replay --csv ../shared/datasets/skab/data/other/1.csv --speed 10 \\
        --map 'Pressure=LD301-PT-01*2+10' --map 'Thermocouple=TK101-TT-01'

Row times keep their spacing, rebased so that the replay ends at the wall clock
(accelerated timestamps stay in the past, as ingest requires). With
``--label-column`` the contiguous blocks of rows labelled 1 become hazard events in a
ground-truth file (``--truth``) that ``chemwatch score`` understands.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from common import mqtt as mqtt_clients
from common.cli import add_common_arguments
from common.errors import ConfigError
from common.process import guarded, settings_from_args
from common.registry import Registry, load_registry
from simulators.settings import SimulatorSettings
from simulators.truth import iso, write_truth

_MAP = re.compile(
    r"^(?P<col>[^=]+)=(?P<sensor>[A-Za-z0-9_.-]+)"
    r"(?:\*(?P<scale>-?[\d.]+(?:e-?\d+)?))?(?:(?P<off>[+-][\d.]+(?:e-?\d+)?))?$"
)


def parse_map(text: str, registry: Registry) -> tuple[str, int, float, float]:
    """``COLUMN=SENSOR[*SCALE][+OFFSET]`` -> (column, dense sensor index, scale, offset)."""
    m = _MAP.match(text)
    if not m:
        raise ConfigError("--map", text, "expected COLUMN=SENSOR[*SCALE][+OFFSET]")
    ref = registry.sensor(m["sensor"])
    if ref is None:
        raise ConfigError("--map", text, f"unknown sensor {m['sensor']!r}")
    return m["col"], ref.index, float(m["scale"] or 1), float(m["off"] or 0)


def read_csv(path: Path, time_column: str | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Row times (epoch s, naive times read as UTC) and every numeric column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read CSV: {exc.strerror}") from exc
    delimiter = (
        ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ","
    )
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    header, body = rows[0], [r for r in rows[1:] if r]
    tcol = header.index(time_column) if time_column else 0
    times = []
    for r in body:
        t = datetime.fromisoformat(r[tcol])
        times.append((t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp())
    cols = {}
    for k, name in enumerate(header):
        if k == tcol:
            continue
        try:
            cols[name] = np.array([float(r[k]) for r in body])
        except ValueError:
            continue  # not numeric
    return np.array(times), cols


def label_events(
    times: np.ndarray, labels: np.ndarray, sensors: list[str], t0_ns: int, first: float
) -> list[dict[str, object]]:
    """Contiguous blocks of label 1 as hazard records for the ground truth."""
    on = np.concatenate([[0], (labels > 0.5).astype(int), [0]])
    starts, ends = np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1) - 1
    out: list[dict[str, object]] = []
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        s_ns = t0_ns + round((times[a] - first) * 1e9)
        e_ns = t0_ns + round((times[b] - first) * 1e9)
        out.append({"type": "event", "id": f"label-{k}", "kind": "labelled", "category": "hazard",
                    "unit": None, "start": iso(s_ns), "end": iso(e_ns), "sensors": sensors,
                    "params": {}, "first_knowable": iso(s_ns), "limit_crossings": {},
                    "beyond_limits_until": None})  # fmt: skip
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``replay``."""
    p = sub.add_parser("replay", help="stream a CSV dataset into MQTT", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_common_arguments(p)
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--map", action="append", required=True, metavar="COLUMN=SENSOR[*S][+O]")
    p.add_argument("--time-column", help="timestamp column (default: the first)")
    p.add_argument("--speed", type=float, default=1.0, help="dataset seconds per wall second")
    p.add_argument("--format", choices=["json", "batch"], default="json")
    p.add_argument("--label-column", help="0/1 column whose blocks become ground-truth events")
    p.add_argument("--truth", type=Path, help="write the ground truth here")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    def main() -> int:
        settings = settings_from_args(SimulatorSettings, args)
        registry = load_registry(settings.plant)
        maps = [parse_map(m, registry) for m in args.map]
        times, cols = read_csv(args.csv, args.time_column)
        for col, *_ in maps:
            if col not in cols:
                raise ConfigError("--map", col, f"no numeric column {col!r} in {args.csv}")
        span = float(times[-1] - times[0])
        t0_ns = time.time_ns() - round((span - span / args.speed) * 1e9)
        sent = _stream(settings, registry, maps, times, cols, args.speed, args.format, t0_ns)
        print(f"replayed {len(times)} rows ({span:.0f} s of data), {sent} readings")
        if args.truth:
            sensors = [registry.sensors[i].sensor.id for _c, i, _s, _o in maps]
            events = []
            if args.label_column:
                events = label_events(times, cols[args.label_column], sensors, t0_ns, times[0])
            header = {"plant": str(settings.plant), "scenario": f"replay of {args.csv}",
                      "speed": args.speed, "format": args.format, "start": iso(t0_ns),
                      "end": iso(t0_ns + span * 1e9), "readings": sent}  # fmt: skip
            write_truth(args.truth, header, events)
        return 0

    return guarded(main)


def _stream(
    settings: SimulatorSettings, registry: Registry, maps: list[tuple[str, int, float, float]],
    times: np.ndarray, cols: dict[str, np.ndarray], speed: float, fmt: str, t0_ns: int,
) -> int:  # fmt: skip
    client = mqtt_clients.make_client(settings.mqtt, settings.simulator.client_id, persistent=False)
    mqtt_clients.connect(client, settings.mqtt, persistent=False)
    client.loop_start()
    prefix, qos = settings.mqtt.topic_prefix, settings.mqtt.qos
    refs = [registry.sensors[i] for _c, i, _s, _o in maps]
    values = np.column_stack([cols[c] * s + o for c, _i, s, o in maps]).tolist()
    sent, infos, wall0 = 0, [], time.monotonic()
    try:
        while not client.is_connected():
            time.sleep(0.01)
        for row, t in enumerate(times.tolist()):
            rel = t - times[0]
            time.sleep(max(0.0, wall0 + rel / speed - time.monotonic()))
            ts = iso(t0_ns + rel * 1e9)
            batches: dict[str, list[dict[str, object]]] = {}
            for ref, v in zip(refs, values[row], strict=True):
                if fmt == "batch":
                    reading = {"sensor": ref.sensor.id, "ts": ts, "value": v}
                    batches.setdefault(f"{prefix}/{ref.site.id}/{ref.unit.id}", []).append(reading)
                else:
                    topic = f"{prefix}/{ref.site.id}/{ref.unit.id}/{ref.sensor.id}"
                    infos.append(client.publish(topic, json.dumps({"ts": ts, "value": v}), qos))
                sent += 1
            for topic, readings in batches.items():
                infos.append(client.publish(topic, json.dumps({"readings": readings}), qos))
        for info in infos:
            if qos:
                info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    return sent
