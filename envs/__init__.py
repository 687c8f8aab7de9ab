"""Environment registry: ``make(name, **params) -> (env, env_params)`` on the gymnax 1.x protocol.

All gymnax environments are registered at import. Other sources (brax, native JAX envs, non-JAX
adapters) add themselves with :func:`register`; every factory returns an env speaking the same
protocol and its params pytree.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import gymnax
import jax
import numpy as np
from gymnax.environments import spaces

from purejaxlib.config import close_matches
from purejaxlib.envs.wrappers import (
    ClipAction,
    EpisodeStatistics,
    FlattenObservation,
    NormalizeObservation,
    NormalizeReward,
    VecEnv,
    Wrapper,
)

__all__ = [
    "make",
    "register",
    "list",
    "spec",
    "EnvSpec",
    "UnknownEnvError",
    "ClipAction",
    "EpisodeStatistics",
    "FlattenObservation",
    "NormalizeObservation",
    "NormalizeReward",
    "VecEnv",
    "Wrapper",
]

Factory = Callable[[], tuple[Any, Any]]
_REGISTRY: dict[str, Factory] = {}


class UnknownEnvError(KeyError):
    """Raised for a name that is not registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Adds ``factory() -> (env, default_params)`` under ``name``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"environment {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = factory
    if "spec" in globals():  # registrations after import invalidate cached builds and specs
        spec.cache_clear()
        _build.cache_clear()


def _gymnax_factory(name: str) -> Factory:
    def factory() -> tuple[Any, Any]:
        return gymnax.make(name)

    return factory


# Environments that cannot work here, with the reason, so make() can say why.
UNAVAILABLE = {
    "MNISTBandit-bsuite": "it downloads MNIST when constructed, and purejaxlib makes no network access at run time",
}

for _name in gymnax.registered_envs:
    if _name not in UNAVAILABLE:
        register(_name, _gymnax_factory(_name))


def list() -> builtins.list[str]:  # noqa: A001 - mirrors gymnax.registered_envs
    """Names of all registered environments, sorted."""
    return sorted(_REGISTRY)


def check_name(name: str) -> None:
    """Raises :class:`UnknownEnvError` with close matches if ``name`` is not registered."""
    if name in UNAVAILABLE and name not in _REGISTRY:
        raise UnknownEnvError(f"environment {name!r} is not available: {UNAVAILABLE[name]}")
    if name not in _REGISTRY:
        raise UnknownEnvError(f"unknown environment {name!r}: {close_matches(name, sorted(_REGISTRY))}")


def make(name: str, **params: Any) -> tuple[Any, Any]:
    """Builds env ``name`` and its params, overriding any params given as keywords.

    Example: ``env, env_params = make("CartPole-v1", max_steps_in_episode=200)``.
    """
    check_name(name)
    env, env_params = _build(name)
    if params:
        valid = [f.name for f in dataclasses.fields(env_params)]
        for key in params:
            if key not in valid:
                raise TypeError(f"{name} has no parameter {key!r}: {close_matches(key, valid)}")
        env_params = env_params.replace(**params)
    return env, env_params


@functools.lru_cache(maxsize=None)
def _build(name: str) -> tuple[Any, Any]:
    """Builds each env once: envs are stateless, and one instance per name keeps gymnax's
    jitted methods (``self`` is a static argument) from retracing. Construction runs eagerly
    even when first called inside a trace, since some constructors branch on array values."""
    with jax.ensure_compile_time_eval():
        return _REGISTRY[name]()


class EnvSpec(NamedTuple):
    """Static facts about an env, known without tracing."""

    name: str
    discrete: bool
    obs_shape: tuple[int, ...]
    num_actions: int  # discrete: number of actions; continuous: 0
    action_shape: tuple[int, ...]  # continuous: action shape; discrete: ()
    action_low: np.ndarray | None
    action_high: np.ndarray | None

    def flatten(self, obs: jax.Array) -> jax.Array:
        """Raw env observations ``[..., *obs_shape]`` as the networks take them: ``[..., obs_dim]`` float32."""
        lead = obs.shape[: obs.ndim - len(self.obs_shape)]
        return jax.numpy.reshape(obs, lead + (-1,)).astype(jax.numpy.float32)


@functools.lru_cache(maxsize=None)
def spec(name: str) -> EnvSpec:
    """Spaces of env ``name`` (cached; the config validation calls it often)."""
    env, params = make(name)
    act = env.action_space(params)
    obs = env.observation_space(params)
    discrete = isinstance(act, spaces.Discrete)
    if discrete:
        return EnvSpec(name, True, tuple(obs.shape), int(act.n), (), None, None)
    shape = tuple(act.shape)
    low = np.broadcast_to(np.asarray(act.low, np.float32), shape)
    high = np.broadcast_to(np.asarray(act.high, np.float32), shape)
    return EnvSpec(name, False, tuple(obs.shape), 0, shape, low, high)
