"""Policy objectives of the on-policy learner, one per method, each a per-sample surrogate to
*maximize* (the learner minimizes minus its mean). Tested against plain references in
tests/test_objectives.py.

All take the probability ratio ``r = pi(a|s) / pi_old(a|s)`` of the sampled actions and their
advantages ``A`` (both ``[B]``). In the Mirror Learning view (Kuba et al.; Lu et al. 2022) an
objective is ``r A - drift(r, A)`` with a drift that is >= 0 and zero, with zero gradient, at
``r = 1``; PPO-clip and DPO are such drifts, and a user-supplied drift plugs in the same way.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Drift = Callable[[jax.Array, jax.Array], jax.Array]  # (ratio [B], advantages [B]) -> drift [B], >= 0

OBJECTIVES = ("ppo", "a2c", "mdpo", "dpo", "drift")


def ppo_clip(ratio: jax.Array, advantages: jax.Array, clip_eps: jax.Array | float) -> jax.Array:
    """PPO's clipped surrogate ``min(r A, clip(r, 1 - eps, 1 + eps) A)``: ``[B] -> [B]``."""
    return jnp.minimum(ratio * advantages, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages)


def policy_gradient(log_prob: jax.Array, advantages: jax.Array) -> jax.Array:
    """The vanilla policy-gradient (A2C, REINFORCE) surrogate ``log pi(a|s) A``: ``[B] -> [B]``.

    Its gradient is ``A grad log pi``, which is the gradient of ``r A`` (and of PPO's clipped
    surrogate) at ``r = 1``: so one PPO step on fresh data is an A2C step.
    """
    return log_prob * advantages


def dpo_drift(ratio: jax.Array, advantages: jax.Array, alpha: jax.Array | float = 2.0,
              beta: jax.Array | float = 0.6) -> jax.Array:
    """Discovered Policy Optimisation's closed-form drift (Lu et al. 2022), ``[B] -> [B]``:

    ``relu((r - 1) A - alpha tanh((r - 1) A / alpha))`` where ``A >= 0``, and
    ``relu(log(r) A - beta tanh(log(r) A / beta))`` where ``A < 0``; the published defaults are
    ``alpha = 2``, ``beta = 0.6``.
    """
    positive = (ratio - 1.0) * advantages
    negative = jnp.log(ratio) * advantages
    drift_pos = jax.nn.relu(positive - alpha * jnp.tanh(positive / alpha))
    drift_neg = jax.nn.relu(negative - beta * jnp.tanh(negative / beta))
    return jnp.where(advantages >= 0, drift_pos, drift_neg)


def mirror(ratio: jax.Array, advantages: jax.Array, drift: Drift) -> jax.Array:
    """The Mirror Learning surrogate ``r A - drift(r, A)``: ``[B] -> [B]``."""
    return ratio * advantages - drift(ratio, advantages)


def mdpo_kl_coef(update: jax.Array, num_updates: int, step_size: jax.Array | float) -> jax.Array:
    """MDPO's proximity weight ``1 / t_k`` with the annealed step size ``t_k = t_0 (1 - k / K)``.

    ``update`` is ``k`` (updates done, from 0) and ``num_updates`` is ``K``, so ``t_k`` falls from
    ``t_0`` to ``t_0 / K`` and the weight grows from ``1 / t_0`` to ``K / t_0``: later policies
    move less (Tomar et al., on-policy MDPO).
    """
    remaining = 1.0 - jnp.asarray(update, jnp.float32) / num_updates
    return 1.0 / (step_size * remaining)
