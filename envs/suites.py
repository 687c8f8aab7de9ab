"""What the adapters for outside JAX suites (craftax, jumanji, navix, xminigrid) share.

Each suite steps without auto-reset in its own API; :class:`SuiteEnv` turns one into the gymnax
1.x protocol once: gymnax's ``Environment.step`` auto-resets and fills ``info["final_observation"]``,
and the two ways an episode ends stay apart:

- ``terminated``: the suite says the episode reached a real end (its own terminal flag, or a
  dm_env-style last step with discount 0);
- ``truncated``: a time limit, either the suite's own (its step counter at its limit, or a last step
  with discount 1) or this adapter's ``params.max_steps_in_episode`` (whichever comes first; its
  default is the suite's own limit, so by default the two agree). As in gymnax, ``truncated``
  reports the time limit whatever else happened on that step; termination takes precedence when
  learning (it is never bootstrapped).

Observations are float32 (a suite's integer or boolean observations are cast; a pytree of arrays is
flattened and concatenated into one vector), shaped as the suite gives them when it gives one
array, so image and grid observations keep ``[H, W, C]`` and get a CNN torso
(:mod:`purejaxlib.networks`). Actions are ``Discrete(n)``; a suite's multi-discrete action
``[n_1, ..., n_k]`` becomes one ``Discrete(n_1 * ... * n_k)`` (row-major).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

__all__ = ["SuiteEnv", "SuiteParams", "SuiteState", "require", "quiet", "flatten_observation", "unravel_action"]


@struct.dataclass
class SuiteParams(environment.EnvParams):
    """``max_steps_in_episode``: this adapter's time limit (traced); ``inner``: the suite's own params
    (None for suites whose env object holds them)."""

    max_steps_in_episode: int = 1000
    inner: Any = None


@struct.dataclass
class SuiteState(environment.EnvState):
    """``time``: steps taken in this episode; ``inner``: the suite's state (or its TimeStep);
    ``suite_truncated``: the suite itself ended the last step at its own time limit."""

    inner: Any
    suite_truncated: jax.Array


def require(module: str, extra: str, what: str) -> Any:
    """Imports ``module``, or raises ImportError naming the extra that installs it."""
    try:
        with quiet():
            return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what} needs {module.split('.')[0]}: pip install 'purejaxlib[{extra}]'") from err


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallows what is printed to stdout, at the file descriptor too (craftax prints while it
    caches its textures; jaxmarl's import prints)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(io.StringIO()):
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def flatten_observation(obs: Any) -> jax.Array:
    """A suite's observation as float32: one array keeps its shape; a pytree of arrays (jumanji's
    NamedTuples) becomes one vector ``[sum of leaf sizes]``, leaves in pytree order."""
    leaves = jax.tree.leaves(obs)
    if len(leaves) == 1:
        return jnp.asarray(leaves[0], jnp.float32)
    return jnp.concatenate([jnp.ravel(jnp.asarray(x, jnp.float32)) for x in leaves])


def unravel_action(action: jax.Array, sizes: tuple[int, ...]) -> jax.Array:
    """``Discrete(prod(sizes))`` index -> the suite's multi-discrete action ``[len(sizes)]`` int32
    (row-major: the last component varies fastest)."""
    if len(sizes) == 1:
        return jnp.asarray(action, jnp.int32)
    return jnp.stack(jnp.unravel_index(jnp.asarray(action, jnp.int32), sizes)).astype(jnp.int32)


class SuiteEnv(environment.Environment[SuiteState, SuiteParams]):
    """An outside suite's env on the gymnax 1.x protocol (see the module docstring).

    A subclass sets ``name``, ``num_actions``, ``obs_shape``, ``obs_low``/``obs_high`` and
    ``default_params`` and implements :meth:`suite_reset` and :meth:`suite_step`.
    """

    def __init__(self, name: str, num_actions: int, obs_shape: tuple[int, ...], obs_low: float, obs_high: float):
        super().__init__()
        self._name = name
        self._num_actions = int(num_actions)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.obs_low = float(obs_low)
        self.obs_high = float(obs_high)

    def suite_reset(self, key: jax.Array, params: SuiteParams) -> tuple[jax.Array, Any]:
        """``(obs [*obs_shape] float32, the suite's state)`` of a new episode."""
        raise NotImplementedError

    def suite_step(
        self, key: jax.Array, inner: Any, action: jax.Array, params: SuiteParams, time: jax.Array
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One step of the suite without reset: ``(obs, inner, reward, terminated, suite_truncated,
        info)``; ``time`` is the number of steps the episode has taken after this one."""
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: SuiteParams) -> tuple[jax.Array, SuiteState]:
        obs, inner = self.suite_reset(key, params)
        return obs, SuiteState(time=jnp.int32(0), inner=inner, suite_truncated=jnp.bool_(False))

    def step_env(
        self, key: jax.Array, state: SuiteState, action: jax.Array, params: SuiteParams
    ) -> tuple[jax.Array, SuiteState, jax.Array, jax.Array, dict[str, Any]]:
        time = state.time + 1
        obs, inner, reward, terminated, suite_truncated, info = self.suite_step(key, state.inner, action, params, time)
        new = SuiteState(time=time, inner=inner, suite_truncated=jnp.asarray(suite_truncated, jnp.bool_))
        return obs, new, jnp.asarray(reward, jnp.float32), jnp.asarray(terminated, jnp.bool_), info

    def is_truncated(self, state: SuiteState, params: SuiteParams) -> jax.Array:
        return jnp.logical_or(state.suite_truncated, state.time >= params.max_steps_in_episode)

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_actions(self) -> int:
        return self._num_actions

    def action_space(self, params: SuiteParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self._num_actions)

    def observation_space(self, params: SuiteParams | None = None) -> spaces.Box:
        return spaces.Box(self.obs_low, self.obs_high, self.obs_shape, jnp.float32)


def observation_shape(obs: Any) -> tuple[int, ...]:
    """The shape :func:`flatten_observation` gives ``obs`` (abstract values are fine)."""
    leaves = jax.tree.leaves(obs)
    if len(leaves) == 1:
        return tuple(leaves[0].shape)
    return (int(sum(np.prod(x.shape, dtype=np.int64) for x in leaves)),)
