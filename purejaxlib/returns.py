"""Advantage estimation that keeps termination and truncation apart."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp


def _check_rollout(fn: str, gamma: Any, lam: Any, **arrays: jax.Array) -> None:
    """``arrays`` are time-major ``[T, ...]`` (rank >= 1), all of one shape; ``gamma`` and ``lam``
    are scalars. Raises a ValueError naming the inputs and their shapes."""
    try:
        chex.assert_rank(list(arrays.values()), set(range(1, 9)))
        chex.assert_equal_shape(list(arrays.values()))
        chex.assert_rank([gamma, lam], 0)
    except AssertionError as err:
        shapes = ", ".join(
            f"{name} {tuple(jnp.shape(x))}" for name, x in {**arrays, "gamma": gamma, "lam": lam}.items()
        )
        raise ValueError(
            f"returns.{fn} takes time-major rollout arrays [T, ...] of one shape and scalar gamma and lam; got {shapes}"
        ) from err


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
    _check_rollout(
        "gae",
        gamma,
        lam,
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        truncated=truncated,
    )
    terminated = terminated.astype(values.dtype)
    episode_end = jnp.logical_or(terminated > 0, truncated).astype(values.dtype)
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    # The advantage trace must not leak across an episode boundary of either kind.
    trace_decay = gamma * lam * (1.0 - episode_end)

    def backward(carry, inputs):
        delta_t, decay_t = inputs
        adv_t = delta_t + decay_t * carry
        return adv_t, adv_t

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[0]), (deltas, trace_decay), reverse=True)
    return advantages, advantages + values


def q_lambda(
    rewards: jax.Array,
    next_q_max: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: jax.Array | float,
    lam: jax.Array | float,
) -> jax.Array:
    """Peng's Q(lambda) returns over a rollout, time-major (the PQN targets).

    ``G_t = r_t + gamma * (1 - terminated_t) * [(1 - lam) * max_a Q(s'_t, a) + lam * G_{t+1}]``,
    where ``G_{t+1}`` is replaced by ``max_a Q(s'_t, a)`` where the episode ended at ``t`` (the
    next step belongs to another episode) and after the last step (``G_T``), so a truncated step
    bootstraps fully from its final observation and a terminated one is just ``r_t``.

    Args:
      rewards: ``[T, ...]`` reward ``r_t`` for the transition out of ``s_t``.
      next_q_max: ``[T, ...]`` ``max_a Q(s'_t, a)`` of the true successor of ``s_t``: the next
        observation, or ``info["final_observation"]`` where the episode ended (before auto-reset).
      terminated: ``[T, ...]`` the episode ended in a terminal state: no bootstrap.
      truncated: ``[T, ...]`` the episode was cut by a time limit: bootstrap from ``next_q_max``.
      gamma, lam: discount and lambda (scalars, may be traced); ``lam=0`` gives one-step
        Q-learning targets, ``lam=1`` discounted returns bootstrapped only at cuts.

    Returns:
      ``[T, ...]`` lambda-returns ``G_t``.
    """
    _check_rollout(
        "q_lambda", gamma, lam, rewards=rewards, next_q_max=next_q_max, terminated=terminated, truncated=truncated
    )
    dtype = next_q_max.dtype
    continues = 1.0 - terminated.astype(dtype)
    episode_end = jnp.logical_or(terminated, truncated)

    def backward(next_return, inputs):
        r_t, q_t, continues_t, end_t = inputs
        # Past an episode boundary G_{t+1} is another episode's return: use the bootstrap alone.
        next_return = jnp.where(end_t, q_t, next_return)
        g_t = r_t + gamma * continues_t * ((1.0 - lam) * q_t + lam * next_return)
        return g_t, g_t

    _, returns = jax.lax.scan(backward, next_q_max[-1], (rewards, next_q_max, continues, episode_end), reverse=True)
    return returns


def rloo_advantages(returns: jax.Array) -> jax.Array:
    """REINFORCE leave-one-out advantages over a group axis: ``[K, ...] -> [K, ...]``.

    ``A_i = R_i - mean_{j != i} R_j`` (Ahmadian et al. 2024, "Back to Basics"), which equals
    ``K / (K - 1) * (R_i - mean_j R_j)``: zero-mean within each group, and zero where the group's
    returns are all equal. Needs ``K >= 2`` (a group of one has no other member to compare with).
    """
    k = returns.shape[0]
    if k < 2:
        raise ValueError(f"leave-one-out needs a group of at least 2 rollouts, got {k}")
    return (returns - returns.mean(axis=0)) * (k / (k - 1))


def group_advantages(returns: jax.Array, normalize_std: bool = True, eps: float = 1e-6) -> jax.Array:
    """Group-relative advantages (GRPO-style) over a group axis: ``[K, ...] -> [K, ...]``.

    ``A_i = R_i - mean_j R_j``, divided by the group's standard deviation when ``normalize_std``;
    a group of identical returns gets 0 (``eps`` keeps the division finite), never NaN.
    """
    centered = returns - returns.mean(axis=0)
    if normalize_std:
        centered = centered / (returns.std(axis=0) + eps)
    return centered


def returns_to_go(
    rewards: jax.Array, terminated: jax.Array, truncated: jax.Array, gamma: jax.Array | float
) -> jax.Array:
    """Discounted Monte Carlo returns within a rollout, time-major: ``[T, ...] -> [T, ...]``.

    ``G_t = r_t + gamma G_{t+1}``, restarting at every episode end (termination or truncation) and
    at the rollout's end, so no return mixes two episodes. Without a critic nothing is bootstrapped:
    REINFORCE's estimate of a truncated or unfinished episode is the reward seen so far.
    """
    episode_end = jnp.logical_or(terminated, truncated).astype(rewards.dtype)

    def backward(next_return, inputs):
        r_t, end_t = inputs
        g_t = r_t + gamma * (1.0 - end_t) * next_return
        return g_t, g_t

    _, out = jax.lax.scan(backward, jnp.zeros_like(rewards[0]), (rewards, episode_end), reverse=True)
    return out


def first_episode_mask(episode_done: jax.Array) -> jax.Array:
    """1.0 for the steps of each env's first episode in the rollout (its last step included), 0.0
    after it: ``[T, ...] bool -> [T, ...] float32``."""
    ended_before = jnp.cumsum(episode_done.astype(jnp.int32), axis=0) - episode_done.astype(jnp.int32)
    return (ended_before == 0).astype(jnp.float32)


def episode_returns_to_go(
    rewards: jax.Array, episode_done: jax.Array, gamma: jax.Array | float
) -> tuple[jax.Array, jax.Array]:
    """Returns-to-go of each env's first episode in a rollout that started at a reset, and its mask.

    ``rewards``, ``episode_done``: ``[T, ...]``. Returns ``(G [T, ...], mask [T, ...])`` with
    ``G_t = sum_{u >= t} gamma^(u-t) r_u`` over the first episode and 0 after it (where ``mask``
    is 0). The critic-free estimators compare these across rollouts at the same time step.
    """
    mask = first_episode_mask(episode_done)
    returns = returns_to_go(rewards * mask, episode_done, jnp.zeros_like(episode_done), gamma)
    return returns * mask, mask


def _over_groups(fn, values: jax.Array, group_size: int) -> jax.Array:
    """Applies ``fn`` (group axis first) to ``values [T, N]`` grouped as ``N / group_size``
    consecutive envs of ``group_size``: ``[T, N] -> [T, N]``."""
    t, n = values.shape
    grouped = values.reshape(t, n // group_size, group_size)
    return jnp.moveaxis(fn(jnp.moveaxis(grouped, 2, 0)), 0, 2).reshape(t, n)


def grouped_rloo_advantages(returns: jax.Array, group_size: int) -> jax.Array:
    """:func:`rloo_advantages` per time step within groups of consecutive envs: ``[T, N] -> [T, N]``."""
    return _over_groups(rloo_advantages, returns, group_size)


def grouped_group_advantages(returns: jax.Array, group_size: int, normalize_std: bool = True) -> jax.Array:
    """:func:`group_advantages` per time step within groups of consecutive envs: ``[T, N] -> [T, N]``."""
    return _over_groups(lambda r: group_advantages(r, normalize_std), returns, group_size)


def update_running_baseline(
    baseline: jax.Array, returns: jax.Array, mask: jax.Array, decay: jax.Array | float
) -> jax.Array:
    """Exponential running mean per time step of the masked returns: ``baseline [T]``,
    ``returns, mask [T, N] -> [T]``; a step no env reached keeps its old value."""
    count = mask.sum(axis=1)
    mean = (returns * mask).sum(axis=1) / jnp.maximum(count, 1.0)
    return jnp.where(count > 0, decay * baseline + (1.0 - decay) * mean, baseline)
