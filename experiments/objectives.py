"""PPO, A2C, MDPO and DPO on one env across seeds, in one call: one program per objective (each
vmapped over the seeds), IQM learning curves with bootstrap bands in one plot, and a summary.

    python experiments/objectives.py --env CartPole-v1 --seeds 8 --total-timesteps 500000
    python experiments/objectives.py --env Pendulum-v1 --objectives ppo mdpo dpo --out runs/pendulum

Every objective runs the same PPO config except its objective term; A2C also takes its own
schedule (``ppo.a2c_config``: 1 epoch, 1 minibatch, 16 envs x 5 steps, n-step returns). Writes
``<out>/curves.png`` (and .svg) and ``<out>/summary.json`` (final-10% IQM per objective).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import tyro

import purejaxlib
from purejaxlib import plotting, stats
from purejaxlib.algos import ppo


@dataclasses.dataclass(frozen=True)
class Args:
    env: str = "CartPole-v1"
    """Environment name (purejaxlib.envs.list())."""
    seeds: int = 8
    """Seeds per objective, vmapped in one program."""
    total_timesteps: int = 500_000
    """Env steps per agent."""
    objectives: tuple[Literal["ppo", "a2c", "mdpo", "dpo"], ...] = ("ppo", "a2c", "mdpo", "dpo")
    """Objectives to compare."""
    out: Path = Path("runs/objectives")
    """Output folder for curves.png/.svg and summary.json."""


def config_for(objective: str, env: str, total_timesteps: int) -> ppo.Config:
    """The PPO config of ``objective`` (A2C with its own schedule)."""
    if objective == "a2c":
        return ppo.a2c_config(env=env, total_timesteps=total_timesteps)
    return ppo.Config(env=env, total_timesteps=total_timesteps, objective=objective)


def main(argv: list[str] | None = None) -> dict:
    args = tyro.cli(Args, args=argv, description=__doc__)
    results, summary = {}, {}
    for objective in args.objectives:
        result = purejaxlib.sweep(ppo.train, config_for(objective, args.env, args.total_timesteps), seeds=args.seeds)
        results[objective] = result
        finals = stats.final_return(result.metrics["episode_return"])
        summary[objective] = {
            "final_return_iqm": stats.iqm(finals),
            "final_returns": finals.tolist(),
            "compile_s": round(result.compile_seconds, 2),
            "run_s": round(result.run_seconds, 2),
        }
        print(
            f"{objective}: final-10% return IQM {summary[objective]['final_return_iqm']:.1f} over {args.seeds} seeds "
            f"(compile {result.compile_seconds:.1f} s, run {result.run_seconds:.1f} s)",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    paths = plotting.compare_learning_curves(results, args.out / "curves.png", title=f"{args.env}: policy objectives")
    (args.out / "summary.json").write_text(
        json.dumps({"env": args.env, "seeds": args.seeds, "total_timesteps": args.total_timesteps, **summary}, indent=1)
    )
    return {"summary": summary, "plots": [str(p) for p in paths]}


if __name__ == "__main__":
    main()
