"""purejaxlib.losses against plain references: numpy loops written from the definitions, on small
fixed inputs (float64 on the reference side)."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import losses


def huber(x: float, delta: float = 1.0) -> float:
    """The Huber function, from its definition."""
    return 0.5 * x * x if abs(x) <= delta else delta * (abs(x) - 0.5 * delta)


# ---------------------------------------------------------------------------------------------
# td_loss

ERRORS = np.array([[-3.0, -1.0, -0.25, 0.0], [0.5, 0.999, 1.5, 4.0]], np.float32)


def test_td_loss_huber_matches_reference():
    expected = np.mean([huber(float(e)) for e in ERRORS.ravel()])
    got = losses.td_loss(jnp.asarray(ERRORS), "huber")
    assert got.shape == ()
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_td_loss_mse_matches_reference():
    expected = np.mean([0.5 * float(e) ** 2 for e in ERRORS.ravel()])
    np.testing.assert_allclose(float(losses.td_loss(jnp.asarray(ERRORS), "mse")), expected, rtol=1e-6)


def test_td_loss_huber_and_mse_agree_only_on_small_errors():
    small = jnp.asarray([0.1, -0.7, 0.9])
    np.testing.assert_allclose(float(losses.td_loss(small, "huber")), float(losses.td_loss(small, "mse")), rtol=1e-6)
    big = jnp.asarray([3.0])
    assert float(losses.td_loss(big, "huber")) == pytest.approx(2.5)  # linear: |3| - 0.5
    assert float(losses.td_loss(big, "mse")) == pytest.approx(4.5)


def test_td_loss_unknown_kind():
    with pytest.raises(ValueError, match="huber"):
        losses.td_loss(jnp.zeros(3), "l1")


# ---------------------------------------------------------------------------------------------
# tanh_gaussian

# [3, 2]: moderate means and stds (row 0, 1) and a saturated row (2) where tanh(u) rounds to +-1
# in float32 and the naive log(1 - tanh(u)^2) is log(0).
MEAN = np.array([[0.3, -0.8], [1.2, 0.0], [9.0, -12.0]], np.float32)
LOG_STD = np.array([[-0.5, 0.2], [-1.0, -0.3], [-2.0, -3.0]], np.float32)


def test_tanh_gaussian_shapes_and_bounds():
    action, log_prob = losses.tanh_gaussian(jax.random.key(0), jnp.asarray(MEAN), jnp.asarray(LOG_STD))
    assert action.shape == (3, 2) and log_prob.shape == (3,)
    assert np.all(np.abs(np.asarray(action)) <= 1.0)
    assert np.all(np.isfinite(np.asarray(log_prob)))  # also in the saturated row


def test_tanh_gaussian_matches_distrax_transformed_normal():
    """Same key, same draw: distrax's Independent(Transformed(Normal, Tanh)) gives the sample and
    its log-density (computed on the forward pass, so it is stable where tanh saturates)."""
    key = jax.random.key(3)
    action, log_prob = losses.tanh_gaussian(key, jnp.asarray(MEAN), jnp.asarray(LOG_STD))
    dist = distrax.Independent(
        distrax.Transformed(distrax.Normal(jnp.asarray(MEAN), jnp.exp(jnp.asarray(LOG_STD))), distrax.Tanh()), 1
    )
    ref_action, ref_log_prob = dist.sample_and_log_prob(seed=key)
    np.testing.assert_allclose(np.asarray(action), np.asarray(ref_action), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(log_prob), np.asarray(ref_log_prob), rtol=1e-5, atol=1e-4)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_tanh_gaussian_log_prob_is_the_density_of_its_samples():
    """Independent of how the sample was drawn: the density of A = tanh(U), U ~ N(m, s), at the
    returned action, as a finite difference of its CDF P(A <= a) = Phi((atanh(a) - m) / s)."""
    mean, log_std = MEAN[:2], LOG_STD[:2]  # unsaturated rows (atanh is exact enough in float64)
    for seed in range(3):
        action, log_prob = losses.tanh_gaussian(jax.random.key(seed), jnp.asarray(mean), jnp.asarray(log_std))
        action = np.asarray(action, np.float64)
        for row in range(2):
            expected = 0.0
            for dim in range(2):
                a, m, s = action[row, dim], float(mean[row, dim]), math.exp(float(log_std[row, dim]))
                h = 1e-5
                cdf = lambda x, m=m, s=s: _normal_cdf((math.atanh(x) - m) / s)
                expected += math.log((cdf(a + h) - cdf(a - h)) / (2 * h))
            np.testing.assert_allclose(float(log_prob[row]), expected, rtol=1e-4, atol=1e-4)


def test_tanh_gaussian_samples_follow_the_squashed_normal():
    """Empirical CDF of 20k draws against Phi((atanh(a) - m) / s) at a few points; the standard
    error of each empirical value is below 0.0036, so 0.02 is over five of them."""
    mean = jnp.full((20_000, 1), 0.4)
    log_std = jnp.full((20_000, 1), math.log(0.7))
    action, _ = losses.tanh_gaussian(jax.random.key(11), mean, log_std)
    action = np.asarray(action)[:, 0]
    for a in (-0.8, -0.3, 0.0, 0.4, 0.9):
        expected = _normal_cdf((math.atanh(a) - 0.4) / 0.7)
        assert abs(np.mean(action <= a) - expected) < 0.02, a


# ---------------------------------------------------------------------------------------------
# quantile_huber_loss


def reference_quantile_huber(pred: np.ndarray, target: np.ndarray, kappa: float) -> float:
    """``pred [B, M]``, ``target [B, K]``: mean over b, i, j of
    |tau_i - 1{u < 0}| * huber_kappa(u) / kappa with u = target_j - pred_i, tau_i = (2i + 1) / 2M."""
    batch, num = pred.shape
    total, count = 0.0, 0
    for b in range(batch):
        for i in range(num):
            tau = (2 * i + 1) / (2 * num)
            for j in range(target.shape[1]):
                u = float(target[b, j]) - float(pred[b, i])
                weight = abs(tau - (1.0 if u < 0 else 0.0))
                total += weight * huber(u, kappa) / kappa
                count += 1
    return total / count


@pytest.mark.parametrize("kappa", [1.0, 0.5, 2.0])
def test_quantile_huber_loss_matches_reference(kappa):
    rng = np.random.default_rng(0)
    pred = rng.normal(0.0, 2.0, (3, 4)).astype(np.float32)  # differences on both sides of kappa
    target = rng.normal(0.5, 2.0, (3, 6)).astype(np.float32)
    got = losses.quantile_huber_loss(jnp.asarray(pred), jnp.asarray(target), kappa)
    assert got.shape == ()
    np.testing.assert_allclose(float(got), reference_quantile_huber(pred, target, kappa), rtol=1e-5)


def test_quantile_huber_loss_leading_axes_are_averaged():
    """A critic axis in front ([N, B, M] vs [N, B, K]) is just more rows of the same mean."""
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(2, 3, 5)).astype(np.float32)
    target = rng.normal(size=(2, 3, 7)).astype(np.float32)
    got = losses.quantile_huber_loss(jnp.asarray(pred), jnp.asarray(target))
    expected = reference_quantile_huber(pred.reshape(6, 5), target.reshape(6, 7), 1.0)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_quantile_huber_loss_asymmetric_weights():
    """Four quantiles at 0 (tau = 1/8, 3/8, 5/8, 7/8) against one target sample: a target above
    them (under-estimate) costs tau_i * huber, one below (over-estimate) costs (1 - tau_i) * huber,
    so a high quantile is pulled up harder than down."""
    taus = np.array([1, 3, 5, 7]) / 8
    pred = jnp.zeros((1, 4))
    for target, weights in ((0.5, taus), (-0.5, 1 - taus)):
        got = losses.quantile_huber_loss(pred, jnp.full((1, 1), target))
        np.testing.assert_allclose(float(got), np.mean(weights * 0.5 * 0.25), rtol=1e-6)
    # per quantile: the gradient on each prediction has the weight's asymmetry
    grad_up = np.asarray(jax.grad(losses.quantile_huber_loss)(pred, jnp.full((1, 1), 0.5)))[0]
    grad_down = np.asarray(jax.grad(losses.quantile_huber_loss)(pred, jnp.full((1, 1), -0.5)))[0]
    np.testing.assert_allclose(grad_up, -taus * 0.5 / 4, rtol=1e-6)
    np.testing.assert_allclose(grad_down, (1 - taus) * 0.5 / 4, rtol=1e-6)


def test_quantile_huber_loss_minimizer_is_the_quantiles():
    """Gradient descent on the loss against 101 fixed samples 0, 0.01, ..., 1 (kappa small, so
    the loss is close to the pinball loss) moves the predictions to the samples' tau-quantiles."""
    target = jnp.linspace(0.0, 1.0, 101)[None]
    kappa = 1e-3

    def step(pred, _):
        # the gradient on each prediction is at most 1/M in size: steps of at most 0.002
        return pred - 0.002 * 4 * jax.grad(losses.quantile_huber_loss)(pred, target, kappa), None

    pred, _ = jax.lax.scan(step, jnp.zeros((1, 4)), None, length=4000)
    np.testing.assert_allclose(np.asarray(pred)[0], [0.125, 0.375, 0.625, 0.875], atol=0.011)


