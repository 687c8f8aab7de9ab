"""Compile reuse across calls: three ``purejaxlib.sweep`` calls of one program, then a static change.

Usage: python benchmarks/compile_reuse.py

Calls B1's PPO CartPole config (4 updates, 2 seeds x 2 lr values) with new ``lr`` values, then
the very same grid, then ``num_envs`` changed (a static field). Prints one JSON line with each
call's compile seconds, wall seconds and the backend compilations jax logged during it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import cpu_name
from train import B1

import purejaxlib
from purejaxlib.algos import ppo


class Compiles(logging.Handler):
    """Counts jax's "Compiling ..." log lines (one per backend compilation)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.getMessage().startswith("Compiling")


def main() -> dict:
    config = ppo.Config(total_timesteps=4 * 16 * 128, **B1)
    counter = Compiles()
    logging.getLogger("jax._src.interpreters.pxla").addHandler(counter)
    calls = [
        ("new lr", config, [1e-3, 3e-3]),
        ("new lr again", config, [2e-3, 5e-3]),
        ("same grid", config, [2e-3, 5e-3]),
        ("num_envs=8", config.replace(num_envs=8), [2e-3, 5e-3]),
    ]
    rows = []
    with jax.log_compiles(True):
        for label, cfg, lrs in calls:
            before, t0 = counter.count, time.perf_counter()
            result = purejaxlib.sweep(ppo.train, cfg, seeds=2, lr=lrs)
            rows.append(
                {
                    "call": label,
                    "compile_s": round(result.compile_seconds, 2),
                    "wall_s": round(time.perf_counter() - t0, 2),
                    "compilations": counter.count - before,
                }
            )
    report = {
        "bench": "compile_reuse",
        "calls": rows,
        "cpu": cpu_name(),
        "backend": jax.default_backend(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
