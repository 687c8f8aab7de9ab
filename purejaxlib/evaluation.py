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
    final_info: dict[str, Any] = {}  # noqa: RUF012 (never mutated)  name -> [episodes]: info on each episode's last step


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
    record: tuple[str, ...] = (),
) -> Evaluation:
    """Runs ``episodes`` episodes side by side, each from its own reset, until each ends once.

    ``max_steps`` bounds the loop (default: the env's ``max_steps_in_episode``); an episode still
    running then is reported with ``finished=False``; the loop stops as soon as every episode has
    ended. Jittable; vmap over ``state`` (with the config's traced leaves) to evaluate every member
    of a sweep at once. On a multi-agent env an episode's return is the mean over its agents of
    their returns (the team's, in shared-reward games). ``record``: prefixes of ``info`` entries to
    keep from each episode's last step (``final_info``; e.g. ``("Achievements/",)`` on Craftax).
    A gymnax env is stepped without computing resets after an episode ends (:class:`envs.PendingReset`).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env, env_params = envs_lib.from_config(config)
    if max_steps is None:
        max_steps = getattr(env_params, "max_steps_in_episode", None) or getattr(env, "max_steps_in_episode", None)
        if max_steps is None:
            raise ValueError(f"{config.env} has no max_steps_in_episode; pass max_steps")
    multiagent = bool(config.spec.agents)  # agent rows [episodes, A, ...]: the team's mean reward counts
    if not multiagent:
        env = envs_lib.FlattenObservation(without_resets(env))
    env = envs_lib.VecEnv(env, episodes)
    act = algorithm_module(config).policy(config, state, deterministic=deterministic)
    reset_key, run_key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, env_params)
    step_keys = jax.random.split(run_key, int(max_steps))

    recurrent = hasattr(act, "initial_carry")  # a policy with memory: act(obs, key, carry, first)

    def one_step(carry: tuple) -> tuple[tuple, dict[str, Any]]:
        t, env_state, obs, returns, lengths, done, memory, first, kept = carry
        act_key, env_key = jax.random.split(step_keys[t])
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
        kept = {k: jnp.where(live & ended, jnp.asarray(info[k], jnp.float32), v) for k, v in kept.items()}
        return (t + 1, env_state, obs, returns, lengths, done | ended, memory, ended, kept), info

    memory = act.initial_carry(episodes) if recurrent else None
    zeros = jnp.zeros(episodes)
    init: tuple[Any, ...] = (
        jnp.int32(0),
        env_state,
        obs,
        zeros,
        zeros.astype(jnp.int32),
        zeros.astype(bool),
        memory,
        ~zeros.astype(bool),
        {},
    )
    if record:
        info = jax.eval_shape(lambda: one_step(init)[1])
        names = sorted(k for k in info if any(k.startswith(prefix) for prefix in record))
        if not names:
            raise ValueError(f"record={record}: no info entry of {config.env} starts with these; it has {sorted(info)}")
        init = init[:-1] + ({k: jnp.full(episodes, jnp.nan, jnp.float32) for k in names},)
    running = lambda carry: (carry[0] < max_steps) & ~jnp.all(carry[5])
    _, _, _, returns, lengths, done, _, _, kept = jax.lax.while_loop(running, lambda c: one_step(c)[0], init)
    return Evaluation(returns, lengths, done, kept)


def without_resets(env: Any) -> Any:
    """``env`` stepped without computing a reset when an episode ends (evaluation plays each
    episode once), where it is a gymnax env; unchanged otherwise."""
    try:
        return envs_lib.PendingReset(env)
    except ValueError:
        return env


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
        fields = ("returns", "lengths", "finished")
        outputs.append({"metrics": {n: np.asarray(getattr(out, n)).reshape(shape + (episodes,)) for n in fields}})
    placed = assemble(outputs, grid, static_names, traced_names, len(result.grid["seed"]))
    return Evaluation(placed["returns"], placed["lengths"], placed["finished"])
