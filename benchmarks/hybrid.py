"""Online learning with offline data: env steps to a return threshold on Pendulum-v1, RLPD (SAC
with a medium dataset mixed into every batch) against SAC from scratch, 8 seeds each.

    python benchmarks/hybrid.py                  # every method without a result yet (--rerun: all)
    python benchmarks/hybrid.py --only rlpd      # methods whose name contains "rlpd"
    python benchmarks/hybrid.py --report         # the table from the results so far

The dataset is the offline table's Pendulum medium level (``experiments/make_dataset.py --env
Pendulum-v1 --algo sac --out benchmarks/data/pendulum``, normalized score 33; made when
missing). Each method trains its 8 seeds vmapped in one program; every ``EVAL_EVERY`` env steps
each seed plays ``EPISODES`` deterministic episodes (:func:`purejaxlib.evaluation.periodic`). A
seed's steps to threshold is the first evaluation at or above ``THRESHOLD`` (a seed that never
gets there counts as its budget and is listed); the table gives their IQM with a stratified-
bootstrap 95% interval (:mod:`purejaxlib.stats`), and the final evaluation's IQM.
Results: ``results/hybrid/<method>.json``, ``results/hybrid.md``.
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
DATA = HERE / "data" / "pendulum" / "medium.npz"
OUT = HERE / "results" / "hybrid"
SEEDS = 8
EPISODES = 8
EVAL_EVERY = 250
THRESHOLD = -200.0

# The time-to-threshold table's SAC config (benchmarks/run_threshold.py) is the SAC methods' base.
BASE = dict(env="Pendulum-v1", hidden=(64, 64), lr=1e-3, tau=0.02)
RLPD_NO_DATA = dict(num_critics=10, target_subset=2, actor_mean_q=True, layer_norm=True, gradient_steps=10)
# IQL: the offline table's Pendulum cell (64x64, temperature 10, standardized observations, 20k
# gradient steps), then online with the dataset in its replay buffer.
IQL_OFFLINE = dict(
    hidden=(64, 64), batch_size=256, gradient_steps=1000, offline_updates=20_000, temperature=10.0, normalize_obs=True
)
IQL_ONLINE = dict(
    env="Pendulum-v1", hidden=(64, 64), batch_size=256, temperature=10.0, normalize_obs=True, learning_starts=0,
    buffer_size=60_000, total_timesteps=10_000, seed_data=str(DATA),
)  # fmt: skip


class Method(NamedTuple):
    label: str
    module: str
    online: dict[str, Any]
    offline: dict[str, Any] | None = None  # an offline run on DATA first, whose learner continues online
    guide: dict[str, Any] | None = None  # an offline IQL run on DATA first, whose policy is the jump-start guide


METHODS: dict[str, Method] = {
    "sac": Method("SAC from scratch (UTD 1)", "sac", dict(BASE, total_timesteps=10_000)),
    "sac-rlpd-no-data": Method(
        "RLPD's SAC without the dataset (UTD 10, 10 LayerNorm critics, subset 2)",
        "sac",
        dict(BASE, **RLPD_NO_DATA, total_timesteps=3_000),
    ),
    "rlpd": Method(
        "RLPD, medium dataset (UTD 10)", "sac", dict(BASE, total_timesteps=3_000, rlpd=True, learning_starts=0)
    ),
    "sac-jump-start": Method(
        "SAC jump-started by the offline IQL policy (guide 100 steps, 5 stages)",
        "sac",
        dict(BASE, total_timesteps=10_000, guide_steps=100, guide_stages=5, guide_episodes=5, guide_return=0.0),
        guide=IQL_OFFLINE,
    ),
    "iql-finetune": Method("IQL offline (20k steps), then online (UTD 1)", "iql", IQL_ONLINE, IQL_OFFLINE),
}


def make_config(module: Any, overrides: dict[str, Any]) -> Any:
    fields = dict(overrides)
    if fields.pop("rlpd", False):
        return module.rlpd_config(prior_data=str(DATA), **fields)
    return module.Config(**fields)


def steps_to_threshold(eval_return: Any, steps: Any, budget: int) -> tuple[list[float], list[bool]]:
    """Per seed: env steps at the first evaluation at or above THRESHOLD (budget if none), reached?"""
    import numpy as np

    out, reached = [], []
    for row in np.asarray(eval_return):
        hit = np.flatnonzero(row >= THRESHOLD)
        out.append(float(steps[hit[0]]) if hit.size else float(budget))
        reached.append(bool(hit.size))
    return out, reached


def run(name: str) -> dict[str, Any]:
    import importlib

    import jax
    import numpy as np

    from purejaxlib import evaluation, offpolicy, stats, training
    from purejaxlib.algos import iql

    method = METHODS[name]
    module = importlib.import_module(f"purejaxlib.algos.{method.module}")
    config = make_config(module, method.online)
    offline_config = None
    if method.offline is not None:
        offline_config = module.Config(env=config.env, dataset=str(DATA), **method.offline)
    every = EVAL_EVERY // config.steps_per_iteration
    extra = evaluation.periodic(jax.random.key(1), every, EPISODES)

    guide_config = None
    if method.guide is not None:  # the guide's return (measured per seed) replaces guide_return
        guide_config = iql.Config(env=config.env, dataset=str(DATA), **method.guide)

    def one(key: jax.Array) -> dict[str, jax.Array]:
        step = module.step
        if guide_config is not None:
            guide_key, key = jax.random.split(key)
            guide_state = iql.train(guide_config, guide_key).state
            act = iql.policy(guide_config, guide_state, deterministic=True)
            start = evaluation.evaluate(guide_config, guide_state, jax.random.key(2), EPISODES, deterministic=True)
            start = start.returns.mean()
            run_config = config.replace(guide_return=start)
            algo = module.ALGORITHM._replace(guide=act)
            state = offpolicy.init(run_config, key, algo)
            _, metrics = training.scan_updates(
                lambda c, s, i: offpolicy.step(c, s, algo, i), run_config, state, 0, config.num_updates, extra
            )
            return {"eval_return": metrics["eval_return"], "env_steps": metrics["env_steps"], "start": start,
                    "guide_steps": metrics["guide_steps"]}  # fmt: skip
        if offline_config is None:
            state = module.init(config, key)
            start = jax.numpy.float32(jax.numpy.nan)
        else:
            offline_key, key = jax.random.split(key)
            learner = module.train(offline_config, offline_key).state.learner
            state = offpolicy.handover(config, learner, key, module.ALGORITHM)
            start = evaluation.evaluate(config, state, jax.random.key(2), EPISODES, deterministic=True).returns.mean()
        _, metrics = training.scan_updates(step, config, state, 0, config.num_updates, extra)
        return {"eval_return": metrics["eval_return"], "env_steps": metrics["env_steps"], "start": start}

    keys = jax.random.split(jax.random.key(0), SEEDS)
    began = time.perf_counter()
    metrics = jax.tree.map(np.asarray, jax.jit(jax.vmap(one))(keys))
    wall = time.perf_counter() - began
    evaluated = ~np.isnan(metrics["eval_return"][0])
    curve = metrics["eval_return"][:, evaluated]
    steps = metrics["env_steps"][0, evaluated]
    to_threshold, reached = steps_to_threshold(curve, steps, config.total_timesteps)
    point, low, high = stats.stratified_bootstrap_ci(np.asarray(to_threshold))
    final = stats.stratified_bootstrap_ci(curve[:, -1])
    result: dict[str, Any] = {
        "method": name,
        "label": method.label,
        "module": method.module,
        "online": {k: (list(v) if isinstance(v, tuple) else v) for k, v in method.online.items()},
        "offline": None if method.offline is None else {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in method.offline.items()
        },
        "dataset": str(DATA.relative_to(ROOT)),
        "seeds": SEEDS,
        "threshold": THRESHOLD,
        "steps_to_threshold": to_threshold,
        "reached": reached,
        "iqm_steps": point,
        "ci_steps": [low, high],
        "final_iqm": final[0],
        "final_ci": [final[1], final[2]],
        "eval_steps": steps.tolist(),
        "eval_return": curve.tolist(),
        "wall_s": wall,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "jax": jax.__version__,
        "command": f"python benchmarks/hybrid.py --only {name}",
    }  # fmt: skip
    if guide_config is not None:  # the guide's own return, and its share of each episode over the run
        result["guide_returns"] = metrics["start"].tolist()
        result["guide_steps_final"] = metrics["guide_steps"][:, -1].tolist()
        result["guide_steps_curve"] = metrics["guide_steps"][:, evaluated].tolist()
    if offline_config is not None:  # the offline score, and the worst dip below it once online
        start = metrics["start"]
        dip = start - np.minimum(curve.min(axis=1), start)
        result["start_returns"] = start.tolist()
        result["start_iqm"], *result_ci = stats.stratified_bootstrap_ci(start)
        result["start_ci"] = result_ci
        result["worst_dip"] = dip.tolist()
        result["dip_iqm"], *dip_ci = stats.stratified_bootstrap_ci(dip)
        result["dip_ci"] = dip_ci
        result["final_above_start"] = int((curve[:, -1] > start).sum())
    return result


def report() -> str:
    lines = [
        f"| method | env steps to {THRESHOLD:.0f}: IQM [95% CI] | seeds reached | final eval: IQM [95% CI] | "
        "budget | wall s |",
        "|---|---|---|---|---|---|",
    ]
    finetuned = []
    for name in METHODS:
        path = OUT / f"{name}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        budget = r["eval_steps"][-1]
        lines.append(
            f"| {r['label']} | {r['iqm_steps']:,.0f} [{r['ci_steps'][0]:,.0f}, {r['ci_steps'][1]:,.0f}] | "
            f"{sum(r['reached'])} of {r['seeds']} | {r['final_iqm']:.0f} [{r['final_ci'][0]:.0f}, "
            f"{r['final_ci'][1]:.0f}] | {budget:,} | {r['wall_s']:.0f} |"
        )
        if "start_iqm" in r:
            finetuned.append(
                f"| {r['label']} | {r['start_iqm']:.0f} [{r['start_ci'][0]:.0f}, {r['start_ci'][1]:.0f}] | "
                f"{r['final_iqm']:.0f} [{r['final_ci'][0]:.0f}, {r['final_ci'][1]:.0f}] | "
                f"{r['final_above_start']} of {r['seeds']} | {r['dip_iqm']:.0f} [{r['dip_ci'][0]:.0f}, "
                f"{r['dip_ci'][1]:.0f}] (max {max(r['worst_dip']):.0f}) |"
            )
    if finetuned:
        lines += [
            "",
            "| offline to online | offline score (return): IQM [95% CI] | final online | seeds above offline | "
            "worst dip after the switch: IQM [95% CI] |",
            "|---|---|---|---|---|",
            *finetuned,
        ]
    table = "\n".join(lines) + "\n"
    (HERE / "results" / "hybrid.md").write_text(table)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run the methods whose name contains this")
    parser.add_argument("--report", action="store_true", help="print the table from the results so far")
    parser.add_argument("--rerun", action="store_true", help="run methods that already have a result too")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # a single method, in this process
    args = parser.parse_args(argv)
    if args.one:
        OUT.mkdir(parents=True, exist_ok=True)
        result = run(args.one)
        (OUT / f"{args.one}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(f"{args.one}: {result['iqm_steps']:.0f} steps {result['ci_steps']}, final {result['final_iqm']:.0f}")
        return
    if not args.report:
        if not DATA.is_file():
            cmd = [sys.executable, str(ROOT / "experiments" / "make_dataset.py"), "--env", "Pendulum-v1"]
            subprocess.run([*cmd, "--algo", "sac", "--out", str(DATA.parent)], check=True)
        for name in METHODS:
            if args.only not in name or ((OUT / f"{name}.json").is_file() and not args.rerun):
                continue
            else:  # each method in a fresh process: its own compile and memory
                subprocess.run([sys.executable, __file__, "--one", name], check=True)
    print(report())


if __name__ == "__main__":
    main()
