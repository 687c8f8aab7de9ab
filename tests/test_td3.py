"""TD3 / DDPG: the smoothed, clipped double-Q target against a numpy reference, delayed actor and
target updates, the DDPG configuration, determinism, sweeps, bad configs, and (slow) learning.

Non-learning tests use tiny sizes (16x16 networks, batches of 8, a 256-step buffer, 32 random
steps) and share compiled programs per module.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_sac import member, mlp, replay_batch

from purejaxlib import ConfigError
from purejaxlib.algos import td3
from purejaxlib.networks import ensemble_init

TINY = dict(hidden=(16, 16), batch_size=8, buffer_size=256, learning_starts=32)
GAMMA = 0.9


def tiny_config(total_timesteps: int = 96, **overrides) -> td3.Config:
    return td3.Config(env="Pendulum-v1", total_timesteps=total_timesteps, **{**TINY, **overrides})


def learner_with_distinct_targets(config: td3.Config, key: jax.Array, actor_gain: float = 1.0) -> td3.Learner:
    """Target actor and critics that differ from the online ones. ``actor_gain`` scales the target
    actor's last layer, so its tanh output reaches towards +-1 on some states."""
    k_init, k_actor, k_critic = jax.random.split(key, 3)
    obs, action = jnp.zeros((1, 3)), jnp.zeros((1, config.action_dim))
    learner = td3.init_learner(config, k_init, obs)
    target_actor = td3.make_actor(config).init(k_actor, obs)
    target_actor = jax.tree.map(lambda x: x, target_actor)
    last = target_actor["params"]["MLP_0"]
    name = f"Dense_{len(last) - 1}"
    last[name] = jax.tree.map(lambda x: x * actor_gain, last[name])
    target_critic = ensemble_init(td3.make_critic(config), k_critic, config.num_critics, obs, action)
    return learner._replace(target_actor=target_actor, target_critic=target_critic)


def reference_target(config, learner, stored, noise_draw, sigma, clip):
    """r + gamma * (1 - terminated) * min_i Q'_i(s', clip(mu'(s') + clip(sigma * eps, -c, c), -1, 1))."""
    mu = np.tanh(mlp(learner.target_actor, stored["next_obs"]))
    noise = np.clip(sigma * noise_draw, -clip, clip)
    action = np.clip(mu + noise, -1.0, 1.0)
    x = np.concatenate([stored["next_obs"], action], axis=-1)
    q = np.stack([mlp(member(learner.target_critic, n), x)[:, 0] for n in range(config.num_critics)])
    expected = np.where(stored["terminated"], stored["reward"], stored["reward"] + GAMMA * q.min(axis=0))
    return expected, mu, noise, q


# ---------------------------------------------------------------------------------------------
# critic target


def test_target_with_clipped_smoothing_noise_matches_reference():
    """Noise std 0.6 clipped to 0.3 (some draws clipped, some not) on a target actor whose
    output nears +-1 (so the smoothed action is clipped to the action bounds on some rows)."""
    config = tiny_config(gamma=GAMMA, target_policy_noise=0.6, noise_clip=0.3)
    learner = learner_with_distinct_targets(config, jax.random.key(0), actor_gain=8.0)
    batch, stored = replay_batch(config, jax.random.key(1), batch_size=64)
    key = jax.random.key(2)
    got = np.asarray(jax.jit(td3.critic_target)(config, learner, batch, key))

    draw = np.asarray(jax.random.normal(key, (64, 1)), np.float64)  # the smoothing draw for this key
    expected, mu, noise, q = reference_target(config, learner, stored, draw, 0.6, 0.3)
    # the test inputs exercise every branch
    assert np.any(np.abs(0.6 * draw) > 0.3) and np.any(np.abs(0.6 * draw) < 0.3)
    assert np.any(np.abs(mu + noise) > 1.0)
    assert len(set(np.argmin(q, axis=0).tolist())) == 2, "both critics should be the minimum somewhere"
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

    # and it is not the unclipped or the noiseless target
    unclipped, *_ = reference_target(config, learner, stored, draw, 0.6, np.inf)
    noiseless, *_ = reference_target(config, learner, stored, draw, 0.0, 0.3)
    assert not np.allclose(got, unclipped, rtol=1e-4) and not np.allclose(got, noiseless, rtol=1e-4)


def test_smoothing_noise_stays_within_the_clip():
    """Whatever the draw, the target lies between the targets at mu' - c and mu' + c."""
    config = tiny_config(gamma=GAMMA, target_policy_noise=5.0, noise_clip=0.1, num_critics=1)
    learner = learner_with_distinct_targets(config, jax.random.key(3))
    batch, stored = replay_batch(config, jax.random.key(4), batch_size=64)
    target = jax.jit(td3.critic_target)
    got = np.stack([np.asarray(target(config, learner, batch, jax.random.key(k))) for k in range(4)])
    lo, _, _, _ = reference_target(config, learner, stored, -np.ones((64, 1)), 0.1, 0.1)
    hi, _, _, _ = reference_target(config, learner, stored, np.ones((64, 1)), 0.1, 0.1)
    # noise std 5 against a clip of 0.1: nearly every draw sits at one of the two clip values
    at_bound = np.isclose(got, lo[None], rtol=1e-5, atol=1e-5) | np.isclose(got, hi[None], rtol=1e-5, atol=1e-5)
    assert at_bound.mean() > 0.95


# ---------------------------------------------------------------------------------------------
# DDPG configuration and the policy delay


