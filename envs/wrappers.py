"""Wrappers on the gymnax 1.x protocol.

Single-env wrappers keep the protocol ``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``.
:class:`VecEnv` vmaps a single env over ``num_envs``; the normalization wrappers sit on top of a
``VecEnv`` because their statistics are shared by the whole batch.

Every wrapper that changes observations also changes ``info["final_observation"]`` the same way,
so a value bootstrapped on truncation sees what the agent would have seen.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purejaxlib.normalization import RunningStats, init_stats, normalize, update_stats


class Wrapper:
    """Forwards everything not overridden to the wrapped env."""

    transparent_step: ClassVar[bool] = False
    """True where ``step`` is the wrapped env's step but for dtypes and eager checks, so
    :class:`PendingReset` may step the gymnax env underneath directly."""

    def __init__(self, env: Any):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    @property
    def unwrapped(self) -> Any:
        return getattr(self._env, "unwrapped", self._env)


class FlattenObservation(Wrapper):
    """Reshapes observations to 1-D ``[obs_dim]`` float32 vectors."""

    def observation_space(self, params: Any) -> spaces.Box:
        inner = self._env.observation_space(params)
        size = math.prod(inner.shape)
        return spaces.Box(
            jnp.broadcast_to(inner.low, inner.shape).reshape(-1).astype(jnp.float32),
            jnp.broadcast_to(inner.high, inner.shape).reshape(-1).astype(jnp.float32),
            (size,),
            jnp.float32,
        )

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self._env.reset(key, params)
        return jnp.reshape(obs, (-1,)).astype(jnp.float32), state

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {**info, "final_observation": jnp.reshape(info["final_observation"], (-1,)).astype(jnp.float32)}
        return jnp.reshape(obs, (-1,)).astype(jnp.float32), state, reward, terminated, truncated, info


@struct.dataclass
class EpisodeStatsState:
    env_state: Any
    episode_return: jax.Array  # running return of the current episode
    episode_length: jax.Array
    last_return: jax.Array  # return of the most recent finished episode
    last_length: jax.Array


class EpisodeStatistics(Wrapper):
    """Tracks undiscounted episode return and length.

    ``info["episode_done"]`` marks steps where an episode ended (terminated or truncated; for agent
    rows, where the whole episode ended: ``info["episode_end"]``, since an agent can end before it);
    ``info["episode_return"]`` / ``info["episode_length"]`` hold that episode's totals there,
    and the last finished episode's totals elsewhere.
    """

    def reset(self, key, params):
        obs, env_state = self._env.reset(key, params)
        shape = (len(getattr(self._env, "agents", ())),) if getattr(self._env, "agents", ()) else ()  # agent rows
        zero_f, zero_i = jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.int32)
        return obs, EpisodeStatsState(env_state, zero_f, zero_i, zero_f, zero_i)

    def step(self, key, state: EpisodeStatsState, action, params):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        done = info["episode_end"] if "episode_end" in info else jnp.logical_or(terminated, truncated)
        ep_return = state.episode_return + reward.astype(jnp.float32)
        ep_length = state.episode_length + 1
        last_return = jnp.where(done, ep_return, state.last_return)
        last_length = jnp.where(done, ep_length, state.last_length)
        new_state = EpisodeStatsState(
            env_state,
            jnp.where(done, 0.0, ep_return),
            jnp.where(done, 0, ep_length),
            last_return,
            last_length,
        )
        info = {**info, "episode_done": done, "episode_return": last_return, "episode_length": last_length}
        return obs, new_state, reward, terminated, truncated, info


class ClipAction(Wrapper):
    """Clips continuous actions into the action space's bounds before the env sees them."""

    def step(self, key, state, action, params):
        space = self._env.action_space(params)
        return self._env.step(key, state, jnp.clip(action, space.low, space.high), params)


