import pytest

from common.hazard import alpha, grade_from_r, hazard_grade


def test_worked_example_from_domain_md() -> None:
    # 20 t chlorine + 30 t ammonia, 60 people nearby: S = 7, R = 1.5 x (4x4 + 2x3) = 33.
    result = hazard_grade([("chlorine", 20), ("ammonia", 30)], people_exposed=60)
    assert result.s == pytest.approx(7.0)
    assert result.r == pytest.approx(33.0)
    assert result.grade == 3
    assert result.major


@pytest.mark.parametrize(
    ("people", "expected"), [(0, 0.5), (1, 1.0), (29, 1.0), (30, 1.2), (50, 1.5), (100, 2.0)]
)
def test_alpha_bands(people: int, expected: float) -> None:
    assert alpha(people) == expected


@pytest.mark.parametrize(("r", "grade"), [(100, 1), (99.9, 2), (50, 2), (10, 3), (9.99, 4)])
def test_grade_bands(r: float, grade: int) -> None:
    assert grade_from_r(r) == grade


def test_below_threshold_is_not_graded() -> None:
    result = hazard_grade([("propane", 10)], people_exposed=200)
    assert not result.major
    assert result.grade is None
