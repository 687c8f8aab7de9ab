"""Soft Actor-Critic for continuous (tanh-Gaussian) and discrete (soft categorical) actions, with
automatic temperature, a vmapped critic ensemble with clipped double-Q, and the truncated
quantile critics of TQC as an option (``num_quantiles > 0``).

Surface (shared by every algorithm in purejaxlib.algos)::

    config = sac.Config(env="Pendulum-v1", total_timesteps=20_000)
    config = sac.Config(env="Pendulum-v1", num_critics=5, num_quantiles=25, drop_quantiles=2)  # TQC
    config = sac.rlpd_config(env="Pendulum-v1", prior_data="medium.npz")  # RLPD
    state = sac.init(config, key); state, metrics = sac.step(config, state)
    result = sac.train(config, key); act = sac.policy(config, result.state)

The loop (collection, replay, warm-up) is :mod:`purejaxlib.offpolicy`. Continuous actions live
in [-1, 1] inside the learner and the buffer and are rescaled to the env's bounds when stepping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, cast

import jax
import jax.numpy as jnp

from purejaxlib import losses, offpolicy, replay
from purejaxlib.config import static, traced
from purejaxlib.networks import MLP, Critic, GaussianActor, QNetwork, ensemble_apply, ensemble_init

State = offpolicy.State
TrainResult = offpolicy.TrainResult

# Target entropy when target_entropy_scale < 0 (auto): -|A| for continuous actions (the SAC
# paper's heuristic), and this fraction of the maximum entropy log|A| for discrete actions.
DISCRETE_AUTO_ENTROPY = 0.5


class Config(offpolicy.Config):
    """SAC / TQC hyperparameters (see :class:`purejaxlib.offpolicy.Config` for the shared ones)."""

    env: str = static("Pendulum-v1")
    """Environment name (see purejaxlib.envs.list())."""
    num_critics: int = static(2)
    """Critics in the ensemble; targets use their minimum (SAC) or pooled quantiles (TQC)."""
    num_quantiles: int = static(0)
    """Quantiles per critic; 0 for scalar critics (SAC), > 0 for TQC (continuous actions)."""
    drop_quantiles: int = static(2)
    """TQC: quantiles per critic dropped from the top of the pooled target atoms."""
    autotune_alpha: bool = static(True)
    """Learn the temperature so the policy's entropy tracks the target entropy."""
    layer_norm: bool = static(False)
    """LayerNorm in the critics."""
    torch_init: bool = static(False)
    """PyTorch's ``nn.Linear`` initialization (kernels and biases U(+-1/sqrt(fan_in))) for actor and
    critics, as stable-baselines3's SAC, instead of LeCun normal kernels and zero biases."""
    cql: bool = static(False)
    """Conservative Q-Learning (offline): each critic's loss adds ``cql_alpha`` times the gap
    between the logsumexp of its values over actions and its value of the dataset's action."""
    calql: bool = static(False)
    """Cal-QL (Nakamoto et al. 2023; with ``cql``, continuous actions): the policy-sampled values
    in CQL's logsumexp are floored at the data's Monte Carlo return of the state
    (``batch.mc_return``), so the conservative critic stays calibrated and fine-tuning online does
    not start with a collapse. Steps collected online carry no return (no floor)."""
    edac: bool = static(False)
    """EDAC (offline, continuous): the critics' loss adds ``edac_eta`` times the similarity of their
    action gradients at the dataset's actions, so a large ensemble (``num_critics``) stays diverse."""
    target_subset: int = static(0)
    """Critics whose minimum forms the TD target: 0 takes all ``num_critics`` (clipped double-Q);
    k > 0 a fresh random k of them each update (REDQ, RLPD). Scalar critics only."""
    actor_mean_q: bool = static(False)
    """The actor maximizes the ensemble's mean value instead of its minimum (REDQ, RLPD)."""
    cql_samples: int = static(10)
    """CQL, continuous actions: uniform, current-policy and next-state-policy samples each per state."""

    alpha_init: float = traced(1.0)
    """Initial entropy temperature (fixed value when autotune_alpha is off)."""
    target_entropy_scale: float = traced(-1.0)
    """Target entropy as a multiple of -|A| (continuous) or of log|A| (discrete); < 0: automatic."""
    cql_alpha: float = traced(5.0)
    """CQL: weight of the conservative gap (the start value when ``cql_target_gap`` >= 0)."""
    cql_target_gap: float = traced(-1.0)
    """CQL: < 0 keeps ``cql_alpha`` fixed; >= 0 learns it (Lagrangian) so the gap stays at this value."""
    edac_eta: float = traced(1.0)
    """EDAC: weight of the gradient-similarity term."""

    features: ClassVar[dict[str, str]] = {  # CQL's other fields are DQN's too
        "cql_samples": "continuous CQL (sampled actions)",
        "cql_target_gap": "continuous CQL (Lagrangian weight)",
        "edac": "EDAC's ensemble gradient diversity",
        "edac_eta": "EDAC's ensemble gradient diversity",
        "calql": "Cal-QL's calibrated CQL",
        "target_subset": "REDQ / RLPD's random-subset target",
        "actor_mean_q": "REDQ / RLPD's actor on the ensemble mean",
    }

    @property
    def mc_returns(self) -> bool:
        return self.calql

    def validate(self) -> None:
        super().validate()
        self.check_positive("num_critics", "alpha_init")
        self.check_positive("num_quantiles", "drop_quantiles", allow_zero=True)
        self.check_positive("cql_samples", "cql_alpha")
        if self.cql and self.num_quantiles:
            self.fail("cql", "CQL on quantile critics (TQC) is not supported; use num_quantiles=0")
        if self.calql and not (self.cql and not self.spec.discrete):
            self.fail("calql", "calibrates CQL's sampled values: set cql=True, on an env with continuous actions")
        if self.calql and self.prior_data:
            self.fail("calql", "needs Monte Carlo returns of every dataset row; use seed_data= instead of prior_data=")
        self.check_positive("target_subset", allow_zero=True)
        if self.target_subset > self.num_critics:
            self.fail(
                "target_subset",
                f"takes the minimum of {self.target_subset} critics, "
                f"but the ensemble has num_critics={self.num_critics}",
            )
        if self.target_subset and self.num_quantiles:
            self.fail("target_subset", "applies to scalar critics; TQC (num_quantiles > 0) pools quantiles instead")
        if self.edac and (self.spec.discrete or self.num_quantiles):
            self.fail("edac", "EDAC needs continuous actions and scalar critics (num_quantiles=0)")
        self.check_positive("edac_eta", allow_zero=True)
        if self.num_quantiles:
            if self.spec.discrete:
                self.fail(
                    "num_quantiles",
                    f"quantile critics (TQC) need continuous actions, but {self.env} is discrete; use num_quantiles=0",
                )
            if self.drop_quantiles >= self.num_quantiles:
                self.fail(
                    "drop_quantiles",
                    f"dropping {self.drop_quantiles} of {self.num_quantiles} quantiles per critic leaves no target; "
                    "make it smaller",
                )


