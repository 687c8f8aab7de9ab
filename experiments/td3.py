"""TD3 (and DDPG) from the command line: one agent, many seeds, or a grid of hyperparameters, in
one program.

    python experiments/td3.py --env Pendulum-v1 --total-timesteps 20000 --seeds 4
    python experiments/td3.py --env Pendulum-v1 --ddpg --seeds 4      # DDPG: td3.DDPG's fields
    python experiments/td3.py --seeds 4 --grid lr=3e-4,1e-3 target_policy_noise=0.1,0.2 --out runs/td3_grid
    python experiments/td3.py --help           # every Config field is a flag

Traced fields in --grid (lr, gamma, tau, exploration_noise, target_policy_noise, noise_clip, ...)
share one compiled program; static ones (hidden, batch_size, num_critics, policy_delay, ...)
compile one program per value.
"""

from __future__ import annotations

import dataclasses

from purejaxlib import experiment
from purejaxlib.algos import td3


@dataclasses.dataclass(frozen=True)
class Args(experiment.Args[td3.Config]):
    ddpg: bool = False
    """Train DDPG: apply td3.DDPG's field values (num_critics=1, policy_delay=1,
    target_policy_noise=0) over the config, replacing any values given for those fields."""


def _prepare(args: Args) -> tuple[td3.Config, str]:
    return (args.config.replace(**td3.DDPG), "DDPG") if args.ddpg else (args.config, "TD3")


def main(argv: list[str] | None = None) -> dict:
    return experiment.cli(td3, "TD3", argv, description=__doc__, args_type=Args, prepare=_prepare)


if __name__ == "__main__":
    main()
