"""LQR family: construction per seed (shapes, spectral radius, controllability, bounds), bad
input, the env's dynamics and divergence guard, the Riccati solution (equation residual,
optimality against random and perturbed linear policies), analytic costs against rollouts, and
(slow) PPO reaching within 10% of the Riccati-optimal cost at n = 2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import envs
from purejaxlib.algos import ppo
from purejaxlib.envs import lqr

GAMMA = 0.99
SHAPES = [(1, 1), (2, 1), (5, 3), (8, 2)]


# ---------------------------------------------------------------------------------------------
# construction


@pytest.mark.parametrize("n,m", SHAPES)
@pytest.mark.parametrize("stable", [True, False])
def test_construction_per_seed(n, m, stable):
    for seed in range(3):
        p = lqr.make_params(n, m, seed, stable)
        shapes = {"A": (n, n), "B": (n, m), "Q": (n, n), "R": (m, m), "action_bound": (m,), "state_bound": (n,)}
        for field, shape in shapes.items():
            value = getattr(p, field)
            assert value.shape == shape and value.dtype == np.float32, field
        radius = np.max(np.abs(np.linalg.eigvals(p.A.astype(np.float64))))
        assert radius == pytest.approx(lqr.STABLE_RADIUS if stable else lqr.UNSTABLE_RADIUS, rel=1e-5)
        assert lqr.controllable(p.A, p.B)
        np.testing.assert_array_equal(p.Q, np.eye(n))
        np.testing.assert_array_equal(p.R, np.eye(m))
        assert np.all(p.action_bound > 0) and np.all(p.state_bound >= lqr.STATE_MARGIN * p.init_scale)
        for gamma in lqr.REFERENCE_GAMMAS:
            assert lqr.riccati_fits(p, gamma), (seed, gamma)
    again = lqr.make_params(n, m, 2, stable)
    np.testing.assert_array_equal(again.A, p.A)  # a seed fixes the system
    if n > 1:
        assert not np.allclose(lqr.make_params(n, m, 0, stable).A, p.A)


def test_controllability_check_rejects_an_uncontrollable_pair():
    A = np.diag([0.5, 0.8, 1.2])
    assert not lqr.controllable(A, np.array([[1.0], [1.0], [0.0]]))  # the third mode is unreachable
    assert not lqr.controllable(A, np.zeros((3, 2)))
    assert lqr.controllable(A, np.array([[1.0], [1.0], [1.0]]))
    # a 32-state single-input draw like make_params's: its controllability matrix is badly
    # conditioned, and the block scaling keeps the rank from being lost to rounding
    rng = np.random.default_rng(0)
    A = rng.normal(size=(32, 32))
    A *= lqr.UNSTABLE_RADIUS / np.max(np.abs(np.linalg.eigvals(A)))
    assert lqr.controllable(A, rng.normal(size=(32, 1)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n \\(state dimension\\) must be an integer >= 1"),
        (dict(m=0), "m \\(action dimension\\) must be an integer >= 1"),
        (dict(n=-3), "n \\(state dimension\\)"),
        (dict(n=2.5), "n \\(state dimension\\)"),
    ],
)
def test_bad_dimensions_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lqr.make_params(**kwargs)
    if isinstance(kwargs.get("n", 1), int) and isinstance(kwargs.get("m", 1), int):
        with pytest.raises(ValueError, match=message):
            envs.make("LQR", **kwargs)


def test_params_of_the_wrong_shape_are_rejected_when_traced():
    env = lqr.LQR(3, 2)
    with pytest.raises(ValueError, match=r"params.A has shape \(2, 2\), expected \(3, 3\)"):
        env.reset(jax.random.key(0), lqr.make_params(2, 2))


def test_registry_options_and_spec():
    env, p = envs.make("LQR:n=8,m=3,seed=4,stable=False")
    assert p.A.shape == (8, 8) and p.B.shape == (8, 3)
    np.testing.assert_array_equal(p.A, lqr.make_params(8, 3, 4, False).A)
    spec = envs.spec("LQR:n=8,m=3")
    assert not spec.discrete and spec.obs_shape == (8,) and spec.action_shape == (3,)
    assert np.all(np.isfinite(spec.action_high)) and np.all(spec.action_low == -spec.action_high)
    envs.check(env, p, compare_unbatched=False)  # the protocol, with an unstable system under random actions


# ---------------------------------------------------------------------------------------------
# dynamics


def test_one_step_matches_the_linear_system():
    env = lqr.LQR(3, 2)
    p = lqr.make_params(3, 2, 1)
    obs, state = env.reset(jax.random.key(0), p)
    assert np.all(np.abs(obs) <= p.init_scale)
    u = 0.5 * p.action_bound
    obs2, _, reward, terminated, truncated, _info = env.step(jax.random.key(1), state, jnp.asarray(u), p)
    x = np.asarray(obs, np.float64)
    np.testing.assert_allclose(obs2, p.A @ x + p.B @ u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reward, -(x @ p.Q @ x + u @ p.R @ u), rtol=1e-5)
    assert not terminated and not truncated and reward.dtype == jnp.float32


def test_unstable_system_is_clipped_never_terminated_and_truncated_at_the_limit():
    """Zero control on an unstable system: the state runs into the bound and stays there (finite
    observations and rewards), no step terminates, and the time limit truncates."""
    env = lqr.LQR(4, 1)
    p = lqr.make_params(4, 1, 0, stable=False, max_steps_in_episode=120)
    obs, state = env.reset(jax.random.key(0), p)
    zero = jnp.zeros(1)
    largest, rewards = 0.0, []
    for t in range(120):
        obs, state, reward, terminated, truncated, info = env.step(jax.random.key(t), state, zero, p)
        assert not terminated
        assert bool(truncated) == (t == 119)
        final = np.asarray(info["final_observation"])
        assert np.all(np.abs(final) <= p.state_bound) and np.isfinite(float(reward))
        largest = max(largest, float(np.max(np.abs(final) / p.state_bound)))
        rewards.append(float(reward))
    assert largest == pytest.approx(1.0)  # it did reach the bound
    assert np.all(np.abs(obs) <= p.init_scale)  # auto-reset after the truncation
    bound_cost = float(p.state_bound @ p.state_bound)
    assert -rewards[-1] > 0.01 * bound_cost  # sitting near the bound is expensive


# ---------------------------------------------------------------------------------------------
# the Riccati solution


@pytest.mark.parametrize("n,m,stable", [(2, 1, True), (2, 1, False), (8, 2, False)])
@pytest.mark.parametrize("gamma", [0.9, 0.99, 1.0])
def test_riccati_solution_satisfies_the_equation(n, m, stable, gamma):
    p = lqr.make_params(n, m, 0, stable)
    A, B, Q, R = (np.asarray(v, np.float64) for v in (p.A, p.B, p.Q, p.R))
    K, P = lqr.optimal(p, gamma)
    assert K.shape == (m, n) and P.shape == (n, n)
    np.testing.assert_allclose(P, P.T, atol=1e-10)
    assert np.all(np.linalg.eigvalsh(P) > 0)
    # Bellman: P = Q + gamma A'PA - gamma^2 A'PB (R + gamma B'PB)^-1 B'PA, and K its minimizer
    gain = np.linalg.solve(R + gamma * B.T @ P @ B, gamma * B.T @ P @ A)
    np.testing.assert_allclose(K, gain, rtol=1e-8, atol=1e-10)
    residual = Q + gamma * A.T @ P @ A - gamma * A.T @ P @ B @ gain - P
    np.testing.assert_allclose(residual, 0.0, atol=1e-8 * np.abs(P).max())
    assert np.sqrt(gamma) * np.max(np.abs(np.linalg.eigvals(A - B @ K))) < 1.0
    optimum = lqr.optimal_cost(p, gamma)
    assert optimum == pytest.approx(np.trace(P) / 3.0, rel=1e-12)
    assert optimum == pytest.approx(lqr.policy_cost(p, K, gamma), rel=1e-8)


@pytest.mark.parametrize("stable", [True, False])
def test_riccati_policy_beats_random_and_perturbed_linear_policies(stable):
    """Random gains cost more (or diverge); perturbations of K cost more, by an amount that grows
    with the square of the perturbation (K is a minimum, not just a good policy)."""
    p = lqr.make_params(3, 2, 5, stable)
    K, _ = lqr.optimal(p, GAMMA)
    optimum = lqr.optimal_cost(p, GAMMA)
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert lqr.policy_cost(p, rng.normal(scale=np.abs(K).max(), size=K.shape), GAMMA) > optimum
    for _ in range(10):
        direction = rng.normal(size=K.shape)
        direction /= np.linalg.norm(direction)
        small = lqr.policy_cost(p, K + 0.01 * direction, GAMMA) - optimum
        double = lqr.policy_cost(p, K + 0.02 * direction, GAMMA) - optimum
        assert small > 0 and double / small == pytest.approx(4.0, rel=0.05)
    assert lqr.policy_cost(p, np.zeros_like(K), GAMMA) > 1.3 * optimum  # doing nothing is far off
    if not stable:
        assert lqr.policy_cost(p, np.zeros_like(K), GAMMA) == np.inf


def _mean_and_error(costs: np.ndarray) -> tuple[float, float]:
    return float(costs.mean()), float(costs.std() / np.sqrt(len(costs)))


@pytest.mark.parametrize("n,m,stable,gamma", [(2, 1, True, 0.99), (8, 2, False, 1.0)])
def test_rollout_cost_matches_the_analytic_cost(n, m, stable, gamma):
    """The Riccati policy (and a perturbed linear policy) run in the env cost what the analytic
    formula says, within 4 standard errors over 8192 episodes."""
    p = lqr.make_params(n, m, 0, stable)
    K, _ = lqr.optimal(p, gamma)
    horizon = 100
    key = jax.random.key(7)
    mean, error = _mean_and_error(lqr.rollout_cost(p, lqr.linear_policy(K), key, gamma, 8192, horizon))
    analytic = lqr.optimal_cost(p, gamma, horizon)
    assert abs(mean - analytic) < 4 * error, (mean, analytic, error)
    assert analytic == pytest.approx(lqr.optimal_cost(p, gamma), rel=1e-4)  # the closed loop decays within 100 steps
    worse = K * 0.7
    costs = lqr.rollout_cost(p, lqr.linear_policy(worse), key, gamma, 8192, horizon)
    mean_worse, error_worse = _mean_and_error(costs)
    assert abs(mean_worse - lqr.policy_cost(p, worse, gamma, horizon)) < 4 * error_worse
    assert mean_worse > mean  # same key: the same initial states, so the comparison is paired


def test_optimal_cost_refuses_bounds_that_clip_the_riccati_policy():
    p = lqr.make_params(2, 1, 0)
    tight = p.replace(action_bound=p.action_bound / (2 * lqr.ACTION_MARGIN))
    assert not lqr.riccati_fits(tight, GAMMA)
    with pytest.raises(ValueError, match="leaves the action or state bounds"):
        lqr.optimal_cost(tight, GAMMA)
    with pytest.raises(ValueError, match="gamma must lie in"):
        lqr.optimal(p, 1.5)


# ---------------------------------------------------------------------------------------------
# learning (slow)

# PPO on the default LQR (n = 2, m = 1, seed 0, stable), gamma 0.99: 16 envs x 50 steps (one
# episode each per update), 8 epochs of 4 minibatches, no entropy bonus, std e^-1 at the start.
# The Riccati policy's discounted cost is 2.56 and doing nothing costs 5.66 (gap +121%). After 200k
# steps the gaps measured were 0.2% to 4.3% over 8 seeds (2 each from key(0) to key(3)), about 13 s
# per pair of seeds with compile. SAC also gets there (0.3% to 4.1% over 8 seeds after 10k steps
# with 64x64 networks, lr 1e-3, tau 0.02, batches of 128) but takes about four times as long.
PPO_LQR = dict(
    env="LQR",
    total_timesteps=200_000,
    num_envs=16,
    num_steps=50,
    num_minibatches=4,
    update_epochs=8,
    ent_coef=0.0,
    lr=1e-3,
    log_std_init=-1.0,
    hidden=(64, 64),
    gamma=GAMMA,
)


@pytest.mark.slow
def test_ppo_reaches_within_10_percent_of_the_riccati_cost_at_n2():
    """2 seeds vmapped in one program; each trained policy (deterministic) and the Riccati policy
    are rolled out on the same 2048 initial states for 200 steps, and the gap is their ratio of
    mean discounted costs minus 1."""
    config = ppo.Config(**PPO_LQR)
    _env, p = envs.make("LQR")
    keys = jax.random.split(jax.random.key(0), 2)
    states = jax.jit(jax.vmap(lambda k: ppo.train(config, k).state))(keys)
    K, _ = lqr.optimal(p, GAMMA)
    eval_key, horizon = jax.random.key(100), 200
    riccati = lqr.rollout_cost(p, lqr.linear_policy(K), eval_key, GAMMA, 2048, horizon).mean()
    assert riccati == pytest.approx(lqr.optimal_cost(p, GAMMA), rel=0.03)
    gaps = []
    for i in range(len(keys)):
        state = jax.tree.map(lambda x, i=i: x[i], states)
        act = ppo.policy(config, state, deterministic=True)
        gaps.append(lqr.gap(lqr.rollout_cost(p, act, eval_key, GAMMA, 2048, horizon).mean(), riccati))
    print(f"PPO on LQR n=2: gap to the Riccati cost per seed {np.round(gaps, 4)}")
    assert all(g < 0.10 for g in gaps), gaps
    # On the same initial states nothing beats the Riccati policy (it is optimal from each one).
    assert all(g > -0.01 for g in gaps), gaps
