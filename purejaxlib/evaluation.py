"""Policy evaluation: complete episodes of a trained agent, jitted and vmapped over episodes.

``evaluate(config, state, key, episodes=16)`` works for every algorithm in purejaxlib.algos: it
looks up the algorithm's ``policy(config, state, deterministic=...)`` from the config's module.
``evaluate_sweep(result, key)`` evaluates every member of a sweep at once.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import numpy as np

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

    recurrent = hasattr(act, "initial_carry")  # a policy with memory: act(obs, key, carry, first)

    def one_step(carry, step_key):
        env_state, obs, returns, lengths, done, memory, first = carry
        act_key, env_key = jax.random.split(step_key)
        if recurrent:
            action, memory = act(obs, act_key, memory, first)
        else:
            action = act(obs, act_key)
        obs, env_state, reward, terminated, truncated, _ = env.step(env_key, env_state, action, env_params)
        live = ~done
        returns = returns + jnp.where(live, reward, 0.0)
        lengths = lengths + live.astype(jnp.int32)
        ended = terminated | truncated
        return (env_state, obs, returns, lengths, done | ended, memory, ended), None

    memory = act.initial_carry(episodes) if recurrent else None
    init = (env_state, obs, jnp.zeros(episodes), jnp.zeros(episodes, jnp.int32), jnp.zeros(episodes, bool), memory,
            jnp.ones(episodes, bool))
    (_, _, returns, lengths, done, _, _), _ = jax.lax.scan(one_step, init, jax.random.split(run_key, int(max_steps)))
    return Evaluation(returns, lengths, done)


def evaluate_sweep(result: Any, key: jax.Array, episodes: int = 16, *, deterministic: bool = True,
                   max_steps: int | None = None) -> Evaluation:
    """Evaluates every member of a :class:`purejaxlib.SweepResult` (one program per static point).

    Returns numpy arrays with the result's axes ``(grid..., seed)`` then ``[episodes]``. Member
    ``m`` of program ``p`` uses ``fold_in(fold_in(key, p), m)``, so members never share a key.
    """
    from purejaxlib.sweep import _assemble

    grid = {a: result.grid[a] for a in result.axes if a != "seed"}
    static_names = list(result.programs[0].get("static", {}))
    traced_names = [a for a in grid if a not in static_names]
    shape = tuple(len(grid[a]) for a in traced_names) + (len(result.grid["seed"]),)
    outputs = []
    for p, program in enumerate(result.programs):
        if "config" not in program:
            raise ValueError("this SweepResult holds no configs; make it with purejaxlib.sweep or run_experiment")
        flat = lambda tree: jax.tree.map(lambda x: x.reshape((-1,) + x.shape[len(shape):]), tree)
        keys = jax.vmap(lambda m: jax.random.fold_in(jax.random.fold_in(key, p), m))(np.arange(int(np.prod(shape))))
        run = jax.jit(jax.vmap(lambda c, s, k: evaluate(c, s, k, episodes, deterministic=deterministic, max_steps=max_steps)))
        out = run(flat(program["config"]), flat(program["state"]), keys)
        outputs.append({"metrics": {n: np.asarray(v).reshape(shape + (episodes,)) for n, v in out._asdict().items()}})
    placed = _assemble(outputs, grid, static_names, traced_names, len(result.grid["seed"]))
    return Evaluation(**placed)
