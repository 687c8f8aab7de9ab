"""Offline datasets at the usual levels (random, medium, medium-replay, expert, medium-expert).

    python experiments/make_dataset.py --env Pendulum-v1 --algo sac --out data/pendulum
    python experiments/make_dataset.py --env CartPole-v1 --algo dqn --out data/cartpole --steps 50000

Trains one agent of --algo on --env (its Config's defaults, then --set field=value overrides),
keeping --chunks snapshots; medium is the snapshot nearest a third of the way from the random
policy's return to the final (expert) policy's; medium-replay is the replay buffer at that
moment. Writes <out>/<level>.npz (purejaxlib.offline.save) and <out>/levels.json (sizes, returns,
reference returns and the command). Every dataset records random_return and expert_return for
normalized scores.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from pathlib import Path

import jax
import tyro

from purejaxlib import offline
from purejaxlib.experiment import parse_grid

ALGOS = ("dqn", "sac", "td3", "iql")

# Settings that train a good expert in minutes on a CPU (the reference table's, benchmarks/reference.py).
PRESETS = {
    ("sac", "Pendulum-v1"): dict(total_timesteps=20_000, hidden=(64, 64), lr=1e-3),
    ("td3", "Pendulum-v1"): dict(total_timesteps=20_000, hidden=(64, 64), lr=1e-3),
    ("dqn", "CartPole-v1"): dict(total_timesteps=100_000),
}


@dataclasses.dataclass(frozen=True)
class Args:
    env: str = "Pendulum-v1"
    """Environment (purejaxlib.envs.list())."""
    algo: str = "sac"
    """Replay learner that trains the medium and expert policies: dqn, sac, td3 or iql."""
    out: str = "data/pendulum"
    """Directory for <level>.npz and levels.json."""
    steps: int = 50_000
    """Transitions per collected level (medium-replay holds what the buffer held)."""
    num_envs: int = 8
    """Envs collecting side by side."""
    chunks: int = 100
    """Snapshots of the training run (candidates for medium)."""
    epsilon: float = 0.1
    """Discrete: probability of a uniform action when collecting (log-probabilities are recorded)."""
    noise: float = 0.1
    """Continuous: std of the Gaussian noise added when collecting (fraction of the half-range)."""
    seed: int = 0
    """Seed of training and collection."""
    set: tuple[str, ...] = ()
    """Config overrides as field=value (e.g. total_timesteps=30000 hidden=64x64)."""


def main(argv: list[str] | None = None) -> dict:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.algo not in ALGOS:
        raise SystemExit(f"error: --algo must be one of {', '.join(ALGOS)}, got {args.algo!r}")
    module = importlib.import_module(f"purejaxlib.algos.{args.algo}")
    overrides = {k: v[0] for k, v in parse_grid(module.Config, args.set).items()}
    config = module.Config(env=args.env, **{**PRESETS.get((args.algo, args.env), {}), **overrides})
    levels = offline.make_levels(
        module,
        config,
        jax.random.key(args.seed),
        steps=args.steps,
        chunks=args.chunks,
        num_envs=args.num_envs,
        epsilon=args.epsilon,
        noise=args.noise,
    )
    out = Path(args.out)
    summary = {
        "command": " ".join(["python experiments/make_dataset.py", *(argv if argv is not None else sys.argv[1:])])
    }
    for level, data in levels.items():
        path = offline.save(data, out / f"{level}.npz")
        stats = offline.statistics(data)
        summary[level] = {
            "path": str(path),
            "transitions": stats["transitions"],
            "episodes": stats["episodes"],
            "return_mean": stats["return_mean"],
            "normalized": float(offline.normalized_score(stats["return_mean"], data.info)),
        }
    summary["random_return"] = levels["medium"].info["random_return"]
    summary["expert_return"] = levels["medium"].info["expert_return"]
    summary["medium_policy_return"] = levels["medium"].info["policy_return"]
    (out / "levels.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
