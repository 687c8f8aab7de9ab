"""Env registry (purejaxlib.envs.make) and wrappers on the gymnax 1.x six-value protocol."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from purejaxlib import envs
from purejaxlib.normalization import init_stats, normalize, update_stats

# ---------------------------------------------------------------------------------------------
# registry


@pytest.mark.parametrize("name", envs.list())
def test_every_registered_env_resets_and_steps_under_jit(name):
    env, params = envs.make(name)

    def run(key):
        k_reset, k_a1, k_s1, k_a2, k_s2 = jax.random.split(key, 5)
        obs, state = env.reset(k_reset, params)
        action = env.action_space(params).sample(k_a1)
        first = env.step(k_s1, state, action, params)
        action = env.action_space(params).sample(k_a2)
        second = env.step(k_s2, first[1], action, params)
        return obs, first, second

    obs, first, second = jax.jit(run)(jax.random.key(0))
    obs_shape = tuple(env.observation_space(params).shape)
    assert obs.shape == obs_shape
    for out in (first, second):
        assert len(out) == 6, "gymnax 1.x step returns (obs, state, reward, terminated, truncated, info)"
        next_obs, _, reward, terminated, truncated, info = out
        assert next_obs.shape == obs_shape
        assert reward.shape == ()
        assert terminated.shape == () and terminated.dtype == jnp.bool_
        assert truncated.shape == () and truncated.dtype == jnp.bool_
        assert info["final_observation"].shape == obs_shape
        assert np.all(np.isfinite(np.asarray(reward, np.float64)))


def test_list_is_sorted_and_contains_the_classics():
    names = envs.list()
    assert names == sorted(names)
    for name in ("CartPole-v1", "Pendulum-v1", "Acrobot-v1", "Breakout-MinAtar", "Catch-bsuite"):
        assert name in names


def test_unknown_env_name_suggests_close_match():
    with pytest.raises(envs.UnknownEnvError) as info:
        envs.make("CartPole-v2")
    message = str(info.value)
    assert "CartPole-v2" in message
    assert "CartPole-v1" in message
    with pytest.raises(envs.UnknownEnvError, match="Pendulum-v1"):
        envs.make("pendulum-v1")


def test_env_that_needs_a_download_is_not_listed_and_says_why():
    assert "MNISTBandit-bsuite" not in envs.list()
    with pytest.raises(envs.UnknownEnvError, match="MNISTBandit-bsuite.*not available"):
        envs.make("MNISTBandit-bsuite")


def test_unknown_param_keyword_raises_type_error_naming_it():
    with pytest.raises(TypeError) as info:
        envs.make("CartPole-v1", max_step=10)
    message = str(info.value)
    assert "max_step" in message
    assert "max_steps_in_episode" in message  # the close match


def test_param_keyword_overrides_default():
    _, params = envs.make("CartPole-v1", max_steps_in_episode=17)
    assert params.max_steps_in_episode == 17
    _, default = envs.make("CartPole-v1")
    assert default.max_steps_in_episode == 500


def test_spec_reports_spaces():
    cartpole = envs.spec("CartPole-v1")
    assert cartpole.discrete and cartpole.num_actions == 2 and cartpole.obs_shape == (4,)
    pendulum = envs.spec("Pendulum-v1")
    assert not pendulum.discrete and pendulum.action_shape == (1,)
    np.testing.assert_allclose(pendulum.action_low, [-2.0])
    np.testing.assert_allclose(pendulum.action_high, [2.0])


# ---------------------------------------------------------------------------------------------
# EpisodeStatistics


def _scan_steps(env, params, num_steps, action_fn, key=0):
    """Runs ``num_steps`` steps under jit; returns the stacked step outputs (and pre-step states)."""

    @jax.jit
    def run(key):
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, t):
            state, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            action = action_fn(act_key, t)
            obs, new_state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
            return (new_state, key), (obs, new_state, reward, terminated, truncated, info)

        _, outs = jax.lax.scan(body, (state, key), jnp.arange(num_steps))
        return outs

    return jax.tree.map(np.asarray, run(jax.random.key(key)))


def _check_episode_statistics(rewards, done, ep_return, ep_length):
    running, length, last_return, last_length, finished = 0.0, 0, 0.0, 0, 0
    for t in range(len(rewards)):
        running += float(rewards[t])
        length += 1
        if done[t]:
            last_return, last_length = running, length
            running, length = 0.0, 0
            finished += 1
        np.testing.assert_allclose(ep_return[t], last_return, rtol=1e-5, atol=1e-5)
        assert ep_length[t] == last_length
    return finished


def test_episode_statistics_return_is_sum_of_rewards_cartpole():
    base, params = envs.make("CartPole-v1")
    env = envs.EpisodeStatistics(base)
    # Always pushing right ends an episode (termination) within a dozen or so steps.
    _, _, rewards, terminated, truncated, info = _scan_steps(env, params, 60, lambda k, t: jnp.int32(1))
    done = terminated | truncated
    np.testing.assert_array_equal(info["episode_done"], done)
    assert terminated.sum() >= 2
    finished = _check_episode_statistics(rewards, done, info["episode_return"], info["episode_length"])
    assert finished >= 2
    # Manual sum over the first episode, spelled out.
    first_end = int(np.argmax(done))
    assert info["episode_return"][first_end] == pytest.approx(rewards[: first_end + 1].sum())
    assert info["episode_length"][first_end] == first_end + 1


def test_episode_statistics_with_varying_rewards_and_truncation():
    base, params = envs.make("Pendulum-v1", max_steps_in_episode=7)
    env = envs.EpisodeStatistics(base)
    action = lambda k, t: jax.random.uniform(k, (1,), minval=-2.0, maxval=2.0)  # noqa: E731
    _, _, rewards, terminated, truncated, info = _scan_steps(env, params, 30, action)
    assert not terminated.any() and truncated.sum() == 4  # episodes of 7 steps
    assert np.unique(np.round(rewards, 4)).size > 10  # rewards really vary
    finished = _check_episode_statistics(rewards, truncated, info["episode_return"], info["episode_length"])
    assert finished == 4
    assert (info["episode_length"][truncated] == 7).all()


# ---------------------------------------------------------------------------------------------
# FlattenObservation


def test_flatten_observation_on_minatar():
    base, params = envs.make("Breakout-MinAtar")
    env = envs.FlattenObservation(base)
    inner_shape = tuple(base.observation_space(params).shape)
    size = int(np.prod(inner_shape))
    assert len(inner_shape) == 3
    assert env.observation_space(params).shape == (size,)

    key = jax.random.key(0)
    obs, state = jax.jit(env.reset)(key, params)
    inner_obs, _ = jax.jit(base.reset)(key, params)
    assert obs.shape == (size,) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs, np.asarray(inner_obs, np.float32).reshape(-1))

    action = jnp.int32(1)
    out = jax.jit(env.step)(key, state, action, params)
    inner = jax.jit(base.step)(key, state, action, params)
    assert out[0].shape == (size,)
    assert out[5]["final_observation"].shape == (size,)
    np.testing.assert_array_equal(out[0], np.asarray(inner[0], np.float32).reshape(-1))
    np.testing.assert_array_equal(
        out[5]["final_observation"], np.asarray(inner[5]["final_observation"], np.float32).reshape(-1)
    )


# ---------------------------------------------------------------------------------------------
# ClipAction


class _EchoEnv:
    """A minimal gymnax-protocol env whose observation is the action it was given."""

    def action_space(self, params):
        return spaces.Box(jnp.array([-1.0, 0.0]), jnp.array([1.0, 3.0]), (2,), jnp.float32)

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)

    def reset(self, key, params):
        return jnp.zeros(2), jnp.int32(0)

    def step(self, key, state, action, params):
        false = jnp.array(False)
        return action, state + 1, jnp.float32(0.0), false, false, {"final_observation": action}


def test_clip_action_passes_clipped_action_to_env():
    env = envs.ClipAction(_EchoEnv())
    _, state = env.reset(jax.random.key(0), None)
    for action, expected in [([100.0, -100.0], [1.0, 0.0]), ([-5.0, 5.0], [-1.0, 3.0]), ([0.5, 2.0], [0.5, 2.0])]:
        obs, *_ = env.step(jax.random.key(1), state, jnp.array(action), None)
        np.testing.assert_array_equal(obs, expected)


def test_clip_action_pendulum_large_action_equals_bound():
    base, params = envs.make("Pendulum-v1")
    env = envs.ClipAction(base)
    high = float(np.asarray(base.action_space(params).high).reshape(-1)[0])
    key = jax.random.key(3)
    _, state = base.reset(key, params)
    step_key = jax.random.key(4)
    for big, bound in [(100.0, high), (-100.0, -high)]:
        clipped = env.step(step_key, state, jnp.array([big]), params)
        direct = base.step(step_key, state, jnp.array([bound]), params)
        np.testing.assert_array_equal(clipped[0], direct[0])
        np.testing.assert_array_equal(clipped[1].theta, direct[1].theta)
        np.testing.assert_array_equal(clipped[1].theta_dot, direct[1].theta_dot)
        np.testing.assert_array_equal(clipped[2], direct[2])


# ---------------------------------------------------------------------------------------------
# VecEnv


def test_vec_env_shapes_and_independent_envs():
    base, params = envs.make("CartPole-v1")
    env = envs.VecEnv(base, 5)
    obs, state = jax.jit(env.reset)(jax.random.key(0), params)
    assert obs.shape == (5, 4)
    assert all(leaf.shape[0] == 5 for leaf in jax.tree.leaves(state))
    assert len(np.unique(np.asarray(obs[:, 0]))) == 5  # each env got its own reset key
    out = jax.jit(env.step)(jax.random.key(1), state, jnp.zeros(5, jnp.int32), params)
    next_obs, next_state, reward, terminated, truncated, info = out
    assert next_obs.shape == (5, 4)
    assert reward.shape == terminated.shape == truncated.shape == (5,)
    assert info["final_observation"].shape == (5, 4)
    assert all(leaf.shape[0] == 5 for leaf in jax.tree.leaves(next_state))


# ---------------------------------------------------------------------------------------------
# NormalizeObservation / NormalizeReward


def _fixed_action(num_envs):
    return lambda k, t: jnp.ones(num_envs, jnp.int32)


def test_normalize_observation_uses_same_stats_for_obs_and_final_observation():
    base, params = envs.make("CartPole-v1")
    inner = envs.VecEnv(base, 3)
    env = envs.NormalizeObservation(inner)

    @jax.jit
    def run(key):
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)
        raw_reset_obs, _ = inner.reset(reset_key, params)

        def body(state, key):
            action = jnp.ones(3, jnp.int32)
            raw = inner.step(key, state.env_state, action, params)  # same key: the raw outputs
            out = env.step(key, state, action, params)
            return out[1], (raw[0], raw[5]["final_observation"], raw[3] | raw[4], out[0], out[5]["final_observation"], out[1].stats)

        _, outs = jax.lax.scan(body, state, jax.random.split(key, 40))
        return obs, raw_reset_obs, state.stats, outs

    obs0, raw0, stats0, outs = run(jax.random.key(0))
    raw_obs, raw_final, done, norm_obs, norm_final, stats = jax.tree.map(np.asarray, outs)
    assert done.sum() >= 3  # always pushing right ends episodes: final obs != next obs there

    # reset: stats from the reset observations, obs normalized with them
    expected0 = update_stats(init_stats((4,)), raw0)
    np.testing.assert_allclose(stats0.mean, expected0.mean, rtol=1e-6)
    np.testing.assert_allclose(obs0, normalize(expected0, raw0), rtol=1e-5, atol=1e-6)

    for t in range(len(done)):
        st = jax.tree.map(lambda x: x[t], stats)
        np.testing.assert_allclose(norm_obs[t], normalize(st, raw_obs[t]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(norm_final[t], normalize(st, raw_final[t]), rtol=1e-5, atol=1e-5)
    t, n = np.argwhere(done)[0]
    assert not np.allclose(norm_final[t, n], norm_obs[t, n])

    # the statistics are those of every raw observation the agent was shown
    seen = np.concatenate([raw0, raw_obs.reshape(-1, 4)]).astype(np.float64)
    np.testing.assert_allclose(stats.mean[-1], seen.mean(0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(stats.var[-1], seen.var(0), rtol=1e-3)


def test_normalize_reward_resets_discounted_return_at_episode_end():
    base, params = envs.make("CartPole-v1")
    inner = envs.VecEnv(base, 2)
    gamma = 0.9
    env = envs.NormalizeReward(inner, gamma)

    @jax.jit
    def run(key):
        key, reset_key = jax.random.split(key)
        _, state = env.reset(reset_key, params)

        def body(state, key):
            action = jnp.ones(2, jnp.int32)
            raw = inner.step(key, state.env_state, action, params)
            out = env.step(key, state, action, params)
            return out[1], (raw[2], raw[3] | raw[4], out[2], out[1].discounted_return, out[1].stats.var)

        return state.discounted_return, jax.lax.scan(body, state, jax.random.split(key, 40))[1]

    ret0, outs = run(jax.random.key(0))
    raw_reward, done, scaled, disc_return, var = jax.tree.map(np.asarray, outs)
    np.testing.assert_array_equal(ret0, [0.0, 0.0])
    assert done[:, 0].sum() >= 2 and done[:, 1].sum() >= 2

    prev = np.zeros(2)
    seen = []
    for t in range(len(done)):
        ret = prev * gamma + raw_reward[t]
        seen.append(ret)
        expected = np.where(done[t], 0.0, ret)
        np.testing.assert_allclose(disc_return[t], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(scaled[t], raw_reward[t] / np.sqrt(var[t] + 1e-8), rtol=1e-5)
        prev = expected
    assert (disc_return[done] == 0.0).all()
    np.testing.assert_allclose(var[-1], np.var(np.concatenate(seen)), rtol=1e-3)
