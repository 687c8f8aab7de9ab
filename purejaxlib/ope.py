"""Off-policy evaluation: the discounted value of a target policy from logged data alone.

Estimators, each an :class:`Estimate` with a 95% bootstrap interval (:mod:`purejaxlib.stats`):

- :func:`fitted_q` (FQE): fits ``Q^pi`` by regression onto ``r + discount * E_pi Q'(s', .)`` and
  averages ``V(s0)`` over the episodes' first states. Discrete or continuous actions.
- :func:`importance_sampling`: per-decision IS, or its weighted (self-normalized) form, from the
  behaviour policy's logged ``log_prob``. Discrete actions.
- :func:`doubly_robust`: per-decision doubly robust (Jiang & Li 2016) with FQE's Q as the model.

The target policy, discrete: ``probs(obs [B, obs_dim]) -> [B, A]`` (:func:`target_probs` makes
one from any ``act``, epsilon-greedy); continuous: ``act(obs [B, obs_dim]) -> [B, A]`` in the
env's bounds. IS and DR use complete episodes only (terminated, or at the env's time limit);
datasets from :func:`purejaxlib.offline.collect` start every episode at a reset.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purejaxlib import distributions, offline, replay, stats
from purejaxlib import envs as envs_lib
from purejaxlib.networks import Critic, QNetwork
from purejaxlib.optim import make_optimizer

Probs = Callable[[jax.Array], jax.Array]


class Estimate(NamedTuple):
    """A value estimate with its 95% bootstrap interval."""

    name: str
    value: float
    low: float
    high: float
    episodes: int


class Episodes(NamedTuple):
    """Complete episodes padded to the longest, ``[E, T, ...]``; ``mask`` marks real steps."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    log_prob: np.ndarray
    mask: np.ndarray


def target_probs(act: Callable[[jax.Array, jax.Array], jax.Array], num_actions: int, epsilon: float = 0.0) -> Probs:
    """Probabilities ``[B, A]`` of the epsilon-greedy policy around ``act(obs, key)`` (a deterministic
    policy, e.g. ``module.policy(config, state, deterministic=True)``)."""

    def probs(obs: jax.Array) -> jax.Array:
        greedy = act(obs, jax.random.key(0)).astype(jnp.int32)
        return (1.0 - epsilon) * jax.nn.one_hot(greedy, num_actions) + epsilon / num_actions

    return probs


def episodes(dataset: offline.Dataset) -> Episodes:
    """The dataset's complete episodes (terminated, or truncated at ``info['max_steps']``), padded."""
    if dataset.log_prob is None:
        raise offline.DatasetError(
            "importance sampling needs the behaviour policy's log_prob, which this dataset does not record; "
            "use fitted_q, or collect with purejaxlib.offline.behaviour (discrete actions)"
        )
    starts, ends = offline.episode_bounds(dataset)
    limit = dataset.info.get("max_steps")
    complete = np.asarray(dataset.terminated)[ends - 1]
    if limit:
        complete = complete | ((ends - starts) >= limit)
    starts, ends = starts[complete], ends[complete]
    if not len(starts):
        raise offline.DatasetError("the dataset holds no complete episode")
    length = int((ends - starts).max())
    index = starts[:, None] + np.arange(length)
    mask = index < ends[:, None]
    index = np.minimum(index, len(dataset) - 1)
    take = lambda x: np.asarray(x)[index]
    obs = take(dataset.obs).reshape(len(starts), length, -1).astype(np.float32)
    return Episodes(
        obs,
        take(dataset.action),
        np.where(mask, take(dataset.reward), 0.0),
        np.where(mask, take(dataset.log_prob), 0.0),
        mask,
    )


def _target_log_probs(data: Episodes, probs: Probs) -> np.ndarray:
    """``log pi(a_t | s_t)`` ``[E, T]`` (0 on padding)."""
    e, t = data.mask.shape
    p = np.asarray(jax.jit(probs)(jnp.asarray(data.obs.reshape(e * t, -1)))).reshape(e, t, -1)
    chosen = np.take_along_axis(p, data.action[..., None].astype(np.int64), axis=-1)[..., 0]
    with np.errstate(divide="ignore"):
        return np.where(data.mask, np.log(chosen), 0.0)


