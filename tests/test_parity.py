"""Parity: gymnax CartPole-v1, Pendulum-v1 and Acrobot-v1 against gymnasium's own implementations.

Both sides are put in the same state (gymnasium: ``env.unwrapped.state``; gymnax: its
``EnvState``) and given the same random actions; observations, rewards and ``terminated`` are
compared one transition at a time in float32 (what training uses; each step starts from identical
inputs, so rounding cannot compound) and over whole open-loop trajectories in float64
(``jax.enable_x64``: gymnax in float32 against gymnasium's float64 would drift apart on these
unstable or chaotic systems for a reason that is not a dynamics difference). Time limits are not
compared: both use the same values (500, 200, 500) by different mechanisms, and these tests step
the unwrapped dynamics. The differences found are listed below the imports; none changes a
transition that occurs in practice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
gymnax = pytest.importorskip("gymnax")

from gymnax.environments.classic_control import acrobot, cartpole, pendulum  # noqa: E402

# Float32 agreement at termination thresholds depends on rounding: compile as users' runs do.
pytestmark = pytest.mark.optimized

NUM_ACTIONS = 200  # one-step check
TRAJECTORY_STEPS = 150  # open-loop check

# Differences found, and how they are handled:
# - Acrobot: both integrate with a single RK4 step of dt=0.2 (gymnasium's ``rk4`` over [0, dt] is
#   one step too) and use the "book" dynamics; but gymnasium's ``wrap`` keeps an angle of exactly
#   +pi while gymnax maps it to -pi. Same point on the circle, so cos/sin observations agree; the
#   state differs only on that measure-zero set, which random actions do not hit.
# - Pendulum: both clip the torque to [-2, 2] before the cost and the dynamics and clip the angular
#   velocity to [-8, 8]; actions here are drawn from [-3, 3] so the clipping is exercised.
#   gymnasium computes in float64 from a float32 action; gymnax in float32.
# - CartPole: identical Euler dynamics and thresholds; gymnasium holds its state in float64, gymnax
#   in float32. Reward is 1 on every step of an episode including the terminating one, in both.
#   They differ only when stepping from a state that is already terminal (past a threshold), which
#   no episode does (both reset after termination): gymnax's reward is 1 - terminal(start state)
#   = 0 there, while unwrapped gymnasium pays 1 on its first such step (it has no record of the
#   previous step). The broad starts are therefore drawn inside the thresholds.


# ---------------------------------------------------------------------------------------------
# Per-env glue: read gymnasium's state, build the gymnax state from it, draw actions.


def _cartpole_state(s: np.ndarray, dtype) -> cartpole.EnvState:
    s = np.asarray(s, dtype)
    return cartpole.EnvState(x=s[0], x_dot=s[1], theta=s[2], theta_dot=s[3], time=0)


def _pendulum_state(s: np.ndarray, dtype) -> pendulum.EnvState:
    s = np.asarray(s, dtype)
    return pendulum.EnvState(theta=s[0], theta_dot=s[1], last_u=np.asarray(0.0, dtype), time=0)


def _acrobot_state(s: np.ndarray, dtype) -> acrobot.EnvState:
    s = np.asarray(s, dtype)
    return acrobot.EnvState(joint_angle1=s[0], joint_angle2=s[1], velocity_1=s[2], velocity_2=s[3], time=0)


def _discrete(n: int) -> Callable[[np.random.Generator], Any]:
    return lambda rng: int(rng.integers(n))


def _torque(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-3.0, 3.0, size=(1,)).astype(np.float32)  # beyond [-2, 2]: exercises the clip


def _cartpole_broad(rng: np.random.Generator) -> np.ndarray:
    """Anywhere a live episode can be: inside the thresholds (x 2.4, theta 0.2095), where one step
    often crosses them. (Starting past them differs: see the differences above.)"""
    return rng.uniform([-2.4, -3.0, -0.2094, -3.5], [2.4, 3.0, 0.2094, 3.5])


def _pendulum_broad(rng: np.random.Generator) -> np.ndarray:
    """Unnormalized angles (several turns) and any speed; every other draw within 1 of the +-8
    limit, where one step's acceleration (at most 1.05) can reach the clip."""
    speed = rng.uniform(-8.0, 8.0) if rng.random() < 0.5 else rng.choice([-1.0, 1.0]) * rng.uniform(7.0, 8.0)
    return np.array([rng.uniform(-3 * np.pi, 3 * np.pi), speed])


def _acrobot_broad(rng: np.random.Generator) -> np.ndarray:
    """Whole circle for both joints (so the tip is often above the bar: terminal) and speeds
    up to the clips (4 pi, 9 pi)."""
    return rng.uniform([-np.pi, -np.pi, -4 * np.pi, -9 * np.pi], [np.pi, np.pi, 4 * np.pi, 9 * np.pi])


def _vector(*fields: str) -> Callable[[Any], np.ndarray]:
    """The gymnax state's physical variables in gymnasium's ``env.state`` order."""
    return lambda state: np.asarray([getattr(state, f) for f in fields], np.float64)


# Speed limits that clip the next state: Pendulum (theta_dot), Acrobot (velocity_1, velocity_2).
SPEED_CLIPS = {"Pendulum-v1": {1: 8.0}, "Acrobot-v1": {2: 4 * np.pi, 3: 9 * np.pi}}


def _clipped(env_name: str, state: np.ndarray) -> bool:
    return any(np.isclose(abs(state[i]), limit) for i, limit in SPEED_CLIPS.get(env_name, {}).items())


