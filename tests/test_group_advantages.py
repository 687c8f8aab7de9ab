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


@pytest.mark.parametrize("fn", [rloo_advantages, group_advantages, lambda r: group_advantages(r, normalize_std=False)])
def test_group_advantages_have_zero_mean_and_identical_rewards_give_zero(fn):
    out = np.asarray(fn(RETURNS))
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_array_equal(out[:, 1], 0.0)  # the second group's returns are all 5
    assert np.all(np.isfinite(out))


def test_group_advantages_match_a_plain_reference():
    centered = RETURNS - RETURNS.mean(axis=0)
    np.testing.assert_allclose(group_advantages(RETURNS, normalize_std=False), centered, atol=1e-6)
    np.testing.assert_allclose(
        group_advantages(RETURNS)[:, 0], centered[:, 0] / (RETURNS[:, 0].std() + 1e-6), rtol=1e-5
    )


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


# --- The critic-free learner (ppo.Config.advantage): rollouts that start at a reset each update ---

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from purejaxlib import envs as envs_lib  # noqa: E402
from purejaxlib.algos import ppo  # noqa: E402
from purejaxlib.config import ConfigError  # noqa: E402
from purejaxlib.returns import (  # noqa: E402
    episode_returns_to_go,
    first_episode_mask,
    grouped_group_advantages,
    grouped_rloo_advantages,
    update_running_baseline,
)


def test_first_episode_mask_covers_each_env_up_to_its_first_end():
    done = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]], bool)  # [T=4, N=3]
    ref = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 0], [0, 1, 0]], np.float32)
    np.testing.assert_array_equal(first_episode_mask(done), ref)


def test_episode_returns_to_go_match_a_plain_loop():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(7, 3)).astype(np.float32)
    done = rng.random((7, 3)) < 0.3
    gamma = 0.9
    returns, mask = episode_returns_to_go(rewards, done, gamma)
    for n in range(3):
        end = int(np.argmax(done[:, n])) if done[:, n].any() else 6
        for t in range(7):
            ref = sum(gamma ** (u - t) * rewards[u, n] for u in range(t, end + 1)) if t <= end else 0.0
            assert float(returns[t, n]) == pytest.approx(ref, abs=1e-5)
            assert float(mask[t, n]) == (1.0 if t <= end else 0.0)


@pytest.mark.parametrize(
    "fn",
    [
        grouped_rloo_advantages,
        grouped_group_advantages,
        lambda r, k: grouped_group_advantages(r, k, normalize_std=False),
    ],
)
def test_grouped_advantages_are_per_time_step_per_group(fn):
    # [T=2, N=8]: groups of 4 consecutive envs; the second group's returns are all equal.
    returns = np.array([[1, 3, 8, 0, 5, 5, 5, 5], [2, 2, 2, 2, 0, 1, 2, 3]], np.float32)
    out = np.asarray(fn(returns, 4))
    grouped = out.reshape(2, 2, 4)
    np.testing.assert_allclose(grouped.mean(axis=2), 0.0, atol=1e-6)
    np.testing.assert_array_equal(out[0, 4:], 0.0)
    np.testing.assert_array_equal(out[1, :4], 0.0)
    assert np.all(np.isfinite(out))


def test_grouped_advantages_match_the_group_functions_applied_group_by_group():
    returns = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    rloo, group = grouped_rloo_advantages(returns, 4), grouped_group_advantages(returns, 4)
    for t in range(3):
        for g in range(2):
            members = slice(4 * g, 4 * g + 4)
            np.testing.assert_allclose(rloo[t, members], rloo_advantages(returns[t, members]), atol=1e-6)
            np.testing.assert_allclose(group[t, members], group_advantages(returns[t, members]), atol=1e-5)


def test_running_baseline_is_an_exponential_mean_per_step_and_skips_unreached_steps():
    baseline = np.array([1.0, 2.0, 3.0], np.float32)
    returns = np.array([[4.0, 6.0], [1.0, 0.0], [0.0, 0.0]], np.float32)
    mask = np.array([[1, 1], [1, 0], [0, 0]], np.float32)
    out = update_running_baseline(baseline, returns, mask, 0.75)
    np.testing.assert_allclose(out, [0.75 * 1 + 0.25 * 5, 0.75 * 2 + 0.25 * 1, 3.0], rtol=1e-6)


