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
import numpy as np
import optax

from purejaxlib import distributions, objectives, training
from purejaxlib import envs as envs_lib
from purejaxlib.config import EnvConfig, static, traced
from purejaxlib.networks import ACTIVATIONS, CELLS, ActorCritic, RecurrentActorCritic, initial_carry, unroll
from purejaxlib.normalization import normalize
from purejaxlib.optim import make_optimizer, minibatch_sgd
from purejaxlib import returns as returns_lib
from purejaxlib.returns import gae
from purejaxlib.rollout import episode_metrics, recurrent_rollout


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
    advantage: Literal["gae", "reinforce", "rloo", "group"] = static("gae")
    """Advantage estimator: 'gae' (the critic); critic-free, from episodes that start at a reset every
    update: 'reinforce' (return minus a running-mean baseline), 'rloo' (minus the mean of the other
    rollouts of its group), 'group' (minus the group mean, over the group std with group_std)."""
    group_size: int = static(1)
    """With advantage='rloo' or 'group': rollouts per group (K >= 2), consecutive envs started from
    one reset key; num_envs must be a multiple."""
    group_std: bool = static(True)
    """With advantage='group': divide by the group's standard deviation (GRPO)."""
    ref_update_interval: int = static(0)
    """Critic-free advantages: copy the policy into the KL reference every this many updates (0: the
    reference stays the initial policy)."""
    recurrent: Literal["none", "gru", "lstm"] = static("none")
    """Policy torso: 'none' (MLPs) or a GRU / LSTM cell carried through the rollout, reset at episode
    starts and trained by backprop through each update's sequences (minibatches of whole envs)."""
    cell_size: int = static(128)
    """Units of the recurrent cell."""

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
    ref_kl_coef: float = traced(0.0)
    """Critic-free advantages: weight of KL(pi || pi_ref) to the reference policy (GRPO's penalty)."""
    baseline_decay: float = traced(0.9)
    """advantage='reinforce': decay of the running mean of returns (per time step) used as baseline."""

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
    def critic_free(self) -> bool:
        return self.advantage != "gae"

    @property
    def grouped(self) -> bool:
        return self.advantage in ("rloo", "group")

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
        self._check_advantage()
        self._check_recurrent()

    def _check_advantage(self) -> None:
        self.check_choice("advantage", ("gae", "reinforce", "rloo", "group"))
        self.check_positive("group_size", "ref_update_interval", allow_zero=True)
        self.check_positive("ref_kl_coef", allow_zero=True)
        self.check_range("baseline_decay", 0.0, 1.0)
        if self.grouped:
            if self.group_size < 2:
                self.fail("group_size", f"advantage={self.advantage!r} compares each rollout with the others of its "
                          f"group, so it needs group_size >= 2, got {self.group_size}")
            if self.num_envs % self.group_size:
                self.fail("group_size", f"num_envs={self.num_envs} must be a multiple of group_size={self.group_size} "
                          "(each group is group_size consecutive envs)")
        elif self.group_size != 1:
            self.fail("group_size", f"is used by advantage='rloo' or 'group' only, got {self.group_size} with "
                      f"advantage={self.advantage!r}")
        if not self.critic_free:
            ref_kl = self.concrete("ref_kl_coef")
            if ref_kl is not None and np.any(ref_kl != 0):
                self.fail("ref_kl_coef", "the KL penalty to a reference policy goes with the critic-free advantages "
                          "(advantage='reinforce', 'rloo' or 'group'); with 'gae' use objective='mdpo' for a KL term")
            if self.ref_update_interval:
                self.fail("ref_update_interval", "is used by the critic-free advantages only")
            return
        for name in ("normalize_obs", "normalize_reward"):
            if getattr(self, name):
                self.fail(name, f"advantage={self.advantage!r} restarts every env at each update, which would restart "
                          "the running statistics too; it is not supported with the critic-free advantages")

    def _check_recurrent(self) -> None:
        self.check_choice("recurrent", ("none",) + CELLS)
        if self.recurrent == "none":
            return
        self.check_positive("cell_size")
        if self.num_envs % self.num_minibatches:
            self.fail("num_minibatches", f"a recurrent policy learns from minibatches of whole env sequences, so "
                      f"num_minibatches={self.num_minibatches} must divide num_envs={self.num_envs}")

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
    memory: Any = None  # recurrent: (cell state [num_envs, cell_size] (LSTM: a pair), first [num_envs] bool)
    baseline: Any = None  # advantage='reinforce': running mean of the return per time step [num_steps]
    ref_params: Any = None  # critic-free advantages: the KL reference policy's params


class TrainResult(NamedTuple):
    state: State
    metrics: dict[str, jax.Array]  # each [num_updates]


