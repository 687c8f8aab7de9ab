"""Optimizer construction: Adam with global-norm clipping and optional linear LR annealing."""

from __future__ import annotations

import jax
import optax


def make_optimizer(
    lr: jax.Array | float,
    max_grad_norm: jax.Array | float,
    *,
    eps: float = 1e-5,
    anneal_steps: int | None = None,
) -> optax.GradientTransformation:
    """``clip_by_global_norm(max_grad_norm)`` then Adam.

    With ``anneal_steps`` the learning rate falls linearly from ``lr`` to 0 over that many
    optimizer updates. ``lr`` and ``max_grad_norm`` may be traced values, so one compiled program
    serves a sweep over them.
    """
    learning_rate = optax.linear_schedule(lr, 0.0, anneal_steps) if anneal_steps else lr
    return optax.chain(
        optax.clip_by_global_norm(max_grad_norm),
        optax.adam(learning_rate, eps=eps),
    )
