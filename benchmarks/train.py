"""One benchmark measurement of purejaxlib (config from shared/BENCHMARKS.md); prints one JSON line.

Usage: python benchmarks/train.py BENCH SEEDS [TOTAL_TIMESTEPS] [CPU_DEVICES] [field=value ...]

BENCH is b1 (PPO CartPole), b2 (SAC Pendulum) or b3 (DQN CartPole). ``field=value`` overrides a
config field (values are parsed as Python literals, never evaluated), e.g. ``hidden=(64,64)``.
With CPU_DEVICES > 1 the CPU is split into that many XLA host devices and the seeds are sharded
across them (purejaxlib's sweep sharding), so each core runs its own share of the agents.

Timing matches the peers' scripts: compile (lower + compile) is timed apart from the run, and
env steps/s counts every transition of every seed over the run time only.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time

if len(sys.argv) > 4 and int(sys.argv[4]) > 1:  # must be set before jax initializes its backend
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={int(sys.argv[4])}"

import jax
import numpy as np

from purejaxlib import evaluate
from purejaxlib.algos import dqn, ppo, sac
from purejaxlib.sweep import run_batch

B1 = dict(
    env="CartPole-v1", num_envs=16, num_steps=128, update_epochs=4, num_minibatches=4, hidden=(64, 64), anneal_lr=False,
    activation="tanh", lr=2.5e-4, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5,
    max_grad_norm=0.5,
)
B2 = dict(
    env="Pendulum-v1", num_envs=1, train_freq=1, gradient_steps=1, batch_size=256, buffer_size=100_000,
    learning_starts=1_000, hidden=(256, 256), lr=3e-4, gamma=0.99,
)
B3 = dict(
    env="CartPole-v1", num_envs=1, train_freq=1, gradient_steps=1, batch_size=64, buffer_size=100_000,
    learning_starts=1_000, hidden=(64, 64), lr=2.5e-4, gamma=0.99,
)
EVAL_EPISODES = 32
BENCHMARKS = {"b1": (ppo, B1, 500_000), "b2": (sac, B2, 20_000), "b3": (dqn, B3, 50_000)}


def main() -> None:
    name, seeds = sys.argv[1], int(sys.argv[2])
    algo, fields, default_steps = BENCHMARKS[name]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else default_steps
    overrides = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in sys.argv[5:])}
    config = algo.Config(total_timesteps=steps, **{**fields, **overrides})
    # Every traced leaf (static fields are pytree metadata) gets a leading seed axis.
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (seeds,) + np.shape(x)), config)
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    out, compile_s, run_s = run_batch(algo.train, batch, keys, devices=jax.devices())
    # Final return as the peers report it: an evaluation of the final policy (32 episodes per
    # seed, deterministic), outside the timed run.
    evaluation = jax.jit(jax.vmap(lambda c, s, k: evaluate(c, s, k, EVAL_EPISODES)))(batch, out.state, keys)
    final = np.asarray(evaluation.returns).mean(axis=1)
    steps_run = int(np.asarray(out.metrics["env_steps"])[0, -1])
    print(json.dumps(dict(
        lib="purejaxlib", bench=name, algo=algo.__name__.rsplit(".", 1)[-1], env=config.env, steps=steps_run,
        seeds=seeds, hidden=list(config.hidden), compile_s=round(compile_s, 2), run_s=round(run_s, 2),
        sps=round(steps_run * seeds / run_s), final_return_mean=round(float(final.mean()), 1),
        final_return_min=round(float(final.min()), 1), finals=[round(float(f), 1) for f in final],
        device=str(jax.devices()[0].device_kind), devices=jax.device_count(), wall_s=round(time.perf_counter() - t0, 2),
    )))


if __name__ == "__main__":
    main()