def test_grouped_vec_env_resets_each_group_to_one_state():
    env, params = envs_lib.make("CartPole-v1")
    vec = envs_lib.VecEnv(envs_lib.FlattenObservation(env), 8, group_size=4)
    obs, _ = vec.reset(jax.random.PRNGKey(3), params)
    obs = np.asarray(obs).reshape(2, 4, -1)
    np.testing.assert_array_equal(obs[:, 1:], np.broadcast_to(obs[:, :1], obs[:, 1:].shape))
    assert not np.allclose(obs[0, 0], obs[1, 0])


def _critic_free(advantage, **kw):
    fields = dict(
        advantage=advantage, num_envs=8, num_steps=64, num_minibatches=2, update_epochs=1, total_timesteps=3 * 8 * 64
    )
    if advantage in ("rloo", "group"):
        fields["group_size"] = 4
    return ppo.Config(**{**fields, **kw})


@pytest.fixture(scope="module")
def critic_free_runs():
    return {a: jax.jit(ppo.train)(_critic_free(a), jax.random.PRNGKey(0)) for a in ("reinforce", "rloo", "group")}


def test_critic_free_updates_learn_from_the_first_episode_only(critic_free_runs):
    for advantage, result in critic_free_runs.items():
        metrics = result.metrics
        frac = np.asarray(metrics["mask_frac"])
        # a random CartPole policy ends its first episode in ~20 of the 64 steps
        assert np.all((frac > 0.05) & (frac < 0.9)), (advantage, frac)
        assert np.all(np.asarray(metrics["value_loss"]) == 0.0)
        for name in ("loss", "pg_loss", "entropy", "ref_kl"):
            assert np.all(np.isfinite(np.asarray(metrics[name]))), (advantage, name)
    baseline = np.asarray(critic_free_runs["reinforce"].state.critic_free.baseline)
    assert baseline.shape == (64,) and baseline[0] > 5.0  # the running mean of returns from the reset


def _batch(obs: jax.Array, mask: jax.Array) -> ppo.Batch:
    """A 16-step CartPole batch: action 0, old log-prob -0.7, advantages spread over [-1, 1], ``mask``."""
    return ppo.Batch(obs, jnp.zeros(16, jnp.int32), jnp.full(16, -0.7), jnp.zeros(16), jnp.linspace(-1, 1, 16),
                     jnp.zeros(16), None, mask)  # fmt: skip


def test_ref_kl_penalty_adds_coef_times_the_kl_to_the_reference():
    config = _critic_free("group")
    state = ppo.init(config, jax.random.PRNGKey(1))
    leaves, treedef = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.PRNGKey(5), len(leaves))
    moved = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    new_state = state._replace(params=jax.tree.unflatten(treedef, moved))  # a policy away from the reference
    obs = jax.random.normal(jax.random.PRNGKey(2), (16, 4))
    batch = _batch(obs, jnp.ones(16))
    loss = lambda c: ppo.ppo_loss(c, new_state.params, batch, None, state.critic_free.ref_params)
    base, _ = loss(config.replace(ref_kl_coef=0.0))
    with_kl, aux = loss(config.replace(ref_kl_coef=3.0))
    p = jax.nn.softmax(ppo.apply(config, new_state.params, None, obs, None)[1].logits)
    q = jax.nn.softmax(ppo.apply(config, state.critic_free.ref_params, None, obs, None)[1].logits)
    ref_kl = float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1)))
    assert ref_kl > 0
    assert float(aux["ref_kl"]) == pytest.approx(ref_kl, rel=1e-4)
    assert float(with_kl - base) == pytest.approx(3.0 * ref_kl, rel=1e-4)
    _, at_ref = ppo.ppo_loss(config, state.critic_free.ref_params, batch, None, state.critic_free.ref_params)
    assert float(at_ref["ref_kl"]) == pytest.approx(0.0, abs=1e-7)