RLPD = dict(num_critics=10, target_subset=2, actor_mean_q=True, layer_norm=True, gradient_steps=10, prior_fraction=0.5)
"""The fields that turn SAC into RLPD (Ball et al. 2023) once ``prior_data=`` names a dataset:
symmetric sampling (half of each batch from the data), LayerNorm critics, an ensemble of 10 with
targets from the minimum of a random 2, the actor on the ensemble's mean, and 10 gradient steps
per env step (with ``num_envs=1, train_freq=1``)."""


def rlpd_config(**overrides: Any) -> Config:
    """A :class:`Config` for RLPD (pass ``prior_data=``); ``overrides`` replace any field."""
    config = Config(**{**RLPD, **overrides})
    if not config.prior_data:
        config.fail("prior_data", "RLPD learns online with a dataset mixed into its batches; name one")
    return config


class Learner(NamedTuple):
    """SAC's part of :class:`State` (``state.learner``)."""

    actor: Any
    """Actor params (flax pytree): observations ``[..., obs_dim]`` -> Gaussian ``(mean, log_std)``
    ``[..., action_dim]`` each (continuous) or logits ``[..., num_actions]`` (discrete)."""
    critic: Any
    """Critic ensemble params, leaves ``[num_critics, ...]`` (see :func:`critic_values` for outputs)."""
    target_critic: Any
    """Target critics, same structure as ``critic``."""
    log_alpha: jax.Array
    """float32 scalar: log of the entropy temperature."""
    actor_opt: Any
    """Optimizer state of ``actor``."""
    critic_opt: Any
    """Optimizer state of ``critic``."""
    alpha_opt: Any
    """Optimizer state of ``log_alpha``."""
    cql_log_alpha: jax.Array
    """float32 scalar: log of CQL's gap weight (learned when ``cql_target_gap`` >= 0)."""
    cql_alpha_opt: Any
    """Optimizer state of ``cql_log_alpha``."""