class VecEnv(Wrapper):
    """``num_envs`` copies of a single env, stepped together with ``vmap``; params are shared.

    With ``group_size > 1`` a reset gives each run of ``group_size`` consecutive envs one reset key,
    so a group starts from the same state (group-relative advantages); steps still get one key per env.

    With ``reset_pool = k > 0`` (the env stack must have :class:`PendingReset` innermost) each batch
    step makes ``k`` fresh starts and hands them to envs whose episode ended, instead of every env
    computing a reset on every step (gymnax's auto-reset evaluates both branches under ``vmap``):
    for suites whose reset is costly (Craftax generates a world) this is most of the step's cost.
    An env whose episode ends starts its next one at once from the start it holds; the envs that
    used theirs get new ones, ``k`` a step, in a randomly rotated order. If more than ``k`` envs
    end on one step, the rest get theirs on the next steps (an env that ends again before then
    starts from its held start again). Craftax's own PPO does the same ("optimistic resets").
    """

    def __init__(self, env: Any, num_envs: int, group_size: int = 1, reset_pool: int = 0):
        super().__init__(env)
        if group_size < 1 or num_envs % group_size:
            raise ValueError(f"group_size={group_size} must be >= 1 and divide num_envs={num_envs}")
        if reset_pool < 0 or reset_pool > num_envs:
            raise ValueError(f"reset_pool={reset_pool} must be between 0 (off) and num_envs={num_envs}")
        if reset_pool and group_size > 1:
            raise ValueError(f"reset_pool={reset_pool} cannot be used with group_size={group_size} (grouped resets)")
        if reset_pool and not callable(getattr(env, "fresh_starts", None)):
            raise ValueError(f"reset_pool={reset_pool} needs PendingReset innermost in the env stack")
        self.num_envs = num_envs
        self.group_size = group_size
        self.reset_pool = reset_pool

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        keys = jax.random.split(key, self.num_envs // self.group_size)
        if self.group_size > 1:
            keys = jnp.repeat(keys, self.group_size, axis=0)
        return jax.vmap(self._env.reset, in_axes=(0, None))(keys, params)

    def step(self, key, state, action, params):
        """``action`` is ``[num_envs, ...]``; outputs carry a leading ``num_envs`` axis."""
        if not self.reset_pool:
            keys = jax.random.split(key, self.num_envs)
            return jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
        step_key, pool_key, order_key = jax.random.split(key, 3)
        keys = jax.random.split(step_key, self.num_envs)
        obs, state, reward, terminated, truncated, info = jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(
            keys, state, action, params
        )
        starts = self._env.fresh_starts(pool_key, params, self.reset_pool)
        offset = jax.random.randint(order_key, (), 0, self.num_envs)
        state = jax.tree.map(
            lambda node: hand_out_starts(node, starts, offset) if isinstance(node, PendingResetState) else node,
            state,
            is_leaf=lambda node: isinstance(node, PendingResetState),
        )
        return obs, state, reward, terminated, truncated, info


@struct.dataclass
class PendingResetState:
    env_state: Any  # the env's state
    start_obs: Any  # the first observation of this env's next episode (the env's own form)
    start_state: Any  # and its state
    used: jax.Array  # bool: the held start began an episode; a fresh one is due


class PendingReset(Wrapper):
    """A gymnax env whose auto-reset takes the start its state holds instead of computing a reset.

    Goes innermost in a stack under ``VecEnv(..., reset_pool=k)``, which refills the held starts
    (:meth:`fresh_starts`); on its own every episode would begin from the same held start. Steps
    the gymnax ``Environment`` (``step_env``/``reset_env``/``is_truncated``) under ``env``'s
    wrappers with ``transparent_step`` (:func:`purejaxlib.envs.make`'s action check and gymnax
    fixes: the reward is cast to float32 here); ``terminated``, ``truncated`` and ``info`` are as
    gymnax's ``step`` gives them (``final_observation`` is the observation the episode ended on).
    """

    def __init__(self, env: Any):
        super().__init__(env)
        core = env
        while isinstance(core, Wrapper) and core.transparent_step:
            core = core._env
        if not isinstance(core, environment.Environment):
            name = getattr(env, "name", type(core).__name__)
            raise ValueError(f"{name}: a reset pool needs a gymnax Environment (step_env, reset_env, is_truncated)")
        self._core = core  # stepped directly; everything else is asked of ``env``

    def reset(self, key: jax.Array, params: Any) -> tuple[Any, PendingResetState]:
        first, held = jax.random.split(key)
        obs, env_state = self._core.reset_env(first, params)
        start_obs, start_state = self._core.reset_env(held, params)
        return obs, PendingResetState(env_state, start_obs, start_state, jnp.bool_(False))

    def step(self, key, state: PendingResetState, action, params):
        obs, env_state, reward, terminated, info = self._core.step_env(key, state.env_state, action, params)
        reward = jnp.asarray(reward, jnp.float32)
        truncated = self._core.is_truncated(env_state, params)
        done = jnp.logical_or(terminated, truncated)
        pick = lambda start, stepped: jax.lax.select(done, start, stepped)
        next_state = jax.tree.map(pick, state.start_state, env_state)
        next_obs = jax.tree.map(pick, state.start_obs, obs)
        info = {**info, "terminated": terminated, "truncated": truncated, "final_observation": obs}
        new = PendingResetState(next_state, state.start_obs, state.start_state, jnp.logical_or(state.used, done))
        return next_obs, new, reward, terminated, truncated, info

    def fresh_starts(self, key: jax.Array, params: Any, n: int) -> tuple[Any, Any]:
        """``n`` new episodes' first observations and states, each with a leading ``[n]`` axis."""
        return jax.vmap(self._core.reset_env, in_axes=(0, None))(jax.random.split(key, n), params)


def hand_out_starts(node: PendingResetState, starts: tuple[Any, Any], offset: jax.Array) -> PendingResetState:
    """Gives the ``k`` fresh ``starts`` (leading ``[k]``) to the first ``k`` envs of the batch
    ``node`` (leading ``[num_envs]``) whose held start was used, counting from env ``offset``."""
    used = node.used
    n, k = used.shape[0], jax.tree.leaves(starts)[0].shape[0]
    rank = jnp.roll(jnp.cumsum(jnp.roll(used, -offset)) - 1, offset)  # order among the used envs
    take = jnp.logical_and(used, rank < k)
    index = jnp.clip(rank, 0, k - 1)

    def give(fresh: jax.Array, held: jax.Array) -> jax.Array:
        return jnp.where(take.reshape((n,) + (1,) * (held.ndim - 1)), fresh[index], held)

    start_obs, start_state = starts
    return PendingResetState(
        node.env_state,
        jax.tree.map(give, start_obs, node.start_obs),
        jax.tree.map(give, start_state, node.start_state),
        jnp.logical_and(used, jnp.logical_not(take)),
    )


@struct.dataclass
class NormObsState:
    env_state: Any
    stats: RunningStats


class NormalizeObservation(Wrapper):
    """Normalizes batched observations by running statistics shared over the env batch."""

    def reset(self, key, params):
        obs, env_state = self._env.reset(key, params)
        stats = update_stats(init_stats(obs.shape[1:]), obs)
        return normalize(stats, obs), NormObsState(env_state, stats)

    def step(self, key, state: NormObsState, action, params):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        stats = update_stats(state.stats, obs)
        info = {**info, "final_observation": normalize(stats, info["final_observation"])}
        return normalize(stats, obs), NormObsState(env_state, stats), reward, terminated, truncated, info


@struct.dataclass
class NormRewardState:
    env_state: Any
    discounted_return: jax.Array  # [num_envs]
    stats: RunningStats


class NormalizeReward(Wrapper):
    """Scales batched rewards by the running std of the discounted return (not centred).

    ``gamma`` may be a traced value: this wrapper is built inside the training function.
    """

    def __init__(self, env: Any, gamma: jax.Array | float):
        super().__init__(env)
        self.gamma = gamma

    def reset(self, key, params):
        obs, env_state = self._env.reset(key, params)
        n = obs.shape[0]
        return obs, NormRewardState(env_state, jnp.zeros((n,), jnp.float32), init_stats(()))

    def step(self, key, state: NormRewardState, action, params):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        ret = state.discounted_return * self.gamma + reward
        stats = update_stats(state.stats, ret)
        scaled = reward / jnp.sqrt(stats.var + 1e-8)
        new_state = NormRewardState(env_state, jnp.where(done, 0.0, ret), stats)
        return obs, new_state, scaled, terminated, truncated, info


def describe_space(space: Any) -> str:
    """A short text form of a gymnax space, e.g. ``Discrete(2)`` or ``Box([-2.0], [2.0], (1,))``."""
    if isinstance(space, spaces.Discrete):
        return f"Discrete({int(np.asarray(space.n))})"
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape)
        if not _is_concrete((space.low, space.high)):
            return f"Box(shape={shape})"
        low, high = np.asarray(space.low), np.asarray(space.high)
        if low.size > 1 and np.all(low == low.flat[0]) and np.all(high == high.flat[0]):
            low, high = low.flat[0], high.flat[0]
        return f"Box({np.round(low, 4).tolist()}, {np.round(high, 4).tolist()}, {shape})"
    return type(space).__name__


