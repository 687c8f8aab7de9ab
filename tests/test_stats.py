"""purejaxlib.stats against hand-computed cases and on synthetic data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from purejaxlib import stats


def test_iqm_hand_computed_and_matches_scipy_trim_mean():
    assert stats.iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert stats.iqm([0.0, 0.0, 100.0, 1.0, 2.0, 3.0, -100.0, 4.0]) == pytest.approx(1.5)  # outliers cut
    rng = np.random.default_rng(0)
    for n in (4, 5, 7, 10, 33):
        x = rng.normal(size=n)
        assert stats.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25))
    runs_by_tasks = rng.normal(size=(6, 3))
    assert stats.iqm(runs_by_tasks) == pytest.approx(scipy_stats.trim_mean(runs_by_tasks.reshape(-1), 0.25))


def test_aggregates():
    out = stats.aggregates([1.0, 2.0, 3.0, 10.0])
    assert out == pytest.approx({"mean": 4.0, "median": 2.5, "iqm": 2.5})


def test_bootstrap_ci_of_a_constant_is_a_point_and_contains_the_estimate():
    assert stats.stratified_bootstrap_ci(np.full(10, 3.0)) == (3.0, 3.0, 3.0)
    point, low, high = stats.stratified_bootstrap_ci(np.arange(20.0), reps=500)
    assert low < point < high


def test_bootstrap_is_stratified_by_task():
    # Task 0 always scores 0, task 1 always 100: a stratified resample keeps every task's runs,
    # so the mean never moves; pooling runs across tasks would let it swing.
    scores = np.stack([np.zeros(5), np.full(5, 100.0)], axis=1)
    point, low, high = stats.stratified_bootstrap_ci(scores, lambda s: float(np.mean(s)), reps=300)
    assert point == low == high == 50.0


def test_bootstrap_ci_coverage_on_synthetic_data():
    """95% intervals for the mean of N(0, 1) samples of 30 cover 0 in about 95% of trials
    (percentile bootstrap runs a little narrow at n = 30: about 93%)."""
    rng = np.random.default_rng(1)
    trials, covered = 200, 0
    for t in range(trials):
        x = rng.normal(size=30)
        _, low, high = stats.stratified_bootstrap_ci(x, lambda s: float(np.mean(s)), reps=400, seed=t)
        covered += low <= 0.0 <= high
    assert 0.88 <= covered / trials <= 0.99


def test_probability_of_improvement_hand_cases():
    assert stats.probability_of_improvement([5.0, 6.0], [1.0, 2.0], reps=50)[0] == 1.0
    assert stats.probability_of_improvement([1.0, 2.0], [5.0, 6.0], reps=50)[0] == 0.0
    assert stats.probability_of_improvement([1.0, 1.0], [1.0, 1.0], reps=50) == (0.5, 0.5, 0.5)
    # x = [1, 3] vs y = [2]: one win, one loss -> 0.5; x = [2, 3] vs y = [2]: a tie and a win -> 0.75
    assert stats.probability_of_improvement([1.0, 3.0], [2.0], reps=50)[0] == 0.5
    assert stats.probability_of_improvement([2.0, 3.0], [2.0], reps=50)[0] == 0.75
    # two tasks are averaged: 1.0 on the first, 0.0 on the second
    x = np.array([[5.0, 0.0], [6.0, 0.0]])
    y = np.array([[1.0, 9.0], [2.0, 9.0]])
    assert stats.probability_of_improvement(x, y, reps=50)[0] == 0.5


def test_probability_of_improvement_ci_separates_clearly_different_runs():
    rng = np.random.default_rng(2)
    point, low, high = stats.probability_of_improvement(rng.normal(1.0, 0.5, 20), rng.normal(0.0, 0.5, 20), reps=500)
    assert 0.5 < low <= point <= high <= 1.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: stats.iqm([]), "runs, tasks >= 1"),
        (lambda: stats.iqm([1.0, np.nan]), "NaN or inf"),
        (lambda: stats.stratified_bootstrap_ci([1.0, 2.0], confidence=95), "confidence"),
        (lambda: stats.probability_of_improvement(np.ones((3, 2)), np.ones((3, 3))), "same tasks"),
    ],
)
def test_bad_input_names_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()
