"""IQL (implicit Q-learning) from the command line, offline on a dataset file, many seeds in one program.

    python experiments/make_dataset.py --env Pendulum-v1 --algo sac --out data/pendulum
    python experiments/iql.py --env Pendulum-v1 --dataset data/pendulum/medium-expert.npz \
        --offline-updates 50000 --gradient-steps 1000 --seeds 4
    python experiments/iql.py --env CartPole-v1 --dataset data/cartpole/medium.npz --seeds 4   # discrete IQL
    python experiments/iql.py --help           # every Config field is a flag

--eval-every N plays deterministic episodes every N iterations inside the program.
"""

from purejaxlib import experiment
from purejaxlib.algos import iql


def main(argv: list[str] | None = None) -> dict:
    return experiment.cli(iql, "IQL", argv, description=__doc__)


if __name__ == "__main__":
    main()
