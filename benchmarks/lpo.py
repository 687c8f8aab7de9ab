"""Learned Policy Optimisation: a drift meta-trained by ES on CartPole-v1 inner PPO runs, then PPO
with it on a held-out env (Acrobot-v1) beside PPO-clip and DPO, 8 seeds each.

    python benchmarks/lpo.py meta        # meta-train (results/lpo/drift.npy, meta.json)
    python benchmarks/lpo.py heldout     # PPO clip / DPO / learned drift on the held-out env
    python benchmarks/lpo.py --report    # results/lpo.md and the drift plot

Meta-training (CPU-sized): OpenAI-ES from evosax, 80 generations of 8 members x 2 inner seeds, each
inner run PPO on CartPole-v1 for 32,768 env steps (8 envs x 64 steps, 64 updates); fitness is the
mean training return over the last quarter of the inner runs. The search starts from a drift fitted
to DPO's closed form (:func:`purejaxlib.lpo.fit_drift`), not from a random network: at this budget
a random start is mostly spent rediscovering a sensible drift. Held-out: PPO's default config on
Acrobot-v1 for ``HELDOUT_STEPS`` env steps, seeds 0-7, each seed's final policy playing 16
deterministic episodes; IQM with a stratified-bootstrap 95% interval.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stamp import machine

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "lpo"
GENERATIONS = 80
HELDOUT_ENV = "Acrobot-v1"
HELDOUT_STEPS = 300_000
SEEDS = 8


def meta(generations: int = GENERATIONS, population: int = 8) -> None:
    import jax
    import numpy as np

    from purejaxlib import lpo
    from purejaxlib.algos import ppo
    from purejaxlib.objectives import dpo_drift

    inner = ppo.Config(env="CartPole-v1", num_envs=8, num_steps=64, total_timesteps=32_768)
    start = lpo.fit_drift(dpo_drift, jax.random.key(1))
    result = lpo.meta_train(
        inner, jax.random.key(0), generations=generations, population=population, inner_seeds=2, init=start,
        log=lambda g, f: print(f"generation {g}: mean {f.mean():.1f} best {f.max():.1f}", flush=True),
    )  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / "drift.npy", np.asarray(result.params, np.float32))
    np.save(OUT / "drift_start.npy", np.asarray(start, np.float32))
    (OUT / "meta.json").write_text(
        json.dumps(
            {
                "inner": "ppo.Config(env='CartPole-v1', num_envs=8, num_steps=64, total_timesteps=32768)",
                "generations": generations,
                "population": population,
                "inner_seeds": 2,
                "start": "fit_drift(dpo_drift, key(1))",
                "mean_fitness": result.mean_fitness.tolist(),
                "seconds": result.seconds,
                "machine": machine(),
            },
            indent=1,
        )
        + "\n"
    )


def heldout() -> None:
    import jax
    import numpy as np

    from purejaxlib import evaluate, lpo, stats
    from purejaxlib.algos import ppo

    learned = np.load(OUT / "drift.npy", allow_pickle=False)
    start = np.load(OUT / "drift_start.npy", allow_pickle=False)
    base = ppo.Config(env=HELDOUT_ENV, total_timesteps=HELDOUT_STEPS)
    variants = {
        "ppo-clip": base,
        "dpo": base.replace(objective="dpo"),
        "lpo-start (DPO fit)": base.replace(**lpo.drift_config(start)),
        "lpo (learned)": base.replace(**lpo.drift_config(learned)),
    }
    rows = {}
    for name, config in variants.items():
        t0 = time.perf_counter()
        keys = jax.random.split(jax.random.key(0), SEEDS)
        result = jax.jit(jax.vmap(ppo.train, in_axes=(None, 0)))(config, keys)
        evals = jax.vmap(lambda s, k, c=config: evaluate(c, s, k, 16))(
            result.state, jax.random.split(jax.random.key(1), SEEDS)
        )
        returns = np.asarray(evals.returns).mean(axis=-1)
        point, low, high = stats.stratified_bootstrap_ci(returns)
        rows[name] = {"returns": returns.tolist(), "iqm": point, "ci": [low, high], "seconds": time.perf_counter() - t0}
        print(name, [round(x, 1) for x in returns], f"IQM {point:.1f} [{low:.1f}, {high:.1f}]", flush=True)
    (OUT / "heldout.json").write_text(
        json.dumps(
            {"env": HELDOUT_ENV, "steps": HELDOUT_STEPS, "seeds": SEEDS, "rows": rows, "machine": machine()}, indent=1
        )
        + "\n"
    )


def report() -> str:
    import numpy as np

    from purejaxlib import lpo

    lines = ["# Learned Policy Optimisation (benchmarks/lpo.py)", ""]
    if (OUT / "meta.json").exists():
        m = json.loads((OUT / "meta.json").read_text())
        f = m["mean_fitness"]
        lines.append(
            f"Meta-training ({m['machine']['date']}, {m['seconds']:.0f} s): {m['generations']} generations, population "
            f"{m['population']} x {m['inner_seeds']} inner seeds, inner {m['inner']}; population fitness "
            f"{f[0]:.1f} (first generation) -> {f[-1]:.1f} (last), best generation {max(f):.1f}."
        )
        lines.append("")
    if (OUT / "heldout.json").exists():
        h = json.loads((OUT / "heldout.json").read_text())
        lines += [
            f"Held-out {h['env']}, PPO defaults, {h['steps']:,} env steps, {h['seeds']} seeds "
            f"({h['machine']['date']}):",
            "",
            "| objective | seeds' returns | IQM [95% CI] |",
            "|---|---|---|",
        ]
        for name, r in h["rows"].items():
            seeds = ", ".join(f"{x:.1f}" for x in r["returns"])
            lines.append(f"| {name} | {seeds} | {r['iqm']:.1f} [{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] |")
    if (OUT / "drift.npy").exists():
        lpo.plot_drifts(np.load(OUT / "drift.npy", allow_pickle=False), OUT / "drifts")
        lines += ["", "![drifts](lpo/drifts.png)"]
    text = "\n".join(lines) + "\n"
    (HERE / "results" / "lpo.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=["meta", "heldout"])
    parser.add_argument("--generations", type=int, default=GENERATIONS)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    if args.what == "meta":
        meta(args.generations, args.population)
    elif args.what == "heldout":
        heldout()
    print(report())


if __name__ == "__main__":
    main()
