"""SAC (and TQC) from the command line: one agent, many seeds, or a grid of hyperparameters, in one
program.

    python experiments/sac.py --env Pendulum-v1 --total-timesteps 20000 --seeds 4
    python experiments/sac.py --env Pendulum-v1 --num-critics 5 --num-quantiles 25   # TQC
    python experiments/sac.py --env CartPole-v1 --seeds 4                            # discrete SAC
    python experiments/sac.py --seeds 4 --grid lr=3e-4,1e-3 tau=0.005,0.02 --out runs/sac_grid
    python experiments/sac.py --help           # every Config field is a flag

Traced fields in --grid (lr, gamma, tau, alpha_init, target_entropy_scale, ...) share one compiled
program; static ones (hidden, batch_size, num_critics, num_quantiles, ...) compile one program
per value.
"""

from purejaxlib import experiment
from purejaxlib.algos import sac


def main(argv: list[str] | None = None) -> dict:
    return experiment.cli(sac, "SAC", argv, description=__doc__)


if __name__ == "__main__":
    main()
