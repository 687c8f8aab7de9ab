"""purejaxlib.lpo: the learned drift keeps Mirror Learning's conditions for any parameters, plugs
into PPO as a traced field (new parameters never recompile), regresses onto DPO's drift, and one
meta-training generation moves the search mean."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SMALL, tree_equal

from purejaxlib import ConfigError, lpo
from purejaxlib.algos import ppo
from purejaxlib.objectives import dpo_drift

pytest.importorskip("evosax")


@pytest.mark.parametrize("seed", range(4))
def test_drift_is_nonnegative_and_flat_at_ratio_one(seed):
    params = lpo.init_params(jax.random.key(seed)) * 5.0  # far from the init scale too
    r = jnp.linspace(0.2, 3.0, 57)
    drift = jax.jit(lpo.learned_drift)
    value_and_slope = jax.jit(jax.value_and_grad(lambda x, a: lpo.learned_drift(x[None], a[None], params)[0]))
    for a in (-2.0, -0.3, 0.0, 0.7, 3.0):
        assert np.all(np.asarray(drift(r, jnp.full_like(r, a), params)) >= 0)
        value, slope = value_and_slope(jnp.float32(1.0), jnp.float32(a))
        assert float(value) == 0.0 and abs(float(slope)) < 1e-6


def test_fit_drift_regresses_onto_dpo():
    params = lpo.fit_drift(dpo_drift, jax.random.key(0), steps=1500)
    r = jnp.linspace(0.5, 1.5, 41)
    for a in (-1.0, 1.0, 2.0):
        adv = jnp.full_like(r, a)
        err = np.abs(np.asarray(lpo.learned_drift(r, adv, params) - dpo_drift(r, adv)))
        assert err.max() < 0.05, (a, err.max())


def test_ppo_takes_the_learned_drift_as_a_traced_field(count_compiles):
    base = ppo.Config(env="CartPole-v1", total_timesteps=128, hidden=(16, 16), **SMALL)
    p0, p1 = lpo.init_params(jax.random.key(0)), lpo.init_params(jax.random.key(1))
    fn = jax.jit(ppo.train)
    first = fn(base.replace(**lpo.drift_config(p0)), jax.random.key(0))
    with count_compiles("train") as counter:
        second = fn(base.replace(**lpo.drift_config(p1)), jax.random.key(0))
    assert counter.count == 0, counter.messages
    assert not tree_equal(first.state.params, second.state.params)  # the parameters were used
    with pytest.raises(ConfigError, match="drift_params"):
        base.replace(drift_params=np.asarray(p0))  # parameters without objective='drift'


@pytest.mark.slow  # compiles a population of inner PPO runs; the drift's own tests stay in make test
def test_a_meta_generation_moves_the_mean():
    # a large learning rate and 4 epochs move the ratio far enough from 1 for the drift to matter
    inner = ppo.Config(
        env="CartPole-v1", total_timesteps=640, hidden=(16, 16), **{**SMALL, "update_epochs": 4}, lr=0.01
    )
    start = lpo.init_params(jax.random.key(3))
    seen = []
    result = lpo.meta_train(inner, jax.random.key(0), generations=1, population=4, inner_seeds=1, init=start, sigma=1.0,
                            log=lambda g, f: seen.append((g, f)))  # fmt: skip
    assert result.fitness.shape == (1, 4) and np.all(np.isfinite(result.fitness))
    assert len(np.unique(result.fitness)) > 1  # the members' drifts trained differently
    assert seen[0][0] == 0 and np.array_equal(seen[0][1], result.fitness[0])
    assert not np.allclose(result.params, start)
    with pytest.raises(ValueError, match="even"):
        lpo.meta_train(inner, jax.random.key(0), population=3)
