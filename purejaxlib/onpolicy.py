"""What the on-policy learners (PPO and its relatives, PQN) share: the Config fields that size a
rollout and its minibatch updates, their derived sizes and validation, the env stack and the
optimizer. The counterpart of :mod:`purejaxlib.offpolicy` for learners without a replay buffer.

One *update* collects ``num_steps`` steps of ``num_envs`` envs (``batch_size`` transitions), then
takes ``update_epochs`` shuffled passes of ``num_minibatches`` gradient steps over them; a run is
``num_updates`` updates. An algorithm's Config subclasses :class:`Config`, redeclaring a field to
change its default, and its ``validate`` calls ``super().validate()`` first. Also here: the
metrics' x axes (:func:`counters`), the helpers a policy needs at acting time (action bounds,
frozen observation statistics) and :class:`RecurrentAct`, the acting function of a policy with memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxlib import envs as envs_lib
from purejaxlib.config import EnvConfig, static, traced
from purejaxlib.networks import ACTIVATIONS
from purejaxlib.normalization import RunningStats
from purejaxlib.optim import make_optimizer


class Config(EnvConfig):
    """Fields every on-policy learner shares; algorithms subclass and add their own."""

    pooled_reset: ClassVar[bool] = True

    total_timesteps: int = static(500_000)
    """Env steps per agent over the whole run."""
    num_envs: int = static(4)
    """Parallel envs per agent."""
    num_steps: int = static(128)
    """Steps per env per update (rollout length)."""
    update_epochs: int = static(4)
    """Passes over each rollout."""
    num_minibatches: int = static(4)
    """Minibatches per epoch; must divide num_envs * num_steps."""
    hidden: tuple[int, ...] = static((64, 64))
    """Hidden layer widths."""
    activation: Literal["tanh", "relu", "elu", "gelu", "swish"] = static("tanh")
    """Hidden-layer activation."""
    anneal_lr: bool = static(True)
    """Decay the learning rate linearly to 0."""
    log_interval: int = static(0)
    """Report progress every this many updates (0: never)."""

    lr: float = traced(2.5e-4)
    """Adam learning rate."""
    gamma: float = traced(0.99)
    """Discount factor."""
    max_grad_norm: float = traced(0.5)
    """Global gradient-norm clip."""

    @property
    def num_agents(self) -> int:
        """Agents per env: 1, or a multi-agent env's (each agent is one policy row)."""
        return int(self.spec.num_agents)

    @property
    def num_rows(self) -> int:
        """Policy rows stepped together: ``num_envs * num_agents``."""
        return self.num_envs * self.num_agents

    @property
    def batch_size(self) -> int:
        """Transitions per update: ``num_rows * num_steps`` (``num_envs * num_steps`` for one agent)."""
        return self.num_rows * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def steps_per_update(self) -> int:
        """Env steps per update, ``num_envs * num_steps`` (every algorithm's Config has this and
        num_updates); a multi-agent env step moves all its agents."""
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.steps_per_update

    def validate(self) -> None:
        self.check_env()
        self.check_positive("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches")
        if self.batch_size % self.num_minibatches:
            divisors = [d for d in range(1, min(self.batch_size, 64) + 1) if self.batch_size % d == 0]
            self.fail(
                "num_minibatches",
                f"num_envs * num_steps = {self.batch_size} is not divisible by {self.num_minibatches}; "
                f"valid values include {divisors}",
            )
        if self.num_updates < 1:
            self.fail(
                "total_timesteps",
                f"{self.total_timesteps} is less than one update (num_envs * num_steps = {self.steps_per_update})",
            )
        if not self.hidden or any(int(w) <= 0 for w in self.hidden):
            self.fail("hidden", f"needs one or more positive widths, got {self.hidden!r}")
        self.check_choice("activation", ACTIVATIONS)
        self.check_positive("log_interval", allow_zero=True)
        self.check_positive("lr", "max_grad_norm")
        self.check_range("gamma", 0.0, 1.0)


class TrainResult(NamedTuple):
    state: Any  # the algorithm's State after the last update
    metrics: dict[str, jax.Array]  # each [num_updates]


def make_env(
    config: Config, *, group_size: int = 1, normalize_obs: bool = False, normalize_reward: bool = False
) -> tuple[Any, Any]:
    """The vectorized env and its params: flattened observations, episode statistics, actions
    clipped to the bounds (continuous envs), ``config.num_envs`` copies (``group_size``
    consecutive envs reset to one state; ``config.reset_pool`` fresh starts a step handed to envs
    whose episode ended, when set), then the optional running normalizations. A multi-agent
    env's agent rows are folded into the batch: ``config.num_rows`` rows (env-major)."""
    env, env_params = envs_lib.from_config(config)
    multiagent = bool(config.spec.agents)
    if config.reset_pool:
        env = envs_lib.PendingReset(env)
    env = envs_lib.EpisodeStatistics(env if multiagent else envs_lib.FlattenObservation(env))
    if not config.spec.discrete:
        env = envs_lib.ClipAction(env)
    env = envs_lib.VecEnv(env, config.num_envs, group_size=group_size, reset_pool=config.reset_pool)
    if multiagent:
        env = envs_lib.FoldAgents(env, config.num_agents)
    if normalize_obs:
        env = envs_lib.NormalizeObservation(env)
    if normalize_reward:
        env = envs_lib.NormalizeReward(env, config.gamma)
    return env, env_params


def make_tx(config: Config) -> optax.GradientTransformation:
    """Clipped Adam over all ``num_updates * update_epochs * num_minibatches`` gradient steps,
    its learning rate annealed linearly to 0 over them when ``config.anneal_lr``."""
    steps = config.num_updates * config.update_epochs * config.num_minibatches
    return make_optimizer(config.lr, config.max_grad_norm, anneal_steps=steps if config.anneal_lr else None)


def flatten_batch(config: Config, batch: Any) -> Any:
    """Time-major rollout fields ``[num_steps, num_envs, ...]`` -> flat samples ``[batch_size, ...]``."""
    return jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)


def counters(config: Config, iteration: jax.Array) -> dict[str, jax.Array]:
    """The x axes every metrics dict carries: ``iteration`` (updates done, after this one) and
    ``env_steps`` (per agent, after this update)."""
    return {"env_steps": iteration * config.steps_per_update, "iteration": iteration}


def action_bounds(config: Config) -> tuple[jax.Array | None, jax.Array | None]:
    """The env's action bounds ``([A], [A])``; ``(None, None)`` for discrete actions."""
    spec = config.spec
    if spec.discrete:
        return None, None
    return jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)


def obs_stats(env_state: Any) -> RunningStats | None:
    """The observation-normalization statistics in a wrapped env state, found by the wrapper's
    state type wherever it sits in the stack; None when observations are not normalized."""
    while env_state is not None:
        if isinstance(env_state, envs_lib.wrappers.NormObsState):
            return env_state.stats
        env_state = getattr(env_state, "env_state", None)
    return None


class RecurrentAct:
    """A policy with memory: ``act(obs [N, ...], key, carry, first [N]) -> (action, carry)``, where
    ``first`` marks observations that open an episode (the state is reset there), and
    ``act.initial_carry(N)``, the state before any step."""

    def __init__(self, step_fn: Callable[..., tuple[jax.Array, Any]], initial_carry: Callable[[int], Any]):
        self._step, self.initial_carry = step_fn, initial_carry

    def __call__(self, obs: jax.Array, key: jax.Array, carry: Any, first: jax.Array) -> tuple[jax.Array, Any]:
        return self._step(obs, key, carry, first)