def action_problem(space: Any, action: Any) -> str | None:
    """Why a concrete ``action`` is outside ``space`` (a description), or None when it is inside."""
    action = np.asarray(action)
    if isinstance(space, spaces.Discrete):
        n = int(np.asarray(space.n))
        if action.shape != ():
            return f"action has shape {action.shape}; a Discrete({n}) action is a scalar"
        if not np.issubdtype(action.dtype, np.integer) and not (
            np.issubdtype(action.dtype, np.floating) and float(action).is_integer()
        ):
            return f"action {action!r} is not an integer; Discrete({n}) takes 0..{n - 1}"
        if not 0 <= int(action) < n:
            return f"action {int(action)} is outside Discrete({n}) (valid: 0..{n - 1})"
        return None
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape)
        if action.shape != shape:
            return f"action has shape {action.shape}; the Box action space has shape {shape}"
        if not np.all(np.isfinite(action)):
            return f"action {action.tolist()} is not finite"
        low = np.broadcast_to(np.asarray(space.low, np.float64), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float64), shape)
        bad = (action < low) | (action > high)
        if np.any(bad):
            return (
                f"action {action.tolist()} is outside the Box bounds [{low.tolist()}, {high.tolist()}] "
                f"(at index {np.argwhere(bad)[0].tolist()})"
            )
        return None
    return None  # other space types are not checked


