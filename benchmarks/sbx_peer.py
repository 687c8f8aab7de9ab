"""SBX (stable-baselines in JAX, sbx-rl 0.28.0) on B2 (SAC Pendulum-v1) and B3 (DQN CartPole-v1)
with our configs; run with the sbx venv's python (benchmarks/setup_sbx.sh builds it); JAX on CPU;
prints one JSON line like benchmarks/sb3_peer.py and benchmarks/rejax_peer.py.

Usage: /tmp/pjl-peers/sbx/bin/python benchmarks/sbx_peer.py {sac,dqn} ENV STEPS SEEDS [key=value ...]

    sbx_peer.py sac Pendulum-v1 5000 8     # B2: 8 runs one after another
    sbx_peer.py dqn CartPole-v1 50000 4    # B3: 4 runs one after another

``key=value`` overrides one of the settings below (values are Python literals, never evaluated),
e.g. ``n_steps=1`` or ``max_grad_norm=0`` (0: plain Adam, SBX's default, no clipping).

SBX runs one agent per process call, so the seeds run one after another (seed i for run i), each
a fresh model. Only ``model.learn`` is timed: ``sps`` is steps * seeds over the summed learn
seconds less ``compile_s``, the JIT compilation SBX does lazily inside the learn calls (JAX's own
compile-event timings), so it counts as our train.py's ``sps`` does; ``sps_incl_compile`` keeps it. Model construction
and the final evaluation (32 deterministic episodes of each final policy, sb3's evaluate_policy)
are timed apart.

Settings (our B2 / B3, train.py's B2 and B3 over the Config defaults of algos/sac.py, algos/dqn.py
and purejaxlib/offpolicy.py):
- both: 1 env, train_freq 1, gradient_steps 1 (one gradient step per env step after warm-up),
  buffer 100k, 1k uniformly random warm-up steps (learning_starts), gamma 0.99, and our optimizer:
  clip_by_global_norm(10) then Adam with eps 1e-5 (purejaxlib.optim.make_optimizer), passed
  through SBX's policy_kwargs optimizer_class.
- sac (B2): batch 256, 256x256 actor and critics, 2 critics, lr 3e-4 (actor, critics and
  temperature), tau 0.005 every gradient step, learned temperature from 1.0 ("auto"), target
  entropy -|A|.
- dqn (B3): batch 64, 64x64 Q-network, lr 2.5e-4 annealed linearly to 0 over the run's gradient
  steps (our DQN's anneal_lr), 5-step TD targets (n_step 5: SB3's NStepReplayBuffer), Huber loss,
  hard target copy (tau 1) every 250 steps, epsilon 1.0 -> 0.01 linearly over the first 20% of
  the run (progress = env steps / total, as ours).

What SBX cannot be made to match (listed in the JSON line's ``unmatched``): its DQN bootstraps
from the target network's max (no double-Q) and its Q-network has no LayerNorm (ours: double_q and
layer_norm on by default); its SAC's temperature optimizer is plain Adam (eps 1e-8, no clipping).
"""

import ast
import json
import os
import statistics
import sys
import time
from importlib.metadata import version

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import gymnasium as gym
import jax
import numpy as np
import optax
import torch
from sbx import DQN, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

EVAL_EPISODES = 32
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
SETTINGS = {
    "sac": dict(
        batch_size=256,
        buffer_size=100_000,
        learning_starts=1_000,
        learning_rate=3e-4,
        gamma=0.99,
        tau=0.005,
        train_freq=1,
        gradient_steps=1,
        ent_coef="auto",  # learned, initial value 1.0
        target_entropy="auto",  # -|A|
        hidden=[256, 256],
        n_critics=2,
        max_grad_norm=10.0,
        adam_eps=1e-5,
        anneal_lr=False,
    ),
    "dqn": dict(
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1_000,
        learning_rate=2.5e-4,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        hidden=[64, 64],
        n_steps=5,
        target_update_interval=250,
        tau=1.0,
        exploration_initial_eps=1.0,
        exploration_final_eps=0.01,
        exploration_fraction=0.2,
        max_grad_norm=10.0,
        adam_eps=1e-5,
        anneal_lr=True,
    ),
}
UNMATCHED = {
    "sac": [
        "temperature optimizer: SBX's plain optax.adam(lr) (eps 1e-8, no clipping; sbx/sac/sac.py "
        "_setup_model), ours clip_by_global_norm(10) + Adam eps 1e-5 like the other networks",
    ],
    "dqn": [
        "no double-Q: SBX's target is the target network's max (sbx/dqn/dqn.py update_qnetwork); "
        "ours double_q=True (online argmax, target value)",
        "no LayerNorm: SBX's QNetwork is Dense-relu-Dense-relu-Dense (sbx/dqn/policies.py); ours layer_norm=True",
        "target copy every 250 env steps counted from the first (SB3's _on_step), i.e. after "
        "gradient steps 249, 499, ...; ours after gradient steps 250, 500, ...",
    ],
}


