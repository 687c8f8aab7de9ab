"""Networks and distributions: LAPACK-free orthogonal init, head shapes, heads map into the spaces."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import distributions, networks
from purejaxlib.networks import ActorCritic


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


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_init_under_vmap_has_no_lapack(cell):
    """flax's cells default to its LAPACK-QR orthogonal recurrent init, which hung the second call
    of a vmapped recurrent PPO program on the 2-core machine; the cells must use ours."""
    from purejaxlib.networks import RecurrentActorCritic, initial_carry

    net = RecurrentActorCritic(2, False, (8, 8), cell=cell, cell_size=8)
    init = lambda k: net.init(k, initial_carry(cell, 8, 1), jnp.zeros((1, 4)), jnp.ones((1,), bool))
    hlo = jax.jit(jax.vmap(init)).lower(jax.random.split(jax.random.key(0), 2)).as_text()
    assert "lapack" not in hlo.lower()


def test_dense_matches_flax_dense_forward_and_gradient():
    """networks.Dense has nn.Dense's parameters and outputs; its custom kernel gradient (x^T laid out
    first on CPU) equals the automatic one to float rounding, also for [T, N, in] inputs."""
    x = jax.random.normal(jax.random.key(0), (3, 50, 4))
    ours = networks.Dense(8, kernel_init=networks.orthogonal())
    flax_dense = nn.Dense(8, kernel_init=networks.orthogonal())
    params = ours.init(jax.random.key(1), x)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), params, flax_dense.init(jax.random.key(1), x)))
    np.testing.assert_array_equal(ours.apply(params, x), flax_dense.apply(params, x))
    loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
    ours_grads = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(params, x)
    flax_grads = jax.jit(jax.grad(loss(flax_dense), argnums=(0, 1)))(params, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), ours_grads, flax_grads)


def test_torch_init_draws_kernels_and_biases_from_pytorchs_uniform():
    from purejaxlib.networks import MLP

    params = MLP((512, 512), 4, "relu", orthogonal_init=False, torch_init=True).init(
        jax.random.key(0), jnp.zeros((1, 6))
    )
    layers = params["params"]
    for name, fan_in in (("Dense_0", 6), ("Dense_1", 512), ("Dense_2", 512)):
        bound = 1.0 / np.sqrt(fan_in)
        for leaf in (layers[name]["kernel"], layers[name]["bias"]):
            x = np.asarray(leaf)
            assert np.abs(x).max() <= bound
            assert x.size < 500 or np.abs(x).max() > 0.99 * bound  # the whole interval is used
        kernel = np.asarray(layers[name]["kernel"])
        np.testing.assert_allclose(kernel.std(), bound / np.sqrt(3.0), rtol=0.1)  # uniform, not normal
    lecun = MLP((512, 512), 4, "relu", orthogonal_init=False).init(jax.random.key(0), jnp.zeros((1, 6)))
    assert not np.asarray(lecun["params"]["Dense_0"]["bias"]).any()  # flax's default: zero biases


@pytest.mark.parametrize(
    "obs_shape,torso,image,features",
    [
        ((10, 10, 4), "auto", (10, 10, 4), 8 * 8 * 16),  # MinAtar: one 3x3 VALID conv of 16
        ((5, 5, 3), "auto", (5, 5, 3), 3 * 3 * 16),  # navix's 5x5 grid
        ((3, 3, 2), "auto", (3, 3, 2), 3 * 3 * 16),  # below 5x5: SAME padding
        ((63, 63, 3), "auto", (63, 63, 3), 4 * 4 * 64),  # Craftax-Classic pixels: the Nature torso
        ((7, 7), "cnn", (7, 7, 1), 5 * 5 * 16),
        ((1345,), "auto", None, None),
        ((10, 10, 4), "mlp", None, None),
    ],
)
def test_cnn_torso_is_chosen_from_the_observation_shape(obs_shape, torso, image, features):
    from purejaxlib.networks import CNN, image_shape

    assert image_shape(obs_shape, torso) == image
    if image is None:
        return
    flat = jnp.ones((2, 3, int(np.prod(obs_shape))))
    params = CNN(image).init(jax.random.key(0), flat)
    assert CNN(image).apply(params, flat).shape == (2, 3, features)


def test_cnn_torso_reads_the_image_row_major_and_bad_choices_are_refused():
    from purejaxlib.algos import ppo
    from purejaxlib.config import ConfigError
    from purejaxlib.networks import image_shape

    config = ppo.Config(env="Breakout-MinAtar")
    net = ppo.make_network(config)
    obs = jax.random.uniform(jax.random.key(1), (4, 10, 10, 4))
    params = net.init(jax.random.key(0), config.spec.flatten(obs))
    assert "torso" in params["params"] and params["params"]["torso"]["Conv_0"]["kernel"].shape == (3, 3, 4, 16)
    # the unflattened image is the env's: a per-pixel permutation of the input changes the output
    shuffled = obs[:, ::-1]
    a, _, _ = net.apply(params, config.spec.flatten(obs))
    b, _, _ = net.apply(params, config.spec.flatten(shuffled))
    assert not np.allclose(a, b)
    with pytest.raises(ConfigError, match="torso"):
        ppo.Config(env="CartPole-v1", torso="cnn")
    with pytest.raises(ConfigError, match="torso"):
        ppo.Config(env="Breakout-MinAtar", torso="resnet")
    with pytest.raises(ValueError, match="torso must be one of"):
        image_shape((4,), "conv")
    assert ppo.Config(env="CartPole-v1").image is None
