"""The benchmark's outputs: a JSON summary, a Markdown report and PNG plots."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

GOALS = {
    "batch_readings_per_s": 100_000,
    "single_msgs_per_s": 15_000,
    "half_rate_alarm_p99_ms": 250,
}


def machine() -> dict[str, Any]:
    """What the figures were measured on, with the load at the time (others' work too)."""
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(summary: dict[str, Any], out: Path) -> Path:
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=1, default=str))
    return path


def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float | int):
        return f"{v:,.{digits}f}"
    return str(v)


def _lat(step: dict[str, Any], where: str) -> str:
    p = step["latency_ms"][where]
    return f"{_fmt(p['p50'])} / {_fmt(p['p95'])} / {_fmt(p['p99'])}"


def _cpu(step: dict[str, Any]) -> str:
    usage = step["usage"]
    names = [n for n in usage if n.split("-")[0] in ("ingest", "detectors", "alerting")]
    names += [n for n in ("loadgen", "mosquitto", "kafka", "postgres") if n in usage]
    return ", ".join(f"{n} {usage[n]['cpu_cores']:.2f}" for n in names)


def _rss(step: dict[str, Any]) -> str:
    usage = step["usage"]
    names = [n for n in usage if n.split("-")[0] in ("ingest", "detectors", "alerting")]
    return ", ".join(f"{n} {usage[n]['peak_rss_mb']:.0f}" for n in names)


def _ledger(s: dict[str, Any]) -> str:
    """Ledger check of a step: on time, late (a backlog that drained), or a loss."""
    if s["drain_s"] is not None:
        return "yes" if s["sensors_lost"] == 0 else f"NO: {s['sensors_lost']} sensors differ"
    late = f"{s['missing_at_grace']:,} not yet stored at the end of the grace"
    if s["sensors_lost"] is None:
        return f"{late}; still not all stored after a longer drain"
    if s["sensors_lost"] == 0:
        return f"{late}; all stored later, no loss"
    return f"{late}; NO: {s['sensors_lost']} sensors differ after draining"


def _steps_table(steps: list[dict[str, Any]], unit: str) -> list[str]:
    lines = [
        f"| kind | requested ({unit}) | published/s | MQTT msgs | end-to-end readings/s "
        "| stored = ledger | drain s | kept up | publish->DB p50/p95/p99 ms "
        "| ->condition ms | ->alarm (SSE) ms |",
        "|---|---:|---:|---:|---:|---|---:|---|---|---|---|",
    ]
    for s in steps:
        ledger_ok = _ledger(s)
        lines.append(
            f"| {s['kind']} | {_fmt(s['requested_rate'])} | {_fmt(s['publish_rate'])} "
            f"| {_fmt(s['mqtt_messages'])} | {_fmt(s['e2e_readings_per_s'])} | {ledger_ok} "
            f"| {_fmt(s['drain_s'], 2)} | {'yes' if s['kept_up'] else 'no: ' + s['verdict']} "
            f"| {_lat(s, 'db')} | {_lat(s, 'condition')} | {_lat(s, 'alarm')} |"
        )
    return lines


def _usage_table(steps: list[dict[str, Any]]) -> list[str]:
    lines = ["| kind | requested | CPU (cores = CPU s / wall s) | peak RSS (MB) |",
             "|---|---:|---|---|"]  # fmt: skip
    for s in steps:
        lines.append(f"| {s['kind']} | {_fmt(s['requested_rate'])} | {_cpu(s)} | {_rss(s)} |")
    return lines


