"""Where B1's time goes: per-update cost split into rollout and learner epochs, and the matmul floor.

    python benchmarks/profile_b1.py

Prints, per update of B1 (16 envs x 128 steps, 4 epochs x 4 minibatches of 512, 64x64 MLPs):
the full update, the rollout alone (policy + env, scanned), the cost of one epoch (from runs
with 4 and 1 epochs), and the throughput XLA:CPU reaches on the layer's own matmul, which bounds
how fast an epoch can get on this machine. Medians of interleaved repeats.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import B1

from purejaxlib.algos import ppo
from purejaxlib.rollout import rollout

UPDATES = 50


def rollout_only(config: ppo.Config, key: jax.Array) -> jax.Array:
    """UPDATES rollouts of num_steps with the initial policy, no learning."""
    state = ppo.init(config, key)
    env, env_params = ppo.make_env(config)

    def policy_fn(obs, k):
        _, dist, value = ppo.apply(config, state.params, None, obs, None)
        raw = dist.sample(seed=k)
        return raw, raw, {"log_prob": dist.log_prob(raw), "value": value}

    def body(carry, _):
        env_state, obs, k = carry
        k, sub = jax.random.split(k)
        env_state, obs, traj = rollout(env, env_params, policy_fn, env_state, obs, sub, config.num_steps)
        return (env_state, obs, k), traj.reward.sum()

    return jax.lax.scan(body, (state.env_state, state.obs, state.key), None, UPDATES)[1]


def matmul_chain(x: jax.Array, w: jax.Array) -> jax.Array:
    """1000 dependent [512, 64] @ [64, 64] products (the hidden layer's forward matmul)."""
    return jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, 1000)[0]


def main() -> None:
    config = ppo.Config(total_timesteps=UPDATES * 16 * 128, **B1)
    key = jax.random.key(0)
    cases = {
        "full update": (jax.jit(ppo.train), (config, key)),
        "1-epoch update": (jax.jit(ppo.train), (config.replace(update_epochs=1), key)),
        "rollout only": (jax.jit(rollout_only), (config, key)),
        "matmul x1000": (jax.jit(matmul_chain), (jnp.ones((512, 64)) * 0.1, jnp.eye(64) * 0.5)),
    }
    for fn, args in cases.values():
        jax.block_until_ready(fn(*args))
    times = {name: [] for name in cases}
    for _ in range(5):
        for name, (fn, args) in cases.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - t0)
    med = {name: float(np.median(v)) for name, v in times.items()}
    per_update = {k: med[k] / UPDATES * 1e3 for k in ("full update", "1-epoch update", "rollout only")}
    per_epoch = (per_update["full update"] - per_update["1-epoch update"]) / 3
    matmul_gflops = 2 * 512 * 64 * 64 * 1000 / med["matmul x1000"] / 1e9
    # Learner FLOPs per update: 2048 samples x 4 epochs x (fwd + 2x bwd) x MACs of both MLPs.
    macs = (4 * 64 + 64 * 64 + 64 * 2) + (4 * 64 + 64 * 64 + 64 * 1)
    learner_flop = 2048 * 4 * 3 * 2 * macs
    floor_ms = learner_flop / (matmul_gflops * 1e9) * 1e3 + per_update["rollout only"]
    report = {
        "ms_per_update": round(per_update["full update"], 3),
        "ms_rollout": round(per_update["rollout only"], 3),
        "ms_per_epoch": round(per_epoch, 3),
        "matmul_gflops": round(matmul_gflops, 1),
        "learner_mflop_per_update": round(learner_flop / 1e6, 1),
        "floor_ms_per_update_at_matmul_rate": round(floor_ms, 3),
        "sps": round(2048 / per_update["full update"] * 1e3),
        "sps_floor": round(2048 / floor_ms * 1e3),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
