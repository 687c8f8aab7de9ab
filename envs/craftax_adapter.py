"""Craftax (Matthews et al., 2024) on the gymnax 1.x protocol: ``craftax/Craftax-Classic-Symbolic-v1``,
``craftax/Craftax-Classic-Pixels-v1``, ``craftax/Craftax-Symbolic-v1``, ``craftax/Craftax-Pixels-v1``.

Craftax's step is the old five-value one: one ``done`` for "the player died, stood in lava, or the
episode ran ``max_timesteps`` steps" (and its ``discount`` is 0 at the time limit too). The adapter
steps craftax's env without auto-reset and tells the two apart through craftax's own step counter:
``terminated`` is craftax's game-over test with the time limit lifted (a real end), ``truncated``
is its counter reaching the limit. The limit is ``params.max_steps_in_episode`` (traced; default
craftax's ``max_timesteps``: 10,000 Classic, 100,000 full), written into craftax's params each step.

Symbolic observations are vectors (the MLP torso), pixel ones ``[H, W, 3]`` images (the CNN torso).
``info`` carries craftax's achievement flags (``Achievements/<name>``, 100 on the step an episode
ends if unlocked in it, else 0) for achievement rates. Needs the extra: ``pip install 'purejaxlib[craftax]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxlib.envs.suites import SuiteEnv, SuiteParams, quiet, require

NAMES = ("Craftax-Classic-Symbolic-v1", "Craftax-Classic-Pixels-v1", "Craftax-Symbolic-v1", "Craftax-Pixels-v1")
EXTRA = "craftax"
NO_LIMIT = 2**30


class CraftaxEnv(SuiteEnv):
    """One craftax env without auto-reset, adapted (see the module docstring)."""

    def __init__(self, name: str):
        craftax_env = require("craftax.craftax_env", EXTRA, f"craftax/{name}")
        with quiet():  # the pixel envs cache their textures on first use, printing as they do
            self.craftax = craftax_env.make_craftax_env_from_name(name, auto_reset=False)
            inner = self.craftax.default_params
            space = self.craftax.observation_space(inner)
        super().__init__(f"craftax/{name}", int(self.craftax.action_space(inner).n), tuple(space.shape), 0.0, 1.0)
        self._default = SuiteParams(max_steps_in_episode=int(inner.max_timesteps), inner=inner)

    @property
    def default_params(self) -> SuiteParams:
        return self._default

    def _inner(self, params: SuiteParams) -> Any:
        return params.inner.replace(max_timesteps=params.max_steps_in_episode)

    def suite_reset(self, key: jax.Array, params: SuiteParams) -> tuple[jax.Array, Any]:
        obs, state = self.craftax.reset_env(key, self._inner(params))
        return jnp.asarray(obs, jnp.float32), state

    def suite_step(self, key, inner, action, params, time):
        inner_params = self._inner(params)
        obs, state, reward, done, info = self.craftax.step_env(key, inner, jnp.asarray(action, jnp.int32), inner_params)
        terminated = self.craftax.is_terminal(state, inner_params.replace(max_timesteps=NO_LIMIT))
        time_limit = jnp.logical_and(done, state.timestep >= inner_params.max_timesteps)
        info = {k: v for k, v in info.items() if k.startswith("Achievements/")}
        return jnp.asarray(obs, jnp.float32), state, reward, terminated, time_limit, info


def factory(name: str) -> Callable[..., tuple[CraftaxEnv, SuiteParams]]:
    def make() -> tuple[CraftaxEnv, SuiteParams]:
        env = CraftaxEnv(name)
        return env, env.default_params

    make.__name__ = f"make_craftax_{name}"
    return make
