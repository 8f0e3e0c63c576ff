"""Run a simulation without a broker, as fast as the CPU allows, and plot it.

For engineers checking a plant registry and a scenario before go-live: what each
affected sensor would report, against its alarm limits, with the events shaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import ConfigError
from simulators.plant import Simulation
from simulators.truth import LEVELS


@dataclass(slots=True)
class Recording:
    sensor: np.ndarray
    t_s: np.ndarray  # simulated seconds of the reading's timestamp
    value: np.ndarray
    malformed: np.ndarray


def record(sim: Simulation, duration_s: float) -> Recording:
    """Step the simulation for ``duration_s`` simulated seconds; keep every reading."""
    parts = []
    while sim.t + 1e-9 < duration_s:
        st = sim.step()
        parts.append((st.sensor, (st.ts_ns - sim.start_ns) / 1e9, st.value, st.malformed))
    cols = [np.concatenate([p[k] for p in parts]) if parts else np.array([]) for k in range(4)]
    return Recording(cols[0].astype(np.int64), cols[1], cols[2], cols[3].astype(bool))


def plot(path: Path, sim: Simulation, rec: Recording, max_sensors: int = 8) -> list[str]:
    """PNG of the sensors the scenario's events affected (up to ``max_sensors``)."""
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ConfigError("--plot", str(path), "needs matplotlib") from exc
    registry = sim.registry
    chosen: list[int] = []
    for r in sim.truth.records():
        for sid in r["sensors"]:
            ref = registry.sensor(sid)
            if ref is not None and ref.index not in chosen:
                chosen.append(ref.index)
    chosen = chosen[:max_sensors]
    if not chosen:
        raise ConfigError("--plot", str(path), "no event affected any sensor: nothing to plot")
    fig, axes = plt.subplots(len(chosen), 1, figsize=(10, 2.0 * len(chosen) + 0.6), sharex=True,
                             squeeze=False)  # fmt: skip
    limits = {lv: registry.limit_array(lv.lower()) for lv in LEVELS}
    minutes = rec.t_s / 60
    for ax, i in zip(axes[:, 0], chosen, strict=True):
        ref = registry.sensors[i]
        mine = (rec.sensor == i) & ~rec.malformed
        ax.plot(minutes[mine], rec.value[mine], lw=0.8, color="tab:blue")
        for lv, style in (("H", ":"), ("HH", "--"), ("L", ":"), ("LL", "--")):
            if not np.isnan(limits[lv][i]):
                ax.axhline(limits[lv][i], ls=style, color="tab:red", lw=0.8)
        for e in sim.events:
            if ref.sensor.id in sim.registry.sensor_ids[sim.truth.candidates[e.id]]:
                colour = "tab:orange" if e.category == "hazard" else "tab:grey"
                ax.axvspan(e.start / 60, e.end / 60, color=colour, alpha=0.15)
        ax.set_ylabel(f"{ref.sensor.id}\n{ref.sensor.unit}", fontsize=8)
    axes[-1, 0].set_xlabel("simulated minutes (orange: hazard, grey: fault; red: H/HH, L/LL)")
    fig.suptitle(sim.scenario.name)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [registry.sensors[i].sensor.id for i in chosen]
