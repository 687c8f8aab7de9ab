"""Deep Q-Networks with a target network, optional double-Q and n-step targets.

Surface (shared by every algorithm in purejaxlib.algos)::

    config = dqn.Config(env="CartPole-v1", total_timesteps=150_000)
    state = dqn.init(config, key)
    state, metrics = dqn.step(config, state)   # one iteration: collect, store, update
    result = dqn.train(config, key)            # jittable end to end; vmap over keys for seeds
    act = dqn.policy(config, result.state)     # act(obs, key) -> env action

The loop (collection, replay, warm-up) is :mod:`purejaxlib.offpolicy`; this file is the
Q-learning loss and the epsilon-greedy explorer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple, cast

import jax
import jax.numpy as jnp

from purejaxlib import losses, offpolicy, replay
from purejaxlib.config import static, traced
from purejaxlib.exploration import epsilon_greedy, linear_schedule
from purejaxlib.networks import QNetwork

State = offpolicy.State
TrainResult = offpolicy.TrainResult


class Config(offpolicy.Config):
    """DQN hyperparameters (see :class:`purejaxlib.offpolicy.Config` for the shared ones)."""

    supports_continuous = False

    # Defaults: tuned on CartPole-v1, where they reach the maximum return (500) in 150k steps
    # (seed figures: benchmarks/README.md). n-step targets are what matter most: a hard
    # target update carries value only n_step steps further, so with n_step=1 the Q-values of
    # a 150k-step run are still far below their true ~100 at gamma 0.99; LayerNorm keeps the
    # larger targets stable.
    total_timesteps: int = static(150_000)
    """Env steps per agent over the whole run."""
    num_envs: int = static(8)
    """Parallel envs per agent."""
    n_step: int = static(5)
    """Steps summed into each TD target (1: one-step TD)."""
    hidden: tuple[int, ...] = static((64, 64))
    """Hidden layer widths of the Q-network."""
    batch_size: int = static(256)
    """Transitions per gradient update."""
    double_q: bool = static(True)
    """Pick the bootstrap action with the online network, value it with the target (double DQN)."""
    loss: Literal["huber", "mse"] = static("huber")
    """TD-error loss."""
    target_update_interval: int = static(250)
    """Gradient steps between target-network updates (each moves it by tau)."""
    layer_norm: bool = static(True)
    """LayerNorm before each hidden activation."""
    cql: bool = static(False)
    """Conservative Q-Learning (offline): the loss adds ``cql_alpha * mean(logsumexp_a Q(s, a) - Q(s, a_data))``."""
    anneal_lr: bool = static(True)
    """Anneal the learning rate linearly to 0 over the run's gradient steps. Without it, runs
    longer than about 200k steps on CartPole-v1 lose the maximum return they reached
    (benchmarks/README.md, reference results)."""

    lr: float = traced(5e-4)
    """Adam learning rate."""
    tau: float = traced(1.0)
    """Target update coefficient (1: copy the online network)."""
    eps_start: float = traced(1.0)
    """Exploration epsilon at the start."""
    eps_end: float = traced(0.01)
    """Exploration epsilon after the decay."""
    eps_fraction: float = traced(0.2)
    """Fraction of training over which epsilon decays linearly."""
    cql_alpha: float = traced(1.0)
    """CQL: weight of the conservative gap."""

    def validate(self) -> None:
        super().validate()
        self.check_choice("loss", ("huber", "mse"))
        self.check_positive("target_update_interval")
        self.check_range("eps_start", 0.0, 1.0)
        self.check_range("eps_end", 0.0, 1.0)
        self.check_range("eps_fraction", 0.0, 1.0)
        self.check_positive("cql_alpha")


class Learner(NamedTuple):
    """DQN's part of :class:`State` (``state.learner``)."""

    params: Any
    """Q-network params (flax pytree): observations ``[..., obs_dim]`` -> Q-values ``[..., num_actions]``."""
    target_params: Any
    """Target network params, same structure as ``params``."""
    opt_state: Any
    """Optimizer state of ``params`` (see :func:`purejaxlib.offpolicy.make_tx`)."""
    updates: jax.Array
    """int32 scalar: gradient steps so far (drives the target-network schedule)."""


def make_network(config: Config) -> QNetwork:
    """The Q-network: ``[..., obs_dim] -> [..., num_actions]``."""
    return QNetwork(config.action_dim, tuple(config.hidden), config.activation, config.layer_norm, image=config.image)


def q_values(config: Config, params: Any, obs: jax.Array) -> jax.Array:
    """Q-values ``[..., num_actions]`` of ``obs [..., obs_dim]``."""
    return cast(jax.Array, make_network(config).apply(params, obs))


def init_learner(config: Config, key: jax.Array, obs: jax.Array) -> Learner:
    """A fresh Q-network, its target copy and optimizer state; ``obs [1, obs_dim]`` sets the shapes."""
    params = make_network(config).init(key, obs)
    return Learner(params, params, offpolicy.make_tx(config).init(params), jnp.int32(0))


