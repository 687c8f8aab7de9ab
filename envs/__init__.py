"""Environment registry: ``make(name, **params) -> (env, env_params)`` on the gymnax 1.x protocol.

All gymnax environments are registered at import. Other sources (brax, native JAX envs, non-JAX
adapters) add themselves with :func:`register`; every factory returns an env speaking the same
protocol and its params pytree.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnax
import jax
import numpy as np
from gymnax.environments import spaces

from purejaxlib.envs.multiagent import (
    AgentLayout,
    AgentRows,
    FoldAgents,
    MultiAgentConformanceError,
    MultiAgentEnv,
    check_multiagent,
)
from purejaxlib.envs.wrappers import (
    ClipAction,
    EpisodeStatistics,
    FlattenObservation,
    NormalizeObservation,
    NormalizeReward,
    PendingReset,
    ValidateActions,
    VecEnv,
    Wrapper,
)
from purejaxlib.names import close_matches
from purejaxlib.parsing import parse_value

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
    "PendingReset",
    "ValidateActions",
    "VecEnv",
    "Wrapper",
    "check",
    "HostEnv",
    "register_host",
    "ConformanceError",
    "from_config",
    "parse_name",
    "AgentLayout",
    "AgentRows",
    "FoldAgents",
    "MultiAgentEnv",
    "MultiAgentConformanceError",
    "check_multiagent",
    "register_multiagent",
    "clear_cache",
]

Factory = Callable[..., tuple[Any, Any]]
_REGISTRY: dict[str, Factory] = {}


class UnknownEnvError(KeyError):
    """Raised for a name that is not registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Adds ``factory(**options) -> (env, default_params)`` under ``name``.

    The factory's keyword parameters (each with a default) are the env's *options*: static
    construction choices such as a backend or array shapes. Users give them as keywords to
    :func:`make` or in the name string, ``"name:key=value,key2=value2"``.
    """
    if ":" in name or "," in name:
        raise ValueError(f"environment names may not contain ':' or ',' (they separate options): {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"environment {name!r} is already registered (pass overwrite=True to replace it)")
    _options(factory)  # fails now, not at first make(), on a factory without defaults
    _REGISTRY[name] = factory
    if "spec" in globals():  # registrations after import invalidate cached builds and specs
        spec.cache_clear()
        _build.cache_clear()


def _options(factory: Factory) -> dict[str, Any]:
    """The factory's options and their defaults."""
    out = {}
    for p in inspect.signature(factory).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise TypeError(f"env factory {factory!r}: option {p.name!r} needs a default")
        out[p.name] = p.default
    return out


# gymnax envs whose declared observation bounds are narrower than what they emit (found by
# envs.check): time features normalized into [-1, 1] or rewards fed back in the observation.
# They get an unbounded Box of the same shape rather than bounds that lie.
_OBS_BOUNDS_WRONG = ("GaussianBandit-misc", "MemoryChain-bsuite", "MetaMaze-misc")


class GymnaxAdapter(Wrapper):
    """Fixes gymnax envs that bend the protocol: integer rewards (BernoulliBandit-misc,
    UmbrellaChain-bsuite) become float32, and wrong observation bounds become unbounded."""

    transparent_step = True

    def __init__(self, env: Any, unbounded_obs: bool):
        super().__init__(env)
        self.unbounded_obs = unbounded_obs

    def observation_space(self, params: Any) -> spaces.Box:
        space = self._env.observation_space(params)
        if not self.unbounded_obs:
            return space
        return spaces.Box(-jax.numpy.inf, jax.numpy.inf, tuple(space.shape), jax.numpy.float32)

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, reward.astype(jax.numpy.float32), terminated, truncated, info


def _gymnax_factory(name: str) -> Factory:
    def factory() -> tuple[Any, Any]:
        env, params = gymnax.make(name)
        return GymnaxAdapter(env, name in _OBS_BOUNDS_WRONG), params

    return factory


# Environments that cannot work here, with the reason, so make() can say why.
UNAVAILABLE = {
    "MNISTBandit-bsuite": "it downloads MNIST when constructed, and purejaxlib makes no network access at run time",
}

for _name in gymnax.registered_envs:
    if _name not in UNAVAILABLE:
        register(_name, _gymnax_factory(_name))


def list(spaces: bool = False) -> builtins.list[str] | dict[str, EnvSpec]:
    """Names of all registered environments, sorted.

    With ``spaces=True``, a dict from each name to its :class:`EnvSpec` (observation and action
    spaces); this builds every env once, which takes a while for the brax ones.
    """
    names = sorted(_REGISTRY)
    if spaces:
        return {name: spec(name) for name in names}
    return names


def _convert(value: str, default: Any, what: str) -> Any:
    """An option value from a name string, as the type of the option's default."""
    kind = next((t for t in (bool, int, float) if isinstance(default, t)), str)
    return parse_value(value, kind, what)


