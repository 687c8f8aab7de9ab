"""Evolution strategies: learning on CartPole-v1, Pendulum-v1 and brax's inverted pendulum at a CPU-sized
budget (4 seeds), and env steps per second
at populations of 256 and 1024 beside PPO's, on this machine.

    python benchmarks/es.py learn [--only cartpole]   # the learning cells (results/es/learn_<cell>.json)
    python benchmarks/es.py speed                     # throughput (results/es/speed.json)
    python benchmarks/es.py --report                  # results/es.md from the results so far

Learning: each cell trains its 4 seeds vmapped in one program; afterwards each seed's search mean
plays 32 deterministic episodes; the table gives every seed's mean return and their IQM with a
stratified-bootstrap 95% interval (:mod:`purejaxlib.stats`). Speed: one generation (ES) or one
update (PPO) compiled and run ``REPEATS`` times after a warm-up; env steps per second is live
steps (ES: steps inside episodes; PPO: every step) over the median time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from stamp import machine

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "es"
SEEDS = 4
EPISODES = 32
REPEATS = 5

CELLS: dict[str, dict[str, Any]] = {
    "cartpole": dict(env="CartPole-v1", population_size=64, total_timesteps=1_000_000),
    "pendulum": dict(
        env="Pendulum-v1", strategy="pgpe", population_size=128, episodes_per_member=4, shared_episodes=True,
        sigma=0.1, zero_init=True, total_timesteps=100_000_000,
    ),
    "pendulum-256x8": dict(
        env="Pendulum-v1", strategy="pgpe", population_size=256, episodes_per_member=8, shared_episodes=True,
        sigma=0.1, zero_init=True, total_timesteps=200_000_000,
    ),
    "brax-inverted_pendulum": dict(env="brax/inverted_pendulum", population_size=64, total_timesteps=3_200_000),
}  # fmt: skip
THRESHOLDS = {"cartpole": 500.0, "pendulum": -200.0, "pendulum-256x8": -200.0, "brax-inverted_pendulum": 1000.0}


def learn(name: str) -> dict[str, Any]:
    import jax
    import numpy as np

    from purejaxlib import evaluate, stats
    from purejaxlib.algos import es

    config = es.Config(**CELLS[name])
    start = time.perf_counter()
    train = jax.jit(jax.vmap(es.train, in_axes=(None, 0)))
    result = jax.block_until_ready(train(config, jax.random.split(jax.random.key(0), SEEDS)))
    seconds = time.perf_counter() - start
    evals = jax.vmap(lambda s, k: evaluate(config, s, k, EPISODES))(
        result.state, jax.random.split(jax.random.key(1), SEEDS)
    )
    returns = np.asarray(evals.returns).mean(axis=-1)
    point, low, high = stats.stratified_bootstrap_ci(returns)
    out = {
        "cell": name,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in CELLS[name].items()},
        "generations": config.num_updates,
        "seeds": SEEDS,
        "eval_returns": returns.tolist(),
        "iqm": point,
        "ci": [low, high],
        "threshold": THRESHOLDS[name],
        "seeds_at_threshold": int((returns >= THRESHOLDS[name]).sum()),
        "live_steps_per_seed": float(np.asarray(result.state.live_steps).mean()),
        "seconds_with_compile": seconds,
        "curve_population_mean": np.asarray(result.metrics["episode_return"])
        .mean(0)[:: max(1, config.num_updates // 50)]
        .tolist(),
        "machine": machine(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"learn_{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def _time(fn, *args) -> float:
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(sorted(times)[len(times) // 2])


def speed() -> dict[str, Any]:
    import jax
    import numpy as np

    from purejaxlib.algos import es, ppo

    rows = []
    for env in ("CartPole-v1", "Pendulum-v1"):
        for population in (256, 1024):
            config = es.Config(env=env, population_size=population, total_timesteps=10**9)
            state = jax.jit(es.init)(config, jax.random.key(0))
            # a few generations first, so CartPole episodes run long (a fresh policy falls in ~20 steps)
            step = jax.jit(lambda s, c=config: es.step(c, s))
            for _ in range(5):
                state, _ = step(state)
            _, metrics = step(state)
            live = float(metrics["episode_length"]) * population
            median = _time(step, state)
            rows.append(dict(algo="es", env=env, population=population, seconds=median, live_steps=live,
                             steps_per_second=live / median))  # fmt: skip
        for envs in (256, 1024):
            config = ppo.Config(env=env, num_envs=envs, num_steps=128, total_timesteps=10**9, num_minibatches=4)
            state = jax.jit(ppo.init)(config, jax.random.key(0))
            step = jax.jit(lambda s, c=config: ppo.step(c, s))
            median = _time(step, state)
            rows.append(dict(algo="ppo", env=env, population=envs, seconds=median, live_steps=config.batch_size,
                             steps_per_second=config.batch_size / median))  # fmt: skip
    out = {
        "rows": rows,
        "machine": machine(),
        "repeats": REPEATS,
        "note": (
            "ES: 1 episode per member, 32x32 tanh; PPO: 64x64, 128 steps, 4 epochs x 4 minibatches; "
            "population = PPO's num_envs"
        ),
    }
    for r in rows:
        print(f"{r['algo']:4s} {r['env']:12s} {r['population']:5d} {r['steps_per_second']:12,.0f} env steps/s")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed.json").write_text(json.dumps(out, indent=1) + "\n")
    _ = np
    return out


def report() -> str:
    lines = ["# Evolution strategies (benchmarks/es.py)", ""]
    lines += [
        "| cell | config | seeds' eval returns | IQM [95% CI] | seeds >= threshold | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(OUT.glob("learn_*.json")):
        r = json.loads(path.read_text())
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        lines.append(
            f"| {r['cell']} | {cfg} | {', '.join(f'{x:.1f}' for x in r['eval_returns'])} | {r['iqm']:.1f} "
            f"[{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] | {r['seeds_at_threshold']}/{r['seeds']} (>= {r['threshold']:g}) "
            f"| {r['seconds_with_compile']:.0f} ({r['machine']['date']}) |"
        )
    speed_file = OUT / "speed.json"
    if speed_file.exists():
        s = json.loads(speed_file.read_text())
        lines += ["", f"Env steps per second ({s['machine']['date']}, {s['machine']['cpus']} CPUs, {s['note']}):", ""]
        lines += ["| algo | env | population / num_envs | env steps/s |", "|---|---|---|---|"]
        for r in s["rows"]:
            lines.append(f"| {r['algo']} | {r['env']} | {r['population']} | {r['steps_per_second']:,.0f} |")
    text = "\n".join(lines) + "\n"
    (HERE / "results" / "es.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=["learn", "speed"])
    parser.add_argument("--only", default=None)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    if args.what == "learn":
        for name in CELLS:
            if args.only is None or args.only in name:
                r = learn(name)
                print(
                    name,
                    [round(x, 1) for x in r["eval_returns"]],
                    f"IQM {r['iqm']:.1f}",
                    f"{r['seconds_with_compile']:.0f} s",
                )
    elif args.what == "speed":
        speed()
    print(report())


if __name__ == "__main__":
    main()
