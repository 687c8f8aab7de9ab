"""Brax envs through purejaxlib.envs.brax_adapter: names, spaces, termination vs truncation, backends,
and PPO learning brax/inverted_pendulum.

Brax compiles slowly on CPU (benchmarks/README.md, brax), so the fast tests share one env instance
(one compiled ``step`` and ``reset``) through a module-scoped fixture and drive it from Python; the
time limit is a traced param, so changing it never recompiles. Other backends and envs are only
built, never compiled.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import purejaxlib
from purejaxlib import envs
from purejaxlib.algos import ppo
from purejaxlib.envs import brax_adapter
from purejaxlib.envs.brax_adapter import BACKENDS, BRAX_ENV_NAMES, make_brax

PENDULUM = "brax/inverted_pendulum"
ANGLE_LIMIT = 0.2  # brax inverted_pendulum terminates once |pole angle| = |obs[1]| > 0.2 rad
RESET_NOISE = 0.01  # brax inverted_pendulum resets q and qd uniformly in [-0.01, 0.01] around 0
PUSH = 0.2  # a constant action that topples the pole in about 5 steps (1.0 takes 2, 0.1 takes 7)


@pytest.fixture(scope="module")
def pendulum():
    """brax/inverted_pendulum (generalized backend) and its default params; shared so it compiles once."""
    return envs.make(PENDULUM)


def run(env, params, key, action, num_steps):
    """Steps one env ``num_steps`` times with a constant action; returns per-step numpy outputs.

    Keys are derived from ``key`` only, so two calls with the same key and actions see the same
    resets and dynamics whatever ``params`` hold.
    """
    reset_key, key = jax.random.split(key)
    obs, state = env.reset(reset_key, params)
    action = jnp.asarray(action, jnp.float32)
    steps = []
    for step_key in jax.random.split(key, num_steps):
        obs, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
        steps.append(
            dict(
                obs=np.asarray(obs),
                reward=np.asarray(reward),
                terminated=bool(terminated),
                truncated=bool(truncated),
                final_obs=np.asarray(info["final_observation"]),
                time=int(state.time),
            )
        )
    return steps


def first(steps, flag):
    """Index of the first step whose ``flag`` is set (asserts there is one)."""
    hits = [i for i, s in enumerate(steps) if s[flag]]
    assert hits, f"no step had {flag}"
    return hits[0]


# ---------------------------------------------------------------------------------------------
# names and registration


def test_names_are_exactly_the_envs_brax_registers():
    import brax.envs

    assert len(set(BRAX_ENV_NAMES)) == len(BRAX_ENV_NAMES)
    assert set(BRAX_ENV_NAMES) == set(brax.envs._envs)
    registered = set(envs.list())
    assert {f"brax/{name}" for name in BRAX_ENV_NAMES} <= registered


def test_importing_envs_does_not_import_brax():
    code = "import sys, purejaxlib.envs; assert 'brax' not in sys.modules, 'brax imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# spaces, dtypes, actions


def test_spaces_and_dtypes(pendulum):
    env, params = pendulum
    assert params.max_steps_in_episode == 1000  # brax's episode_length
    act, obs_space = env.action_space(params), env.observation_space(params)
    assert isinstance(act, spaces.Box) and isinstance(obs_space, spaces.Box)
    assert act.shape == (1,) and float(act.low) == -1.0 and float(act.high) == 1.0
    assert obs_space.shape == (4,)  # cart position, pole angle, their velocities
    spec = envs.spec(PENDULUM)
    assert not spec.discrete and spec.obs_shape == (4,) and spec.action_shape == (1,)

    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (4,) and obs.dtype == jnp.float32
    assert np.all(np.abs(np.asarray(obs)) <= RESET_NOISE)
    obs, state, reward, terminated, truncated, _ = env.step(jax.random.key(1), state, jnp.zeros(1), params)
    assert obs.dtype == jnp.float32 and reward.dtype == jnp.float32 and float(reward) == 1.0
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert int(state.time) == 1
    # the state is a pytree of arrays (it goes through vmap, scan and lax.select)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(state))


def test_actions_saturate_at_unit_bounds(pendulum):
    """brax's inverted_pendulum maps [-1, 1] onto its actuator range [-3, 3] itself, so the
    action space is [-1, 1]: an action of 5 must act exactly like 1, while 0.5 acts differently.
    (make() refuses out-of-space actions outside jit, so this drives the unwrapped adapter, which
    clips as a jitted policy's out-of-space actions would be.)"""
    env, params = pendulum
    env = env.unwrapped
    obs = {a: run(env, params, jax.random.key(3), [a], 2)[-1]["obs"] for a in (0.5, 1.0, 5.0)}
    np.testing.assert_array_equal(obs[5.0], obs[1.0])
    assert np.abs(obs[1.0] - obs[0.5]).max() > 1e-3


# ---------------------------------------------------------------------------------------------
# termination vs truncation


def test_time_limit_truncates_with_final_observation_and_fresh_reset(pendulum):
    env, params = pendulum
    key, action = jax.random.key(7), [0.1]  # a gentle push: the pole stays up for 3 steps
    limited = run(env, params.replace(max_steps_in_episode=3), key, action, 4)
    free = run(env, params, key, action, 4)  # same keys and actions, no time limit in reach

    assert not any(s["terminated"] for s in free), "pick a gentler action: the pole fell"
    for i in range(2):
        assert not limited[i]["truncated"] and not limited[i]["terminated"]
        np.testing.assert_array_equal(limited[i]["obs"], free[i]["obs"])
        np.testing.assert_array_equal(limited[i]["final_obs"], limited[i]["obs"])
    hit = limited[2]
    assert hit["truncated"] and not hit["terminated"]
    assert hit["reward"] == 1.0
    # the final observation is where the episode really got to (what the free run observed) ...
    np.testing.assert_array_equal(hit["final_obs"], free[2]["obs"])
    # ... while obs starts a new episode: a fresh reset, near the origin, clock at zero
    assert hit["time"] == 0
    assert np.all(np.abs(hit["obs"]) <= RESET_NOISE)
    assert np.abs(free[2]["obs"]).max() > 5 * RESET_NOISE, "the push must move the cart off the reset range"
    # the next step is the first of the new episode
    assert limited[3]["time"] == 1 and not limited[3]["truncated"]


def test_pole_pushed_over_terminates_and_not_before(pendulum):
    env, params = pendulum
    steps = run(env, params, jax.random.key(11), [PUSH], 40)
    k = first(steps, "terminated")
    assert k >= 3, "a fresh pole under a moderate push takes a few steps to fall (measured: 5)"
    for s in steps[:k]:
        assert not s["truncated"] and abs(s["obs"][1]) <= ANGLE_LIMIT
    fell = steps[k]
    assert not fell["truncated"]
    assert abs(fell["final_obs"][1]) > ANGLE_LIMIT  # the pre-reset observation shows the fall
    assert fell["time"] == 0 and np.all(np.abs(fell["obs"]) <= RESET_NOISE)


def test_terminating_at_the_time_limit_sets_both_flags(pendulum):
    """As in gymnax, truncated reports the time limit whatever else happened; terminated is what
    consumers act on (no bootstrap), so such a step must carry terminated=True."""
    env, params = pendulum
    key = jax.random.key(11)
    k = first(run(env, params, key, [PUSH], 40), "terminated")
    steps = run(env, params.replace(max_steps_in_episode=k + 1), key, [PUSH], k + 1)
    assert steps[k]["terminated"] and steps[k]["truncated"]
    assert not any(s["terminated"] or s["truncated"] for s in steps[:k])


# ---------------------------------------------------------------------------------------------
# backends


def test_default_backend_is_generalized(pendulum):
    env, _ = pendulum
    assert env.backend == "generalized" == brax_adapter.DEFAULT_BACKEND


@pytest.mark.parametrize("how", ["keyword", "name string"])
def test_backend_option(how):
    if how == "keyword":
        env, params = envs.make(PENDULUM, backend="positional")
    else:
        env, params = envs.make(f"{PENDULUM}:backend=positional")
    assert env.backend == "positional"
    assert env.brax_env.backend == "positional"
    assert params.max_steps_in_episode == 1000


def test_unknown_backend_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'mujoco'.*generalized, positional, spring, mjx"):
        make_brax("inverted_pendulum", backend="mujoco")
    with pytest.raises(ValueError, match="unknown backend"):
        envs.make(PENDULUM, backend="mujoco")


def test_backend_an_env_does_not_support_names_env_and_backend():
    with pytest.raises(ValueError, match="brax/swimmer cannot use backend 'positional'"):
        make_brax("swimmer", backend="positional")


def test_every_backend_builds():
    for backend in BACKENDS:  # through the registry, which caches the generalized and positional builds
        env, _ = envs.make(PENDULUM, backend=backend)
        assert env.backend == backend


def test_swimmer_fluid_model_runs_on_this_jax():
    """brax's fluid model (swimmer) calls jnp.clip(x, a_min=...), gone in jax 0.10; the adapter
    hands it a jax.numpy whose clip still takes that keyword (without compiling swimmer itself)."""
    make_brax("swimmer")
    from brax import fluid

    x = jnp.array([-1.0, 0.5, 2.0])
    np.testing.assert_array_equal(fluid.jp.clip(x, a_min=0.0), [0.0, 0.5, 2.0])
    np.testing.assert_array_equal(fluid.jp.clip(x, a_max=1.0), [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(fluid.jp.clip(x, 0.0, 1.0), [0.0, 0.5, 1.0])


# ---------------------------------------------------------------------------------------------
# learning


def pendulum_ppo_config() -> ppo.Config:
    """128 updates of 16 envs x 64 steps (131k env steps): twice the steps that left one seed in
    six short of balancing (benchmarks/README.md, brax); compiling is most of the cost on CPU."""
    return ppo.Config(
        env=PENDULUM,
        total_timesteps=131_072,
        num_envs=16,
        num_steps=64,
        num_minibatches=4,
        update_epochs=4,
        lr=3e-3,
        normalize_obs=True,
        ent_coef=0.0,
    )


@pytest.mark.slow
def test_ppo_learns_brax_inverted_pendulum():
    """Reward is 1 per step the pole stays up, so a return is an episode length: at most 1000 (the
    time limit), and about 5 for random play, which topples the pole within a few steps. 750 means
    episodes last 750+ steps (30 s of simulated time) on average, which takes a balancing policy."""
    config = pendulum_ppo_config()
    result = purejaxlib.sweep(ppo.train, config, seeds=2)
    returns = np.asarray(result.metrics["episode_return"])  # [seed, update]
    assert returns.shape == (2, config.num_updates)
    final = returns[:, -5:].mean(axis=1)
    print(f"{PENDULUM}: first update {returns[:, 0]}, mean over the last 5 updates {final}")
    assert np.isfinite(returns[:, -5:]).all()
    assert returns[:, 0].max() < 20, "the initial policy should topple the pole within a few steps"
    assert final.min() >= 750, f"mean return over the last 5 updates per seed: {final}"
