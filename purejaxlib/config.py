"""Typed, frozen configs that are also pytrees.

A config field is either *static* (sets shapes, loop counts or program structure; part of the
compiled program's identity) or *traced* (a numeric hyperparameter; a leaf of the pytree, so a new
value never recompiles). Traced leaves are canonicalized to float32 at construction, so a Python
float and a float32 array give the same abstract value under ``jax.jit``.

Flax dataclasses run ``__post_init__`` on every unflatten (also inside traces, where leaves are
tracers), so validation here only looks at static fields and at concrete traced values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar

import jax
import numpy as np
from flax import struct

from purejaxlib import envs
from purejaxlib.names import close_matches, register_features

__all__ = [
    "ConfigBase",
    "ConfigError",
    "EnvConfig",
    "UnknownFieldError",
    "close_matches",
    "is_static_field",
    "static",
    "traced",
]


class ConfigError(ValueError):
    """A config field holds a value that cannot work; the message names the field and the fix."""


def static(default: Any) -> Any:
    """A field that is part of program structure (not traced); give it an attribute docstring."""
    return struct.field(pytree_node=False, default=default)


def traced(default: float | None) -> Any:
    """A numeric hyperparameter carried as a float32 leaf, so sweeps vmap over it."""
    return struct.field(pytree_node=True, default=default)


def is_static_field(field: dataclasses.Field) -> bool:
    """True when ``field`` is static (``pytree_node=False``)."""
    return not field.metadata.get("pytree_node", True)


def _is_concrete_number(value: Any) -> bool:
    """Python/numpy numbers and concrete jax arrays; not tracers, pytree placeholders or arrays
    spread over several processes (checked on the host before they were placed)."""
    if isinstance(value, jax.core.Tracer) or (isinstance(value, jax.Array) and not value.is_fully_addressable):
        return False
    return isinstance(value, (bool, int, float, np.number, np.ndarray, jax.Array))


class UnknownFieldError(ConfigError, TypeError):
    """A config was given a field it does not have."""


class ConfigBase(struct.PyTreeNode):
    """Base class: canonicalizes traced fields and runs ``validate`` on concrete values.

    Subclasses declare fields with :func:`static` and :func:`traced` and override
    :meth:`validate`, raising :class:`ConfigError` through :meth:`fail`. A class that adds fields
    other algorithms lack declares them in ``features = {field: description}``, so asking another
    algorithm's Config for one of them names this class's module (:mod:`purejaxlib.names`).
    """

    features: ClassVar[dict[str, str]] = {}
    vector_fields: ClassVar[tuple[str, ...]] = ()
    """Traced fields whose one value is a vector ``[D]`` (a sweep's batch adds axes in front)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # flax makes cls a dataclass here
        register_features(cls.__dict__.get("features", {}), cls.__module__)
        init = cls.__init__

        def __init__(self, *args: Any, **fields: Any) -> None:
            names = [f.name for f in dataclasses.fields(cls)]
            for name in fields:
                if name not in names:
                    where = f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__qualname__}"
                    raise UnknownFieldError(f"{where} has no field {name!r}; {close_matches(name, names)}")
            init(self, *args, **fields)

        cls.__init__ = __init__  # type: ignore[method-assign]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if is_static_field(f):
                continue
            value = getattr(self, f.name)
            # Anything else (a weakly typed jax scalar, an int, float64) would give jit a new
            # abstract value and recompile.
            if _is_concrete_number(value) and not (isinstance(value, np.ndarray) and value.dtype == np.float32):
                object.__setattr__(self, f.name, np.asarray(value, dtype=np.float32))
        self.validate()

    def validate(self) -> None:
        """Check field values; override in subclasses."""

    def fail(self, field: str, message: str) -> None:
        raise ConfigError(f"{type(self).__qualname__}.{field}: {message}")

    def concrete(self, field: str) -> np.ndarray | None:
        """The value of a field as a numpy array, or None when it is not concrete.

        Inside traces and pytree utilities leaves can be tracers or placeholders: skip those.
        """
        value = getattr(self, field)
        return np.asarray(value) if _is_concrete_number(value) else None

    def check_positive(self, *fields: str, allow_zero: bool = False) -> None:
        """Each named field (static int or traced float) must be > 0 (or >= 0)."""
        for name in fields:
            value = self.concrete(name)
            if value is None:
                continue
            ok = np.all(value >= 0) if allow_zero else np.all(value > 0)
            if not ok:
                bound = ">= 0" if allow_zero else "> 0"
                self.fail(name, f"must be {bound}, got {getattr(self, name)!r}")

    def check_range(self, field: str, low: float, high: float) -> None:
        """The traced field must lie in the closed interval [low, high]."""
        value = self.concrete(field)
        if value is not None and not np.all((value >= low) & (value <= high)):
            self.fail(field, f"must lie in [{low}, {high}], got {getattr(self, field)!r}")

    def check_choice(self, field: str, choices: Iterable[Any]) -> None:
        """The static field must be one of ``choices``."""
        choices = tuple(choices)
        if getattr(self, field) not in choices:
            self.fail(field, f"must be one of {choices}, got {getattr(self, field)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values of all fields (floats for traced scalars), e.g. for records."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = float(value)
            elif isinstance(value, dict):  # env_params: arrays as (nested) lists
                value = {k: np.asarray(v).tolist() for k, v in value.items()}
            elif callable(value):  # a function-valued static field (e.g. PPO's drift): its name
                value = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
            out[f.name] = value
        return out


class EnvConfig(ConfigBase):
    """Base of algorithm configs: the environment, by name, and overrides of its params.

    ``env`` may carry the env's static options (``"LQR:n=8,m=2"``, ``"brax/ant:backend=positional"``).
    ``env_params`` overrides fields of the env's params (``{"gravity": 12.0}``); its values are
    traced leaves, so a sweep grid ``{"env_params.gravity": [...]}`` or a ``vmap`` trains across
    physical parameters in one program.
    """

    multiagent: ClassVar[bool] = False  # the algorithm learns on multi-agent envs (agent rows)
    pooled_reset: ClassVar[bool] = False  # the algorithm's env batch honours reset_pool

    env: str = static("CartPole-v1")
    """Environment name (see purejaxlib.envs.list()), optionally with options: name:key=value,..."""
    env_params: dict[str, float] | None = traced(None)
    """Overrides of the env's params, e.g. {"gravity": 12.0} (traced: sweepable)."""
    torso: str = static("auto")
    """Observation torso: "auto" (a CNN for [H, W, C] images and grids, the MLP alone for vectors), "mlp", "cnn"."""
    reset_pool: int = static(0)
    """Fresh starts made per batch step for envs whose episode ended (envs.VecEnv); 0: each env resets itself."""

    @property
    def spec(self) -> Any:
        """Static facts about the env (:class:`purejaxlib.envs.EnvSpec`)."""
        return envs.spec(self.env)

    @property
    def image(self) -> tuple[int, int, int] | None:
        """``[H, W, C]`` the networks' CNN torso reads observations as, or None (the MLP alone)."""
        from purejaxlib.networks import image_shape

        return image_shape(self.spec.obs_shape, self.torso) if not self.spec.agents else None

    def check_env(self) -> None:
        """Validates ``env`` (name and options) and the names, dtypes and shapes of ``env_params``."""
        try:
            envs.check_name(self.env)
            agents = self.spec.agents  # builds the env: its own refusals (a bad option value) land here
        except (envs.UnknownEnvError, TypeError, ValueError, ImportError) as err:
            self.fail("env", str(err))
        if agents and not self.multiagent:
            where = "purejaxlib.algos.ppo (IPPO, MAPPO: ppo.ippo_config / ppo.mappo_config)"
            self.fail("env", f"{self.env} is a multi-agent env (agents {', '.join(agents)}); train it with {where}")
        self._check_torso(agents)
        self._check_reset_pool(agents)
        overrides: Any = self.env_params
        if overrides is None:
            return
        if not isinstance(overrides, dict):
            self.fail("env_params", f"must be a dict of param name to value, got {overrides!r}")
        if any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(overrides)):
            return  # inside a program: checked when the config was built
        env, defaults = envs.make(self.env)
        names = [f.name for f in dataclasses.fields(defaults)]
        canonical = {}
        for key, value in overrides.items():
            if key not in names:
                self.fail("env_params", f"{self.env} has no param {key!r}: {close_matches(key, names)}")
            if value is None or isinstance(value, (str, bytes)):
                self.fail("env_params", f"{key} must be a number or an array of numbers, got {value!r}")
            kind = np.asarray(value).dtype.kind if not isinstance(value, dict) else "O"
            if kind == "O":
                continue  # a pytree placeholder (jax utilities rebuild configs with those), not a value
            if kind not in "biuf":
                self.fail("env_params", f"{key} must be a number or an array of numbers, got {value!r}")
            try:  # leading axes are a sweep's batch
                canonical[key] = envs.cast_param(key, getattr(defaults, key), value, batched=True)
            except ValueError as err:
                self.fail("env_params", str(err))
        self._check_action_space_unchanged(env, defaults, canonical)
        object.__setattr__(self, "env_params", {**overrides, **canonical})

    def _check_torso(self, agents: tuple[str, ...]) -> None:
        from purejaxlib.networks import TORSOS, image_shape

        self.check_choice("torso", TORSOS)
        if agents and self.torso == "cnn":
            self.fail("torso", f"{self.env} is a multi-agent env: its agent rows go to the MLP; use 'auto' or 'mlp'")
        try:
            image_shape(self.spec.obs_shape, self.torso)
        except ValueError as err:
            self.fail("torso", f"{err} ({self.env}); use 'auto' or 'mlp'")

    def _check_reset_pool(self, agents: tuple[str, ...]) -> None:
        self.check_positive("reset_pool", allow_zero=True)
        if not self.reset_pool:
            return
        if not self.pooled_reset:
            self.fail("reset_pool", f"{type(self).__module__} does not step a reset pool; leave it 0")
        if agents:
            self.fail("reset_pool", f"{self.env} is a multi-agent env; a reset pool is for single-agent envs")
        num_envs = getattr(self, "num_envs", None)
        if isinstance(num_envs, int) and self.reset_pool > num_envs:
            self.fail("reset_pool", f"{self.reset_pool} is more than num_envs={num_envs}")
        try:
            envs.PendingReset(envs.make(self.env)[0])
        except ValueError as err:
            self.fail("reset_pool", str(err))

    def _check_action_space_unchanged(self, env: Any, defaults: Any, overrides: dict[str, np.ndarray]) -> None:
        """The algorithms size and scale actions from the registered env's action space
        (``spec``), so an override that moves its bounds would be silently ignored: refuse it."""
        from gymnax.environments import spaces

        before = env.action_space(defaults)
        if not isinstance(before, spaces.Box) or not overrides:
            return
        # Each sweep member (leading axes) is checked: flatten them into one.
        flat = {k: np.reshape(v, (-1,) + np.shape(getattr(defaults, k))) for k, v in overrides.items()}
        for i in range(max(len(v) for v in flat.values())):
            member = defaults.replace(**{k: v[min(i, len(v) - 1)] for k, v in flat.items()})
            after = env.action_space(member)
            if not (
                np.allclose(np.asarray(after.low), np.asarray(before.low))
                and np.allclose(np.asarray(after.high), np.asarray(before.high))
            ):
                self.fail(
                    "env_params",
                    f"{sorted(overrides)} change the action bounds of {self.env} "
                    f"(from [{np.asarray(before.low).tolist()}, {np.asarray(before.high).tolist()}] to "
                    f"[{np.asarray(after.low).tolist()}, {np.asarray(after.high).tolist()}]); the algorithms "
                    "scale actions to the registered bounds, so register an env with the new bounds instead",
                )
