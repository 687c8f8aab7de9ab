"""Behaviour cloning: maximum likelihood of a dataset's actions, continuous or discrete.

The baseline every offline learner is judged against. The policy is IQL's (a Gaussian with
mean ``tanh(mu)``, or a softmax) fit with weights 1, so BC is IQL's policy extraction at
temperature 0 without its critics.

Surface (shared by every algorithm in purejaxlib.algos)::

    config = bc.Config(env="Pendulum-v1", dataset="data/pendulum-expert.npz", offline_updates=20_000)
    result = bc.train(config, key); act = bc.policy(config, result.state)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from purejaxlib import offpolicy, replay
from purejaxlib.algos import iql
from purejaxlib.config import static

State = offpolicy.State
TrainResult = offpolicy.TrainResult


class Config(offpolicy.Config):
    """BC hyperparameters (see :class:`purejaxlib.offpolicy.Config`; only ``dataset``,
    ``offline_updates``, ``gradient_steps``, ``batch_size``, network and optimizer fields apply)."""

    requires_dataset = True

    env: str = static("Pendulum-v1")
    """Environment name (see purejaxlib.envs.list())."""


class Learner(NamedTuple):
    """BC's part of :class:`State` (``state.learner``)."""

    actor: Any
    """Policy params (as :class:`purejaxlib.algos.iql.Learner`'s ``actor``)."""
    actor_opt: Any


def init_learner(config: Config, key: jax.Array, obs: jax.Array) -> Learner:
    actor = iql.make_actor(config).init(key, obs)
    return Learner(actor, offpolicy.make_tx(config).init(actor))


def loss(config: Config, actor: Any, batch: replay.Batch) -> jax.Array:
    """Negative mean log-likelihood of the batch's actions."""
    return -iql.log_likelihood(config, actor, batch.obs, batch.action).mean()


def update(
    config: Config, learner: Learner, batch: replay.Batch, key: jax.Array, step: jax.Array
) -> tuple[Learner, dict]:
    del key, step
    value, grads = jax.value_and_grad(loss, argnums=1)(config, learner.actor, batch)
    actor, opt = offpolicy.apply_gradients(offpolicy.make_tx(config), grads, learner.actor, learner.actor_opt)
    return Learner(actor, opt), {"actor_loss": value}


def explore(config: Config, learner: Learner, obs: jax.Array, key: jax.Array, fraction: jax.Array) -> jax.Array:
    del fraction
    return iql.policy_action(config, learner.actor, obs, key)


ALGORITHM = offpolicy.Algorithm(init_learner, explore, update)


def init(config: Config, key: jax.Array) -> State:
    """A fresh policy (BC runs offline only: no buffer, no envs)."""
    return offpolicy.init(config, key, ALGORITHM)


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """``gradient_steps`` likelihood steps on the dataset; metrics ``actor_loss``, ``gradient_steps``,
    ``env_steps`` (0) and ``iteration``."""
    return offpolicy.step(config, state, ALGORITHM, index)


def train(config: Config, key: jax.Array) -> TrainResult:
    """A whole BC run in one ``lax.scan``; jit- and vmap-able."""
    return offpolicy.train(config, key, ALGORITHM)


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> env action``: the policy's mode when deterministic, else a sample."""

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        action = iql.policy_action(
            config, state.learner.actor, offpolicy.observe(config, obs), None if deterministic else key
        )
        return offpolicy.to_env_action(config, action)

    return act
