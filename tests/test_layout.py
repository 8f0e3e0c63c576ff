"""The process packages never import each other; common imports none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("ingest", "detectors", "alerting", "simulators")


def imported_packages(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", SERVICES)
def test_service_imports_no_other_service(package: str) -> None:
    others = set(SERVICES) - {package}
    assert imported_packages(package) & (others | {"chemwatch"}) == set()


def test_common_imports_no_service() -> None:
    assert imported_packages("common") & (set(SERVICES) | {"chemwatch"}) == set()


def test_layout_check_would_catch_a_violation(tmp_path: Path) -> None:
    bad = ROOT / "ingest" / "_layout_probe.py"
    bad.write_text("from detectors import limits\n")
    try:
        assert "detectors" in imported_packages("ingest")
    finally:
        bad.unlink()
