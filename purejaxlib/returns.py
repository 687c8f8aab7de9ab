"""Advantage estimation that keeps termination and truncation apart."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: jax.Array | float,
    lam: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """Generalized advantage estimation over a rollout, time-major.

    Args:
      rewards: ``[T, ...]`` reward ``r_t`` for the transition out of ``s_t``.
      values: ``[T, ...]`` ``V(s_t)``.
      next_values: ``[T, ...]`` ``V(s'_t)`` of the true successor of ``s_t``: the next
        observation, or ``info["final_observation"]`` where the episode ended (before auto-reset).
      terminated: ``[T, ...]`` the episode ended in a terminal state: no bootstrap.
      truncated: ``[T, ...]`` the episode was cut by a time limit: bootstrap from ``next_values``.
      gamma, lam: discount and GAE lambda (scalars, may be traced).

    Returns:
      ``(advantages, value_targets)``, both ``[T, ...]``; targets are ``advantages + values``.
    """
    terminated = terminated.astype(values.dtype)
    episode_end = jnp.logical_or(terminated > 0, truncated).astype(values.dtype)
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    # The advantage trace must not leak across an episode boundary of either kind.
    trace_decay = gamma * lam * (1.0 - episode_end)

    def backward(carry, inputs):
        delta_t, decay_t = inputs
        adv_t = delta_t + decay_t * carry
        return adv_t, adv_t

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(values[0]), (deltas, trace_decay), reverse=True
    )
    return advantages, advantages + values
