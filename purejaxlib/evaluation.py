"""Policy evaluation: complete episodes of a trained agent, jitted and vmapped over episodes.

``evaluate(config, state, key, episodes=16)`` works for every algorithm in purejaxlib.algos: it
looks up the algorithm's ``policy(config, state, deterministic=...)`` from the config's module.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxlib import envs as envs_lib


class Evaluation(NamedTuple):
    returns: jax.Array  # [episodes] undiscounted return of each episode
    lengths: jax.Array  # [episodes] int32
    finished: jax.Array  # [episodes] bool: the episode ended within max_steps


def _algorithm(config: Any):
    module = importlib.import_module(type(config).__module__)
    if not hasattr(module, "policy"):
        raise TypeError(f"{type(config).__qualname__} comes from {module.__name__}, which has no policy(config, state)")
    return module


def evaluate(config: Any, state: Any, key: jax.Array, episodes: int = 16, *, deterministic: bool = True,
             max_steps: int | None = None) -> Evaluation:
    """Runs ``episodes`` episodes side by side, each from its own reset, until each ends once.

    ``max_steps`` bounds the scan (default: the env's ``max_steps_in_episode``); an episode still
    running then is reported with ``finished=False``. Jittable; vmap over ``state`` (with the
    config's traced leaves) to evaluate every member of a sweep at once.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env, env_params = envs_lib.from_config(config)
    if max_steps is None:
        max_steps = getattr(env_params, "max_steps_in_episode", None)
        if max_steps is None:
            raise ValueError(f"{config.env} has no max_steps_in_episode; pass max_steps")
    env = envs_lib.VecEnv(envs_lib.FlattenObservation(env), episodes)
    act = _algorithm(config).policy(config, state, deterministic=deterministic)
    reset_key, run_key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, env_params)

    def one_step(carry, step_key):
        env_state, obs, returns, lengths, done = carry
        act_key, env_key = jax.random.split(step_key)
        action = act(obs, act_key)
        obs, env_state, reward, terminated, truncated, _ = env.step(env_key, env_state, action, env_params)
        live = ~done
        returns = returns + jnp.where(live, reward, 0.0)
        lengths = lengths + live.astype(jnp.int32)
        return (env_state, obs, returns, lengths, done | terminated | truncated), None

    init = (env_state, obs, jnp.zeros(episodes), jnp.zeros(episodes, jnp.int32), jnp.zeros(episodes, bool))
    (_, _, returns, lengths, done), _ = jax.lax.scan(one_step, init, jax.random.split(run_key, int(max_steps)))
    return Evaluation(returns, lengths, done)
