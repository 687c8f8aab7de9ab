"""Implicit Q-Learning (Kostrikov et al. 2021) for continuous and discrete actions.

A value network fits an upper expectile of the target critics' values at the dataset's actions,
so the critics learn from ``reward + discount * V(next_obs)`` without querying actions outside
the data; the policy is extracted by advantage-weighted regression onto the dataset's actions.

Surface (shared by every algorithm in purejaxlib.algos)::

    config = iql.Config(env="Pendulum-v1", dataset="data/pendulum-medium.npz", offline_updates=100_000)
    result = iql.train(config, key); act = iql.policy(config, result.state)

Offline with ``dataset`` (the usual case); without it IQL learns online from its own replay, as
any replay learner (:mod:`purejaxlib.offpolicy`). The policy: a Gaussian with mean ``tanh(mu)``
in [-1, 1] (continuous, as in the IQL paper's code) or a softmax over logits (discrete).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, cast

import jax
import jax.numpy as jnp

from purejaxlib import losses, offpolicy, replay
from purejaxlib.config import static, traced
from purejaxlib.networks import MLP, Critic, GaussianActor, QNetwork, ensemble_apply, ensemble_init

State = offpolicy.State
TrainResult = offpolicy.TrainResult


class Config(offpolicy.Config):
    """IQL hyperparameters (see :class:`purejaxlib.offpolicy.Config` for the shared ones)."""

    env: str = static("Pendulum-v1")
    """Environment name (see purejaxlib.envs.list())."""
    num_critics: int = static(2)
    """Critics; the value fits the minimum of their targets."""
    layer_norm: bool = static(False)
    """LayerNorm in the critics and the value network."""
    max_weight: float = static(100.0)
    """Cap on the advantage weights ``exp(temperature * A)``."""
    awac: bool = static(False)
    """AWAC instead of IQL: the critics regress onto ``r + discount * min Q'(s', a' ~ pi)`` and the
    advantage is ``min Q(s, a) - E_pi min Q(s, .)`` (no value network); the same weighted extraction."""

    expectile: float = traced(0.7)
    """Expectile of Q the value network fits (0.5: the mean, SARSA-like; towards 1: the max)."""
    temperature: float = traced(3.0)
    """Inverse temperature of the advantage weights (0: behaviour cloning)."""

    features: ClassVar[dict[str, str]] = {
        "expectile": "implicit Q-learning (IQL)",
        "temperature": "implicit Q-learning (IQL)",
        "max_weight": "implicit Q-learning (IQL)",
        "awac": "advantage-weighted actor-critic (AWAC)",
    }

    def validate(self) -> None:
        super().validate()
        self.check_positive("num_critics", "max_weight")
        self.check_range("expectile", 0.0, 1.0)
        self.check_positive("temperature", allow_zero=True)


class Learner(NamedTuple):
    """IQL's part of :class:`State` (``state.learner``)."""

    actor: Any
    """Policy params: ``[..., obs_dim]`` -> ``(mu, log_std)`` ``[..., A]`` each, or logits ``[..., A]``."""
    critic: Any
    """Critic ensemble, leaves ``[num_critics, ...]``: Q ``[N, ...]`` (discrete: ``[N, ..., A]``)."""
    target_critic: Any
    """Target critics, same structure as ``critic``."""
    value: Any
    """Value network params: ``[..., obs_dim] -> [...]``."""
    actor_opt: Any
    critic_opt: Any
    value_opt: Any


def make_actor(config: offpolicy.Config) -> MLP | GaussianActor:
    """The policy network: logits (discrete) or ``(mu, log_std)`` (continuous)."""
    if config.spec.discrete:
        return MLP(
            tuple(config.hidden), config.action_dim, config.activation, orthogonal_init=False, image=config.image
        )
    return GaussianActor(config.action_dim, tuple(config.hidden), config.activation, image=config.image)


def make_critic(config: Config) -> QNetwork | Critic:
    if config.spec.discrete:
        return QNetwork(
            config.action_dim, tuple(config.hidden), config.activation, config.layer_norm, image=config.image
        )
    return Critic(tuple(config.hidden), config.activation, config.layer_norm, image=config.image)


