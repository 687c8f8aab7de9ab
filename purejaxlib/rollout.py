"""Rollouts: ``lax.scan`` over time of a vectorized env driven by a policy function."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

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


PolicyFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array, Any]]
# (obs [N, obs_dim], first [N] bool, policy_state, key) -> (raw_action, env_action, extras, policy_state)
RecurrentPolicyFn = Callable[[jax.Array, jax.Array, Any, jax.Array], tuple[jax.Array, jax.Array, Any, Any]]


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
    first = jnp.zeros(obs.shape[:1], bool)
    stateless = lambda obs, first, policy_state, key: policy_fn(obs, key) + (policy_state,)
    env_state, obs, _, trajectory = recurrent_rollout(
        env, env_params, stateless, env_state, obs, (None, first), key, num_steps
    )
    return env_state, obs, trajectory


def recurrent_rollout(
    env: Any,
    env_params: Any,
    policy_fn: RecurrentPolicyFn,
    env_state: Any,
    obs: jax.Array,
    memory: tuple[Any, jax.Array],
    key: jax.Array,
    num_steps: int,
) -> tuple[Any, jax.Array, tuple[Any, jax.Array], Transition]:
    """:func:`rollout` for a policy with memory.

    ``memory = (policy_state, first)``: the policy's state before ``obs`` and ``first [N]`` (``obs``
    opens an episode). Each step calls ``policy_fn(obs, first, policy_state, key) -> (raw_action,
    env_action, extras, policy_state)``; ``first`` of the next step is where this one ended an
    episode, so the policy can reset its state there. Returns the final env state, observation and
    memory, and the trajectory ``[T, N, ...]``; step ``t``'s ``first`` is
    ``concat([first_0], episode_done[:-1])``.
    """

    def one_step(carry, _):
        env_state, obs, policy_state, first, key = carry
        key, act_key, env_key = jax.random.split(key, 3)
        raw_action, env_action, extras, policy_state = policy_fn(obs, first, policy_state, act_key)
        next_obs, env_state, reward, terminated, truncated, info = env.step(
            env_key, env_state, env_action, env_params
        )
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
        return (env_state, next_obs, policy_state, info["episode_done"], key), transition

    policy_state, first = memory
    (env_state, obs, policy_state, first, _), trajectory = jax.lax.scan(
        one_step, (env_state, obs, policy_state, first, key), None, num_steps
    )
    return env_state, obs, (policy_state, first), trajectory


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``values`` where ``mask`` is 1 (same shapes); NaN when the mask is empty."""
    count = mask.sum()
    return jnp.where(count > 0, (values * mask).sum() / jnp.maximum(count, 1.0), jnp.nan)


def episode_metrics(trajectory: Transition) -> dict[str, jax.Array]:
    """Mean return and length of the episodes that ended in ``trajectory``.

    When none ended, the mean over envs of each env's last finished episode is reported, and
    NaN until any episode has finished (a 0 there would read as a real return).
    """
    done = trajectory.episode_done.astype(jnp.float32)
    count = done.sum()
    finished = (trajectory.episode_length[-1] > 0).astype(jnp.float32)  # any episode so far
    ended_return = _masked_mean(trajectory.episode_return, done)
    ended_length = _masked_mean(trajectory.episode_length, done)
    last_return = _masked_mean(trajectory.episode_return[-1], finished)
    last_length = _masked_mean(trajectory.episode_length[-1], finished)
    return {
        "episode_return": jnp.where(count > 0, ended_return, last_return),
        "episode_length": jnp.where(count > 0, ended_length, last_length),
        "episodes": count,
    }
