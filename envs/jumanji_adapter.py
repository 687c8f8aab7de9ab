"""Jumanji (InstaDeep) on the gymnax 1.x protocol: ``jumanji/<id>`` for a documented subset.

Jumanji's API is dm_env-style: ``reset(key) -> (state, TimeStep)``, ``step(state, action) ->
(state, TimeStep)``, no auto-reset, randomness carried in its state (the step key is unused). A
last step with discount 0 is a real end (``terminated``); a last step with discount 1 is jumanji's
own time limit (``truncated``), as is this adapter's ``params.max_steps_in_episode`` (default: the
env's ``time_limit`` where it has one, else :data:`DEFAULT_LIMIT`). Most jumanji envs end at their
``time_limit`` with discount 0, as if it were a real end (Snake, Maze, PacMan, Tetris, RubiksCube,
...); the adapter counts the episode's steps and reports a last step at the env's ``time_limit`` as
truncated (a real end on that very step is then reported as truncated too: jumanji's output cannot
tell them apart).

The subset (:data:`NAMES`): single-agent envs whose observation, a NamedTuple of arrays, flattens to
one float vector (leaves in field order, action masks included as features) and whose action is
discrete or multi-discrete (one ``Discrete`` over the product, row-major). Left out: the multi-agent
envs (Cleaner, Connector, LevelBasedForaging, RobotWarehouse, MultiCVRP, SearchAndRescue) and
Sokoban (its levels are downloaded, and purejaxlib downloads nothing at run time), and JobShop (its
multi-discrete action has 10^13 combinations, beyond one Discrete). Needs the extra:
``pip install 'purejaxlib[jumanji]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxlib.envs.suites import (
    SuiteEnv,
    SuiteParams,
    flatten_observation,
    observation_shape,
    require,
    unravel_action,
)

NAMES = (
    "Snake-v1",
    "Game2048-v1",
    "Maze-v0",
    "Knapsack-v1",
    "TSP-v1",
    "CVRP-v1",
    "Minesweeper-v0",
    "PacMan-v1",
    "RubiksCube-partly-scrambled-v0",
    "SlidingTilePuzzle-v0",
    "GraphColoring-v1",
    "Sudoku-very-easy-v0",
    "Tetris-v0",
    "BinPack-v2",
    "MMST-v0",
)
EXTRA = "jumanji"
DEFAULT_LIMIT = 2000
"""Time limit of the envs that have none of their own (Game2048, Knapsack, ...): a policy that keeps
choosing an illegal move would otherwise never end an episode."""
LAST, DISCOUNT_END = 2, 0.0


def _action_sizes(spec: Any) -> tuple[int, ...]:
    """The number of values of each action component: ``(n,)`` for a discrete action."""
    values = np.asarray(spec.num_values).reshape(-1)
    return tuple(int(v) for v in values)


class JumanjiEnv(SuiteEnv):
    """One jumanji env, adapted (see the module docstring)."""

    def __init__(self, name: str):
        jumanji = require("jumanji", EXTRA, f"jumanji/{name}")
        self.jumanji = jumanji.make(name)
        spec = self.jumanji.action_spec
        if not hasattr(spec, "num_values"):
            raise ValueError(f"jumanji/{name}: its action ({type(spec).__name__}) is not discrete")
        self.sizes = _action_sizes(spec)
        _, timestep = jax.eval_shape(self.jumanji.reset, jax.random.key(0))
        shape = observation_shape(timestep.observation)
        super().__init__(f"jumanji/{name}", int(np.prod(self.sizes)), shape, -np.inf, np.inf)
        limit = getattr(self.jumanji, "time_limit", None)
        self.time_limit = int(limit) if limit else 0
        self._default = SuiteParams(max_steps_in_episode=self.time_limit or DEFAULT_LIMIT)

    @property
    def default_params(self) -> SuiteParams:
        return self._default

    def suite_reset(self, key: jax.Array, params: SuiteParams) -> tuple[jax.Array, Any]:
        state, timestep = self.jumanji.reset(key)
        return flatten_observation(timestep.observation), state

    def suite_step(self, key, inner, action, params, time):
        del key  # jumanji's randomness lives in its state
        state, timestep = self.jumanji.step(inner, unravel_action(action, self.sizes))
        last = timestep.step_type == LAST
        at_limit = time >= self.time_limit if self.time_limit else jnp.bool_(False)
        truncated = jnp.logical_and(last, jnp.logical_or(timestep.discount != DISCOUNT_END, at_limit))
        terminated = jnp.logical_and(last, jnp.logical_not(truncated))
        return flatten_observation(timestep.observation), state, timestep.reward, terminated, truncated, {}


def factory(name: str) -> Callable[..., tuple[JumanjiEnv, SuiteParams]]:
    def make() -> tuple[JumanjiEnv, SuiteParams]:
        env = JumanjiEnv(name)
        return env, env.default_params

    make.__name__ = f"make_jumanji_{name}"
    return make
