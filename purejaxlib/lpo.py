"""Learned Policy Optimisation (Lu et al. 2022, "Discovered Policy Optimisation"): a drift function
inside PPO's objective, meta-learned by evolution strategies over a population of inner PPO runs.

PPO's surrogate in the Mirror Learning view is ``r A - drift(r, A)``; here the drift is a small
network of ``(r - 1, log r, A, (r - 1) A, A log r)``,

    drift(r, A) = (r - 1)**2 * softplus(f_theta(r, A)),

so Mirror Learning's conditions hold by construction for every ``theta``: the drift is >= 0, and
zero with zero gradient at ``r = 1``. Its parameters are one flat vector ``theta [D]``, a traced
field of the PPO config (``drift_params``), so a whole ES population of inner PPO runs (members x
inner seeds) is one vmapped program, compiled once for the whole meta-training::

    from purejaxlib import lpo
    from purejaxlib.algos import ppo
    inner = ppo.Config(env="CartPole-v1", num_envs=8, num_steps=64, total_timesteps=65_536)
    result = lpo.meta_train(inner, jax.random.key(0), generations=30)
    config = ppo.Config(env="Acrobot-v1", **lpo.drift_config(result.params))   # PPO with the learned drift

The outer search is evosax's OpenAI-ES (antithetic, centered ranks, Adam on the mean); a member's
fitness is the mean training return over the last quarter of its inner runs, averaged over
``inner_seeds`` seeds.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from purejaxlib.networks import MLP
from purejaxlib.objectives import dpo_drift

HIDDEN = (32,)
"""Hidden widths of the drift network (fixed, so ``learned_drift`` is one function for every theta)."""
NUM_FEATURES = 5


def features(ratio: jax.Array, advantages: jax.Array) -> jax.Array:
    """The drift network's inputs ``[B, 5]``: ``r - 1, log r, A, (r - 1) A, A log r``."""
    log_r = jnp.log(ratio)
    return jnp.stack([ratio - 1.0, log_r, advantages, (ratio - 1.0) * advantages, log_r * advantages], axis=-1)


def network() -> MLP:
    return MLP(HIDDEN, 1, "tanh", orthogonal_init=False)


@functools.cache
def _unravel() -> Callable[[jax.Array], Any]:
    with jax.ensure_compile_time_eval():
        template = network().init(jax.random.key(0), jnp.zeros((1, NUM_FEATURES)))
        return ravel_pytree(template)[1]


def num_params() -> int:
    """``D``, the length of a drift's parameter vector."""
    shapes = jax.eval_shape(network().init, jax.random.key(0), jax.ShapeDtypeStruct((1, NUM_FEATURES), jnp.float32))
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes)))


def init_params(key: jax.Array) -> jax.Array:
    """A fresh drift's parameters ``[D]`` (flax's default init)."""
    return ravel_pytree(network().init(key, jnp.zeros((1, NUM_FEATURES))))[0]


def learned_drift(ratio: jax.Array, advantages: jax.Array, params: jax.Array) -> jax.Array:
    """``(r - 1)**2 softplus(f_params(features))``: ``[B], [B], [D] -> [B]`` (PPO's ``drift`` with
    ``drift_params``)."""
    out = network().apply(_unravel()(params), features(ratio, advantages))
    return jnp.square(ratio - 1.0) * jax.nn.softplus(jnp.asarray(out)[..., 0])


def fit_drift(
    target: Callable[[jax.Array, jax.Array], jax.Array], key: jax.Array, *, steps: int = 2000, lr: float = 3e-3
) -> jax.Array:
    """Parameters ``[D]`` whose drift regresses onto ``target(r, A)`` (e.g. DPO's drift) on ratios
    in ``[0.5, 1.5]`` and standard-normal advantages: a warm start for :func:`meta_train`."""
    init_key, data_key = jax.random.split(key)
    tx = optax.adam(lr)

    def loss(params, key):
        r_key, a_key = jax.random.split(key)
        r = jax.random.uniform(r_key, (1024,), minval=0.5, maxval=1.5)
        a = jax.random.normal(a_key, (1024,))
        return jnp.mean(jnp.square(learned_drift(r, a, params) - target(r, a)))

    def body(carry, key):
        params, opt_state = carry
        grads = jax.grad(loss)(params, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    params = init_params(init_key)
    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), jax.random.split(data_key, steps))
    return params


def drift_config(params: jax.Array | np.ndarray) -> dict[str, Any]:
    """The PPO config fields that train with the learned drift ``params``."""
    return {"objective": "drift", "drift": learned_drift, "drift_params": np.asarray(params, np.float32)}


