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
    with pytest.raises(envs.UnknownEnvError, match=r"MNISTBandit-bsuite.*not available"):
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
        _obs, state = env.reset(reset_key, params)

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
    action = lambda k, t: jax.random.uniform(k, (1,), minval=-2.0, maxval=2.0)
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


def _pooled_cartpole_run(num_envs: int, pool: int, steps: int):
    """CartPole under ``VecEnv(reset_pool=pool)``, always pushing right (episodes of ~10 steps)."""
    base, params = envs.make("CartPole-v1")
    env = envs.VecEnv(envs.EpisodeStatistics(envs.PendingReset(base)), num_envs, reset_pool=pool)

    @jax.jit
    def run(key):
        reset_key, key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, key):
            obs, state = carry
            held = state.env_state.start_obs  # the start each env holds before this step
            out = env.step(key, state, jnp.ones(num_envs, jnp.int32), params)
            next_obs, next_state, _, terminated, truncated, info = out
            used = next_state.env_state.used
            return (next_obs, next_state), (obs, held, next_obs, terminated, truncated, info, used)

        return obs, jax.lax.scan(body, (obs, state), jax.random.split(key, steps))[1]

    return run(jax.random.key(0))


def test_reset_pool_starts_each_episode_from_a_fresh_reset():
    num_envs, pool = 8, 2
    obs0, outs = _pooled_cartpole_run(num_envs, pool, 300)
    _, held, next_obs, terminated, truncated, info, used = jax.tree.map(np.asarray, outs)
    done = terminated | truncated
    assert done.sum() > 150  # many episodes ended
    # An env whose episode ended begins the next from the start it held; otherwise it steps on.
    np.testing.assert_array_equal(next_obs[done], held[done])
    np.testing.assert_array_equal(info["final_observation"][~done], next_obs[~done])
    # terminated is CartPole's own rule on the observation the episode ended on.
    final = info["final_observation"]
    fell = (np.abs(final[..., 0]) > 2.4) | (np.abs(final[..., 2]) > 12 * 2 * np.pi / 360)
    np.testing.assert_array_equal(terminated, fell)
    # Every start is a CartPole reset (uniform in [-0.05, 0.05]) and no two episodes share one.
    starts = np.concatenate([obs0, next_obs[done]])
    assert np.all(np.abs(starts) <= 0.05)
    assert len(np.unique(starts, axis=0)) == len(starts)
    # `pool` used starts are refilled a step; the envs beyond that wait for the next steps.
    before = np.concatenate([np.zeros((1, num_envs), bool), used[:-1]])
    np.testing.assert_array_equal(used.sum(axis=1), np.maximum(0, (before | done).sum(axis=1) - pool))


def test_reset_pool_is_refused_where_it_cannot_work():
    base, _ = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match="PendingReset innermost"):
        envs.VecEnv(base, 4, reset_pool=2)
    with pytest.raises(ValueError, match="between 0"):
        envs.VecEnv(envs.PendingReset(base), 4, reset_pool=5)
    with pytest.raises(ValueError, match="group_size"):
        envs.VecEnv(envs.PendingReset(base), 4, group_size=2, reset_pool=2)
    with pytest.raises(ValueError, match="gymnax Environment"):
        envs.PendingReset(envs.FlattenObservation(base))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: ppo_config(reset_pool=9, num_envs=8), "more than num_envs=8"),
        (lambda: ppo_config(reset_pool=-1), "reset_pool"),
        (lambda: ppo_config(reset_pool=2, env="jaxmarl/MPE_simple_spread_v3"), "multi-agent"),
        (lambda: ppo_config(reset_pool=2, advantage="rloo", group_size=4), "start together"),
        (lambda: es_config(reset_pool=2), "does not step a reset pool"),
    ],
)
def test_reset_pool_config_errors_name_the_problem(make, match):
    from purejaxlib.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        make()


def ppo_config(**fields):
    from purejaxlib.algos import ppo

    return ppo.Config(**{"env": "CartPole-v1", **fields})


def es_config(**fields):
    from purejaxlib.algos import es

    return es.Config(env="CartPole-v1", **fields)


