"""The host adapter (purejaxlib.envs.host): numpy/gymnasium envs inside jitted, vmapped JAX code."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import purejaxlib
from purejaxlib import envs
from purejaxlib.algos import ppo

gym = pytest.importorskip("gymnasium")

from purejaxlib.envs.host import HostEnv, register_host, seed_from_key  # noqa: E402

CARTPOLE = "gymnasium/CartPole-v1"


class Corridor:
    """A numpy env with the gymnasium API and no gymnasium import: walk right from 0 to ``length``.

    Action 1 moves right (reward 1), 0 stays (reward 0); reaching ``length`` terminates. The start
    position is drawn from the env's generator, so seeding is observable.
    """

    length = 5

    def __init__(self):
        self.rng = np.random.default_rng()
        self.pos = 0

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pos = int(self.rng.integers(0, 2))
        return np.array([self.pos], np.float64), {}

    def step(self, action):
        assert action in (0, 1), action
        self.pos += action
        return np.array([self.pos], np.float64), float(action), self.pos >= self.length, False, {}


CORRIDOR_SPACES = dict(
    observation_space=spaces.Box(0.0, 5.0, (1,), jnp.float32),
    action_space=spaces.Discrete(2),
)


def corridor_env(**kwargs) -> HostEnv:
    return HostEnv(Corridor, **{**CORRIDOR_SPACES, "max_steps_in_episode": 50, **kwargs})


def rollout(env, params, num_envs: int, actions: jax.Array, key: jax.Array):
    """Resets ``num_envs`` copies and applies ``actions [T, num_envs]``; returns reset obs and
    the stacked step outputs (obs, reward, terminated, truncated, final_obs), each ``[T, ...]``."""
    venv = envs.VecEnv(env, num_envs)
    reset_key, key = jax.random.split(key)
    obs0, state = venv.reset(reset_key, params)

    def body(state, inputs):
        step_key, action = inputs
        obs, state, reward, terminated, truncated, info = venv.step(step_key, state, action, params)
        return state, (obs, reward, terminated, truncated, info["final_observation"])

    _, out = jax.lax.scan(body, state, (jax.random.split(key, actions.shape[0]), actions))
    return obs0, out


def test_one_host_call_per_batched_step():
    """VecEnv's vmap inside a vmap over 3 seeds: one reset call and one call per step carrying all
    3 x 8 copies, which are all distinct."""
    env, params = envs.make(CARTPOLE)
    pool = env.unwrapped.pool
    steps, seeds, num_envs = 10, 3, 8
    actions = jnp.ones((seeds, steps, num_envs), jnp.int32)
    run = jax.jit(jax.vmap(lambda key, a: rollout(env, params, num_envs, a, key)))
    resets, calls = pool.reset_calls, pool.step_calls
    obs0, (obs, _reward, _terminated, _truncated, _final) = jax.block_until_ready(
        run(jax.random.split(jax.random.key(0), seeds), actions)
    )
    assert pool.reset_calls - resets == 1
    assert pool.step_calls - calls == steps
    assert obs0.shape == (seeds, num_envs, 4) and obs.shape == (seeds, steps, num_envs, 4)
    # every copy got its own host env: 24 different initial states
    assert len({tuple(np.round(o, 6)) for o in np.asarray(obs0).reshape(-1, 4)}) == seeds * num_envs


def test_dtypes_match_the_protocol():
    env, params = envs.make(CARTPOLE)
    obs, state = env.reset(jax.random.key(0), params)
    out = env.step(jax.random.key(1), state, jnp.int32(1), params)
    obs1, state1, reward, terminated, truncated, info = out
    assert obs.dtype == obs1.dtype == info["final_observation"].dtype == jnp.float32
    assert obs.shape == (4,) and reward.shape == () and reward.dtype == jnp.float32
    assert terminated.dtype == truncated.dtype == jnp.bool_
    assert state1.handle.dtype == state1.version.dtype == jnp.int32
    assert int(state1.version) == int(state.version) + 1
    assert isinstance(env.action_space(params), spaces.Discrete)
    assert env.action_space(params).n == 2
    box = env.observation_space(params)
    assert isinstance(box, spaces.Box) and box.shape == (4,)


def test_steps_are_gymnasium_cartpole():
    """The adapter runs gymnasium's env itself: the same seed and actions give gymnasium's numbers."""
    env, params = envs.make(CARTPOLE)
    key = jax.random.key(7)
    actions = np.random.default_rng(0).integers(0, 2, size=30)
    obs, state = env.reset(key, params)
    reference = gym.make("CartPole-v1")
    ref_obs, _ = reference.reset(seed=seed_from_key(key))
    np.testing.assert_array_equal(np.asarray(obs), ref_obs)
    step = jax.jit(env.step)
    for action in actions:
        obs, state, reward, terminated, _truncated, info = step(key, state, jnp.int32(action), params)
        ref_obs, ref_reward, ref_terminated, _ref_truncated, _ = reference.step(int(action))
        np.testing.assert_array_equal(np.asarray(info["final_observation"]), ref_obs)
        assert float(reward) == ref_reward and bool(terminated) == ref_terminated
        if ref_terminated:
            break
    assert ref_terminated, "30 random actions should drop the pole"


def test_auto_reset_and_final_observation():
    """Pushing right drops CartPole's pole within ~10 steps: that step reports terminated, its
    final_observation is past a threshold and the returned observation is a fresh reset; steps
    that end nothing have final_observation == observation. A short time limit truncates."""
    env, params = envs.make(CARTPOLE)
    _, (obs, reward, terminated, truncated, final) = jax.jit(lambda a, k: rollout(env, params, 2, a, k))(
        jnp.ones((40, 2), jnp.int32), jax.random.key(3)
    )
    obs, terminated, truncated, final = map(np.asarray, (obs, terminated, truncated, final))
    assert terminated.sum() >= 4 and not truncated.any()
    ends = terminated
    past = (np.abs(final[..., 0]) > 2.4) | (np.abs(final[..., 2]) > 12 * 2 * np.pi / 360)
    np.testing.assert_array_equal(past, ends)  # terminated exactly where the state left the bounds
    assert np.all(np.abs(obs[ends]) <= 0.05)  # gymnasium resets to U(-0.05, 0.05)
    np.testing.assert_array_equal(obs[~ends], final[~ends])
    assert np.all(np.asarray(reward) == 1.0)

    short = params.replace(max_steps_in_episode=5)  # a traced param: truncation on the host
    _, (obs, _, terminated, truncated, final) = jax.jit(lambda a, k, p: rollout(env, p, 2, a, k))(
        jnp.tile(jnp.array([[0], [1]], jnp.int32), (6, 2)), jax.random.key(4), short
    )
    truncated, terminated = np.asarray(truncated), np.asarray(terminated)
    assert not terminated.any()
    np.testing.assert_array_equal(truncated[:, 0], np.arange(1, 13) % 5 == 0)
    assert not np.array_equal(np.asarray(obs)[4], np.asarray(final)[4])  # reset after truncation


def test_reproducible_from_the_key():
    """Two runs from one key agree exactly (fresh host copies each time); another key differs."""
    env, params = envs.make(CARTPOLE)
    actions = jax.random.randint(jax.random.key(9), (2, 30, 4), 0, 2)
    run = jax.jit(jax.vmap(lambda key, a: rollout(env, params, 4, a, key)))
    keys = jax.random.split(jax.random.key(5), 2)
    first, second = jax.tree.map(np.asarray, (run(keys, actions), run(keys, actions)))
    jax.tree.map(np.testing.assert_array_equal, first, second)
    other = jax.tree.map(np.asarray, run(jax.random.split(jax.random.key(6), 2), actions))
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0][0], first[0][1])  # the two seeds differ too


def test_conformance_and_custom_env():
    """register_host makes a plain numpy object a registered env that passes the conformance
    check, under the registry's name and through make()."""
    register_host("test/Corridor", Corridor, max_steps_in_episode=50, overwrite=True, **CORRIDOR_SPACES)
    env, params = envs.make("test/Corridor", max_steps_in_episode=20)
    assert int(params.max_steps_in_episode) == 20
    facts = envs.check(env, params)
    assert facts["episodes_ended"] > 0
    assert envs.spec("test/Corridor").num_actions == 2


