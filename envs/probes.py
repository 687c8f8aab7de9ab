"""Probe environments: tiny MDPs with known values, for debugging learners one piece at a time
(in the spirit of Andy Jones' "debugging RL" probes). Each isolates one thing a learner must get
right; when an agent fails on a real task, the first probe it also fails on names the broken part:

=====  ===============================  =======================================================
probe  what it isolates                 MDP (every episode terminates; nothing is truncated)
=====  ===============================  =======================================================
1      value fitting at all             obs 0, one step, reward +1
2      value depends on observation     obs +-1 at random, one step, reward = obs
3      discounting / bootstrapping      obs 0 then obs 1, two steps, reward 0 then +1
4      policy follows the reward        obs 0, one step, reward depends on the action
5      policy depends on observation    obs +-1 at random, one step, reward depends on both
=====  ===============================  =======================================================

Each comes with discrete actions (``"Probe4-ActionReward"``) and continuous ones
(``"Probe4-ActionReward-continuous"``); :class:`ProbeEnv` states the spaces, rewards and answers.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purejaxlib.envs import register

__all__ = [
    "PROBES",
    "ProbeEnv",
    "ProbeParams",
    "ProbeState",
    "ConstantReward",
    "ObservationReward",
    "TwoStepDiscount",
    "ActionReward",
    "ActionObservationReward",
    "make_probe",
]

CONTINUOUS_SUFFIX = "-continuous"
CONTINUOUS_TARGET = 0.5  # a* of the continuous action probes (times obs for probe 5)


@struct.dataclass
class ProbeState:
    time: jax.Array  # int32 scalar: steps taken in this episode
    obs: jax.Array  # [1] float32: the current observation


@struct.dataclass
class ProbeParams:
    # A probe terminates after its episode length (1 or 2 steps). The limit defaults to that
    # length, so it never fires; set below it (probe 3 with 1) and the step truncates instead.
    max_steps_in_episode: int = 1


class ProbeEnv(environment.Environment[ProbeState, ProbeParams]):
    """Shared machinery; subclasses set the class attributes and override ``_reset_obs``,
    ``_reward`` and ``optimal_q``.

    Observations are float32 ``[1]``. Actions: Discrete(1) for probes 1-3 and Discrete(2) for 4-5,
    or with ``continuous=True`` a 1-D action in [-1, 1], clipped by the env. Rewards of the action
    probes: discrete, +1 for the right action and -1 for the wrong one (probe 4: action 1; probe
    5: action 1 when obs = +1, action 0 when obs = -1); continuous, ``1 - 2 (a - a*)^2`` with
    a* = 0.5 (probe 4) or 0.5 * obs (probe 5), a smooth reward with an interior optimum that a
    Gaussian or tanh-Gaussian policy can reach (its expected reward is
    ``1 - 2 ((mean - a*)^2 + var)``, maximized at mean = a*).

    The known answers, vectorized over observations ``[..., 1]``: ``optimal_action(obs)``,
    ``optimal_q(obs, action, gamma)``, ``optimal_value(obs, gamma)``, ``optimal_start_value(gamma)``
    (the expected optimal discounted return from a reset; gamma = 1 gives the undiscounted return)
    and ``observations()`` (every observation the probe can show). On probes 1-3 there is nothing
    to choose, so ``optimal_value`` is every policy's value: what a critic must converge to.
    """

    title: str = ""  # registered name (discrete version)
    episode_length: int = 1
    discrete_actions: int = 1  # actions of the discrete version

    def __init__(self, continuous: bool = False):
        super().__init__()
        self.continuous = bool(continuous)

    # -- the MDP ------------------------------------------------------------------------------

    def _reset_obs(self, key: jax.Array) -> jax.Array:
        """The first observation ``[1]``."""
        del key
        return jnp.zeros((1,), jnp.float32)

    def _next_obs(self, obs: jax.Array) -> jax.Array:
        """Observation after a step (probes 1, 2, 4, 5 keep theirs; the step ends the episode)."""
        return obs

    def _reward(self, obs: jax.Array, action: jax.Array, time: jax.Array) -> jax.Array:
        raise NotImplementedError

    def _action(self, action: Any) -> jax.Array:
        """Discrete: int32 scalar. Continuous: float32 scalar clipped to [-1, 1]."""
        if self.continuous:
            return jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), ()), -1.0, 1.0)
        return jnp.reshape(jnp.asarray(action), ()).astype(jnp.int32)

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=self.episode_length)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        obs = self._reset_obs(key)
        return obs, ProbeState(jnp.int32(0), obs)

    def step_env(self, key: jax.Array, state: ProbeState, action: Any, params: ProbeParams):
        del key
        reward = self._reward(state.obs, self._action(action), state.time).astype(jnp.float32)
        time = state.time + 1
        obs = self._next_obs(state.obs)
        terminated = time >= self.episode_length
        obs, new_state = self._apply_transition_gradient_policy(obs, ProbeState(time, obs))
        return obs, new_state, reward, terminated, {}

    def is_truncated(self, state: ProbeState, params: ProbeParams) -> jax.Array:
        # The time limit truncates only steps that did not terminate: never both at once.
        return (state.time >= params.max_steps_in_episode) & (state.time < self.episode_length)

    def is_terminated(self, state: ProbeState, params: ProbeParams) -> jax.Array:
        return state.time >= self.episode_length

    # -- spaces and names ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.title + (CONTINUOUS_SUFFIX if self.continuous else "")

    @property
    def num_actions(self) -> int:
        return 1 if self.continuous else self.discrete_actions

    def action_space(self, params: ProbeParams | None = None):
        if self.continuous:
            return spaces.Box(-1.0, 1.0, (1,), jnp.float32)
        return spaces.Discrete(self.discrete_actions)

    def observation_space(self, params: ProbeParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    # -- the known answers --------------------------------------------------------------------

    def observations(self) -> np.ndarray:
        """Every observation the probe can show, ``[k, 1]`` float32."""
        return np.zeros((1, 1), np.float32)

    def start_distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """Reset observations ``[k, 1]`` and their probabilities ``[k]``."""
        return np.zeros((1, 1), np.float32), np.ones(1)

    def optimal_q(self, obs: Any, action: Any, gamma: float) -> np.ndarray:
        """Q*(obs, action) ``[...]`` for observations ``[..., 1]`` and actions ``[...]``
        (discrete) or ``[..., 1]`` (continuous)."""
        raise NotImplementedError

    def optimal_action(self, obs: Any) -> np.ndarray:
        """An optimal action for each observation ``[..., 1]``: int32 ``[...]`` (discrete) or
        float32 ``[..., 1]`` (continuous)."""
        obs = np.asarray(obs, np.float32)
        if self.continuous:
            return np.zeros(obs.shape, np.float32)
        return np.zeros(obs.shape[:-1], np.int32)

    def optimal_value(self, obs: Any, gamma: float) -> np.ndarray:
        """V*(obs) ``[...]`` for observations ``[..., 1]`` under discount ``gamma``."""
        return self.optimal_q(obs, self.optimal_action(obs), gamma)

    def optimal_start_value(self, gamma: float = 1.0) -> float:
        """Expected optimal discounted return from a reset (``gamma=1``: undiscounted)."""
        obs, prob = self.start_distribution()
        return float(np.sum(prob * self.optimal_value(obs, gamma)))


def _obs_scalar(obs: Any) -> np.ndarray:
    return np.asarray(obs, np.float64)[..., 0]


def _random_sign(key: jax.Array) -> jax.Array:
    """+1 or -1 with equal probability, as an observation ``[1]``."""
    return jnp.where(jax.random.bernoulli(key, 0.5, (1,)), 1.0, -1.0).astype(jnp.float32)


class ConstantReward(ProbeEnv):
    """Probe 1: reward +1, one step. V = 1 everywhere. Fails: the value loss or its wiring."""

    title = "Probe1-ConstantReward"

    def _reward(self, obs, action, time):
        return jnp.float32(1.0)

    def optimal_q(self, obs, action, gamma):
        return np.ones(np.shape(obs)[:-1])


class ObservationReward(ProbeEnv):
    """Probe 2: obs +-1, reward = obs, one step. V(obs) = obs. Fails: the critic ignores its
    input, or observations and rewards are misaligned in the batch."""

    title = "Probe2-ObservationReward"

    def _reset_obs(self, key):
        return _random_sign(key)

    def _reward(self, obs, action, time):
        return obs[0]

    def observations(self):
        return np.array([[-1.0], [1.0]], np.float32)

    def start_distribution(self):
        return self.observations(), np.array([0.5, 0.5])

    def optimal_q(self, obs, action, gamma):
        return _obs_scalar(obs)


class TwoStepDiscount(ProbeEnv):
    """Probe 3: obs 0 then obs 1, reward 0 then +1, two steps. V(0) = gamma, V(1) = 1. Fails:
    discounting, bootstrapping, or termination handling (a learner that bootstraps past the end
    or never bootstraps gets V(0) wrong)."""

    title = "Probe3-TwoStepDiscount"
    episode_length = 2

    def _next_obs(self, obs):
        return jnp.ones_like(obs)

    def _reward(self, obs, action, time):
        return jnp.where(time >= 1, 1.0, 0.0)

    def observations(self):
        return np.array([[0.0], [1.0]], np.float32)

    def optimal_q(self, obs, action, gamma):
        second = _obs_scalar(obs) > 0.5
        return np.where(second, 1.0, float(gamma))


class ActionReward(ProbeEnv):
    """Probe 4: obs 0, one step, reward from the action alone (see :class:`ProbeEnv`). V* = 1.
    Fails: the policy update does not follow the advantage/critic."""

    title = "Probe4-ActionReward"
    discrete_actions = 2

    def _target(self, obs):
        return CONTINUOUS_TARGET

    def _right(self, obs):
        """The right discrete action (numpy or jax, elementwise)."""
        return obs * 0 + 1

    def _reward(self, obs, action, time):
        if self.continuous:
            return 1.0 - 2.0 * jnp.square(action - self._target(obs[0]))
        return jnp.where(action == self._right(obs[0]), 1.0, -1.0)

    def optimal_q(self, obs, action, gamma):
        x = _obs_scalar(obs)
        if self.continuous:
            a = np.clip(np.asarray(action, np.float64)[..., 0], -1.0, 1.0)
            return 1.0 - 2.0 * np.square(a - self._target(x))
        return np.where(np.asarray(action) == self._right(x), 1.0, -1.0)

    def optimal_action(self, obs):
        x = _obs_scalar(obs)
        if self.continuous:
            return (np.asarray(self._target(x)) * np.ones_like(x))[..., None].astype(np.float32)
        return self._right(x).astype(np.int32)


class ActionObservationReward(ActionReward):
    """Probe 5: obs +-1, one step, the right action depends on the observation. V* = 1. Fails:
    the policy ignores its input, or actions are misaligned with observations in the batch."""

    title = "Probe5-ActionObservationReward"

    def _target(self, obs):
        return CONTINUOUS_TARGET * obs

    def _right(self, obs):
        return (obs > 0) * 1

    def _reset_obs(self, key):
        return _random_sign(key)

    def observations(self):
        return np.array([[-1.0], [1.0]], np.float32)

    def start_distribution(self):
        return self.observations(), np.array([0.5, 0.5])


PROBES: tuple[type[ProbeEnv], ...] = (
    ConstantReward,
    ObservationReward,
    TwoStepDiscount,
    ActionReward,
    ActionObservationReward,
)


def make_probe(name: str) -> ProbeEnv:
    """The probe env registered as ``name`` (e.g. ``"Probe4-ActionReward-continuous"``)."""
    continuous = name.endswith(CONTINUOUS_SUFFIX)
    title = name[: -len(CONTINUOUS_SUFFIX)] if continuous else name
    for cls in PROBES:
        if cls.title == title:
            return cls(continuous)
    raise ValueError(f"no probe named {name!r}; probes are {[c.title for c in PROBES]} (+ {CONTINUOUS_SUFFIX!r})")


def _factory(name: str):
    def factory() -> tuple[ProbeEnv, ProbeParams]:
        env = make_probe(name)
        return env, env.default_params

    return factory


def names() -> list[str]:
    """Registered names of all probes, discrete then continuous."""
    return [cls.title for cls in PROBES] + [cls.title + CONTINUOUS_SUFFIX for cls in PROBES]


for _name in names():
    register(_name, _factory(_name))
