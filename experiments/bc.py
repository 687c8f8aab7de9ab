"""Behaviour cloning from the command line, on a dataset file, many seeds in one program.

python experiments/bc.py --env Pendulum-v1 --dataset data/pendulum/expert.npz --offline-updates 20000 --seeds 4
python experiments/bc.py --help           # every Config field is a flag
"""

from purejaxlib import experiment
from purejaxlib.algos import bc


def main(argv: list[str] | None = None) -> dict:
    return experiment.cli(bc, "BC", argv, description=__doc__)


if __name__ == "__main__":
    main()