def test_discrete_observations():
    """A Discrete observation space (gymnasium's FrozenLake) gives int32 scalar observations and
    passes the conformance check."""
    env = HostEnv(lambda: gym.make("FrozenLake-v1").unwrapped, max_steps_in_episode=100)
    params = env.default_params
    assert isinstance(env.observation_space(params), spaces.Discrete) and env.observation_space(params).n == 16
    obs, _ = env.reset(jax.random.key(0), params)
    assert obs.shape == () and obs.dtype == jnp.int32
    assert envs.check(env, params)["episodes_ended"] > 0


@pytest.mark.parametrize("name", ["gymnasium/Pendulum-v1", "gymnasium/MountainCarContinuous-v0"])
def test_continuous_actions_reach_the_host(name):
    """A Box action arrives on the host as the float32 array JAX sent (Pendulum's cost depends on
    the torque: -0.001 u^2 beyond the state cost, so two torques give the same state cost only if
    the action arrived)."""
    env, params = envs.make(name)
    _obs, state = env.reset(jax.random.key(0), params)
    assert env.action_space(params).shape == (1,)
    _, state, reward, *_ = env.step(jax.random.key(1), state, jnp.array([0.5], jnp.float32), params)
    assert reward.dtype == jnp.float32 and np.isfinite(float(reward))
    if name == "gymnasium/Pendulum-v1":
        # from the same gymnasium state, the host's reward is gymnasium's for this torque
        reference = gym.make("Pendulum-v1").unwrapped
        reference.reset(seed=seed_from_key(jax.random.key(0)))
        _, ref_reward, *_ = reference.step(np.array([0.5], np.float32))
        np.testing.assert_allclose(float(reward), ref_reward, rtol=1e-6)


