"""TD3 (twin critics, target policy smoothing, delayed actor updates), with DDPG as a
configuration of it: ``ddpg_config()`` sets one critic, no target smoothing and no delay.

Surface (shared by every algorithm in purejaxlib.algos)::

    config = td3.Config(env="Pendulum-v1", total_timesteps=20_000)
    config = td3.ddpg_config(env="Pendulum-v1")     # DDPG
    state = td3.init(config, key); state, metrics = td3.step(config, state)
    result = td3.train(config, key); act = td3.policy(config, result.state)

The loop (collection, replay, warm-up) is :mod:`purejaxlib.offpolicy`. Actions live in [-1, 1]
inside the learner, so the noise scales are fractions of the action range's half-width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from purejaxlib import losses, offpolicy, replay
from purejaxlib.config import static, traced
from purejaxlib.networks import Critic, DeterministicActor, ensemble_apply, ensemble_init

State = offpolicy.State
TrainResult = offpolicy.TrainResult

DDPG = dict(num_critics=1, policy_delay=1, target_policy_noise=0.0)
"""The fields that turn TD3 into DDPG (with TD3's other choices: Adam, small MLPs, soft targets)."""


class Config(offpolicy.Config):
    """TD3 / DDPG hyperparameters (see :class:`purejaxlib.offpolicy.Config` for the shared ones)."""

    supports_discrete = False

    env: str = static("Pendulum-v1")
    """Environment name (see purejaxlib.envs.list())."""
    num_critics: int = static(2)
    """Critics; targets take their minimum (clipped double-Q). DDPG: 1."""
    policy_delay: int = static(2)
    """Critic updates per actor and target update. DDPG: 1."""
    layer_norm: bool = static(False)
    """LayerNorm in the critics."""
    td3_bc: bool = static(False)
    """TD3+BC (offline): the actor also regresses onto the dataset's actions, and its Q term is
    scaled by ``bc_alpha / mean |Q|``."""

    bc_decay: int = static(0)
    """TD3+BC online (offline-to-online fine-tuning): gradient steps over which the behaviour-cloning
    term's weight falls linearly from 1 to 0, leaving TD3's actor loss (Q scaled by
    ``bc_alpha / mean |Q|``); 0 keeps it at 1."""

    exploration_noise: float = traced(0.1)
    """Std of the Gaussian noise added to the actor's action when collecting."""
    target_policy_noise: float = traced(0.2)
    """Std of the smoothing noise on the target action. DDPG: 0."""
    noise_clip: float = traced(0.5)
    """Bound on the target smoothing noise."""
    bc_alpha: float = traced(2.5)
    """TD3+BC: weight of the Q term against the behaviour-cloning term (the paper's alpha)."""
    critic_bc: float = traced(0.0)
    """ReBRAC's critic penalty (offline): the target's next value is lowered by
    ``critic_bc * sum (a' - a'_data)^2``, ``a'`` the smoothed target action and ``a'_data`` the
    data's next action (no penalty where the data has none). 0: TD3+BC's plain target."""

    features: ClassVar[dict[str, str]] = {
        "td3_bc": "TD3+BC (offline behaviour-cloning actor term)",
        "bc_alpha": "TD3+BC (offline behaviour-cloning actor term)",
        "critic_bc": "ReBRAC (offline critic penalty)",
        "bc_decay": "TD3+BC fine-tuning (decaying behaviour-cloning weight)",
    }

    def validate(self) -> None:
        super().validate()
        self.check_positive("num_critics", "policy_delay")
        self.check_positive("exploration_noise", "target_policy_noise", "noise_clip", allow_zero=True)
        self.check_positive("bc_alpha")
        self.check_positive("critic_bc", "bc_decay", allow_zero=True)
        if self.bc_decay and not self.td3_bc:
            self.fail("bc_decay", "fades TD3+BC's behaviour-cloning term; set td3_bc=True")
        critic_bc = self.concrete("critic_bc")
        if critic_bc is not None and np.any(critic_bc != 0) and not self.offline:
            self.fail(
                "critic_bc", "penalizes distance to the dataset's next actions, so it needs an offline run (dataset=)"
            )


def ddpg_config(**overrides: Any) -> Config:
    """A :class:`Config` for DDPG: TD3 with one critic, no target smoothing and no delay."""
    return Config(**{**DDPG, **overrides})


REBRAC = dict(td3_bc=True, layer_norm=True, critic_bc=0.1, bc_alpha=1.0, hidden=(256, 256, 256), batch_size=1024)
"""The fields that turn TD3 into ReBRAC (Tarasov et al. 2023): TD3+BC with LayerNorm critics, a
critic penalty, deeper networks and larger batches. The paper's actor weight ``beta`` per action
dimension maps to ``bc_alpha = 1 / (action_dim * beta)``; both weights are tuned per dataset there."""


def rebrac_config(**overrides: Any) -> Config:
    """A :class:`Config` for ReBRAC (offline: pass ``dataset=``); ``overrides`` replace any field."""
    return Config(**{**REBRAC, **overrides})


class Learner(NamedTuple):
    """TD3's part of :class:`State` (``state.learner``)."""

    actor: Any
    """Actor params (flax pytree): observations ``[..., obs_dim]`` -> actions ``[..., action_dim]`` in [-1, 1]."""
    critic: Any
    """Critic ensemble params, leaves ``[num_critics, ...]``: ``(obs, action)`` -> Q ``[num_critics, ...]``."""
    target_actor: Any
    """Target actor, same structure as ``actor``."""
    target_critic: Any
    """Target critics, same structure as ``critic``."""
    actor_opt: Any
    """Optimizer state of ``actor``."""
    critic_opt: Any
    """Optimizer state of ``critic``."""
    updates: jax.Array
    """int32 scalar: critic updates so far."""


def make_actor(config: Config) -> DeterministicActor:
    """The actor network: ``[..., obs_dim] -> [..., action_dim]`` in [-1, 1]."""
    return DeterministicActor(config.action_dim, tuple(config.hidden), config.activation, image=config.image)


def make_critic(config: Config) -> Critic:
    """One critic: ``([..., obs_dim], [..., action_dim]) -> [...]``; the learner holds an ensemble."""
    return Critic(tuple(config.hidden), config.activation, config.layer_norm, image=config.image)


def actor_action(config: Config, actor: Any, obs: jax.Array) -> jax.Array:
    """The actor's action ``[..., action_dim]`` in [-1, 1] at ``obs [..., obs_dim]``."""
    return cast(jax.Array, make_actor(config).apply(actor, obs))


def init_learner(config: Config, key: jax.Array, obs: jax.Array) -> Learner:
    """Fresh actor and critics, their target copies and optimizer states; ``obs [1, obs_dim]`` sets the shapes."""
    actor_key, critic_key = jax.random.split(key)
    actor = make_actor(config).init(actor_key, obs)
    critic = ensemble_init(make_critic(config), critic_key, config.num_critics, obs, jnp.zeros((1, config.action_dim)))
    actor_tx, critic_tx = offpolicy.make_tx(config, every=config.policy_delay), offpolicy.make_tx(config)
    return Learner(actor, critic, actor, critic, actor_tx.init(actor), critic_tx.init(critic), jnp.int32(0))


def next_action_penalty(action: jax.Array, data_action: jax.Array | None) -> jax.Array:
    """ReBRAC's ``sum_a (action - data_action)^2`` per row, ``[B, A] -> [B]``; 0 where the data has
    no next action (NaN rows) or when ``data_action`` is None."""
    if data_action is None:
        return jnp.zeros(action.shape[:1])
    known = jnp.isfinite(data_action).all(axis=-1)
    gap = jnp.square(action - jnp.where(jnp.isfinite(data_action), data_action, 0.0)).sum(axis=-1)
    return jnp.where(known, gap, 0.0)


def critic_target(config: Config, learner: Learner, batch: replay.Batch, key: jax.Array) -> jax.Array:
    """``reward + discount * (min_i Q'_i(next_obs, a') - critic_bc * |a' - a'_data|^2)`` with
    ``a'`` the smoothed target action: ``[B]`` (the penalty is ReBRAC's; 0 by default)."""
    action = actor_action(config, learner.target_actor, batch.next_obs)
    noise = jnp.clip(
        config.target_policy_noise * jax.random.normal(key, action.shape), -config.noise_clip, config.noise_clip
    )
    action = jnp.clip(action + noise, -1.0, 1.0)
    q = ensemble_apply(make_critic(config), learner.target_critic, batch.next_obs, action).min(axis=0)
    if config.offline:
        q = q - config.critic_bc * next_action_penalty(action, batch.next_action)
    return batch.reward + batch.discount * q


def critic_loss(config: Config, critic: Any, target: jax.Array, batch: replay.Batch) -> tuple[jax.Array, dict]:
    """Ensemble regression onto ``target [B]``, and the critics' mean value ``q_mean``."""
    q = ensemble_apply(make_critic(config), critic, batch.obs, batch.action)
    return losses.ensemble_mse(q, target), {"q_mean": q.mean()}


def bc_weight(config: Config, step: jax.Array) -> jax.Array:
    """The behaviour-cloning term's weight at gradient step ``step`` (from 1): 1, or with
    ``bc_decay`` falling linearly to 0 at step ``bc_decay``."""
    if not config.bc_decay:
        return jnp.float32(1.0)
    return jnp.clip(1.0 - step.astype(jnp.float32) / config.bc_decay, 0.0, 1.0)


def actor_loss(
    config: Config,
    actor: Any,
    critic: Any,
    obs: jax.Array,
    data_action: jax.Array | None = None,
    weight: jax.Array | float = 1.0,
) -> jax.Array:
    """Deterministic policy gradient through the first critic; with ``td3_bc``, TD3+BC's
    ``-bc_alpha / mean|Q| * Q + weight * mean (action - data_action)^2`` (``data_action [B, A]``)."""
    action = actor_action(config, actor, obs)
    first = jax.tree.map(lambda x: x[0], critic)
    q = cast(jax.Array, make_critic(config).apply(first, obs, action))
    if not config.td3_bc:
        return -q.mean()
    if data_action is None:
        raise ValueError("td3_bc's actor loss needs the dataset's actions (data_action)")
    scale = config.bc_alpha / jax.lax.stop_gradient(jnp.abs(q).mean() + 1e-8)
    return -scale * q.mean() + weight * losses.bc_mse(action, data_action)


def update(
    config: Config, learner: Learner, batch: replay.Batch, key: jax.Array, step: jax.Array
) -> tuple[Learner, dict]:
    """A critic step; every ``policy_delay``-th gradient step also an actor step and the target updates."""
    tx, actor_tx = offpolicy.make_tx(config), offpolicy.make_tx(config, every=config.policy_delay)
    target = jax.lax.stop_gradient(critic_target(config, learner, batch, key))
    (c_loss, aux), grads = jax.value_and_grad(critic_loss, argnums=1, has_aux=True)(
        config, learner.critic, target, batch
    )
    critic, critic_opt = offpolicy.apply_gradients(tx, grads, learner.critic, learner.critic_opt)
    count = learner.updates + 1

    def actor_step(_):
        a_loss, grads = jax.value_and_grad(actor_loss, argnums=1)(
            config, learner.actor, critic, batch.obs, batch.action, bc_weight(config, step)
        )
        actor, actor_opt = offpolicy.apply_gradients(actor_tx, grads, learner.actor, learner.actor_opt)
        return (
            actor,
            actor_opt,
            replay.polyak(learner.target_actor, actor, config.tau),
            replay.polyak(learner.target_critic, critic, config.tau),
            a_loss,
        )

    def skip(_):
        return learner.actor, learner.actor_opt, learner.target_actor, learner.target_critic, jnp.float32(jnp.nan)

    actor, actor_opt, target_actor, target_critic, a_loss = jax.lax.cond(
        step % config.policy_delay == 0, actor_step, skip, None
    )
    learner = Learner(actor, critic, target_actor, target_critic, actor_opt, critic_opt, count)
    return learner, {"critic_loss": c_loss, "actor_loss": a_loss, **aux}


def explore(config: Config, learner: Learner, obs: jax.Array, key: jax.Array, fraction: jax.Array) -> jax.Array:
    """The actor's actions plus Gaussian ``exploration_noise``, clipped to [-1, 1]: ``[N, action_dim]``."""
    del fraction
    action = actor_action(config, learner.actor, obs)
    return jnp.clip(action + config.exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)


ALGORITHM = offpolicy.Algorithm(init_learner, explore, update)
"""TD3's pieces for the shared replay loop in :mod:`purejaxlib.offpolicy`."""


def init(config: Config, key: jax.Array) -> State:
    """TD3's starting state: fresh actor and critics with target copies, an empty replay buffer, reset envs."""
    return offpolicy.init(config, key, ALGORITHM)


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One TD3 iteration: ``train_freq`` noisy-actor steps of ``num_envs`` envs into the buffer, then
    ``gradient_steps`` critic updates, every ``policy_delay``-th with an actor and target update
    (uniformly random actions and no updates during warm-up).

    Metrics (scalars): episode statistics, ``critic_loss``, ``actor_loss``, ``q_mean`` (NaN when
    not computed), ``env_steps`` and ``iteration`` after this step. ``index``: the iteration's
    number, unbatched under ``vmap`` (``train`` passes it); see :func:`purejaxlib.offpolicy.step`.
    """
    return offpolicy.step(config, state, ALGORITHM, index)


def train(config: Config, key: jax.Array) -> TrainResult:
    """A whole TD3 (or DDPG) run: :func:`init` then ``num_iterations`` calls of :func:`step` in one
    ``lax.scan``. Jit- and vmap-able; metrics are ``[num_iterations]`` each."""
    return offpolicy.train(config, key, ALGORITHM)


finetune, jump_start = offpolicy.hybrid_entry_points(ALGORITHM)
"""``finetune(config, offline_state, key)`` (offline to online) and ``jump_start(config, key, guide)``
for this algorithm: see :func:`purejaxlib.offpolicy.hybrid_entry_points`."""


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> env action`` (``obs [..., *obs_shape]`` -> ``[..., action_dim]`` in the env's
    bounds): the actor's action, plus exploration noise unless deterministic."""

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        obs = offpolicy.observe(config, obs)
        if deterministic:
            action = actor_action(config, state.learner.actor, obs)
        else:
            action = explore(config, state.learner, obs, key, jnp.float32(1.0))
        return offpolicy.to_env_action(config, action)

    return act