# name: (gymnax state from gymnasium's, gymnax state as gymnasium's vector, action sampler,
#        sampler of states from the whole range an episode can visit)
ENVS = {
    "CartPole-v1": (_cartpole_state, _vector("x", "x_dot", "theta", "theta_dot"), _discrete(2), _cartpole_broad),
    "Pendulum-v1": (_pendulum_state, _vector("theta", "theta_dot"), _torque, _pendulum_broad),
    "Acrobot-v1": (
        _acrobot_state,
        _vector("joint_angle1", "joint_angle2", "velocity_1", "velocity_2"),
        _discrete(3),
        _acrobot_broad,
    ),
}


def _set_gymnasium_state(env: Any, state: np.ndarray) -> None:
    env.state = np.array(state, np.float64)
    if hasattr(env, "steps_beyond_terminated"):  # CartPole: a fresh episode, no warnings
        env.steps_beyond_terminated = None


def _gymnax_step(env_name: str):
    """Jitted ``step_env`` (no auto-reset, no time limit) of gymnax env ``env_name``."""
    env, params = gymnax.make(env_name)

    @jax.jit
    def step(state, action):
        obs, state, reward, terminated, _ = env.step_env(jax.random.key(0), state, action, params)
        return obs, state, reward, terminated

    return step


@pytest.mark.parametrize("env_name", sorted(ENVS))
@pytest.mark.parametrize("starts", ["trajectory", "broad"])
def test_one_step_parity_float32(env_name, starts):
    """One transition from the same state (float32 in gymnax) agrees to float32 precision:
    observation, reward and terminated, for 200 random actions.

    ``trajectory``: the states of gymnasium's own episodes from its resets (several CartPole
    episodes and their terminal steps). ``broad``: a fresh state drawn from the whole range an
    episode can visit before every step, which reaches what random play from a reset does not:
    Acrobot's terminal region and velocity clips, Pendulum's speed clip, CartPole's thresholds.
    """
    make_state, _, draw_action, draw_state = ENVS[env_name]
    reference = gym.make(env_name).unwrapped
    step = _gymnax_step(env_name)
    rng = np.random.default_rng(0)
    reference.reset(seed=0)
    terminations, clipped, worst = 0, 0, 0.0
    for t in range(NUM_ACTIONS):
        start = draw_state(rng) if starts == "broad" else reference.state
        start = np.asarray(start, np.float32)  # exactly representable on both sides
        _set_gymnasium_state(reference, start)
        action = draw_action(rng)
        ref_obs, ref_reward, ref_terminated, _, _ = reference.step(action)
        obs, _, reward, terminated = step(make_state(start, np.float32), jnp.asarray(action))
        np.testing.assert_allclose(np.asarray(obs), ref_obs, rtol=1e-5, atol=1e-5, err_msg=f"{env_name} step {t} obs")
        np.testing.assert_allclose(
            float(reward), float(ref_reward), rtol=1e-5, atol=1e-5, err_msg=f"{env_name} step {t} reward"
        )
        assert bool(terminated) == bool(ref_terminated), (
            f"{env_name} step {t}: terminated {terminated} vs {ref_terminated}"
        )
        worst = max(worst, float(np.max(np.abs(np.asarray(obs) - ref_obs))))
        clipped += _clipped(env_name, reference.state)
        if ref_terminated:
            terminations += 1
            if starts == "trajectory":
                reference.reset(seed=int(rng.integers(2**31)))
    if env_name != "Pendulum-v1" and (starts == "broad" or env_name == "CartPole-v1"):
        assert terminations >= 4, f"only {terminations} terminal transitions compared"
    if starts == "broad" and env_name in SPEED_CLIPS:
        assert clipped >= 4, f"only {clipped} transitions hit a speed clip"
    print(
        f"{env_name} ({starts}): {NUM_ACTIONS} transitions, {terminations} terminal, {clipped} speed-clipped, "
        f"max |obs diff| {worst:.2e}"
    )


@pytest.mark.parametrize("env_name", sorted(ENVS))
@pytest.mark.parametrize("seed", [1, 2])
def test_trajectory_parity_float64(env_name, seed):
    """Open loop from the same start, the same action sequence gives the same trajectory (to 1e-6
    with gymnax in float64) until termination or 150 steps."""
    make_state, state_vector, draw_action, _ = ENVS[env_name]
    reference = gym.make(env_name).unwrapped
    rng = np.random.default_rng(seed)
    reference.reset(seed=seed)
    start = np.asarray(reference.state, np.float64)
    actions = [draw_action(rng) for _ in range(TRAJECTORY_STEPS)]
    with jax.enable_x64(True):
        step = _gymnax_step(env_name)
        state = make_state(start, np.float64)
        _set_gymnasium_state(reference, start)
        steps = 0
        for t, action in enumerate(actions):
            ref_obs, ref_reward, ref_terminated, _, _ = reference.step(action)
            obs, state, reward, terminated = step(state, jnp.asarray(action))
            steps += 1
            np.testing.assert_allclose(
                np.asarray(obs), ref_obs, rtol=1e-6, atol=1e-6, err_msg=f"{env_name} step {t} obs"
            )
            np.testing.assert_allclose(
                float(reward), float(ref_reward), rtol=1e-6, atol=1e-6, err_msg=f"{env_name} step {t} reward"
            )
            assert bool(terminated) == bool(ref_terminated), (
                f"{env_name} step {t}: terminated {terminated} vs {ref_terminated}"
            )
            # the full state, not only the float32 observation
            np.testing.assert_allclose(
                state_vector(state), reference.state, rtol=1e-6, atol=1e-6, err_msg=f"{env_name} step {t} state"
            )
            if ref_terminated:
                break
    assert steps >= 8, steps
    print(f"{env_name} seed {seed}: {steps} steps open loop agree")
