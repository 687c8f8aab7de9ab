"""PPO from the command line: one agent, many seeds, or a grid of hyperparameters, in one program.

    python experiments/ppo.py --env CartPole-v1 --seeds 8
    python experiments/ppo.py --seeds 4 --grid lr=1e-4,3e-4,1e-3 ent_coef=0,0.01 --out runs/ppo_grid
    python experiments/ppo.py --help           # every Config field is a flag

Traced fields in --grid (lr, gamma, ent_coef, ...) share one compiled program; static ones
(num_envs, hidden, ...) compile one program per value.
"""

from purejaxlib import experiment
from purejaxlib.algos import ppo


def main(argv: list[str] | None = None) -> dict:
    return experiment.cli(ppo, "PPO", argv, description=__doc__)


if __name__ == "__main__":
    main()
