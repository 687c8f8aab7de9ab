"""Hyperparameter tuning: random search, successive halving and PBT (purejaxlib.tune) against the
defaults and against Optuna's TPE driving our ``train`` one trial at a time, for the same tuning
budget in env steps; the incumbent of each is trained again on 8 test seeds never used in tuning.

    python benchmarks/tune.py ppo-cartpole                       # our three methods (results/tune/)
    /tmp/pjl-peers/optuna/bin/python benchmarks/tune.py ppo-cartpole --optuna   # Optuna TPE
    python benchmarks/tune.py --report                           # results/tune.md
    bash benchmarks/setup_optuna.sh                              # Optuna's own venv (once)

Each task fixes a base config (the defaults), a search space, a per-member horizon (``HORIZON``
env steps) and a population; the tuning budget is ``population * horizon`` for every method
(halving spreads it over its rungs). Optuna runs ``population`` trials of ``horizon`` steps, each a
call of our jitted ``train`` (compiled once: the hyperparameters are traced) on tuning seed 0, its
objective the mean of 16 deterministic episodes. Test: the incumbent's schedule (PBT) or config
trained on seeds 1000-1007 for ``horizon`` steps, 16 deterministic episodes each; IQM with a
stratified-bootstrap 95% interval over the 8 seeds. Wall-clock covers tuning (with compiles), not
the test runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from stamp import machine

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "tune"
TEST_SEEDS = tuple(range(1000, 1008))
EPISODES = 16


def tasks() -> dict[str, dict[str, Any]]:
    from purejaxlib import tune
    from purejaxlib.algos import ppo, sac

    return {
        "ppo-cartpole": dict(
            algo=ppo,
            config=ppo.Config(env="CartPole-v1"),
            space={
                "lr": tune.LogUniform(1e-4, 1e-2),
                "ent_coef": tune.Uniform(0.0, 0.05),
                "clip_eps": tune.Uniform(0.1, 0.4),
                "gae_lambda": tune.Uniform(0.8, 1.0),
            },
            horizon=100_000,
            population=16,
        ),
        "sac-pendulum": dict(
            algo=sac,
            config=sac.Config(env="Pendulum-v1", hidden=(64, 64)),
            space={"lr": tune.LogUniform(1e-4, 1e-2), "tau": tune.LogUniform(1e-3, 1e-1)},
            horizon=4_000,
            population=8,
        ),
    }


def ours(name: str, method: str) -> dict[str, Any]:
    from purejaxlib import tune

    task = tasks()[name]
    t0 = time.perf_counter()
    result = tune.tune(
        task["algo"], task["config"], task["space"], budget=task["population"] * task["horizon"], method=method,
        population=task["population"], tune_seeds=(0,), test_seeds=TEST_SEEDS, eval_episodes=EPISODES,
        compare_default=(method == "random"), progress_bar=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    out = {
        "task": name,
        "method": method,
        "incumbent": result.incumbent,
        "schedule": result.schedule if method == "pbt" else None,
        "tuning_score": result.score,
        "tuning_env_steps": result.env_steps,
        "horizon_updates": result.updates,
        "wall_seconds_tuning": result.record["seconds"]["tuning"],
        "compile_seconds_tuning": result.record["seconds"]["tuning_compile"],
        "wall_seconds_tuning_and_tests": wall,
        "test": result.test,
        "default_test": result.default_test,
        "machine": machine(),
    }
    if method == "pbt":
        tune.plot_schedules(result, OUT / f"{name}_pbt_schedules")
    tune.plot_landscape(result, OUT / f"{name}_{method}_landscape")
    return out


def optuna_trials(name: str) -> dict[str, Any]:
    import jax
    import optuna

    from purejaxlib import evaluate, tune

    task = tasks()[name]
    algo, space = task["algo"], task["space"]
    base = task["config"].replace(total_timesteps=task["horizon"])
    train = jax.jit(algo.train)
    play = jax.jit(lambda c, s, k: evaluate(c, s, k, EPISODES).returns.mean())

    def objective(trial: optuna.Trial) -> float:
        values = {}
        for field, dist in space.items():
            if isinstance(dist, tune.LogUniform):
                values[field] = trial.suggest_float(field, dist.low, dist.high, log=True)
            else:
                values[field] = trial.suggest_float(field, dist.low, dist.high)
        config = base.replace(**values)
        key = jax.random.fold_in(jax.random.key(0), trial.number)
        state = train(config, key).state
        return float(play(config, state, jax.random.fold_in(key, tune.EVAL_OFFSET)))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=task["population"])
    wall = time.perf_counter() - t0
    best = study.best_params
    lengths = [base.num_updates]
    test = tune.run_schedule(algo, base, [best], lengths, TEST_SEEDS, EPISODES)
    return {
        "task": name,
        "method": "optuna-tpe",
        "optuna": optuna.__version__,
        "incumbent": best,
        "tuning_score": study.best_value,
        "tuning_env_steps": task["population"] * base.num_updates * base.steps_per_update,
        "wall_seconds_tuning": wall,
        "trial_scores": [t.value for t in study.trials],
        "trial_seconds": [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials],
        "test": test,
        "machine": machine(),
    }


def report() -> str:
    lines = [
        "# Hyperparameter tuning (benchmarks/tune.py)",
        "",
        "| task | method | tuning env steps | wall s | incumbent | test IQM [95% CI] (8 seeds) | defaults' test IQM |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted(OUT.glob("*.json")):
        r = json.loads(path.read_text())
        wall = r["wall_seconds_tuning"]
        if "compile_seconds_tuning" in r:
            compile_s = f" ({r['compile_seconds_tuning']:.0f} compiling)"
        elif "trial_seconds" in r:
            compile_s = f" (first trial {r['trial_seconds'][0]:.0f}, with the compile)"
        else:
            compile_s = ""
        inc = ", ".join(f"{k}={v:.3g}" for k, v in r["incumbent"].items())
        t = r["test"]
        d = r.get("default_test")
        dtext = f"{d['iqm']:.1f} [{d['ci'][0]:.1f}, {d['ci'][1]:.1f}]" if d else ""
        lines.append(
            f"| {r['task']} | {r['method']} | {r['tuning_env_steps']:,} | {wall:.0f}{compile_s} | {inc} | "
            f"{t['iqm']:.1f} [{t['ci'][0]:.1f}, {t['ci'][1]:.1f}] | {dtext} |"
        )
    text = "\n".join(lines) + "\n"
    (HERE / "results" / "tune.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", nargs="?")
    parser.add_argument("--optuna", action="store_true", help="run Optuna's TPE (needs optuna)")
    parser.add_argument("--methods", default="random,halving,pbt")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.task:
        if args.optuna:
            r = optuna_trials(args.task)
            (OUT / f"{args.task}_optuna-tpe.json").write_text(json.dumps(r, indent=1) + "\n")
            print(args.task, "optuna", r["incumbent"], r["test"]["iqm"], f"{r['wall_seconds_tuning']:.0f} s")
        else:
            for method in args.methods.split(","):
                r = ours(args.task, method)
                (OUT / f"{args.task}_{method}.json").write_text(json.dumps(r, indent=1) + "\n")
                print(
                    args.task, method, r["incumbent"], r["test"]["iqm"], f"{r['wall_seconds_tuning_and_tests']:.0f} s"
                )
    print(report())


if __name__ == "__main__":
    main()
