"""What the recurrent torsos and the critic-free advantages cost: PPO training throughput on
CartPole-v1 per variant, as ratios to the feed-forward GAE baseline measured in the same run.

    python benchmarks/policy_variants.py [--seeds 8] [--updates 50] [--repeats 5]

Every variant trains ``seeds`` agents in one program (vmap) for ``updates`` updates of the same
rollout size (16 envs x 128 steps, 4 epochs x 4 minibatches); only the torso or advantage mode
changes, so the ratios isolate the variant's own cost. Each figure is the median of ``repeats``
timed runs after a compile run, variant after variant. Writes benchmarks/results/policy_variants.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

from purejaxlib.algos import ppo

RESULTS = Path(__file__).resolve().parent / "results"
BASE = dict(env="CartPole-v1", num_envs=16, num_steps=128, num_minibatches=4, update_epochs=4)
VARIANTS = {
    "mlp (gae)": {},
    "gru 128 (gae)": dict(recurrent="gru", cell_size=128),
    "lstm 128 (gae)": dict(recurrent="lstm", cell_size=128),
    "mlp (reinforce)": dict(advantage="reinforce"),
    "mlp (rloo, K=4)": dict(advantage="rloo", group_size=4),
    "mlp (group, K=4, KL)": dict(advantage="group", group_size=4, ref_kl_coef=0.04),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    keys = jax.random.split(jax.random.key(0), args.seeds)
    times = {}
    for name, fields in VARIANTS.items():
        config = ppo.Config(total_timesteps=args.updates * 16 * 128, **BASE, **fields)
        run = jax.jit(jax.vmap(lambda k, c=config: ppo.train(c, k).metrics["loss"]))
        start = time.perf_counter()
        jax.block_until_ready(run(keys))  # compile
        print(f"{name}: compiled and ran once in {time.perf_counter() - start:.1f} s", flush=True)
        times[name] = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(run(keys))
            times[name].append(time.perf_counter() - start)
    steps = args.seeds * args.updates * 16 * 128
    base = float(np.median(times["mlp (gae)"]))
    rows = [
        {
            "variant": name,
            "median_s": float(np.median(t)),
            "env_steps_per_s": steps / float(np.median(t)),
            "time_vs_mlp_gae": float(np.median(t)) / base,
        }
        for name, t in times.items()
    ]
    record = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {jax.device_count()} "
        f"{jax.devices()[0].platform} device(s), {len(__import__('os').sched_getaffinity(0))} cores",
        "command": "python benchmarks/policy_variants.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "policy_variants.json").write_text(json.dumps(record, indent=2))
    lines = [
        f"{record['date']}, {record['machine']}: `{record['command']}`",
        "",
        "| variant | median s | env steps/s | time vs mlp (gae) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['variant']} | {r['median_s']:.2f} | {r['env_steps_per_s']:,.0f} | {r['time_vs_mlp_gae']:.2f}x |"
        for r in rows
    ]
    (RESULTS / "policy_variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