def make_value(config: Config) -> MLP:
    return MLP(
        tuple(config.hidden), 1, config.activation, layer_norm=config.layer_norm, orthogonal_init=False,
        image=config.image,
    )  # fmt: skip


def log_likelihood(config: offpolicy.Config, actor: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
    """The policy's log-probability of ``action`` (int32 ``[B]``, or ``[B, A]`` in [-1, 1]) at ``obs``: ``[B]``."""
    out = make_actor(config).apply(actor, obs)
    if config.spec.discrete:
        log_probs = jax.nn.log_softmax(cast(jax.Array, out))
        return jnp.take_along_axis(log_probs, action[:, None].astype(jnp.int32), axis=-1)[:, 0]
    mu, log_std = cast(tuple[jax.Array, jax.Array], out)
    z = (action - jnp.tanh(mu)) / jnp.exp(log_std)
    return (-0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi)).sum(axis=-1)


def policy_action(config: offpolicy.Config, actor: Any, obs: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """The policy's mode (``key`` None) or a sample: int32 ``[N]`` or ``[N, A]`` in [-1, 1]."""
    out = make_actor(config).apply(actor, obs)
    if config.spec.discrete:
        logits = cast(jax.Array, out)
        if key is None:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(key, logits).astype(jnp.int32)
    mu, log_std = cast(tuple[jax.Array, jax.Array], out)
    mean = jnp.tanh(mu)
    if key is None:
        return mean
    return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)


