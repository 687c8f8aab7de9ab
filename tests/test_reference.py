"""Regression checks of the reference results (benchmarks/reference.py), and its reporting pieces.

Each reference cell also has a reduced budget (``check_steps``) at which ``python
benchmarks/reference.py --checks`` trained 16 seeds (0-15) and saved the 5th percentile of their
final returns as the cell's threshold (``benchmarks/results/reference_checks.json``). Here 4 other
seeds (100-103, never used to set a threshold) train at that budget in one program, and their median
must reach it: an unchanged algorithm fails only when two of four fresh seeds land in the bottom 5%
of its measured distribution (about 1.4%), while a broken one falls to its starting level, which
every threshold clears by a wide margin (checked below too).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import reference  # noqa: E402

CHECKS = json.loads(reference.CHECKS.read_text())["cells"] if reference.CHECKS.exists() else {}
TEST_SEEDS = [100, 101, 102, 103]
# make test (its 15-minute budget) runs PQN's cell, in place of its longer learning test; the
# critic-free RLOO cell (a learning variant of the PPO family, whose CartPole test is in make test)
# and every other check run in make test-all.
IN_MAKE_TEST = {"pqn-cartpole"}


def test_every_cell_has_a_measured_threshold_for_its_current_config():
    """A cell whose config or reduced budget changed needs its threshold measured again."""
    stale = []
    for cell in reference.CELLS:
        check = CHECKS.get(cell.name)
        if (
            check is None
            or check["steps"] != cell.check_steps
            or check["overrides"] != json.loads(json.dumps(cell.overrides))
        ):
            stale.append(cell.name)
    assert not stale, f"rerun: python benchmarks/reference.py --checks --force --only {' '.join(stale)}"


def test_every_threshold_is_far_above_where_its_runs_start():
    """A check that an untrained agent would pass checks nothing: the threshold must sit at least a
    quarter of the way from the start level (the first 10% of the runs' updates) to the measured
    median. (TD3 and DDPG at 5k steps, DQN on Acrobot at 50k and A2C at 100k failed this: their
    budgets were raised.)"""
    for name, check in CHECKS.items():
        median = float(np.median([s for s in check["scores"] if s is not None]))
        assert check["threshold"] - check["start"] >= (median - check["start"]) / 4, (name, check)


@pytest.mark.learning
@pytest.mark.parametrize(
    "name", [pytest.param(c.name, marks=() if c.name in IN_MAKE_TEST else pytest.mark.slow) for c in reference.CELLS]
)
def test_reference_cell_reaches_its_threshold_at_the_reduced_budget(name):
    cell = reference.find([name])[0]
    if name not in CHECKS:
        pytest.fail(f"{name} has no threshold: python benchmarks/reference.py --checks --only {name}")
    check = CHECKS[name]
    scores, first = reference.check_scores(cell, TEST_SEEDS)
    print(f"{name}: seeds {TEST_SEEDS} final {np.round(scores, 1)} (start {np.round(first, 1)}); threshold {check}")
    assert np.median(scores) >= check["threshold"], (
        f"{name} at {cell.check_steps:,} steps: median final return {np.median(scores):.1f} of seeds {TEST_SEEDS} "
        f"({np.round(scores, 1)}) is below the 5th percentile {check['threshold']} of 16 measured seeds"
    )


# ------------------------------------------------------------------------------------ reporting pieces


def test_downsample_averages_bins_and_keeps_short_curves():
    x = np.arange(10, dtype=np.float64)[None].repeat(2, 0)
    assert reference.downsample(x, points=20).shape == (2, 10)
    out = reference.downsample(x, points=5)
    np.testing.assert_allclose(out[0], [0.5, 2.5, 4.5, 6.5, 8.5])
    with_nan = np.array([[np.nan, np.nan, 1.0, 3.0]])
    np.testing.assert_allclose(reference.downsample(with_nan, points=2), [[np.nan, 2.0]])


def record(score, evaluation, seeds=8):
    return dict(seeds=seeds, score=list(score), eval=list(evaluation), wall_s=1.0)


def test_summary_compares_an_anchor_on_its_own_kind_of_score():
    cell = reference.Cell("x", "ppo", "PPO", "CartPole-v1", 1000, {}, reference.Anchor(490.0, 1000, "eval", "src"))
    # training scores low (exploration), evaluations at the anchor: judged on eval
    low_train = record([300.0] * 8, [500.0] * 8)
    assert reference.summary(cell, low_train)["meets_anchor"]
    below = record([500.0] * 8, [400.0] * 7 + [500.0])
    assert not reference.summary(cell, below)["meets_anchor"]
    train_cell = cell._replace(anchor=cell.anchor._replace(kind="train"))
    assert not reference.summary(train_cell, low_train)["meets_anchor"]


def test_summary_probability_of_improvement_over_sb3():
    cell = reference.Cell("x", "ppo", "PPO", "CartPole-v1", 1000, {})
    rec = record([500.0] * 8, [500.0] * 8)
    rec["sb3"] = dict(version="2", seeds=4, score=[100.0] * 4, eval=[500.0] * 4, run_s=[1.0] * 4)
    out = reference.summary(cell, rec)["sb3"]
    assert out["p_improvement"][0] == 1.0
    assert out["p_improvement_eval"][0] == 0.5  # ties count half


def test_stale_results_are_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(reference, "CELLS_DIR", tmp_path)
    cell = reference.Cell("x", "ppo", "PPO", "CartPole-v1", 1000, {"lr": 1e-3})
    reference.save(cell, dict(schema=reference.SCHEMA, overrides={"lr": 1e-3}, steps=1000))
    assert reference.load(cell) is not None
    assert reference.load(cell._replace(steps=2000)) is None
    assert reference.load(cell._replace(overrides={"lr": 3e-4})) is None


def test_unknown_cells_are_named():
    with pytest.raises(SystemExit, match="nope"):
        reference.find(["nope"])