# ---------------------------------------------------------------------------------------------
# truncated_quantiles


def reference_truncated(quantiles: np.ndarray, drop: int) -> np.ndarray:
    """For each batch row: every critic's atoms in one list, sorted, the ``drop`` largest removed."""
    num_critics, batch, num = quantiles.shape
    rows = []
    for b in range(batch):
        pooled = sorted(float(quantiles[n, b, i]) for n in range(num_critics) for i in range(num))
        rows.append(pooled[: num_critics * num - drop])
    return np.asarray(rows)


@pytest.mark.parametrize("drop", [0, 1, 5, 11])
def test_truncated_quantiles_matches_reference(drop):
    rng = np.random.default_rng(2)
    quantiles = rng.normal(size=(3, 2, 4)).astype(np.float32)
    got = np.asarray(losses.truncated_quantiles(jnp.asarray(quantiles), drop))
    assert got.shape == (2, 12 - drop)
    np.testing.assert_array_equal(got, reference_truncated(quantiles, drop))


def test_truncated_quantiles_pools_across_critics():
    """Critic 1 holds all the largest atoms: dropping 3 removes three of critic 1's atoms and
    none of critic 0's (dropping per critic would remove some of each)."""
    quantiles = jnp.asarray([[[0.0, 1.0, 2.0]], [[10.0, 11.0, 12.0]]])  # [N=2, B=1, M=3]
    np.testing.assert_array_equal(np.asarray(losses.truncated_quantiles(quantiles, 3)), [[0.0, 1.0, 2.0]])
    # the batch rows are kept apart
    two_rows = jnp.asarray([[[5.0, 1.0], [0.0, 2.0]], [[3.0, 4.0], [9.0, -1.0]]])  # [2, 2, 2]
    np.testing.assert_array_equal(
        np.asarray(losses.truncated_quantiles(two_rows, 1)), [[1.0, 3.0, 4.0], [-1.0, 0.0, 2.0]]
    )


