"""Running mean/variance (purejaxlib.normalization) against numpy on the concatenated data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from purejaxlib.normalization import RunningStats, init_stats, normalize, update_stats


def _batches(seed: int, shape=(3,), sizes=(7, 64, 1, 33, 128)):
    rng = np.random.default_rng(seed)
    loc = rng.normal(size=shape) * 5.0
    scale = rng.uniform(0.1, 4.0, size=shape)
    return [(loc + scale * rng.normal(size=(n,) + shape)).astype(np.float32) for n in sizes]


def test_update_stats_over_several_batches_matches_numpy():
    batches = _batches(0)
    stats = init_stats((3,))
    for batch in batches:
        stats = update_stats(stats, jnp.asarray(batch))
    data = np.concatenate(batches).astype(np.float64)
    # The initial count 1e-4 (mean 0, var 1) biases the result by about 1e-4 / 233 relative.
    np.testing.assert_allclose(np.asarray(stats.mean), data.mean(0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.asarray(stats.var), data.var(0), rtol=1e-3)
    np.testing.assert_allclose(float(stats.count), len(data) + 1e-4, rtol=1e-6)


def test_update_stats_matrix_features_under_jit():
    batches = _batches(1, shape=(2, 4), sizes=(5, 50, 9))
    update = jax.jit(update_stats)
    stats = init_stats((2, 4))
    for batch in batches:
        stats = update(stats, batch)
    data = np.concatenate(batches).astype(np.float64)
    assert stats.mean.shape == stats.var.shape == (2, 4)
    np.testing.assert_allclose(np.asarray(stats.mean), data.mean(0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.asarray(stats.var), data.var(0), rtol=1e-3)


def test_update_stats_is_order_independent_in_result():
    """Merging batches in a different grouping gives the same statistics (Chan et al. merge)."""
    a, b, c = _batches(2, sizes=(10, 20, 30))
    s1 = update_stats(update_stats(update_stats(init_stats((3,)), a), b), c)
    s2 = update_stats(update_stats(init_stats((3,)), np.concatenate([a, b])), c)
    s3 = update_stats(init_stats((3,)), np.concatenate([a, b, c]))
    for other in (s2, s3):
        np.testing.assert_allclose(np.asarray(s1.mean), np.asarray(other.mean), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(s1.var), np.asarray(other.var), rtol=1e-5)


def test_normalize_uses_mean_and_variance():
    stats = RunningStats(jnp.array([1.0, -2.0]), jnp.array([4.0, 0.25]), jnp.float32(10.0))
    x = jnp.array([[3.0, -2.0], [1.0, -1.0]])
    out = normalize(stats, x, eps=0.0)
    np.testing.assert_allclose(np.asarray(out), [[1.0, 0.0], [0.0, 2.0]], rtol=1e-6)
    normalized = normalize(update_stats(init_stats((3,)), _batches(3, sizes=(4000,))[0]), _batches(3, sizes=(4000,))[0])
    np.testing.assert_allclose(np.asarray(normalized).mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(np.asarray(normalized).std(0), 1.0, rtol=1e-3)


def test_policy_finds_the_observation_statistics_whatever_the_wrapper_order():
    """onpolicy.obs_stats looks the statistics up by the wrapper's state type, not its position."""
    from purejaxlib import envs as envs_lib
    from purejaxlib.onpolicy import obs_stats

    env, params = envs_lib.make("CartPole-v1")
    vec = envs_lib.VecEnv(envs_lib.FlattenObservation(env), 4)
    orders = {
        "obs inside reward": envs_lib.NormalizeReward(envs_lib.NormalizeObservation(vec), 0.99),
        "reward inside obs": envs_lib.NormalizeObservation(envs_lib.NormalizeReward(vec, 0.99)),
        "obs only": envs_lib.NormalizeObservation(vec),
    }
    for name, wrapped in orders.items():
        _, state = wrapped.reset(jax.random.PRNGKey(0), params)
        stats = obs_stats(state)
        assert isinstance(stats, RunningStats) and stats.mean.shape == (4,), name
        assert float(stats.count) > 4.0, name  # the reset's observations are in it
    _, plain = vec.reset(jax.random.PRNGKey(0), params)
    assert obs_stats(plain) is None
