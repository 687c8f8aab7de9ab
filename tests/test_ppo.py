"""PPO surface (init / step / train / policy), config canonicalization, determinism, compile once.

Learning itself is tested in test_learning.py; these tests use 3 updates of 4 envs x 16 steps.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_config

from purejaxlib.algos import ppo
from purejaxlib.config import is_static_field
from purejaxlib.normalization import normalize

UPDATES = 3
# The traced scalar hyperparameters (env_params, a dict of env param overrides, and the vector
# fields such as drift_params are traced too, None by default).
TRACED = [
    f.name
    for f in dataclasses.fields(ppo.Config)
    if not is_static_field(f) and f.name != "env_params" and f.name not in ppo.Config.vector_fields
]


def _tree_equal(a, b) -> bool:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    if tree_a != tree_b:
        return False
    return all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(leaves_a, leaves_b))


def _key_data(tree):
    """Typed PRNG keys cannot be compared directly: use their raw data."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree)


@pytest.fixture(scope="module")
def config():
    return small_config("CartPole-v1", UPDATES)


@pytest.fixture(scope="module")
def first_run(config):
    """One compiled ``jax.jit(ppo.train)`` and its result for key 0 (shared by the module)."""
    fn = jax.jit(ppo.train)
    return fn, jax.block_until_ready(fn(config, jax.random.key(0)))


# ---------------------------------------------------------------------------------------------
# Config