def test_masked_steps_do_not_reach_the_gradient():
    config = _critic_free("rloo")
    state = ppo.init(config, jax.random.PRNGKey(1))
    obs = jax.random.normal(jax.random.PRNGKey(2), (16, 4))
    mask = (jnp.arange(16) < 8).astype(jnp.float32)
    batch = _batch(obs, mask)
    grad = lambda b: jax.grad(lambda p: ppo.ppo_loss(config, p, b, None, state.critic_free.ref_params)[0])(state.params)
    changed = batch._replace(obs=batch.obs.at[8:].set(99.0), advantage=batch.advantage.at[8:].set(-50.0))
    for a, b in zip(jax.tree.leaves(grad(batch)), jax.tree.leaves(grad(changed))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# make test-all: the one-program sweep is covered for every algorithm by test_contract.py
@pytest.mark.slow
def test_sweep_over_the_kl_penalty_and_baseline_decay_is_one_program():
    import purejaxlib

    result = purejaxlib.sweep(
        ppo.train, _critic_free("group", num_steps=32, total_timesteps=3 * 8 * 32), seeds=1, ref_kl_coef=[0.0, 5.0]
    )
    assert len(result.programs) == 1
    metrics = result.programs[0]["metrics"]
    kl, loss = np.asarray(metrics["ref_kl"])[:, 0], np.asarray(metrics["loss"])[:, 0]
    assert np.all(kl >= 0.0) and np.all(kl[:, 0] < 1e-4)  # the first update starts at the reference
    assert np.all(np.isfinite(loss)) and not np.allclose(loss[0, 1:], loss[1, 1:])
    result = purejaxlib.sweep(
        ppo.train,
        _critic_free("reinforce", num_steps=32, total_timesteps=3 * 8 * 32),
        seeds=1,
        baseline_decay=[0.5, 0.99],
    )
    baselines = np.asarray(result.programs[0]["state"].critic_free.baseline)[:, 0]  # [2, num_steps]
    assert len(result.programs) == 1 and not np.allclose(baselines[0], baselines[1])


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(advantage="rloo", group_size=1), "needs group_size >= 2, got 1"),
        (dict(advantage="group"), "needs group_size >= 2, got 1"),
        (dict(advantage="rloo", group_size=3, num_envs=8), "num_envs=8 must be a multiple of group_size=3"),
        (dict(advantage="reinforce", group_size=4), "group_size: is used by advantage='rloo' or 'group' only"),
        (dict(ref_kl_coef=0.1), "goes with the critic-free advantages"),
        (dict(advantage="rloo", group_size=2, normalize_obs=True), "normalize_obs: .*restarts every env"),
        (dict(advantage="gradient"), "advantage: must be one of"),
    ],
)
def test_critic_free_bad_input_fails_at_construction(fields, match):
    with pytest.raises(ConfigError, match=match):
        ppo.Config(**fields)


@pytest.mark.learning
@pytest.mark.parametrize(
    "advantage",
    [pytest.param(mode, marks=pytest.mark.slow) for mode in ("reinforce", "rloo", "group")],
)  # make test keeps RLOO's reference regression check (tests/test_reference.py), which is cheaper
def test_critic_free_advantages_solve_cartpole(advantage):
    """No critic: 16 envs (4 groups of 4 for RLOO and group) restart every update and play 500
    steps, learning from each env's first episode. 800k steps, 2 seeds in one program. Measured
    (2026-12-02) final-10% returns per seed, seeds 0-7: REINFORCE 497.5-500, RLOO 493.2-498.6,
    group 490.7-497.5; the bar is CartPole's "solved" 475 for every seed."""
    import purejaxlib
    from purejaxlib import stats

    config = ppo.Config(
        advantage=advantage,
        group_size=4 if advantage != "reinforce" else 1,
        num_envs=16,
        num_steps=500,
        total_timesteps=800_000,
        ent_coef=0.0,
    )
    result = purejaxlib.sweep(ppo.train, config, seeds=2)
    returns = np.asarray(result.metrics["episode_return"], np.float64)
    final = stats.final_return(returns)
    assert np.all(final >= 475), f"{advantage}: final-10% returns per seed {final}"
    assert np.nanmean(returns[:, :5]) < 100
