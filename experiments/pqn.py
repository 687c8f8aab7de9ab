"""PQN from the command line: one agent, many seeds, or a grid of hyperparameters, in one program.

    python experiments/pqn.py --env CartPole-v1 --seeds 8
    python experiments/pqn.py --seeds 4 --grid lr=1e-4,3e-4 q_lambda=0.65,0.95 --out runs/pqn_grid
    python experiments/pqn.py --help           # every Config field is a flag

Traced fields in --grid (lr, gamma, q_lambda, eps_end, ...) share one compiled program; static
ones (num_envs, hidden, layer_norm, ...) compile one program per value.
"""

from purejaxlib import experiment
from purejaxlib.algos import pqn


def main(argv: list[str] | None = None) -> dict:
    return experiment.cli(pqn, "PQN", argv, description=__doc__)


if __name__ == "__main__":
    main()
