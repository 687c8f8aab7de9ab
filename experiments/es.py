"""Evolution strategies from the command line: a population per seed, many seeds, in one program.

    python experiments/es.py --env CartPole-v1 --seeds 4 --total-timesteps 1000000 --population-size 64
    python experiments/es.py --env Pendulum-v1 --strategy snes --seeds 4 --episodes-per-member 4
    python experiments/es.py --seeds 4 --grid lr=0.01,0.03 sigma=0.05,0.1 --out runs/es_grid
    python experiments/es.py --help           # every Config field is a flag

Needs the optional extra: pip install 'purejaxlib[es]'. Traced fields in --grid (lr, sigma) share
one compiled program; static ones (strategy, population_size, hidden, ...) compile one per value.
"""

from purejaxlib import experiment
from purejaxlib.algos import es


def main(argv: list[str] | None = None) -> dict:
    return experiment.cli(es, "ES", argv, description=__doc__)


if __name__ == "__main__":
    main()
