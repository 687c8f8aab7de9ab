"""Learning-curve plots of sweep results (matplotlib, headless)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np


def learning_curves(result: Any, path: str | Path, metric: str = "episode_return", title: str = "") -> Path:
    """One line per grid point: mean over seeds against env steps, band from min to max seed.

    ``result`` is a :class:`purejaxlib.SweepResult`; writes ``path`` (PNG or SVG by suffix).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(result.metrics[metric], dtype=np.float64)
    steps = np.asarray(result.metrics["env_steps"], dtype=np.float64)
    grid_names = [a for a in result.axes if a != "seed"]
    grid_shape = values.shape[: len(grid_names)]
    num_seeds = values.shape[len(grid_names)]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for index in np.ndindex(*grid_shape):
        curves = values[index]  # [seeds, updates]
        x = steps[index][0]
        with warnings.catch_warnings():  # all-NaN columns: padded or before any episode ended
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(curves, axis=0)
            low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
        label = ", ".join(f"{n}={result.grid[n][i]}" for n, i in zip(grid_names, index)) or "mean"
        line = ax.plot(x, mean, label=label, lw=1.6)[0]
        if num_seeds > 1:
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("env steps per agent")
    ax.set_ylabel(metric.replace("_", " "))
    band = f"mean over {num_seeds} seeds, band from worst to best seed" if num_seeds > 1 else "1 seed"
    ax.set_title(f"{title}\n{band}" if title else band, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
