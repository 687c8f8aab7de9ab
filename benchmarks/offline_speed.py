"""Offline gradient steps per second, ours beside d3rlpy's, on one dataset file and one config.

    bash benchmarks/setup_d3rlpy.sh                      # d3rlpy's own venv (once)
    python benchmarks/offline_speed.py                   # IQL, TD3+BC, BC on Pendulum medium-expert

Identical config for both: 256x256 networks, batch 256, learning rate 3e-4. Ours: one program per
seed count (1 and 8 seeds vmapped), timed without compile (``SweepResult.run_seconds``) over
``STEPS`` gradient steps. d3rlpy: ``benchmarks/d3rlpy_peer.py``, one run, timed over steps
``500 .. D3RLPY_STEPS`` (its training loop with batch sampling, torch on every core); its 8-seed
figure is 8 such runs one after another, i.e. the 1-seed rate / 8 per run (derived, not run).
Scores are not compared here (runs this short do not learn); see ``benchmarks/offline.py``.
FLOP rate: XLA's cost analysis of one compiled iteration with one gradient step gives FLOPs per
step; beside it, the rate this CPU reaches on a chain of 256x256 matmuls (the shape that dominates).
``--flops-only`` recomputes those columns into an existing result file without rerunning the timings.
Writes ``results/offline_speed.json`` and ``results/offline_speed.md``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASET = HERE / "data" / "pendulum" / "medium-expert.npz"
PEER = Path(os.environ.get("PEERS_DIR", "/tmp/pjl-peers")) / "d3rlpy" / "bin" / "python"
STEPS = 2_000
D3RLPY_STEPS = 1_500
CASES = {  # name -> (our module, our overrides)
    "iql": ("iql", {}),
    "td3bc": ("td3", {"td3_bc": True}),
    "bc": ("bc", {}),
}


def config(name: str, gradient_steps: int = 500):
    """(module, Config) of one case at the shared benchmark settings."""
    import importlib

    module_name, overrides = CASES[name]
    module = importlib.import_module(f"purejaxlib.algos.{module_name}")
    return module, module.Config(
        env="Pendulum-v1",
        dataset=str(DATASET),
        hidden=(256, 256),
        batch_size=256,
        lr=3e-4,
        gradient_steps=gradient_steps,
        offline_updates=STEPS,
        **overrides,
    )


def flops_per_step(name: str) -> float:
    """XLA's FLOP count of one compiled iteration holding one gradient step."""
    import jax

    module, cfg = config(name, gradient_steps=1)
    state = module.init(cfg, jax.random.key(0))
    analysis = jax.jit(lambda s: module.step(cfg, s)).lower(state).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


def matmul_rate(width: int = 256, chain: int = 2_000, repeats: int = 5) -> float:
    """Median FLOP/s of a jitted chain of (width x width) @ (width x width) matmuls (tanh between)."""
    import statistics
    import time

    import jax
    import jax.numpy as jnp

    w = jnp.full((width, width), 1.0 / width)
    run = jax.jit(lambda x: jax.lax.fori_loop(0, chain, lambda _, y: jnp.tanh(y @ w), x))
    x = jnp.ones((width, width))
    run(x).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x).block_until_ready()
        times.append(time.perf_counter() - start)
    return chain * 2 * width**3 / statistics.median(times)


def add_flops(rows: list[dict]) -> dict:
    """FLOPs per step and achieved FLOP rates into ``rows``; returns the matmul reference rate."""
    peak = matmul_rate()
    for r in rows:
        f = flops_per_step(r["algo"])
        r["flops_per_step"] = f
        r["ours_1"]["gflops_per_second"] = f * r["ours_1"]["steps_per_second_per_seed"] / 1e9
        r["ours_8"]["gflops_per_second"] = f * 8 * r["ours_8"]["steps_per_second_per_seed"] / 1e9
        r["d3rlpy"]["gflops_per_second_at_our_count"] = f * r["d3rlpy"]["steps_per_sec"] / 1e9
    return {"matmul_256_gflops_per_second": peak / 1e9}


