"""Exploration rules shared by the value-based learners (DQN, PQN)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def linear_schedule(
    start: jax.Array | float, end: jax.Array | float, fraction: jax.Array | float, progress: jax.Array | float
) -> jax.Array:
    """``start`` moving linearly to ``end`` over the first ``fraction`` of training, then flat.

    ``progress`` is the completed fraction of training in [0, 1]; all arguments may be traced.
    """
    t = jnp.clip(progress / jnp.maximum(fraction, 1e-8), 0.0, 1.0)
    return start + t * (end - start)


def epsilon_greedy(key: jax.Array, q_values: jax.Array, epsilon: ArrayLike) -> jax.Array:
    """Greedy actions of ``q_values [..., A]``, each replaced by a uniform one with prob. ``epsilon``.

    Returns int32 actions ``[...]``.
    """
    explore_key, action_key = jax.random.split(key)
    greedy = jnp.argmax(q_values, axis=-1).astype(jnp.int32)
    random = jax.random.randint(action_key, greedy.shape, 0, q_values.shape[-1], dtype=jnp.int32)
    explore = jax.random.uniform(explore_key, greedy.shape) < epsilon
    return jnp.where(explore, random, greedy)
