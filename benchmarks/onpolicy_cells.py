"""What the PPO benchmark cells share (benchmarks/suites.py, benchmarks/marl.py): train a config's
seeds vmapped in one program, evaluate each seed's policy, and plot the training curves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def train_and_evaluate(config: Any, seeds: int, episodes: int, **evaluate: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Trains ``seeds`` seeds of PPO (keys ``split(key(0), seeds)``) in one program, then plays
    ``episodes`` episodes of each seed's policy (``evaluation.evaluate(**evaluate)``, keys
    ``split(key(1), seeds)``). Returns ``(train result, evaluation, record)``; the record holds
    seconds, the curves ``[seeds, updates]``, final training returns, evaluation returns per seed
    (mean over episodes) and their IQMs with 95% intervals."""
    import jax
    import numpy as np

    from purejaxlib import stats
    from purejaxlib.algos import ppo

    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    result = jax.block_until_ready(jax.jit(jax.vmap(ppo.train, in_axes=(None, 0)))(config, keys))
    seconds = time.perf_counter() - start
    ev = evaluate_seeds(config, result.state, seeds, episodes, **evaluate)
    curve = np.asarray(result.metrics["episode_return"])  # [seeds, updates]
    scores = np.asarray(ev.returns).mean(axis=1)
    record = {
        "seconds": seconds,
        "env_steps": np.asarray(result.metrics["env_steps"][0]).tolist(),
        "curve": curve.tolist(),
        "final_train_return": stats.final_return(curve).tolist(),
        "train_iqm_ci": stats.stratified_bootstrap_ci(stats.final_return(curve)),
        "eval_return": scores.tolist(),
        "eval_iqm_ci": stats.stratified_bootstrap_ci(scores),
    }
    return result, ev, record


def evaluate_seeds(config: Any, states: Any, seeds: int, episodes: int, **evaluate: Any) -> Any:
    """``evaluation.evaluate`` of each seed's state (leading ``[seeds]``), keys ``split(key(1), seeds)``."""
    import jax

    from purejaxlib import evaluation

    play = jax.jit(jax.vmap(lambda state, key: evaluation.evaluate(config, state, key, episodes, **evaluate)))
    return play(states, jax.random.split(jax.random.key(1), seeds))


def plot_curves(
    curves: dict[str, tuple[Any, Any]], title: str, ylabel: str, path: Path, anchor: tuple | None = None
) -> None:
    """One line per label (mean over seeds) with the seeds' min-max band; ``curves[label] = (env
    steps [updates], returns [seeds, updates])``; ``anchor = (value, label)`` draws a dashed line."""
    import numpy as np

    from purejaxlib.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in curves.items():
        x, y = np.asarray(x), np.asarray(y)
        ax.plot(x, np.nanmean(y, 0), label=f"{label} (mean of {y.shape[0]} seeds)")
        ax.fill_between(x, np.nanmin(y, 0), np.nanmax(y, 0), alpha=0.2)
    if anchor is not None:
        ax.axhline(anchor[0], color="k", ls="--", label=anchor[1])
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path)