def critic_values(config: Config, critic: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
    """Every critic's value of the taken ``action`` at ``obs``: ``[N, B]``."""
    if config.spec.discrete:
        q = ensemble_apply(make_critic(config), critic, obs)
        return jnp.take_along_axis(q, action[None, :, None].astype(jnp.int32), axis=-1)[..., 0]
    return ensemble_apply(make_critic(config), critic, obs, action)


def state_value(config: Config, value: Any, obs: jax.Array) -> jax.Array:
    """V(obs): ``[B]``."""
    return cast(jax.Array, make_value(config).apply(value, obs))[..., 0]


def init_learner(config: Config, key: jax.Array, obs: jax.Array) -> Learner:
    """Fresh policy, critics (with a target copy), value network and optimizer states."""
    actor_key, critic_key, value_key = jax.random.split(key, 3)
    actor = make_actor(config).init(actor_key, obs)
    inputs = (obs,) if config.spec.discrete else (obs, jnp.zeros((1, config.action_dim)))
    critic = ensemble_init(make_critic(config), critic_key, config.num_critics, *inputs)
    value = make_value(config).init(value_key, obs)
    tx = offpolicy.make_tx(config)
    return Learner(actor, critic, critic, value, tx.init(actor), tx.init(critic), tx.init(value))


def value_loss(config: Config, value: Any, obs: jax.Array, q_target: jax.Array) -> jax.Array:
    """Expectile regression of V(obs) onto the target critics' minimum ``q_target [B]``."""
    return losses.expectile_loss(q_target - state_value(config, value, obs), config.expectile)


def critic_loss(config: Config, critic: Any, batch: replay.Batch, target: jax.Array) -> tuple[jax.Array, dict]:
    """Ensemble regression onto ``reward + discount * V(next_obs)`` (``target [B]``)."""
    q = critic_values(config, critic, batch.obs, batch.action)
    return losses.ensemble_mse(q, target), {"q_mean": q.mean()}


def actor_loss(config: Config, actor: Any, batch: replay.Batch, weights: jax.Array) -> jax.Array:
    """Advantage-weighted regression: ``-mean(weights * log pi(action | obs))``."""
    return -(weights * log_likelihood(config, actor, batch.obs, batch.action)).mean()


def policy_value(config: Config, critic: Any, actor: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
    """``E_{a ~ pi} min_i Q_i(obs, a)`` ``[B]``: exact over discrete actions, one sample otherwise."""
    if config.spec.discrete:
        q = ensemble_apply(make_critic(config), critic, obs).min(0)  # [B, A]
        probs = jax.nn.softmax(cast(jax.Array, make_actor(config).apply(actor, obs)))
        return (probs * q).sum(-1)
    return critic_values(config, critic, obs, policy_action(config, actor, obs, key)).min(0)


def update(
    config: Config, learner: Learner, batch: replay.Batch, key: jax.Array, step: jax.Array
) -> tuple[Learner, dict]:
    """IQL: value (expectile), then policy (advantage weights from the new value), then critics
    (targets from the new value), then the target critics. AWAC: advantages and critic targets
    from the policy's own actions instead of the value network."""
    del step
    tx = offpolicy.make_tx(config)
    next_key, now_key = jax.random.split(key)
    q_data = critic_values(config, learner.target_critic, batch.obs, batch.action).min(0)
    q_target = jax.lax.stop_gradient(q_data)
    value, value_opt = learner.value, learner.value_opt
    if config.awac:
        v_loss = jnp.float32(jnp.nan)
        baseline = policy_value(config, learner.target_critic, learner.actor, batch.obs, now_key)
        next_value = policy_value(config, learner.target_critic, learner.actor, batch.next_obs, next_key)
    else:
        v_loss, grads = jax.value_and_grad(value_loss, argnums=1)(config, learner.value, batch.obs, q_target)
        value, value_opt = offpolicy.apply_gradients(tx, grads, learner.value, learner.value_opt)
        baseline = state_value(config, value, batch.obs)
        next_value = state_value(config, value, batch.next_obs)

    advantage = q_target - jax.lax.stop_gradient(baseline)
    weights = losses.advantage_weights(advantage, config.temperature, config.max_weight)
    a_loss, grads = jax.value_and_grad(actor_loss, argnums=1)(config, learner.actor, batch, weights)
    actor, actor_opt = offpolicy.apply_gradients(tx, grads, learner.actor, learner.actor_opt)

    target = jax.lax.stop_gradient(batch.reward + batch.discount * next_value)
    (c_loss, aux), grads = jax.value_and_grad(critic_loss, argnums=1, has_aux=True)(
        config, learner.critic, batch, target
    )
    critic, critic_opt = offpolicy.apply_gradients(tx, grads, learner.critic, learner.critic_opt)
    target_critic = replay.polyak(learner.target_critic, critic, config.tau)
    learner = Learner(actor, critic, target_critic, value, actor_opt, critic_opt, value_opt)
    metrics = {
        "critic_loss": c_loss,
        "value_loss": v_loss,
        "actor_loss": a_loss,
        "advantage": advantage.mean(),
        "weight_mean": weights.mean(),
        **aux,
    }
    return learner, metrics


def explore(config: Config, learner: Learner, obs: jax.Array, key: jax.Array, fraction: jax.Array) -> jax.Array:
    """Samples of the policy (online learning): int32 ``[N]`` or ``[N, A]`` in [-1, 1]."""
    del fraction
    return policy_action(config, learner.actor, obs, key)


ALGORITHM = offpolicy.Algorithm(init_learner, explore, update)
"""IQL's pieces for the shared replay loop in :mod:`purejaxlib.offpolicy`."""


def init(config: Config, key: jax.Array) -> State:
    """IQL's starting state (offline: the learner alone; online: also a replay buffer and envs)."""
    return offpolicy.init(config, key, ALGORITHM)


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One IQL iteration: ``gradient_steps`` updates (online: after collecting ``train_freq`` steps).

    Metrics (scalars): ``critic_loss``, ``value_loss``, ``actor_loss``, ``advantage``,
    ``weight_mean``, ``q_mean``, ``gradient_steps`` (offline) or episode statistics (online),
    ``env_steps`` and ``iteration``.
    """
    return offpolicy.step(config, state, ALGORITHM, index)


def train(config: Config, key: jax.Array) -> TrainResult:
    """A whole IQL run: :func:`init` then ``num_iterations`` calls of :func:`step` in one ``lax.scan``."""
    return offpolicy.train(config, key, ALGORITHM)


finetune, jump_start = offpolicy.hybrid_entry_points(ALGORITHM)
"""``finetune(config, offline_state, key)`` (offline to online) and ``jump_start(config, key, guide)``
for this algorithm: see :func:`purejaxlib.offpolicy.hybrid_entry_points`."""


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> env action``: the policy's mode when deterministic, else a sample."""

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        obs = offpolicy.observe(config, obs)
        action = policy_action(config, state.learner.actor, obs, None if deterministic else key)
        return offpolicy.to_env_action(config, action)

    return act
