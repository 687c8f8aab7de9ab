"""purejaxlib.evaluate: complete episodes, truncation at max_steps, vmap over a sweep's members."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from conftest import small_config

import purejaxlib
from purejaxlib import experiment
from purejaxlib.algos import dqn, ppo


def test_cartpole_episode_returns_equal_lengths():
    """CartPole pays 1 per step, so every finished episode's return equals its length."""
    config = small_config(updates=1)
    state = ppo.init(config, jax.random.key(0))
    result = jax.jit(lambda s, k: purejaxlib.evaluate(config, s, k, 8))(state, jax.random.key(1))
    assert result.returns.shape == (8,)
    assert bool(result.finished.all())
    np.testing.assert_array_equal(np.asarray(result.returns), np.asarray(result.lengths))
    assert len(set(np.asarray(result.lengths).tolist())) > 1  # independent resets, not 8 copies


def test_record_keeps_info_of_each_episodes_last_step():
    """CartPole's info["discount"] is 0 on a terminal step and 1 before: an untrained policy's
    episodes all fall, so each episode's recorded last-step discount is 0."""
    config = small_config(updates=1)
    state = ppo.init(config, jax.random.key(0))
    result = purejaxlib.evaluate(config, state, jax.random.key(1), 8, record=("disc",))
    assert bool(result.finished.all()) and set(result.final_info) == {"discount"}
    np.testing.assert_array_equal(np.asarray(result.final_info["discount"]), 0.0)
    assert purejaxlib.evaluate(config, state, jax.random.key(1), 8).final_info == {}
    with pytest.raises(ValueError, match=r"no info entry .* has \['discount'"):
        purejaxlib.evaluate(config, state, jax.random.key(1), 8, record=("Achievements/",))


def test_max_steps_cuts_episodes_and_reports_unfinished():
    config = dqn.Config(total_timesteps=2_000, learning_starts=100, buffer_size=500)
    state = dqn.init(config, jax.random.key(0))
    result = purejaxlib.evaluate(config, state, jax.random.key(1), 4, max_steps=3)
    assert not bool(result.finished.any())
    np.testing.assert_array_equal(np.asarray(result.lengths), 3)


def test_vmaps_over_sweep_members():
    config = small_config(updates=1)
    keys = jax.random.split(jax.random.key(0), 3)
    states = jax.vmap(lambda k: ppo.init(config, k))(keys)
    batched = jax.jit(jax.vmap(lambda s, k: purejaxlib.evaluate(config, s, k, 4).returns))(states, keys)
    assert batched.shape == (3, 4)
    alone = purejaxlib.evaluate(config, jax.tree.map(lambda x: x[1], states), keys[1], 4).returns
    np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(alone))


def test_rejects_bad_episode_count():
    config = small_config(updates=1)
    with pytest.raises(ValueError, match="episodes"):
        purejaxlib.evaluate(config, ppo.init(config, jax.random.key(0)), jax.random.key(1), 0)


# make test-all: compiles a two-program sweep of its own; make test keeps the vmapped evaluation tests
@pytest.mark.slow
def test_evaluate_sweep_places_every_member_on_the_grid():
    config = small_config(updates=1)
    result = purejaxlib.sweep(ppo.train, config, seeds=2, lr=[1e-3, 3e-3], num_envs=[2, 4])
    key = jax.random.key(7)
    evaluation = purejaxlib.evaluate_sweep(result, key, episodes=3)
    assert evaluation.returns.shape == evaluation.lengths.shape == (2, 2, 2, 3)
    # Member (lr=3e-3, num_envs=4, seed 1): program 1 (num_envs=4), member 1 * 2 + 1 of its batch.
    program = result.programs[1]
    state = jax.tree.map(lambda x: x[1, 1], program["state"])
    member_config = jax.tree.map(lambda x: x[1, 1], program["config"])
    alone = purejaxlib.evaluate(member_config, state, jax.random.fold_in(jax.random.fold_in(key, 1), 3), 3)
    np.testing.assert_array_equal(evaluation.lengths[1, 1, 1], np.asarray(alone.lengths))
    assert float(member_config.lr) == pytest.approx(3e-3) and member_config.num_envs == 4


# ---------------------------------------------------------------------------------------------
# periodic evaluation inside run_experiment's compiled chunks


def test_periodic_evaluation_is_reported_at_its_iterations_and_equals_evaluate(tmp_path):
    """eval_every=2 over 4 updates: evaluations after updates 2 and 4 (NaN at 1 and 3), each
    equal to ``purejaxlib.evaluate`` of that update's state (read back from its checkpoint) with
    key ``eval_key(seed key, update)``."""
    from purejaxlib.checkpoint import Checkpoints
    from purejaxlib.evaluation import eval_key

    config = small_config(updates=4).replace(log_interval=1)
    result = purejaxlib.run_experiment(
        ppo, config, seeds=2, out=tmp_path, eval_every=2, eval_episodes=3, checkpoint_every=2, progress_bar=False
    )
    iterations = result.metrics["iteration"]
    np.testing.assert_array_equal(iterations, [[1, 2, 3, 4]] * 2)
    evals = result.metrics["eval_return"]
    assert np.isnan(evals[:, [0, 2]]).all() and np.isfinite(evals[:, [1, 3]]).all()
    assert np.isfinite(result.metrics["eval_length"][:, [1, 3]]).all()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sorted((r["update"], r["seed"]) for r in rows if r["eval_return"] is not None) == [
        (2, 0),
        (2, 1),
        (4, 0),
        (4, 1),
    ]

    like = jax.eval_shape(
        jax.vmap(ppo.init),
        jax.tree.map(lambda x: np.broadcast_to(x, (2,) + np.shape(x)), config),
        jax.random.split(jax.random.key(0), 2),
    )
    ckpt = Checkpoints(tmp_path / "checkpoints" / "program-0")
    try:
        for update in (2, 4):
            states = ckpt.read_state(update, like, ckpt.read_meta(update))
            for seed in (0, 1):
                state = jax.tree.map(lambda x, s=seed: x[s], states)
                alone = purejaxlib.evaluate(config, state, eval_key(jax.random.key(seed), update), 3)
                assert evals[seed, update - 1] == pytest.approx(float(np.mean(alone.returns)), abs=1e-4), (update, seed)
    finally:
        ckpt.close()
    summary = experiment.summarize(result)
    assert summary["final_eval_return"][1] == pytest.approx(evals[1, 3])  # 10% of 2 evaluations: the last


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eval_every=-1), "eval_every must be >= 0"),
        (dict(eval_every=3, log_interval=2), r"eval_every \(3\) must be a multiple of log_interval \(2\)"),
        (dict(eval_every=2, eval_episodes=0), "eval_episodes must be >= 1"),
    ],
)
def test_periodic_evaluation_bad_settings_name_the_field(kwargs, match):
    with pytest.raises(purejaxlib.ConfigError, match=match):
        purejaxlib.run_experiment(ppo, small_config(updates=4), progress_bar=False, **kwargs)