@pytest.mark.slow
@pytest.mark.learning
def test_ppo_learns_cartpole_with_a_reset_pool():
    from purejaxlib.algos import ppo

    config = ppo.Config(env="CartPole-v1", num_envs=16, num_steps=64, total_timesteps=200_000, reset_pool=2)
    result = jax.jit(ppo.train)(config, jax.random.key(0))
    # uniform policy ~22; measured (seed 0): 239 with the pool, 320 without, both rising
    assert float(np.nanmean(np.asarray(result.metrics["episode_return"])[-5:])) > 150


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
            return out[1], (
                raw[0],
                raw[5]["final_observation"],
                raw[3] | raw[4],
                out[0],
                out[5]["final_observation"],
                out[1].stats,
            )

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
        st = jax.tree.map(lambda x, t=t: x[t], stats)
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


# ---------------------------------------------------------------------------------------------
# conformance (envs.check) for every registered env, and the checker itself


class _Broken(envs.Wrapper):
    """CartPole with one protocol rule broken, chosen by ``how``."""

    def __init__(self, env, how):
        super().__init__(env)
        self.how = how

    def observation_space(self, params):
        space = self._env.observation_space(params)
        if self.how == "narrow_space":
            return spaces.Box(-0.01, 0.01, space.shape, jnp.float32)
        return space

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        if self.how == "int_reward":
            reward = reward.astype(jnp.int32)
        if self.how == "nan_reward":
            reward = reward * jnp.nan
        if self.how == "float_flags":
            terminated = terminated.astype(jnp.float32)
        if self.how == "no_time_limit":  # hides every episode end
            truncated = jnp.zeros_like(truncated)
            terminated = jnp.zeros_like(terminated)
            info = {**info, "final_observation": obs}
        if self.how == "limit_as_termination":
            terminated, truncated = terminated | truncated, jnp.zeros_like(truncated)
        if self.how == "final_obs_post_reset":
            info = {**info, "final_observation": obs}
        if self.how == "final_obs_wrong":
            info = {**info, "final_observation": obs * 0.5}
        return obs, state, reward, terminated, truncated, info


@pytest.mark.parametrize(
    "how, rule",
    [
        ("narrow_space", "leaves the observation space"),
        ("int_reward", "reward must be a float scalar"),
        ("nan_reward", "rewards are not finite"),
        ("float_flags", "terminated must be a bool scalar"),
        ("no_time_limit", "no episode ended"),
        ("limit_as_termination", "ended as terminated, never truncated"),
        ("final_obs_post_reset", "equals the returned observation"),
        ("final_obs_wrong", "differs from the observation on a step that did not end"),
    ],
)
def test_check_reports_each_broken_rule(how, rule):
    env, params = envs.make("CartPole-v1")
    with pytest.raises(envs.ConformanceError, match=rule):
        envs.check(_Broken(env, how), params, compare_unbatched=False)


def test_check_reports_a_state_that_changes_type():
    env, params = envs.make("CartPole-v1")

    class FloatTime(envs.Wrapper):
        """Returns the step counter as float32: every repeated step would retrace."""

        def step(self, key, state, action, params):
            out = self._env.step(key, state, action, params)
            return (out[0], out[1].replace(time=out[1].time.astype(jnp.float32))) + out[2:]

    with pytest.raises(envs.ConformanceError, match="changes the state's shapes/dtypes"):
        envs.check(FloatTime(env), params)


def test_check_reports_a_missing_reset_after_truncation():
    env, params = envs.make("Pendulum-v1")
    raw = env.unwrapped

    class NoReset(envs.Wrapper):
        """Steps without auto-reset: truncated stays true after the limit."""

        def step(self, key, state, action, params):
            obs, state, reward, terminated, info = raw.step_env(key, state, action, params)
            truncated = raw.is_truncated(state, params)
            return obs, state, reward, terminated, truncated, {**info, "final_observation": obs}

    with pytest.raises(envs.ConformanceError, match="did not reset after truncation"):
        envs.check(NoReset(env), params, compare_unbatched=False)


def test_gymnax_envs_with_broken_protocol_are_fixed_by_the_adapter():
    # gymnax emits int32 rewards here and declares observation bounds its envs leave.
    for name in ("BernoulliBandit-misc", "UmbrellaChain-bsuite", "MemoryChain-bsuite"):
        env, params = envs.make(name)
        envs.check(env, params, compare_unbatched=False)
    raw = envs.make("BernoulliBandit-misc")[0].unwrapped
    import gymnax

    raw_env, raw_params = gymnax.make("BernoulliBandit-misc")
    with pytest.raises(Exception, match="reward must be a float scalar"):
        envs.check(raw_env, raw_params, compare_unbatched=False)
    assert type(raw) is type(raw_env)