def epsilon(config: Config, fraction: jax.Array) -> jax.Array:
    """Exploration epsilon after ``fraction`` of training (scalar)."""
    return linear_schedule(config.eps_start, config.eps_end, config.eps_fraction, fraction)


def explore(config: Config, learner: Learner, obs: jax.Array, key: jax.Array, fraction: jax.Array) -> jax.Array:
    """Epsilon-greedy actions ``[N]`` int32 for ``obs [N, obs_dim]`` at the scheduled epsilon."""
    q = q_values(config, learner.params, obs)
    return epsilon_greedy(key, q, epsilon(config, fraction))


def td_target(config: Config, params: Any, target_params: Any, batch: replay.Batch) -> jax.Array:
    """``reward + discount * Q_target(next_obs, a*)``, a* greedy under the online (double-Q) or
    target network; ``[B]``."""
    next_q = q_values(config, target_params, batch.next_obs)
    if config.double_q:
        best = jnp.argmax(q_values(config, params, batch.next_obs), axis=-1)
        next_value = jnp.take_along_axis(next_q, best[:, None], axis=-1)[:, 0]
    else:
        next_value = next_q.max(axis=-1)
    return batch.reward + batch.discount * next_value


def q_loss(config: Config, params: Any, target: jax.Array, batch: replay.Batch) -> tuple[jax.Array, dict]:
    """TD loss of the taken actions' Q-values against ``target [B]``, and their mean ``q_mean``."""
    q = q_values(config, params, batch.obs)
    q_taken = jnp.take_along_axis(q, batch.action[:, None].astype(jnp.int32), axis=-1)[:, 0]
    loss, aux = losses.td_loss(q_taken - target, config.loss), {"q_mean": q_taken.mean()}
    if config.cql:
        gap = losses.cql_gap(q.T[None], q_taken[None])[0]
        loss, aux = loss + config.cql_alpha * gap, {**aux, "cql_gap": gap}
    return loss, aux


def update(
    config: Config, learner: Learner, batch: replay.Batch, key: jax.Array, step: jax.Array
) -> tuple[Learner, dict]:
    """One gradient step on ``batch``; every ``target_update_interval``-th also moves the target by ``tau``."""
    del key, step  # deterministic given the batch; the target schedule uses the learner's own count
    target = jax.lax.stop_gradient(td_target(config, learner.params, learner.target_params, batch))
    (loss, aux), grads = jax.value_and_grad(q_loss, argnums=1, has_aux=True)(config, learner.params, target, batch)
    params, opt_state = offpolicy.apply_gradients(offpolicy.make_tx(config), grads, learner.params, learner.opt_state)
    count = learner.updates + 1
    sync = count % config.target_update_interval == 0
    target_params = jax.tree.map(
        lambda new, old: jnp.where(sync, new, old),
        replay.polyak(learner.target_params, params, config.tau),
        learner.target_params,
    )
    return Learner(params, target_params, opt_state, count), {"loss": loss, **aux}


ALGORITHM = offpolicy.Algorithm(init_learner, explore, update)
"""DQN's pieces for the shared replay loop in :mod:`purejaxlib.offpolicy`."""


def init(config: Config, key: jax.Array) -> State:
    """DQN's starting state: a fresh Q-network and its target copy, an empty replay buffer, reset envs."""
    return offpolicy.init(config, key, ALGORITHM)


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One DQN iteration: ``train_freq`` epsilon-greedy steps of ``num_envs`` envs into the buffer,
    then ``gradient_steps`` TD updates (uniformly random actions and no updates during warm-up).

    Metrics (scalars): episode statistics, ``loss``, ``q_mean`` (NaN during warm-up), ``env_steps``
    and ``iteration`` after this step. ``index``: the iteration's number, unbatched under ``vmap``
    (``train`` passes it), so the warm-up branch is a real branch; see :func:`purejaxlib.offpolicy.step`.
    """
    return offpolicy.step(config, state, ALGORITHM, index)


def train(config: Config, key: jax.Array) -> TrainResult:
    """A whole DQN run: :func:`init` then ``num_iterations`` calls of :func:`step` in one ``lax.scan``.

    Jit- and vmap-able: ``jax.jit(dqn.train)(config, key)``; vmap over keys for seeds, over a
    stacked Config for a grid. Metrics are ``[num_iterations]`` each.
    """
    return offpolicy.train(config, key, ALGORITHM)


finetune, jump_start = offpolicy.hybrid_entry_points(ALGORITHM)
"""``finetune(config, offline_state, key)`` (offline to online) and ``jump_start(config, key, guide)``
for this algorithm: see :func:`purejaxlib.offpolicy.hybrid_entry_points`."""


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> action`` (int32, ``obs [..., *obs_shape]`` -> ``[...]``): greedy, or
    epsilon-greedy at ``eps_end`` when not deterministic."""
    params = state.learner.params

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        q = q_values(config, params, offpolicy.observe(config, obs))
        return epsilon_greedy(key, q, 0.0 if deterministic else config.eps_end)

    return act