def _option_value(value: Any, default: Any, what: str) -> Any:
    """A keyword option, typed like its default (options are static: hashable, exact types), so
    ``n=2.0`` or ``stable=1`` cannot reuse or pollute the build cached for ``n=2``."""
    if isinstance(value, str) and not isinstance(default, str):
        return _convert(value, default, what)
    if isinstance(default, bool):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
    elif isinstance(default, int):
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    else:
        try:
            hash(value)
            return value
        except TypeError:
            pass
    raise TypeError(f"{what} must be a {type(default).__name__} (options are static), got {value!r}")


def parse_name(name: str) -> tuple[str, dict[str, Any]]:
    """Splits ``"base:key=value,..."`` into the registered base name and its typed options."""
    if not isinstance(name, str):
        raise TypeError(f"environment name must be a string, got {name!r}")
    base, _, rest = name.partition(":")
    check_name(base)
    known = _options(_REGISTRY[base])
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"environment {name!r}: option {item!r} must be written key=value")
        if key not in known:
            raise TypeError(f"{base} has no option {key!r}: {_option_hint(key, known)}")
        if key in options:
            raise ValueError(f"environment {name!r}: option {key!r} is given twice")
        options[key] = _convert(value, known[key], f"{base} option {key!r}")
    return base, options


def _option_hint(key: str, known: dict[str, Any]) -> str:
    if not known:
        return "it takes no options"
    return close_matches(key, known)


def check_name(name: str) -> None:
    """Raises :class:`UnknownEnvError` with close matches if ``name`` (or, with options, its base
    name) is not registered; a malformed option raises ``TypeError``/``ValueError``."""
    if not isinstance(name, str):
        raise UnknownEnvError(f"environment name must be a string, got {name!r}")
    if ":" in name:
        parse_name(name)
        return
    if name in UNAVAILABLE and name not in _REGISTRY:
        raise UnknownEnvError(f"environment {name!r} is not available: {UNAVAILABLE[name]}")
    if name not in _REGISTRY:
        raise UnknownEnvError(f"unknown environment {name!r}: {close_matches(name, sorted(_REGISTRY))}")


def make(name: str, **kwargs: Any) -> tuple[Any, Any]:
    """Builds env ``name`` and its params.

    Keywords are either the env's options (static construction choices, also writable in the
    name as ``"name:key=value"``) or fields of its params, which replace the defaults and may be
    traced values. Examples: ``make("CartPole-v1", max_steps_in_episode=200)``,
    ``make("brax/ant", backend="positional")``, ``make("LQR:n=8")``.
    """
    base, options = parse_name(name)
    known = _options(_REGISTRY[base])
    params: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in known:
            if key in options:
                raise TypeError(f"{base}: option {key!r} is given both in the name {name!r} and as a keyword")
            options[key] = _option_value(value, known[key], f"{base} option {key!r}")
        else:
            params[key] = value
    # Defaults filled in, so "LQR", "LQR:n=2" and make("LQR", n=2) share one build.
    env, env_params = _build(base, tuple(sorted({**known, **options}.items())))
    if params:
        valid = [f.name for f in dataclasses.fields(env_params)]
        for key in params:
            if key not in valid:
                raise TypeError(
                    f"{base} has no param or option {key!r}: {close_matches(key, valid + builtins.list(known))}"
                )
        env_params = env_params.replace(**{k: cast_param(k, getattr(env_params, k), v) for k, v in params.items()})
    return env, env_params


def cast_param(name: str, default: Any, value: Any, batched: bool = False) -> Any:
    """``value`` with the default param's dtype and shape, so an int param stays int32 and a
    float one float32 (a Python float would otherwise change the abstract value and recompile).
    With ``batched``, leading axes (a sweep's batch) are allowed in front of the default's shape."""
    if not isinstance(default, (bool, int, float, np.ndarray, np.number, jax.Array)):
        return value
    dtype = jax.dtypes.canonicalize_dtype(np.asarray(default).dtype)
    out: jax.Array | np.ndarray
    if isinstance(value, jax.core.Tracer):
        out = jax.numpy.asarray(value, dtype)
    else:
        raw = np.asarray(value)
        if dtype.kind in "biu" and raw.dtype.kind == "f" and not np.all(raw == np.round(raw)):
            raise ValueError(f"env param {name!r} is an integer, got {value!r}")
        out = raw.astype(dtype)
    shape = np.shape(default)
    tail = out.shape[out.ndim - len(shape) :] if batched and out.ndim >= len(shape) else out.shape
    if tail != shape:
        raise ValueError(f"env param {name!r} has shape {shape}, got a value of shape {out.shape}")
    return out


def from_config(config: Any) -> tuple[Any, Any]:
    """The env of an algorithm config: ``make(config.env, **config.env_params)``.

    ``config.env_params`` (a dict of param overrides, possibly traced: a sweep or ``vmap`` over
    it trains across physical parameters in one program) is optional.
    """
    overrides = getattr(config, "env_params", None) or {}
    return make(config.env, **overrides)


