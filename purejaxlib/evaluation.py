"""Policy evaluation: complete episodes of a trained agent, jitted and vmapped over episodes.

``evaluate(config, state, key, episodes=16)`` works for every algorithm in purejaxlib.algos: it
looks up the algorithm's ``policy(config, state, deterministic=...)`` from the config's module.
``evaluate_sweep(result, key)`` evaluates every member of a sweep at once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxlib import envs as envs_lib


class Evaluation(NamedTuple):
    """Complete episodes (jax arrays from :func:`evaluate`, numpy from :func:`evaluate_sweep`)."""

    returns: jax.Array | np.ndarray  # [episodes] undiscounted return of each episode
    lengths: jax.Array | np.ndarray  # [episodes] int32
    finished: jax.Array | np.ndarray  # [episodes] bool: the episode ended within max_steps


def algorithm_module(config: Any) -> Any:
    """The algorithm module a config belongs to (its ``policy``, ``init``, ``step``...)."""
    module = importlib.import_module(type(config).__module__)
    if not hasattr(module, "policy"):
        raise TypeError(f"{type(config).__qualname__} comes from {module.__name__}, which has no policy(config, state)")
    return module


def evaluate(
    config: Any,
    state: Any,
    key: jax.Array,
    episodes: int = 16,
    *,
    deterministic: bool = True,
    max_steps: int | None = None,
) -> Evaluation:
    """Runs ``episodes`` episodes side by side, each from its own reset, until each ends once.

    ``max_steps`` bounds the scan (default: the env's ``max_steps_in_episode``); an episode still
    running then is reported with ``finished=False``. Jittable; vmap over ``state`` (with the
    config's traced leaves) to evaluate every member of a sweep at once. On a multi-agent env an
    episode's return is the mean over its agents of their returns (the team's, in shared-reward games).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env, env_params = envs_lib.from_config(config)
    if max_steps is None:
        max_steps = getattr(env_params, "max_steps_in_episode", None) or getattr(env, "max_steps_in_episode", None)
        if max_steps is None:
            raise ValueError(f"{config.env} has no max_steps_in_episode; pass max_steps")
    multiagent = bool(config.spec.agents)  # agent rows [episodes, A, ...]: the team's mean reward counts
    env = envs_lib.VecEnv(env if multiagent else envs_lib.FlattenObservation(env), episodes)
    act = algorithm_module(config).policy(config, state, deterministic=deterministic)
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
        obs, env_state, reward, terminated, truncated, info = env.step(env_key, env_state, action, env_params)
        ended = terminated | truncated
        if multiagent:
            reward, ended = reward.mean(-1), info["episode_end"][:, 0]
        live = ~done
        returns = returns + jnp.where(live, reward, 0.0)
        lengths = lengths + live.astype(jnp.int32)
        return (env_state, obs, returns, lengths, done | ended, memory, ended), None

    memory = act.initial_carry(episodes) if recurrent else None
    init = (
        env_state,
        obs,
        jnp.zeros(episodes),
        jnp.zeros(episodes, jnp.int32),
        jnp.zeros(episodes, bool),
        memory,
        jnp.ones(episodes, bool),
    )
    (_, _, returns, lengths, done, _, _), _ = jax.lax.scan(one_step, init, jax.random.split(run_key, int(max_steps)))
    return Evaluation(returns, lengths, done)


# Folded into a member's seed key for its periodic evaluations, so they never draw its training keys.
EVAL_STREAM = 0x45564C  # "EVL"


def eval_key(key: jax.Array, iteration: jax.Array | int) -> jax.Array:
    """The key of a periodic evaluation after ``iteration`` updates of the member seeded with ``key``."""
    return jax.random.fold_in(jax.random.fold_in(key, EVAL_STREAM), iteration)


def periodic(key: jax.Array, every: int, episodes: int = 16) -> Callable[[Any, Any, jax.Array], dict[str, jax.Array]]:
    """``(config, state, index) -> {"eval_return", "eval_length"}`` for the training loop.

    After update ``index`` (from 0), when ``index + 1`` is a multiple of ``every``, plays
    ``episodes`` deterministic episodes (:func:`evaluate` with key ``eval_key(key, index + 1)``)
    and gives their mean return and length; NaN otherwise. ``index`` must be unbatched (the scan
    index), so under ``vmap`` the ``cond`` stays a branch and skipped updates cost nothing.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1 update, got {every}")

    def run(config: Any, state: Any, index: jax.Array) -> dict[str, jax.Array]:
        iteration = index + 1

        def play() -> dict[str, jax.Array]:
            out = evaluate(config, state, eval_key(key, iteration), episodes, deterministic=True)
            return {"eval_return": out.returns.mean(), "eval_length": out.lengths.mean(dtype=jnp.float32)}

        def skip() -> dict[str, jax.Array]:
            return {"eval_return": jnp.float32(jnp.nan), "eval_length": jnp.float32(jnp.nan)}

        return jax.lax.cond(iteration % every == 0, play, skip)

    return run


def evaluate_sweep(
    result: Any, key: jax.Array, episodes: int = 16, *, deterministic: bool = True, max_steps: int | None = None
) -> Evaluation:
    """Evaluates every member of a :class:`purejaxlib.SweepResult` (one program per static point).

    Returns numpy arrays with the result's axes ``(grid..., seed)`` then ``[episodes]``. Member
    ``m`` of program ``p`` uses ``fold_in(fold_in(key, p), m)``, so members never share a key.
    """
    from purejaxlib.sweep import Job, assemble, execute, select_devices

    grid = {a: result.grid[a] for a in result.axes if a != "seed"}
    static_names = list(result.programs[0].get("static", {}))
    traced_names = [a for a in grid if a not in static_names]
    shape = tuple(len(grid[a]) for a in traced_names) + (len(result.grid["seed"]),)
    members = int(np.prod(shape))

    def begin(config_state: tuple[Any, Any], member_key: jax.Array) -> tuple[Evaluation, None]:
        config, state = config_state
        return evaluate(config, state, member_key, episodes, deterministic=deterministic, max_steps=max_steps), None

    job = Job(("evaluate", episodes, deterministic, max_steps), begin)
    outputs = []
    for p, program in enumerate(result.programs):
        if "config" not in program:
            raise ValueError("this SweepResult holds no configs; make it with purejaxlib.sweep or run_experiment")
        flat = lambda tree: jax.tree.map(lambda x: x.reshape((-1,) + x.shape[len(shape) :]), tree)
        program_key = jax.random.fold_in(key, p)
        keys = jax.vmap(lambda m, k=program_key: jax.random.fold_in(k, m))(np.arange(members))
        out = execute(job, (flat(program["config"]), flat(program["state"])), keys, devices=select_devices()).state
        outputs.append({"metrics": {n: np.asarray(v).reshape(shape + (episodes,)) for n, v in out._asdict().items()}})
    placed = assemble(outputs, grid, static_names, traced_names, len(result.grid["seed"]))
    return Evaluation(**placed)
