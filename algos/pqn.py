"""Parallel Q-Networks (PQN; Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning").

Q-learning without a replay buffer or a target network: many parallel envs collect a
``num_steps`` x ``num_envs`` rollout epsilon-greedily, Q(lambda) returns are computed backward over
it, and a LayerNorm Q-network regresses onto them for a few epochs of minibatch updates (as PPO
does with its rollout). LayerNorm is what keeps these bootstrapped, on-policy-ish updates stable.

Surface (shared by every algorithm in purejaxlib.algos)::

    config = pqn.Config(env="CartPole-v1", total_timesteps=500_000)
    state = pqn.init(config, key)
    state, metrics = pqn.step(config, state)       # one update: collect num_steps x num_envs, learn
    result = pqn.train(config, key)                # init + lax.scan(step); jittable end to end
    act = pqn.policy(config, result.state)         # act(obs, key) -> env action
"""

from __future__ import annotations

from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxlib import envs as envs_lib
from purejaxlib import training
from purejaxlib.config import EnvConfig, static, traced
from purejaxlib.exploration import epsilon_greedy, linear_schedule
from purejaxlib.networks import ACTIVATIONS, QNetwork
from purejaxlib.optim import make_optimizer, minibatch_sgd
from purejaxlib.returns import q_lambda
from purejaxlib.rollout import episode_metrics, rollout


class Config(EnvConfig):
    """PQN hyperparameters. Static fields set program structure; traced ones are float32 leaves.

    Defaults follow purejaxql's CartPole-v1 config, except Adam for RAdam and ``eps_end`` 0.05 for
    0.2 (so training returns measure the learned policy rather than its exploration noise).
    """

    total_timesteps: int = static(500_000)
    """Env steps per agent over the whole run."""
    num_envs: int = static(32)
    """Parallel envs per agent."""
    num_steps: int = static(64)
    """Steps per env per update (rollout length)."""
    update_epochs: int = static(4)
    """Passes over each rollout."""
    num_minibatches: int = static(16)
    """Minibatches per epoch; must divide num_envs * num_steps."""
    hidden: tuple[int, ...] = static((256, 256))
    """Hidden layer widths of the Q-network."""
    activation: Literal["tanh", "relu", "elu", "gelu", "swish"] = static("relu")
    """Hidden-layer activation."""
    layer_norm: bool = static(True)
    """LayerNorm before each hidden activation (what makes PQN stable without a target network)."""
    anneal_lr: bool = static(True)
    """Decay the learning rate linearly to 0."""
    log_interval: int = static(0)
    """Report progress every this many updates (0: never)."""

    lr: float = traced(1e-4)
    """Adam learning rate."""
    gamma: float = traced(0.99)
    """Discount factor."""
    q_lambda: float = traced(0.95)
    """Lambda of the Q(lambda) targets (0: one-step Q-learning, 1: Monte Carlo)."""
    eps_start: float = traced(1.0)
    """Exploration epsilon at the start of training."""
    eps_end: float = traced(0.05)
    """Exploration epsilon after the decay (and of the non-deterministic policy)."""
    eps_decay: float = traced(0.2)
    """Fraction of training over which epsilon falls linearly from eps_start to eps_end."""
    max_grad_norm: float = traced(10.0)
    """Global gradient-norm clip."""
    reward_scale: float = traced(0.1)
    """Factor on rewards in the targets (keeps Q-values near unit scale; metrics stay unscaled)."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def steps_per_update(self) -> int:
        """Env steps per agent per update (every algorithm's Config has this and num_updates)."""
        return self.batch_size

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    def validate(self) -> None:
        self.check_env()
        if not self.spec.discrete:
            self.fail(
                "env",
                f"PQN needs discrete actions; {self.env} is continuous (actions of shape "
                f"{self.spec.action_shape}). Pick a discrete env (e.g. CartPole-v1) or use ppo.",
            )
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
                f"{self.total_timesteps} is less than one update (num_envs * num_steps = {self.batch_size})",
            )
        if not self.hidden or any(int(w) <= 0 for w in self.hidden):
            self.fail("hidden", f"needs one or more positive widths, got {self.hidden!r}")
        self.check_choice("activation", ACTIVATIONS)
        self.check_positive("log_interval", allow_zero=True)
        self.check_positive("lr", "max_grad_norm", "reward_scale")
        for name in ("gamma", "q_lambda", "eps_start", "eps_end", "eps_decay"):
            self.check_range(name, 0.0, 1.0)