def agents_problem(space: Any, actions: Any, agents: tuple[str, ...]) -> str | None:
    """:func:`action_problem` for the actions ``[A, ...]`` of agent rows, naming the agent."""
    actions = np.asarray(actions)
    if actions.shape[:1] != (len(agents),):
        return f"actions have shape {actions.shape}; agent rows take one action per agent ({len(agents)}: {agents})"
    for agent, action in zip(agents, actions):
        problem = action_problem(space, action)
        if problem is not None:
            return f"{agent}: {problem}"
    return None


def _in_space(space: Any, action: jax.Array) -> jax.Array:
    """Traced version of :func:`action_problem`: True when ``action`` is inside ``space``."""
    if isinstance(space, spaces.Discrete):
        integral = action == jnp.round(action) if jnp.issubdtype(action.dtype, jnp.floating) else True
        return jnp.logical_and(integral, (action >= 0) & (action < space.n))
    if isinstance(space, spaces.Box):
        return jnp.all(jnp.isfinite(action) & (action >= space.low) & (action <= space.high))
    return jnp.bool_(True)


def _is_concrete(tree: Any) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


class ValidateActions(Wrapper):
    """Refuses actions outside the action space instead of stepping on garbage.

    Outside ``jit`` (concrete actions) an invalid action raises ``ValueError`` naming the action
    and the space; :func:`purejaxlib.envs.make` wraps every env in this, so eager use is always
    checked. Inside ``jit`` nothing can be raised, so by default nothing is checked there (the
    algorithms only produce in-space actions). With ``checkify=True`` the check is a
    ``jax.experimental.checkify.check``: run the jitted function through ``checkify.checkify``
    and call ``err.throw()`` to get the same message (a function that is not checkified then
    fails at trace time, so the flag cannot be silently ignored).
    """

    transparent_step = True

    def __init__(self, env: Any, checkify: bool = False):
        super().__init__(env)
        self.checkify = checkify

    def step(self, key, state, action, params):
        space = self._env.action_space(params)
        name = getattr(self._env, "name", type(self._env).__name__)
        if _is_concrete((action, params)):
            agents = getattr(self._env, "agents", ())
            problem = action_problem(space, action) if not agents else agents_problem(space, action, agents)
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
            if isinstance(space, spaces.Discrete):
                action = jnp.asarray(action, jnp.int32)  # an integral float (checked above) indexes arrays
        elif self.checkify:
            from jax.experimental import checkify

            checkify.check(
                _in_space(space, jnp.asarray(action)),
                f"{name}: action outside the action space {describe_space(space)}: {{action}}",
                action=action,
            )
        return self._env.step(key, state, action, params)
