"""Cost of live logging and checkpointing on B1 (PPO CartPole), measured both ways in one process.

Usage: python benchmarks/overhead.py [SEEDS] [REPEATS] [CHECKPOINT_EVERY]

Three ways to train the same B1 config, each timed REPEATS times (median), compile excluded:
``plain`` (``vmap(ppo.train)`` in one program, no reports, as benchmarks/train.py times it),
``logged`` (:func:`purejaxlib.run_experiment` at its default ``log_interval``, writing
``metrics.jsonl``) and ``checkpointed`` (the same plus an orbax checkpoint of every member's state
every ``CHECKPOINT_EVERY`` updates, default 25).

Prints one JSON line: env steps/s of each and their ratios to ``plain``. For the runner, ``loop``
(its training loop: chunks, host callbacks, file writes, the saves' time on the training thread)
is the throughput the 5% target is about; ``wall`` adds its one-time costs (record, init).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import cpu_name
from train import B1

from purejaxlib import run_experiment
from purejaxlib.algos import ppo
from purejaxlib.sweep import run_batch


def plain_seconds(config: ppo.Config, seeds: int) -> float:
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (seeds,) + np.shape(x)), config)
    keys = jax.random.split(jax.random.key(0), seeds)
    _, _, run_s = run_batch(ppo.train, batch, keys)
    return run_s


def runner_seconds(config: ppo.Config, seeds: int, checkpoint_every: int) -> tuple[float, float]:
    """``(training-loop seconds, wall seconds less compile)`` of one run_experiment session."""
    with tempfile.TemporaryDirectory() as tmp:
        result = run_experiment(
            ppo,
            config,
            seeds=seeds,
            out=Path(tmp) / "run",
            checkpoint_every=checkpoint_every,
            progress_bar=False,
            command=["benchmarks/overhead.py"],
        )
    session = result.record["sessions"][-1]
    return session["run_seconds"] + session["checkpoint_seconds"], session["wall_seconds"] - session["compile_seconds"]


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    config = ppo.Config(total_timesteps=500_000, **B1)
    steps = seeds * config.num_updates * config.steps_per_update
    times: dict[str, list[float]] = {"plain": [], "logged": [], "checkpointed": []}
    walls: dict[str, list[float]] = {"logged": [], "checkpointed": []}
    for _ in range(repeats):  # interleaved, so drifting machine load hits all three alike
        times["plain"].append(plain_seconds(config, seeds))
        for name, n in (("logged", 0), ("checkpointed", every)):
            loop, wall = runner_seconds(config, seeds, n)
            times[name].append(loop)
            walls[name].append(wall)
    median = {k: statistics.median(v) for k, v in times.items()}
    # ratios round by round (each against the plain run of its own round), then the median
    ratio = {k: statistics.median(p / t for p, t in zip(times["plain"], v)) for k, v in times.items()}
    wall_ratio = {k: statistics.median(p / t for p, t in zip(times["plain"], v)) for k, v in walls.items()}
    print(
        json.dumps(
            {
                "bench": "b1-overhead",
                "seeds": seeds,
                "repeats": repeats,
                "num_updates": config.num_updates,
                "log_interval": max(1, config.num_updates // 100),
                "checkpoint_every": every,
                "checkpoints": config.num_updates // every + (config.num_updates % every > 0),
                "sps": {k: round(steps / v) for k, v in median.items()},
                "throughput_ratio": {k: round(v, 3) for k, v in ratio.items()},
                "wall_ratio": {k: round(v, 3) for k, v in wall_ratio.items()},
                "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
                "wall_seconds": {k: [round(t, 3) for t in v] for k, v in walls.items()},
                "machine": f"{cpu_name()}, {os.cpu_count()} cores",
                "devices": jax.device_count(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": " ".join(["python", *sys.argv]),
            }
        )
    )


if __name__ == "__main__":
    main()