def raises_on_host(match: str):
    """An error raised inside the callback: JAX re-raises it as its runtime error (a RuntimeError,
    or a ValueError when it surfaces at block_until_ready) with the host's message inside."""
    return pytest.raises((RuntimeError, ValueError), match=match)


def test_stale_state_and_recycled_copy_fail_loudly():
    """A state may be stepped once; a copy recycled by a full pool cannot be stepped."""
    env = corridor_env(max_copies=4)
    params = env.default_params
    venv = envs.VecEnv(env, 4)
    step = jax.jit(venv.step)
    _, state = venv.reset(jax.random.key(0), params)
    ones = jnp.ones(4, jnp.int32)
    step(jax.random.key(1), state, ones, params)
    with raises_on_host("can be stepped only once"):
        jax.block_until_ready(step(jax.random.key(1), state, ones, params))
    _, fresh = venv.reset(jax.random.key(2), params)  # the pool is full: the first 4 are recycled
    assert len(env.pool.copies) == 4
    with raises_on_host("recycled"):
        jax.block_until_ready(step(jax.random.key(3), state, ones, params))
    jax.block_until_ready(step(jax.random.key(3), fresh, ones, params))
    with raises_on_host("more than once in one batched step"):
        jax.block_until_ready(
            jax.vmap(env.step, in_axes=(0, None, 0, None))(
                jax.random.split(jax.random.key(4), 2), jax.tree.map(lambda x: x[0], fresh), ones[:2], params
            )
        )


def test_bad_input_is_named():
    with pytest.raises(TypeError, match=r"only Discrete and Box spaces.*MultiDiscrete"):
        corridor_env(action_space=gym.spaces.MultiDiscrete([2, 2]))
    with pytest.raises(TypeError, match="observation_space: only Discrete and Box"):
        corridor_env(observation_space=gym.spaces.Dict({"a": gym.spaces.Discrete(2)}))
    with pytest.raises(ValueError, match="max_steps_in_episode"):
        HostEnv(Corridor, **CORRIDOR_SPACES)  # no spec, no limit given
    with pytest.raises(TypeError, match=r"observation_space=.*action_space="):
        HostEnv(Corridor, max_steps_in_episode=10)  # no spaces anywhere
    with pytest.raises(TypeError, match="constructor"):
        HostEnv(Corridor(), max_steps_in_episode=10)
    env = corridor_env()
    _, state = env.reset(jax.random.key(0), env.default_params)
    with pytest.raises(ValueError, match="discrete action must be a scalar"):
        env.step(jax.random.key(0), state, jnp.ones(2, jnp.int32), env.default_params)


def test_gymnasium_start_offset_and_reset_seed():
    """Discrete(n, start) actions are 0..n-1 in JAX and start+a on the host; seeding is per copy."""

    class Shifted(Corridor):
        def step(self, action):
            return super().step(action - 10)

    env = HostEnv(
        Shifted,
        observation_space=CORRIDOR_SPACES["observation_space"],
        action_space=gym.spaces.Discrete(2, start=10),
        max_steps_in_episode=50,
    )
    assert env.action_space(env.default_params).n == 2
    obs, state = env.reset(jax.random.key(0), env.default_params)
    obs1, _, reward, *_ = env.step(jax.random.key(0), state, jnp.int32(1), env.default_params)
    assert float(obs1[0]) == float(obs[0]) + 1 and float(reward) == 1.0


@pytest.mark.slow
def test_ppo_learns_gymnasium_cartpole_through_the_host():
    """PPO trains on gymnasium's own CartPole through pure_callback, 4 seeds in one program; the
    host steps all 4 x 32 envs in one call per step. A uniformly random policy scores ~22, 500 is
    the maximum; a mean of 250 and 100 for every seed are far above random and below every
    measured run (benchmarks/README.md, host envs)."""
    config = ppo.Config(
        env=CARTPOLE, total_timesteps=100_000, num_envs=32, num_steps=32, num_minibatches=4, update_epochs=4, lr=2.5e-3
    )
    pool = envs.make(CARTPOLE)[0].unwrapped.pool
    calls = pool.step_calls
    result = purejaxlib.sweep(ppo.train, config, seeds=4)
    returns = np.asarray(result.metrics["episode_return"])  # [seed, update]
    assert returns.shape == (4, config.num_updates)
    assert pool.step_calls - calls == config.num_updates * config.num_steps  # one call per step for 4 x 32 envs
    final = returns[:, -5:].mean(axis=1)
    print(f"{CARTPOLE} through the host: first update {returns[:, 0].round(1)}, last 5 updates {final.round(1)}")
    assert np.nanmean(returns[:, 0]) < 40
    assert final.mean() >= 250, final
    assert final.min() >= 100, final
