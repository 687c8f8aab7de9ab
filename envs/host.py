"""Host environments: a gymnasium env (or any numpy env object) inside jitted JAX code.

**This is the slow path.** Use it when an environment exists only as Python/numpy code; write it
in JAX (or use gymnax/brax) when speed matters. Every batched ``step`` leaves the compiled
program through one :func:`jax.pure_callback`: XLA stops, the actions go to the host, Python steps
the env copies one by one on one thread, and the observations come back; nothing fuses across
that boundary, and on a GPU/TPU each step is a device-host round trip (figures in
benchmarks/README.md). :class:`HostEnv` states the semantics: state, ordering, randomness, copies
and time limits.

Registered names: ``"gymnasium/<id>"`` for gymnasium's classic-control ids (needs the optional
extra ``pip install 'purejaxlib[gymnasium]'``). Your own env: ``register_host(name, constructor)``
then ``purejaxlib.envs.make(name)`` or ``ppo.Config(env=name)``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

__all__ = ["HostEnv", "HostParams", "HostState", "HostPool", "register_host", "seed_from_key", "GYMNASIUM_IDS"]

# gymnasium's classic-control ids registered as "gymnasium/<id>".
GYMNASIUM_IDS = ("CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0")

DEFAULT_MAX_COPIES = 65536


@struct.dataclass
class HostParams:
    max_steps_in_episode: int = 500
    """Episodes are truncated after this many steps (counted on the host, per copy)."""


@struct.dataclass
class HostState:
    handle: jax.Array  # int32 scalar: which copy of the host env in the HostEnv's pool
    version: jax.Array  # int32 scalar: steps the copy had taken when this state was produced


# ----------------------------------------------------------------------------------------------
# Spaces


def _gymnasium_spaces():
    try:
        from gymnasium import spaces as gym_spaces
    except ImportError:
        return None
    return gym_spaces


def to_gymnax_space(space: Any, what: str) -> tuple[Any, int]:
    """A gymnax Discrete/Box for a gymnasium (or gymnax) ``space``, and the offset of a
    gymnasium ``Discrete(n, start)`` (JAX actions are ``0..n-1``; the host env gets ``start + a``).

    ``what`` names the space in errors ("observation_space" / "action_space").
    """
    if isinstance(space, spaces.Discrete):
        return space, 0
    if isinstance(space, spaces.Box):
        low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape)
        return spaces.Box(low, high, tuple(space.shape), jnp.float32), 0
    gym_spaces = _gymnasium_spaces()
    if gym_spaces is not None and isinstance(space, gym_spaces.Discrete):
        return spaces.Discrete(int(space.n)), int(space.start)
    if gym_spaces is not None and isinstance(space, gym_spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        low = np.asarray(space.low, np.float32).reshape(shape)
        high = np.asarray(space.high, np.float32).reshape(shape)
        return spaces.Box(low, high, shape, jnp.float32), 0
    raise TypeError(
        f"HostEnv {what}: only Discrete and Box spaces are supported (gymnasium or gymnax), got "
        f"{space!r} of type {type(space).__name__}; wrap the env (e.g. gymnasium's FlattenObservation) "
        f"or pass {what}= explicitly"
    )


def _obs_struct(space: Any) -> jax.ShapeDtypeStruct:
    """Per-copy observation: float32 ``[*shape]`` for a Box, int32 scalar for a Discrete."""
    if isinstance(space, spaces.Discrete):
        return jax.ShapeDtypeStruct((), jnp.int32)
    return jax.ShapeDtypeStruct(tuple(space.shape), jnp.float32)


def _batched(s: jax.ShapeDtypeStruct, batch: tuple[int, ...]) -> np.ndarray:
    return np.empty(batch + tuple(s.shape), s.dtype)


# ----------------------------------------------------------------------------------------------
# Host side


def _seed(key_data: np.ndarray) -> int:
    """A non-negative int seed from one key's uint32 words (all bits kept)."""
    return int.from_bytes(np.ascontiguousarray(key_data, np.uint32).tobytes(), "little")


def seed_from_key(key: jax.Array) -> int:
    """The seed ``HostEnv.reset(key)`` passes to ``env.reset(seed=...)`` (one concrete key)."""
    return _seed(np.asarray(_key_data(key)))


class _Copy:
    """One host env object and its bookkeeping."""

    __slots__ = ("env", "t", "version")

    def __init__(self, env: Any):
        self.env = env
        self.version = 0  # steps taken since allocation
        self.t = 0  # steps into the current episode


