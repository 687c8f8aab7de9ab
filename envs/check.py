"""Conformance checker: does an env speak the gymnax 1.x protocol the way every algorithm assumes?

``check(env, params)`` runs an env under ``jit`` and ``vmap`` with random actions and raises
:class:`ConformanceError` listing every violated rule. All rollouts go through one compiled
program (a scan of steps, vmapped over keys *and* params), called twice, so the check costs one
compile plus, with ``compare_unbatched``, a second for the unbatched path.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from purejaxlib.envs.multiagent import MultiAgentConformanceError, check_multiagent

__all__ = ["check", "ConformanceError"]


class ConformanceError(AssertionError):
    """An env breaks the protocol; the message lists each broken rule."""


def _space_problems(space: Any, x: np.ndarray, what: str, tol: float) -> list[str]:
    """Rules on one observation batch ``[..., *space.shape]`` (a leading batch is allowed)."""
    if isinstance(space, spaces.Dict):
        return [p for k, sub in space.spaces.items() for p in _space_problems(sub, x[k], f"{what}[{k!r}]", tol)]
    if isinstance(space, spaces.Tuple):
        return [p for i, sub in enumerate(space.spaces) for p in _space_problems(sub, x[i], f"{what}[{i}]", tol)]
    x = np.asarray(x)
    shape = tuple(space.shape) if isinstance(space, spaces.Box) else ()
    if x.shape[x.ndim - len(shape) :] != shape:
        return [f"{what} has shape {x.shape[x.ndim - len(shape) :]} per env, the space says {shape}"]
    values = x.astype(np.float64)
    if isinstance(space, spaces.Discrete):
        n = int(np.asarray(space.n))
        if np.any((values < 0) | (values >= n) | (values != np.round(values))):
            return [f"{what} has values outside Discrete({n}): {np.unique(values)[:8].tolist()}"]
        return []
    if isinstance(space, spaces.Box):
        if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(values)):
            low_inf = np.all(np.isinf(np.asarray(space.low))) and np.all(np.isinf(np.asarray(space.high)))
            if not low_inf or np.any(np.isnan(values)):
                return [f"{what} is not finite"]
        low = np.broadcast_to(np.asarray(space.low, np.float64), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float64), shape)
        below, above = values < low - tol, values > high + tol
        if np.any(below | above):
            flat = values.reshape((-1,) + shape)
            index = tuple(np.argwhere((below | above).reshape(flat.shape))[0][1:].tolist())
            seen = flat[(slice(None),) + index]
            return [
                f"{what} leaves the observation space at index {list(index)}: values there in "
                f"[{seen.min():.4g}, {seen.max():.4g}], bounds [{low[index]:.4g}, {high[index]:.4g}]"
            ]
    return []


def _short_episode_params(params: Any, limit: int) -> tuple[Any, int | None, bool]:
    """Params with ``max_steps_in_episode`` lowered to ``limit`` (when the env has that field), so
    the rollout must truncate and auto-reset."""
    names = {f.name for f in dataclasses.fields(params)} if dataclasses.is_dataclass(params) else set()
    if "max_steps_in_episode" not in names:
        return params, None, False
    current = int(np.asarray(params.max_steps_in_episode))
    limit = min(current, limit)
    short = params.replace(max_steps_in_episode=np.asarray(limit, np.asarray(params.max_steps_in_episode).dtype))
    return short, limit, limit < current


def _episode_lengths(done: np.ndarray) -> np.ndarray:
    """``[envs, steps]`` length of the episode so far at each step (1 on an episode's first step)."""
    lengths = np.zeros(done.shape, np.int64)
    for e in range(done.shape[0]):
        run = 0
        for t in range(done.shape[1]):
            run += 1
            lengths[e, t] = run
            if done[e, t]:
                run = 0
    return lengths


def _episode_end_problems(obs, final_obs, terminated, truncated, limit, lowered, num_steps) -> list[str]:
    """Rules on how episodes end: truncation at the time limit, auto-reset, final observations."""
    problems = []
    done = np.logical_or(terminated, truncated)
    lengths = _episode_lengths(done)
    if limit is not None:
        if not done.any():
            problems.append(f"no episode ended within {num_steps} steps with max_steps_in_episode={limit}")
        elif lengths.max() > limit:
            problems.append(f"an episode ran {lengths.max()} steps with max_steps_in_episode={limit}")
        at_limit = lengths == limit
        # Only where the check lowered the limit: an env whose own limit is its natural episode
        # length (the two-step probe) terminates there, rightly.
        if lowered and limit >= 2 and at_limit.sum() >= 3 and not truncated[at_limit].any():
            problems.append(
                f"every episode that reached max_steps_in_episode={limit} ended as terminated, never truncated: "
                "a time limit must be reported as truncation (it is bootstrapped; termination is not)"
            )
    if limit is None or limit >= 2:
        both = truncated[:, 1:] & truncated[:, :-1]
        if both.any():
            problems.append("two consecutive steps are truncated: the env did not reset after truncation")
    leaves = jax.tree.leaves(obs)
    varies = any(np.ptp(np.asarray(x, np.float64)) > 0 for x in leaves)
    if done.any() and varies:
        same = [np.array_equal(a[done], b[done]) for a, b in zip(leaves, jax.tree.leaves(final_obs))]
        if all(same):
            problems.append(
                "on every step that ended an episode, info['final_observation'] equals the returned "
                "observation: either no auto-reset happened or final_observation is the post-reset one"
            )
    return problems


def _state_type_problems(env: Any, params: Any) -> list[str]:
    """A step must return a state of the same pytree structure, shapes and dtypes as it was
    given, or every repeated step in a Python loop would retrace. (Weak types are not compared:
    gymnax resets often hold Python floats, which costs one extra trace, not one per step.)"""
    key = jax.random.key(0)
    _, state = jax.eval_shape(env.reset, key, params)
    action = jax.eval_shape(env.action_space(params).sample, key)
    _, after, *_ = jax.eval_shape(env.step, key, state, action, params)

    def avals(tree):
        return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]

    (s0, l0), (s1, l1) = avals(state), avals(after)
    if s0 != s1:
        return [f"step returns a state of another pytree structure than reset's (retrace on every step): {s0} vs {s1}"]
    changed = [f"leaf {i}: {a} -> {b}" for i, (a, b) in enumerate(zip(l0, l1)) if a != b]
    if changed:
        return [f"step changes the state's shapes/dtypes (retrace on every step): {'; '.join(changed[:3])}"]
    return []


