"""Critic-free advantages (purejaxlib.returns): leave-one-out, group-relative, returns-to-go,
against plain references."""

from __future__ import annotations

import numpy as np
import pytest

from purejaxlib.returns import group_advantages, returns_to_go, rloo_advantages

RETURNS = np.array([[1.0, 5.0], [3.0, 5.0], [8.0, 5.0], [0.0, 5.0]], np.float32)  # K=4 rollouts, 2 groups


def test_rloo_matches_the_leave_one_out_definition():
    k = RETURNS.shape[0]
    ref = np.stack([RETURNS[i] - np.delete(RETURNS, i, axis=0).mean(axis=0) for i in range(k)])
    np.testing.assert_allclose(rloo_advantages(RETURNS), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn", [rloo_advantages, group_advantages,
                                lambda r: group_advantages(r, normalize_std=False)])
def test_group_advantages_have_zero_mean_and_identical_rewards_give_zero(fn):
    out = np.asarray(fn(RETURNS))
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_array_equal(out[:, 1], 0.0)  # the second group's returns are all 5
    assert np.all(np.isfinite(out))


def test_group_advantages_match_a_plain_reference():
    centered = RETURNS - RETURNS.mean(axis=0)
    np.testing.assert_allclose(group_advantages(RETURNS, normalize_std=False), centered, atol=1e-6)
    np.testing.assert_allclose(group_advantages(RETURNS)[:, 0], centered[:, 0] / (RETURNS[:, 0].std() + 1e-6), rtol=1e-5)


def test_rloo_refuses_a_group_of_one():
    with pytest.raises(ValueError, match="at least 2 rollouts, got 1"):
        rloo_advantages(RETURNS[:1])


def test_returns_to_go_restart_at_episode_ends():
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    terminated = np.array([False, True, False, False, False])
    truncated = np.array([False, False, False, True, False])
    g = 0.5
    ref = [1 + g * 2, 2, 3 + g * 4, 4, 5]  # episodes [0, 1], [2, 3], [4, rollout end]
    np.testing.assert_allclose(returns_to_go(rewards, terminated, truncated, g), ref, rtol=1e-6)
