"""The contract every algorithm keeps, checked once for all of them.

For each algorithm (PPO discrete and continuous, PQN, DQN, TD3, SAC, offline IQL, ES) on a tiny config: the same key
gives bitwise identical results, different keys differ, ``step`` repeated equals ``train``, a sweep
member equals the run alone, new traced values reuse the compiled program, and bad input (an
unknown field, a bad sweep value) fails before anything is traced. Each case compiles its ``train``
once for the whole module (``first_run``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest
from conftest import SMALL, key_data, tree_equal

import purejaxlib
from purejaxlib import ConfigError
from purejaxlib.algos import dqn, es, iql, ppo, pqn, sac, td3
from purejaxlib.config import UnknownFieldError

OFFPOLICY_TINY = dict(hidden=(16, 16), batch_size=8, buffer_size=256, learning_starts=32)
# episode statistics follow from the actions, so a sweep member reproduces them exactly
EXACT = ("episode_return", "episode_length", "episodes", "env_steps", "iteration")


def offline_data(env: str) -> str:
    """A small random-policy dataset of ``env`` written once per test process; its path."""
    import os
    import tempfile
    from pathlib import Path

    from purejaxlib import offline

    path = Path(tempfile.gettempdir()) / f"purejaxlib-contract-{env}-{os.getpid()}.npz"
    if not path.is_file():
        data = offline.collect(env, offline.behaviour(env, None), jax.random.key(0), 512, 4)
        offline.save(data, path)
    return str(path)


class Case(NamedTuple):
    module: Any
    config: Callable[[], Any]
    traced: dict[str, list[float]]  # traced fields and two values each, for sweeps and recompiles
    loss: str = "loss"  # the metric that shows the learner's updates


CASES = {
    "ppo": Case(
        ppo,
        lambda: ppo.Config(env="CartPole-v1", total_timesteps=192, **SMALL),
        dict(lr=[1e-3, 3e-3], gamma=[0.9, 0.99]),
    ),
    "ppo-continuous": Case(
        ppo,
        lambda: ppo.Config(env="Pendulum-v1", total_timesteps=192, normalize_obs=True, **SMALL),
        dict(lr=[1e-3, 3e-3], ent_coef=[0.0, 0.05]),
    ),
    "pqn": Case(
        pqn,
        lambda: pqn.Config(env="CartPole-v1", total_timesteps=192, hidden=(16, 16), **SMALL),
        dict(lr=[1e-3, 3e-3], gamma=[0.9, 0.99]),
    ),
    "dqn": Case(
        dqn,
        lambda: dqn.Config(
            env="CartPole-v1", total_timesteps=128, num_envs=2, target_update_interval=4, **OFFPOLICY_TINY
        ),
        dict(lr=[1e-3, 3e-3], tau=[0.5, 1.0]),
    ),
    "td3": Case(
        td3,
        lambda: td3.Config(env="Pendulum-v1", total_timesteps=96, **OFFPOLICY_TINY),
        dict(lr=[1e-3, 3e-3], tau=[0.005, 0.05]),
        "critic_loss",
    ),
    "iql-offline": Case(
        iql,
        lambda: iql.Config(
            env="CartPole-v1",
            hidden=(16, 16),
            batch_size=8,
            gradient_steps=2,
            offline_updates=16,
            dataset=offline_data("CartPole-v1"),
        ),
        dict(lr=[1e-3, 3e-3], expectile=[0.6, 0.9]),
        "critic_loss",
    ),
    "es": Case(
        es,
        lambda: es.Config(
            env="CartPole-v1",
            population_size=8,
            hidden=(8,),
            episode_steps=16,
            episodes_per_member=2,
            total_timesteps=3 * 8 * 2 * 16,
        ),
        dict(lr=[0.01, 0.05], sigma=[0.05, 0.2]),
        "fitness_std",
    ),
    "sac": Case(
        sac,
        lambda: sac.Config(env="Pendulum-v1", total_timesteps=96, **OFFPOLICY_TINY),
        dict(lr=[1e-3, 3e-3], gamma=[0.9, 0.99]),
        "critic_loss",
    ),
}


# In `make test-all` only (the 15-minute budget of `make test`): the offline loop's contract (make
# test keeps offline IQL's learning test); TD3 and DQN, whose replay loop is SAC's (checked here)
# and whose updates tests/test_td3.py and tests/test_dqn.py check; PQN, whose loop is on-policy
# like PPO's (checked here) and which tests/test_pqn.py and the PQN reference check train; continuous
# PPO, whose update is discrete PPO's (checked here) with a Gaussian head; ES, whose generation,
# resume and export tests/test_es.py checks.
SLOW_CASES = ("iql-offline", "td3", "dqn", "pqn", "ppo-continuous", "es")


@pytest.fixture(
    scope="module",
    params=[pytest.param(name, marks=pytest.mark.slow) if name in SLOW_CASES else name for name in CASES],
)
def case(request) -> tuple[str, Case, Any]:
    name = request.param
    return name, CASES[name], CASES[name].config()


@pytest.fixture(scope="module")
def first_run(case):
    """``jit(train)`` and its result for key 0, compiled once per case."""
    _, c, config = case
    fn = jax.jit(c.module.train)
    return fn, jax.block_until_ready(fn(config, jax.random.key(0)))


def _learned(c: Case, config: Any, metrics: dict[str, Any]) -> np.ndarray:
    """The loss of the updates that learned (off-policy warm-up iterations do not): [..., updates]."""
    return np.asarray(metrics[c.loss])[..., getattr(config, "warmup_iterations", 0) :]


def _float_leaves(tree: Any) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(key_data(tree)) if np.issubdtype(np.asarray(x).dtype, np.floating)]


def test_same_key_gives_bitwise_identical_results(case, first_run):
    _, c, config = case
    _, result = first_run
    again = jax.jit(c.module.train)(config, jax.random.key(0))
    assert tree_equal(result.metrics, again.metrics)
    assert tree_equal(key_data(result.state), key_data(again.state))


def test_different_keys_give_different_results(case, first_run):
    _, c, config = case
    fn, result = first_run
    other = fn(config, jax.random.key(1))
    assert not np.array_equal(_learned(c, config, result.metrics), _learned(c, config, other.metrics))
    differ = [not np.array_equal(a, b) for a, b in zip(_float_leaves(result.state), _float_leaves(other.state))]
    assert sum(differ) >= len(differ) // 2, f"only {sum(differ)} of {len(differ)} float state leaves differ"


def test_step_after_step_matches_train(case, first_run):
    """``init`` then ``step`` called from Python ``num_updates`` times is ``train`` (which scans it)."""
    _, c, config = case
    _, result = first_run
    step = jax.jit(c.module.step)
    state = jax.jit(c.module.init)(config, jax.random.key(0))
    steps = result.metrics["env_steps"].shape[0]
    per_step = []
    for _ in range(steps):
        state, metrics = step(config, state)
        per_step.append(metrics)
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *per_step)
    for name in EXACT:
        if name in stacked:
            np.testing.assert_array_equal(stacked[name], result.metrics[name], err_msg=name)
    for name in stacked:
        np.testing.assert_allclose(stacked[name], result.metrics[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(result.metrics["iteration"], np.arange(1, steps + 1))


def test_sweep_members_equal_runs_alone(case, first_run, count_compiles):
    """Entry [i, s] of ``sweep(train, config, seeds=2, field=[a, b])`` is
    ``train(config.replace(field=value_i), key(s))``; float values to rounding (a vmapped program
    vectorizes reductions differently), episode statistics exactly."""
    _, c, config = case
    fn, _ = first_run
    field, values = next(iter(c.traced.items()))
    swept = purejaxlib.sweep(c.module.train, config, seeds=2, **{field: values})
    assert swept.axes == (field, "seed") and len(swept.programs) == 1
    with count_compiles("train") as counter:  # fn serves every value: the field is traced
        for i, value in enumerate(values):
            for seed in range(2):
                alone = fn(config.replace(**{field: value}), jax.random.key(seed))
                for name, got in alone.metrics.items():
                    want, got = swept.metrics[name][i, seed], np.asarray(got)
                    if name in EXACT:
                        np.testing.assert_array_equal(want, got, err_msg=f"{name} {field}={value} seed={seed}")
                    else:
                        np.testing.assert_allclose(
                            want, got, rtol=1e-5, atol=1e-6, err_msg=f"{name} {field}={value} seed={seed}"
                        )
    assert counter.count == 0, counter.messages
    loss = _learned(c, config, swept.metrics)
    assert not np.allclose(loss[0, 0], loss[1, 0]) and not np.allclose(loss[0, 0], loss[0, 1])


def test_new_traced_values_do_not_recompile(case, first_run, count_compiles):
    _, c, config = case
    _, reference = first_run
    traces = []

    def contract_train(cfg, key):
        traces.append(1)
        return c.module.train(cfg, key)

    fn = jax.jit(contract_train)
    changed = config.replace(**{name: values[0] for name, values in c.traced.items()})
    with count_compiles("contract_train") as counter:
        base = jax.block_until_ready(fn(config, jax.random.key(0)))
        other = jax.block_until_ready(fn(changed, jax.random.key(0)))
    assert counter.count == 1 and len(traces) == 1, counter.messages
    assert tree_equal(base.metrics, reference.metrics)  # a second compile of the same program agrees
    assert not np.array_equal(_learned(c, config, base.metrics), _learned(c, config, other.metrics))  # values used


def test_unknown_field_is_named_at_construction(case):
    _, c, _ = case
    with pytest.raises(UnknownFieldError, match="learning_rate"):
        c.module.Config(learning_rate=1e-3)


def test_bad_sweep_value_fails_before_tracing(case):
    _, c, config = case
    traces = []

    def traced_train(cfg, key):
        traces.append(1)
        return c.module.train(cfg, key)

    with pytest.raises(ConfigError, match="gamma"):
        purejaxlib.sweep(traced_train, config, seeds=2, gamma=[0.9, 1.5])
    assert traces == []