def test_traced_fields_are_the_numeric_hyperparameters():
    assert set(TRACED) >= {"lr", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm"}
    static = {f.name for f in dataclasses.fields(ppo.Config) if is_static_field(f)}
    assert {"env", "num_envs", "num_steps", "update_epochs", "num_minibatches", "total_timesteps"} <= static


@pytest.mark.parametrize(
    "value",
    [1e-3, 1, np.float64(1e-3), np.float32(1e-3), np.asarray(1e-3, np.float64), np.asarray(1e-3, np.float32)],
    ids=["py-float", "py-int", "np.float64", "np.float32", "np-array-f64", "np-array-f32"],
)
def test_config_canonicalizes_traced_fields_to_float32_numpy(value):
    cfg = ppo.Config(lr=value, gamma=value, ent_coef=value)
    for name in ("lr", "gamma", "ent_coef"):
        leaf = getattr(cfg, name)
        assert isinstance(leaf, np.ndarray), name
        assert leaf.dtype == np.float32 and leaf.shape == ()
        assert float(leaf) == pytest.approx(float(value), rel=1e-6)
    # defaults are canonicalized too, and static fields stay plain Python values
    for name in TRACED:
        assert isinstance(getattr(cfg, name), np.ndarray) and getattr(cfg, name).dtype == np.float32
    assert isinstance(cfg.num_envs, int) and cfg.env == "CartPole-v1"


@pytest.mark.parametrize(
    "value",
    [jnp.float32(1e-3), jnp.asarray(1e-3), jnp.array(1)],
    ids=["jnp.float32", "jnp.asarray(py-float)-weak", "jnp.array(int)"],
)
def test_config_canonicalizes_jax_array_values_to_strong_float32(value):
    """Whatever array type a value comes in, the leaf must have the abstract value float32[]
    (strong type), or jit would retrace for it (see test_no_recompile_for_weakly_typed_jax_scalar)."""
    cfg = ppo.Config(lr=value, ent_coef=value)
    for name in ("lr", "ent_coef"):
        aval = jax.typeof(getattr(cfg, name))
        assert aval.dtype == jnp.float32 and aval.shape == (), name
        assert not aval.weak_type, f"{name} kept a weakly-typed value: {aval}"


def test_config_pytree_leaves_are_exactly_the_traced_fields(config):
    leaves = jax.tree.leaves(config)
    assert len(leaves) == len(TRACED)
    assert all(np.asarray(x).dtype == np.float32 for x in leaves)
    assert config.batch_size == 64 and config.minibatch_size == 32 and config.num_updates == UPDATES


def test_config_is_frozen_and_replace_validates(config):
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0  # type: ignore[misc]
    replaced = config.replace(lr=1e-2)
    assert isinstance(replaced.lr, np.ndarray) and replaced.lr.dtype == np.float32
    assert float(config.lr) == pytest.approx(2.5e-4)


# ---------------------------------------------------------------------------------------------
# init / step / train shapes


def test_init_shapes(config):
    state = ppo.init(config, jax.random.key(0))
    assert state.obs.shape == (config.num_envs, 4)
    assert int(state.iteration) == 0
    assert all(leaf.shape[0] == config.num_envs for leaf in jax.tree.leaves(state.env_state))
    # params are a network whose actor maps obs to 2 logits
    network = ppo.make_network(config)
    logits, log_std, value = network.apply(state.params, state.obs)
    assert logits.shape == (config.num_envs, 2) and log_std is None and value.shape == (config.num_envs,)


def test_step_then_step_matches_train(config, first_run):
    """``train`` is ``init`` followed by ``num_updates`` calls of ``step``."""
    _, result = first_run
    step = jax.jit(ppo.step)
    state = ppo.init(config, jax.random.key(0))
    history = []
    for i in range(UPDATES):
        state, metrics = step(config, state)
        assert int(state.iteration) == i + 1
        assert state.obs.shape == (config.num_envs, 4)
        assert all(np.shape(v) == () for v in metrics.values()), {k: np.shape(v) for k, v in metrics.items()}
        history.append(metrics)
    assert set(history[0]) == set(result.metrics)
    for name, values in result.metrics.items():
        stepped = np.stack([np.asarray(m[name]) for m in history])
        np.testing.assert_allclose(stepped, np.asarray(values), rtol=1e-4, atol=1e-5, err_msg=name)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(result.state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_train_metrics_have_one_value_per_update(config, first_run):
    _, result = first_run
    expected = {
        "episode_return",
        "episode_length",
        "episodes",
        "loss",
        "pg_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "env_steps",
    }
    assert expected <= set(result.metrics)
    for name, values in result.metrics.items():
        assert values.shape == (UPDATES,), (name, values.shape)
    np.testing.assert_array_equal(result.metrics["env_steps"], [64, 128, 192])
    np.testing.assert_array_equal(result.metrics["iteration"], [1, 2, 3])  # the x axes, explicit
    assert int(result.state.iteration) == UPDATES
    # Episodes of a near-random CartPole policy last ~20 steps: over 3 x 64 steps some end, and
    # where some ended the reported return is theirs (CartPole pays 1 per step, at most 500).
    episodes = result.metrics["episodes"]
    assert np.all(episodes >= 0) and np.all(episodes == np.round(episodes)) and episodes.sum() >= 1
    ended = episodes > 0
    returns = result.metrics["episode_return"]
    assert np.all(np.isfinite(returns[ended]))
    assert np.all((returns[ended] >= 1) & (returns[ended] <= 500))
    np.testing.assert_array_equal(returns[ended], result.metrics["episode_length"][ended])
    # entropy of a nearly uniform 2-way categorical
    assert np.all(np.abs(result.metrics["entropy"] - np.log(2)) < 0.05)


# ---------------------------------------------------------------------------------------------
# compile once


def test_new_traced_values_do_not_recompile(config, first_run, count_compiles):
    traces = []

    def train_under_test(cfg, key):
        traces.append(1)
        return ppo.train(cfg, key)

    fn = jax.jit(train_under_test)
    variants = [
        config.replace(lr=1e-3, gamma=0.9, ent_coef=0.0),  # Python floats
        config.replace(lr=np.float32(3e-3), gamma=np.float32(0.95), ent_coef=np.float32(0.02)),
        config.replace(lr=np.asarray(2e-3, np.float32), gamma=np.asarray(0.8, np.float32), ent_coef=0),
        config.replace(lr=jnp.float32(5e-4), gamma=jnp.float32(0.97), ent_coef=jnp.float32(0.05)),
        config.replace(lr=np.float64(1e-2), gamma=1, ent_coef=np.asarray(0.1, np.float64)),
    ]
    with count_compiles("train_under_test") as counter:
        base = jax.block_until_ready(fn(config, jax.random.key(0)))
        outs = [jax.block_until_ready(fn(v, jax.random.key(0))) for v in variants]
    assert counter.count == 1, counter.messages
    assert len(traces) == 1
    # A separately compiled program gives the same numbers for the same inputs.
    _, reference = first_run
    assert _tree_equal(base.metrics, reference.metrics)
    # The new values were really used (not baked into the program).
    for out in outs:
        assert not np.array_equal(out.metrics["loss"], base.metrics["loss"])


def test_no_recompile_for_weakly_typed_jax_scalar(config, count_compiles):
    """``jnp.asarray(0.001)`` is a weakly typed float32 array; a Config built from it must still
    hit the program compiled for float32 leaves."""
    traces = []

    def train_weak_under_test(cfg, key):
        traces.append(1)
        return ppo.train(cfg, key)

    fn = jax.jit(train_weak_under_test)
    with count_compiles("train_weak_under_test") as counter:
        jax.block_until_ready(fn(config, jax.random.key(0)))
        jax.block_until_ready(fn(config.replace(lr=jnp.asarray(1e-3), gamma=jnp.array(0.9)), jax.random.key(0)))
    assert len(traces) == 1 and counter.count == 1, (
        f"{len(traces)} traces, {counter.count} compiles: a weakly-typed jax scalar in a traced "
        "Config field retraced and recompiled"
    )


# ---------------------------------------------------------------------------------------------
# policy


def test_policy_cartpole_actions(config, first_run):
    _, result = first_run
    obs = jax.random.normal(jax.random.key(5), (200, 4)) * 0.1
    act = ppo.policy(config, result.state)
    actions = act(obs, jax.random.key(0))
    assert actions.shape == (200,)
    assert jnp.issubdtype(actions.dtype, jnp.integer)
    assert set(np.unique(np.asarray(actions))) <= {0, 1}
    # stochastic policy: a different key gives different samples somewhere
    assert not np.array_equal(actions, act(obs, jax.random.key(1)))
    # a single unbatched observation gives a scalar action
    assert act(obs[0], jax.random.key(0)).shape == ()
    # jittable
    np.testing.assert_array_equal(jax.jit(act)(obs, jax.random.key(0)), actions)

    greedy = ppo.policy(config, result.state, deterministic=True)
    a1, a2 = greedy(obs, jax.random.key(0)), greedy(obs, jax.random.key(1))
    np.testing.assert_array_equal(a1, a2)
    logits, _, _ = ppo.make_network(config).apply(result.state.params, obs)
    np.testing.assert_array_equal(a1, np.argmax(np.asarray(logits), axis=-1))


@pytest.mark.parametrize("action_dist", ["normal", "tanh_normal"])
def test_policy_pendulum_actions_within_bounds(action_dist):
    # A wide initial std (e^2 ~ 7.4 against bounds of +-2) makes raw samples leave the bounds.
    cfg = small_config("Pendulum-v1", 2, action_dist=action_dist, log_std_init=2.0)
    state = ppo.init(cfg, jax.random.key(0))
    obs = jax.random.normal(jax.random.key(5), (500, 3))
    act = ppo.policy(cfg, state)
    actions = np.asarray(act(obs, jax.random.key(0)))
    assert actions.shape == (500, 1) and actions.dtype == np.float32
    assert np.all(actions >= -2.0) and np.all(actions <= 2.0)
    assert np.abs(actions).max() > 1.5  # the samples do reach towards the bounds
    assert not np.array_equal(actions, np.asarray(act(obs, jax.random.key(1))))

    greedy = ppo.policy(cfg, state, deterministic=True)
    g1, g2 = np.asarray(greedy(obs, jax.random.key(0))), np.asarray(greedy(obs, jax.random.key(1)))
    np.testing.assert_array_equal(g1, g2)
    assert np.all(g1 >= -2.0) and np.all(g1 <= 2.0)
    mean, _, _ = ppo.make_network(cfg).apply(state.params, obs)
    expected = np.tanh(np.asarray(mean)) * 2.0 if action_dist == "tanh_normal" else np.clip(np.asarray(mean), -2, 2)
    np.testing.assert_allclose(g1, expected, rtol=1e-5, atol=1e-6)


def test_policy_applies_observation_normalization():
    cfg = small_config("CartPole-v1", 2, normalize_obs=True, normalize_reward=True)
    state = ppo.init(cfg, jax.random.key(0))
    stats = state.env_state.env_state.stats  # NormalizeReward(NormalizeObservation(...))
    obs = jax.random.normal(jax.random.key(5), (64, 4))
    greedy = ppo.policy(cfg, state, deterministic=True)
    logits, _, _ = ppo.make_network(cfg).apply(state.params, normalize(stats, obs))
    np.testing.assert_array_equal(greedy(obs, jax.random.key(0)), np.argmax(np.asarray(logits), axis=-1))
