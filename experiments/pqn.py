"""PQN from the command line: one agent, many seeds, or a grid of hyperparameters, in one program.

    python experiments/pqn.py --env CartPole-v1 --seeds 8
    python experiments/pqn.py --seeds 4 --grid lr=1e-4,3e-4 q_lambda=0.65,0.95 --out runs/pqn_grid
    python experiments/pqn.py --help           # every Config field is a flag

Traced fields in --grid (lr, gamma, q_lambda, eps_end, ...) share one compiled program; static
ones (num_envs, hidden, layer_norm, ...) compile one program per value.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated

import tyro

from purejaxlib import ConfigError, experiment
from purejaxlib.algos import pqn


@dataclasses.dataclass(frozen=True)
class Args:
    config: Annotated[pqn.Config, tyro.conf.arg(name="")]
    seeds: int = 1
    """Number of seeds (0..seeds-1), trained side by side in one program."""
    grid: tuple[str, ...] = ()
    """Sweep values as name=v1,v2 (e.g. lr=1e-4,3e-4 hidden=128x128,256x256)."""
    out: str = "runs/pqn"
    """Directory for summary.json, metrics.npz and learning_curve.png ('' to write nothing)."""
    progress: bool = True
    """Print progress from inside the compiled program (sets log_interval when it is 0)."""
    plot: bool = True
    """Write the learning-curve PNG."""


def main(argv: list[str] | None = None) -> dict:
    try:
        args = tyro.cli(Args, args=argv, description=__doc__)
        return experiment.run(
            pqn.train, args.config, seeds=args.seeds, grid_specs=args.grid, out=args.out,
            progress=args.progress, plot=args.plot, name="PQN",
        )
    except ConfigError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
