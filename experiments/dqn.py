"""DQN from the command line: one agent, many seeds, or a grid of hyperparameters, in one program.

    python experiments/dqn.py --env CartPole-v1 --seeds 8
    python experiments/dqn.py --seeds 4 --grid lr=3e-4,1e-3 n_step=3,5 --out runs/dqn_grid
    python experiments/dqn.py --help           # every Config field is a flag

Traced fields in --grid (lr, gamma, tau, eps_end, eps_fraction, ...) share one compiled program;
static ones (num_envs, n_step, batch_size, hidden, target_update_interval, ...) compile one
program per value.
"""

from purejaxlib import experiment
from purejaxlib.algos import dqn


def main(argv: list[str] | None = None) -> dict:
    return experiment.cli(dqn, "DQN", argv, description=__doc__)


if __name__ == "__main__":
    main()
