"""Compile and run time of PPO programs under XLA:CPU's default (fusion) emitters and its classic ones.

    python benchmarks/xla_emitters.py [--repeats 3]

Each measurement is a fresh process (XLA reads ``XLA_FLAGS`` once per process) that traces, lowers,
compiles and runs ``jax.jit(ppo.train)`` for two programs: the test suite's small CartPole config
(3 updates of 4 envs x 16 steps, compiled with ``jax_disable_most_optimizations`` as the tests do)
and a learning-sized one (CartPole, 16 envs x 128 steps, 100k steps, fully optimized). Compile and
run seconds are medians over ``--repeats`` processes per flag setting, the runs interleaved.
Writes ``results/xla_emitters.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from stamp import machine

HERE = Path(__file__).resolve().parent
FLAGS = {"fusion (default)": "", "classic": "--xla_cpu_use_fusion_emitters=false"}
PROGRAMS = {
    "test-sized, -O0": dict(
        optimized=False,
        config=dict(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2, total_timesteps=192),
    ),
    "learning-sized, optimized": dict(
        optimized=True,
        config=dict(num_envs=16, num_steps=128, num_minibatches=4, update_epochs=4, total_timesteps=100_000),
    ),
}

CHILD = """
import json, sys, time
import jax
optimized, fields = json.loads(sys.argv[1])
jax.config.update("jax_disable_most_optimizations", not optimized)
from purejaxlib.algos import ppo
config = ppo.Config(env="CartPole-v1", **fields)
key = jax.random.key(0)
t0 = time.perf_counter(); lowered = jax.jit(ppo.train).trace(config, key).lower()
t1 = time.perf_counter(); compiled = lowered.compile()
t2 = time.perf_counter(); jax.block_until_ready(compiled(config, key))
t3 = time.perf_counter()
print(json.dumps({"trace_lower_s": t1 - t0, "compile_s": t2 - t1, "run_s": t3 - t2}))
"""


def measure(program: dict, flags: str) -> dict[str, float]:
    """One fresh process: seconds to trace+lower, compile and run the program."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_DISABLE_MOST_OPTIMIZATIONS")}
    if flags:
        env["XLA_FLAGS"] = flags
    arg = json.dumps([program["optimized"], program["config"]])
    out = subprocess.run([sys.executable, "-c", CHILD, arg], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, dict[str, list[dict[str, float]]]] = {p: {f: [] for f in FLAGS} for p in PROGRAMS}
    for _ in range(args.repeats):
        for pname, program in PROGRAMS.items():
            for fname, flags in FLAGS.items():
                runs[pname][fname].append(measure(program, flags))
    rows = []
    for pname in PROGRAMS:
        for fname in FLAGS:
            med = {k: statistics.median(r[k] for r in runs[pname][fname]) for k in ("compile_s", "run_s")}
            rows.append({"program": pname, "emitters": fname, **med})
            print(f"{pname:28s} {fname:18s} compile {med['compile_s']:6.2f} s  run {med['run_s']:6.2f} s")
    out = {"rows": rows, "runs": runs, "flags": FLAGS, "programs": PROGRAMS, "machine": machine()}
    (HERE / "results" / "xla_emitters.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
