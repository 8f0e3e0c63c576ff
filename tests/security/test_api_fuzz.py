"""schemathesis against the running alerting service's OpenAPI: no 5xx, whatever is sent.

Every operation (except the endless SSE stream, tested separately) gets a bounded number
of generated requests, valid and invalid, with a supervisor token so the handlers (not
just the auth check) see them.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

from common.settings import BaseProcessSettings
from tests.alerting.helpers import pair
from tests.alerting.service import TOKENS, start_alerting
from tests.fixtures.processes import ServiceFactory
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration

# Examples per operation and mode: ~20 operations x (positive + negative) stays well
# under a minute on the shared 2-core machine.
EXAMPLES = 12
SKIP_PATHS = ["/stream"]


def test_no_5xx_for_generated_requests(
    service_factory: ServiceFactory, stack: BaseProcessSettings, isolation: Isolation
) -> None:
    api = start_alerting(service_factory, stack, isolation)
    # Some alarms exist, so generated ids sometimes hit real rows as well as missing ones.
    api.send(pair("TK101-PT-01", "HH", 0) + pair("TK101-TT-01", "H", 5, 30))
    api.wait_state("TK101-PT-01:HH", "UNACK")
    schema = schemathesis.openapi.from_url(f"{api.base}/openapi.json")
    auth = {"Authorization": f"Bearer {TOKENS['supervisor']}"}
    failures: list[str] = []
    counts: dict[str, int] = {}
    started = time.monotonic()

    for result in schema.exclude(path=SKIP_PATHS).get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Case) -> None:
                response = case.call(base_url=api.base, headers=auth, timeout=10)
                label = f"{case.method} {case.path}"
                counts[label] = counts.get(label, 0) + 1
                if response.status_code >= 500:
                    failures.append(
                        f"{response.status_code} {case.method} {case.formatted_path} "
                        f"query={case.query} body={case.body!r}: {response.text[:200]}"
                    )

            try:
                run()
            except Unsatisfiable:
                # Negative mode on an operation without parameters or body: nothing can
                # be made invalid.
                assert mode is GenerationMode.NEGATIVE, operation.label

    elapsed = time.monotonic() - started
    assert len(counts) >= 10, counts  # the schema really was exercised
    assert failures == [], "\n".join(failures[:20])
    assert api.service.alive(), api.service.log()
    print(
        f"schemathesis: {sum(counts.values())} requests, {len(counts)} operations, {elapsed:.1f} s"
    )
