"""Brax environments on the gymnax 1.x protocol: ``"brax/ant"``, ``"brax/inverted_pendulum"``, ...

The adapter wraps an *unwrapped* brax env (no ``EpisodeWrapper``/``AutoResetWrapper``) and keeps
the time limit itself, so the two ways an episode ends stay apart: ``terminated`` is brax's own
``done`` (the hopper fell, the pendulum tipped past 0.2 rad); ``truncated`` is this adapter's step
counter reaching ``params.max_steps_in_episode`` (default 1000, brax's ``episode_length``). As
everywhere in gymnax, ``truncated`` reports the time limit whatever else happened (a step that
terminates at the limit has both flags); termination takes precedence (it is never bootstrapped).

Auto-reset and ``info["final_observation"]`` come from gymnax's ``Environment.step``. Actions are
``[-1, 1]^action_size`` for every brax env (brax envs have unit actuator ranges or rescale
themselves); out-of-range actions saturate. brax is imported only when an env is built.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

# Every name brax.envs registers (brax 0.12-0.14); tests/test_brax.py checks it against brax.
BRAX_ENV_NAMES: tuple[str, ...] = (
    "ant",
    "fast",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_double_pendulum",
    "inverted_pendulum",
    "pusher",
    "reacher",
    "swimmer",
    "walker2d",
)

# brax's physics pipelines (brax.envs.base.PipelineEnv). The default, "generalized", is brax's
# own, the only one every env supports (swimmer has no other), and on a 2-core CPU it compiled
# faster than "positional" and stepped at least as fast, for inverted_pendulum and ant alike.
BACKENDS: tuple[str, ...] = ("generalized", "positional", "spring", "mjx")
DEFAULT_BACKEND = "generalized"


@struct.dataclass
class BraxParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


@struct.dataclass
class BraxState(environment.EnvState):
    """``time``: steps taken in this episode; ``brax_state``: the brax ``State`` (physics, obs, info)."""

    brax_state: Any


def _cast_like(new: Any, ref: Any) -> Any:
    """``new`` with every leaf cast to the dtype of the matching leaf of ``ref``.

    Some brax envs write Python floats (``reward = 1.0``) into the state they step; gymnax's
    auto-reset selects leaf by leaf between the stepped and the reset state, which needs equal dtypes.
    """
    return jax.tree.map(lambda x, r: jnp.asarray(x, dtype=jnp.result_type(r)), new, ref)


def _reset_shapes(brax_env: Any) -> Any:
    """Shapes of ``brax_env.reset``'s state, traced abstractly (brax's ``observation_size`` runs a
    real reset). ``purejaxlib.envs.make`` builds envs under ``jax.ensure_compile_time_eval``, which
    would evaluate every constant sub-expression of the trace op by op (about 10x slower builds,
    benchmarks/README.md), so constant folding is turned off."""
    try:
        from jax._src.config import eager_constant_folding

        no_folding = eager_constant_folding(False)
    except (ImportError, TypeError):  # private API; without it the build is only slower
        no_folding = contextlib.nullcontext()
    with no_folding:
        return jax.eval_shape(brax_env.reset, jax.random.key(0))


class BraxEnv(environment.Environment[BraxState, BraxParams]):
    """A brax env speaking gymnax 1.x. Observations ``[obs_dim]`` float32, actions ``[action_size]``."""

    def __init__(self, brax_env: Any, name: str):
        super().__init__()
        self.brax_env = brax_env
        self._name = name
        self.action_size = int(brax_env.action_size)
        obs = _reset_shapes(brax_env).obs
        if not hasattr(obs, "shape"):
            raise TypeError(f"{name}: only array observations are supported, got {type(obs).__name__}")
        self.obs_shape: tuple[int, ...] = tuple(obs.shape)

    @property
    def default_params(self) -> BraxParams:
        return BraxParams()

    @property
    def backend(self) -> str:
        """The physics backend; "none" for brax's ``fast`` test env, which has no physics."""
        return getattr(self.brax_env, "backend", "none")

    def reset_env(self, key: jax.Array, params: BraxParams) -> tuple[jax.Array, BraxState]:
        brax_state = self.brax_env.reset(key)
        return brax_state.obs.astype(jnp.float32), BraxState(time=jnp.int32(0), brax_state=brax_state)

    def step_env(
        self, key: jax.Array, state: BraxState, action: jax.Array, params: BraxParams
    ) -> tuple[jax.Array, BraxState, jax.Array, jax.Array, dict[str, Any]]:
        del key  # brax dynamics are deterministic
        action = jnp.clip(jnp.reshape(action, (self.action_size,)), -1.0, 1.0)
        brax_state = _cast_like(self.brax_env.step(state.brax_state, action), state.brax_state)
        new_state = BraxState(time=state.time + 1, brax_state=brax_state)
        terminated = brax_state.done > 0.5
        reward = brax_state.reward.astype(jnp.float32)
        info = {"metrics": brax_state.metrics}
        return brax_state.obs.astype(jnp.float32), new_state, reward, terminated, info

    def is_truncated(self, state: BraxState, params: BraxParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_actions(self) -> int:
        return self.action_size

    def action_space(self, params: BraxParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.action_size,), jnp.float32)

    def observation_space(self, params: BraxParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, self.obs_shape, jnp.float32)


