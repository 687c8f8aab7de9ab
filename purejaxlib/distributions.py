"""Action distributions for policy heads (distrax).

The policy samples a *raw* action that is stored in the rollout; :func:`to_env` maps it to what the
environment receives. For ``tanh_normal`` the raw action is the pre-squash Gaussian sample, so a
probability ratio needs only the Gaussian log-density: the tanh Jacobian cancels between old and
new policy, and no ``atanh`` of a saturated action is ever taken.

Kinds:
  ``categorical``  discrete actions; params are logits ``[..., num_actions]``.
  ``normal``       Gaussian, clipped into the bounds by the env's ClipAction wrapper.
  ``tanh_normal``  Gaussian squashed by tanh and rescaled into ``[low, high]``.

:func:`to_bounds` is the one rescaling from ``[-1, 1]`` to an env's bounds; the off-policy
learners, which store squashed actions, use it directly.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

KINDS = ("categorical", "normal", "tanh_normal")
CONTINUOUS_KINDS = ("normal", "tanh_normal")


def make(kind: str, mean_or_logits: jax.Array, log_std: jax.Array | None = None) -> distrax.Distribution:
    """The distribution over raw actions; continuous kinds are diagonal over the last axis."""
    if kind == "categorical":
        return distrax.Categorical(logits=mean_or_logits)
    if kind in CONTINUOUS_KINDS:
        if log_std is None:
            raise ValueError(f"distribution kind {kind!r} needs log_std")
        return distrax.MultivariateNormalDiag(mean_or_logits, jnp.exp(log_std))
    raise ValueError(f"unknown distribution kind {kind!r}; valid kinds: {KINDS}")


def to_env(kind: str, raw: jax.Array, low: jax.Array | None, high: jax.Array | None) -> jax.Array:
    """Maps a raw action to the env's action (identity except for ``tanh_normal``)."""
    if kind == "tanh_normal":
        if low is None or high is None:
            raise ValueError("distribution kind 'tanh_normal' needs the action bounds low and high")
        return to_bounds(jnp.tanh(raw), low, high)
    return raw


def to_bounds(action: jax.Array, low: ArrayLike, high: ArrayLike) -> jax.Array:
    """Rescales an action in ``[-1, 1]`` to ``[low, high]`` (all ``[..., A]``, broadcast)."""
    low, high = jnp.asarray(low), jnp.asarray(high)
    return low + (action + 1.0) * 0.5 * (high - low)


def from_bounds(action: jax.Array, low: ArrayLike, high: ArrayLike) -> jax.Array:
    """Inverse of :func:`to_bounds`: an action in ``[low, high]`` to ``[-1, 1]`` (clipped)."""
    low, high = jnp.asarray(low), jnp.asarray(high)
    return jnp.clip(2.0 * (action - low) / (high - low) - 1.0, -1.0, 1.0)
