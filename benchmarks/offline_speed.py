"""Offline gradient steps per second, ours beside d3rlpy's, on one dataset file and one config.

    bash benchmarks/setup_d3rlpy.sh                      # d3rlpy's own venv (once)
    python benchmarks/offline_speed.py                   # IQL, TD3+BC, BC on Pendulum medium-expert

Identical config for both: 256x256 networks, batch 256, learning rate 3e-4. Ours: one program per
seed count (1 and 8 seeds vmapped), timed without compile (``SweepResult.run_seconds``) over
``STEPS`` gradient steps. d3rlpy: ``benchmarks/d3rlpy_peer.py``, one run, timed over steps
``500 .. D3RLPY_STEPS`` (its training loop with batch sampling, torch on every core); its 8-seed
figure is 8 such runs one after another, i.e. the 1-seed rate / 8 per run (derived, not run).
Scores are not compared here (runs this short do not learn); see ``benchmarks/offline.py``.
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


def ours(name: str, seeds: int) -> dict:
    import importlib

    import purejaxlib

    module_name, overrides = CASES[name]
    module = importlib.import_module(f"purejaxlib.algos.{module_name}")
    config = module.Config(
        env="Pendulum-v1",
        dataset=str(DATASET),
        hidden=(256, 256),
        batch_size=256,
        lr=3e-4,
        gradient_steps=500,
        offline_updates=STEPS,
        **overrides,
    )
    result = purejaxlib.sweep(module.train, config, seeds=seeds)
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
    (HERE / "results" / "offline_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [
        "| learner | ours, 1 seed (steps/s) | ours, 8 seeds (steps/s per seed) | d3rlpy, 1 run (steps/s) | "
        "1 seed vs d3rlpy | 8 seeds vs 8 d3rlpy runs |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['algo']} | {r['ours_1']['steps_per_second_per_seed']:.0f} | "
            f"{r['ours_8']['steps_per_second_per_seed']:.0f} | {r['d3rlpy']['steps_per_sec']:.0f} | "
            f"{r['ratio_1_seed']:.2f}x | {r['ratio_8_seeds']:.1f}x |"
        )
    (HERE / "results" / "offline_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
