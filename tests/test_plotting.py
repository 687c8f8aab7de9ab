"""purejaxlib.plotting and the vectorized stats it draws with, on fake sweep results (no training)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from purejaxlib import plotting, stats
from purejaxlib.sweep import SweepResult


def fake_result(grid: dict[str, list], seeds: int = 5, points: int = 12, seed: int = 0) -> SweepResult:
    """A SweepResult with random ``episode_return`` and ``loss`` of shape ``[grid..., seeds, points]``."""
    rng = np.random.default_rng(seed)
    shape = tuple(len(v) for v in grid.values()) + (seeds, points)
    steps = np.broadcast_to(np.arange(1, points + 1) * 256.0, shape).copy()
    returns = rng.normal(size=shape).cumsum(axis=-1)
    returns[..., 0] = np.nan  # no episode ended yet at the first point
    metrics = {"episode_return": returns, "loss": rng.normal(size=shape), "env_steps": steps}
    return SweepResult(metrics, tuple(grid) + ("seed",), {**grid, "seed": list(range(seeds))}, [])


def assert_images(paths, stem):
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()


# ----------------------------------------------------------------------------- stats helpers


def test_nan_iqm_matches_iqm_on_the_finite_entries():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 6))
    x[:4, 1] = np.nan  # 5 finite
    x[:, 2] = np.nan  # none
    x[1:, 3] = np.nan  # 1 finite
    x[0, 4] = np.inf
    out = stats.nan_iqm(x, axis=0)
    for j in (0, 1, 3, 4, 5):
        column = x[:, j]
        assert out[j] == pytest.approx(stats.iqm(column[np.isfinite(column)]))
    assert np.isnan(out[2])
    assert np.allclose(stats.nan_iqm(x.T, axis=1), out, equal_nan=True)


def test_iqm_bands_agree_with_the_scalar_bootstrap():
    x = np.random.default_rng(1).normal(size=(10, 3)) * [1.0, 5.0, 0.1]
    point, low, high = stats.iqm_bands(x, reps=4000, seed=0)
    for j in range(3):
        p, lo, hi = stats.stratified_bootstrap_ci(x[:, j], reps=4000, seed=1)
        width = hi - lo
        assert point[j] == pytest.approx(p)
        assert low[j] == pytest.approx(lo, abs=0.1 * width) and high[j] == pytest.approx(hi, abs=0.1 * width)


def test_iqm_bands_constant_and_errors():
    point, low, high = stats.iqm_bands(np.full((4, 3), 2.0), reps=50)
    assert np.all(point == 2.0) and np.all(low == 2.0) and np.all(high == 2.0)
    with pytest.raises(ValueError, match="confidence"):
        stats.iqm_bands(np.zeros((3, 2)), confidence=1.0)
    with pytest.raises(ValueError, match="shape"):
        stats.iqm_bands(np.zeros(3))


# ----------------------------------------------------------------------------- curve_band


def test_curve_band_is_the_iqm_per_point_and_contains_it():
    values = np.random.default_rng(2).normal(size=(8, 20))
    iqm, low, high = plotting.curve_band(values, reps=500)
    for j in (0, 7, 19):
        assert iqm[j] == pytest.approx(stats.iqm(values[:, j]))
    assert np.all(low <= iqm) and np.all(iqm <= high) and np.all(low < high)
    # The same seed gives the same band.
    assert np.array_equal(plotting.curve_band(values, reps=500)[1], low)


def test_curve_band_ignores_nan_per_point():
    values = np.random.default_rng(3).normal(size=(6, 5))
    values[:, 0] = np.nan  # before any episode ended
    values[:3, 1] = np.nan  # 3 finite seeds
    values[1:, 2] = np.nan  # 1 finite seed: a line point, no band
    iqm, low, high = plotting.curve_band(values, reps=300)
    assert np.isnan(iqm[0]) and np.isnan(low[0]) and np.isnan(high[0])
    assert iqm[1] == pytest.approx(stats.iqm(values[3:, 1]))
    assert low[1] <= iqm[1] <= high[1]
    assert iqm[2] == values[0, 2] and np.isnan(low[2]) and np.isnan(high[2])
    assert np.all(np.isfinite(low[3:]))


def test_curve_band_with_one_seed_is_just_the_line():
    values = np.arange(6.0)[None]
    iqm, low, high = plotting.curve_band(values)
    assert np.array_equal(iqm, values[0]) and np.all(np.isnan(low)) and np.all(np.isnan(high))


def test_curve_steps_skip_padded_seeds():
    steps = np.array([[np.nan, 2.0, np.nan], [1.0, 2.0, np.nan]])
    assert np.allclose(plotting.curve_steps(steps), [1.0, 2.0, np.nan], equal_nan=True)


# ----------------------------------------------------------------------------- final scores, heatmap values


def test_final_return_is_the_mean_of_the_last_fraction_of_finite_points():
    x = np.array(
        [
            [np.nan, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],  # 10 finite: last 2 at 0.2
            [0.0, 1.0, 2.0, 3.0, 4.0, 100.0, np.nan, np.nan, np.nan, np.nan, np.nan],  # padded: last 1
            [np.nan] * 11,
        ]
    )
    scores = stats.final_return(x, final_fraction=0.2)
    assert scores[0] == pytest.approx(9.5) and scores[1] == pytest.approx(100.0 / 2 + 4.0 / 2)
    assert np.isnan(scores[2])
    assert stats.final_return(x[:1], final_fraction=1.0)[0] == pytest.approx(5.5)
    assert stats.final_return(x[:2])[1] == 100.0  # 10% of 6 points rounds up to the last one
    with pytest.raises(ValueError, match="final_fraction"):
        stats.final_return(x, final_fraction=0.0)


def test_heatmap_values_are_final_iqms_pooled_over_other_axes():
    result = fake_result({"lr": [1e-4, 3e-4, 1e-3], "hidden": [(64, 64), (128,)], "ent": [0.0, 0.01]})
    z = plotting.heatmap_values(result, x="ent", y="lr", final_fraction=0.25)
    assert z.shape == (2, 3)
    returns = result.metrics["episode_return"]  # [lr, hidden, ent, seed, points]
    for e, lr in [(0, 0), (1, 2)]:
        runs = returns[lr, :, e]  # [hidden, seed, points]; 11 finite points -> last 3
        expected = stats.iqm(runs[..., -3:].mean(axis=-1).reshape(-1))
        assert z[e, lr] == pytest.approx(expected)


# ----------------------------------------------------------------------------- written files


def test_learning_curves_write_png_and_svg(tmp_path):
    result = fake_result({"lr": [3e-4, 1e-3], "hidden": [(64, 64), (32,)]})
    assert_images(plotting.learning_curves(result, tmp_path / "curves", title="PPO", reps=200), "curves")
    svg = (tmp_path / "curves.svg").read_text()
    assert "IQM over 5 seeds, 95% bootstrap CI" in svg and "hidden=(64,64)" in svg
    # A suffix is replaced, not doubled; one seed and no grid axes also plot.
    single = fake_result({}, seeds=1)
    assert_images(plotting.learning_curves(single, tmp_path / "sub" / "one.png"), "one")
    assert "1 seed" in (tmp_path / "sub" / "one.svg").read_text()


def test_learning_curves_of_padded_runs(tmp_path):
    result = fake_result({"num_envs": [4, 8]}, seeds=3)
    for name in ("episode_return", "env_steps"):
        result.metrics[name][1, :, 8:] = np.nan  # the second static value ran fewer updates
    assert_images(plotting.learning_curves(result, tmp_path / "padded.svg", reps=100), "padded")


def test_sweep_heatmap_writes_png_and_svg(tmp_path):
    result = fake_result({"lr": [1e-4, 3e-4], "hidden": [(64, 64), (128,), (32,)], "gamma": [0.99]})
    paths = plotting.sweep_heatmap(result, tmp_path / "heat", x="lr", y="hidden", title="PPO")
    assert_images(paths, "heat")
    svg = paths[1].read_text()
    assert "all gamma pooled (5 runs per cell)" in svg and "(128)" in svg
    # Works on any object with the same attributes.
    plain = types.SimpleNamespace(metrics=result.metrics, axes=result.axes, grid=result.grid)
    assert_images(plotting.sweep_heatmap(plain, tmp_path / "plain.png", x="hidden", y="gamma"), "plain")


def test_bad_axes_and_metrics_are_named(tmp_path):
    result = fake_result({"lr": [1e-4, 3e-4], "ent": [0.0, 0.01]}, seeds=2, points=4)
    with pytest.raises(ValueError, match=r"x='gamma' is not a grid axis.*grid axes: lr, ent"):
        plotting.sweep_heatmap(result, tmp_path / "h", x="gamma", y="lr")
    with pytest.raises(ValueError, match=r"y='seed' is not a grid axis"):
        plotting.sweep_heatmap(result, tmp_path / "h", x="lr", y="seed")
    with pytest.raises(ValueError, match="x and y are both 'lr'"):
        plotting.sweep_heatmap(result, tmp_path / "h", x="lr", y="lr")
    with pytest.raises(ValueError, match=r"no metric 'reward'.*available metrics: env_steps, episode_return, loss"):
        plotting.sweep_heatmap(result, tmp_path / "h", x="lr", y="ent", metric="reward")
    with pytest.raises(ValueError, match="no metric 'reward'"):
        plotting.learning_curves(result, tmp_path / "c", metric="reward")
    assert not list(tmp_path.iterdir())


def test_format_value():
    assert plotting.format_value(3e-4) == "0.0003"
    assert plotting.format_value(np.float32(0.01)) == "0.01"
    assert plotting.format_value((64, 64)) == "(64,64)"
    assert plotting.format_value("tanh") == "tanh" and plotting.format_value(True) == "True"