class State(NamedTuple):
    """Everything a run carries from one update to the next."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array  # [num_envs, obs_dim]
    key: jax.Array
    update_step: jax.Array  # int32 scalar, updates done so far


class TrainResult(NamedTuple):
    state: State
    metrics: dict[str, jax.Array]  # each [num_updates]


def make_env(config: Config) -> tuple[Any, Any]:
    """The vectorized, wrapped env and its params for ``config``."""
    env, env_params = envs_lib.from_config(config)
    env = envs_lib.EpisodeStatistics(envs_lib.FlattenObservation(env))
    return envs_lib.VecEnv(env, config.num_envs), env_params


def make_network(config: Config) -> QNetwork:
    return QNetwork(config.spec.num_actions, tuple(config.hidden), config.activation, config.layer_norm)


def make_tx(config: Config) -> optax.GradientTransformation:
    steps = config.num_updates * config.update_epochs * config.num_minibatches
    return make_optimizer(config.lr, config.max_grad_norm, anneal_steps=steps if config.anneal_lr else None)


def epsilon(config: Config, update_step: jax.Array) -> jax.Array:
    """Exploration rate of the update that starts after ``update_step`` updates (scalar)."""
    return linear_schedule(config.eps_start, config.eps_end, config.eps_decay, update_step / config.num_updates)


def init(config: Config, key: jax.Array) -> State:
    """Initial params, optimizer state and env states."""
    env, env_params = make_env(config)
    key, net_key, env_key = jax.random.split(key, 3)
    obs, env_state = env.reset(env_key, env_params)
    params = make_network(config).init(net_key, obs[:1])
    opt_state = make_tx(config).init(params)
    return State(params, opt_state, env_state, obs, key, jnp.int32(0))


class Batch(NamedTuple):
    """Flat learner samples, each ``[B, ...]``."""

    obs: jax.Array
    action: jax.Array  # int32
    target: jax.Array  # Q(lambda) return


def q_loss(config: Config, params: Any, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Half mean squared error of ``Q(obs, action)`` to the lambda-returns on a minibatch ``[B, ...]``."""
    q = make_network(config).apply(params, batch.obs)
    q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
    loss = 0.5 * jnp.square(q_taken - batch.target).mean()
    return loss, {"q_mean": q_taken.mean()}


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One update: collect ``num_steps`` x ``num_envs`` transitions epsilon-greedily, then regress
    Q onto their Q(lambda) returns. ``index`` (the update's number) is not needed here."""
    env, env_params = make_env(config)
    network = make_network(config)
    eps = epsilon(config, state.update_step)

    def policy_fn(obs, key):
        action = epsilon_greedy(key, network.apply(state.params, obs), eps)
        return action, action, {}

    key, rollout_key, learn_key = jax.random.split(state.key, 3)
    env_state, obs, trajectory = rollout(
        env, env_params, policy_fn, state.env_state, state.obs, rollout_key, config.num_steps
    )
    # Bootstrap values come from the params that collected the rollout (no target network).
    next_q_max = network.apply(state.params, trajectory.final_obs).max(axis=-1)
    targets = q_lambda(
        trajectory.reward * config.reward_scale,
        next_q_max,
        trajectory.terminated,
        trajectory.truncated,
        config.gamma,
        config.q_lambda,
    )
    batch = Batch(trajectory.obs, trajectory.action, targets)
    batch = jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)
    params, opt_state, learn_stats = minibatch_sgd(
        lambda p, mb: q_loss(config, p, mb),
        make_tx(config),
        state.params,
        state.opt_state,
        batch,
        learn_key,
        config.update_epochs,
        config.num_minibatches,
    )
    update_step = state.update_step + 1
    metrics = {
        **episode_metrics(trajectory),
        **learn_stats,
        "epsilon": eps,
        "env_steps": update_step * config.batch_size,
    }
    return State(params, opt_state, env_state, obs, key, update_step), metrics


def train(config: Config, key: jax.Array) -> TrainResult:
    """``init`` then ``num_updates`` calls of ``step`` inside ``lax.scan``; jit- and vmap-able."""
    return TrainResult(*training.train(init, step, config, key))


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> env action`` (int32) for raw env observations ``[..., *obs_shape]``.

    Greedy when ``deterministic``; otherwise epsilon-greedy at the end-of-training ``eps_end``.
    """
    network = make_network(config)
    params = state.params

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        obs = config.spec.flatten(obs)
        q = network.apply(params, obs)
        if deterministic:
            return jnp.argmax(q, axis=-1).astype(jnp.int32)
        return epsilon_greedy(key, q, config.eps_end)

    return act
