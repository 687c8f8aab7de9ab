"""SAC's first steps at B2's config: 8 seeds in one program, then 32 deterministic episodes each.

    python benchmarks/sac_first_steps.py 5000                      # B2 as it is
    python benchmarks/sac_first_steps.py 5000 torch_init=True      # a Config field changed
    python benchmarks/sac_first_steps.py 5000 probe=adam-eps-1e-8  # a probe (patched here, not a field)

B2: 1 env, one gradient step per env step, batch 256, buffer 100k, 1k random warm-up steps,
256x256 networks, lr 3e-4, gamma 0.99, automatic temperature. Prints one JSON line: each seed's
mean return of its final policy (32 deterministic episodes), their mean and minimum. The probes
change what no field reaches, to test a hypothesis: ``adam-eps-1e-8`` (torch's Adam epsilon
instead of ours, 1e-5) and ``tanh-eps-1e-6`` (stable-baselines3's ``log(1 - tanh(u)^2 + 1e-6)``
instead of the exact change of variables). stable-baselines3 on the same cell, seed S:
``/tmp/pjl-peers/sb3/bin/python benchmarks/sb3_reference.py '{"algo": "sac", "env": "Pendulum-v1",
"steps": 5000, "seed": S, "kwargs": {"batch_size": 256, "buffer_size": 100000, "learning_starts":
1000}, "eval_episodes": 32, "points": 50}'`` (its ``eval``).
"""

from __future__ import annotations

import ast
import functools
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

B2 = dict(
    env="Pendulum-v1", hidden=(256, 256), lr=3e-4, batch_size=256, buffer_size=100_000, learning_starts=1_000
)  # fmt: skip
SEEDS = 8
EPISODES = 32


def apply_probe(name: str) -> None:
    from purejaxlib import losses, offpolicy, optim

    if name == "adam-eps-1e-8":
        offpolicy.make_optimizer = functools.partial(optim.make_optimizer, eps=1e-8)  # type: ignore[assignment]
    elif name == "tanh-eps-1e-6":

        def tanh_gaussian(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
            std = jnp.exp(log_std)
            u = mean + std * jax.random.normal(key, mean.shape)
            gaussian = -0.5 * jnp.square((u - mean) / std) - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
            action = jnp.tanh(u)
            return action, (gaussian - jnp.log(1.0 - action * action + 1e-6)).sum(axis=-1)

        losses.tanh_gaussian = tanh_gaussian
    else:
        raise SystemExit(f"unknown probe {name!r}; valid: adam-eps-1e-8, tanh-eps-1e-6")


def main() -> None:
    steps = int(sys.argv[1])
    fields: dict = dict(B2, total_timesteps=steps)
    probes = []
    for arg in sys.argv[2:]:
        name, value = arg.split("=", 1)
        if name == "probe":
            probes.append(value)
            apply_probe(value)
        else:
            fields[name] = ast.literal_eval(value)
    from purejaxlib import evaluation
    from purejaxlib.algos import sac

    config = sac.Config(**fields)

    def one(key: jax.Array) -> jax.Array:
        state = sac.train(config, key).state
        return evaluation.evaluate(
            config, state, jax.random.fold_in(key, 7), EPISODES, deterministic=True
        ).returns.mean()

    began = time.perf_counter()
    returns = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), SEEDS)))
    print(
        json.dumps(
            {
                "steps": steps,
                "changes": sys.argv[2:],
                "returns": [round(float(r), 1) for r in returns],
                "mean": round(float(returns.mean()), 1),
                "min": round(float(returns.min()), 1),
                "wall_s": round(time.perf_counter() - began),
                "command": " ".join(["python", "benchmarks/sac_first_steps.py", *sys.argv[1:]]),
            }
        )
    )


if __name__ == "__main__":
    main()