def make_env(config: Config) -> tuple[Any, Any]:
    """The vectorized, wrapped env and its params for ``config``."""
    env, env_params = envs_lib.from_config(config)
    env = envs_lib.EpisodeStatistics(envs_lib.FlattenObservation(env))
    if not config.spec.discrete:
        env = envs_lib.ClipAction(env)
    env = envs_lib.VecEnv(env, config.num_envs, group_size=config.group_size if config.grouped else 1)
    if config.normalize_obs:
        env = envs_lib.NormalizeObservation(env)
    if config.normalize_reward:
        env = envs_lib.NormalizeReward(env, config.gamma)
    return env, env_params


def make_network(config: Config) -> ActorCritic | RecurrentActorCritic:
    spec = config.spec
    action_dim = spec.num_actions if spec.discrete else math.prod(spec.action_shape)
    args = (action_dim, not spec.discrete, tuple(config.hidden), config.activation, config.log_std_init)
    if config.recurrent != "none":
        return RecurrentActorCritic(*args, cell=config.recurrent, cell_size=config.cell_size)
    return ActorCritic(*args)


def initial_memory(config: Config, batch: int) -> tuple[Any, jax.Array]:
    """Recurrent policies' memory before any step: zero cell state, every obs opens an episode."""
    return initial_carry(config.recurrent, config.cell_size, batch), jnp.ones((batch,), bool)


def make_tx(config: Config) -> optax.GradientTransformation:
    steps = config.num_updates * config.update_epochs * config.num_minibatches
    return make_optimizer(config.lr, config.max_grad_norm, anneal_steps=steps if config.anneal_lr else None)


def init(config: Config, key: jax.Array) -> State:
    """Initial params, optimizer state and env states."""
    env, env_params = make_env(config)
    key, net_key, env_key = jax.random.split(key, 3)
    obs, env_state = env.reset(env_key, env_params)
    memory = None
    if config.recurrent != "none":
        memory = initial_memory(config, config.num_envs)
        params = make_network(config).init(net_key, initial_memory(config, 1)[0], obs[:1], memory[1][:1])
    else:
        params = make_network(config).init(net_key, obs[:1])
    opt_state = make_tx(config).init(params)
    baseline = jnp.zeros((config.num_steps,), jnp.float32) if config.advantage == "reinforce" else None
    ref_params = params if config.critic_free else None
    return State(params, opt_state, env_state, obs, key, jnp.int32(0), memory, baseline, ref_params)


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


def _dist_params(config: Config, dist: Any) -> tuple[jax.Array, jax.Array | None]:
    """(logits or mean, log_std or None) of a policy distribution, to store and rebuild it."""
    if config.dist_kind == "categorical":
        return dist.logits, None
    return dist.loc, jnp.log(dist.scale_diag)


class Batch(NamedTuple):
    """Flat learner samples, each ``[B, ...]``."""

    obs: jax.Array
    action: jax.Array  # raw action (see purejaxlib.distributions)
    log_prob: jax.Array  # log-probability under the policy that collected it
    value: jax.Array  # V(obs) when collected
    advantage: jax.Array
    target: jax.Array  # value target
    old_dist: Any = None  # MDPO: (logits or mean [B, A], log_std [B, A] or None) of the collecting policy
    mask: Any = None  # critic-free advantages: 1 on each env's first episode, 0 after [B]
    # Recurrent policies keep whole sequences: every field above is [n, T, ...] (n envs), and
    first: Any = None  # [n, T] bool: obs opens an episode (the cell state is reset there)
    carry: Any = None  # [n, cell_size] (LSTM: a pair): cell state before step 0


def _evaluate(config: Config, params: Any, batch: Batch) -> tuple[Any, jax.Array, Batch]:
    """The policy distribution and value at every sample, and the batch flat: ``[B, ...]``.

    Recurrent policies run their cell along each stored sequence from its initial state
    (truncated backprop through the update's ``num_steps``).
    """
    if config.recurrent == "none":
        dist, value = _dist(config, params, batch.obs)
        return dist, value, batch
    time_major = lambda x: jnp.swapaxes(x, 0, 1)
    _, (logits, log_std, value) = unroll(make_network(config), params, batch.carry, time_major(batch.obs),
                                         time_major(batch.first))
    flat = lambda x: time_major(x).reshape((-1,) + x.shape[2:])
    dist = distributions.make(config.dist_kind, flat(logits), log_std)
    samples = batch._replace(first=None, carry=None)
    samples = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), samples)
    return dist, flat(value), samples


