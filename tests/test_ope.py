"""Off-policy evaluation (purejaxlib.ope) against values known exactly or measured by running the
policy: on a probe with a known value each importance-sampling estimator's error shrinks as the
data grows and FQE/doubly robust are exact; on LQR FQE's error against the Riccati value shrinks
as the data grows; on CartPole FQE and doubly robust land within 5% of the Monte Carlo value of
the target policy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import offline, ope

PROBE = "Probe5-ActionObservationReward"  # obs +-1, one step, reward +1 for the right action, -1 otherwise
EPSILON = 0.2
TRUE_PROBE_VALUE = (1 - EPSILON) * 1.0 + EPSILON * 0.0  # a uniform pick is right half the time


def right(obs: jax.Array, key: jax.Array) -> jax.Array:
    del key
    return (obs[..., 0] > 0).astype(jnp.int32)


def probe_data(n: int, seed: int) -> offline.Dataset:
    return offline.collect(PROBE, offline.behaviour(PROBE, None), jax.random.key(seed), n, 8)


@pytest.fixture(scope="module")
def probe_pool() -> offline.Dataset:
    """6 x 4096 one-step episodes, cut into disjoint datasets of each size."""
    return probe_data(6 * 4096, 0)


@pytest.mark.parametrize("weighted", [False, True])
def test_importance_sampling_error_shrinks_with_data(weighted, probe_pool):
    probs = ope.target_probs(right, 2, EPSILON)
    errors = {}
    for n in (64, 4096):
        parts = [offline.select(probe_pool, np.arange(s * n, (s + 1) * n)) for s in range(6)]
        estimates = [ope.importance_sampling(part, probs, 0.99, weighted=weighted) for part in parts]
        errors[n] = np.mean([abs(e.value - TRUE_PROBE_VALUE) for e in estimates])
        widths = np.mean([e.high - e.low for e in estimates])
        assert all(e.episodes == n for e in estimates)
        errors[n, "width"] = widths
    assert errors[4096] < errors[64] / 2, errors
    assert errors[4096, "width"] < errors[64, "width"] / 4, errors  # intervals shrink like 1/sqrt(n)


def test_fitted_q_and_doubly_robust_are_exact_on_the_probe():
    probs = ope.target_probs(right, 2, EPSILON)
    data = probe_data(512, 0)
    fitted = ope.fitted_q(data, PROBE, probs, 0.99, jax.random.key(0), steps=2_000)
    assert fitted.estimate.value == pytest.approx(TRUE_PROBE_VALUE, abs=0.02)
    q = np.asarray(fitted.q(jnp.asarray([[1.0], [-1.0]])))
    np.testing.assert_allclose(q, [[-1.0, 1.0], [1.0, -1.0]], atol=0.05)  # Q of each (obs, action)
    dr = ope.doubly_robust(data, probs, fitted, 0.99)
    assert dr.value == pytest.approx(TRUE_PROBE_VALUE, abs=0.02)
    assert dr.low <= TRUE_PROBE_VALUE + 0.02 and dr.high >= TRUE_PROBE_VALUE - 0.02


def test_importance_sampling_needs_logged_probabilities():
    data = probe_data(64, 0)
    with pytest.raises(offline.DatasetError, match="log_prob"):
        ope.importance_sampling(data.replace(log_prob=None), ope.target_probs(right, 2), 0.99)


@pytest.mark.slow  # ~35 s; make test keeps the probe tests of every estimator
def test_fqe_and_doubly_robust_value_a_cartpole_policy_within_5_percent():
    """Target: a scripted controller, epsilon-greedy at 0.1; data: the same controller at epsilon 0.3
    (20k transitions). Truth: 256 episodes of the target policy, discounted at 0.99."""
    env = "CartPole-v1"

    def controller(obs, key):
        del key
        return (obs[..., 2] + 0.3 * obs[..., 3] > 0).astype(jnp.int32)

    def target(obs, key):
        explore_key, pick_key = jax.random.split(key)
        uniform = jax.random.randint(pick_key, obs.shape[:1], 0, 2)
        return jnp.where(jax.random.uniform(explore_key, obs.shape[:1]) < 0.1, uniform, controller(obs, key))

    data = offline.collect(env, offline.behaviour(env, controller, epsilon=0.3), jax.random.key(1), 20_000, 8)
    probs = ope.target_probs(controller, 2, 0.1)
    truth = ope.true_value(env, target, jax.random.key(3), 0.99, 256).value
    fitted = ope.fitted_q(data, env, probs, 0.99, jax.random.key(0))
    dr = ope.doubly_robust(data, probs, fitted, 0.99)
    assert fitted.estimate.value == pytest.approx(truth, rel=0.05), (fitted.estimate, truth)
    assert dr.value == pytest.approx(truth, rel=0.05), (dr, truth)
    assert fitted.losses[-1] < fitted.losses.max()  # the regression converged from its peak


@pytest.mark.slow
def test_fqe_error_on_lqr_shrinks_with_data_towards_the_riccati_value():
    """FQE of the Riccati policy from noisy-controller data: its value is known analytically."""
    from purejaxlib import envs
    from purejaxlib.envs import lqr

    env, gamma = "LQR", 0.9
    _, params = envs.make(env)
    gain = jnp.asarray(lqr.optimal(params, gamma)[0], jnp.float32)  # u = -K x
    act = lambda obs, key=None: -obs @ gain.T
    truth = -lqr.optimal_cost(params, gamma)  # raises if the env's bounds would clip the policy
    errors, widths = {}, {}
    for steps in (400, 12_800):  # 8 and 256 episodes of 50 steps
        for seed in (0, 1):
            data = offline.collect(env, offline.behaviour(env, act, noise=0.2), jax.random.key(seed), steps, 8)
            est = ope.fitted_q(data, env, act, gamma, jax.random.key(seed + 10), steps=5_000).estimate
            errors.setdefault(steps, []).append(abs(est.value - truth) / abs(truth))
            widths.setdefault(steps, []).append(est.high - est.low)
    small, large = np.mean(errors[400]), np.mean(errors[12_800])
    assert large < 0.5 * small, errors
    assert large < 0.15, errors
    assert np.mean(widths[12_800]) < 0.5 * np.mean(widths[400]), widths
