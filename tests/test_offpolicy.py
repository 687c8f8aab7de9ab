"""The shared off-policy loop: warm-up, update-to-data ratio, and the gradient-step numbering."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from purejaxlib import offpolicy
from purejaxlib.algos import dqn


def _counting_algorithm() -> offpolicy.Algorithm:
    """A learner that only counts its updates and reports the step number it was given."""

    def init_learner(config, key, obs):
        return jnp.int32(0)

    def explore(config, learner, obs, key, fraction):
        return offpolicy.random_action(config, key, config.num_envs)

    def update(config, learner, batch, key, step):
        count = learner + 1
        return count, {"step_error": (step - count).astype(jnp.float32), "reward": batch.reward.mean()}

    return offpolicy.Algorithm(init_learner, explore, update)


def test_step_numbers_match_each_seeds_update_count_under_vmap():
    config = dqn.Config(total_timesteps=400, num_envs=2, train_freq=2, gradient_steps=3, learning_starts=40,
                        batch_size=8, buffer_size=200)
    algo = _counting_algorithm()
    result = jax.jit(jax.vmap(lambda k: offpolicy.train(config, k, algo)))(jax.random.split(jax.random.key(0), 3))
    warmup, total = config.warmup_iterations, config.num_iterations
    assert (warmup, total) == (10, 100)
    np.testing.assert_array_equal(np.asarray(result.state.learner), (total - warmup) * config.gradient_steps)
    errors = np.asarray(result.metrics["step_error"])
    assert np.isnan(errors[:, :warmup]).all()  # no updates during warm-up
    np.testing.assert_array_equal(errors[:, warmup:], 0.0)
    np.testing.assert_array_equal(np.asarray(result.metrics["env_steps"])[0], np.arange(1, total + 1) * 4)


def test_public_step_warms_up_then_learns():
    config = dqn.Config(total_timesteps=64, num_envs=2, learning_starts=8, batch_size=4, buffer_size=64, n_step=1)
    algo = _counting_algorithm()
    state = offpolicy.init(config, jax.random.key(0), algo)
    step = jax.jit(lambda s: offpolicy.step(config, s, algo))
    errors = []
    for _ in range(8):
        state, metrics = step(state)
        errors.append(float(metrics["step_error"]))
    assert np.isnan(errors[:4]).all() and errors[4:] == [0.0] * 4
    assert int(state.learner) == 4