def table(rows: list[dict], meta: dict) -> str:
    lines = [
        "| learner | ours, 1 seed (steps/s) | ours, 8 seeds (steps/s per seed) | d3rlpy, 1 run (steps/s) | "
        "1 seed vs d3rlpy | 8 seeds vs 8 d3rlpy runs | MFLOP/step | GFLOP/s ours 1 / 8 seeds / d3rlpy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        flops = r.get("flops_per_step")
        rates = (
            f"{r['ours_1']['gflops_per_second']:.0f} / {r['ours_8']['gflops_per_second']:.0f} / "
            f"{r['d3rlpy']['gflops_per_second_at_our_count']:.0f}"
            if flops
            else "-"
        )
        lines.append(
            f"| {r['algo']} | {r['ours_1']['steps_per_second_per_seed']:.0f} | "
            f"{r['ours_8']['steps_per_second_per_seed']:.0f} | {r['d3rlpy']['steps_per_sec']:.0f} | "
            f"{r['ratio_1_seed']:.2f}x | {r['ratio_8_seeds']:.1f}x | "
            f"{flops / 1e6 if flops else float('nan'):.0f} | {rates} |"
        )
    if "matmul_256_gflops_per_second" in meta:
        lines.append("")
        lines.append(
            f"Reference: a jitted chain of 256x256 matmuls runs at "
            f"{meta['matmul_256_gflops_per_second']:.0f} GFLOP/s on this machine "
            f"({meta['machine']}, {meta.get('flops_date', meta['date'])})."
        )
    return "\n".join(lines) + "\n"


def ours(name: str, seeds: int) -> dict:
    import purejaxlib

    module, cfg = config(name)
    result = purejaxlib.sweep(module.train, cfg, seeds=seeds)
    return {
        "seeds": seeds,
        "steps": STEPS,
        "run_seconds": result.run_seconds,
        "compile_seconds": result.compile_seconds,
        "steps_per_second_per_seed": STEPS / result.run_seconds,
    }


def theirs(name: str) -> dict:
    args = {
        "algo": name,
        "dataset": str(DATASET),
        "steps": D3RLPY_STEPS,
        "seed": 0,
        "hidden": [256, 256],
        "batch_size": 256,
        "eval_episodes": 1,
        "threads": os.cpu_count() or 1,
    }
    out = subprocess.run(
        [str(PEER), str(HERE / "d3rlpy_peer.py"), json.dumps(args)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    out_json = HERE / "results" / "offline_speed.json"
    if "--flops-only" in sys.argv:
        saved = json.loads(out_json.read_text())
        saved["meta"].update(add_flops(saved["rows"]))
        saved["meta"]["flops_date"] = datetime.date.today().isoformat()
        out_json.write_text(json.dumps(saved, indent=1) + "\n")
        (HERE / "results" / "offline_speed.md").write_text(table(saved["rows"], saved["meta"]))
        print(table(saved["rows"], saved["meta"]))
        return
    if not PEER.is_file():
        raise SystemExit(f"no d3rlpy venv at {PEER}; run benchmarks/setup_d3rlpy.sh first")
    if not DATASET.is_file():
        raise SystemExit(f"no dataset at {DATASET}; run benchmarks/offline.py (it makes the datasets) first")
    import jax

    rows = []
    for name in CASES:
        one, eight, peer = ours(name, 1), ours(name, 8), theirs(name)
        rate = peer["steps_per_sec"]
        rows.append(
            {
                "algo": name,
                "ours_1": one,
                "ours_8": eight,
                "d3rlpy": peer,
                "ratio_1_seed": one["steps_per_second_per_seed"] / rate,
                "ratio_8_seeds": 8 * eight["steps_per_second_per_seed"] / rate,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "jax": jax.__version__,
        "dataset": str(DATASET.relative_to(HERE.parent)),
    }
    meta.update(add_flops(rows))
    out_json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (HERE / "results" / "offline_speed.md").write_text(table(rows, meta))
    print(table(rows, meta))


if __name__ == "__main__":
    sys.exit(main())
