"""Gap to the Riccati optimum: PPO and SAC on the LQR family at n = 2, 8, 32; writes
results/lqr_gap.json and lqr_gap.md.

    python benchmarks/lqr_gap.py                                   # PPO and SAC at n = 2, 8, 32
    python benchmarks/lqr_gap.py --algos ppo --sizes 2 --seeds 4   # a subset

For each state dimension n the system is ``LQR:n=<n>,m=<max(1, n // 2)>`` (seed 0, stable unless
--unstable): m grows with n so the control problem stays comparably hard. Each algorithm trains
``--seeds`` seeds vmapped in one program; each trained (deterministic) policy and the Riccati
policy u = -K x are rolled out from the same initial states, and ``gap = mean discounted cost of
the policy / that of the Riccati policy - 1`` at the training discount. The analytic optimum is
reported beside the Riccati rollout as a check, and the zero policy's gap as a scale.
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
from purejaxlib.algos import ppo, sac
from purejaxlib.envs import lqr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, cpu_name

GAMMA = 0.99
EPISODES, HORIZON = 2048, 200
# PPO: one episode per env per update, no entropy bonus, reward normalization; its Gaussian starts
# at std e^-1, or e^-2.5 at n = 32 (make_config), where the optimal actions are a few times smaller
# relative to the action bound and wider noise drives the state into its bound. PPO at n = 2
# without reward normalization is the learning test in tests/test_lqr.py.
PPO_SETTINGS = dict(
    num_envs=16,
    num_steps=50,
    num_minibatches=4,
    update_epochs=8,
    ent_coef=0.0,
    lr=1e-3,
    hidden=(64, 64),
    normalize_reward=True,
)
# SAC: its Pendulum settings, untuned beyond that
SAC_SETTINGS = dict(hidden=(64, 64), lr=1e-3, tau=0.02, batch_size=128)
# env steps per seed for each n
BUDGET = {"ppo": {2: 200_000, 8: 500_000, 32: 1_000_000}, "sac": {2: 10_000, 8: 50_000, 32: 50_000}}


def env_name(n: int, stable: bool) -> str:
    return f"LQR:n={n},m={max(1, n // 2)}" + ("" if stable else ",stable=False")


def make_config(algo: str, name: str, n: int, steps: int):
    if algo == "ppo":
        return ppo, ppo.Config(
            env=name, total_timesteps=steps, gamma=GAMMA, log_std_init=-2.5 if n >= 32 else -1.0, **PPO_SETTINGS
        )
    return sac, sac.Config(env=name, total_timesteps=steps, gamma=GAMMA, **SAC_SETTINGS)


def measure(algo: str, n: int, seeds: int, stable: bool, steps: int | None) -> dict:
    name = env_name(n, stable)
    steps = steps or BUDGET[algo].get(n, max(BUDGET[algo].values()))
    module, config = make_config(algo, name, n, steps)
    _, params = envs.make(name)
    keys = jax.random.split(jax.random.key(0), seeds)
    train = jax.jit(jax.vmap(lambda k: module.train(config, k).state))
    start = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    states = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start

    K, _ = lqr.optimal(params, GAMMA)
    eval_key = jax.random.key(100)  # one key: every policy meets the same initial states
    riccati = lqr.rollout_cost(params, lqr.linear_policy(K), eval_key, GAMMA, EPISODES, HORIZON).mean()
    zero = lqr.rollout_cost(params, lqr.linear_policy(np.zeros_like(K)), eval_key, GAMMA, EPISODES, HORIZON).mean()
    costs = []
    for i in range(seeds):
        state = jax.tree.map(lambda x, i=i: x[i], states)
        act = module.policy(config, state, deterministic=True)
        costs.append(float(lqr.rollout_cost(params, act, eval_key, GAMMA, EPISODES, HORIZON).mean()))
    gaps = [lqr.gap(c, riccati) for c in costs]
    changed = {k: v for k, v in config.to_dict().items() if k not in ("env", "total_timesteps")}
    changed = {k: (list(v) if isinstance(v, tuple) else v) for k, v in changed.items()}
    return {
        "algo": algo,
        "n": n,
        "m": max(1, n // 2),
        "env": name,
        "stable": stable,
        "gamma": GAMMA,
        "seeds": seeds,
        "env_steps_per_seed": steps,
        "config": changed,
        "optimal_cost_analytic": lqr.optimal_cost(params, GAMMA),
        "riccati_rollout_cost": float(riccati),
        "zero_policy_gap": lqr.gap(zero, riccati),
        "policy_costs": costs,
        "gaps": gaps,
        "gap_mean": float(np.mean(gaps)),
        "gap_worst": float(np.max(gaps)),
        "compile_s": compile_s,
        "train_s": run_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", choices=["ppo", "sac"], default=["ppo", "sac"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed for every run (default: BUDGET)")
    parser.add_argument("--unstable", action="store_true", help="spectral radius 1.1 instead of 0.9")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    rows = []
    for algo in args.algos:
        for n in args.sizes:
            rows.append(measure(algo, n, args.seeds, not args.unstable, args.steps))
            print(json.dumps(rows[-1]), flush=True)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "evaluation": (
            f"{EPISODES} episodes x {HORIZON} steps per policy, paired initial states, discounted cost, gamma {GAMMA}"
        ),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lqr_gap.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; command: `{meta['command']}`",
        "",
        f"gap = mean discounted cost (gamma {GAMMA}) of the trained deterministic policy / the Riccati policy's - 1, "
        f"both over the same {EPISODES} initial states, {HORIZON}-step rollouts. Settings in the script.",
        "",
        "| algorithm | system | env steps per seed | seeds | optimal cost (analytic / rollout) | gap per seed "
        "| mean gap | zero-policy gap | compile s | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['algo'].upper()} | {r['env']} | {r['env_steps_per_seed']:,} | {r['seeds']} | "
            f"{r['optimal_cost_analytic']:.3f} / {r['riccati_rollout_cost']:.3f} | "
            f"{', '.join(f'{g:+.1%}' for g in r['gaps'])} | {r['gap_mean']:+.1%} | {r['zero_policy_gap']:+.0%} | "
            f"{r['compile_s']:.1f} | {r['train_s']:.1f} |"
        )
    (out / "lqr_gap.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
