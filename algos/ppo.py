"""Proximal Policy Optimization and its one-term relatives (A2C, MDPO, DPO, any Mirror Learning
drift) for discrete and continuous actions, with an MLP or a recurrent (GRU/LSTM) torso, and
advantages from a critic (GAE) or critic-free (REINFORCE, RLOO, group-relative).

Read top to bottom: Config, State, :func:`apply` (the one network application: the rollout, the
loss and ``policy`` all call it), the loss, ``step``, ``policy``. Shared pieces: the rollout and
update sizes in :mod:`purejaxlib.onpolicy`, objectives in :mod:`purejaxlib.objectives`, the
critic-free advantages and their state in :mod:`purejaxlib.critic_free`.

Surface (shared by every algorithm in purejaxlib.algos)::

    config = ppo.Config(env="CartPole-v1", total_timesteps=500_000)
    state = ppo.init(config, key)
    state, metrics = ppo.step(config, state)       # one update: collect num_steps x num_envs, learn
    result = ppo.train(config, key)                # init + lax.scan(step); jittable end to end
    act = ppo.policy(config, result.state)         # act(obs, key) -> env action
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple, cast

import distrax
import jax
import jax.numpy as jnp

from purejaxlib import critic_free as critic_free_lib
from purejaxlib import distributions, objectives, offline, onpolicy, training
from purejaxlib.config import static, traced
from purejaxlib.critic_free import CriticFree
from purejaxlib.networks import CELLS, ActorCritic, RecurrentActorCritic, initial_carry, unroll
from purejaxlib.normalization import normalize
from purejaxlib.onpolicy import RecurrentAct, TrainResult, action_bounds, make_tx, obs_stats
from purejaxlib.optim import minibatch_sgd
from purejaxlib.returns import gae
from purejaxlib.rollout import Memory, episode_metrics, masked_mean, recurrent_rollout


class Config(onpolicy.Config):
    """PPO hyperparameters; the rollout and update sizes are :class:`purejaxlib.onpolicy.Config`'s.
    Static fields set program structure; traced ones are float32 leaves."""

    vector_fields: ClassVar[tuple[str, ...]] = ("drift_params",)
    multiagent: ClassVar[bool] = True  # IPPO / MAPPO on multi-agent envs (one shared policy over agent rows)
    features: ClassVar[dict[str, str]] = {  # fields only this module has: other algorithms' errors point here
        "recurrent": "recurrent (GRU/LSTM) policies",
        "cell_size": "recurrent (GRU/LSTM) policies",
        "advantage": "critic-free advantages (REINFORCE, RLOO, group-relative)",
        "group_size": "critic-free advantages (REINFORCE, RLOO, group-relative)",
        "objective": "pluggable policy objectives (PPO, A2C, MDPO, DPO, drift)",
        "offline_data": "hybrid on-policy learning (a critic loss on offline data)",
        "offline_vf_coef": "hybrid on-policy learning (a critic loss on offline data)",
        "critic": "multi-agent learning (IPPO, MAPPO)",
    }

    action_dist: Literal["auto", "categorical", "normal", "tanh_normal"] = static("auto")
    """Action distribution; auto picks categorical or normal (clipped Gaussian) from the env."""
    normalize_advantages: bool = static(True)
    """Standardize advantages per minibatch."""
    clip_value_loss: bool = static(True)
    """Clip the value update to clip_eps around the old value."""
    normalize_obs: bool = static(False)
    """Running observation normalization."""
    normalize_reward: bool = static(False)
    """Scale rewards by the running std of the return."""
    objective: Literal["ppo", "a2c", "mdpo", "dpo", "drift"] = static("ppo")
    """Policy objective: 'ppo' (clipped), 'a2c' (plain policy gradient; 1 epoch, 1 minibatch),
    'mdpo' (KL to the previous policy, annealed step size), 'dpo' (Discovered Policy
    Optimisation's drift), 'drift' (r A - drift(r, A) with the function in ``drift``)."""
    drift: objectives.Drift | None = static(None)
    """With objective='drift': a function ``(ratio [B], advantages [B]) -> [B]``, >= 0, zero at ratio 1;
    with ``drift_params``, ``(ratio [B], advantages [B], drift_params [D]) -> [B]``."""
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
    offline_data: str = static("")
    """Hybrid on-policy learning (HNPG-style): a dataset (:func:`purejaxlib.offline.save`) whose
    transitions also train the critic. Each update draws ``batch_size`` of them, shuffled into the
    minibatches with the rollout, and each minibatch adds ``offline_vf_coef`` times a TD(0) loss of
    V on its share (target ``r + discount * V(s')``, V held fixed there). The policy learns from its
    own rollouts only. MLP policies with the critic (advantage='gae'), raw observations and rewards."""

    critic: Literal["local", "centralized"] = static("local")
    """Multi-agent envs (one policy shared by all agents, each agent's row carries its one-hot id):
    'local' (IPPO: the critic sees what the agent sees) or 'centralized' (MAPPO: the critic sees
    the env's global state and the agent's id; acting still uses only the agent's observation)."""

    gae_lambda: float = traced(0.95)
    """GAE lambda."""
    clip_eps: float = traced(0.2)
    """Policy (and value) clipping range."""
    ent_coef: float = traced(0.01)
    """Entropy bonus coefficient."""
    vf_coef: float = traced(0.5)
    """Value loss coefficient."""
    log_std_init: float = traced(0.0)
    """Initial log std of continuous policies."""
    dpo_alpha: float = traced(2.0)
    """DPO drift: scale of the tanh on the positive-advantage side (published default 2)."""
    dpo_beta: float = traced(0.6)
    """DPO drift: scale of the tanh on the negative-advantage side (published default 0.6)."""
    drift_params: Any = traced(None)
    """With objective='drift': a flat float32 vector ``[D]`` of the drift's parameters, passed as its
    third argument (traced: a learned drift, e.g. :mod:`purejaxlib.lpo`'s, sweeps and vmaps)."""
    mdpo_step_size: float = traced(1.0)
    """MDPO's initial step size t_0; the KL weight is 1 / (t_0 (1 - k / num_updates)) at update k."""
    ref_kl_coef: float = traced(0.0)
    """Critic-free advantages: weight of KL(pi || pi_ref) to the reference policy (GRPO's penalty)."""
    offline_vf_coef: float = traced(0.5)
    """With ``offline_data``: weight of the critic's TD loss on the dataset's transitions."""
    baseline_decay: float = traced(0.9)
    """advantage='reinforce': decay of the running mean of returns (per time step) used as baseline."""

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
        super().validate()
        self.check_choice("action_dist", ("auto",) + distributions.KINDS)
        if self.spec.discrete and self.action_dist in distributions.CONTINUOUS_KINDS:
            use = "use 'auto' or 'categorical'"
            self.fail(
                "action_dist", f"{self.action_dist!r} needs continuous actions, but {self.env} is discrete; {use}"
            )
        if not self.spec.discrete and self.action_dist == "categorical":
            use = "use 'auto', 'normal' or 'tanh_normal'"
            self.fail("action_dist", f"'categorical' needs discrete actions, but {self.env} is continuous; {use}")
        self.check_positive("clip_eps", "dpo_alpha", "dpo_beta", "mdpo_step_size")
        self.check_positive("ent_coef", "vf_coef", allow_zero=True)
        self.check_range("gae_lambda", 0.0, 1.0)
        objectives.check_config(self)
        critic_free_lib.check_config(self)
        if self.reset_pool and self.grouped and self.group_size > 1:
            self.fail("reset_pool", f"critic-free groups (group_size={self.group_size}) start together; leave it 0")
        if self.offline_data:
            self._validate_offline_data()
        self.check_choice("critic", ("local", "centralized"))
        if self.spec.agents:
            self._validate_multiagent()
        elif self.critic != "local":
            self.fail("critic", f"'centralized' needs a multi-agent env, and {self.env} has one agent")
        self.check_choice("recurrent", ("none",) + CELLS)
        if self.recurrent != "none":
            self.check_positive("cell_size")
            if self.num_envs % self.num_minibatches:
                why = "a recurrent policy learns from minibatches of whole env sequences, so num_minibatches"
                self.fail("num_minibatches", f"{why}={self.num_minibatches} must divide num_envs={self.num_envs}")

    def _validate_multiagent(self) -> None:
        for field, bad, why in (
            ("recurrent", self.recurrent != "none", "MLP policies ('none') for now"),
            ("advantage", self.critic_free, "the critic (advantage='gae')"),
            ("normalize_obs", self.normalize_obs, "raw agent rows (normalizing would scale ids and action masks)"),
            ("offline_data", bool(self.offline_data), "no offline data"),
        ):
            if bad:
                self.fail(field, f"multi-agent learning on {self.env} takes {why}")

    def _validate_offline_data(self) -> None:
        self.check_positive("offline_vf_coef", allow_zero=True)
        for field, bad, why in (
            ("recurrent", self.recurrent != "none", "an MLP policy"),
            ("advantage", self.critic_free, "the critic (advantage='gae')"),
            ("normalize_obs", self.normalize_obs, "raw observations (the data's are raw)"),
            ("normalize_reward", self.normalize_reward, "raw rewards (the data's are raw)"),
        ):
            if bad:
                self.fail(field, f"offline_data's critic loss needs {why}")
        try:
            offline.cached(self.offline_data, self.env)
        except (OSError, offline.DatasetError) as err:
            self.fail("offline_data", str(err))


class State(NamedTuple):
    """Everything a run carries from one update to the next."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array  # [num_envs, obs_dim]
    key: jax.Array
    iteration: jax.Array  # int32 scalar, updates done so far
    memory: Memory | None = None  # recurrent: cell state [num_envs, cell_size] (LSTM: a pair), first [num_envs]
    critic_free: CriticFree | None = None  # critic-free advantages only


def make_env(config: Config) -> tuple[Any, Any]:
    """The vectorized, wrapped env and its params for ``config``."""
    norms = dict(normalize_obs=config.normalize_obs, normalize_reward=config.normalize_reward)
    return onpolicy.make_env(config, group_size=config.group_size if config.grouped else 1, **norms)


def make_network(config: Config) -> ActorCritic | RecurrentActorCritic:
    spec = config.spec
    action_dim = spec.num_actions if spec.discrete else math.prod(spec.action_shape)
    args = (action_dim, not spec.discrete, tuple(config.hidden), config.activation, config.log_std_init)
    if config.recurrent != "none":
        return RecurrentActorCritic(*args, cell=config.recurrent, cell_size=config.cell_size, image=config.image)
    return ActorCritic(*args, layout=spec.layout, centralized=config.critic == "centralized", image=config.image)


def initial_memory(config: Config, batch: int) -> Memory | None:
    """A recurrent policy's memory before any step (zero cell state, every obs opens an episode);
    None for the MLP, which has none."""
    if config.recurrent == "none":
        return None
    return Memory(initial_carry(config.recurrent, config.cell_size, batch), jnp.ones((batch,), bool))


def apply(
    config: Config, params: Any, carry: Any, obs: jax.Array, first: jax.Array | None
) -> tuple[Any, distrax.Distribution, jax.Array]:
    """The policy distribution and value at ``obs``: ``(carry, dist, value)``.

    MLP (``carry`` None, ``first`` unused): ``obs [..., obs_dim]`` -> dist and value over ``[...]``.
    Recurrent: sequences ``obs [N, T, obs_dim]`` and ``first [N, T]`` (obs opens an episode: the
    cell state is zeroed before it) from ``carry``, the cell state ``[N, cell_size]`` before step
    0 -> the state after step ``T - 1``, dist and value over ``[N, T]``.
    """
    network = make_network(config)
    if carry is None:
        mean_or_logits, log_std, value = cast(tuple[jax.Array, Any, jax.Array], network.apply(params, obs))
    else:
        time_major = lambda x: jnp.swapaxes(x, 0, 1)
        carry, (mean_or_logits, log_std, value) = unroll(network, params, carry, time_major(obs), time_major(first))
        mean_or_logits, value = time_major(mean_or_logits), time_major(value)
    return carry, distributions.make(config.dist_kind, mean_or_logits, log_std), value


def init(config: Config, key: jax.Array) -> State:
    """Initial params, optimizer state, env states (and memory, critic-free state)."""
    env, env_params = make_env(config)
    key, net_key, env_key = jax.random.split(key, 3)
    obs, env_state = env.reset(env_key, env_params)
    memory = initial_memory(config, config.num_envs)
    example = (obs[:1],) if memory is None else (jax.tree.map(lambda c: c[:1], memory.carry), obs[:1], memory.first[:1])
    params = make_network(config).init(net_key, *example)
    opt_state = make_tx(config).init(params)
    return State(params, opt_state, env_state, obs, key, jnp.int32(0), memory, critic_free_lib.init(config, params))


def dist_params(config: Config, dist: distrax.Distribution) -> tuple[jax.Array, jax.Array | None]:
    """(logits or mean, log_std or None) of a policy distribution, to store and rebuild it."""
    if config.dist_kind == "categorical":
        return dist.logits, None
    return dist.loc, jnp.log(dist.scale_diag)


class Batch(NamedTuple):
    """Learner samples: flat ``[B, ...]`` (MLP) or whole env sequences ``[n, T, ...]`` (recurrent)."""

    obs: jax.Array
    action: jax.Array  # raw action (see purejaxlib.distributions)
    log_prob: jax.Array  # log-probability under the policy that collected it
    value: jax.Array  # V(obs) when collected
    advantage: jax.Array
    target: jax.Array  # value target
    old_dist: Any = None  # MDPO: (logits or mean [..., A], log_std [..., A] or None) of the collecting policy
    mask: Any = None  # critic-free advantages: 1 on each env's first episode, 0 after
    first: Any = None  # recurrent: [n, T] bool, obs opens an episode (the cell state is reset there)
    carry: Any = None  # recurrent: [n, cell_size] (LSTM: a pair), the cell state before step 0
    offline: Any = None  # offline_data: a replay.Batch [B] of dataset transitions for the critic's TD loss


def ppo_loss(
    config: Config, params: Any, batch: Batch, kl_coef: jax.Array | None = None, ref_params: Any = None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Policy objective + (clipped) value loss - entropy bonus on a minibatch (see :class:`Batch`).

    ``kl_coef`` weighs MDPO's ``KL(pi || pi_old)`` (closed form per state, from ``batch.old_dist``).
    With the critic-free advantages there is no value loss, means are over ``batch.mask``, and
    ``config.ref_kl_coef`` weighs ``KL(pi || pi_ref)`` to the policy with ``ref_params``.
    """
    _, dist, value = apply(config, params, batch.carry, batch.obs, batch.first)
    mean = lambda x: masked_mean(x, batch.mask)
    log_prob = dist.log_prob(batch.action)
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    advantages = batch.advantage
    if config.normalize_advantages:
        centered = advantages - mean(advantages)
        advantages = centered / (jnp.sqrt(mean(jnp.square(centered))) + 1e-8)
    pg_loss = -mean(objectives.surrogate(config, log_prob, ratio, advantages))
    extra = {}
    if kl_coef is not None:  # MDPO
        kl = mean(dist.kl_divergence(distributions.make(config.dist_kind, *batch.old_dist)))
        pg_loss = pg_loss + kl_coef * kl
        extra = {"policy_kl": kl, "kl_coef": kl_coef}
    value_loss = jnp.float32(0.0)
    if config.critic_free:
        _, ref_dist, _ = apply(config, jax.lax.stop_gradient(ref_params), batch.carry, batch.obs, batch.first)
        ref_kl = mean(dist.kl_divergence(ref_dist))
        pg_loss = pg_loss + config.ref_kl_coef * ref_kl
        extra["ref_kl"] = ref_kl
    else:
        value_loss = jnp.square(value - batch.target)
        if config.clip_value_loss:
            clipped_value = batch.value + jnp.clip(value - batch.value, -config.clip_eps, config.clip_eps)
            value_loss = jnp.maximum(value_loss, jnp.square(clipped_value - batch.target))
        value_loss = 0.5 * value_loss.mean()
    entropy = mean(dist.entropy())
    total = pg_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    if batch.offline is not None:
        extra["offline_value_loss"] = offline_value_loss(config, params, batch.offline)
        total = total + config.offline_vf_coef * extra["offline_value_loss"]
    aux = {
        "pg_loss": pg_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": mean((ratio - 1.0) - log_ratio),
        "clip_frac": mean((jnp.abs(ratio - 1.0) > config.clip_eps).astype(jnp.float32)),
        **extra,
    }
    return total, aux


def offline_value_loss(config: Config, params: Any, data: Any) -> jax.Array:
    """HNPG-style critic loss on dataset transitions (a ``replay.Batch`` ``[B]``): ``0.5 * mean (V(s)
    - (r + discount * V(s')))^2`` with ``V(s')`` held fixed (semi-gradient TD(0))."""
    _, _, value = apply(config, params, None, data.obs, None)
    _, _, next_value = apply(config, jax.lax.stop_gradient(params), None, data.next_obs, None)
    target = jax.lax.stop_gradient(data.reward + data.discount * next_value)
    return 0.5 * jnp.square(value - target).mean()


def collect_fn(config: Config, params: Any) -> Callable[..., tuple[jax.Array, jax.Array, dict[str, Any], Any]]:
    """The acting function :func:`purejaxlib.rollout.recurrent_rollout` calls: :func:`apply` on
    one step (a sequence of length 1); records what the learner needs (log-prob, value, the cell
    state after the step, MDPO's collecting distribution)."""
    low, high = action_bounds(config)
    only_step = lambda x: x[:, 0]  # [N, 1, ...] -> [N, ...]

    def policy_fn(obs, first, carry, key):
        carry, dist, value = apply(config, params, carry, obs[:, None], None if first is None else first[:, None])
        raw = dist.sample(seed=key)
        extras = {"log_prob": only_step(dist.log_prob(raw)), "value": only_step(value), "carry": carry}
        if config.objective == "mdpo":  # the collecting policy per sample, so MDPO's KL to it is exact
            extras["dist"] = jax.tree.map(only_step, dist_params(config, dist))
        raw = only_step(raw)
        return raw, distributions.to_env(config.dist_kind, raw, low, high), extras, carry

    return policy_fn


def next_values(config: Config, params: Any, traj: Any) -> jax.Array:
    """``V(s'_t)`` of every step's true successor ``[T, N]``, read with the cell state after step
    ``t`` (``traj.extras["carry"]``; None for the MLP)."""
    steps, envs = traj.final_obs.shape[:2]
    samples = lambda x: x.reshape((steps * envs,) + x.shape[2:])
    carry = jax.tree.map(samples, traj.extras["carry"])
    not_first = jnp.zeros((steps * envs, 1), bool)
    _, _, value = apply(config, params, carry, samples(traj.final_obs)[:, None], not_first)
    return value.reshape(steps, envs)


def make_batch(config: Config, traj: Any, advantages: Any, targets: Any, mask: Any, memory: Memory | None) -> Batch:
    """The learner's samples from a rollout ``[T, N]``: flat ``[B]`` for the MLP; for a recurrent
    policy whole env sequences ``[N, T]`` (minibatches are sets of envs) with each step's
    ``first`` and ``memory``'s cell state before step 0."""
    extras = traj.extras
    batch = Batch(traj.obs, traj.action, extras["log_prob"], extras["value"], advantages, targets, extras.get("dist"))
    batch = batch._replace(mask=mask)
    if memory is None:
        return onpolicy.flatten_batch(config, batch)
    first = jnp.concatenate([memory.first[None], traj.episode_done[:-1]])
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch._replace(first=first))._replace(carry=memory.carry)


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One update: collect ``num_steps`` x ``num_envs`` transitions, then learn from them.

    With the critic-free advantages every env restarts at a reset first (groups share one reset
    key). ``index`` (the update's number) is accepted for the shared surface and not needed here.
    """
    env, env_params = make_env(config)
    key, rollout_key, learn_key = jax.random.split(state.key, 3)
    env_state, obs, memory = state.env_state, state.obs, state.memory
    if config.critic_free:
        key, reset_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key, env_params)
        memory = initial_memory(config, config.num_envs)
    act = collect_fn(config, state.params)
    env_state, obs, next_memory, traj = recurrent_rollout(
        env, env_params, act, env_state, obs, memory, rollout_key, config.num_steps
    )
    critic_free, mask, mask_frac = state.critic_free, None, {}
    if critic_free is not None:
        advantages, mask, targets, critic_free = critic_free_lib.advantages(config, critic_free, traj, state.iteration)
        mask_frac = {"mask_frac": mask.mean()}
    else:
        next_value = next_values(config, state.params, traj)
        ends_and_discounts = (traj.terminated, traj.truncated, config.gamma, config.gae_lambda)
        advantages, targets = gae(traj.reward, traj.extras["value"], next_value, *ends_and_discounts)
    kl_coef = None
    if config.objective == "mdpo":
        kl_coef = objectives.mdpo_kl_coef(state.iteration, config.num_updates, config.mdpo_step_size)
    ref_params = None if critic_free is None else critic_free.ref_params
    loss_fn = lambda p, mb: ppo_loss(config, p, mb, kl_coef, ref_params)
    batch = make_batch(config, traj, advantages, targets, mask, memory)
    if config.offline_data:
        key, data_key = jax.random.split(key)
        data = offline.cached(config.offline_data, config.env)
        batch = batch._replace(offline=offline.sample(data, config.env, data_key, config.batch_size, config.gamma))
    sgd = (batch, learn_key, config.update_epochs, config.num_minibatches)
    params, opt_state, learn_stats = minibatch_sgd(loss_fn, make_tx(config), state.params, state.opt_state, *sgd)
    iteration = state.iteration + 1
    metrics = {**episode_metrics(traj), **learn_stats, **onpolicy.counters(config, iteration), **mask_frac}
    if critic_free is not None:
        critic_free = critic_free_lib.refresh_reference(config, critic_free, params, iteration)
    return State(params, opt_state, env_state, obs, key, iteration, next_memory, critic_free), metrics


def a2c_config(**overrides: Any) -> Config:
    """A2C as PPO's special case: one gradient step per rollout of 16 envs x 5 steps, n-step returns
    (``gae_lambda=1``: each step's return runs to the rollout's end and bootstraps there), no
    clipping or advantage normalization; ``overrides`` replace any field."""
    schedule = dict(num_envs=16, num_steps=5, update_epochs=1, num_minibatches=1, gae_lambda=1.0, lr=7e-4)
    plain = dict(objective="a2c", normalize_advantages=False, clip_value_loss=False, anneal_lr=False)
    return Config(**{**schedule, **plain, **overrides})


def ippo_config(env: str, **overrides: Any) -> Config:
    """IPPO: PPO on a multi-agent env with one policy shared by its agents (each row carries the
    agent's one-hot id) and a critic that sees what the agent sees; ``overrides`` replace any field."""
    return Config(**{"env": env, "critic": "local", **overrides})


def mappo_config(env: str, **overrides: Any) -> Config:
    """MAPPO: :func:`ippo_config` with a centralized critic (the env's global state and the agent's
    id); acting still reads only the agent's own observation."""
    return Config(**{"env": env, "critic": "centralized", **overrides})


def train(config: Config, key: jax.Array) -> TrainResult:
    """``init`` then ``num_updates`` calls of ``step`` inside ``lax.scan``; jit- and vmap-able."""
    return TrainResult(*training.train(init, step, config, key))


def policy(config: Config, state: State, *, deterministic: bool = False) -> Callable[..., Any]:
    """``act(obs, key) -> env action`` for raw env observations ``[..., obs_dim]``; for a recurrent
    policy a :class:`RecurrentAct`, which also takes and returns the cell state.

    Applies the run's observation normalization (frozen at ``state``) when it was on.
    """
    low, high = action_bounds(config)
    stats = obs_stats(state.env_state)
    params = state.params

    def prepare(obs: jax.Array) -> jax.Array:
        obs = config.spec.flatten(obs)
        return normalize(stats, obs) if stats is not None else obs

    def to_action(dist: distrax.Distribution, key: jax.Array) -> jax.Array:
        raw = dist.mode() if deterministic else dist.sample(seed=key)
        action = distributions.to_env(config.dist_kind, raw, low, high)
        return jnp.clip(action, low, high) if config.dist_kind == "normal" else action

    if config.recurrent == "none":
        return lambda obs, key: to_action(apply(config, params, None, prepare(obs), None)[1], key)

    def step_fn(obs, key, carry, first):
        carry, dist, _ = apply(config, params, carry, prepare(obs)[:, None], first[:, None])
        return to_action(dist, key)[:, 0], carry

    return RecurrentAct(step_fn, lambda batch: initial_carry(config.recurrent, config.cell_size, batch))
