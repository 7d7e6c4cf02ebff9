"""The plateau verdict over the last ``eval_at`` interval (benchbed.plateau, docs/results.md#has-it-plateaued),
checked on curves whose answer is known by construction, and its column in the published tables."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchbed.plateau import RELATIVE_TOLERANCE, aggregate_progress, plateau


def curves(*per_seed: dict[int, float]) -> list[dict[int, tuple[float, float]]]:
    """Curves as :func:`benchbed.plateau.run_progress` returns them (training seconds = step / 100)."""
    return [{s: (s / 100, v) for s, v in points.items()} for points in per_seed]


def test_a_curve_still_falling_by_more_than_the_seed_spread_has_not_plateaued() -> None:
    verdict = plateau(curves({100: 0.9, 200: 0.5, 400: 0.30}, {100: 0.8, 200: 0.52, 400: 0.31},
                             {100: 0.85, 200: 0.49, 400: 0.29}), higher_is_better=False)
    assert verdict is not None
    assert (verdict.start, verdict.end, verdict.n) == (200, 400, 3)
    assert verdict.change == pytest.approx(-0.2033333, rel=1e-5)
    assert verdict.relative == pytest.approx(-0.2033333 / 0.30, rel=1e-5)
    assert verdict.spread == pytest.approx(0.01, rel=1e-9)
    assert verdict.moving and verdict.improving is True
    assert verdict.describe("MMD²") == "MMD² −68% (200→400)"


def test_a_change_within_the_seed_spread_is_a_plateau() -> None:
    # mean change -0.05, but the final values spread by sd 0.1: seeds disagree more than training moves
    verdict = plateau(curves({1: 1.05, 2: 0.9}, {1: 1.05, 2: 1.1}, {1: 1.05, 2: 1.0}), higher_is_better=False)
    assert verdict is not None and verdict.spread == pytest.approx(0.1)
    assert verdict.change == pytest.approx(-0.05) and not verdict.moving


def test_with_one_seed_only_the_relative_tolerance_decides() -> None:
    inside = 1.0 - RELATIVE_TOLERANCE / 2
    outside = 1.0 - 2 * RELATIVE_TOLERANCE
    assert not plateau(curves({10: 1.0, 20: inside}), higher_is_better=True).moving  # type: ignore[union-attr]
    moving = plateau(curves({10: 1.0, 20: outside}), higher_is_better=True)
    assert moving is not None and moving.moving and moving.improving is False  # getting worse: still moving


def test_the_interval_ends_at_the_last_step_and_skips_seeds_without_both_points() -> None:
    verdict = plateau(curves({5: 2.0, 10: 1.0}, {5: 2.0}, {10: math.nan, 5: 3.0}), higher_is_better=None)
    assert verdict is not None and (verdict.start, verdict.end, verdict.n) == (5, 10, 1)
    assert verdict.improving is None and verdict.moving


def test_no_verdict_without_two_steps() -> None:
    assert plateau(curves({400: 0.3}, {400: 0.31}), higher_is_better=False) is None
    assert plateau([], higher_is_better=False) is None
    assert plateau(curves({1: 0.3}, {2: 0.31}), higher_is_better=False) is None  # no seed has both


def test_aggregate_progress_means_the_finite_values_per_step() -> None:
    curve = aggregate_progress("m", curves({1: 1.0, 2: 3.0}, {1: 2.0, 2: math.inf}))
    assert (curve.steps, curve.values, curve.n) == ([1, 2], [1.5, 3.0], [2, 1])
    assert curve.seconds == pytest.approx([0.01, 0.02])


@pytest.mark.slow
def test_the_published_tables_say_which_models_have_plateaued(tmp_path: Path) -> None:
    from tests.core.test_eval_at import run_cli, suite_text

    assert run_cli(tmp_path / "ea", suite_text()) == 0
    readme = (tmp_path / "ea" / "out" / "README.md").read_text()
    header = next(line for line in readme.splitlines() if line.startswith("| model |"))
    assert header.rstrip(" |").endswith("plateaued")
    rows = [line for line in readme.splitlines() if line.startswith("| vae") or line.startswith("| gmmn")]
    assert len(rows) == 2
    for row in rows:
        last = row.rstrip(" |").rsplit("|", 1)[1].strip()
        assert last == "yes" or (last.startswith("no: ") and "(20→40)" in last), row
    assert run_cli(tmp_path / "plain", suite_text(eval_at="")) == 0
    assert "plateaued" not in (tmp_path / "plain" / "out" / "README.md").read_text().split("Notes:")[0]
