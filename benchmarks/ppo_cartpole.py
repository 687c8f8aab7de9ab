"""B1: purejaxlib PPO on CartPole-v1 with the config of shared/BENCHMARKS.md; prints one JSON line.

Usage: python benchmarks/ppo_cartpole.py SEEDS [TOTAL_TIMESTEPS] [CPU_DEVICES]

With CPU_DEVICES > 1 the CPU is split into that many XLA host devices and the seeds are sharded
across them (purejaxlib's sweep sharding), so each core runs its own share of the agents.

Timing matches the peers' scripts: compile (lower + compile) is timed apart from the run, and
env steps/s counts every transition of every seed over the run time only.
"""

from __future__ import annotations

import json
import os
import sys
import time

if len(sys.argv) > 3 and int(sys.argv[3]) > 1:  # must be set before jax initializes its backend
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={int(sys.argv[3])}"

import jax
import numpy as np

from purejaxlib.algos import ppo
from purejaxlib.sweep import run_batch

B1 = dict(
    env="CartPole-v1", num_envs=16, num_steps=128, update_epochs=4, num_minibatches=4, hidden=(64, 64), anneal_lr=False,
    activation="tanh", lr=2.5e-4, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5,
    max_grad_norm=0.5,
)


def main() -> None:
    seeds = int(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 500_000
    config = ppo.Config(total_timesteps=steps, **B1)
    # Every traced leaf (static fields are pytree metadata) gets a leading seed axis.
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (seeds,) + np.shape(x)), config)
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    out, compile_s, run_s = run_batch(ppo.train, batch, keys, devices=jax.devices())
    final = np.asarray(out.metrics["episode_return"])[:, -1]
    steps_run = config.num_updates * config.batch_size
    print(json.dumps(dict(
        lib="purejaxlib", algo="ppo", env=config.env, steps=steps_run, seeds=seeds,
        compile_s=round(compile_s, 2), run_s=round(run_s, 2), sps=round(steps_run * seeds / run_s),
        final_return_mean=round(float(final.mean()), 1), final_return_min=round(float(final.min()), 1),
        device=str(jax.devices()[0].device_kind), devices=jax.device_count(), wall_s=round(time.perf_counter() - t0, 2),
    )))


if __name__ == "__main__":
    main()
