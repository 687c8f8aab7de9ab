"""B1 update throughput of several builds side by side: persistent workers, interleaved rounds.

    python benchmarks/b1_interleaved.py --seeds 1 --updates 20 --rounds 15 \\
        --build after=.venv/bin/python --build before=/path/to/old/.venv/bin/python \\
        --build rejax=/tmp/pjl-peers/rejax/bin/python --out benchmarks/results/b1_interleaved_1.json

Each build is a process that compiles ``updates`` B1 updates (16 envs x 128 steps, 4 epochs x 4
minibatches, 64x64 tanh MLPs; ``seeds`` agents vmapped) once, then runs them on request. Rounds ask
every build in turn, rotating the order each round, so a shared machine's load falls on all of
them alike; ratios are taken within a round and their median is reported. Only the update loop is
timed (no init, compile or evaluation). A build named ``rejax`` runs rejax's PPO on the same
config; any other name runs purejaxlib's PPO from the interpreter's installed purejaxlib.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

B1 = dict(num_envs=16, num_steps=128, num_minibatches=4, lr=2.5e-4, gamma=0.99, gae_lambda=0.95, clip_eps=0.2)


def worker(lib: str, seeds: int, updates: int) -> None:
    """Compiles the loop, prints READY, then times one run per line read from stdin."""
    import jax

    if lib == "rejax":
        from rejax import PPO

        algo = PPO.create(
            env="CartPole-v1", total_timesteps=500_000, eval_freq=500_000, skip_initial_evaluation=True,
            num_epochs=4, learning_rate=B1["lr"], max_grad_norm=0.5, ent_coef=0.01, vf_coef=0.5,
            agent_kwargs=dict(hidden_layer_sizes=(64, 64), activation="tanh"),
            **{k: v for k, v in B1.items() if k != "lr"},
        )  # fmt: skip
        state = jax.jit(jax.vmap(algo.init_state))(jax.random.split(jax.random.PRNGKey(0), seeds))

        def run(s):
            return jax.lax.scan(lambda t, _: (algo.train_iteration(t), None), s, None, updates)[0]
    else:
        from purejaxlib.algos import ppo

        config = ppo.Config(
            env="CartPole-v1", total_timesteps=500_000, update_epochs=4, hidden=(64, 64), activation="tanh",
            anneal_lr=False, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, **B1,
        )  # fmt: skip
        state = jax.jit(jax.vmap(lambda k: ppo.init(config, k)))(jax.random.split(jax.random.key(0), seeds))

        def run(s):
            return jax.lax.scan(lambda t, _: (ppo.step(config, t)[0], None), s, None, updates)[0]

    compiled = jax.jit(jax.vmap(run)).lower(state).compile()
    jax.block_until_ready(compiled(state))
    print("READY", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        jax.block_until_ready(compiled(state))
        print(time.perf_counter() - start, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--updates", type=int, default=20, help="B1 updates per timed call")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--build", action="append", default=[], help="NAME=PYTHON (repeat; 'rejax' runs rejax)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.seeds, args.updates)
    builds = dict(b.split("=", 1) for b in args.build)
    if len(builds) < 2:
        parser.error("give at least two --build NAME=PYTHON")
    procs = {}
    for name, python in builds.items():
        cmd = [python, __file__, "--worker", "rejax" if name == "rejax" else "ours", "--seeds", str(args.seeds),
               "--updates", str(args.updates)]  # fmt: skip
        procs[name] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/tmp")
        while (line := procs[name].stdout.readline()) and not line.startswith("READY"):
            pass
        if not line:
            raise SystemExit(f"build {name} failed to start: {cmd}")
    names = list(builds)
    steps = args.seeds * args.updates * B1["num_envs"] * B1["num_steps"]
    sps: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            procs[name].stdin.write("run\n")
            procs[name].stdin.flush()
            sps[name].append(steps / float(procs[name].stdout.readline()))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    report = {
        "seeds": args.seeds, "updates": args.updates, "rounds": args.rounds, "builds": builds,
        "median_sps": {n: statistics.median(v) for n, v in sps.items()},
        "ratios": {
            f"{a}/{b}": statistics.median(x / y for x, y in zip(sps[a], sps[b], strict=True))
            for a in names for b in names if a != b
        },
        "sps": sps,
    }  # fmt: skip
    print(json.dumps({k: v for k, v in report.items() if k != "sps"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