def make_optimizer_class(max_grad_norm: float, eps: float, anneal_steps: int):
    """An optax factory ``f(learning_rate)`` for SBX's policy_kwargs optimizer_class: our
    ``make_optimizer`` (clip_by_global_norm then Adam; with ``anneal_steps`` the rate falls
    linearly to 0 over that many updates). Only ``learning_rate`` is an argument, so SAC's
    ``optax.inject_hyperparams`` wrapping injects (and schedules) nothing else."""

    def optimizer(learning_rate):
        lr = optax.linear_schedule(learning_rate, 0.0, anneal_steps) if anneal_steps else learning_rate
        adam = optax.adam(lr, eps=eps)
        return optax.chain(optax.clip_by_global_norm(max_grad_norm), adam) if max_grad_norm > 0 else adam

    return optimizer


def dense_kernels(params) -> list[tuple[int, ...]]:
    """Shapes of the Dense kernels of a flax params tree, in layer order."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    kernels = [(jax.tree_util.keystr(path), tuple(leaf.shape)) for path, leaf in leaves if "kernel" in str(path[-1])]
    return [shape for _, shape in sorted(kernels, key=lambda item: int(item[0].split("Dense_")[1].split("'")[0]))]


def build(algo: str, env_id: str, steps: int, s: dict, seed: int):
    gradient_steps = (steps - s["learning_starts"]) // s["train_freq"] * s["gradient_steps"]
    optimizer = make_optimizer_class(s["max_grad_norm"], s["adam_eps"], gradient_steps if s["anneal_lr"] else 0)
    common = dict(
        batch_size=s["batch_size"],
        buffer_size=s["buffer_size"],
        learning_starts=s["learning_starts"],
        learning_rate=s["learning_rate"],
        gamma=s["gamma"],
        tau=s["tau"],
        train_freq=s["train_freq"],
        gradient_steps=s["gradient_steps"],
        seed=seed,
        verbose=0,
    )
    if algo == "sac":
        return SAC(
            "MlpPolicy",
            gym.make(env_id),
            ent_coef=s["ent_coef"],
            target_entropy=s["target_entropy"],
            policy_kwargs=dict(net_arch=list(s["hidden"]), n_critics=s["n_critics"], optimizer_class=optimizer),
            **common,
        )
    return DQN(
        "MlpPolicy",
        gym.make(env_id),
        n_steps=s["n_steps"],
        target_update_interval=s["target_update_interval"],
        exploration_initial_eps=s["exploration_initial_eps"],
        exploration_final_eps=s["exploration_final_eps"],
        exploration_fraction=s["exploration_fraction"],
        policy_kwargs=dict(net_arch=list(s["hidden"]), optimizer_class=optimizer),
        **common,
    )


def check_model(algo: str, model, s: dict, obs_dim: int, act_dim: int) -> None:
    """The settings really took effect: network shapes, critic count, schedules, buffer."""
    h = list(s["hidden"])
    if algo == "sac":
        actor = dense_kernels(model.policy.actor_state.params)
        # hidden layers, then the mean and log-std heads
        want = [(i, o) for i, o in zip([obs_dim] + h[:-1], h)] + [(h[-1], act_dim)] * 2
        assert actor == want, (actor, want)
        for params in (model.policy.qf_state.params, model.policy.qf_state.target_params):
            critic = dense_kernels(params)
            want = [(s["n_critics"], i, o) for i, o in zip([obs_dim + act_dim] + h, h + [1])]
            assert critic == want, (critic, want)
        ent = float(model.ent_coef_state.apply_fn({"params": model.ent_coef_state.params}))
        assert abs(ent - 1.0) < 1e-6, ent
        assert model.target_entropy == -act_dim, model.target_entropy
    else:
        for params in (model.policy.qf_state.params, model.policy.qf_state.target_params):
            q = dense_kernels(params)
            want = [(i, o) for i, o in zip([obs_dim] + h, h + [act_dim])]
            assert q == want, (q, want)
        assert model.target_update_interval == s["target_update_interval"], model.target_update_interval
        assert model.n_steps == s["n_steps"], model.n_steps
        if s["n_steps"] > 1:
            assert type(model.replay_buffer).__name__ == "NStepReplayBuffer", type(model.replay_buffer)
        sched = model.exploration_schedule
        assert (
            abs(sched(1.0) - s["exploration_initial_eps"]) < 1e-9
            and abs(sched(0.0) - s["exploration_final_eps"]) < 1e-9
        )
    assert model.buffer_size == s["buffer_size"] and model.n_envs == 1
    assert model.train_freq.frequency == s["train_freq"] and model.gradient_steps == s["gradient_steps"]


def main() -> None:
    algo, env_id, steps, nseeds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if algo not in SETTINGS:
        sys.exit(f"unknown algorithm {algo!r}: choose sac or dqn")
    s = dict(SETTINGS[algo])
    for item in sys.argv[5:]:
        key, _, value = item.partition("=")
        if key not in s:
            sys.exit(f"unknown setting {key!r}; settings: {sorted(s)}")
        try:
            s[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            s[key] = value  # a plain string, e.g. ent_coef=auto_0.1
    if steps <= s["learning_starts"]:
        sys.exit(f"STEPS={steps} must exceed learning_starts={s['learning_starts']}")
    torch.set_num_threads(1)  # SB3's replay buffer samples through torch tensors

    compile_time = [0.0]

    def on_event(event: str, duration: float, **_) -> None:
        if event in COMPILE_EVENTS:
            compile_time[0] += duration

    jax.monitoring.register_event_duration_secs_listener(on_event)

    probe = gym.make(env_id)
    obs_dim = int(np.prod(probe.observation_space.shape))
    act_dim = int(probe.action_space.n) if algo == "dqn" else int(np.prod(probe.action_space.shape))
    expected_updates = (steps - s["learning_starts"]) // s["train_freq"] * s["gradient_steps"]

    t_wall = time.perf_counter()
    construct_s, learn_s, compile_s, eval_s, finals = [], [], [], [], []
    for seed in range(nseeds):
        t0 = time.perf_counter()
        model = build(algo, env_id, steps, s, seed)
        construct_s.append(time.perf_counter() - t0)
        check_model(algo, model, s, obs_dim, act_dim)
        c0 = compile_time[0]
        t0 = time.perf_counter()
        model.learn(total_timesteps=steps)
        learn_s.append(time.perf_counter() - t0)
        compile_s.append(compile_time[0] - c0)
        assert model.num_timesteps == steps, model.num_timesteps
        assert model._n_updates == expected_updates, (model._n_updates, expected_updates)
        t0 = time.perf_counter()
        mean, _ = evaluate_policy(
            model, make_vec_env(env_id, n_envs=1, seed=10_000 + seed), n_eval_episodes=EVAL_EPISODES, deterministic=True
        )
        eval_s.append(time.perf_counter() - t0)
        finals.append(float(mean))
    wall_s = time.perf_counter() - t_wall

    run_s = sum(learn_s)
    total_compile = sum(compile_s)
    shown = dict(s)
    shown["optimizer"] = (
        (f"clip_by_global_norm({s['max_grad_norm']}) + " if s["max_grad_norm"] > 0 else "")
        + f"adam(eps={s['adam_eps']})"
        + (f", lr linear to 0 over {expected_updates} updates" if s["anneal_lr"] else "")
    )
    print(
        json.dumps(
            dict(
                lib="sbx",
                algo=algo,
                env=env_id,
                steps=steps,
                seeds=nseeds,
                hidden=list(s["hidden"]),
                gradient_steps=expected_updates,
                compile_s=round(total_compile, 2),
                first_learn_s=round(learn_s[0], 2),
                run_s=round(run_s, 2),
                learn_s=[round(x, 2) for x in learn_s],
                sps=round(steps * nseeds / max(run_s - total_compile, 1e-9)),
                sps_incl_compile=round(steps * nseeds / run_s),
                sps_after_first=round(steps * (nseeds - 1) / sum(learn_s[1:])) if nseeds > 1 else None,
                construct_s=round(sum(construct_s), 2),
                eval_s=round(sum(eval_s), 2),
                eval_episodes=EVAL_EPISODES,
                final_return_mean=round(statistics.fmean(finals), 1),
                final_return_min=round(min(finals), 1),
                finals=[round(f, 1) for f in finals],
                wall_s=round(wall_s, 2),
                platform=jax.devices()[0].platform,
                versions={
                    name: version(name)
                    for name in (
                        "sbx-rl",
                        "stable_baselines3",
                        "jax",
                        "jaxlib",
                        "flax",
                        "optax",
                        "gymnasium",
                        "numpy",
                        "torch",
                    )
                },
                settings=shown,
                unmatched=UNMATCHED[algo],
            )
        )
    )


if __name__ == "__main__":
    main()