def _weights(data: Episodes, probs: Probs) -> np.ndarray:
    """Cumulative importance weights ``w_t = prod_{k<=t} pi/mu`` ``[E, T]``, held after an episode ends."""
    log_ratio = np.where(data.mask, _target_log_probs(data, probs) - data.log_prob, 0.0)
    return np.exp(np.cumsum(log_ratio, axis=1))


def _interval(name: str, count: int, estimator: Callable[[np.ndarray], float], seed: int = 0) -> Estimate:
    """Point estimate on all episodes; interval from resampling them (the statistic sees indices)."""
    index = np.arange(count, dtype=np.float64)
    point, low, high = stats.stratified_bootstrap_ci(
        index, lambda i: estimator(i.reshape(-1).astype(np.int64)), reps=1000, seed=seed
    )
    return Estimate(name, point, low, high, count)


def importance_sampling(
    dataset: offline.Dataset, probs: Probs, gamma: float, *, weighted: bool = False, seed: int = 0
) -> Estimate:
    """Per-decision importance sampling: ``mean_e sum_t gamma^t w_t r_t``; ``weighted`` normalizes
    each step's weights by their mean over episodes (lower variance, biased, consistent)."""
    data = episodes(dataset)
    w = _weights(data, probs)
    discount = gamma ** np.arange(data.mask.shape[1])

    def estimate(i: np.ndarray) -> float:
        wi = w[i]
        if weighted:
            wi = wi / np.maximum(wi.mean(axis=0, keepdims=True), 1e-300)
        return float(np.mean(np.sum(discount * wi * data.reward[i], axis=1)))

    return _interval("weighted importance sampling" if weighted else "importance sampling", len(w), estimate, seed)


class FittedQ(NamedTuple):
    """A fitted ``Q^pi`` and the estimate it gives."""

    estimate: Estimate
    q: Callable[[jax.Array], jax.Array]
    """Discrete: ``obs [B, obs_dim] -> Q [B, A]``; continuous: ``(obs, action in [-1, 1]) -> [B]``."""
    value: Callable[[jax.Array], jax.Array]
    """``V^pi(obs) [B]`` under the target policy."""
    losses: np.ndarray
    """TD loss per block of updates (``[steps // 1000]``): should level off."""


