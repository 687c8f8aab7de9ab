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

from collections.abc import Callable
from typing import Any, Literal, NamedTuple, cast

import jax
import jax.numpy as jnp

from purejaxlib import onpolicy, training
from purejaxlib.config import static, traced
from purejaxlib.exploration import epsilon_greedy, linear_schedule
from purejaxlib.networks import QNetwork
from purejaxlib.onpolicy import TrainResult, make_tx
from purejaxlib.optim import minibatch_sgd
from purejaxlib.returns import q_lambda
from purejaxlib.rollout import episode_metrics, rollout


class Config(onpolicy.Config):
    """PQN hyperparameters; the rollout and update sizes are :class:`purejaxlib.onpolicy.Config`'s.
    Static fields set program structure; traced ones are float32 leaves.

    Defaults follow purejaxql's CartPole-v1 config, except Adam for RAdam, ``lr`` 5e-5 for 1e-4 and
    ``eps_end`` 0.1 for 0.2 (so training returns mostly measure the learned policy rather than its
    exploration noise). With 1e-4 and 0.05, 2 of 8 seeds collapsed late in 500k-step runs
    (benchmarks/README.md, reference results).
    """

    num_envs: int = static(32)
    """Parallel envs per agent."""
    num_steps: int = static(64)
    """Steps per env per update (rollout length)."""
    num_minibatches: int = static(16)
    """Minibatches per epoch; must divide num_envs * num_steps."""
    hidden: tuple[int, ...] = static((256, 256))
    """Hidden layer widths of the Q-network."""
    activation: Literal["tanh", "relu", "elu", "gelu", "swish"] = static("relu")
    """Hidden-layer activation."""
    layer_norm: bool = static(True)
    """LayerNorm before each hidden activation (what makes PQN stable without a target network)."""

    lr: float = traced(5e-5)
    """Adam learning rate (annealed to 0 when ``anneal_lr``). purejaxql's 1e-4 let seeds collapse
    late in 500k-step CartPole runs (benchmarks/README.md, reference results)."""
    max_grad_norm: float = traced(10.0)
    """Global gradient-norm clip."""
    q_lambda: float = traced(0.95)
    """Lambda of the Q(lambda) targets (0: one-step Q-learning, 1: Monte Carlo)."""
    eps_start: float = traced(1.0)
    """Exploration epsilon at the start of training."""
    eps_end: float = traced(0.1)
    """Exploration epsilon after the decay (and of the non-deterministic policy)."""
    eps_fraction: float = traced(0.2)
    """Fraction of training over which epsilon falls linearly from eps_start to eps_end."""
    reward_scale: float = traced(0.1)
    """Factor on rewards in the targets (keeps Q-values near unit scale; metrics stay unscaled)."""

    def validate(self) -> None:
        super().validate()
        if not self.spec.discrete:
            self.fail(
                "env",
                f"PQN needs discrete actions; {self.env} is continuous (actions of shape "
                f"{self.spec.action_shape}). Pick a discrete env (e.g. CartPole-v1) or use ppo.",
            )
        self.check_positive("reward_scale")
        for name in ("q_lambda", "eps_start", "eps_end", "eps_fraction"):
            self.check_range(name, 0.0, 1.0)


class State(NamedTuple):
    """Everything a run carries from one update to the next."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array  # [num_envs, obs_dim]
    key: jax.Array
    iteration: jax.Array  # int32 scalar, updates done so far


def make_env(config: Config) -> tuple[Any, Any]:
    """The vectorized, wrapped env and its params for ``config``."""
    return onpolicy.make_env(config)


def make_network(config: Config) -> QNetwork:
    return QNetwork(
        config.spec.num_actions, tuple(config.hidden), config.activation, config.layer_norm, image=config.image
    )


def q_values(config: Config, params: Any, obs: jax.Array) -> jax.Array:
    """``Q(obs, .)``: ``[..., obs_dim] -> [..., num_actions]``."""
    return cast(jax.Array, make_network(config).apply(params, obs))


def epsilon(config: Config, iteration: jax.Array) -> jax.Array:
    """Exploration rate of the update that starts after ``iteration`` updates (scalar)."""
    return linear_schedule(config.eps_start, config.eps_end, config.eps_fraction, iteration / config.num_updates)


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
    q = q_values(config, params, batch.obs)
    q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
    loss = 0.5 * jnp.square(q_taken - batch.target).mean()
    return loss, {"q_mean": q_taken.mean()}


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One update: collect ``num_steps`` x ``num_envs`` transitions epsilon-greedily, then regress
    Q onto their Q(lambda) returns. ``index`` (the update's number) is not needed here."""
    env, env_params = make_env(config)
    eps = epsilon(config, state.iteration)

    def policy_fn(obs, key):
        action = epsilon_greedy(key, q_values(config, state.params, obs), eps)
        return action, action, {}

    key, rollout_key, learn_key = jax.random.split(state.key, 3)
    env_state, obs, trajectory = rollout(
        env, env_params, policy_fn, state.env_state, state.obs, rollout_key, config.num_steps
    )
    # Bootstrap values come from the params that collected the rollout (no target network).
    next_q_max = q_values(config, state.params, trajectory.final_obs).max(axis=-1)
    targets = q_lambda(
        trajectory.reward * config.reward_scale,
        next_q_max,
        trajectory.terminated,
        trajectory.truncated,
        config.gamma,
        config.q_lambda,
    )
    batch = Batch(trajectory.obs, trajectory.action, targets)
    batch = onpolicy.flatten_batch(config, batch)
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
    iteration = state.iteration + 1
    metrics = {**episode_metrics(trajectory), **learn_stats, "epsilon": eps, **onpolicy.counters(config, iteration)}
    return State(params, opt_state, env_state, obs, key, iteration), metrics


def train(config: Config, key: jax.Array) -> TrainResult:
    """``init`` then ``num_updates`` calls of ``step`` inside ``lax.scan``; jit- and vmap-able."""
    return TrainResult(*training.train(init, step, config, key))


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> env action`` (int32) for raw env observations ``[..., *obs_shape]``.

    Greedy when ``deterministic``; otherwise epsilon-greedy at the end-of-training ``eps_end``.
    """
    params = state.params

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        obs = config.spec.flatten(obs)
        q = q_values(config, params, obs)
        if deterministic:
            return jnp.argmax(q, axis=-1).astype(jnp.int32)
        return epsilon_greedy(key, q, config.eps_end)

    return act
