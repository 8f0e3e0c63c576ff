"""Static group membership (``detectors.group_instance_id``): a worker killed with
SIGKILL and started again under the same instance id takes back its own partitions, and
the other worker of the group sees no rebalance at all (with dynamic membership it
would lose and regain its partitions twice: when the dead member times out and when
the new one joins)."""

from __future__ import annotations

import asyncio

import pytest

from common import kafka as kafka_clients
from common.settings import BaseProcessSettings
from tests.fixtures.processes import (
    ServiceFactory,
    latest_assignment,
    logged_assignments,
    wait_until,
)
from tests.fixtures.services import Isolation

# Solo: the restarted worker must rejoin within Kafka's session timeout (10 s), which a
# worker starting beside a parallel test run may not.
pytestmark = [pytest.mark.integration, pytest.mark.solo]

PARTITIONS = 3  # the isolation fixture's CHEMWATCH_KAFKA__PARTITIONS


def test_a_restarted_static_worker_takes_its_partitions_back_without_a_rebalance(
    stack: BaseProcessSettings, isolation: Isolation, service_factory: ServiceFactory
) -> None:
    kafka = stack.kafka.model_copy(update={"partitions": PARTITIONS})
    asyncio.run(kafka_clients.ensure_topics(kafka, isolation.readings_topic,
                                            isolation.conditions_topic))  # fmt: skip
    ids = {name: {"CHEMWATCH_DETECTORS__GROUP_INSTANCE_ID": f"{isolation.tag}-{name}"}
           for name in ("a", "b")}  # fmt: skip
    a = service_factory("detectors", env=ids["a"])
    b = service_factory("detectors", env=ids["b"])

    def shared() -> bool:
        owned = [latest_assignment(w) for w in (a, b)]
        return all(owned) and set().union(*owned) == set(range(PARTITIONS))  # type: ignore[arg-type]

    wait_until(shared, 90, "two workers sharing the partitions")
    a_owned, b_rebalances = latest_assignment(a), len(logged_assignments(b))

    a.kill()
    restarted = service_factory("detectors", env=ids["a"])
    wait_until(
        lambda: latest_assignment(restarted) is not None, 60, "the restarted worker's assignment"
    )

    assert latest_assignment(restarted) == a_owned
    # b kept working throughout: no assignment since the kill
    assert len(logged_assignments(b)) == b_rebalances, logged_assignments(b)
    assert b.alive()
    assert restarted.alive()
