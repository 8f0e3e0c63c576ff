"""The control-room console in headless Chromium (Debian's, never a downloaded one):
log in, see an alarm appear within 2 s of its condition event, acknowledge it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.settings import BaseProcessSettings
from tests.alerting.helpers import pair
from tests.alerting.service import PASSWORD, start_alerting
from tests.fixtures.processes import ServiceFactory
from tests.fixtures.services import ROOT, Isolation

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARTEFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian chromium is missing: run `make browser` (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def test_operator_sees_and_acknowledges_an_alarm(
    browser: object,
    service_factory: ServiceFactory,
    stack: BaseProcessSettings,
    isolation: Isolation,
) -> None:
    a = start_alerting(service_factory, stack, isolation)
    page = browser.new_page(viewport={"width": 1400, "height": 800})  # type: ignore[attr-defined]
    page.goto(a.base + "/")
    page.fill("#username", "olga")
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector("#conn.up", timeout=10_000)
    assert "olga (operator)" in page.inner_text("#whoami")
    assert page.is_hidden("#login")

    base = datetime.now(UTC) - timedelta(seconds=5)
    event = pair("TK201-PT-01", "HH", 0, unit="TK201", severity="high", base=base)[0]
    sent = time.monotonic()
    a.send([event])
    row = page.wait_for_selector('tr[data-alarm="TK201-PT-01:HH"]', timeout=5_000)
    shown_after = time.monotonic() - sent
    assert shown_after < 2.0, f"alarm shown {shown_after:.2f} s after its condition event"
    assert "UNACK" in row.inner_text()
    assert "critical" in row.get_attribute("class")  # high raised by the unit's grade 2

    page.click('tr[data-alarm="TK201-PT-01:HH"] button.ack')
    page.wait_for_selector('tr[data-alarm="TK201-PT-01:HH"].ACKED', timeout=5_000)
    assert a.alarm("TK201-PT-01:HH")["acked_by"] == "olga"

    a.send(pair("TK201-GD-01", "HH", 1, unit="TK201", base=base))
    a.send(pair("TK201-GD-02", "HH", 2, unit="TK201", base=base))
    page.wait_for_selector(".incident.red", timeout=5_000)
    page.wait_for_selector('.tile.red[data-site="haibin-terminal"]', timeout=5_000)
    page.click("#wall")
    ARTEFACTS.mkdir(exist_ok=True)
    shot = ARTEFACTS / "console.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
