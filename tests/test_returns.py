"""GAE (purejaxlib.returns.gae) against an independent plain-Python reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib.returns import gae


def reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Plain Python loops in float64: walk each env's rollout backwards.

    delta_t = r_t + gamma * (1 - term_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lam * (1 - (term_t or trunc_t)) * A_{t+1}
    """
    T, N = len(rewards), len(rewards[0])
    adv = [[0.0] * N for _ in range(T)]
    for n in range(N):
        adv_next = 0.0
        for t in reversed(range(T)):
            term = bool(terminated[t][n])
            ended = term or bool(truncated[t][n])
            delta = (
                float(rewards[t][n]) + gamma * (0.0 if term else 1.0) * float(next_values[t][n]) - float(values[t][n])
            )
            adv_next = delta + gamma * lam * (0.0 if ended else 1.0) * adv_next
            adv[t][n] = adv_next
    adv = np.asarray(adv, np.float64)
    return adv, adv + np.asarray(values, np.float64)


def random_rollout(seed: int, T: int = 20, N: int = 3):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    next_values = rng.normal(size=(T, N)).astype(np.float32)
    terminated = rng.random((T, N)) < 0.1
    truncated = rng.random((T, N)) < 0.1
    # Make sure every kind of episode end occurs mid-rollout, whatever the draw.
    truncated[7, 0], terminated[7, 0] = True, False  # env 0: time limit at t=7
    terminated[12, 1], truncated[12, 1] = True, False  # env 1: terminal state at t=12
    terminated[5, 2] = truncated[5, 2] = True  # env 2: both at t=5 -> terminated wins
    return rewards, values, next_values, terminated, truncated


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 0.5), (0.97, 1.0), (0.8, 0.0)])
def test_gae_matches_reference_on_random_rollouts(seed, gamma, lam):
    rewards, values, next_values, terminated, truncated = random_rollout(seed)
    adv, targets = gae(
        jnp.asarray(rewards),
        jnp.asarray(values),
        jnp.asarray(next_values),
        jnp.asarray(terminated),
        jnp.asarray(truncated),
        gamma,
        lam,
    )
    ref_adv, ref_targets = reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    assert adv.shape == targets.shape == (20, 3)
    np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(targets), ref_targets, rtol=1e-5, atol=1e-5)


def test_gae_under_jit_with_traced_gamma_and_lambda():
    rewards, values, next_values, terminated, truncated = random_rollout(3)
    fn = jax.jit(gae)
    gamma, lam = np.float32(0.93), np.float32(0.9)
    adv, targets = fn(rewards, values, next_values, terminated, truncated, gamma, lam)
    ref_adv, ref_targets = reference_gae(rewards, values, next_values, terminated, truncated, float(gamma), float(lam))
    np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(targets), ref_targets, rtol=1e-5, atol=1e-5)


def test_gae_hand_computed_tiny_case():
    """T=3, gamma=0.5, lam=0.5; four envs, all with the same numbers, differing only in how
    (and whether) the episode ends at t=1. All values are exact binary fractions.

    rewards [1, 2, 3], values V(s_t) [10, 20, 30], next_values V(s'_t) [20, 100, 40]:
    at t=1 the successor is a final observation worth 100, while s_2 = 30 is the reset state.
    deltas without ends: d2 = 3 + .5*40 - 30 = -7, d1 = 2 + .5*100 - 20 = 32, d0 = 1 + .5*20 - 10 = 1.
    """
    T = 3
    rewards = np.tile(np.array([[1.0], [2.0], [3.0]], np.float32), (1, 4))
    values = np.tile(np.array([[10.0], [20.0], [30.0]], np.float32), (1, 4))
    next_values = np.tile(np.array([[20.0], [100.0], [40.0]], np.float32), (1, 4))
    terminated = np.zeros((T, 4), bool)
    truncated = np.zeros((T, 4), bool)
    # column 0: no episode end; 1: truncated at t=1; 2: terminated at t=1; 3: both at t=1
    truncated[1, 1] = True
    terminated[1, 2] = True
    terminated[1, 3] = truncated[1, 3] = True
    adv, targets = gae(rewards, values, next_values, terminated, truncated, 0.5, 0.5)
    adv = np.asarray(adv)

    # no end: A2 = -7, A1 = 32 + .25 * -7 = 30.25, A0 = 1 + .25 * 30.25 = 8.5625
    np.testing.assert_array_equal(adv[:, 0], [8.5625, 30.25, -7.0])
    # truncated: bootstrap from the final observation (100), but the trace stops: A1 = 32,
    # A0 = 1 + .25 * 32 = 9
    np.testing.assert_array_equal(adv[:, 1], [9.0, 32.0, -7.0])
    # terminated: no bootstrap: A1 = 2 - 20 = -18, A0 = 1 + .25 * -18 = -3.5
    np.testing.assert_array_equal(adv[:, 2], [-3.5, -18.0, -7.0])
    # both flags: terminated wins (no bootstrap)
    np.testing.assert_array_equal(adv[:, 3], adv[:, 2])
    np.testing.assert_array_equal(np.asarray(targets), adv + values)


def test_gae_lambda_one_without_episode_ends_is_return_to_go_minus_value():
    rng = np.random.default_rng(7)
    T, N, gamma = 20, 3, 0.9
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    last_value = rng.normal(size=(N,)).astype(np.float32)
    # consistent successors: V(s'_t) = V(s_{t+1}), and V(s_T) bootstraps the tail
    next_values = np.concatenate([values[1:], last_value[None]], axis=0)
    no_end = np.zeros((T, N), bool)
    adv, targets = gae(rewards, values, next_values, no_end, no_end, gamma, 1.0)

    returns = np.zeros((T, N), np.float64)
    for n in range(N):
        g = float(last_value[n])
        for t in reversed(range(T)):
            g = float(rewards[t, n]) + gamma * g
            returns[t, n] = g
    np.testing.assert_allclose(np.asarray(adv), returns - values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(targets), returns, rtol=1e-5, atol=1e-5)


def test_gae_lambda_zero_is_one_step_td_error():
    rewards, values, next_values, terminated, truncated = random_rollout(4)
    adv, _ = gae(rewards, values, next_values, terminated, truncated, 0.9, 0.0)
    td = rewards + 0.9 * (1.0 - terminated) * next_values - values
    np.testing.assert_allclose(np.asarray(adv), td, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn", ["gae", "q_lambda"])
def test_rollout_arrays_of_mismatched_shapes_are_refused_with_their_names(fn):
    import purejaxlib.returns as returns

    t, n = 5, 3
    ok, short = jnp.zeros((t, n)), jnp.zeros((t - 1, n))
    flags = jnp.zeros((t, n), bool)
    args = (ok, ok, short, flags, flags) if fn == "gae" else (ok, short, flags, flags)
    with pytest.raises(ValueError, match=rf"returns\.{fn} .*\[T, \.\.\.\].*\(4, 3\)"):
        getattr(returns, fn)(*args, 0.99, 0.95)
    with pytest.raises(ValueError, match="scalar gamma"):  # a per-env gamma is not a discount
        getattr(returns, fn)(*((ok,) * (len(args) - 2)), flags, flags, jnp.full((n,), 0.99), 0.95)
