"""Load mode: holds its rate, and its ledger proves nothing was lost downstream."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from common.settings import BaseProcessSettings
from simulators.load import run_load, synthetic_plant, verify
from tests.fixtures.processes import ServiceFactory, wait_until
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration


@pytest.mark.solo  # a rate test: alone on the CPU
def test_holds_20000_readings_per_second_for_30_s(
    stack: BaseProcessSettings, isolation: Isolation
) -> None:
    # JSON singles at QoS 0 to a private topic prefix nobody subscribes to: this
    # measures the generator, not the pipeline behind it.
    mqtt = stack.mqtt.model_copy(update={"topic_prefix": f"{isolation.mqtt_prefix}/load"})
    result = run_load(mqtt, sensors=10_000, rate=20_000, processes=2, duration_s=30, qos=0)
    assert result["sent"] == 600_000
    assert abs(result["deviation_pct"]) <= 5, result
    assert len(result["ledger"]) == 10_000
    assert sum(c[0] for c in result["ledger"].values()) == 600_000


def test_ledger_matches_the_readings_table(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    db: psycopg.Connection,
    tmp_path: Path,
) -> None:
    plant = tmp_path / "load-plant.yaml"
    plant.write_text(yaml.safe_dump(synthetic_plant(200, 1000)))
    env = {"CHEMWATCH_PLANT": str(plant)}
    service_factory("detectors", env=env)
    ingest = service_factory("ingest", env=env)
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
    mqtt = stack.mqtt.model_copy(update={"topic_prefix": isolation.mqtt_prefix})
    result = run_load(mqtt, sensors=200, rate=1000, processes=2, duration_s=5, batch=20, qos=1,
                      client_id=f"{isolation.tag}-load")  # fmt: skip
    assert result["sent"] == 5000

    def downstream() -> list[tuple[str, int, int, int]]:
        return db.execute(
            "SELECT sensor_id, count(*), sum((extract(epoch FROM time) * 1000)::bigint),"
            " sum(round(value * 100)::bigint) FROM readings GROUP BY sensor_id"
        ).fetchall()

    wait_until(lambda: sum(r[1] for r in downstream()) >= 5000, 60, "5000 readings stored")
    assert verify(result["ledger"], downstream()) == []
    # and the check does catch a lost reading
    # (readings is a view since migration 0040; the rows are in readings_raw)
    db.execute("DELETE FROM readings_raw r USING (SELECT x.sensor_key, x.time FROM readings_raw x"
               " JOIN sensor_keys k USING (sensor_key) WHERE k.sensor_id = 'LOAD-000007' LIMIT 1) d"
               " WHERE r.sensor_key = d.sensor_key AND r.time = d.time")  # fmt: skip
    assert verify(result["ledger"], downstream()) == ["LOAD-000007"]