# ---------------------------------------------------------------------------------------------
# options in names, listing with spaces


def _sized_env(size: int = 3, scale: float = 1.0, flag: bool = False):
    env, params = envs.make("CartPole-v1")
    return env.unwrapped, params.replace(max_steps_in_episode=size * (2 if flag else 1), gravity=scale)


@pytest.fixture
def sized_env_name():
    envs.register("TestSized", _sized_env, overwrite=True)
    yield "TestSized"
    envs._REGISTRY.pop("TestSized")
    envs.spec.cache_clear()
    envs._build.cache_clear()


def test_options_from_name_string_and_keywords_are_typed(sized_env_name):
    _, params = envs.make("TestSized:size=7,scale=2.5,flag=true")
    assert params.max_steps_in_episode == 14 and params.gravity == 2.5
    _, params = envs.make("TestSized", size=5)
    assert params.max_steps_in_episode == 5
    _, params = envs.make("TestSized:size=5", gravity=3.0)  # an option and a param override
    assert params.max_steps_in_episode == 5 and float(params.gravity) == 3.0


@pytest.mark.parametrize(
    "name, kwargs, error, match",
    [
        ("TestSized:sise=7", {}, TypeError, "no option 'sise'.*'size'"),
        ("TestSized:size=seven", {}, ValueError, "cannot read 'seven' as int"),
        ("TestSized:flag=maybe", {}, ValueError, "as bool"),
        ("TestSized:size", {}, ValueError, "key=value"),
        ("TestSized:size=1,size=2", {}, ValueError, "given twice"),
        ("TestSized:size=1", {"size": 2}, TypeError, "both in the name"),
        ("TestSized", {"sizee": 2}, TypeError, "no param or option 'sizee'.*'size'"),
        ("TestSized", {"gravity": [1.0, 2.0]}, ValueError, "shape"),
        ("TestSizd:size=1", {}, envs.UnknownEnvError, "TestSized"),
    ],
)
def test_bad_options_name_the_problem(sized_env_name, name, kwargs, error, match):
    with pytest.raises(error, match=match):
        envs.make(name, **kwargs)


def test_register_rejects_separators_and_factories_without_defaults():
    with pytest.raises(ValueError, match="may not contain"):
        envs.register("bad:name", _sized_env)
    with pytest.raises(TypeError, match="needs a default"):
        envs.register("NoDefault", lambda size: _sized_env(size))
    assert "NoDefault" not in envs.list()


def test_list_with_spaces_gives_specs(monkeypatch):
    listed = envs.list()
    assert all(isinstance(n, str) for n in listed) and "brax/ant" in listed
    # Every env is built for its spaces; a few keep the test fast (brax builds take seconds).
    subset = {n: envs._REGISTRY[n] for n in ("CartPole-v1", "Pendulum-v1", "LQR", "Probe4-ActionReward")}
    monkeypatch.setattr(envs, "_REGISTRY", subset)
    table = envs.list(spaces=True)
    assert list(table) == sorted(subset)
    assert table["CartPole-v1"].num_actions == 2 and table["Pendulum-v1"].action_shape == (1,)
    assert table["LQR"].obs_shape == (2,) and not table["LQR"].discrete
    assert table["Probe4-ActionReward"].num_actions == 2


# ---------------------------------------------------------------------------------------------
# actions outside the space


@pytest.mark.parametrize(
    "name, action, match",
    [
        ("CartPole-v1", 2, r"action 2 is outside Discrete\(2\)"),
        ("CartPole-v1", -1, r"outside Discrete\(2\)"),
        ("CartPole-v1", 0.5, "not an integer"),
        ("CartPole-v1", np.array([0, 1]), "shape"),
        ("Pendulum-v1", np.array([2.5], np.float32), r"outside the Box bounds \[\[-2.0\], \[2.0\]\]"),
        ("Pendulum-v1", np.array([np.nan], np.float32), "not finite"),
        ("Pendulum-v1", np.array(1.0, np.float32), r"shape \(\)"),
    ],
)
def test_eager_step_with_an_action_outside_the_space_raises(name, action, match):
    env, params = envs.make(name)
    _obs, state = env.reset(jax.random.key(0), params)
    with pytest.raises(ValueError, match=match):
        env.step(jax.random.key(1), state, action, params)


