"""XLand-MiniGrid (Nikulin et al.) on the gymnax 1.x protocol: ``xminigrid/<id>`` for its MiniGrid envs.

xminigrid's API is dm_env-style: ``reset(params, key) -> TimeStep``, ``step(params, timestep,
action) -> TimeStep``, no auto-reset. A last step with discount 0 (the goal reached) is
``terminated``; a last step with discount 1 (its step counter at ``max_steps``) is ``truncated``, as
is this adapter's ``params.max_steps_in_episode`` (default: xminigrid's own ``max_steps``).
Observations are the agent's ``[view, view, 2]`` grid (tile and colour codes), for the CNN torso.

Registered: xminigrid's ``MiniGrid-*`` envs. Its ``XLand-MiniGrid-R*`` meta-RL envs are left out: they
sample tasks from rule-set benchmarks that xminigrid downloads, and purejaxlib downloads nothing at
run time. Randomness lives in xminigrid's state (the step key is unused). Needs the extra:
``pip install 'purejaxlib[xminigrid]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxlib.envs.suites import SuiteEnv, SuiteParams, require

EXTRA = "xminigrid"
LAST = 2


# xminigrid 0.9's MiniGrid ids (tests/test_suites.py checks them against xminigrid's registry)
NAMES = (
    "MiniGrid-BlockedUnlockPickUp",
    "MiniGrid-DoorKey-16x16",
    "MiniGrid-DoorKey-5x5",
    "MiniGrid-DoorKey-6x6",
    "MiniGrid-DoorKey-8x8",
    "MiniGrid-Empty-16x16",
    "MiniGrid-Empty-5x5",
    "MiniGrid-Empty-6x6",
    "MiniGrid-Empty-8x8",
    "MiniGrid-EmptyRandom-16x16",
    "MiniGrid-EmptyRandom-5x5",
    "MiniGrid-EmptyRandom-6x6",
    "MiniGrid-EmptyRandom-8x8",
    "MiniGrid-FourRooms",
    "MiniGrid-LockedRoom",
    "MiniGrid-MemoryS128",
    "MiniGrid-MemoryS16",
    "MiniGrid-MemoryS32",
    "MiniGrid-MemoryS64",
    "MiniGrid-MemoryS8",
    "MiniGrid-Playground",
    "MiniGrid-Unlock",
    "MiniGrid-UnlockPickUp",
)


class XMiniGridEnv(SuiteEnv):
    """One xminigrid env, adapted (see the module docstring)."""

    def __init__(self, name: str):
        xminigrid = require("xminigrid", EXTRA, f"xminigrid/{name}")
        self.xminigrid, self.inner_params = xminigrid.make(name)
        obs = jax.eval_shape(lambda k: self.xminigrid.reset(self.inner_params, k), jax.random.key(0)).observation
        num_actions = int(self.xminigrid.num_actions(self.inner_params))
        super().__init__(f"xminigrid/{name}", num_actions, tuple(obs.shape), 0.0, 255.0)
        self._default = SuiteParams(max_steps_in_episode=int(self.inner_params.max_steps))

    @property
    def default_params(self) -> SuiteParams:
        return self._default

    def suite_reset(self, key: jax.Array, params: SuiteParams) -> tuple[jax.Array, Any]:
        timestep = self.xminigrid.reset(self.inner_params, key)
        return jnp.asarray(timestep.observation, jnp.float32), timestep

    def suite_step(self, key, inner, action, params, time):
        del key  # xminigrid's randomness lives in its state
        timestep = self.xminigrid.step(self.inner_params, inner, jnp.asarray(action, jnp.int32))
        last = timestep.step_type == LAST
        terminated = jnp.logical_and(last, timestep.discount == 0.0)
        truncated = jnp.logical_and(last, timestep.discount != 0.0)
        return jnp.asarray(timestep.observation, jnp.float32), timestep, timestep.reward, terminated, truncated, {}


def factory(name: str) -> Callable[..., tuple[XMiniGridEnv, SuiteParams]]:
    def make() -> tuple[XMiniGridEnv, SuiteParams]:
        env = XMiniGridEnv(name)
        return env, env.default_params

    make.__name__ = f"make_xminigrid_{name}"
    return make
