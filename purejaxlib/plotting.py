"""Plots of sweep results (matplotlib, headless): learning curves and sweep heatmaps.

Both take a :class:`purejaxlib.SweepResult` (or anything with its ``metrics``, ``axes`` and
``grid``) and write a PNG and an SVG next to each other. Aggregates follow the rliable
methodology of :mod:`purejaxlib.stats`: interquartile mean over seeds, stratified bootstrap CIs.

>>> learning_curves(result, "out/learning_curve")          # out/learning_curve.{png,svg}
>>> sweep_heatmap(result, "out/heatmap", x="lr", y="ent_coef")
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from purejaxlib import stats

__all__ = [
    "learning_curves",
    "compare_learning_curves",
    "sweep_heatmap",
    "curve_band",
    "heatmap_values",
    "format_value",
]

CONFIDENCE = 0.95
_IMAGE_SUFFIXES = {".png", ".svg", ".pdf", ".jpg", ".jpeg"}


def pyplot() -> Any:
    """pyplot on the non-interactive Agg backend: plots are written from scripts and CI, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------- pure helpers


def format_value(value: Any) -> str:
    """Compact label of one grid value: ``3e-04 -> "0.0003"``, ``(64, 64) -> "(64,64)"``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(format_value(v) for v in value) + ")"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def grid_axes(result: Any) -> list[str]:
    """The non-seed leading axes of ``result``, in order."""
    return [a for a in result.axes if a != "seed"]


def _metric(result: Any, metric: str) -> np.ndarray:
    """``result.metrics[metric]`` as float64 ``[grid..., seeds, points]``, or a ValueError listing metrics."""
    if metric not in result.metrics:
        raise ValueError(f"no metric {metric!r} in this result; available metrics: {', '.join(sorted(result.metrics))}")
    values = np.asarray(result.metrics[metric], np.float64)
    if values.ndim != len(result.axes) + 1:
        raise ValueError(
            f"metric {metric!r} has shape {values.shape}; expected the leading axes {tuple(result.axes)} "
            "and one axis of points"
        )
    return values


def curve_band(
    values: np.ndarray, reps: int = 1000, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[seeds, points] -> (iqm, low, high)``, each ``[points]``: what one learning curve draws.

    NaN entries are ignored per point; ``low``/``high`` are NaN (no band) where fewer than two
    seeds are finite, so a single seed gives just the line.
    """
    return stats.iqm_bands(values, reps=reps, confidence=confidence, seed=seed, min_runs=2)


def curve_steps(steps: np.ndarray) -> np.ndarray:
    """``[seeds, points] -> [points]``: each point's env steps, from the first seed that has it.

    Seeds of one grid point share a config, so their steps agree; NaN only where every seed is
    padding.
    """
    steps = np.asarray(steps, np.float64)
    finite = np.isfinite(steps)
    first = np.argmax(finite, axis=0)
    x = np.take_along_axis(steps, first[None], axis=0)[0]
    return np.where(finite.any(axis=0), x, np.nan)


def _check_heatmap_axes(result: Any, x: str, y: str) -> None:
    names = grid_axes(result)
    available = ", ".join(names) if names else "none (only seeds)"
    for which, name in (("x", x), ("y", y)):
        if name not in names:
            raise ValueError(
                f"sweep_heatmap: {which}={name!r} is not a grid axis of this result; grid axes: {available}"
            )
    if x == y:
        raise ValueError(f"sweep_heatmap: x and y are both {x!r}; pick two different grid axes from: {available}")


def heatmap_values(
    result: Any, x: str, y: str, metric: str = "episode_return", final_fraction: float = stats.FINAL_FRACTION
) -> np.ndarray:
    """``[len(grid[x]), len(grid[y])]`` final IQMs: per cell, the IQM of the final scores of its
    runs, which are all seeds and all values of the remaining grid axes, pooled."""
    _check_heatmap_axes(result, x, y)
    scores = stats.final_return(_metric(result, metric), final_fraction)  # [grid..., seeds]
    axes = list(result.axes)
    cells = np.moveaxis(scores, [axes.index(x), axes.index(y)], [0, 1])
    cells = cells.reshape(cells.shape[0], cells.shape[1], -1)
    return stats.nan_iqm(cells, axis=-1)


