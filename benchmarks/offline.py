"""Offline RL learning table: every offline learner on the package's own datasets, 4 seeds each.

    python benchmarks/offline.py                  # make the datasets if missing, run every cell
    python benchmarks/offline.py --only iql       # cells whose name contains "iql"
    python benchmarks/offline.py --report         # table from the results so far

Datasets: ``experiments/make_dataset.py`` with its presets (SAC expert on Pendulum-v1, DQN expert
on CartPole-v1, seed 0) into ``benchmarks/data/<env>/`` (not committed; remade when missing).
Each cell trains 4 seeds in one program (``purejaxlib.sweep``), then plays 32 deterministic
episodes per seed; a seed's score is the normalized return of those episodes
(``100 * (R - random) / (expert - random)`` with the dataset's reference returns). Results:
``benchmarks/results/offline/<cell>.json`` (resumable: a cell whose config changed is rerun),
``results/offline.md`` (the table, published into the README) and ``results/offline.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "results"
CELLS_DIR = RESULTS / "offline"
LEVELS = ("medium", "medium-replay", "medium-expert")
SEEDS = 4
EPISODES = 32

DATASETS = {  # env -> make_dataset.py arguments
    "Pendulum-v1": ["--env", "Pendulum-v1", "--algo", "sac"],
    "CartPole-v1": ["--env", "CartPole-v1", "--algo", "dqn"],
}


class Learner(NamedTuple):
    name: str
    label: str
    module: str
    overrides: dict[str, Any]


SMALL = dict(hidden=(64, 64), batch_size=256, gradient_steps=1000)
LEARNERS = {
    "CartPole-v1": [
        Learner("bc", "BC", "bc", dict(SMALL, offline_updates=10_000)),
        Learner("iql", "IQL (discrete)", "iql", dict(SMALL, offline_updates=10_000)),
        Learner("cql", "CQL (DQN)", "dqn", dict(SMALL, offline_updates=10_000, cql=True, n_step=1)),
    ],
    # continuous: observations standardized by the dataset's statistics (TD3+BC's recipe; without it
    # TD3+BC scored 5-8 on medium-expert, with it 90-94, tuning seeds 100-101, 20k steps)
    "Pendulum-v1": [
        Learner("bc", "BC", "bc", dict(SMALL, offline_updates=50_000, normalize_obs=True)),
        Learner("td3bc", "TD3+BC", "td3", dict(SMALL, offline_updates=50_000, td3_bc=True, normalize_obs=True)),
        Learner(
            "rebrac",
            "ReBRAC",
            "td3",
            dict(
                SMALL,
                offline_updates=50_000,
                td3_bc=True,
                layer_norm=True,
                critic_bc=0.1,
                bc_alpha=1.0,
                normalize_obs=True,
            ),
        ),
        # temperature 10 and 20k steps chosen on tuning seeds 100-101 (medium-expert: temperature 3
        # gave 63/72, 10 gave 98/70 at 20k steps and 85/46 at 50k); benchmarks/README.md has the probes
        Learner("iql", "IQL", "iql", dict(SMALL, offline_updates=20_000, normalize_obs=True, temperature=10.0)),
        # each sampled action costs a critic pass per state: 2 of each kind (6) and 20k steps keep CQL
        # CPU-sized (50k took over 15 min per cell on the 2 loaded cores)
        Learner(
            "cql",
            "CQL (SAC, 6 samples)",
            "sac",
            # cql_alpha 10 on tuning seeds 100-101 (medium-expert: 1 gave -30/-12, 5 gave 6/20, 10 gave 24/72)
            dict(SMALL, offline_updates=20_000, cql=True, cql_samples=2, cql_alpha=10.0, normalize_obs=True),
        ),
    ],
}


def cell_name(env: str, learner: Learner, level: str) -> str:
    return f"{learner.name}-{env.split('-')[0].lower()}-{level}"


def ensure_datasets(env: str) -> Path:
    out = DATA / env.split("-")[0].lower()
    if not all((out / f"{level}.npz").is_file() for level in LEVELS):
        cmd = [sys.executable, str(ROOT / "experiments" / "make_dataset.py"), *DATASETS[env], "--out", str(out)]
        print("making datasets:", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def run_cell(env: str, learner: Learner, level: str, data_dir: Path) -> dict[str, Any]:
    import importlib

    import jax
    import numpy as np

    import purejaxlib
    from purejaxlib import offline, stats

    module = importlib.import_module(f"purejaxlib.algos.{learner.module}")
    path = data_dir / f"{level}.npz"
    config = module.Config(env=env, dataset=str(path), **learner.overrides)
    dataset = offline.load(path, env)
    t0 = time.perf_counter()
    swept = purejaxlib.sweep(module.train, config, seeds=SEEDS)
    wall = time.perf_counter() - t0
    returns = purejaxlib.evaluate_sweep(swept, jax.random.key(1234), EPISODES).returns  # [seeds, episodes]
    scores = offline.normalized_score(np.asarray(returns).mean(-1), dataset.info)
    point, low, high = stats.stratified_bootstrap_ci(scores)
    return {
        "cell": cell_name(env, learner, level),
        "env": env,
        "learner": learner.label,
        "level": level,
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in learner.overrides.items()},
        "dataset": {
            "path": str(path.relative_to(ROOT)),
            "transitions": len(dataset),
            "return_mean": offline.statistics(dataset)["return_mean"],
            "normalized": float(offline.normalized_score(offline.statistics(dataset)["return_mean"], dataset.info)),
            "random_return": dataset.info["random_return"],
            "expert_return": dataset.info["expert_return"],
        },
        "scores": scores.tolist(),
        "returns": np.asarray(returns).mean(-1).tolist(),
        "iqm": point,
        "ci": [low, high],
        "gradient_steps": config.offline_updates,
        "compile_seconds": swept.compile_seconds,
        "run_seconds": swept.run_seconds,
        "wall_seconds": wall,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.date.today().isoformat(),
        "jax": jax.__version__,
    }


def report() -> str:
    rows = [json.loads(p.read_text()) for p in sorted(CELLS_DIR.glob("*.json"))]
    lines = [
        "| env | level (data's score) | learner | normalized score IQM [95% CI] | worst seed | grad steps | s |",
        "|---|---|---|---|---|---|---|",
    ]
    order = {
        (env, lv.name, level): i
        for i, (env, lv, level) in enumerate(
            (e, learner, level) for e, ls in LEARNERS.items() for level in LEVELS for learner in ls
        )
    }
    rows.sort(key=lambda r: order.get((r["env"], r["cell"].split("-")[0], r["level"]), 1_000))
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['level']} ({round(r['dataset']['normalized']):d}) | {r['learner']} | "
            f"{r['iqm']:.1f} [{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] | {min(r['scores']):.1f} | "
            f"{r['gradient_steps']:,} | {r['run_seconds']:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    (RESULTS / "offline.md").write_text(table)
    (RESULTS / "offline.json").write_text(json.dumps(rows, indent=1) + "\n")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run only cells whose name contains this")
    parser.add_argument("--report", action="store_true", help="only print the table of results so far")
    args = parser.parse_args(argv)
    CELLS_DIR.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for env, learners in LEARNERS.items():
            for level in LEVELS:
                for learner in learners:
                    name = cell_name(env, learner, level)
                    if args.only and args.only not in name:
                        continue
                    out = CELLS_DIR / f"{name}.json"
                    want = {k: list(v) if isinstance(v, tuple) else v for k, v in learner.overrides.items()}
                    if out.is_file() and json.loads(out.read_text())["overrides"] == want:
                        continue
                    data_dir = ensure_datasets(env)
                    result = run_cell(env, learner, level, data_dir)
                    tmp = out.with_suffix(".tmp")
                    tmp.write_text(json.dumps(result, indent=1) + "\n")
                    tmp.replace(out)
                    print(
                        f"{name}: IQM {result['iqm']:.1f} [{result['ci'][0]:.1f}, {result['ci'][1]:.1f}] "
                        f"({result['run_seconds']:.0f} s)",
                        flush=True,
                    )
    print(report())


if __name__ == "__main__":
    main()
