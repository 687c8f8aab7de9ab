"""Gap to the Riccati optimum: SAC on the LQR family at n = 2, 8, 32; writes
results/lqr_gap.json and lqr_gap.md.

    python benchmarks/lqr_gap.py                       # n = 2, 8, 32, the budgets below
    python benchmarks/lqr_gap.py --sizes 2 --seeds 4   # a subset

For each state dimension n the system is ``LQR:n=<n>,m=<max(1, n // 2)>`` (seed 0, stable unless
--unstable), with m growing with n so the control problem stays comparably hard: with a single
input a 32-state system is barely steerable and doing nothing is already within ~10% of the
optimum. SAC trains ``--seeds`` seeds vmapped in one program; each trained policy
(deterministic) and the Riccati policy u = -K x are then rolled out on the same initial states
(2048 episodes of 200 steps, the env's dynamics), and

    gap = mean discounted cost of the policy / mean discounted cost of the Riccati policy - 1

with the training discount. The analytic optimum (init_scale^2 / 3 tr P) is reported beside the
Riccati rollout as a check, and the zero policy's gap as a scale ("doing nothing").
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

from purejaxlib import envs
from purejaxlib.algos import sac
from purejaxlib.envs import lqr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, cpu_name  # noqa: E402

# Env steps per seed for each n (more dimensions, more to learn), and SAC's settings: those of
# the n = 2 learning test (tests/test_lqr.py), wider networks for larger n.
BUDGET = {2: 8_000, 8: 20_000, 32: 40_000}
SAC_SETTINGS = dict(lr=1e-3, tau=0.02, batch_size=128)
HIDDEN = {2: (64, 64), 8: (128, 128), 32: (256, 256)}
EPISODES, HORIZON = 2048, 200


def env_name(n: int, stable: bool) -> str:
    return f"LQR:n={n},m={max(1, n // 2)}" + ("" if stable else ",stable=False")


def measure(n: int, seeds: int, stable: bool, gamma: float, steps: int | None) -> dict:
    name = env_name(n, stable)
    steps = steps or BUDGET.get(n, 40_000)
    config = sac.Config(env=name, total_timesteps=steps, hidden=HIDDEN.get(n, (256, 256)), gamma=gamma, **SAC_SETTINGS)
    _, params = envs.make(name)
    keys = jax.random.split(jax.random.key(0), seeds)
    train = jax.jit(jax.vmap(lambda k: sac.train(config, k).state))
    start = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    states = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start

    K, _ = lqr.optimal(params, gamma)
    eval_key = jax.random.key(100)  # one key: every policy meets the same initial states
    riccati = lqr.rollout_cost(params, lqr.linear_policy(K), eval_key, gamma, EPISODES, HORIZON).mean()
    zero = lqr.rollout_cost(params, lqr.linear_policy(np.zeros_like(K)), eval_key, gamma, EPISODES, HORIZON).mean()
    costs = []
    for i in range(seeds):
        state = jax.tree.map(lambda x: x[i], states)
        act = sac.policy(config, state, deterministic=True)
        costs.append(float(lqr.rollout_cost(params, act, eval_key, gamma, EPISODES, HORIZON).mean()))
    gaps = [lqr.gap(c, riccati) for c in costs]
    return {
        "n": n,
        "m": max(1, n // 2),
        "env": name,
        "stable": stable,
        "gamma": gamma,
        "seeds": seeds,
        "env_steps_per_seed": steps,
        "config": {"hidden": list(config.hidden), **SAC_SETTINGS},
        "optimal_cost_analytic": lqr.optimal_cost(params, gamma),
        "riccati_rollout_cost": float(riccati),
        "zero_policy_gap": lqr.gap(zero, riccati),
        "policy_costs": costs,
        "gaps": gaps,
        "gap_mean": float(np.mean(gaps)),
        "gap_median": float(np.median(gaps)),
        "gap_worst": float(np.max(gaps)),
        "compile_s": compile_s,
        "train_s": run_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed for every size (default: per-size budget)")
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--unstable", action="store_true", help="spectral radius 1.1 instead of 0.9")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    rows = []
    for n in args.sizes:
        rows.append(measure(n, args.seeds, not args.unstable, args.gamma, args.steps))
        print(json.dumps(rows[-1]), flush=True)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "evaluation": f"{EPISODES} episodes x {HORIZON} steps per policy, paired initial states, discounted cost",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lqr_gap.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; command: `{meta['command']}`",
        "",
        f"SAC ({', '.join(f'{k}={v}' for k, v in SAC_SETTINGS.items())}), gamma={args.gamma}; gap = mean discounted "
        f"cost / Riccati policy's - 1 over {EPISODES} shared initial states, {HORIZON}-step rollouts.",
        "",
        "| system | hidden | env steps per seed | seeds | optimal cost (analytic / rollout) | gap per seed | mean gap | zero-policy gap | compile s | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {'x'.join(map(str, r['config']['hidden']))} | {r['env_steps_per_seed']:,} | {r['seeds']} | "
            f"{r['optimal_cost_analytic']:.3f} / {r['riccati_rollout_cost']:.3f} | "
            f"{', '.join(f'{g:+.1%}' for g in r['gaps'])} | {r['gap_mean']:+.1%} | {r['zero_policy_gap']:+.0%} | "
            f"{r['compile_s']:.1f} | {r['train_s']:.1f} |"
        )
    (out / "lqr_gap.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