def image_paths(path: str | Path) -> list[Path]:
    """``out/curve``, ``out/curve.png`` or ``out/curve.svg`` -> ``[out/curve.png, out/curve.svg]``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in _IMAGE_SUFFIXES else path
    return [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]


def save_figure(fig: Any, path: str | Path) -> list[Path]:
    """Writes ``fig`` as PNG and SVG (SVG without a date, so reruns give the same file)."""
    plt = pyplot()
    paths = image_paths(path)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"svg.hashsalt": "purejaxlib"}):
        fig.savefig(paths[0], dpi=120)
        fig.savefig(paths[1], metadata={"Date": None})
    plt.close(fig)
    return paths


def _title(title: str, subtitle: str) -> str:
    return f"{title}\n{subtitle}" if title else subtitle


def _colors(plt: Any, count: int) -> list[Any]:
    # tab10 stays distinguishable up to 10 lines; past that its colours would repeat.
    cmap = plt.get_cmap("tab10") if count <= 10 else plt.get_cmap("viridis")
    return [cmap(i) if count <= 10 else cmap(i / max(count - 1, 1)) for i in range(count)]


# ----------------------------------------------------------------------------- plots


def learning_curves(
    result: Any,
    path: str | Path,
    metric: str = "episode_return",
    title: str = "",
    reps: int = 1000,
    seed: int = 0,
    evaluation: str | None = "eval_return",
) -> list[Path]:
    """One line per grid point: IQM over seeds against env steps, with a 95% stratified bootstrap
    band of that IQM per point (no band with one seed, or where fewer than two seeds have a value).

    When the result has the metric ``evaluation`` (periodic evaluation, NaN between evaluations),
    each grid point also gets a dashed line with markers of it, in the same colour, drawn beside
    the training ``metric``. Writes ``<path stem>.png`` and ``.svg`` and returns both paths.
    """
    values = _metric(result, metric)
    x_name = x_axis(result)
    steps = _metric(result, x_name)
    evals = _metric(result, evaluation) if evaluation and evaluation in result.metrics else None
    names = grid_axes(result)
    lines = []
    for index in np.ndindex(*values.shape[: len(names)]):
        label = ", ".join(f"{n}={format_value(result.grid[n][i])}" for n, i in zip(names, index)) or "IQM"
        lines.append((label, values[index], steps[index]) + ((evals[index],) if evals is not None else ()))
    xlabel = "gradient steps per agent" if x_name == "gradient_steps" else "env steps per agent"
    return _draw_curves(lines, path, metric, title, values.shape[len(names)], reps, seed, xlabel)


def x_axis(result: Any) -> str:
    """The metric curves are drawn against: ``env_steps``, or ``gradient_steps`` for offline runs
    (which take no env steps)."""
    if "gradient_steps" in result.metrics and not np.nanmax(np.asarray(result.metrics["env_steps"], np.float64)):
        return "gradient_steps"
    return "env_steps"


def compare_learning_curves(
    results: dict[str, Any],
    path: str | Path,
    metric: str = "episode_return",
    title: str = "",
    reps: int = 1000,
    seed: int = 0,
) -> list[Path]:
    """One line per labelled sweep result (e.g. one per algorithm, each its own program and
    schedule), drawn as :func:`learning_curves` draws a grid point; each result must have only a
    seed axis. Writes ``<path stem>.png`` and ``.svg``."""
    lines, seeds = [], set()
    for label, result in results.items():
        if grid_axes(result):
            raise ValueError(
                f"{label!r}: compare_learning_curves takes results with a seed axis only, "
                f"this one also has {grid_axes(result)}"
            )
        values = _metric(result, metric)
        lines.append((label, values, _metric(result, "env_steps")))
        seeds.add(values.shape[0])
    return _draw_curves(lines, path, metric, title, min(seeds), reps, seed)


def _draw_curves(
    lines: list[tuple[Any, ...]],
    path: str | Path,
    metric: str,
    title: str,
    num_seeds: int,
    reps: int,
    seed: int,
    xlabel: str = "env steps per agent",
) -> list[Path]:
    """Draws ``(label, values [seeds, points], env_steps [seeds, points][, evaluations [seeds,
    points]])`` lines with IQM bands; evaluations dashed with markers at their finite points."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (label, values, steps, *evals), color in zip(lines, _colors(plt, len(lines))):
        iqm, low, high = curve_band(values, reps=reps, seed=seed)
        x = curve_steps(steps)
        ax.plot(x, iqm, label=label, lw=1.6, color=color)
        band = np.isfinite(x) & np.isfinite(low) & np.isfinite(high)
        if band.any():
            ax.fill_between(x, low, high, where=band, color=color, alpha=0.2, lw=0)
        if evals:
            e_iqm, e_low, e_high = curve_band(evals[0], reps=reps, seed=seed)
            at = np.isfinite(x) & np.isfinite(e_iqm)
            ax.plot(x[at], e_iqm[at], ls="--", marker="o", ms=3, lw=1.2, color=color, label=f"{label} (evaluation)")
            band = at & np.isfinite(e_low) & np.isfinite(e_high)
            if band.any():
                ax.fill_between(x[band], e_low[band], e_high[band], color=color, alpha=0.1, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric.replace("_", " "))
    subtitle = f"IQM over {num_seeds} seeds, {CONFIDENCE:.0%} bootstrap CI" if num_seeds > 1 else "1 seed"
    ax.set_title(_title(title, subtitle), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", ncol=1 if len(lines) <= 8 else 2)
    fig.tight_layout()
    return save_figure(fig, path)


def sweep_heatmap(
    result: Any,
    path: str | Path,
    x: str,
    y: str,
    metric: str = "episode_return",
    final_fraction: float = stats.FINAL_FRACTION,
    title: str = "",
) -> list[Path]:
    """Grid axis ``x`` against grid axis ``y``, each cell the final IQM of ``metric`` (see
    :func:`heatmap_values`), annotated with its value. Writes ``<path stem>.png`` and ``.svg``."""
    plt = pyplot()
    z = heatmap_values(result, x, y, metric, final_fraction)  # [nx, ny]
    names = grid_axes(result)
    pooled = [n for n in names if n not in (x, y)]
    num_seeds = len(result.grid["seed"])
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 0.9 * z.shape[0]), max(4.0, 1.8 + 0.6 * z.shape[1])))
    finite = z[np.isfinite(z)]
    image = ax.imshow(np.ma.masked_invalid(z.T), origin="lower", aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, label=f"final IQM {metric.replace('_', ' ')}")
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i, j in np.ndindex(*z.shape):
        v = z[i, j]
        # Dark text on the bright (high) end of viridis, light text on the dark end.
        text, color = (f"{v:.3g}", "black" if v > middle else "white") if np.isfinite(v) else ("n/a", "gray")
        ax.text(i, j, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(z.shape[0]), [format_value(v) for v in result.grid[x]])
    ax.set_yticks(range(z.shape[1]), [format_value(v) for v in result.grid[y]])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    runs = num_seeds * math.prod(len(result.grid[n]) for n in pooled)
    over = f"{num_seeds} seeds" + (f" x all {', '.join(pooled)} pooled ({runs} runs per cell)" if pooled else "")
    subtitle = f"final IQM over {over}\nrun score: mean {metric} over its last {final_fraction:.0%} of points"
    ax.set_title(_title(title, subtitle), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
