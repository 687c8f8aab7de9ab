"""navix (Pignatelli et al., MiniGrid in JAX) on the gymnax 1.x protocol: ``navix/<id>``.

navix's ``step(timestep, action)`` resets lazily, when given a timestep that already ended; the
adapter resets eagerly (gymnax's auto-reset, ``info["final_observation"]`` the true successor), so
navix never sees an ended timestep. navix's step types map one to one: ``TERMINATION`` (the goal
reached, lava) is ``terminated``; ``truncated`` is navix's step counter at its ``max_steps`` (option
``max_steps``, default 100 as navix's) or this adapter's ``params.max_steps_in_episode``.

Options: ``max_steps`` and ``observation`` (navix's observation functions: ``symbolic``, the
default, ``[H, W, 3]`` grid codes; ``symbolic_first_person``; ``categorical``;
``categorical_first_person``; ``rgb``; ``rgb_first_person``). Grid and image observations get the CNN
torso. Randomness lives in navix's state (the step key is unused). Needs the extra (Python >= 3.11:
navix depends on rlax): ``pip install 'purejaxlib[navix]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxlib.envs.suites import SuiteEnv, SuiteParams, require

EXTRA = "navix"
OBSERVATIONS = (
    "symbolic",
    "symbolic_first_person",
    "categorical",
    "categorical_first_person",
    "rgb",
    "rgb_first_person",
)
TERMINATION = 2


# navix 0.7's registry (tests/test_suites.py checks it against navix's own)
NAMES = (
    "Navix-DistShift1-v0",
    "Navix-DistShift2-v0",
    "Navix-DoorKey-16x16-v0",
    "Navix-DoorKey-5x5-v0",
    "Navix-DoorKey-6x6-v0",
    "Navix-DoorKey-8x8-v0",
    "Navix-DoorKey-Random-16x16-v0",
    "Navix-DoorKey-Random-5x5-v0",
    "Navix-DoorKey-Random-6x6-v0",
    "Navix-DoorKey-Random-8x8-v0",
    "Navix-Dynamic-Obstacles-16x16-v0",
    "Navix-Dynamic-Obstacles-5x5-Random-v0",
    "Navix-Dynamic-Obstacles-5x5-v0",
    "Navix-Dynamic-Obstacles-6x6-Random-v0",
    "Navix-Dynamic-Obstacles-6x6-v0",
    "Navix-Dynamic-Obstacles-8x8-v0",
    "Navix-Empty-16x16-v0",
    "Navix-Empty-5x5-v0",
    "Navix-Empty-6x6-v0",
    "Navix-Empty-8x8-v0",
    "Navix-Empty-Random-16x16-v0",
    "Navix-Empty-Random-5x5-v0",
    "Navix-Empty-Random-6x6-v0",
    "Navix-Empty-Random-8x8-v0",
    "Navix-FourRooms-v0",
    "Navix-GoToDoor-5x5-v0",
    "Navix-GoToDoor-6x6-v0",
    "Navix-GoToDoor-8x8-v0",
    "Navix-KeyCorridorS3R1-v0",
    "Navix-KeyCorridorS3R2-v0",
    "Navix-KeyCorridorS3R3-v0",
    "Navix-KeyCorridorS4R3-v0",
    "Navix-KeyCorridorS5R3-v0",
    "Navix-KeyCorridorS6R3-v0",
    "Navix-LavaGapS5-v0",
    "Navix-LavaGapS6-v0",
    "Navix-LavaGapS7-v0",
    "Navix-SimpleCrossingS11N5-v0",
    "Navix-SimpleCrossingS9N1-v0",
    "Navix-SimpleCrossingS9N2-v0",
    "Navix-SimpleCrossingS9N3-v0",
)


class NavixEnv(SuiteEnv):
    """One navix env, adapted (see the module docstring)."""

    def __init__(self, name: str, max_steps: int, observation: str):
        if observation not in OBSERVATIONS:
            raise ValueError(f"navix/{name}: observation must be one of {OBSERVATIONS}, got {observation!r}")
        if max_steps < 1:
            raise ValueError(f"navix/{name}: max_steps must be >= 1, got {max_steps}")
        nx = require("navix", EXTRA, f"navix/{name}")
        self.navix = nx.make(name, max_steps=max_steps, observation_fn=getattr(nx.observations, observation))
        obs = jax.eval_shape(self.navix.reset, jax.random.key(0)).observation
        # every navix observation is uint8 (rgb pixels, or grid codes)
        super().__init__(f"navix/{name}", int(self.navix.action_space.n), tuple(obs.shape), 0.0, 255.0)
        self._default = SuiteParams(max_steps_in_episode=int(max_steps))

    @property
    def default_params(self) -> SuiteParams:
        return self._default

    def suite_reset(self, key: jax.Array, params: SuiteParams) -> tuple[jax.Array, Any]:
        timestep = self.navix.reset(key)
        return jnp.asarray(timestep.observation, jnp.float32), timestep

    def suite_step(self, key, inner, action, params, time):
        del key  # navix's randomness lives in its state
        timestep = self.navix.step(inner, jnp.asarray(action, jnp.int32))
        terminated = timestep.step_type == TERMINATION
        truncated = timestep.t >= self.navix.max_steps
        return jnp.asarray(timestep.observation, jnp.float32), timestep, timestep.reward, terminated, truncated, {}


def factory(name: str) -> Callable[..., tuple[NavixEnv, SuiteParams]]:
    def make(max_steps: int = 100, observation: str = "symbolic") -> tuple[NavixEnv, SuiteParams]:
        env = NavixEnv(name, max_steps, observation)
        return env, env.default_params

    make.__name__ = f"make_navix_{name}"
    return make
