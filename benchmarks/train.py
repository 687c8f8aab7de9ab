"""One benchmark measurement of purejaxlib (config from shared/BENCHMARKS.md); prints one JSON line.

Usage: python benchmarks/train.py BENCH SEEDS [TOTAL_TIMESTEPS] [CPU_DEVICES] [field=value ...]

BENCH is b1 (PPO CartPole), b2 (SAC Pendulum), b3 (DQN CartPole) or ant (PPO brax/ant). ``field=value`` overrides a
config field (values are parsed as Python literals, never evaluated), e.g. ``hidden=(64,64)``;
``eval_episodes=N`` sets the final evaluation's episodes per seed (0: none, e.g. for scaling runs).
The JSON line also gives the process's peak RSS and, on GPU, the device's peak memory.
With CPU_DEVICES > 1 the CPU is split into that many XLA host devices and the seeds are sharded
across them (purejaxlib's sweep sharding), so each core runs its own share of the agents.

Timing matches the peers' scripts: compile (lower + compile) is timed apart from the run, and
env steps/s counts every transition of every seed over the run time only.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import sys
import time

# Only when run as the script (other benchmarks import B1 and peak_memory from here with argv of their own).
# (set before jax initializes its backend)
if os.path.basename(sys.argv[0]) == "train.py" and len(sys.argv) > 4 and int(sys.argv[4]) > 1:
    os.environ["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={int(sys.argv[4])}"
    )

import jax
import numpy as np

from purejaxlib import evaluate
from purejaxlib.algos import dqn, ppo, sac
from purejaxlib.sweep import run_batch

B1 = dict(
    env="CartPole-v1",
    num_envs=16,
    num_steps=128,
    update_epochs=4,
    num_minibatches=4,
    hidden=(64, 64),
    anneal_lr=False,
    activation="tanh",
    lr=2.5e-4,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
)
B2 = dict(
    env="Pendulum-v1",
    num_envs=1,
    train_freq=1,
    gradient_steps=1,
    batch_size=256,
    buffer_size=100_000,
    learning_starts=1_000,
    hidden=(256, 256),
    lr=3e-4,
    gamma=0.99,
)
B3 = dict(
    env="CartPole-v1",
    num_envs=1,
    train_freq=1,
    gradient_steps=1,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    hidden=(64, 64),
    lr=2.5e-4,
    gamma=0.99,
)
# PPO on brax ant after brax's own PPO settings (gamma 0.97, normalized observations, reward
# scaling through normalize_reward); 4096 envs on a GPU, 256 on a CPU.
ANT = dict(
    env="brax/ant",
    num_envs=256,
    num_steps=16,
    update_epochs=4,
    num_minibatches=8,
    hidden=(256, 256),
    lr=3e-4,
    gamma=0.97,
    gae_lambda=0.95,
    clip_eps=0.3,
    ent_coef=1e-2,
    normalize_obs=True,
    normalize_reward=True,
)
EVAL_EPISODES = 32
BENCHMARKS = {
    "b1": (ppo, B1, 500_000),
    "b2": (sac, B2, 20_000),
    "b3": (dqn, B3, 50_000),
    "ant": (ppo, ANT, 8 * 256 * 16),
}


def main() -> None:
    name, seeds = sys.argv[1], int(sys.argv[2])
    algo, fields, default_steps = BENCHMARKS[name]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else default_steps
    overrides = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in sys.argv[5:])}
    episodes = int(overrides.pop("eval_episodes", EVAL_EPISODES))
    if name == "ant" and jax.devices()[0].platform == "gpu":
        fields = {**fields, "num_envs": 4096, "num_minibatches": 32}
    config = algo.Config(total_timesteps=steps, **{**fields, **overrides})
    # Every traced leaf (static fields are pytree metadata) gets a leading seed axis.
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (seeds,) + np.shape(x)), config)
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    out, compile_s, run_s = run_batch(algo.train, batch, keys, devices=jax.devices())
    # Final return as the peers report it: an evaluation of the final policy (32 episodes per
    # seed, deterministic), outside the timed run.
    if episodes > 0:
        evaluation = jax.jit(jax.vmap(lambda c, s, k: evaluate(c, s, k, episodes)))(batch, out.state, keys)
        final = np.asarray(evaluation.returns).mean(axis=1)
    else:
        final = np.full(seeds, np.nan)
    steps_run = int(np.asarray(out.metrics["env_steps"])[0, -1])
    memory = peak_memory()
    print(
        json.dumps(
            dict(
                lib="purejaxlib",
                bench=name,
                algo=algo.__name__.rsplit(".", 1)[-1],
                env=config.env,
                steps=steps_run,
                seeds=seeds,
                hidden=list(config.hidden),
                compile_s=round(compile_s, 2),
                run_s=round(run_s, 2),
                sps=round(steps_run * seeds / run_s),
                final_return_mean=_round(final.mean()),
                final_return_min=_round(final.min()),
                finals=[_round(f) for f in final] if episodes > 0 else None,
                device=str(jax.devices()[0].device_kind),
                platform=jax.devices()[0].platform,
                devices=jax.device_count(),
                wall_s=round(time.perf_counter() - t0, 2),
                **memory,
            )
        )
    )


def _round(x: float) -> float | None:
    """A return for JSON: None where no evaluation ran."""
    return None if not np.isfinite(x) else round(float(x), 1)


def peak_memory() -> dict[str, float | None]:
    """``peak_rss_mb`` of this process and ``device_peak_mb`` (None where the device keeps no stats, e.g. CPU)."""
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    stats = jax.devices()[0].memory_stats() or {}
    device = stats.get("peak_bytes_in_use")
    return {
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "device_peak_mb": None if device is None else round(device / 2**20, 1),
    }


if __name__ == "__main__":
    main()
