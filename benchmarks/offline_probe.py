"""One offline learner on one dataset at tuning seeds 100-101 (never the table's seeds 0-3).

    python benchmarks/offline_probe.py NAME MODULE STEPS '{"normalize_obs": true, "td3_bc": true}'
    python benchmarks/offline_probe.py cp-iql iql 10000 '{"env": "CartPole-v1", "level": "medium"}'

The JSON holds Config overrides plus ``env`` (default Pendulum-v1) and ``level`` (default
medium-expert); the dataset is ``benchmarks/data/<env>/<level>.npz`` (made by benchmarks/offline.py).
64x64 networks, batch 256, 1000 gradient steps per iteration, as the table's cells; 16
deterministic episodes per seed. Prints one JSON line with both seeds' normalized scores.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TUNING_SEEDS = [100, 101]


def main(argv: list[str]) -> None:
    import jax
    import numpy as np

    import purejaxlib
    from purejaxlib import offline

    name, module_name, steps = argv[1], argv[2], int(argv[3])
    over = json.loads(argv[4]) if len(argv) > 4 else {}
    level = over.pop("level", "medium-expert")
    env = over.pop("env", "Pendulum-v1")
    path = HERE / "data" / env.split("-")[0].lower() / f"{level}.npz"
    over = {k: tuple(v) if isinstance(v, list) else v for k, v in over.items()}
    module = importlib.import_module(f"purejaxlib.algos.{module_name}")
    config = module.Config(
        env=env,
        dataset=str(path),
        hidden=over.pop("hidden", (64, 64)),
        batch_size=256,
        gradient_steps=1000,
        offline_updates=steps,
        **over,
    )
    dataset = offline.load(path, env)
    start = time.perf_counter()
    swept = purejaxlib.sweep(module.train, config, seeds=TUNING_SEEDS)
    returns = purejaxlib.evaluate_sweep(swept, jax.random.key(99), 16).returns
    scores = offline.normalized_score(np.asarray(returns).mean(-1), dataset.info)
    print(
        json.dumps(
            {
                "name": name,
                "env": env,
                "level": level,
                "steps": steps,
                "overrides": {k: str(v) for k, v in over.items()},
                "seeds": TUNING_SEEDS,
                "scores": np.round(scores, 1).tolist(),
                "seconds": round(time.perf_counter() - start),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv)
