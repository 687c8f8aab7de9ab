"""One learning iteration of B2's SAC (1 env step + 1 gradient step, 256x256, batch 256, 8 seeds
vmapped), ours beside rejax's: XLA's FLOP and byte counts, the optimized program's op census, and
the median time of an iteration. Prints one JSON line.

    python benchmarks/sac_update_profile.py ours [field=value ...] [--batched-config]
    /tmp/pjl-peers/rejax/bin/python benchmarks/sac_update_profile.py rejax

Both sides compile ``lax.scan`` over ``ITERATIONS`` iterations of the algorithm's own training
step, started from the state after the 1k-step warm-up, and time its run (median of ``REPEATS``).
The census counts instructions of the optimized HLO by opcode (fusions, dots, copies,
dynamic-update-slices, whiles, conditionals), the program XLA really runs.
"""

from __future__ import annotations

import ast
import collections
import json
import re
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

SEEDS = 8
ITERATIONS = 200
REPEATS = 5
WARMUP = 1_000


def census(compiled) -> dict[str, int]:
    """Instruction counts by opcode in the optimized HLO text (every computation)."""
    # "%name = TYPE opcode(...)", where TYPE may be a tuple "(f32[2]{0}, s32[])" with spaces in it
    ops = collections.Counter(re.findall(r"= (?:\([^=]*?\)|\S+) ([a-z][a-z0-9-]*)\(", compiled.as_text()))
    keep = ("fusion", "dot", "copy", "dynamic-update-slice", "dynamic-slice", "gather", "scatter", "while",
            "conditional", "custom-call", "transpose")  # fmt: skip
    return {op: ops.get(op, 0) for op in keep} | {"all": sum(ops.values())}


def measure(run, state) -> dict:
    """Compile ``run`` (state -> state), read its costs, and time it."""
    start = time.perf_counter()
    compiled = jax.jit(run).lower(state).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    jax.block_until_ready(compiled(state))
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        jax.block_until_ready(compiled(state))
        times.append(time.perf_counter() - start)
    per_iteration = statistics.median(times) / ITERATIONS
    return {
        "compile_s": round(compile_s, 2),
        "ms_per_iteration": round(per_iteration * 1e3, 3),
        "env_steps_per_second": round(SEEDS / per_iteration),
        "gflop_per_iteration_xla": round(float(cost.get("flops", float("nan"))) / 1e9, 3),
        "mb_accessed_per_iteration_xla": round(float(cost.get("bytes accessed", float("nan"))) / 1e6, 1),
        "census": census(compiled),
        "note": "XLA's cost analysis counts a while loop's body once: the figures are one iteration's",
    }


def ours(overrides: list[str]) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train import B2  # the suite's B2 config

    from purejaxlib.algos import sac

    batched = "--batched-config" in overrides  # as benchmarks/train.py runs B2: each traced field per seed
    fields = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in overrides if a != "--batched-config")}
    config = sac.Config(**{**B2, "total_timesteps": WARMUP + ITERATIONS, **fields})
    keys = jax.random.split(jax.random.key(0), SEEDS)
    configs = jax.tree.map(lambda x: np.broadcast_to(x, (SEEDS,) + np.shape(x)), config) if batched else config
    axis = 0 if batched else None
    state = jax.vmap(sac.init, in_axes=(axis, 0))(configs, keys)

    def steps(state, first, count):
        one = lambda c, x, i: sac.step(c, x, i)[0]
        vmapped = jax.vmap(one, in_axes=(axis, 0, None))
        body = lambda s, i: (vmapped(configs, s, i), None)
        return jax.lax.scan(body, state, first + jax.numpy.arange(count))[0]

    warm = config.warmup_iterations
    state = jax.jit(lambda s: steps(s, 0, warm))(state)
    result = measure(lambda s: steps(s, warm, ITERATIONS), state)
    return {"lib": "purejaxlib", "overrides": overrides, **result}


def rejax() -> dict:
    from rejax import SAC

    algo = SAC.create(
        env="Pendulum-v1", total_timesteps=WARMUP + ITERATIONS, eval_freq=WARMUP + ITERATIONS,
        skip_initial_evaluation=True, num_envs=1, buffer_size=100_000, fill_buffer=WARMUP, batch_size=256,
        learning_rate=3e-4, gamma=0.99, hidden_layer_sizes=(256, 256),
    )  # fmt: skip
    keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)
    state = jax.vmap(algo.init_state)(keys)

    def steps(state, count):
        body = lambda s, _: (jax.vmap(algo.train_iteration)(s), None)
        return jax.lax.scan(body, state, None, length=count)[0]

    state = jax.jit(lambda s: steps(s, WARMUP))(state)
    result = measure(lambda s: steps(s, ITERATIONS), state)
    return {"lib": "rejax", **result}


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "ours"
    out = rejax() if which == "rejax" else ours(sys.argv[2:])
    print(json.dumps({"benchmark": "b2-iteration", "seeds": SEEDS, "iterations": ITERATIONS, **out}))