def _stages_table(steps: list[dict[str, Any]]) -> list[str]:
    """Where the time of a probe activation goes, stage by stage (p50 / p99 ms)."""
    measured = [s for s in steps if any(v["n"] for v in s.get("stages_ms", {}).values())]
    if not measured:
        return []
    names = list(measured[0]["stages_ms"])
    lines = [
        "## Where the time goes (probe activations, stage by stage)",
        "",
        "Time between consecutive stages of the alarm path, p50 / p99 ms, over the "
        "activations seen at every stage (n). Stamps: bridge ingest time (stored with the "
        "reading), Kafka record timestamps (when the bridge / the detector worker handed "
        "the record to its producer), commit timestamps of the reading row and of the "
        'alarm\'s change-log row, receipt in the bench process. The two "beside" lines '
        "are not on the alarm path (the worker sends a poll's condition events before it "
        "writes the poll) and not part of the sum.",
        "",
        "| stage | "
        + " | ".join(f"{s['kind']} {_fmt(s['requested_rate'])}" for s in measured)
        + " |",
        "|---|" + "---:|" * len(measured),
    ]
    for name in names:
        cells = []
        for s in measured:
            p = s["stages_ms"][name]
            cells.append(f"{_fmt(p['p50'])} / {_fmt(p['p99'])} (n={p['n']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _yes(ok: bool) -> str:
    return "met" if ok else "NOT met"


def steps_of(st: dict[str, Any]) -> list[dict[str, Any]]:
    """The stepped part's steps, the half-rate step last."""
    return st["steps"] + ([st["half_rate_step"]] if st["half_rate_step"] else [])


def _goals(summary: dict[str, Any]) -> list[str]:
    o, st = summary["options"], summary["stepped"]
    best = st["sustained_readings_per_s"]
    if o["mode"] == "batch":
        goal = GOALS["batch_readings_per_s"]
        lines = [f"- >= {goal:,} readings/s with gateway batches: {_yes(best >= goal)}"]
    else:
        goal = GOALS["single_msgs_per_s"]
        lines = [f"- >= {goal:,} MQTT msgs/s QoS 1 single readings: {_yes(best >= goal)}"]
    half = st["half_rate_step"]
    if half:
        p99 = half["latency_ms"]["alarm"]["p99"]
        ok = p99 is not None and p99 <= GOALS["half_rate_alarm_p99_ms"]
        lines.append(
            f"- p99 publish -> alarm on the stream <= 250 ms at half rate "
            f"({_fmt(half['requested_rate'])}): p99 {_fmt(p99)} ms, {_yes(ok)}"
        )
    elif not o.get("half_rate", True):
        lines.append("- p99 at half rate: not measured (--no-half-rate)")
    else:
        lines.append("- p99 at half rate: no step kept up, so there is no half rate")
    checked = [s for s in steps_of(st) if s["sensors_lost"] is not None]
    lost = sum(s["sensors_lost"] for s in checked)
    lines.append(
        f"- no loss (ledger = database, {len(checked)} of {len(steps_of(st))} steps checked "
        f"to the end): {_yes(lost == 0)}"
    )
    return lines


def _cost_table(summary: dict[str, Any], unit: str) -> list[str]:
    st = summary["stepped"]
    base = st["half_rate_step"] or st["steps"][0]
    worker = base["usage"].get("detectors-0", {}).get("peak_rss_mb")
    first = {"sensors": st["sensors"], "step": base, "state_bytes": st["state_bytes"],
             "worker_peak_rss_mb": worker}  # fmt: skip
    out = [
        "## Cost growth with the number of sensors",
        "",
        f"Same total rate {_fmt(summary['cost_rate'])} {unit}.",
        "",
        "| sensors | e2e readings/s | kept up | worker peak RSS MB | state KiB "
        "| ->DB p99 ms | ->alarm p50 / p99 ms |",
        "|---:|---:|---|---:|---:|---:|---|",
    ]
    for c in [first, *summary["cost_growth"]]:
        s, lat = c["step"], c["step"]["latency_ms"]
        out.append(
            f"| {c['sensors']:,} | {_fmt(s['e2e_readings_per_s'])} "
            f"| {'yes' if s['kept_up'] else 'no'} | {_fmt(c['worker_peak_rss_mb'])} "
            f"| {_fmt(c['state_bytes'] / 1024, 1)} | {_fmt(lat['db']['p99'])} "
            f"| {_fmt(lat['alarm']['p50'])} / {_fmt(lat['alarm']['p99'])} |"
        )
    return [*out, ""]


def _soak(so: dict[str, Any], unit: str) -> list[str]:
    complete = so["step"]["sensors_lost"] == 0
    return [
        "## Soak",
        "",
        f"{so['minutes']:g} min at {_fmt(so['rate'])} {unit}; warm-up {so['warmup_s']:g} s.",
        "",
        f"- RSS within 10 % after warm-up (ChemWatch processes): {_yes(so['rss_flat'])}; "
        f"spread % per process: {so['rss_spread_pct']}",
        f"- lag bounded (source lag <= {so['lag_bound_s']:g} s, not growing): "
        f"{_yes(so['lag_bounded'])} (max {so['lag_max_s']} s)",
        f"- no error lines in service logs: {_yes(so['no_errors'])} ({so['error_lines']})",
        f"- ledger complete: {_yes(complete)}",
        "",
    ]


def _worker_kill(wk: dict[str, Any], unit: str) -> list[str]:
    s = wk["step"]
    probes = s["probes"]
    caught = wk["caught_up_s"]
    return [
        "## Detector worker killed under load",
        "",
        f"One step of {wk['step_seconds']:g} s at "
        f"{_fmt(wk['rate'])} {unit} with {wk['workers']} worker(s): `detectors-0` killed "
        f"(SIGKILL) {wk['killed_after_s']:g} s in, started again {wk['down_s']:g} s later.",
        "",
        "| end-to-end readings/s | stored = ledger (exactly once) | drain s | caught up after "
        "restart | rebalances the other workers went through | alarms seen / probe "
        "activations | ->alarm (SSE) p50/p95/p99 ms |",
        "|---:|---|---:|---|---:|---|---|",
        f"| {_fmt(s['e2e_readings_per_s'])} | {_ledger(s)} | {_fmt(s['drain_s'], 2)} | "
        + (f"{caught:g} s" if caught is not None else "not within the step and its drain")
        + f" | {wk.get('survivor_rebalances', '-')} | {probes['seen_alarm']} / "
        f"{probes['probe_activations']} | {_lat(s, 'alarm')} |",
        "",
        f"Caught up: every worker's source lag back at or below {wk['caught_up_lag_s']:g} s "
        "while the load ran, or else the step's last reading stored. Workers are static "
        "group members (`detectors.group_instance_id`), so a restart within the session "
        "timeout rejoins without a rebalance.",
        "",
        f"Error lines in service logs: {sum(wk['errors'].values())} ({wk['errors']}).",
        "",
    ]  # fmt: skip


METHOD = [
    "## How each figure is measured",
    "",
    "- end-to-end readings/s: readings of the step / (wall time the last one was in the "
    "database - the step's first source timestamp). The database must hold, per sensor, "
    "exactly the generator's count, timestamp sum and value sum (its ledger).",
    "- kept up: ledger reached within max(2 s, 10 % of the step) after the last publish, "
    "and the generator reached >= 95 % of the requested rate.",
    "- latencies: probe sensors cross a limit on a schedule; each reading's timestamp is "
    "its publish time. (a) DB: {db} of the row minus publish time; (b) condition: receipt "
    "of the event by a consumer in the bench process minus publish time; (c) alarm: "
    "receipt of the alarm change on the SSE stream minus publish time. One clock "
    "throughout: the host's wall clock (CLOCK_REALTIME), also PostgreSQL's.",
    "- CPU: user+system seconds of each process over the step / wall seconds (1.0 = one "
    "core). Peak RSS: the largest 1-second sample. mosquitto, kafka and postgres (server "
    "and every backend) include any other work on the shared stack; `loadgen` is the "
    "simulator's load generator.",
    "",
]


def markdown(summary: dict[str, Any], plots: list[Path]) -> str:
    """The report a reader sees first; every figure also sits in summary.json."""
    o, m, st = summary["options"], summary["machine"], summary["stepped"]
    unit = "readings/s" if o["mode"] == "batch" else "MQTT msgs/s"
    how = "gateway batches of up to 100 readings" if o["mode"] == "batch" else "single readings"
    started = datetime.fromtimestamp(summary["started"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    steps = st["steps"] + ([st["half_rate_step"]] if st["half_rate_step"] else [])
    out = [
        "# ChemWatch end-to-end benchmark",
        "",
        f"Run {started} on {m['cpus']} CPUs / {m['memory_gb']} GB; load average at the end "
        f"{m['load_average']}. Load beyond the run's own processes is other work on the "
        "machine: the figures are then contended.",
        "",
        f"Command: `{summary.get('command', '')}`",
        "",
        f"Mode **{o['mode']}** ({how} per MQTT message, QoS 1), {o['bridges']} ingest "
        f"bridge(s), {o['workers']} detector worker(s), {st['sensors']:,} sensors, "
        f"steps of {o['step_seconds']:g} s.",
        "",
        "## Stepped rates",
        "",
        *_steps_table(steps, unit),
        "",
        f"**Sustained end to end: {_fmt(st['sustained_readings_per_s'])} readings/s** "
        f"(best rate observed in any step: {_fmt(st['best_observed_readings_per_s'])}).",
        "",
        "Goals (issue 8):",
        "",
        *_goals(summary),
        "",
        "## CPU and memory per process",
        "",
        *_usage_table(steps),
        "",
        *_stages_table(steps),
        f"Detector state snapshots in the database: {_fmt(st['state_bytes'] / 1024, 1)} KiB; "
        f"error lines in service logs: {sum(st['errors'].values())}.",
        "",
    ]
    if summary.get("cost_growth"):
        out += _cost_table(summary, unit)
    if summary.get("worker_kill"):
        out += _worker_kill(summary["worker_kill"], unit)
    if summary.get("soak"):
        out += _soak(summary["soak"], unit)
    out += [line.replace("{db}", st["steps"][0]["db_latency_method"]) for line in METHOD]
    if plots:
        out += ["## Plots", "", *[f"![{p.stem}]({p.name})" for p in plots], ""]
    return "\n".join(out)


def plots(summary: dict[str, Any], out: Path) -> list[Path]:
    """rate_latency.png, lag.png, (with --kill-worker) worker_kill.png and (with a
    soak) soak_rss.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    st = summary["stepped"]
    steps = sorted(st["steps"] + ([st["half_rate_step"]] if st["half_rate_step"] else []),
                   key=lambda s: s["requested_rate"])  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=False)
    for ax, where, title in zip(axes, ("db", "condition", "alarm"),
                                ("publish -> row in DB", "publish -> condition event",
                                 "publish -> alarm on SSE"), strict=True):  # fmt: skip
        x = [s["requested_rate"] for s in steps]
        for q, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^:")):
            ax.plot(x, [s["latency_ms"][where][q] or float("nan") for s in steps], style, label=q)
        ax.set(title=title, xlabel="offered rate (" + summary["options"]["mode"] + ")",
               ylabel="latency (ms)", yscale="log")  # fmt: skip
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    made.append(out / "rate_latency.png")
    fig.savefig(made[-1], dpi=100)
    plt.close(fig)

    lag = st["lag"]
    if lag:
        t0 = lag[0]["t"]
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
        t = [p["t"] - t0 for p in lag]
        a1.plot(t, [p["lag_records"] for p in lag], label="detectors: Kafka lag (records)")
        a1.plot(t, [p["alerting_lag"] for p in lag], label="alerting: Kafka lag (records)")
        a1.set(ylabel="records")
        a1.legend()
        a2.plot(t, [p["lag_s"] for p in lag], color="tab:red")
        a2.set(ylabel="detectors source lag (s)", xlabel="seconds since the services started")
        for s in steps:
            for a in (a1, a2):
                a.axvspan(s["t0"] - t0, s["t_end"] - t0, alpha=0.08, color="grey")
        fig.suptitle("Consumer lag over time (shaded: steps)")
        fig.tight_layout()
        made.append(out / "lag.png")
        fig.savefig(made[-1], dpi=100)
        plt.close(fig)

    wk = summary.get("worker_kill")
    if wk and wk["lag"]:
        made.append(_worker_kill_plot(plt, wk, out / "worker_kill.png"))

    soak = summary.get("soak")
    if soak and soak["rss_mb"]:
        series = soak["rss_mb"]
        t0 = series[0]["t"]
        fig, ax = plt.subplots(figsize=(10, 4))
        names = [k for k in series[-1] if k != "t" and k.split("-")[0] in
                 ("ingest", "detectors", "alerting")]  # fmt: skip
        for name in names:
            ax.plot([p["t"] - t0 for p in series], [p.get(name) for p in series], label=name)
        ax.set(xlabel="seconds", ylabel="RSS (MB)", title="Soak: RSS per process")
        ax.legend()
        fig.tight_layout()
        made.append(out / "soak_rss.png")
        fig.savefig(made[-1], dpi=100)
        plt.close(fig)
    return made


def _worker_kill_plot(plt: Any, wk: dict[str, Any], path: Path) -> Path:
    """Source lag and Kafka lag around the kill, with the kill and the restart marked."""
    step, lag = wk["step"], wk["lag"]
    t0 = step["t0"]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    t = [p["t"] - t0 for p in lag]
    # unknown while a worker is down or has not written since it started (it reads 0)
    known = [p["lag_s"] if p.get("workers_up") == wk["workers"] and p["lag_s"] > 0
             else float("nan") for p in lag]  # fmt: skip
    a1.plot(t, known, ".-", color="tab:red", label="max source lag (gaps: unknown)")
    a1.axhline(wk["caught_up_lag_s"], color="grey", ls=":", label="caught up below")
    a1.set(ylabel="detectors source lag (s)")
    a2.plot(t, [p["lag_records"] for p in lag], label="detectors: Kafka lag (records)")
    a2.set(xlabel="seconds since the step began", ylabel="records")
    up = a2.twinx()
    up.plot(t, [p.get("workers_up", 0) for p in lag], drawstyle="steps-post",
            color="tab:orange", label="workers answering /metrics")  # fmt: skip
    up.set(ylabel="workers up", ylim=(-0.1, wk["workers"] + 0.5))
    up.legend(loc="upper left", fontsize="small")
    if wk["caught_up_s"] is not None:
        a1.axvspan(wk["restarted_at"] - t0, wk["restarted_at"] - t0 + wk["caught_up_s"],
                   color="tab:green", alpha=0.1, label="restart -> caught up")  # fmt: skip
    for a in (a1, a2):
        a.axvline(wk["killed_at"] - t0, color="black", label="SIGKILL")
        a.axvline(wk["restarted_at"] - t0, color="tab:green", ls="--", label="restart")
        a.axvspan(0, step["t_end"] - t0, alpha=0.08, color="grey")
        a.legend(loc="upper right", fontsize="small")
    fig.suptitle(f"Detector worker killed at {_fmt(wk['rate'])}/s (shaded: the step)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_all(summary: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write summary.json, the plots and report.md into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary["machine"] = machine()
    made = plots(summary, out)
    report = out / "report.md"
    report.write_text(markdown(summary, made))
    return {"json": write_json(summary, out), "report": report,
            **{p.stem: p for p in made}}  # fmt: skip
