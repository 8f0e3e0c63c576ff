"""``chemwatch demo``: a simulated plant through the whole pipeline, alarms on screen.

Brings the local stack up, starts ingest, a detector worker, alerting and the
simulator (with scripted limit breaches) as separate processes, and prints every alarm
state change the alerting API reports until stopped (Ctrl-C) or ``--duration`` ends.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from alerting.api.auth import hash_password
from common.registry import Registry, load_registry

API = "http://127.0.0.1:8080"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``demo``."""
    p = sub.add_parser("demo", help="run a simulated plant end to end", description=__doc__)
    p.add_argument("--plant", type=Path, default=Path("examples/plant.yaml"))
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--speed", type=float, default=1.0, help="simulator speed-up")
    p.add_argument("--home", type=Path, default=Path(".chemwatch"), help="stack directory")
    p.set_defaults(func=run)


def demo_breaches(registry: Registry) -> list[str]:
    """A pressure excursion above HH, then a gas leak to the second level, then recovery."""
    out = []
    pressure = next(
        (r for r in registry if r.sensor.kind == "pressure" and r.sensor.limits.hh), None
    )
    gas = next((r for r in registry if r.sensor.kind == "gas" and r.sensor.limits.hh), None)
    if pressure:
        hh, hi = pressure.sensor.limits.hh, pressure.sensor.range[1]
        out.append(f"{pressure.sensor.id}={min(hh * 1.05, hi):.3g}@10+25")  # type: ignore[operator]
    if gas:
        hh, hi = gas.sensor.limits.hh, gas.sensor.range[1]
        out.append(f"{gas.sensor.id}={min(hh * 1.2, hi):.3g}@20+20")  # type: ignore[operator]
    return out


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns when stopped."""
    registry = load_registry(args.plant)
    python = sys.executable
    subprocess.run([python, "-m", "chemwatch", "stack", "up", "--home", str(args.home)], check=True)
    logs = args.home / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    token_file = args.home / "demo-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    env = os.environ | {
        "CHEMWATCH_PLANT": str(args.plant),
        "CHEMWATCH_ALERTING__USERS": json.dumps(
            # the console logs in with a password: the demo's is its token
            [
                {
                    "name": "demo",
                    "token": token,
                    "role": "operator",
                    "password_hash": hash_password(token),
                }
            ]
        ),
    }
    subprocess.run([python, "-m", "chemwatch", "db", "migrate"], check=True, env=env)
    breach_flags = [f for b in demo_breaches(registry) for f in ("--breach", b)]
    commands = {
        "alerting": ["alerting"],
        "detect": ["detect"],
        "ingest": ["ingest"],
        "simulate": ["simulate", "--speed", str(args.speed), *breach_flags],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, cmd in commands.items():
            log = (logs / f"{name}.log").open("ab")
            procs[name] = subprocess.Popen(
                [python, "-m", "chemwatch", *cmd], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        _intro(logs, token_file, breach_flags)
        _watch(token, procs, args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("demo stopped (the stack keeps running: `chemwatch stack down` stops it)")
    return 0


def _intro(logs: Path, token_file: Path, breaches: list[str]) -> None:
    print(
        f"""
ChemWatch demo running. Process logs: {logs}/*.log
  alarms API : curl -H "Authorization: Bearer $(cat {token_file})" {API}/alarms
  console    : {API}/console/  (user "demo", password: the token in {token_file})
  metrics    : {API}/metrics (alerting), :9101 ingest, :9102 detectors, :9103 simulator
  scripted   : {" ".join(b for b in breaches if b != "--breach")}
Waiting for alarms (Ctrl-C to stop) ...
""",
        flush=True,
    )


def _watch(token: str, procs: dict[str, subprocess.Popen[bytes]], duration: float | None) -> None:
    seen: dict[str, str] = {}
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=API, headers=headers, timeout=5) as client:
        while duration is None or time.monotonic() - started < duration:
            for name, proc in procs.items():
                if proc.poll() is not None and name != "simulate":
                    raise SystemExit(f"{name} exited with {proc.returncode}; see its log")
            _print_changes(client, seen, time.monotonic() - started)
            time.sleep(1)


def _print_changes(client: httpx.Client, seen: dict[str, str], elapsed: float) -> None:
    try:
        response = client.get("/alarms", params={"all": "true"})
        alarms: list[dict[str, Any]] = response.json() if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return  # alerting still starting
    first_look = not seen
    for a in alarms:
        if seen.get(a["alarm_id"]) != a["state"]:
            seen[a["alarm_id"]] = a["state"]
            if first_look and a["state"] == "NORMAL":
                continue  # history of an earlier run, nothing to see
            print(
                f"[{elapsed:5.0f}s] {a['state']:<6} {a['severity']:<8} {a['unit_id']:<12} "
                f"{a['explanation']}",
                flush=True,
            )
