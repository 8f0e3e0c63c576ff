"""GB 18218-2018 major-hazard identification and grading (docs/domain.md section 3).

S = sum(q_i / Q_i) decides whether a unit is a major hazard installation (S >= 1);
R = alpha * sum(beta_i * q_i / Q_i) grades it: 1 (most severe, R >= 100) to 4 (R < 10).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from common.substances import SUBSTANCES

# (minimum people exposed within 500 m, alpha), highest band first.
_ALPHA_BANDS: tuple[tuple[int, float], ...] = ((100, 2.0), (50, 1.5), (30, 1.2), (1, 1.0))


@dataclass(frozen=True, slots=True)
class HazardGrade:
    """Result of the GB 18218 computation for one unit."""

    s: float  # sum q/Q: >= 1 means major hazard installation
    r: float  # R-value
    grade: int | None  # 1..4 for a major hazard installation, None otherwise

    @property
    def major(self) -> bool:
        return self.s >= 1.0


def alpha(people_exposed: int) -> float:
    """Correction factor for the people normally present within 500 m of the boundary."""
    for minimum, value in _ALPHA_BANDS:
        if people_exposed >= minimum:
            return value
    return 0.5


def grade_from_r(r: float) -> int:
    """GB 18218 grade from an R-value: 1 (R >= 100), 2 (>= 50), 3 (>= 10), 4."""
    if r >= 100:
        return 1
    if r >= 50:
        return 2
    if r >= 10:
        return 3
    return 4


def hazard_grade(inventories: Iterable[tuple[str, float]], people_exposed: int) -> HazardGrade:
    """S, R and grade of one unit from (substance, quantity in tonnes) pairs.

    Raises KeyError naming an unknown substance (the registry validates names on load).
    """
    s = 0.0
    weighted = 0.0
    for name, quantity_t in inventories:
        substance = SUBSTANCES[name]
        ratio = quantity_t / substance.threshold_t
        s += ratio
        weighted += substance.beta * ratio
    r = alpha(people_exposed) * weighted
    return HazardGrade(s=s, r=r, grade=grade_from_r(r) if s >= 1.0 else None)
