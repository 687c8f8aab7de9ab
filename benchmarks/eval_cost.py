"""Cost of periodic evaluation while training: run_experiment with and without ``eval_every``.

Usage: python benchmarks/eval_cost.py [--steps N] [--seeds S] [--every E [E ...]] [--episodes K] [--rounds R]

B1's PPO CartPole config (64x64, 16 envs x 128 steps) trained ``R`` rounds; each round runs the
plain config and then each ``eval_every`` in turn (interleaved, so machine load hits all alike),
compile excluded (the compile cache serves every round after the first). Prints one JSON line:
median training-loop seconds of each, and each one's median ratio to the plain run of its round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import cpu_name
from train import B1

from purejaxlib import run_experiment
from purejaxlib.algos import ppo


def loop_seconds(config: ppo.Config, seeds: int, every: int, episodes: int) -> float:
    result = run_experiment(
        ppo, config, seeds=seeds, eval_every=every, eval_episodes=episodes, progress_bar=False, command=[]
    )
    return result.run_seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_704, help="env steps per seed (98 updates of 2048)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--every", type=int, nargs="+", default=[10, 49], help="eval_every values, in updates")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    config = ppo.Config(total_timesteps=args.steps, **B1).replace(log_interval=1)
    times: dict[int, list[float]] = {0: [], **{e: [] for e in args.every}}
    ratios: dict[int, list[float]] = {e: [] for e in args.every}
    for _ in range(args.rounds + 1):  # the first round compiles and is not counted
        plain = loop_seconds(config, args.seeds, 0, args.episodes)
        row = {e: loop_seconds(config, args.seeds, e, args.episodes) for e in args.every}
        if _ == 0:
            continue
        times[0].append(plain)
        for e, seconds in row.items():
            times[e].append(seconds)
            ratios[e].append(seconds / plain)
    report = {
        "bench": "eval_cost",
        "config": "B1",
        "steps": args.steps,
        "updates": config.num_updates,
        "seeds": args.seeds,
        "episodes": args.episodes,
        "rounds": args.rounds,
        "log_interval": 1,
        "median_seconds": {
            ("plain" if e == 0 else f"eval_every={e}"): round(statistics.median(t), 3) for e, t in times.items()
        },
        "median_ratio": {f"eval_every={e}": round(statistics.median(r), 3) for e, r in ratios.items()},
        "evaluations": {f"eval_every={e}": config.num_updates // e for e in args.every},
        "cpu": cpu_name(),
        "backend": jax.default_backend(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
