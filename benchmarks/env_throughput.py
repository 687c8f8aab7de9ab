"""Raw environment throughput (B5): random actions, vmapped over envs and scanned, no learning.

Usage: python benchmarks/env_throughput.py [--envs NAME ...] [--num-envs 16 256 4096]
       [--seconds 1.0] [--repeats 3] [--reset-ratio R] [--no-b1] [--out benchmarks/results/env_throughput]

For each env and env count one compiled chunk (``reset`` once, then ``chunk`` steps of the
vectorized env in ``lax.scan``) is called repeatedly on its own output state for about
``--seconds``; steps/s is the median over ``--repeats`` such timings, compile time is timed
apart. The envs are built by ``purejaxlib.envs.make`` with the wrappers training uses. With B1
on (the default), PPO's B1 config is trained at 16 envs and its env steps/s is stated as a
fraction of the raw CartPole throughput at the same 16 envs: the share of time left to the env.
``--reset-ratio R`` steps through a reset pool (``envs.VecEnv(..., reset_pool=num_envs // R)``,
one fresh start per R envs a step, as Craftax's own PPO) instead of gymnax's auto-reset.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxlib import envs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import cpu_name
from train import B1, peak_memory

DEFAULT_ENVS = ["CartPole-v1", "Pendulum-v1", "Breakout-MinAtar", "LQR:n=32,m=8", "brax/ant"]


def chunk_length(name: str, num_envs: int) -> int:
    """Steps per compiled chunk: long enough to hide dispatch, short enough for slow envs."""
    if name.startswith("brax/"):
        return 10
    return max(16, min(1000, 256_000 // num_envs))


def make_chunk(name: str, num_envs: int, length: int, reset_pool: int = 0):
    """``(init(key) -> carry, chunk(carry) -> carry)``: ``length`` random-action steps of ``num_envs`` envs
    (through a reset pool of ``reset_pool`` fresh starts a step when > 0)."""
    env, params = envs.make(name)
    vec = envs.VecEnv(envs.PendingReset(env) if reset_pool else env, num_envs, reset_pool=reset_pool)
    space = env.action_space(params)

    def init(key: jax.Array):
        key, reset_key = jax.random.split(key)
        _, state = vec.reset(reset_key, params)
        return state, key, jnp.float32(0.0)

    def chunk(carry):
        def body(carry, _):
            state, key, total = carry
            key, act_key, step_key = jax.random.split(key, 3)
            actions = jax.vmap(space.sample)(jax.random.split(act_key, num_envs))
            _, state, reward, _, _, _ = vec.step(step_key, state, actions, params)
            # The reward sum keeps XLA from dropping any step.
            return (state, key, total + reward.sum()), None

        return jax.lax.scan(body, carry, None, length)[0]

    return jax.jit(init), jax.jit(chunk)


def measure_env(name: str, num_envs: int, seconds: float, repeats: int, reset_ratio: int = 0) -> dict[str, Any]:
    length = chunk_length(name, num_envs)
    reset_pool = max(1, num_envs // reset_ratio) if reset_ratio else 0
    init, chunk = make_chunk(name, num_envs, length, reset_pool)
    carry = jax.block_until_ready(init(jax.random.key(0)))
    t0 = time.perf_counter()
    compiled = chunk.lower(carry).compile()
    compile_s = time.perf_counter() - t0
    carry = jax.block_until_ready(compiled(carry))  # warm-up
    rates = []
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            carry = compiled(carry)
            calls += 1
            jax.block_until_ready(carry)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        rates.append(calls * length * num_envs / elapsed)
    total = float(carry[2])
    if not np.isfinite(total):
        raise RuntimeError(f"{name}: non-finite rewards in the throughput run")
    return {
        "env": name if not reset_pool else f"{name} (reset pool: 1 start a step per {reset_ratio} envs)",
        "num_envs": num_envs,
        "reset_pool": reset_pool,
        "chunk": length,
        "steps_per_s": statistics.median(rates),
        "steps_per_s_runs": rates,
        "compile_s": compile_s,
    }


def measure_b1() -> dict[str, Any]:
    """PPO B1 (1 seed, 16 envs, 500k steps), env steps/s over the run time, compile apart."""
    from purejaxlib.algos import ppo
    from purejaxlib.sweep import run_batch

    config = ppo.Config(total_timesteps=500_000, **B1)
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (1,) + np.shape(x)), config)
    keys = jax.random.split(jax.random.key(0), 1)
    _, compile_s, run_s = run_batch(ppo.train, batch, keys, devices=jax.devices()[:1])
    steps = config.num_updates * config.batch_size
    return {"num_envs": config.num_envs, "steps_per_s": steps / run_s, "compile_s": compile_s, "run_s": run_s}


def write_markdown(path: str, report: dict[str, Any]) -> None:
    counts = sorted({r["num_envs"] for r in report["envs"]})
    lines = [
        f"# Raw env throughput (B5), {report['date']}",
        "",
        f"Machine: {report['machine']}; jax {report['jax']} on {report['backend']}.",
        f"Command: `{report['command']}`",
        "",
        "Env steps/s (median of timed repeats, compile excluded); compile seconds in brackets.",
        "",
        "| env | " + " | ".join(f"{n} envs" for n in counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for name in dict.fromkeys(r["env"] for r in report["envs"]):
        cells = []
        for n in counts:
            row = next((r for r in report["envs"] if r["env"] == name and r["num_envs"] == n), None)
            cells.append("n/a" if row is None else f"{row['steps_per_s']:,.0f} ({row['compile_s']:.1f} s)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if report.get("b1"):
        b1 = report["b1"]
        lines += [
            "",
            f"PPO B1 (1 seed, {b1['num_envs']} envs, 500k steps): {b1['steps_per_s']:,.0f} env steps/s, "
            f"{b1['fraction_of_raw']:.1%} of raw CartPole throughput at {b1['num_envs']} envs "
            f"(compile {b1['compile_s']:.1f} s).",
        ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=DEFAULT_ENVS)
    parser.add_argument("--num-envs", nargs="+", type=int, default=[16, 256, 4096])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reset-ratio", type=int, default=0, help="one fresh start per R envs a step (0: off)")
    parser.add_argument("--no-b1", action="store_true", help="skip the PPO B1 run")
    parser.add_argument("--out", default="benchmarks/results/env_throughput", help="path stem ('' for none)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line at the end")
    args = parser.parse_args(argv)
    for name in args.envs:
        envs.check_name(name)  # a typo fails before any timing
    rows = []
    for name in args.envs:
        for n in args.num_envs:
            row = measure_env(name, n, args.seconds, args.repeats, args.reset_ratio)
            print(
                f"{name:24s} {n:5d} envs: {row['steps_per_s']:>14,.0f} steps/s  compile {row['compile_s']:.1f} s",
                flush=True,
            )
            rows.append(row)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "jax": jax.__version__,
        "backend": str(jax.devices()[0].device_kind),
        "command": "python " + " ".join([os.path.relpath(__file__)] + (argv if argv is not None else sys.argv[1:])),
        "envs": rows,
    }
    if not args.no_b1:
        b1 = measure_b1()
        raw = next((r for r in rows if r["env"] == "CartPole-v1" and r["num_envs"] == b1["num_envs"]), None)
        if raw is None:
            raw = measure_env("CartPole-v1", b1["num_envs"], args.seconds, args.repeats)
        b1["raw_steps_per_s"] = raw["steps_per_s"]
        b1["fraction_of_raw"] = b1["steps_per_s"] / raw["steps_per_s"]
        print(
            f"PPO B1: {b1['steps_per_s']:,.0f} env steps/s = {b1['fraction_of_raw']:.1%} of raw CartPole "
            f"at {b1['num_envs']} envs"
        )
        report["b1"] = b1
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out + ".json", "w") as f:
            json.dump(report, f, indent=1)
        write_markdown(args.out + ".md", report)
    if args.json:
        print(json.dumps({**report, **peak_memory()}))
    return report


if __name__ == "__main__":
    main()