def ppo_clip_drift(ratio: jax.Array, advantages: jax.Array, clip_eps: float = 0.2) -> jax.Array:
    """PPO-clip as a drift: ``r A - min(r A, clip(r) A) = relu((r - clip(r)) A)``."""
    return jax.nn.relu((ratio - jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)) * advantages)


class MetaResult(NamedTuple):
    params: jax.Array  # [D] the search mean at the end: the learned drift
    fitness: np.ndarray  # [generations, population] each member's fitness
    mean_fitness: np.ndarray  # [generations] fitness of the population
    seconds: float


def inner_fitness(inner: Any, params: jax.Array, key: jax.Array, inner_seeds: int) -> jax.Array:
    """Mean training return over the last quarter of ``inner_seeds`` PPO runs with drift ``params``."""
    from purejaxlib.algos import ppo

    config = inner.replace(**drift_config(np.zeros(num_params(), np.float32))).replace(drift_params=params)
    metrics = jax.vmap(lambda k: ppo.train(config, k).metrics)(jax.random.split(key, inner_seeds))
    returns = metrics["episode_return"]  # [seeds, updates]
    tail = returns[:, -max(1, returns.shape[-1] // 4) :]
    return jnp.nanmean(tail)


def meta_train(
    inner: Any,
    key: jax.Array,
    *,
    generations: int = 30,
    population: int = 16,
    inner_seeds: int = 2,
    sigma: float = 0.03,
    lr: float = 0.02,
    init: jax.Array | None = None,
    log: Callable[[int, np.ndarray], None] | None = None,
) -> MetaResult:
    """Meta-trains a drift with OpenAI-ES over inner PPO runs of ``inner`` (a ``ppo.Config``; its
    objective is replaced by the learned drift). One program runs a generation: ``population``
    members x ``inner_seeds`` seeds, vmapped. ``log(generation, fitness [population])`` is called
    after each generation."""
    try:
        import evosax.algorithms as evosax_algorithms
    except ImportError as err:
        raise ImportError("lpo.meta_train needs evosax: pip install 'purejaxlib[es]'") from err
    if population < 2 or population % 2:
        raise ValueError(f"population must be even and >= 2 (antithetic pairs), got {population}")
    if generations < 1 or inner_seeds < 1:
        raise ValueError(f"generations and inner_seeds must be >= 1, got {generations} and {inner_seeds}")
    key, init_key, es_key = jax.random.split(key, 3)
    mean = init_params(init_key) if init is None else jnp.asarray(init, jnp.float32)
    with jax.ensure_compile_time_eval():
        strategy = evosax_algorithms.Open_ES(
            population,
            np.zeros(num_params(), np.float32),
            optimizer=optax.adam(lr),
            std_schedule=optax.constant_schedule(sigma),
        )
    es_params = strategy.default_params
    es_state = strategy.init(es_key, mean, es_params)

    @jax.jit
    def generation(es_state, key):
        ask_key, run_key, tell_key = jax.random.split(key, 3)
        members, es_state = strategy.ask(ask_key, es_state, es_params)
        # every member sees the same inner seeds (common random numbers across the population)
        fitness = jax.vmap(lambda p: inner_fitness(inner, p, run_key, inner_seeds))(members)
        es_state, _ = strategy.tell(tell_key, members, -fitness, es_state, es_params)
        return es_state, fitness

    history = []
    start = time.perf_counter()
    for g in range(generations):
        key, gen_key = jax.random.split(key)
        es_state, fitness = generation(es_state, gen_key)
        history.append(np.asarray(fitness))
        if log is not None:
            log(g, history[-1])
    fit = np.stack(history)
    return MetaResult(strategy.get_mean(es_state), fit, fit.mean(axis=1), time.perf_counter() - start)


def plot_drifts(params: jax.Array, path: Any, *, clip_eps: float = 0.2, alpha: float = 2.0, beta: float = 0.6) -> list:
    """The learned drift beside PPO-clip's and DPO's, against the ratio for ``A = +1`` and ``A = -1``."""
    from purejaxlib.plotting import pyplot, save_figure

    plt = pyplot()
    r = jnp.linspace(0.5, 1.5, 201)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, a in zip(axes, (1.0, -1.0)):
        adv = jnp.full_like(r, a)
        ax.plot(r, ppo_clip_drift(r, adv, clip_eps), label=f"PPO clip (eps={clip_eps})")
        ax.plot(r, dpo_drift(r, adv, alpha, beta), label=f"DPO (alpha={alpha}, beta={beta})")
        ax.plot(r, learned_drift(r, adv, jnp.asarray(params)), label="learned (LPO)", lw=2)
        ax.set_title(f"A = {a:+.0f}")
        ax.set_xlabel("ratio r")
        ax.set_ylabel("drift")
    axes[0].legend()
    fig.tight_layout()
    return save_figure(fig, path)