def _masked_mean(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return x.mean()
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


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


def ppo_loss(config: Config, params: Any, batch: Batch, kl_coef: jax.Array | None = None,
             ref_params: Any = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Policy objective + (clipped) value loss - entropy bonus on a minibatch ``[B, ...]``.

    ``kl_coef`` weighs MDPO's ``KL(pi || pi_old)`` (closed form per state, from ``batch.old_dist``).
    With the critic-free advantages there is no value loss, means are over ``batch.mask``, and
    ``config.ref_kl_coef`` weighs ``KL(pi || pi_ref)`` to the policy with ``ref_params``.
    """
    stored = batch
    dist, value, batch = _evaluate(config, params, stored)
    mask = batch.mask
    mean = lambda x: _masked_mean(x, mask)
    log_prob = dist.log_prob(batch.action)
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    advantages = batch.advantage
    if config.normalize_advantages:
        centered = advantages - mean(advantages)
        advantages = centered / (jnp.sqrt(mean(jnp.square(centered))) + 1e-8)
    pg_loss = -mean(surrogate(config, log_prob, ratio, advantages))
    extra = {}
    if config.objective == "mdpo":
        old = distributions.make(config.dist_kind, *batch.old_dist)
        kl = mean(dist.kl_divergence(old))
        pg_loss = pg_loss + kl_coef * kl
        extra = {"policy_kl": kl, "kl_coef": kl_coef}
    if config.critic_free:
        ref_dist, _, _ = _evaluate(config, jax.lax.stop_gradient(ref_params), stored)
        ref_kl = mean(dist.kl_divergence(ref_dist))
        pg_loss = pg_loss + config.ref_kl_coef * ref_kl
        extra["ref_kl"] = ref_kl
    value_loss = jnp.float32(0.0)
    if not config.critic_free:
        old_value, targets = batch.value, batch.target
        value_loss = jnp.square(value - targets)
        if config.clip_value_loss:
            clipped_value = old_value + jnp.clip(value - old_value, -config.clip_eps, config.clip_eps)
            value_loss = jnp.maximum(value_loss, jnp.square(clipped_value - targets))
        value_loss = 0.5 * value_loss.mean()
    entropy = mean(dist.entropy())
    total = pg_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    aux = {
        "pg_loss": pg_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": mean((ratio - 1.0) - log_ratio),
        "clip_frac": mean((jnp.abs(ratio - 1.0) > config.clip_eps).astype(jnp.float32)),
        **extra,
    }
    return total, aux


def _policy_fn(config: Config, params: Any):
    """The acting function :func:`purejaxlib.rollout.recurrent_rollout` calls; records what the
    learner needs (log-prob, value, MDPO's collecting distribution, the cell state after the step)."""
    low, high = _action_bounds(config)
    network = make_network(config)

    def policy_fn(obs, first, carry, key):
        if config.recurrent != "none":
            carry, (mean_or_logits, log_std, value) = network.apply(params, carry, obs, first)
            dist = distributions.make(config.dist_kind, mean_or_logits, log_std)
        else:
            dist, value = _dist(config, params, obs)
        raw = dist.sample(seed=key)
        extras = {"log_prob": dist.log_prob(raw), "value": value}
        if config.objective == "mdpo":  # the collecting policy per sample, so MDPO's KL to it is exact
            extras["dist"] = _dist_params(config, dist)
        if config.recurrent != "none":
            extras["carry"] = carry
        return raw, distributions.to_env(config.dist_kind, raw, low, high), extras, carry

    return policy_fn


def _next_values(config: Config, params: Any, trajectory: Any) -> jax.Array:
    """``V(s'_t)`` of every step's true successor ``[T, N]``; a recurrent critic reads it with the
    cell state after step ``t``."""
    network = make_network(config)
    if config.recurrent == "none":
        return network.apply(params, trajectory.final_obs, method=ActorCritic.value)
    not_first = jnp.zeros(trajectory.final_obs.shape[1:2], bool)
    value = lambda carry, obs: network.apply(params, carry, obs, not_first)[1][2]
    return jax.vmap(value)(trajectory.extras["carry"], trajectory.final_obs)


def _critic_free_advantages(config: Config, state: State, trajectory: Any):
    """Advantages ``[T, N]`` from each env's first episode (the rollout starts at a reset), their
    mask ``[T, N]``, the returns ``[T, N]`` and the updated running baseline (REINFORCE)."""
    returns, mask = returns_lib.episode_returns_to_go(trajectory.reward, trajectory.episode_done, config.gamma)
    baseline = state.baseline
    if config.advantage == "reinforce":
        advantages = returns - baseline[:, None]  # the baseline predates these returns: no bias
        decay = jnp.where(state.update_step == 0, 0.0, config.baseline_decay)
        baseline = returns_lib.update_running_baseline(baseline, returns, mask, decay)
    elif config.advantage == "rloo":
        advantages = returns_lib.grouped_rloo_advantages(returns, config.group_size)
    else:
        advantages = returns_lib.grouped_group_advantages(returns, config.group_size, config.group_std)
    return advantages, mask, returns, baseline


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One update: collect ``num_steps`` x ``num_envs`` transitions, then learn from them.

    With the critic-free advantages every env restarts at a reset first (groups share one reset
    key). ``index`` (the update's number) is accepted for the shared surface and not needed here.
    """
    env, env_params = make_env(config)
    recurrent = config.recurrent != "none"
    key, rollout_key, learn_key = jax.random.split(state.key, 3)
    env_state, obs, memory = state.env_state, state.obs, state.memory
    if config.critic_free:
        key, reset_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, env_params)
        memory = initial_memory(config, config.num_envs) if recurrent else None
    if memory is None:
        memory = (None, jnp.zeros((config.num_envs,), bool))
    env_state, obs, next_memory, trajectory = recurrent_rollout(
        env, env_params, _policy_fn(config, state.params), env_state, obs, memory, rollout_key, config.num_steps
    )
    baseline, mask = state.baseline, None
    if config.critic_free:
        advantages, mask, targets, baseline = _critic_free_advantages(config, state, trajectory)
    else:
        advantages, targets = gae(
            trajectory.reward,
            trajectory.extras["value"],
            _next_values(config, state.params, trajectory),
            trajectory.terminated,
            trajectory.truncated,
            config.gamma,
            config.gae_lambda,
        )
    batch = Batch(
        trajectory.obs, trajectory.action, trajectory.extras["log_prob"], trajectory.extras["value"], advantages, targets,
        trajectory.extras.get("dist"), mask,
    )
    if recurrent:  # whole sequences, env-major, so minibatches are sets of envs
        firsts = jnp.concatenate([memory[1][None], trajectory.episode_done[:-1]])
        batch = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch._replace(first=firsts))._replace(carry=memory[0])
    else:
        batch = jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)
    kl_coef = None
    if config.objective == "mdpo":
        kl_coef = objectives.mdpo_kl_coef(state.update_step, config.num_updates, config.mdpo_step_size)
    params, opt_state, learn_stats = minibatch_sgd(
        lambda p, mb: ppo_loss(config, p, mb, kl_coef, state.ref_params), make_tx(config), state.params,
        state.opt_state, batch, learn_key, config.update_epochs, config.num_minibatches,
    )
    update_step = state.update_step + 1
    ref_params = state.ref_params
    if config.critic_free and config.ref_update_interval:
        refresh = update_step % config.ref_update_interval == 0
        ref_params = jax.tree.map(lambda new, old: jnp.where(refresh, new, old), params, ref_params)
    metrics = {
        **episode_metrics(trajectory),
        **learn_stats,
        "env_steps": update_step * config.batch_size,
    }
    if config.critic_free:
        metrics["mask_frac"] = mask.mean()
    return State(params, opt_state, env_state, obs, key, update_step, next_memory if recurrent else None, baseline,
                 ref_params), metrics


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


class RecurrentAct:
    """A recurrent policy's acting function: ``act(obs [N, ...], key, carry, first [N]) -> (action,
    carry)``; ``first`` marks observations that open an episode (the cell state is reset there)
    and ``act.initial_carry(N)`` is the state before any step."""

    def __init__(self, config: Config, step_fn: Callable[..., tuple[jax.Array, Any]]):
        self._config, self._step = config, step_fn

    def initial_carry(self, batch: int) -> Any:
        return initial_carry(self._config.recurrent, self._config.cell_size, batch)

    def __call__(self, obs: jax.Array, key: jax.Array, carry: Any, first: jax.Array) -> tuple[jax.Array, Any]:
        return self._step(obs, key, carry, first)


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[..., Any]:
    """``act(obs, key) -> env action`` for raw env observations ``[..., obs_dim]``; for a recurrent
    policy a :class:`RecurrentAct`, which also takes and returns the cell state.

    Applies the run's observation normalization (frozen at ``state``) when it was on.
    """
    low, high = _action_bounds(config)
    stats = _obs_stats(config, state.env_state)
    params = state.params

    def to_action(dist: Any, key: jax.Array) -> jax.Array:
        raw = dist.mode() if deterministic else dist.sample(seed=key)
        action = distributions.to_env(config.dist_kind, raw, low, high)
        if config.dist_kind == "normal":
            action = jnp.clip(action, low, high)
        return action

    def prepare(obs: jax.Array) -> jax.Array:
        obs = config.spec.flatten(obs)
        return normalize(stats, obs) if stats is not None else obs

    if config.recurrent != "none":
        network = make_network(config)

        def step_fn(obs, key, carry, first):
            carry, (mean_or_logits, log_std, _) = network.apply(params, carry, prepare(obs), first)
            return to_action(distributions.make(config.dist_kind, mean_or_logits, log_std), key), carry

        return RecurrentAct(config, step_fn)

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        dist, _ = _dist(config, params, prepare(obs))
        return to_action(dist, key)

    return act
