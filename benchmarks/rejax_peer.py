"""rejax 0.1.3 on B2 (SAC) with the network size actually applied; run with the rejax venv's
python; prints one JSON line like shared/peers/rejax_bench.py.

Usage: /tmp/pjl-peers/rejax/bin/python benchmarks/rejax_peer.py sac ENV STEPS SEEDS WIDTH

Why this exists: shared/peers/rejax_bench.py passes ``hidden_layer_sizes`` inside
``agent_kwargs``, but rejax's SAC.create_agent overwrites it with the top-level
``hidden_layer_sizes`` config key (default (64, 64)); so that script's "B2" runs 64x64 networks.
Here the width goes to the top-level key, which rejax honours.
"""

import json
import sys
import time

import jax
from rejax import SAC

algo_name, env, steps, nseeds, width = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if algo_name != "sac":
    sys.exit("only sac needs this script; use shared/peers/rejax_bench.py for the others")
algo = SAC.create(
    env=env,
    total_timesteps=steps,
    eval_freq=steps,
    skip_initial_evaluation=True,
    num_envs=1,
    buffer_size=100_000,
    fill_buffer=1_000,
    batch_size=256,
    learning_rate=3e-4,
    gamma=0.99,
    hidden_layer_sizes=(width, width),
)
assert algo.actor.hidden_layer_sizes == (width, width), algo.actor.hidden_layer_sizes
train = jax.jit(jax.vmap(SAC.train, in_axes=(None, 0)))
keys = jax.random.split(jax.random.PRNGKey(0), nseeds)
t0 = time.perf_counter()
compiled = train.lower(algo, keys).compile()
compile_s = time.perf_counter() - t0
t0 = time.perf_counter()
_, (_, returns) = compiled(algo, keys)
jax.block_until_ready(returns)
run_s = time.perf_counter() - t0
final = returns[:, -1].mean(axis=-1)
print(
    json.dumps(
        dict(
            lib="rejax",
            algo=algo_name,
            env=env,
            steps=steps,
            seeds=nseeds,
            hidden=[width, width],
            compile_s=round(compile_s, 2),
            run_s=round(run_s, 2),
            sps=round(steps * nseeds / run_s),
            final_return_mean=round(float(final.mean()), 1),
            final_return_min=round(float(final.min()), 1),
        )
    )
)
