"""Proximal Policy Optimization and its one-term relatives (A2C, MDPO, DPO, any Mirror Learning
drift) for discrete and continuous actions; ``Config.objective`` picks the policy objective
(:mod:`purejaxlib.objectives`), everything else is shared.

Surface (shared by every algorithm in purejaxlib.algos)::

    config = ppo.Config(env="CartPole-v1", total_timesteps=500_000)
    state = ppo.init(config, key)
    state, metrics = ppo.step(config, state)       # one update: collect num_steps x num_envs, learn
    result = ppo.train(config, key)                # init + lax.scan(step); jittable end to end
    act = ppo.policy(config, result.state)         # act(obs, key) -> env action
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxlib import distributions, objectives, training
from purejaxlib import envs as envs_lib
from purejaxlib.config import EnvConfig, static, traced
from purejaxlib.networks import ACTIVATIONS, ActorCritic
from purejaxlib.normalization import normalize
from purejaxlib.optim import make_optimizer, minibatch_sgd
from purejaxlib.returns import gae
from purejaxlib.rollout import episode_metrics, rollout


class Config(EnvConfig):
    """PPO hyperparameters. Static fields set program structure; traced ones are float32 leaves."""

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
    """Hidden layer widths of actor and critic."""
    activation: Literal["tanh", "relu", "elu", "gelu", "swish"] = static("tanh")
    """Hidden-layer activation."""
    action_dist: Literal["auto", "categorical", "normal", "tanh_normal"] = static("auto")
    """Action distribution; auto picks categorical or normal (clipped Gaussian) from the env."""
    anneal_lr: bool = static(True)
    """Decay the learning rate linearly to 0."""
    normalize_advantages: bool = static(True)
    """Standardize advantages per minibatch."""
    clip_value_loss: bool = static(True)
    """Clip the value update to clip_eps around the old value."""
    normalize_obs: bool = static(False)
    """Running observation normalization."""
    normalize_reward: bool = static(False)
    """Scale rewards by the running std of the return."""
    log_interval: int = static(0)
    """Report progress every this many updates (0: never)."""
    objective: Literal["ppo", "a2c", "mdpo", "dpo", "drift"] = static("ppo")
    """Policy objective: 'ppo' (clipped), 'a2c' (plain policy gradient; 1 epoch, 1 minibatch),
    'mdpo' (KL to the previous policy, annealed step size), 'dpo' (Discovered Policy
    Optimisation's drift), 'drift' (r A - drift(r, A) with the function in ``drift``)."""
    drift: objectives.Drift | None = static(None)
    """With objective='drift': a function ``(ratio [B], advantages [B]) -> [B]``, >= 0, zero at ratio 1."""

    lr: float = traced(2.5e-4)
    """Adam learning rate."""
    gamma: float = traced(0.99)
    """Discount factor."""
    gae_lambda: float = traced(0.95)
    """GAE lambda."""
    clip_eps: float = traced(0.2)
    """Policy (and value) clipping range."""
    ent_coef: float = traced(0.01)
    """Entropy bonus coefficient."""
    vf_coef: float = traced(0.5)
    """Value loss coefficient."""
    max_grad_norm: float = traced(0.5)
    """Global gradient-norm clip."""
    log_std_init: float = traced(0.0)
    """Initial log std of continuous policies."""
    dpo_alpha: float = traced(2.0)
    """DPO drift: scale of the tanh on the positive-advantage side (published default 2)."""
    dpo_beta: float = traced(0.6)
    """DPO drift: scale of the tanh on the negative-advantage side (published default 0.6)."""
    mdpo_step_size: float = traced(1.0)
    """MDPO's initial step size t_0; the KL weight is 1 / (t_0 (1 - k / num_updates)) at update k."""

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

    @property
    def dist_kind(self) -> str:
        if self.action_dist == "auto":
            return "categorical" if self.spec.discrete else "normal"
        return self.action_dist

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
                f"{self.total_timesteps} is less than one update (num_envs * num_steps = {self.batch_size})",
            )
        if not self.hidden or any(int(w) <= 0 for w in self.hidden):
            self.fail("hidden", f"needs one or more positive widths, got {self.hidden!r}")
        self.check_choice("activation", ACTIVATIONS)
        self.check_choice("action_dist", ("auto",) + distributions.KINDS)
        if self.spec.discrete and self.action_dist in distributions.CONTINUOUS_KINDS:
            self.fail("action_dist", f"{self.action_dist!r} needs continuous actions, but {self.env} is discrete; use 'auto' or 'categorical'")
        if not self.spec.discrete and self.action_dist == "categorical":
            self.fail("action_dist", f"'categorical' needs discrete actions, but {self.env} is continuous; use 'auto', 'normal' or 'tanh_normal'")
        self.check_positive("log_interval", allow_zero=True)
        self.check_positive("lr", "clip_eps", "max_grad_norm")
        self.check_positive("ent_coef", "vf_coef", allow_zero=True)
        self.check_range("gamma", 0.0, 1.0)
        self.check_range("gae_lambda", 0.0, 1.0)
        self.check_positive("dpo_alpha", "dpo_beta", "mdpo_step_size")
        self._check_objective()

    def _check_objective(self) -> None:
        objective, drift = self.objective, self.drift
        if objective not in objectives.OBJECTIVES:
            self.fail("objective", f"must be one of {objectives.OBJECTIVES}, got {objective!r}")
        if (objective == "drift") != (drift is not None):
            self.fail("drift", "objective='drift' takes its function from drift=..., and drift is used only then; got "
                      f"objective={objective!r} with drift={'a function' if drift is not None else None}")
        if drift is not None:
            if not callable(drift):
                self.fail("drift", f"must be a function (ratio [B], advantages [B]) -> [B], got {drift!r}")
            probe = jax.ShapeDtypeStruct((3,), jnp.float32)
            try:
                out = jax.eval_shape(drift, probe, probe)
            except Exception as err:  # the user's function, any failure: say which call failed
                self.fail("drift", f"a drift function is called as drift(ratio [B], advantages [B]); "
                          f"calling {getattr(drift, '__name__', drift)!r} that way failed: {err}")
            if getattr(out, "shape", None) != (3,):
                self.fail("drift", f"a drift function must return one value per sample ([B]); for B=3 it returned "
                          f"{getattr(out, 'shape', out)}")
        if objective == "a2c" and (self.update_epochs != 1 or self.num_minibatches != 1):
            self.fail("objective", "'a2c' takes one gradient step per rollout (its gradient is only the policy gradient "
                      f"at the policy that collected the data), so it needs update_epochs=1 and num_minibatches=1, got "
                      f"{self.update_epochs} and {self.num_minibatches}; use a2c_config() or objective='ppo'")


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
    if not config.spec.discrete:
        env = envs_lib.ClipAction(env)
    env = envs_lib.VecEnv(env, config.num_envs)
    if config.normalize_obs:
        env = envs_lib.NormalizeObservation(env)
    if config.normalize_reward:
        env = envs_lib.NormalizeReward(env, config.gamma)
    return env, env_params


