"""Honest aggregates over seeds, after the rliable methodology (Agarwal et al., 2021).

Scores are numpy arrays ``[runs]`` (one task) or ``[runs, tasks]``: one final score per seed and
task. Aggregates pool all tasks; bootstrap confidence intervals are *stratified*: each resample
draws runs with replacement within every task independently, so tasks keep their weight.

>>> from purejaxlib import stats
>>> stats.iqm(returns)                                   # interquartile mean
>>> stats.interval_estimates(returns, reps=2000, seed=0)  # {"iqm": (point, low, high), ...}
>>> stats.probability_of_improvement(ours, theirs)       # P(ours > theirs), with a CI
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "iqm",
    "aggregates",
    "stratified_bootstrap_ci",
    "interval_estimates",
    "probability_of_improvement",
]

Statistic = Callable[[np.ndarray], float]


def _as_runs_by_tasks(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    """``[runs]`` or ``[runs, tasks]`` -> float64 ``[runs, tasks]``, refusing empty or non-finite input."""
    x = np.asarray(scores, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape [runs] or [runs, tasks] with runs, tasks >= 1, got {np.shape(scores)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf (a run that did not finish?); drop or fill it first")
    return x


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all scores (pooled over tasks).

    Like ``scipy.stats.trim_mean(x, 0.25)``: ``floor(0.25 n)`` scores are cut from each end.
    """
    x = np.sort(_as_runs_by_tasks(scores).reshape(-1))
    cut = int(0.25 * x.size)
    return float(np.mean(x[cut : x.size - cut]))


def aggregates(scores: np.ndarray) -> dict[str, float]:
    """Mean, median and IQM of all scores (``[runs]`` or ``[runs, tasks]``)."""
    x = _as_runs_by_tasks(scores)
    return {"mean": float(np.mean(x)), "median": float(np.median(x)), "iqm": iqm(x)}


def _resample(x: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``[reps, runs, tasks]`` stratified resamples: runs drawn with replacement per task."""
    runs, tasks = x.shape
    index = rng.integers(0, runs, size=(reps, runs, tasks))
    return np.take_along_axis(np.broadcast_to(x, (reps, runs, tasks)), index, axis=1)


def stratified_bootstrap_ci(
    scores: np.ndarray, statistic: Statistic = iqm, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``(point, low, high)``: the statistic and its percentile bootstrap interval."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    x = _as_runs_by_tasks(scores)
    samples = _resample(x, reps, np.random.default_rng(seed))
    values = np.array([statistic(s) for s in samples])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(statistic(x)), float(low), float(high)


def interval_estimates(
    scores: np.ndarray, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    """``{"mean" | "median" | "iqm": (point, low, high)}`` with stratified bootstrap intervals."""
    stats = {"mean": lambda s: float(np.mean(s)), "median": lambda s: float(np.median(s)), "iqm": iqm}
    return {
        name: stratified_bootstrap_ci(scores, fn, reps=reps, confidence=confidence, seed=seed)
        for name, fn in stats.items()
    }


def _improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over tasks of P(X > Y) + P(X = Y) / 2 for one run of each, X from x and Y from y."""
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    equal = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * equal))


def probability_of_improvement(
    x: np.ndarray, y: np.ndarray, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``(point, low, high)``: the probability that a run of ``x`` scores above a run of ``y``
    (ties count half; the Mann-Whitney U statistic over ``runs_x * runs_y``), averaged over
    tasks, with a stratified bootstrap interval resampling both sides."""
    a, b = _as_runs_by_tasks(x, "x"), _as_runs_by_tasks(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must cover the same tasks: {a.shape[1]} vs {b.shape[1]} task columns")
    rng = np.random.default_rng(seed)
    values = np.array([_improvement(sa, sb) for sa, sb in zip(_resample(a, reps, rng), _resample(b, reps, rng))])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return _improvement(a, b), float(low), float(high)