def test_ddpg_config():
    config = td3.ddpg_config(env="Pendulum-v1", **TINY, total_timesteps=96)
    assert (config.num_critics, config.policy_delay, float(config.target_policy_noise)) == (1, 1, 0.0)
    assert isinstance(config, td3.Config)
    assert dict(num_critics=1, policy_delay=1, target_policy_noise=0.0) == td3.DDPG
    learner = learner_with_distinct_targets(config, jax.random.key(0))
    assert all(leaf.shape[0] == 1 for leaf in jax.tree.leaves(learner.critic))
    # no smoothing: the target is r + gamma' * Q'(s', mu'(s')) whatever the key
    config = config.replace(gamma=GAMMA)
    batch, stored = replay_batch(config, jax.random.key(1))
    target = jax.jit(td3.critic_target)
    got = [np.asarray(target(config, learner, batch, jax.random.key(k))) for k in range(2)]
    np.testing.assert_array_equal(got[0], got[1])
    expected, *_ = reference_target(config, learner, stored, np.zeros((len(got[0]), 1)), 0.0, 0.0)
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-5)


def _changed(a, b) -> bool:
    return any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("delay", [1, 3])
def test_actor_and_targets_move_only_on_delay_steps(delay):
    config = tiny_config(policy_delay=delay, tau=0.25)
    learner = learner_with_distinct_targets(config, jax.random.key(0))
    batch, _ = replay_batch(config, jax.random.key(1), batch_size=8)
    update = jax.jit(td3.update)
    for count in range(1, 7):
        new, metrics = update(config, learner, batch, jax.random.fold_in(jax.random.key(2), count), count)
        assert int(new.updates) == count
        assert _changed(learner.critic, new.critic)  # the critic learns on every step
        on_delay_step = count % delay == 0
        assert _changed(learner.actor, new.actor) == on_delay_step, count
        assert _changed(learner.target_actor, new.target_actor) == on_delay_step, count
        assert _changed(learner.target_critic, new.target_critic) == on_delay_step, count
        assert np.isfinite(float(metrics["actor_loss"])) == on_delay_step
        if on_delay_step:  # targets move by tau towards the new online networks
            for old, moved, online in (
                (learner.target_actor, new.target_actor, new.actor),
                (learner.target_critic, new.target_critic, new.critic),
            ):
                for o, m, n in zip(jax.tree.leaves(old), jax.tree.leaves(moved), jax.tree.leaves(online)):
                    np.testing.assert_allclose(
                        np.asarray(m), np.asarray(o) + 0.25 * (np.asarray(n) - np.asarray(o)), rtol=1e-5, atol=1e-6
                    )
        learner = new


def test_actor_follows_the_first_critic():
    """The deterministic policy gradient uses critic 0 only."""
    config = tiny_config(policy_delay=1)
    learner = learner_with_distinct_targets(config, jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (8, 3))
    grad = jax.grad(td3.actor_loss, argnums=1)(config, learner.actor, learner.critic, obs)
    # changing critic 1 does not change the actor's gradient
    other = jax.tree.map(lambda x: x.at[1].multiply(-3.0), learner.critic)
    grad_other = jax.grad(td3.actor_loss, argnums=1)(config, learner.actor, other, obs)
    assert not _changed(grad, grad_other)
    action = np.tanh(mlp(learner.actor, np.asarray(obs)))
    q0 = mlp(member(learner.critic, 0), np.concatenate([np.asarray(obs), action], axis=-1))[:, 0]
    np.testing.assert_allclose(float(td3.actor_loss(config, learner.actor, learner.critic, obs)), -q0.mean(), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# training program: determinism, sweeps


@pytest.fixture(scope="module")
def config():
    return tiny_config(total_timesteps=96)


@pytest.fixture(scope="module")
def train_fn():
    return jax.jit(td3.train)


@pytest.fixture(scope="module")
def first_run(config, train_fn):
    return jax.block_until_ready(train_fn(config, jax.random.key(0)))


def test_train_metrics(config, first_run):
    metrics = first_run.metrics
    assert {"episode_return", "critic_loss", "actor_loss", "q_mean", "env_steps"} <= set(metrics)
    assert all(v.shape == (96,) for v in metrics.values())
    assert np.isnan(metrics["critic_loss"][:32]).all() and np.isfinite(metrics["critic_loss"][32:]).all()
    # one update per iteration and policy_delay 2: an actor step on every second one
    assert int(first_run.state.learner.updates) == 64
    np.testing.assert_array_equal(np.isfinite(metrics["actor_loss"][32:]), np.arange(1, 65) % 2 == 0)


# ---------------------------------------------------------------------------------------------
# bad input


def test_discrete_env_is_refused():
    with pytest.raises(ConfigError) as info:
        td3.Config(env="CartPole-v1")
    message = str(info.value)
    assert "env" in message and "continuous" in message and "CartPole-v1" in message
    with pytest.raises(ConfigError, match="continuous"):
        td3.ddpg_config(env="Acrobot-v1")


@pytest.mark.parametrize(
    "fields,name",
    [
        (dict(policy_delay=0), "policy_delay"),
        (dict(num_critics=0), "num_critics"),
        (dict(noise_clip=-0.1), "noise_clip"),
        (dict(exploration_noise=-1.0), "exploration_noise"),
        (dict(learning_starts=96), "learning_starts"),
        (dict(buffer_size=4), "buffer_size"),
    ],
)
def test_bad_fields(fields, name):
    with pytest.raises(ConfigError, match=name):
        tiny_config(**fields)


# ---------------------------------------------------------------------------------------------
# learning (slow)


@pytest.mark.slow
def test_td3_learns_pendulum():
    """The Pendulum-v1 setting and threshold of test_sac.py (see PENDULUM there): 4 seeds vmapped,
    8k steps of 64x64 networks, mean over seeds of the last 5 episodes >= -250."""
    from test_sac import PENDULUM, _check_pendulum, train_seeds

    _check_pendulum(train_seeds(td3, td3.Config(**PENDULUM)), "TD3")
