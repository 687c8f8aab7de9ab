"""PPO from the command line: one agent, many seeds, or a grid of hyperparameters, in one program.

    python experiments/ppo.py --env CartPole-v1 --seeds 8
    python experiments/ppo.py --seeds 4 --grid lr=1e-4,3e-4,1e-3 ent_coef=0,0.01 --out runs/ppo_grid
    python experiments/ppo.py --help           # every Config field is a flag

Traced fields in --grid (lr, gamma, ent_coef, ...) share one compiled program; static ones
(num_envs, hidden, ...) compile one program per value.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated

import tyro

from purejaxlib import ConfigError, experiment
from purejaxlib.algos import ppo


@dataclasses.dataclass(frozen=True)
class Args:
    config: Annotated[ppo.Config, tyro.conf.arg(name="")]
    seeds: int = 1
    """Number of seeds (0..seeds-1), trained side by side in one program."""
    grid: tuple[str, ...] = ()
    """Sweep values as name=v1,v2 (e.g. lr=1e-4,3e-4 hidden=64x64,128x128)."""
    out: str = "runs/ppo"
    """Directory for summary.json, metrics.npz and learning_curve.png ('' to write nothing)."""
    progress: bool = True
    """Print progress from inside the compiled program (sets log_interval when it is 0)."""
    plot: bool = True
    """Write the learning-curve PNG."""


def main(argv: list[str] | None = None) -> dict:
    try:
        args = tyro.cli(Args, args=argv, description=__doc__)
        return experiment.run(
            ppo.train, args.config, seeds=args.seeds, grid_specs=args.grid, out=args.out,
            progress=args.progress, plot=args.plot, name="PPO",
        )
    except ConfigError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