def make_actor(config: Config) -> MLP | GaussianActor:
    """The actor network: logits ``[..., num_actions]`` (discrete) or ``(mean, log_std)`` ``[..., action_dim]``."""
    if config.spec.discrete:
        return MLP(
            tuple(config.hidden), config.action_dim, config.activation, orthogonal_init=False,
            torch_init=config.torch_init, image=config.image,
        )  # fmt: skip
    return GaussianActor(
        config.action_dim, tuple(config.hidden), config.activation, torch_init=config.torch_init, image=config.image
    )


def make_critic(config: Config) -> QNetwork | Critic:
    """One critic: Q-values ``[..., num_actions]`` of ``obs`` (discrete), or Q ``[...]`` (quantiles
    ``[..., num_quantiles]``) of ``(obs, action)``; the learner holds an ensemble."""
    if config.spec.discrete:
        return QNetwork(
            config.action_dim, tuple(config.hidden), config.activation, config.layer_norm, config.torch_init,
            image=config.image,
        )  # fmt: skip
    return Critic(
        tuple(config.hidden), config.activation, config.layer_norm, max(config.num_quantiles, 1), config.torch_init,
        image=config.image,
    )  # fmt: skip


def target_entropy(config: Config) -> jax.Array:
    """The entropy the temperature steers the policy towards (a traced scalar)."""
    scale = config.target_entropy_scale
    if config.spec.discrete:
        return jnp.where(scale < 0, DISCRETE_AUTO_ENTROPY, scale) * math.log(config.action_dim)
    return -jnp.where(scale < 0, 1.0, scale) * config.action_dim


def init_learner(config: Config, key: jax.Array, obs: jax.Array) -> Learner:
    """Fresh actor, critics with a target copy, temperature and optimizer states; ``obs [1, obs_dim]``
    sets the shapes."""
    actor_key, critic_key = jax.random.split(key)
    actor = make_actor(config).init(actor_key, obs)
    critic_inputs = (obs,) if config.spec.discrete else (obs, jnp.zeros((1, config.action_dim)))
    critic = ensemble_init(make_critic(config), critic_key, config.num_critics, *critic_inputs)
    log_alpha = jnp.log(jnp.asarray(config.alpha_init, jnp.float32))
    cql_log_alpha = jnp.log(jnp.asarray(config.cql_alpha, jnp.float32))
    tx = offpolicy.make_tx(config)
    return Learner(
        actor,
        critic,
        critic,
        log_alpha,
        tx.init(actor),
        tx.init(critic),
        tx.init(log_alpha),
        cql_log_alpha,
        tx.init(cql_log_alpha),
    )


def _logits(config: Config, actor: Any, obs: jax.Array) -> jax.Array:
    """Discrete: the policy's logits ``[B, A]``."""
    return cast(jax.Array, make_actor(config).apply(actor, obs))