def make_network(config: Config) -> ActorCritic:
    spec = config.spec
    action_dim = spec.num_actions if spec.discrete else math.prod(spec.action_shape)
    return ActorCritic(action_dim, not spec.discrete, tuple(config.hidden), config.activation, config.log_std_init)


def make_tx(config: Config) -> optax.GradientTransformation:
    steps = config.num_updates * config.update_epochs * config.num_minibatches
    return make_optimizer(config.lr, config.max_grad_norm, anneal_steps=steps if config.anneal_lr else None)


def init(config: Config, key: jax.Array) -> State:
    """Initial params, optimizer state and env states."""
    env, env_params = make_env(config)
    key, net_key, env_key = jax.random.split(key, 3)
    obs, env_state = env.reset(env_key, env_params)
    params = make_network(config).init(net_key, obs[:1])
    opt_state = make_tx(config).init(params)
    return State(params, opt_state, env_state, obs, key, jnp.int32(0))


def _obs_stats(config: Config, env_state: Any):
    """The observation-normalization statistics inside ``env_state`` (None when off)."""
    if not config.normalize_obs:
        return None
    if config.normalize_reward:
        env_state = env_state.env_state
    return env_state.stats


def _action_bounds(config: Config):
    spec = config.spec
    if spec.discrete:
        return None, None
    return jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)


def _dist(config: Config, params: Any, obs: jax.Array):
    mean_or_logits, log_std, value = make_network(config).apply(params, obs)
    return distributions.make(config.dist_kind, mean_or_logits, log_std), value


class Batch(NamedTuple):
    """Flat learner samples, each ``[B, ...]``."""

    obs: jax.Array
    action: jax.Array  # raw action (see purejaxlib.distributions)
    log_prob: jax.Array  # log-probability under the policy that collected it
    value: jax.Array  # V(obs) when collected
    advantage: jax.Array
    target: jax.Array  # value target
    old_dist: Any = None  # MDPO: (logits or mean [B, A], log_std [B, A] or None) of the collecting policy


def surrogate(config: Config, log_prob: jax.Array, ratio: jax.Array, advantages: jax.Array) -> jax.Array:
    """The policy objective's per-sample surrogate to maximize (MDPO's KL term apart): ``[B] -> [B]``."""
    objective = config.objective
    if objective == "drift":
        return objectives.mirror(ratio, advantages, config.drift)
    if objective == "ppo":
        return objectives.ppo_clip(ratio, advantages, config.clip_eps)
    if objective == "a2c":
        return objectives.policy_gradient(log_prob, advantages)
    if objective == "dpo":
        return objectives.mirror(ratio, advantages, lambda r, a: objectives.dpo_drift(r, a, config.dpo_alpha, config.dpo_beta))
    return ratio * advantages  # mdpo: the KL proximity term is added by ppo_loss