class _NumpyWithOldClip:
    """``jax.numpy`` whose ``clip`` still takes the ``a_min``/``a_max`` keywords jax 0.10 removed."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(jnp, attr)

    @staticmethod
    def clip(x: Any, a_min: Any = None, a_max: Any = None, **bounds: Any) -> jax.Array:
        return jnp.clip(x, bounds.pop("min", a_min), bounds.pop("max", a_max), **bounds)


def _fix_brax_fluid() -> None:
    """brax's fluid model (used by swimmer, the one env with viscosity) calls
    ``jnp.clip(x, a_min=...)``, which raises TypeError on jax >= 0.10; give that module a
    ``jax.numpy`` that still accepts it. Nothing else in brax uses those keywords."""
    import inspect

    from brax import fluid

    if "a_min" not in inspect.signature(jnp.clip).parameters and fluid.jp is jnp:
        fluid.jp = _NumpyWithOldClip()


def make_brax(name: str, backend: str = DEFAULT_BACKEND) -> tuple[BraxEnv, BraxParams]:
    """Builds brax env ``name`` (a key of ``brax.envs``) on physics ``backend``."""
    if backend not in BACKENDS:
        raise ValueError(f"brax/{name}: unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    with warnings.catch_warnings():
        # brax's mjcf loader warns on every load that brax is in maintenance mode.
        warnings.filterwarnings("ignore", message=".*not actively being maintained", category=UserWarning)
        from brax import envs as brax_envs

        _fix_brax_fluid()
        if name not in brax_envs._envs:
            raise ValueError(f"unknown brax env {name!r}; brax has: {', '.join(sorted(brax_envs._envs))}")
        try:
            brax_env = brax_envs.get_environment(name, backend=backend)
        except ValueError as error:  # e.g. swimmer supports only "generalized"
            raise ValueError(f"brax/{name} cannot use backend {backend!r}: {error}") from error
    env = BraxEnv(brax_env, f"brax/{name}")
    return env, env.default_params


def _factory(name: str) -> Callable[..., tuple[BraxEnv, BraxParams]]:
    """The registry factory of ``brax/<name>``; its keyword ``backend`` is the env's one option."""

    def factory(backend: str = DEFAULT_BACKEND) -> tuple[BraxEnv, BraxParams]:
        return make_brax(name, backend=backend)

    factory.__name__ = f"make_brax_{name}"
    factory.__doc__ = f"brax/{name}; backend: one of {BACKENDS}."
    return factory


def _register_all() -> None:
    from purejaxlib.envs import register

    for name in BRAX_ENV_NAMES:
        register(f"brax/{name}", _factory(name))


_register_all()
