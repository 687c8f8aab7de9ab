"""Time to threshold: wall-clock seconds, compile included, until the mean return over seeds first
reaches a threshold; prints one JSON line.

Usage: python benchmarks/threshold.py ALGO ENV THRESHOLD SEEDS TOTAL_TIMESTEPS [field=value ...]

e.g. ``python benchmarks/threshold.py sac Pendulum-v1 -200 4 20000``. The seeds train vmapped
in one program; every ``interval`` iterations a host callback timestamps the mean over seeds of
each seed's latest finished episode return, so the crossing time is measured, not interpolated
(to within one interval).
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
import time

import jax
import numpy as np

from purejaxlib import progress, stats
from purejaxlib.sweep import with_member

REPORTS = 400  # host callbacks per run: fine enough timing, negligible overhead


def main() -> None:
    name, env, threshold, seeds, steps = (
        sys.argv[1],
        sys.argv[2],
        float(sys.argv[3]),
        int(sys.argv[4]),
        int(sys.argv[5]),
    )
    algo = importlib.import_module(f"purejaxlib.algos.{name}")
    overrides = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in sys.argv[6:])}
    probe = algo.Config(env=env, total_timesteps=steps, **overrides)
    total = probe.num_updates
    config = probe.replace(log_interval=max(1, total // REPORTS))
    per_iteration = config.steps_per_update

    keys = jax.random.split(jax.random.key(0), seeds)
    members = np.arange(seeds, dtype=np.int32)  # tags each seed's reports (see purejaxlib.progress)
    train = with_member(lambda k: algo.train(config, k).metrics)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(members, keys).compile()
    compile_s = time.perf_counter() - t0
    trace: list[tuple[float, int, float]] = []

    def stamp(update: int, values: dict[str, np.ndarray]) -> None:
        trace.append((time.perf_counter(), update, float(np.mean(values["episode_return"]))))

    with progress.track(seeds, [stamp]):
        start = time.perf_counter()
        metrics = compiled(members, keys)
        jax.block_until_ready(metrics)
        run_s = time.perf_counter() - start
    crossing = next(((t, u) for t, u, r in trace if r >= threshold), None)
    final = stats.final_return(np.asarray(metrics["episode_return"]))  # [seeds]
    print(
        json.dumps(
            dict(
                lib="purejaxlib",
                algo=name,
                env=env,
                threshold=threshold,
                seeds=seeds,
                steps=steps,
                config=overrides,
                compile_s=round(compile_s, 2),
                run_s=round(run_s, 2),
                time_to_threshold_s=None if crossing is None else round(compile_s + crossing[0] - start, 2),
                steps_to_threshold=None if crossing is None else crossing[1] * per_iteration,
                final_return_mean=round(float(final.mean()), 1),
                final_return_min=round(float(final.min()), 1),
            )
        )
    )


if __name__ == "__main__":
    main()