def ppo_loss(config: Config, params: Any, batch: Batch, kl_coef: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Policy objective + (clipped) value loss - entropy bonus on a minibatch ``[B, ...]``.

    ``kl_coef`` weighs MDPO's ``KL(pi || pi_old)`` (closed form per state, from ``batch.old_dist``).
    """
    dist, value = _dist(config, params, batch.obs)
    log_prob = dist.log_prob(batch.action)
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    advantages = batch.advantage
    if config.normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    pg_loss = -surrogate(config, log_prob, ratio, advantages).mean()
    extra = {}
    if config.objective == "mdpo":
        old = distributions.make(config.dist_kind, *batch.old_dist)
        kl = dist.kl_divergence(old).mean()
        pg_loss = pg_loss + kl_coef * kl
        extra = {"policy_kl": kl, "kl_coef": kl_coef}

    old_value, targets = batch.value, batch.target
    value_loss = jnp.square(value - targets)
    if config.clip_value_loss:
        clipped_value = old_value + jnp.clip(value - old_value, -config.clip_eps, config.clip_eps)
        value_loss = jnp.maximum(value_loss, jnp.square(clipped_value - targets))
    value_loss = 0.5 * value_loss.mean()
    entropy = dist.entropy().mean()
    total = pg_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    aux = {
        "pg_loss": pg_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
        "clip_frac": (jnp.abs(ratio - 1.0) > config.clip_eps).astype(jnp.float32).mean(),
        **extra,
    }
    return total, aux


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One update: collect ``num_steps`` x ``num_envs`` transitions, then learn from them.

    ``index`` (the update's number) is accepted for the shared surface and not needed here.
    """
    env, env_params = make_env(config)
    low, high = _action_bounds(config)

    def policy_fn(obs, key):
        dist, value = _dist(config, state.params, obs)
        raw = dist.sample(seed=key)
        extras = {"log_prob": dist.log_prob(raw), "value": value}
        if config.objective == "mdpo":  # the collecting policy per sample, so MDPO's KL to it is exact
            extras["dist"] = (dist.logits, None) if config.dist_kind == "categorical" else (dist.loc, jnp.log(dist.scale_diag))
        return raw, distributions.to_env(config.dist_kind, raw, low, high), extras

    key, rollout_key, learn_key = jax.random.split(state.key, 3)
    env_state, obs, trajectory = rollout(
        env, env_params, policy_fn, state.env_state, state.obs, rollout_key, config.num_steps
    )
    network = make_network(config)
    next_values = network.apply(state.params, trajectory.final_obs, method=ActorCritic.value)
    advantages, targets = gae(
        trajectory.reward,
        trajectory.extras["value"],
        next_values,
        trajectory.terminated,
        trajectory.truncated,
        config.gamma,
        config.gae_lambda,
    )
    batch = Batch(
        trajectory.obs, trajectory.action, trajectory.extras["log_prob"], trajectory.extras["value"], advantages, targets,
        trajectory.extras.get("dist"),
    )
    batch = jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)
    kl_coef = None
    if config.objective == "mdpo":
        kl_coef = objectives.mdpo_kl_coef(state.update_step, config.num_updates, config.mdpo_step_size)
    params, opt_state, learn_stats = minibatch_sgd(
        lambda p, mb: ppo_loss(config, p, mb, kl_coef), make_tx(config), state.params, state.opt_state, batch, learn_key,
        config.update_epochs, config.num_minibatches,
    )
    update_step = state.update_step + 1
    metrics = {
        **episode_metrics(trajectory),
        **learn_stats,
        "env_steps": update_step * config.batch_size,
    }
    return State(params, opt_state, env_state, obs, key, update_step), metrics


def a2c_config(**overrides: Any) -> Config:
    """A2C as PPO's special case: one gradient step per rollout of 16 envs x 5 steps, n-step returns
    (``gae_lambda=1``: each step's return runs to the rollout's end and bootstraps there), no
    clipping or advantage normalization; ``overrides`` replace any field."""
    fields = dict(objective="a2c", num_envs=16, num_steps=5, update_epochs=1, num_minibatches=1, gae_lambda=1.0,
                  normalize_advantages=False, clip_value_loss=False, anneal_lr=False, lr=7e-4)
    return Config(**{**fields, **overrides})


def train(config: Config, key: jax.Array) -> TrainResult:
    """``init`` then ``num_updates`` calls of ``step`` inside ``lax.scan``; jit- and vmap-able."""
    return TrainResult(*training.train(init, step, config, key))


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> env action`` for raw env observations ``[..., obs_dim]``.

    Applies the run's observation normalization (frozen at ``state``) when it was on.
    """
    low, high = _action_bounds(config)
    stats = _obs_stats(config, state.env_state)
    params = state.params

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        obs = config.spec.flatten(obs)
        if stats is not None:
            obs = normalize(stats, obs)
        dist, _ = _dist(config, params, obs)
        raw = dist.mode() if deterministic else dist.sample(seed=key)
        action = distributions.to_env(config.dist_kind, raw, low, high)
        if config.dist_kind == "normal":
            action = jnp.clip(action, low, high)
        return action

    return act