def _gaussian(config: Config, actor: Any, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Continuous: the pre-squash Gaussian's mean and log-std, each ``[B, A]``."""
    return cast(tuple[jax.Array, jax.Array], make_actor(config).apply(actor, obs))


def _sample(config: Config, actor: Any, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Continuous: an action in [-1, 1] ``[B, A]`` and its log-probability ``[B]``."""
    mean, log_std = _gaussian(config, actor, obs)
    return losses.tanh_gaussian(key, mean, log_std)


def _probs(config: Config, actor: Any, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Discrete: action probabilities and log-probabilities, each ``[B, A]``."""
    logits = _logits(config, actor, obs)
    log_probs = jax.nn.log_softmax(logits)
    return jnp.exp(log_probs), log_probs


def critic_values(config: Config, critic: Any, obs: jax.Array, action: jax.Array | None = None) -> jax.Array:
    """The critic ensemble's values: ``[N, B]`` (continuous), ``[N, B, M]`` (quantiles) or ``[N, B, A]`` (discrete)."""
    inputs = (obs,) if config.spec.discrete else (obs, action)
    return ensemble_apply(make_critic(config), critic, *inputs)


def target_critics(config: Config, target_critic: Any, key: jax.Array) -> Any:
    """The target critics whose minimum forms the TD target: all of them, or with ``target_subset``
    k a uniformly random k of the ``num_critics`` (without replacement), leaves ``[k, ...]``."""
    if not config.target_subset or config.target_subset == config.num_critics:
        return target_critic
    chosen = jax.random.choice(key, config.num_critics, (config.target_subset,), replace=False)
    return jax.tree.map(lambda leaf: leaf[chosen], target_critic)


def critic_target(config: Config, learner: Learner, batch: replay.Batch, key: jax.Array) -> jax.Array:
    """Soft TD target: ``[B]``, or ``[B, K]`` target atoms for quantile critics."""
    alpha = jnp.exp(learner.log_alpha)
    critics = learner.target_critic
    if 0 < config.target_subset < config.num_critics:
        key, subset_key = jax.random.split(key)
        critics = target_critics(config, critics, subset_key)
    if config.spec.discrete:
        probs, log_probs = _probs(config, learner.actor, batch.next_obs)
        q = critic_values(config, critics, batch.next_obs).min(axis=0)
        next_value = (probs * (q - alpha * log_probs)).sum(axis=-1)
        return batch.reward + batch.discount * next_value
    action, log_prob = _sample(config, learner.actor, batch.next_obs, key)
    q = critic_values(config, critics, batch.next_obs, action)
    if config.num_quantiles:
        atoms = losses.truncated_quantiles(q, config.drop_quantiles * config.num_critics)
        return batch.reward[:, None] + batch.discount[:, None] * (atoms - alpha * log_prob[:, None])
    return batch.reward + batch.discount * (q.min(axis=0) - alpha * log_prob)


def critic_loss(config: Config, critic: Any, target: jax.Array, batch: replay.Batch) -> tuple[jax.Array, dict]:
    """Ensemble regression (or quantile regression, TQC) onto ``target``, and the critics' mean value ``q_mean``."""
    if config.spec.discrete:
        q = critic_values(config, critic, batch.obs)
        q = jnp.take_along_axis(q, batch.action[None, :, None].astype(jnp.int32), axis=-1)[..., 0]
    else:
        q = critic_values(config, critic, batch.obs, batch.action)
    if config.num_quantiles:
        loss = config.num_critics * losses.quantile_huber_loss(
            q, jnp.broadcast_to(target, (config.num_critics,) + target.shape)
        )
        q = q.mean(axis=-1)
    else:
        loss = losses.ensemble_mse(q, target)
    return loss, {"q_mean": q.mean()}


def cql_gap(config: Config, critic: Any, actor: Any, batch: replay.Batch, key: jax.Array) -> jax.Array:
    """Each critic's conservative gap ``[N]`` (:func:`purejaxlib.losses.cql_gap`): discrete, the
    exact logsumexp over actions; continuous, CQL(H)'s importance-weighted estimate from
    ``cql_samples`` uniform actions and as many policy samples at ``obs`` and at ``next_obs``."""
    if config.spec.discrete:
        q = critic_values(config, critic, batch.obs)  # [N, B, A]
        q_data = jnp.take_along_axis(q, batch.action[None, :, None].astype(jnp.int32), axis=-1)[..., 0]
        return losses.cql_gap(jnp.moveaxis(q, -1, 1), q_data)
    k = config.cql_samples
    uniform_key, pi_key, next_key = jax.random.split(key, 3)
    repeat = lambda x: jnp.broadcast_to(x, (k,) + x.shape)  # [K, B, ...]
    obs, next_obs = repeat(batch.obs), repeat(batch.next_obs)
    shape = obs.shape[:2] + (config.action_dim,)
    uniform = jax.random.uniform(uniform_key, shape, minval=-1.0, maxval=1.0)
    uniform_log_prob = -config.action_dim * jnp.log(2.0)
    pi, pi_log_prob = jax.lax.stop_gradient(_sample(config, actor, obs, pi_key))
    nxt, next_log_prob = jax.lax.stop_gradient(_sample(config, actor, next_obs, next_key))
    values = lambda action: critic_values(config, critic, obs, action)  # [N, K, B]
    floor = batch.mc_return if config.calql else None
    bounded = lambda q: q if floor is None else jnp.maximum(q, floor)  # Cal-QL: [N, K, B] floored per state
    samples = jnp.concatenate(
        [
            values(uniform) - uniform_log_prob,
            bounded(values(pi)) - pi_log_prob[None],
            bounded(values(nxt)) - next_log_prob[None],
        ],
        axis=1,
    )
    return losses.cql_gap(samples, critic_values(config, critic, batch.obs, batch.action))


def edac_similarity(config: Config, critic: Any, batch: replay.Batch) -> jax.Array:
    """EDAC's term: :func:`purejaxlib.losses.gradient_similarity` of each critic's
    ``grad_a Q_i(obs, a)`` at the dataset's actions."""
    q_sum = lambda params, a: cast(jax.Array, make_critic(config).apply(params, batch.obs, a)).sum()
    per_critic = lambda params: jax.grad(q_sum, argnums=1)(params, batch.action)
    return losses.gradient_similarity(jax.vmap(per_critic)(critic))


def actor_loss(
    config: Config, actor: Any, learner: Learner, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Returns the loss and the policy's entropy (estimate) per state ``[B]``."""
    alpha = jnp.exp(learner.log_alpha)
    if config.spec.discrete:
        probs, log_probs = _probs(config, actor, obs)
        q = critic_values(config, learner.critic, obs)
        q = q.mean(axis=0) if config.actor_mean_q else q.min(axis=0)
        loss = (probs * (alpha * log_probs - q)).sum(axis=-1).mean()
        return loss, -(probs * log_probs).sum(axis=-1)
    action, log_prob = _sample(config, actor, obs, key)
    q = critic_values(config, learner.critic, obs, action)
    q = q.mean(axis=(0, 2)) if config.num_quantiles else q.mean(axis=0) if config.actor_mean_q else q.min(axis=0)
    return (alpha * log_prob - q).mean(), -log_prob


def alpha_loss(config: Config, log_alpha: jax.Array, entropy: jax.Array) -> jax.Array:
    """Gradient descent raises the temperature while the entropy is below the target."""
    return log_alpha * jax.lax.stop_gradient(entropy - target_entropy(config)).mean()


def update(
    config: Config, learner: Learner, batch: replay.Batch, key: jax.Array, step: jax.Array
) -> tuple[Learner, dict]:
    """Critic step, then actor step against the updated critics, then temperature, then targets."""
    del step
    target_key, actor_key, cql_key = jax.random.split(key, 3)
    tx = offpolicy.make_tx(config)

    target = jax.lax.stop_gradient(critic_target(config, learner, batch, target_key))
    cql_weight = jnp.exp(learner.cql_log_alpha)

    def total_critic_loss(critic: Any) -> tuple[jax.Array, dict]:
        loss, aux = critic_loss(config, critic, target, batch)
        if config.edac:
            similarity = edac_similarity(config, critic, batch)
            loss, aux = loss + config.edac_eta * similarity, {**aux, "edac_similarity": similarity}
        if not config.cql:
            return loss, aux
        gap = cql_gap(config, critic, learner.actor, batch, cql_key)
        return loss + cql_weight * gap.sum(), {**aux, "cql_gap": gap.mean()}

    (c_loss, aux), grads = jax.value_and_grad(total_critic_loss, has_aux=True)(learner.critic)
    critic, critic_opt = offpolicy.apply_gradients(tx, grads, learner.critic, learner.critic_opt)
    learner = learner._replace(critic=critic, critic_opt=critic_opt)
    if config.cql:
        # Lagrangian weight: gradient descent on -w * (gap - target) raises w while the gap exceeds it.
        lagrange = lambda log_w: -jnp.exp(log_w) * (aux["cql_gap"] - config.cql_target_gap)
        grads = jnp.where(config.cql_target_gap >= 0, jax.grad(lagrange)(learner.cql_log_alpha), 0.0)
        cql_log_alpha, cql_alpha_opt = offpolicy.apply_gradients(
            tx, grads, learner.cql_log_alpha, learner.cql_alpha_opt
        )
        learner = learner._replace(cql_log_alpha=jnp.clip(cql_log_alpha, -10.0, 10.0), cql_alpha_opt=cql_alpha_opt)
        aux = {**aux, "cql_alpha": jnp.exp(learner.cql_log_alpha)}

    (a_loss, entropy), grads = jax.value_and_grad(actor_loss, argnums=1, has_aux=True)(
        config, learner.actor, learner, batch.obs, actor_key
    )
    actor, actor_opt = offpolicy.apply_gradients(tx, grads, learner.actor, learner.actor_opt)
    learner = learner._replace(actor=actor, actor_opt=actor_opt)

    if config.autotune_alpha:
        grads = jax.grad(alpha_loss, argnums=1)(config, learner.log_alpha, entropy)
        log_alpha, alpha_opt = offpolicy.apply_gradients(tx, grads, learner.log_alpha, learner.alpha_opt)
        learner = learner._replace(log_alpha=log_alpha, alpha_opt=alpha_opt)

    learner = learner._replace(target_critic=replay.polyak(learner.target_critic, learner.critic, config.tau))
    metrics = {
        "critic_loss": c_loss,
        "actor_loss": a_loss,
        "alpha": jnp.exp(learner.log_alpha),
        "entropy": entropy.mean(),
        **aux,
    }
    return learner, metrics


def explore(config: Config, learner: Learner, obs: jax.Array, key: jax.Array, fraction: jax.Array) -> jax.Array:
    """Samples of the policy: int32 ``[N]`` (discrete) or ``[N, action_dim]`` in [-1, 1]."""
    del fraction
    if config.spec.discrete:
        logits = _logits(config, learner.actor, obs)
        return jax.random.categorical(key, logits).astype(jnp.int32)
    return _sample(config, learner.actor, obs, key)[0]


ALGORITHM = offpolicy.Algorithm(init_learner, explore, update)
"""SAC's pieces for the shared replay loop in :mod:`purejaxlib.offpolicy`."""


def init(config: Config, key: jax.Array) -> State:
    """SAC's starting state: fresh actor, critics with a target copy and temperature ``alpha_init``,
    an empty replay buffer, reset envs."""
    return offpolicy.init(config, key, ALGORITHM)


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One SAC iteration: ``train_freq`` sampled-policy steps of ``num_envs`` envs into the buffer,
    then ``gradient_steps`` critic, actor, temperature and target updates (uniformly random actions
    and no updates during warm-up).

    Metrics (scalars): episode statistics, ``critic_loss``, ``actor_loss``, ``alpha``, ``entropy``,
    ``q_mean`` (NaN during warm-up), ``env_steps`` and ``iteration`` after this step. ``index``: the
    iteration's number, unbatched under ``vmap`` (``train`` passes it); see
    :func:`purejaxlib.offpolicy.step`.
    """
    return offpolicy.step(config, state, ALGORITHM, index)


def train(config: Config, key: jax.Array) -> TrainResult:
    """A whole SAC (TQC, discrete SAC) run: :func:`init` then ``num_iterations`` calls of
    :func:`step` in one ``lax.scan``. Jit- and vmap-able; metrics are ``[num_iterations]`` each."""
    return offpolicy.train(config, key, ALGORITHM)


finetune, jump_start = offpolicy.hybrid_entry_points(ALGORITHM)
"""``finetune(config, offline_state, key)`` (offline to online) and ``jump_start(config, key, guide)``
for this algorithm: see :func:`purejaxlib.offpolicy.hybrid_entry_points`."""


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> env action`` for ``obs [..., *obs_shape]``: the policy's mode (argmax, or
    tanh of the mean) when deterministic, else a sample; int32 ``[...]`` or ``[..., action_dim]``
    in the env's bounds."""

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        obs = offpolicy.observe(config, obs)
        if not deterministic:
            action = explore(config, state.learner, obs, key, jnp.float32(1.0))
        elif config.spec.discrete:
            action = jnp.argmax(_logits(config, state.learner.actor, obs), -1).astype(jnp.int32)
        else:
            action = jnp.tanh(_gaussian(config, state.learner.actor, obs)[0])
        return offpolicy.to_env_action(config, action)

    return act