def test_eager_step_with_valid_actions_works():
    env, params = envs.make("Pendulum-v1")
    _, state = env.reset(jax.random.key(0), params)
    out = env.step(jax.random.key(1), state, np.array([2.0], np.float32), params)
    assert np.isfinite(float(out[2]))
    env, params = envs.make("CartPole-v1")
    _, state = env.reset(jax.random.key(0), params)
    env.step(jax.random.key(1), state, np.int32(1), params)
    env.step(jax.random.key(1), state, 1.0, params)  # an integral float is a valid index
    env, params = envs.make("Acrobot-v1")  # indexes an array with the action: needs it cast to int
    _, state = env.reset(jax.random.key(0), params)
    assert np.isfinite(float(env.step(jax.random.key(1), state, 2.0, params)[2]))


def test_checkify_flag_catches_invalid_actions_inside_jit():
    from jax.experimental import checkify

    env, params = envs.make("CartPole-v1")
    checked = envs.ValidateActions(env, checkify=True)

    def run(action):
        _, state = checked.reset(jax.random.key(0), params)
        return checked.step(jax.random.key(1), state, action, params)[2]

    run_checked = jax.jit(checkify.checkify(run))
    err, _ = run_checked(jnp.int32(1))
    err.throw()  # a valid action: no error
    err, _ = run_checked(jnp.int32(3))
    with pytest.raises(checkify.JaxRuntimeError, match="CartPole-v1: action outside the action space Discrete"):
        err.throw()
    # Unchecked code cannot silently drop the flag: tracing it without checkify fails.
    with pytest.raises(Exception, match="checkify"):
        jax.jit(run)(jnp.int32(1))


# ---------------------------------------------------------------------------------------------
# env params in configs: traced, sweepable


def test_config_env_params_are_validated_and_canonical():
    from purejaxlib.algos import ppo
    from purejaxlib.config import ConfigError

    config = ppo.Config(env_params={"gravity": 12, "max_steps_in_episode": 200.0})
    assert config.env_params["gravity"].dtype == np.float32
    assert config.env_params["max_steps_in_episode"].dtype == np.int32
    _, params = envs.from_config(config)
    assert float(params.gravity) == 12.0 and int(params.max_steps_in_episode) == 200
    with pytest.raises(ConfigError, match=r"env_params: CartPole-v1 has no param 'gravty'.*'gravity'"):
        ppo.Config(env_params={"gravty": 1.0})
    with pytest.raises(ConfigError, match="env: CartPole-v1 has no option 'n'"):
        ppo.Config(env="CartPole-v1:n=3")
    with pytest.raises(ConfigError, match=r"env_params: env param 'A' has shape \(2, 2\), got .* \(1, 1\)"):
        ppo.Config(env="LQR:n=2,m=1", env_params={"A": [[1.0]]})  # a list is a value too
    with pytest.raises(ConfigError, match="gravity must be a number"):
        ppo.Config(env_params={"gravity": "high"})


def test_training_vmapped_over_gravity_is_one_program_and_uses_each_value(count_compiles):
    """Env params are traced: a sweep over gravity trains every value in one compiled program, and
    each member equals training with that gravity alone."""
    import purejaxlib
    from purejaxlib.algos import ppo

    config = ppo.Config(total_timesteps=4 * 4 * 32, num_envs=4, num_steps=32, update_epochs=1, num_minibatches=2)
    gravities = [2.0, 9.8, 40.0]
    with count_compiles("train") as compiles:
        result = purejaxlib.sweep(ppo.train, config, seeds=1, env_params={"gravity": gravities})
    assert compiles.count == 1
    assert result.grid["env_params.gravity"] == gravities
    lengths = result.metrics["episode_length"][:, 0]  # [gravity, updates]
    alone = ppo.train(config.replace(env_params={"gravity": 40.0}), jax.random.key(0))
    np.testing.assert_allclose(lengths[2], np.asarray(alone.metrics["episode_length"]), rtol=1e-5)
    # Stronger gravity topples the pole sooner under the same (near-random) early policy.
    assert lengths[0, 0] > lengths[2, 0]


def test_sweep_env_params_must_be_a_dict_of_lists():
    import purejaxlib
    from purejaxlib.algos import ppo
    from purejaxlib.config import ConfigError

    with pytest.raises(ConfigError, match="env_params takes a dict of param name to list of values"):
        purejaxlib.sweep(ppo.train, ppo.Config(), env_params=[{"gravity": 5.0}])
