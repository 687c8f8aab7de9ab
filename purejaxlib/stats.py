"""Honest aggregates over seeds, after the rliable methodology (Agarwal et al., 2021).

Scores are numpy arrays ``[runs]`` (one task) or ``[runs, tasks]``: one final score per seed and
task. Aggregates pool all tasks; bootstrap confidence intervals are *stratified*: each resample
draws runs with replacement within every task independently, so tasks keep their weight.

>>> from purejaxlib import stats
>>> stats.final_return(curves)                          # [..., points] -> each run's final score
>>> stats.iqm(returns)                                   # interquartile mean
>>> stats.interval_estimates(returns, reps=2000, seed=0)  # {"iqm": (point, low, high), ...}
>>> stats.probability_of_improvement(ours, theirs)       # P(ours > theirs), with a CI
>>> stats.iqm_bands(curves, reps=1000)                   # per-point IQM and CI of [seeds, points]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "final_return",
    "iqm",
    "aggregates",
    "stratified_bootstrap_ci",
    "interval_estimates",
    "probability_of_improvement",
    "nan_iqm",
    "iqm_bands",
]

Statistic = Callable[[np.ndarray], float]


def _as_runs_by_tasks(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    """``[runs]`` or ``[runs, tasks]`` -> float64 ``[runs, tasks]``, refusing empty or non-finite input."""
    x = np.asarray(scores, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape [runs] or [runs, tasks] with runs, tasks >= 1, got {np.shape(scores)}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf (a run that did not finish?); drop or fill it first")
    return x


FINAL_FRACTION = 0.1


def final_return(values: np.ndarray, final_fraction: float = FINAL_FRACTION) -> np.ndarray:
    """A run's final score: ``[..., points] -> [...]``, the mean of its last ``final_fraction`` of
    finite points (at least one point; NaN for a run with none).

    The one meaning of "final return" in purejaxlib (CLI summary, plots, benchmarks, tests): a
    curve's points are its updates (:func:`purejaxlib.sweep`) or reports
    (:func:`purejaxlib.run_experiment`), in order along the last axis; NaN entries (padding of
    shorter runs, updates where no episode ended) are skipped, so a shorter run's score is taken
    from its own end. Averaging the last 10% rather than taking the last point steadies the score
    of a noisy curve.
    """
    if not 0.0 < final_fraction <= 1.0:
        raise ValueError(f"final_fraction must lie in (0, 1], got {final_fraction}")
    x = np.asarray(values, np.float64)
    if x.ndim == 0:
        raise ValueError("values must have an axis of points (the last axis), got a scalar")
    finite = np.isfinite(x)
    n = finite.sum(axis=-1, keepdims=True)
    k = np.maximum(1, np.ceil(final_fraction * n))
    from_end = np.cumsum(finite[..., ::-1], axis=-1)[..., ::-1]  # finite points at or after each one
    keep = finite & (from_end <= k)
    total = np.where(keep, x, 0.0).sum(axis=-1)
    count = keep.sum(axis=-1)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


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


def nan_iqm(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """IQM along ``axis`` of the finite entries only, for many slices at once.

    Each slice's non-finite entries (NaN: padding, or no episode finished yet) are dropped and
    :func:`iqm` is taken of the rest; NaN where a slice has none. The result has ``axis`` removed.
    """
    x = np.moveaxis(np.asarray(values, np.float64), axis, -1)
    x = np.sort(np.where(np.isfinite(x), x, np.nan), axis=-1)  # NaN sort last
    n = np.isfinite(x).sum(axis=-1, keepdims=True)
    cut = n // 4  # == int(0.25 * n), as in iqm
    rank = np.arange(x.shape[-1])
    keep = (rank >= cut) & (rank < n - cut)
    total = np.where(keep, x, 0.0).sum(axis=-1)
    count = keep.sum(axis=-1)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


# Bound on the resample array's entries (reps x runs x points chunk): about 64 MB of float64.
_BAND_CHUNK_ENTRIES = 8_000_000


def iqm_bands(
    values: np.ndarray, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0, min_runs: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-point IQM over runs with a bootstrap interval: ``[runs, points]`` -> 3 x ``[points]``.

    Each point (a column, e.g. one x value of a learning curve) is one task on its own: its finite
    runs are resampled with replacement, which is the stratified bootstrap of a single task. NaN
    entries are ignored per point; ``low``/``high`` are NaN where fewer than ``min_runs`` runs are
    finite, the IQM is NaN where none are. Vectorized over points: same estimator as
    :func:`stratified_bootstrap_ci` with :func:`iqm`, different random draws.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    x = np.asarray(values, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"values must have shape [runs, points] with runs >= 1, got {np.shape(values)}")
    points = x.shape[1]
    point = nan_iqm(x, axis=0)
    low, high = np.full(points, np.nan), np.full(points, np.nan)
    finite = np.isfinite(x)
    # Finite runs first in every column, so a column's finite runs are its first n rows.
    x = np.sort(np.where(finite, x, np.nan), axis=0).T  # [points, runs]
    n = finite.sum(axis=0)
    rng = np.random.default_rng(seed)
    alpha = (1.0 - confidence) / 2.0
    # Columns with the same number of finite runs are resampled together, free of NaN masks.
    for m in np.unique(n[n >= max(min_runs, 1)]):
        columns = np.flatnonzero(n == m)
        cut = int(m) // 4  # as in iqm
        chunk = max(1, _BAND_CHUNK_ENTRIES // (reps * int(m)))
        for start in range(0, columns.size, chunk):
            cols = columns[start : start + chunk]
            index = rng.integers(0, m, size=(reps, cols.size, m))
            samples = np.sort(x[cols[None, :, None], index], axis=-1)  # [reps, cols, m]
            iqms = samples[..., cut : m - cut].mean(axis=-1)
            low[cols], high[cols] = np.quantile(iqms, [alpha, 1.0 - alpha], axis=0)
    return point, low, high