def fitted_q(
    dataset: offline.Dataset,
    env: str,
    target: Callable[[jax.Array], jax.Array],
    gamma: float,
    key: jax.Array,
    *,
    steps: int = 20_000,
    hidden: tuple[int, ...] = (64, 64),
    batch_size: int = 256,
    lr: float = 1e-3,
    tau: float = 0.05,
    seed: int = 0,
) -> FittedQ:
    """Fitted Q evaluation of ``target`` (discrete: ``probs``; continuous: ``act`` in env bounds).

    ``steps`` Adam steps (learning rate annealed to 0) on uniform minibatches of the dataset, with
    a Polyak target network; the estimate is ``V^pi`` averaged over the first state of every
    episode in the data, its interval from resampling those states (model error not included).
    """
    spec = envs_lib.spec(env)
    buffer = offline.as_buffer(dataset, env)
    obs0 = jnp.asarray(spec.flatten(jnp.asarray(dataset.obs[:1])))
    if spec.discrete:
        net: Any = QNetwork(spec.num_actions, hidden, "relu", layer_norm=True)
        params = net.init(key, obs0)
    else:
        net = Critic(hidden, "relu", layer_norm=True)
        params = net.init(key, obs0, jnp.zeros((1,) + tuple(spec.action_shape)))

    def to_unit(action: jax.Array) -> jax.Array:
        return distributions.from_bounds(action, *offline.bounds(env))

    def next_value(p: Any, obs: jax.Array) -> jax.Array:
        if spec.discrete:
            return (target(obs) * net.apply(p, obs)).sum(-1)
        return net.apply(p, obs, to_unit(target(obs)))

    def q_taken(p: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
        if spec.discrete:
            q = net.apply(p, obs)
            return jnp.take_along_axis(q, action[:, None].astype(jnp.int32), axis=-1)[:, 0]
        return net.apply(p, obs, action)

    tx = make_optimizer(lr, 10.0, anneal_steps=steps)
    block = min(1000, steps)

    @jax.jit
    def fit(params: Any, key: jax.Array) -> tuple[Any, jax.Array]:
        def one(carry, k):
            p, t, opt = carry
            batch = replay.sample(buffer, k, batch_size, jnp.float32(gamma))
            y = jax.lax.stop_gradient(batch.reward + batch.discount * next_value(t, batch.next_obs))
            loss, grads = jax.value_and_grad(
                lambda p: 0.5 * jnp.mean(jnp.square(q_taken(p, batch.obs, batch.action) - y))
            )(p)
            updates, opt = tx.update(grads, opt, p)
            p = optax.apply_updates(p, updates)
            return (p, replay.polyak(t, p, tau), opt), loss

        (p, _, _), losses = jax.lax.scan(one, (params, params, tx.init(params)), jax.random.split(key, steps))
        return p, losses[: (steps // block) * block].reshape(-1, block).mean(1)

    params, losses = fit(params, key)
    starts, _ = offline.episode_bounds(dataset)
    first = spec.flatten(jnp.asarray(np.asarray(dataset.obs)[starts]))
    values = np.asarray(jax.jit(lambda o: next_value(params, o))(first), np.float64)
    point, low, high = stats.stratified_bootstrap_ci(values, lambda v: float(np.mean(v)), reps=1000, seed=seed)
    q_fn = jax.jit(functools.partial(net.apply, params))
    return FittedQ(
        Estimate("fitted Q evaluation", point, low, high, len(values)),
        q_fn,
        jax.jit(lambda o: next_value(params, o)),
        np.asarray(losses),
    )


def doubly_robust(dataset: offline.Dataset, probs: Probs, fitted: FittedQ, gamma: float, *, seed: int = 0) -> Estimate:
    """Per-decision doubly robust: ``mean_e sum_t gamma^t [w_t (r_t - Q(s_t, a_t)) + w_{t-1} V(s_t)]``
    with ``w_{-1} = 1`` and ``Q``, ``V`` from :func:`fitted_q` (discrete actions)."""
    data = episodes(dataset)
    w = _weights(data, probs)
    previous = np.concatenate([np.ones_like(w[:, :1]), w[:, :-1]], axis=1)
    e, t = data.mask.shape
    flat = jnp.asarray(data.obs.reshape(e * t, -1))
    q = np.asarray(fitted.q(flat)).reshape(e, t, -1)
    q_taken = np.take_along_axis(q, data.action[..., None].astype(np.int64), axis=-1)[..., 0]
    v = np.asarray(fitted.value(flat)).reshape(e, t)
    discount = gamma ** np.arange(t)
    terms = np.where(data.mask, discount * (w * (data.reward - q_taken) + previous * v), 0.0)
    per_episode = terms.sum(axis=1)
    return _interval("doubly robust", e, lambda i: float(per_episode[i].mean()), seed)


def true_value(
    env: str, act: Callable[[jax.Array, jax.Array], jax.Array], key: jax.Array, gamma: float, episodes: int = 256
) -> Estimate:
    """Monte Carlo ground truth: the discounted return of ``act`` (env actions, ``obs [B, *obs_shape]``)
    over ``episodes`` complete episodes from resets, with its interval."""
    base, params = envs_lib.make(env)
    vec = envs_lib.VecEnv(base, episodes)
    max_steps = int(params.max_steps_in_episode)

    @jax.jit
    def run(key: jax.Array) -> jax.Array:
        reset_key, run_key = jax.random.split(key)
        obs, state = vec.reset(reset_key, params)

        def one(carry, inputs):
            obs, state, total, alive = carry
            k, t = inputs
            act_key, step_key = jax.random.split(k)
            obs, state, reward, terminated, truncated, _ = vec.step(step_key, state, act(obs, act_key), params)
            total = total + alive * gamma**t * reward
            return (obs, state, total, alive * (1.0 - (terminated | truncated))), None

        init = (obs, state, jnp.zeros(episodes), jnp.ones(episodes))
        steps = (jax.random.split(run_key, max_steps), jnp.arange(max_steps, dtype=jnp.float32))
        return jax.lax.scan(one, init, steps)[0][2]

    values = np.asarray(run(key), np.float64)
    point, low, high = stats.stratified_bootstrap_ci(values, lambda v: float(np.mean(v)), reps=1000)
    return Estimate("true value (Monte Carlo)", point, low, high, episodes)
