"""Every algorithm runs on every env family whose action space it supports.

A few updates per pair, tiny networks: the point is that image observations (MinAtar), the LQR's
matrix params, probes and the host adapter all go through each algorithm's init/train unchanged,
with finite losses and the env steps counted.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from purejaxlib.algos import dqn, ppo, pqn, sac, td3

OFFPOLICY_SMALL = dict(
    total_timesteps=128,
    num_envs=2,
    train_freq=2,
    gradient_steps=1,
    batch_size=8,
    buffer_size=64,
    learning_starts=16,
    hidden=(16, 16),
)

CASES = [
    (
        ppo,
        "Breakout-MinAtar",
        dict(total_timesteps=128, num_envs=2, num_steps=16, num_minibatches=2, update_epochs=1, hidden=(16,)),
    ),
    (
        ppo,
        "LQR:n=3,m=2",
        dict(total_timesteps=128, num_envs=2, num_steps=16, num_minibatches=2, update_epochs=1, hidden=(16,)),
    ),
    (
        pqn,
        "Probe5-ActionObservationReward",
        dict(total_timesteps=128, num_envs=2, num_steps=16, num_minibatches=2, update_epochs=1, hidden=(16,)),
    ),
    (dqn, "Breakout-MinAtar", OFFPOLICY_SMALL),
    pytest.param(sac, "gymnasium/Pendulum-v1", OFFPOLICY_SMALL, marks=pytest.mark.slow),  # host env: test_host
    (sac, "Probe4-ActionReward", OFFPOLICY_SMALL),  # discrete SAC
    pytest.param(td3, "LQR:n=3,m=2", OFFPOLICY_SMALL, marks=pytest.mark.slow),  # LQR: ppo's case covers it
]


def _case_id(case) -> str:
    algo, env, _ = case.values if hasattr(case, "values") else case
    return f"{algo.__name__.rsplit('.', 1)[-1]}-{env}"


@pytest.mark.parametrize("algo, env, fields", CASES, ids=[_case_id(c) for c in CASES])
def test_algorithm_trains_on_env_family(algo, env, fields):
    config = algo.Config(env=env, **fields)
    result = jax.jit(algo.train)(config, jax.random.key(0))  # one program: faster than init run op by op
    metrics = {k: np.asarray(v) for k, v in result.metrics.items()}
    assert metrics["env_steps"][-1] == config.num_updates * config.steps_per_update
    learned = slice(getattr(config, "warmup_iterations", 0), None)  # warm-up entries hold NaN
    losses = [name for name in ("loss", "critic_loss") if name in metrics]
    assert losses
    for name in losses:
        assert np.all(np.isfinite(metrics[name][learned])), f"{name} is not finite on {env}"
    params = [np.asarray(x) for x in jax.tree.leaves(result.state) if jax.numpy.issubdtype(x.dtype, jax.numpy.floating)]
    assert params and all(np.all(np.isfinite(x)) for x in params), f"non-finite training state on {env}"
