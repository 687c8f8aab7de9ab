"""Rollouts: ``lax.scan`` over time of a vectorized env driven by a policy function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Transition(NamedTuple):
    """One time step of a batch of envs; inside a trajectory every leaf gains a leading ``T``."""

    obs: jax.Array  # [N, obs_dim]
    action: jax.Array  # [N, ...] raw action as sampled (see purejaxlib.distributions)
    reward: jax.Array  # [N]
    terminated: jax.Array  # [N] bool
    truncated: jax.Array  # [N] bool
    final_obs: jax.Array  # [N, obs_dim] true successor of obs (before auto-reset)
    extras: Any  # policy outputs to keep, e.g. {"log_prob": [N], "value": [N]}
    episode_done: jax.Array  # [N] bool: an episode ended here
    episode_return: jax.Array  # [N] undiscounted return of the last finished episode
    episode_length: jax.Array  # [N]


class Memory(NamedTuple):
    """What a policy with memory carries between env steps."""

    carry: Any  # the policy's state before ``obs`` (e.g. a cell state [N, size])
    first: jax.Array  # [N] bool: ``obs`` opens an episode (the policy resets its state there)


PolicyFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array, Any]]
# (obs [N, obs_dim], first [N] bool or None, carry or None, key) -> (raw_action, env_action, extras, carry)
RecurrentPolicyFn = Callable[[jax.Array, Any, Any, jax.Array], tuple[jax.Array, jax.Array, Any, Any]]


def rollout(
    env: Any,
    env_params: Any,
    policy_fn: PolicyFn,
    env_state: Any,
    obs: jax.Array,
    key: jax.Array,
    num_steps: int,
) -> tuple[Any, jax.Array, Transition]:
    """Runs ``num_steps`` steps of a vectorized env (wrapped with EpisodeStatistics).

    ``policy_fn(obs [N, obs_dim], key) -> (raw_action, env_action, extras)``.
    Returns the final env state, the final observation and a time-major trajectory ``[T, N, ...]``.
    """
    stateless = lambda obs, first, carry, key: policy_fn(obs, key) + (None,)
    env_state, obs, _, trajectory = recurrent_rollout(env, env_params, stateless, env_state, obs, None, key, num_steps)
    return env_state, obs, trajectory


def recurrent_rollout(
    env: Any,
    env_params: Any,
    policy_fn: RecurrentPolicyFn,
    env_state: Any,
    obs: jax.Array,
    memory: Memory | None,
    key: jax.Array,
    num_steps: int,
) -> tuple[Any, jax.Array, Memory | None, Transition]:
    """:func:`rollout` for a policy that may have memory.

    Each step calls ``policy_fn(obs, first, carry, key) -> (raw_action, env_action, extras, carry)``
    with ``memory``'s fields; ``first`` of the next step is where this one ended an episode, so the
    policy can reset its state there. With ``memory=None`` (a policy without state) ``first`` and
    ``carry`` are None and the returned carry is ignored. Returns the final env state, observation
    and memory, and the trajectory ``[T, N, ...]``; step ``t``'s ``first`` is
    ``concat([first_0], episode_done[:-1])``.
    """

    def one_step(scan_carry, _):
        env_state, obs, memory, key = scan_carry
        key, act_key, env_key = jax.random.split(key, 3)
        carry, first = (None, None) if memory is None else memory
        raw_action, env_action, extras, carry = policy_fn(obs, first, carry, act_key)
        next_obs, env_state, reward, terminated, truncated, info = env.step(env_key, env_state, env_action, env_params)
        transition = Transition(
            obs=obs,
            action=raw_action,
            reward=reward.astype(jnp.float32),
            terminated=terminated,
            truncated=truncated,
            final_obs=info["final_observation"],
            extras=extras,
            episode_done=info["episode_done"],
            episode_return=info["episode_return"],
            episode_length=info["episode_length"],
        )
        memory = None if memory is None else Memory(carry, info["episode_done"])
        return (env_state, next_obs, memory, key), transition

    (env_state, obs, memory, _), trajectory = jax.lax.scan(one_step, (env_state, obs, memory, key), None, num_steps)
    return env_state, obs, memory, trajectory


def masked_mean(values: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean of ``values`` where ``mask`` is 1 (same shapes; None: everywhere); 0 when the mask is
    empty (never NaN, so it is safe inside a loss and its gradient)."""
    if mask is None:
        return values.mean()
    return (values * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def episode_metrics(trajectory: Transition) -> dict[str, jax.Array]:
    """Mean return and length of the episodes that ended in ``trajectory``.

    When none ended, the mean over envs of each env's last finished episode is reported, and
    NaN until any episode has finished (a 0 there would read as a real return).
    """
    done = trajectory.episode_done.astype(jnp.float32)
    count = done.sum()
    finished = (trajectory.episode_length[-1] > 0).astype(jnp.float32)  # any episode so far
    ended_return = masked_mean(trajectory.episode_return, done)
    ended_length = masked_mean(trajectory.episode_length, done)
    last_return = masked_mean(trajectory.episode_return[-1], finished)
    last_length = masked_mean(trajectory.episode_length[-1], finished)
    any_finished = finished.sum() > 0
    return {
        "episode_return": jnp.where(count > 0, ended_return, jnp.where(any_finished, last_return, jnp.nan)),
        "episode_length": jnp.where(count > 0, ended_length, jnp.where(any_finished, last_length, jnp.nan)),
        "episodes": count,
    }