class HostPool:
    """The host env copies of one :class:`HostEnv`, keyed by int32 handle, least recently used
    first. ``reset_calls`` / ``step_calls`` count host calls (one per batched reset/step)."""

    def __init__(
        self,
        constructor: Callable[[], Any],
        obs_space: Any,
        obs_struct: jax.ShapeDtypeStruct,
        action_space: Any,
        action_offset: int,
        max_copies: int,
    ):
        self.constructor = constructor
        self.obs_struct = obs_struct
        self.discrete_obs = isinstance(obs_space, spaces.Discrete)
        self.discrete_action = isinstance(action_space, spaces.Discrete)
        self.action_shape = () if self.discrete_action else tuple(action_space.shape)
        self.action_offset = action_offset
        self.max_copies = max_copies
        self.copies: collections.OrderedDict[int, _Copy] = collections.OrderedDict()
        self.spare: list[Any] = []  # env objects of recycled copies, reused before constructing
        self.next_handle = 0
        self.reset_calls = 0
        self.step_calls = 0
        self.lock = threading.Lock()

    # -- allocation ---------------------------------------------------------------------------

    def _new_env(self) -> Any:
        return self.spare.pop() if self.spare else self.constructor()

    def _allocate(self, count: int) -> list[int]:
        if count > self.max_copies:
            raise RuntimeError(
                f"HostEnv: one reset asks for {count} env copies but the pool holds at most "
                f"max_copies={self.max_copies}; pass a larger max_copies"
            )
        while len(self.copies) + count > self.max_copies:  # recycle the least recently stepped
            _, old = self.copies.popitem(last=False)
            self.spare.append(old.env)
        handles = []
        for _ in range(count):
            while self.next_handle in self.copies:
                self.next_handle = (self.next_handle + 1) % 2**31
            handle = self.next_handle
            self.next_handle = (self.next_handle + 1) % 2**31
            self.copies[handle] = _Copy(self._new_env())
            handles.append(handle)
        return handles

    def _copy(self, handle: int, version: int) -> _Copy:
        copy = self.copies.get(handle)
        if copy is None:
            raise RuntimeError(
                f"HostEnv: env copy {handle} does not exist: it was recycled (more than max_copies="
                f"{self.max_copies} copies were reset after it was last stepped) or the state comes from "
                f"another HostEnv instance (e.g. the env was re-registered between reset and step)"
            )
        if copy.version != version:
            raise RuntimeError(
                f"HostEnv: env copy {handle} is at step {copy.version} but was asked to step from a state "
                f"at step {version}: a host env state can be stepped only once (the env lives on the host), "
                f"so step the newest state, and give each copy its own state (no vmap with the state "
                f"unbatched; no two resets with the same key)"
            )
        self.copies.move_to_end(handle)
        return copy

    # -- conversion ---------------------------------------------------------------------------

    def _obs(self, obs: Any) -> Any:
        if self.discrete_obs:
            return int(obs)
        if np.shape(obs) != self.obs_struct.shape:
            raise RuntimeError(
                f"HostEnv: the host env returned an observation of shape {np.shape(obs)}, but its "
                f"observation_space has shape {self.obs_struct.shape}"
            )
        return obs

    # -- callbacks ----------------------------------------------------------------------------

    def reset(self, key_data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``key_data [*B, K]`` uint32 -> ``(obs [*B, *obs], handle [*B], version [*B])``."""
        key_data = np.asarray(key_data)
        batch = key_data.shape[:-1]
        rows = key_data.reshape(-1, key_data.shape[-1])
        obs = _batched(self.obs_struct, batch).reshape((rows.shape[0],) + tuple(self.obs_struct.shape))
        with self.lock:
            self.reset_calls += 1
            handles = self._allocate(rows.shape[0])
            for i, (handle, row) in enumerate(zip(handles, rows)):
                first, _ = self.copies[handle].env.reset(seed=_seed(row))
                obs[i] = self._obs(first)
        handle_arr = np.asarray(handles, np.int32).reshape(batch)
        return obs.reshape(batch + tuple(self.obs_struct.shape)), handle_arr, np.zeros(batch, np.int32)

    def step(self, packed: np.ndarray):
        """Steps every copy in the batch once, auto-resetting finished episodes.

        ``packed [*B, 3 + A]`` int32 holds ``(handle, version, max_steps, *action)`` per copy, the
        action's bits as int32 (JAX hands a callback each argument as a new array object, so one
        argument instead of four halves the call overhead: benchmarks/README.md, host envs).
        Returns ``(obs, version, reward, terminated, truncated, final_obs)``, each ``[*B, ...]``.
        """
        packed = np.asarray(packed)
        batch = packed.shape[:-1]
        n = int(np.prod(batch, dtype=np.int64))
        rows = packed.reshape(n, packed.shape[-1])
        # Python lists: indexing numpy scalars one by one costs more than the env step itself.
        handles, versions, limits = rows[:, 0].tolist(), rows[:, 1].tolist(), rows[:, 2].tolist()
        if self.discrete_action:
            actions = (rows[:, 3] + self.action_offset).tolist()
        else:
            actions = list(np.ascontiguousarray(rows[:, 3:]).view(np.float32).reshape((n,) + self.action_shape))
        obs = np.empty((n,) + tuple(self.obs_struct.shape), self.obs_struct.dtype)
        final = np.empty_like(obs)
        reward, terminated, truncated = [0.0] * n, [False] * n, [False] * n
        with self.lock:
            self.step_calls += 1
            if len(set(handles)) != n:
                raise RuntimeError(
                    "HostEnv: the same env copy appears more than once in one batched step; each "
                    "copy must have its own state (vmap reset together with step)"
                )
            copies = [self._copy(h, v) for h, v in zip(handles, versions)]  # all checked before any steps
            for i, copy in enumerate(copies):
                o, r, term, trunc, _ = copy.env.step(actions[i])
                copy.version = (copy.version + 1) % 2**31
                copy.t += 1
                term, trunc = bool(term), bool(trunc) or copy.t >= limits[i]
                final[i] = self._obs(o)
                reward[i], terminated[i], truncated[i] = r, term, trunc
                if term or trunc:
                    o, _ = copy.env.reset()
                    copy.t = 0
                    obs[i] = self._obs(o)
                else:
                    obs[i] = final[i]
            new_versions = np.asarray([c.version for c in copies], np.int32)
        shaped = lambda x: x.reshape(batch + x.shape[1:])
        return (
            shaped(obs),
            shaped(new_versions),
            shaped(np.asarray(reward, np.float32)),
            shaped(np.asarray(terminated, bool)),
            shaped(np.asarray(truncated, bool)),
            shaped(final),
        )

    def close(self) -> None:
        """Closes and forgets every host env object (states from before then can't be stepped)."""
        with self.lock:
            for env in [c.env for c in self.copies.values()] + self.spare:
                close = getattr(env, "close", None)
                if close is not None:
                    close()
            self.copies.clear()
            self.spare.clear()


# ----------------------------------------------------------------------------------------------
# JAX side


def _key_data(key: jax.Array) -> jax.Array:
    """The raw uint32 words of a typed or legacy uint32 key, ``[K]``."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return jnp.asarray(key, jnp.uint32)


class HostEnv:
    """A host (numpy) env as a gymnax 1.x environment (the slow path: module docstring).

    ``constructor()`` makes one env object with the gymnasium API: ``reset(seed=int) -> (obs,
    info)``, ``step(action) -> (obs, reward, terminated, truncated, info)`` and, unless given here,
    gymnasium ``observation_space``/``action_space`` (Discrete or Box; gymnax spaces also work).
    One env is constructed now to read the spaces and the default time limit
    (``env.spec.max_episode_steps``); if there is none, ``max_steps_in_episode`` must be given.

    State and calls. ``reset(key, params)`` and ``step(key, state, action, params)`` (auto-reset,
    ``info["final_observation"]``) are one ``pure_callback`` each with
    ``vmap_method="broadcast_all"``, so any nesting of ``vmap`` (``VecEnv``, seeds, a sweep) makes
    ONE host call per step for the whole batch. The state, :class:`HostState`, is an int32
    ``handle`` naming one copy of the host env in the :class:`HostPool` and an int32 ``version``
    counting that copy's steps.

    Ordering. JAX may drop a pure callback whose outputs are unused, merge calls with identical
    inputs, reorder independent calls or run one twice. Each step takes the ``version`` output by
    the previous step, so data dependence fixes the order of a copy's steps, and a skipped step's
    state is unused too. A copy lives on the host, so a state can be stepped only once: stepping
    an older state again (or one handle twice in a batch) raises an error naming the copy. No
    gradients flow through a host step, the host env's ``info`` is dropped (only
    ``final_observation`` is returned), and host errors reach the caller as JAX's runtime error
    (a RuntimeError, or a ValueError at ``block_until_ready``) with this module's message inside.

    Randomness. ``reset`` seeds each copy from its key (``env.reset(seed=seed_from_key(key))``),
    so a run is reproducible from its key; afterwards a copy draws from its own generator
    (auto-resets call ``env.reset()`` unseeded, as gymnasium's vector envs do) and ``step``'s keys
    are unused.

    Copies. Every executed ``reset`` allocates fresh copies, one per batch element (JAX gives no
    signal when a state is dropped). The pool holds at most ``max_copies`` and, when a reset needs
    room, reuses the least recently stepped ones, so repeated evaluations and runs do not grow
    memory; stepping a state whose copy was recycled fails loudly. Two resets with identical keys
    in one program may be merged into one (then stepping both fails the version check): split
    keys, as everywhere in JAX.

    Time limits. ``HostParams.max_steps_in_episode`` (traced, so it may be vmapped) truncates
    episodes on the host, per copy. The registered gymnasium ids step the unwrapped env with the
    id's own limit as default; an env object that enforces its own limit (a ``gym.make`` env given
    to :func:`register_host`) truncates at whichever comes first.
    """

    def __init__(
        self,
        constructor: Callable[[], Any],
        *,
        observation_space: Any = None,
        action_space: Any = None,
        max_steps_in_episode: int | None = None,
        max_copies: int = DEFAULT_MAX_COPIES,
        name: str | None = None,
    ):
        if not callable(constructor):
            raise TypeError(f"HostEnv needs a constructor (a callable making one env), got {constructor!r}")
        if int(max_copies) < 1:
            raise ValueError(f"HostEnv: max_copies must be >= 1, got {max_copies}")
        probe = constructor()
        for method in ("reset", "step"):
            if not callable(getattr(probe, method, None)):
                raise TypeError(f"HostEnv: the constructed env {probe!r} has no {method}() method")
        obs_space = observation_space if observation_space is not None else getattr(probe, "observation_space", None)
        act_space = action_space if action_space is not None else getattr(probe, "action_space", None)
        if obs_space is None or act_space is None:
            raise TypeError(
                f"HostEnv: the env {probe!r} has no observation_space/action_space attribute; pass "
                f"observation_space= and action_space= (gymnax or gymnasium Discrete/Box)"
            )
        self._obs_space, _ = to_gymnax_space(obs_space, "observation_space")
        self._action_space, offset = to_gymnax_space(act_space, "action_space")
        if max_steps_in_episode is None:
            max_steps_in_episode = getattr(getattr(probe, "spec", None), "max_episode_steps", None)
        if max_steps_in_episode is None:
            raise ValueError(
                f"HostEnv: the env {probe!r} declares no time limit (env.spec.max_episode_steps); pass "
                f"max_steps_in_episode= (episodes are truncated after that many steps)"
            )
        if int(max_steps_in_episode) < 1:
            raise ValueError(f"HostEnv: max_steps_in_episode must be >= 1, got {max_steps_in_episode}")
        self._max_steps = int(max_steps_in_episode)
        self._name = name or f"HostEnv({getattr(getattr(probe, 'spec', None), 'id', None) or type(probe).__name__})"
        self._obs_struct = _obs_struct(self._obs_space)
        self.pool = HostPool(
            constructor, self._obs_space, self._obs_struct, self._action_space, offset, int(max_copies)
        )
        self.pool.spare.append(probe)  # the first reset reuses it

    # -- gymnax protocol ----------------------------------------------------------------------

    @property
    def default_params(self) -> HostParams:
        return HostParams(max_steps_in_episode=self._max_steps)

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_actions(self) -> int:
        if isinstance(self._action_space, spaces.Discrete):
            return int(self._action_space.n)
        return int(np.prod(self._action_space.shape))

    def observation_space(self, params: HostParams | None = None) -> Any:
        return self._obs_space

    def action_space(self, params: HostParams | None = None) -> Any:
        return self._action_space

    def reset(self, key: jax.Array, params: HostParams | None = None) -> tuple[jax.Array, HostState]:
        """Allocates a fresh host copy (per batch element), seeded from ``key``."""
        i32 = jax.ShapeDtypeStruct((), jnp.int32)
        obs, handle, version = jax.pure_callback(
            self.pool.reset, (self._obs_struct, i32, i32), _key_data(key), vmap_method="broadcast_all"
        )
        return obs, HostState(handle, version)

    def step(
        self, key: jax.Array, state: HostState, action: jax.Array, params: HostParams | None = None
    ) -> tuple[jax.Array, HostState, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        """One host step of the copy ``state.handle``; ``key`` is unused (the copy has its own RNG)."""
        del key
        params = self.default_params if params is None else params
        action = self._check_action(action)
        bits = action if action.dtype == jnp.int32 else jax.lax.bitcast_convert_type(action, jnp.int32)
        ints = [
            jnp.asarray(state.handle, jnp.int32),
            jnp.asarray(state.version, jnp.int32),
            jnp.asarray(params.max_steps_in_episode, jnp.int32),
        ]
        packed = jnp.concatenate([jnp.stack(ints), bits.reshape(-1)])
        i32 = jax.ShapeDtypeStruct((), jnp.int32)
        flag = jax.ShapeDtypeStruct((), jnp.bool_)
        out = (self._obs_struct, i32, jax.ShapeDtypeStruct((), jnp.float32), flag, flag, self._obs_struct)
        obs, version, reward, terminated, truncated, final_obs = jax.pure_callback(
            self.pool.step, out, packed, vmap_method="broadcast_all"
        )
        info = {"final_observation": final_obs}
        return obs, HostState(state.handle, version), reward, terminated, truncated, info

    def _check_action(self, action: Any) -> jax.Array:
        """One copy's action as the callback takes it: int32 scalar or float32 ``[*shape]``."""
        action = jnp.asarray(action)
        if isinstance(self._action_space, spaces.Discrete):
            if action.shape != ():
                raise ValueError(f"{self.name}: a discrete action must be a scalar, got shape {action.shape}")
            return action.astype(jnp.int32)
        shape = tuple(self._action_space.shape)
        if action.shape != shape:
            raise ValueError(f"{self.name}: action has shape {action.shape}, the action space needs {shape}")
        return action.astype(jnp.float32)

    def close(self) -> None:
        self.pool.close()

    def __repr__(self) -> str:
        return f"<{self._name}: host env, {len(self.pool.copies)} copies>"


