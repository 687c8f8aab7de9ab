"""The update loop every algorithm shares: ``lax.scan`` of its ``step`` with live reports.

An algorithm provides ``init(config, key) -> state`` and ``step(config, state, index) ->
(state, metrics)``; ``index`` is the update's number (from 0), unbatched under ``vmap``, so a
branch on it stays a real branch. :func:`train` runs the whole run; the experiment runner
(:mod:`purejaxlib.runner`) calls :func:`scan_updates` on chunks of it between checkpoints, and
both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxlib import progress

Step = Callable[[Any, Any, jax.Array], tuple[Any, dict[str, jax.Array]]]
Extra = Callable[[Any, Any, jax.Array], dict[str, jax.Array]]  # (config, state, index) -> scalar metrics


def scan_updates(
    step: Step, config: Any, state: Any, start: jax.Array | int, length: int, extra: Extra | None = None
) -> tuple[Any, dict[str, jax.Array]]:
    """Updates ``start .. start + length - 1``; returns the state and metrics ``[length]``.

    ``extra(config, state, index)`` (e.g. a periodic evaluation) adds metrics after each update
    from its new state. Reports to the host every ``config.log_interval`` updates (see
    :mod:`purejaxlib.progress`).
    """

    def body(state, index):
        state, metrics = step(config, state, index)
        if extra is not None:
            metrics = {**metrics, **extra(config, state, index)}
        progress.report(index, config, metrics)
        return state, metrics

    return jax.lax.scan(body, state, start + jnp.arange(length, dtype=jnp.int32))


def train(
    init: Callable[[Any, jax.Array], Any], step: Step, config: Any, key: jax.Array
) -> tuple[Any, dict[str, jax.Array]]:
    """``init`` then all ``config.num_updates`` updates: ``(final state, metrics [num_updates])``."""
    return scan_updates(step, config, init(config, key), 0, config.num_updates)