# ---------------------------------------------------------------------------------------------
# ensemble_mse


def test_ensemble_mse_matches_reference():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(3, 5)).astype(np.float32)
    target = rng.normal(size=(5,)).astype(np.float32)
    expected = sum(np.mean([0.5 * (float(q[n, b]) - float(target[b])) ** 2 for b in range(5)]) for n in range(3))
    np.testing.assert_allclose(float(losses.ensemble_mse(jnp.asarray(q), jnp.asarray(target))), expected, rtol=1e-6)


def test_ensemble_mse_fits_each_critic_independently():
    """Each critic's gradient is its own error over the batch size, whatever the ensemble size."""
    rng = np.random.default_rng(4)
    q = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
    target = jnp.asarray(rng.normal(size=(6,)), jnp.float32)
    grad = np.asarray(jax.grad(losses.ensemble_mse)(q, target))
    np.testing.assert_allclose(grad, (np.asarray(q) - np.asarray(target)[None]) / 6, rtol=1e-5, atol=1e-7)
    grad_one = np.asarray(jax.grad(losses.ensemble_mse)(q[:1], target))
    np.testing.assert_allclose(grad_one, grad[:1], rtol=1e-6)


def test_shape_mismatches_fail_at_trace_time_with_the_expected_shapes():
    with pytest.raises(AssertionError, match=r"q \[N, B\] and target \[B\] must share B"):
        losses.ensemble_mse(jnp.zeros((2, 5)), jnp.zeros((4,)))
    with pytest.raises(AssertionError, match=r"q must be \[N, B\] and target \[B\]"):
        losses.ensemble_mse(jnp.zeros((5,)), jnp.zeros((5,)))
    with pytest.raises(AssertionError, match="quantiles must be"):
        losses.truncated_quantiles(jnp.zeros((2, 5)), 1)
    with pytest.raises(AssertionError, match="share their leading axes"):
        losses.quantile_huber_loss(jnp.zeros((3, 4)), jnp.zeros((2, 6)))
    with pytest.raises(AssertionError, match="mean and log_std"):
        losses.tanh_gaussian(jax.random.key(0), jnp.zeros((3, 2)), jnp.zeros((2,)))