# ----------------------------------------------------------------------------------------------
# Registry


def register_host(
    name: str,
    constructor: Callable[[], Any],
    *,
    observation_space: Any = None,
    action_space: Any = None,
    max_steps_in_episode: int | None = None,
    max_copies: int = DEFAULT_MAX_COPIES,
    overwrite: bool = False,
) -> None:
    """Registers a numpy env under ``name``: ``constructor()`` makes one env object (gymnasium API).

    Afterwards ``purejaxlib.envs.make(name)`` and ``ppo.Config(env=name)`` use it through
    :class:`HostEnv` (the slow path). The env is built on first use, not now.
    """
    from purejaxlib import envs as envs_lib

    def factory() -> tuple[HostEnv, HostParams]:
        env = HostEnv(
            constructor,
            observation_space=observation_space,
            action_space=action_space,
            max_steps_in_episode=max_steps_in_episode,
            max_copies=max_copies,
            name=name,
        )
        return env, env.default_params

    envs_lib.register(name, factory, overwrite=overwrite)


def _import_gymnasium(name: str):
    try:
        import gymnasium
    except ImportError:
        raise ImportError(
            f"environment {name!r} needs gymnasium, an optional dependency: pip install 'purejaxlib[gymnasium]'"
        ) from None
    return gymnasium


def _gymnasium_factory(env_id: str) -> Callable[[], tuple[HostEnv, HostParams]]:
    name = f"gymnasium/{env_id}"

    def factory() -> tuple[HostEnv, HostParams]:
        gym = _import_gymnasium(name)
        # The unwrapped env: the adapter does the time limit (a traced param) and never steps a
        # finished episode, so TimeLimit/OrderEnforcing/PassiveEnvChecker would only cost time.
        limit = gym.spec(env_id).max_episode_steps
        env = HostEnv(lambda: gym.make(env_id).unwrapped, max_steps_in_episode=limit, name=name)
        return env, env.default_params

    return factory


def _register_gymnasium() -> None:
    from purejaxlib import envs as envs_lib

    for env_id in GYMNASIUM_IDS:
        envs_lib.register(f"gymnasium/{env_id}", _gymnasium_factory(env_id))


_register_gymnasium()