@functools.cache
def _build(base: str, options: tuple[tuple[str, Any], ...]) -> tuple[Any, Any]:
    """Builds each env once per options: envs are stateless, and one instance per name keeps
    gymnax's jitted methods (``self`` is a static argument) from retracing. Construction runs
    eagerly even when first called inside a trace, since some constructors branch on values."""
    with jax.ensure_compile_time_eval():
        env, params = _REGISTRY[base](**dict(options))
    return ValidateActions(env), params


class EnvSpec(NamedTuple):
    """Static facts about an env, known without tracing."""

    name: str
    discrete: bool
    obs_shape: tuple[int, ...]
    num_actions: int  # discrete: number of actions; continuous: 0
    action_shape: tuple[int, ...]  # continuous: action shape; discrete: ()
    action_low: np.ndarray | None
    action_high: np.ndarray | None
    agents: tuple[str, ...] = ()  # multi-agent envs (agent rows, see purejaxlib.envs.multiagent); () otherwise
    layout: AgentLayout | None = None  # multi-agent: where id, obs, global state and action mask lie in a row

    @property
    def num_agents(self) -> int:
        """Agents per env (1 for single-agent envs)."""
        return max(1, len(self.agents))

    def flatten(self, obs: jax.Array) -> jax.Array:
        """Raw env observations ``[..., *obs_shape]`` as the networks take them: ``[..., obs_dim]`` float32."""
        lead = obs.shape[: obs.ndim - len(self.obs_shape)]
        return jax.numpy.reshape(obs, lead + (-1,)).astype(jax.numpy.float32)


@functools.cache
def spec(name: str) -> EnvSpec:
    """Spaces of env ``name`` (cached; the config validation calls it often)."""
    env, params = make(name)
    act = env.action_space(params)
    obs = env.observation_space(params)
    discrete = isinstance(act, spaces.Discrete)
    agents: tuple[str, ...] = tuple(getattr(env, "agents", ()))
    layout: AgentLayout | None = getattr(env, "layout", None)
    if discrete:
        return EnvSpec(name, True, tuple(obs.shape), int(act.n), (), None, None, agents, layout)
    shape = tuple(act.shape)
    low = np.broadcast_to(np.asarray(act.low, np.float32), shape)
    high = np.broadcast_to(np.asarray(act.high, np.float32), shape)
    return EnvSpec(name, False, tuple(obs.shape), 0, shape, low, high, agents, layout)


def clear_cache() -> None:
    """Forgets every built env and spec, so the next :func:`make` builds afresh (after installing an
    optional extra in a running session, say)."""
    spec.cache_clear()
    _build.cache_clear()


def register_multiagent(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Adds a :class:`MultiAgentEnv` factory ``factory(**options) -> (env, params)`` under ``name``;
    :func:`make` gives its :class:`AgentRows` view (one row per agent, the single-agent protocol with
    the agents on a leading axis), which the parameter-shared learners (IPPO, MAPPO) train on."""

    def rows(**options: Any) -> tuple[Any, Any]:
        env, params = factory(**options)
        return AgentRows(env, params), params

    rows.__signature__ = inspect.signature(factory)  # type: ignore[attr-defined]
    register(name, rows, overwrite=overwrite)


# Native and adapted envs register themselves on import (heavy packages load lazily in factories).
from purejaxlib.envs import brax_adapter, host, lqr, probes  # noqa: E402,F401
from purejaxlib.envs import jaxmarl_adapter as _jaxmarl  # noqa: E402

for _id in _jaxmarl.MPE:
    register_multiagent(f"jaxmarl/{_id}", _jaxmarl.mpe_factory(_id))
register_multiagent("jaxmarl/smax", _jaxmarl.smax_factory)

from purejaxlib.envs import pgx_games as _pgx  # noqa: E402


def _pgx_factory(name: str) -> Factory:
    def factory() -> tuple[Any, Any]:
        game = _pgx.make_game(name)
        return game, game.default_params

    return factory


for _name in _pgx.GAMES:
    register_multiagent(_name, _pgx_factory(_name))
# Outside JAX suites (optional extras): registered by name always, so envs.list() shows them; building
# one without its extra raises ImportError with the install command.
from purejaxlib.envs import craftax_adapter as _craftax  # noqa: E402
from purejaxlib.envs import jumanji_adapter as _jumanji  # noqa: E402
from purejaxlib.envs import navix_adapter as _navix  # noqa: E402
from purejaxlib.envs import xminigrid_adapter as _xminigrid  # noqa: E402

for _suite in (_craftax, _jumanji, _navix, _xminigrid):
    for _name in _suite.NAMES:
        register(f"{_suite.EXTRA}/{_name}", _suite.factory(_name))
from purejaxlib.envs.check import ConformanceError, check  # noqa: E402
from purejaxlib.envs.host import HostEnv, register_host  # noqa: E402