def _stack(tree: Any, n: int) -> Any:
    return jax.tree.map(lambda x: jnp.stack([jnp.asarray(x)] * n), tree)


def check(
    env: Any,
    params: Any,
    *,
    num_steps: int = 48,
    num_envs: int = 2,
    key: jax.Array | None = None,
    compare_unbatched: bool = True,
    compare_steps: int = 4,
    obs_tolerance: float = 1e-5,
) -> dict[str, Any]:
    """Checks ``env`` against the protocol and returns a few facts (episode ends seen, ...).

    Rules: reset/step run under ``jit`` and ``vmap`` over keys and over params; observations (and
    ``info["final_observation"]``) lie in the observation space; rewards are finite float scalars;
    ``terminated``/``truncated`` are bool scalars; ``final_observation`` equals the observation on
    steps that did not end an episode and (on envs whose observations vary) differs from the
    reset observation on steps that did; with a ``max_steps_in_episode`` param the env truncates
    within that many steps, reports the limit as truncation (not termination), and resets (never
    two truncations in a row); a step returns a state of the same structure, shapes and dtypes as
    it was given, and repeated calls do not retrace; the batched
    program gives the same numbers as the unbatched one over the first ``compare_steps`` steps.
    Raises :class:`ConformanceError`. A multi-agent env's agent rows (:class:`AgentRows`) are
    checked against the multi-agent protocol instead (:func:`check_multiagent`, ``num_envs *
    num_steps`` steps), and its :class:`MultiAgentConformanceError` is a ConformanceError too.
    """
    multiagent = getattr(env, "multiagent", None)
    if multiagent is not None:
        try:
            return check_multiagent(multiagent, params, num_steps=num_envs * num_steps, key=key)
        except MultiAgentConformanceError as err:
            raise ConformanceError(str(err)) from err
    problems: list[str] = []
    key = jax.random.key(0) if key is None else key
    params, limit, lowered = _short_episode_params(params, max(2, num_steps // 4))
    obs_space = env.observation_space(params)
    traces = [0]

    def rollout(key: jax.Array, params: Any):
        traces[0] += 1
        reset_key, key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, key):
            state = carry
            act_key, step_key = jax.random.split(key)
            action = env.action_space(params).sample(act_key)
            next_obs, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
            return state, (next_obs, reward, terminated, truncated, info["final_observation"])

        _, outs = jax.lax.scan(body, state, jax.random.split(key, num_steps))
        return obs, outs

    # First, since a scan over such a step fails with a less telling message.
    problems += _state_type_problems(env, params)
    if problems:
        raise ConformanceError(f"{getattr(env, 'name', type(env).__name__)} fails:\n  - " + "\n  - ".join(problems))
    batched = jax.jit(jax.vmap(rollout))
    keys = jax.random.split(key, num_envs)
    batch_params = _stack(params, num_envs)
    try:
        first = jax.block_until_ready(batched(keys, batch_params))
        jax.block_until_ready(batched(jax.random.split(jax.random.fold_in(key, 1), num_envs), batch_params))
    except Exception as err:
        raise ConformanceError(f"reset/step fail under jit and vmap over keys and params: {err!r}") from err
    if traces[0] != 1:
        problems.append(f"the rollout was traced {traces[0]} times for two calls with the same shapes (retrace)")

    obs0, (obs, reward, terminated, truncated, final_obs) = jax.tree.map(np.asarray, first)
    problems += _space_problems(obs_space, obs0, "reset observation", obs_tolerance)
    problems += _space_problems(obs_space, obs, "step observation", obs_tolerance)
    problems += _space_problems(obs_space, final_obs, "info['final_observation']", obs_tolerance)
    lead = (num_envs, num_steps)
    if reward.shape != lead or not np.issubdtype(reward.dtype, np.floating):
        problems.append(f"reward must be a float scalar per step, got dtype {reward.dtype} shape {reward.shape[2:]}")
    elif not np.all(np.isfinite(reward)):
        problems.append("rewards are not finite")
    for name, flag in (("terminated", terminated), ("truncated", truncated)):
        if flag.shape != lead or flag.dtype != np.bool_:
            problems.append(f"{name} must be a bool scalar per step, got dtype {flag.dtype} shape {flag.shape[2:]}")
    done = np.logical_or(terminated, truncated)
    if not problems:
        same = jax.tree.map(lambda a, b: np.array_equal(a[~done], b[~done], equal_nan=True), obs, final_obs)
        if not all(jax.tree.leaves(same)):
            problems.append(
                "info['final_observation'] differs from the observation on a step that did not end an episode"
            )
    episodes = int(done.sum())
    if not problems:
        problems += _episode_end_problems(obs, final_obs, terminated, truncated, limit, lowered, num_steps)
    if compare_unbatched and not problems:
        # Only the first steps: float differences between the batched and unbatched programs
        # grow without bound in chaotic dynamics (brax contacts), later steps prove nothing.
        first_steps = lambda x: x[:compare_steps]
        single = jax.tree.map(np.asarray, jax.jit(rollout)(keys[0], params))
        single = (single[0], jax.tree.map(first_steps, single[1]))
        batch0 = jax.tree.map(lambda x: x[0], (obs0, (obs, reward, terminated, truncated, final_obs)))
        batch0 = (batch0[0], jax.tree.map(first_steps, batch0[1]))
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batch0)):
            if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
                equal = np.array_equal(a, b)
            else:
                equal = np.allclose(a, b, rtol=1e-3, atol=1e-4, equal_nan=True)
            if not equal:
                problems.append("vmapped rollouts differ from the unbatched rollout with the same key")
                break
    if problems:
        name = getattr(env, "name", type(env).__name__)
        raise ConformanceError(f"{name} fails {len(problems)} rule(s):\n  - " + "\n  - ".join(problems))
    return {"episodes_ended": episodes, "steps": num_envs * num_steps, "max_steps_in_episode": limit}
