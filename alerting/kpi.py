"""Alarm-system KPIs (docs/domain.md 1.7) and the regulator's per-site indicators (4).

All figures are computed from the journal over a window ending at ``now``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alerting.plant import PlantView

STALE_AFTER = timedelta(hours=24)


def _rows(
    conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def alarm_kpis(conn: psycopg.Connection[Any], now: datetime, window_h: float) -> dict[str, Any]:
    """Rates per console, time in flood, bad actors, standing/stale, priority split."""
    start = now - timedelta(hours=window_h)
    window_s = window_h * 3600
    consoles = _rows(
        conn,
        "SELECT a.site_id, a.area, count(*) AS alarms, count(*) / %s::float AS per_hour"
        " FROM alarm_journal j JOIN alarms a USING (alarm_id) WHERE j.action = 'active'"
        " AND j.time > %s AND j.time <= %s GROUP BY 1, 2 ORDER BY 4 DESC",
        (window_h, start, now),
    )
    floods = _rows(
        conn,
        "SELECT site_id, area, count(*) AS floods, sum(extract(epoch FROM"
        " least(coalesce(ended_at, %s), %s) - greatest(started_at, %s))) AS seconds"
        " FROM floods WHERE started_at <= %s AND coalesce(ended_at, %s) > %s GROUP BY 1, 2",
        (now, now, start, now, now, start),
    )
    flood_pct = {
        (f["site_id"], f["area"]): (f["floods"], 100.0 * float(f["seconds"]) / window_s)
        for f in floods
    }
    for c in consoles:
        c["floods"], c["time_in_flood_pct"] = flood_pct.get((c["site_id"], c["area"]), (0, 0.0))
    total = sum(c["alarms"] for c in consoles)
    bad_actors = _rows(
        conn,
        "SELECT j.alarm_id, count(*) AS activations, bool_or(a.chattering) AS chattering,"
        " max(a.chatter_count) AS chatter_episodes FROM alarm_journal j"
        " JOIN alarms a USING (alarm_id) WHERE j.action = 'active' AND j.time > %s"
        " AND j.time <= %s GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
        (start, now),
    )
    for b in bad_actors:
        b["share_pct"] = 100.0 * b["activations"] / total if total else 0.0
    split = _rows(
        conn,
        "SELECT a.priority, count(*) AS alarms FROM alarm_journal j JOIN alarms a"
        " USING (alarm_id) WHERE j.action = 'active' AND j.time > %s AND j.time <= %s"
        " GROUP BY 1",
        (start, now),
    )
    standing = _rows(
        conn,
        "SELECT count(*) FILTER (WHERE active) AS standing,"
        " count(*) FILTER (WHERE active AND activated_at < %s) AS stale FROM alarms",
        (now - STALE_AFTER,),
    )[0]
    return {
        "window_h": window_h,
        "total_alarms": total,
        "consoles": consoles,
        "time_in_flood_pct": 100.0
        * sum(float(f["seconds"]) for f in floods)
        / (window_s * max(len(consoles), 1)),
        "bad_actors": bad_actors,
        "top10_share_pct": sum(b["share_pct"] for b in bad_actors),
        "priority_distribution_pct": {p["priority"]: 100.0 * p["alarms"] / total for p in split}
        if total
        else {},
        "standing": standing["standing"],
        "stale": standing["stale"],
    }


def site_indicators(
    conn: psycopg.Connection[Any],
    plant: PlantView,
    now: datetime,
    window_h: float,
    ack_target_s: float,
) -> list[dict[str, Any]]:
    """Per site: sensor online rate and alarm handling timeliness.

    A sensor is online when its newest reading is at most max(3 x its reporting
    interval, 60 s) old. Timeliness: share of the window's process alarm occurrences
    acknowledged within ``ack_target_s``, and the median time to acknowledge.
    """
    latest = dict(
        conn.execute(
            "SELECT sensor_id, max(time) FROM readings WHERE time > %s AND time <= %s GROUP BY 1",
            (now - timedelta(hours=1), now),
        ).fetchall()
    )
    acks = _rows(
        conn,
        "SELECT a.site_id, extract(epoch FROM min(k.time) - min(j.time)) AS ack_s"
        " FROM alarm_journal j JOIN alarms a USING (alarm_id)"
        " LEFT JOIN alarm_journal k ON k.occurrence_id = j.occurrence_id"
        " AND k.action = 'acknowledge' WHERE j.action = 'active' AND a.category = 'process'"
        " AND j.time > %s AND j.time <= %s GROUP BY a.site_id, j.occurrence_id",
        (now - timedelta(hours=window_h), now),
    )
    out = []
    for site in sorted(plant.site_names):
        sensors = [s for s, info in plant.sensors.items() if info.site == site]
        online = sum(
            1
            for s in sensors
            if s in latest
            and (now - latest[s]).total_seconds() <= max(3 * plant.sensors[s].interval_s, 60.0)
        )
        times = sorted(
            float(a["ack_s"]) for a in acks if a["site_id"] == site and a["ack_s"] is not None
        )
        count = sum(1 for a in acks if a["site_id"] == site)
        out.append(
            {
                "site_id": site,
                "sensors": len(sensors),
                "sensors_online": online,
                "online_rate_pct": 100.0 * online / len(sensors) if sensors else 0.0,
                "alarms": count,
                "acknowledged": len(times),
                "acked_within_target_pct": 100.0 * sum(t <= ack_target_s for t in times) / count
                if count
                else None,
                "median_ack_s": times[len(times) // 2] if times else None,
            }
        )
    return out
