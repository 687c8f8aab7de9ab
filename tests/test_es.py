"""purejaxlib.algos.es: evosax strategies wired into the common surface.

One generation is checked against evosax's own ask/play/tell on the same population, OpenAI-ES's
first step against the plain estimator (centered ranks, antithetic noise, Adam's first step), the
shared observation statistics against a plain merge, resume and export on a tiny config, bad
input at construction, and CartPole learned to 500 on four seeds (a learning test).
"""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from conftest import tree_equal

pytest.importorskip("evosax")

from purejaxlib import ConfigError, evaluate, run_experiment
from purejaxlib.algos import es
from purejaxlib.export import load_policy, save_policy
from purejaxlib.normalization import init_stats, update_stats
from purejaxlib.runner import load_state

TINY = dict(env="CartPole-v1", population_size=8, hidden=(8,), episode_steps=16, episodes_per_member=2)


def tiny(**fields) -> es.Config:
    fields = {**TINY, **fields}
    gens = fields.pop("generations", 3)
    steps = fields["population_size"] * fields["episodes_per_member"] * fields["episode_steps"]
    return es.Config(total_timesteps=gens * steps, **fields)


@pytest.mark.slow  # make test-all; make test checks open_es's step against the plain estimator below
@pytest.mark.parametrize("strategy", ["open_es", "snes", "cma_es"])
def test_generation_is_evosax_ask_play_tell(strategy):
    """``step`` = evosax's ask, each member's episodes played alone, tell with negated mean returns."""
    config = tiny(strategy=strategy)
    state = es.init(config, jax.random.key(0))
    new_state, metrics = jax.jit(es.step)(config, state)

    strat, params = es.strategy(config), es.strategy_params(config)
    _, ask_key, play_key, tell_key = jax.random.split(state.key, 4)
    population, es_state = strat.ask(ask_key, state.es_state, params)
    keys = jax.random.split(play_key, config.population_size)
    play = jax.jit(lambda p, k: es.play(config, p, state.obs_stats, k).returns.mean())  # one member at a time
    returns = []
    for i in range(config.population_size):
        member = jax.tree.map(lambda x, i=i: x[i], population)
        returns.append(play(member, keys[i]))
    fitness = jnp.stack(returns)
    want, _ = strat.tell(tell_key, population, -fitness, es_state, params)

    np.testing.assert_allclose(metrics["episode_return"], fitness.mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["best_return"], fitness.max(), rtol=1e-6)
    np.testing.assert_allclose(new_state.es_state.mean, want.mean, rtol=1e-5, atol=1e-6)
    assert int(new_state.es_state.generation_counter) == 1
    assert not np.allclose(new_state.es_state.mean, state.es_state.mean)  # it moved


def test_open_es_first_step_is_the_plain_estimator():
    """Antithetic samples at std sigma; the mean moves by Adam's first step, ``lr * sign(g)``, along
    the centered-rank estimate ``g = sum_i rank_i eps_i / (N sigma)`` of the return's gradient."""
    config = tiny(strategy="open_es", population_size=16, lr=0.02, sigma=0.1)
    state = es.init(config, jax.random.key(3))
    strat, params = es.strategy(config), es.strategy_params(config)
    _, ask_key, play_key, _ = jax.random.split(state.key, 4)
    population, _ = strat.ask(ask_key, es.with_hyperparams(config, state.es_state), params)
    flat = np.asarray(jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(population))
    mean = np.asarray(state.es_state.mean)
    eps = (flat - mean) / 0.1
    half = config.population_size // 2
    np.testing.assert_allclose(eps[:half], -eps[half:], atol=1e-4)  # antithetic pairs
    assert 0.85 < eps.std() < 1.15

    new_state, _ = jax.jit(es.step)(config, state)
    keys = jax.random.split(play_key, config.population_size)
    play = jax.jit(lambda p, k: es.play(config, p, state.obs_stats, k).returns.mean())  # one member at a time
    members = [jax.tree.map(lambda x, i=i: x[i], population) for i in range(config.population_size)]
    fitness = np.array([float(play(m, k)) for m, k in zip(members, keys)])
    ranks = scipy.stats.rankdata(-fitness) - 1.0  # evosax minimizes -return; ties share their mean rank
    centered = ranks / (config.population_size - 1) - 0.5  # 0.5 for the worst member
    g_descent = centered @ eps / (config.population_size * 0.1)  # gradient of -return
    moved = np.asarray(new_state.es_state.mean) - mean
    clear = np.abs(g_descent) > 1e-3
    assert clear.sum() > 0.5 * clear.size
    np.testing.assert_allclose(moved[clear], -0.02 * np.sign(g_descent[clear]), rtol=1e-3)


