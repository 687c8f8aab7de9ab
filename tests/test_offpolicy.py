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
    config = dqn.Config(
        total_timesteps=400,
        num_envs=2,
        train_freq=2,
        gradient_steps=3,
        learning_starts=40,
        batch_size=8,
        buffer_size=200,
    )
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


def test_each_algorithm_writes_its_own_surface():
    """``init``, ``step``, ``train`` and ``policy`` are functions of the algorithm's module, each with
    its own docstring (``help(dqn.train)`` names DQN), not closures made by a binder."""
    from purejaxlib.algos import sac, td3

    for module, name in ((dqn, "DQN"), (td3, "TD3"), (sac, "SAC")):
        for fn_name in ("init", "step", "train", "policy"):
            fn = getattr(module, fn_name)
            assert fn.__module__ == module.__name__ and fn.__qualname__ == fn_name, (module, fn_name)
        for fn_name in ("init", "step", "train"):
            assert name in getattr(module, fn_name).__doc__, (module, fn_name)
        assert "q_mean" in module.step.__doc__ and "iteration" in module.step.__doc__
    assert not hasattr(offpolicy, "bind")


def test_metrics_carry_the_iteration_and_env_steps_after_each_step():
    config = dqn.Config(total_timesteps=64, num_envs=2, learning_starts=8, batch_size=4, buffer_size=64, n_step=1)
    algo = _counting_algorithm()
    state = offpolicy.init(config, jax.random.key(0), algo)
    step = jax.jit(lambda s: offpolicy.step(config, s, algo))
    for i in range(1, 7):  # through the warm-up (4 iterations) and into learning
        state, metrics = step(state)
        assert int(metrics["iteration"]) == int(state.iteration) == i
        assert int(metrics["env_steps"]) == 2 * i
        assert metrics["iteration"].dtype == metrics["env_steps"].dtype == jnp.int32


def test_continuous_actions_are_stored_in_unit_range_and_mapped_to_the_env_bounds():
    from purejaxlib.algos import td3

    config = td3.Config(env="Pendulum-v1")  # torque in [-2, 2]
    action = jnp.asarray([[-1.0], [0.0], [0.5], [1.0]])
    np.testing.assert_allclose(offpolicy.to_env_action(config, action), [[-2.0], [0.0], [1.0], [2.0]])
    discrete = jnp.asarray([0, 1, 1], jnp.int32)
    assert offpolicy.to_env_action(dqn.Config(), discrete) is discrete


def _lr_trace(tx, steps: int) -> np.ndarray:
    """The step size of each of ``steps`` updates of one scalar under a constant gradient of 1
    (Adam's normalized step is then the learning rate itself)."""
    params, state = jnp.float32(0.0), tx.init(jnp.float32(0.0))

    def body(carry, _):
        params, state = carry
        updates, state = tx.update(jnp.float32(1.0), state, params)
        return (params + updates, state), -updates

    _, sizes = jax.lax.scan(body, (params, state), None, length=steps)
    return np.asarray(sizes)


def test_anneal_lr_falls_linearly_to_zero_over_the_runs_gradient_steps():
    from purejaxlib.algos import td3

    config = dqn.Config(env="CartPole-v1", total_timesteps=4_000, learning_starts=1_000, anneal_lr=True, lr=1e-3)
    # 500 iterations of 8 envs, the first 125 random: 375 gradient steps
    assert config.num_gradient_steps == 375
    sizes = _lr_trace(offpolicy.make_tx(config), 380)
    np.testing.assert_allclose(sizes[0], 1e-3, rtol=1e-3)
    np.testing.assert_allclose(sizes[187], 1e-3 * (1 - 187 / 375), rtol=1e-2)
    assert np.all(sizes[375:] < 1e-9) and sizes[374] > 1e-7
    constant = _lr_trace(offpolicy.make_tx(config.replace(anneal_lr=False)), 380)
    np.testing.assert_allclose(constant, 1e-3, rtol=1e-3)
    # TD3's actor is updated every policy_delay-th step: it anneals over its own updates
    config = td3.Config(total_timesteps=2_000, learning_starts=1_000, anneal_lr=True, policy_delay=2)
    actor = _lr_trace(offpolicy.make_tx(config, every=2), 502)
    assert actor[499] > 1e-7 and np.all(actor[500:] < 1e-9)


def test_an_annealed_dqn_run_ends_its_schedule_on_its_last_gradient_step():
    config = dqn.Config(env="CartPole-v1", total_timesteps=2_000, learning_starts=400, anneal_lr=True, hidden=(16,))
    result = dqn.train(config, jax.random.key(0))
    counts = [leaf for leaf in jax.tree.leaves(result.state.learner.opt_state) if leaf.dtype == jnp.int32]
    assert counts and all(int(c) == config.num_gradient_steps for c in counts), counts
