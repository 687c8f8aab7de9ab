"""Networks and distributions: the custom dense backward is exact; heads map into the spaces."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import distributions
from purejaxlib.networks import ActorCritic, dense


def _plain(x, w, b):
    return x @ w + b


@pytest.mark.parametrize("shape", [(7, 3), (2, 5, 3)])
def test_dense_gradients_match_autodiff(shape):
    kx, kw, kb, kg = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(kx, shape)
    w = jax.random.normal(kw, (3, 4))
    b = jax.random.normal(kb, (4,))
    cot = jax.random.normal(kg, shape[:-1] + (4,))
    out_custom, vjp_custom = jax.vjp(dense, x, w, b)
    out_plain, vjp_plain = jax.vjp(_plain, x, w, b)
    np.testing.assert_allclose(out_custom, out_plain, rtol=1e-6)
    for got, want in zip(vjp_custom(cot), vjp_plain(cot)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dense_gradients_under_vmap_and_jit():
    kx, kw = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (3, 6, 2))  # 3 members, 6 samples each
    w = jax.random.normal(kw, (3, 2, 5))
    b = jnp.zeros((3, 5))

    def loss(fn, x, w, b):
        return jnp.sum(jnp.tanh(fn(x, w, b)) ** 2)

    g_custom = jax.jit(jax.vmap(jax.grad(lambda *a: loss(dense, *a), argnums=(1, 2))))(x, w, b)
    g_plain = jax.vmap(jax.grad(lambda *a: loss(_plain, *a), argnums=(1, 2)))(x, w, b)
    for got, want in zip(g_custom, g_plain):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_actor_critic_shapes_and_param_names():
    net = ActorCritic(action_dim=3, continuous=True, hidden=(8, 8))
    params = net.init(jax.random.key(0), jnp.zeros((1, 5)))
    mean, log_std, value = net.apply(params, jnp.zeros((4, 5)))
    assert mean.shape == (4, 3) and log_std.shape == (3,) and value.shape == (4,)
    assert set(params["params"]["actor"]["Dense_0"]) == {"kernel", "bias"}
    only_value = net.apply(params, jnp.ones((4, 5)), method=ActorCritic.value)
    np.testing.assert_allclose(only_value, net.apply(params, jnp.ones((4, 5)))[2], rtol=1e-6)


def test_tanh_normal_maps_into_bounds_and_ratio_needs_no_atanh():
    low, high = jnp.array([-2.0, 0.0]), jnp.array([2.0, 1.0])
    dist = distributions.make("tanh_normal", jnp.zeros((1000, 2)), jnp.full((2,), 1.5))
    raw = dist.sample(seed=jax.random.key(0))
    action = distributions.to_env("tanh_normal", raw, low, high)
    assert bool(jnp.all(action >= low)) and bool(jnp.all(action <= high))
    # The stored raw action keeps its Gaussian log-density finite even where tanh saturates.
    big = jnp.full((1, 2), 30.0)
    assert bool(jnp.isfinite(dist.log_prob(big)).all())
    saturated = distributions.to_env("tanh_normal", big, low, high)
    np.testing.assert_allclose(saturated[0], high, rtol=1e-6)


def test_unknown_distribution_kind():
    with pytest.raises(ValueError, match="unknown distribution kind 'beta'"):
        distributions.make("beta", jnp.zeros((2,)))


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (64, 1), (8, 3)])
def test_orthogonal_init_matches_flax_without_lapack(shape):
    import flax.linen as nn

    from purejaxlib.networks import orthogonal

    key = jax.random.key(3)
    ours = orthogonal(1.7)(key, shape)
    theirs = nn.initializers.orthogonal(1.7)(key, shape)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    small = min(shape)
    gram = ours.T @ ours if shape[0] >= shape[1] else ours @ ours.T
    np.testing.assert_allclose(gram, 1.7**2 * np.eye(small), atol=1e-4)
    # No LAPACK custom call (it deadlocks batched across several CPU devices).
    hlo = jax.jit(jax.vmap(lambda k: orthogonal()(k, shape))).lower(jax.random.split(key, 2)).as_text()
    assert "lapack" not in hlo.lower()