def test_shared_observation_statistics_merge_every_member():
    """The population's per-member moments merge to the statistics of all their observations."""
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32) for n in (5, 9, 1, 13)]
    episodes = es.Episodes(
        returns=jnp.zeros((4, 1)),
        lengths=jnp.zeros((4, 1)),
        obs_mean=jnp.stack([c.mean(0) for c in chunks]),
        obs_var=jnp.stack([c.var(0) for c in chunks]),
        obs_count=jnp.array([len(c) for c in chunks], jnp.float32),
    )
    start = update_stats(init_stats((4,)), jnp.asarray(rng.normal(size=(7, 4)), jnp.float32))
    got = es.merge_population(start, episodes)
    want = update_stats(start, jnp.asarray(np.concatenate(chunks)))
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-5)
    np.testing.assert_allclose(got.var, want.var, rtol=1e-4)
    np.testing.assert_allclose(got.count, want.count)


def test_play_counts_only_steps_inside_episodes():
    config = tiny(episode_steps=200)
    state = es.init(config, jax.random.key(0))
    params = es.mean_params(config, state)
    out = jax.jit(lambda p, s, k: es.play(config, p, s, k))(params, state.obs_stats, jax.random.key(1))
    lengths = np.asarray(out.lengths)
    assert np.all(lengths >= 1) and np.all(lengths <= 200)
    assert float(out.obs_count) == lengths.sum()
    # CartPole pays 1 per step: the return of an episode is its length
    np.testing.assert_array_equal(np.asarray(out.returns), lengths)


def test_resume_is_bitwise_and_the_policy_exports(tmp_path):
    config = tiny(generations=4).replace(log_interval=1)
    whole = tmp_path / "whole"
    run_experiment(es, config, seeds=2, out=whole, checkpoint_every=2, progress_bar=False)
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "checkpoints" / "program-0" / "4")
    resumed = run_experiment(es, config, seeds=2, out=cut, checkpoint_every=2, progress_bar=False, resume=True)
    assert resumed.record["sessions"][-1]["resumed_from"] == {"0": 2}
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (2,) + np.shape(x)), config)
    like = jax.eval_shape(jax.vmap(es.init), batch, jax.random.split(jax.random.key(0), 2))
    update_a, state_a, _ = load_state(whole, like)
    update_b, state_b, _ = load_state(cut, like)
    assert update_a == update_b == 4
    assert tree_equal(jax.tree.map(np.asarray, state_a.es_state), jax.tree.map(np.asarray, state_b.es_state))
    assert (whole / "metrics.jsonl").read_text() == (cut / "metrics.jsonl").read_text()

    member = jax.tree.map(lambda x: x[1], state_a)
    save_policy(tmp_path / "policy", config, member)
    loaded = load_policy(tmp_path / "policy")
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded(obs), np.asarray(es.policy(config, member)(obs, jax.random.key(0))))


@pytest.mark.parametrize(
    "fields, field",
    [
        (dict(strategy="open_es", population_size=7), "population_size"),
        (dict(strategy="nes2000"), "strategy"),
        (dict(fitness_shaping="softmax"), "fitness_shaping"),
        (dict(sigma=0.0), "sigma"),
        (dict(lr=-1.0), "lr"),
        (dict(episodes_per_member=0), "episodes_per_member"),
        (dict(total_timesteps=10), "total_timesteps"),
        (dict(episode_steps=-1), "episode_steps"),
    ],
)
def test_bad_config_names_the_field(fields, field):
    with pytest.raises(ConfigError, match=f"Config.{field}"):
        es.Config(**{**TINY, **fields})


def test_missing_evosax_names_the_extra(monkeypatch):
    monkeypatch.setattr(es, "evosax_algorithms", None)
    with pytest.raises(ConfigError, match=r"pip install 'purejaxlib\[es\]'"):
        es.Config(env="CartPole-v1")


@pytest.mark.learning
def test_open_es_solves_cartpole_on_four_seeds():
    """OpenAI-ES, 64 members, 1M env steps (31 generations): every seed's mean policy plays 500."""
    config = es.Config(env="CartPole-v1", population_size=64, total_timesteps=1_000_000)
    result = jax.jit(jax.vmap(es.train, in_axes=(None, 0)))(config, jax.random.split(jax.random.key(0), 4))
    evals = jax.vmap(lambda s, k: evaluate(config, s, k, 32))(result.state, jax.random.split(jax.random.key(1), 4))
    returns = np.asarray(evals.returns).mean(axis=-1)
    assert np.all(returns >= 475), returns
