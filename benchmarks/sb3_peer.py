"""stable-baselines3 on the closest configs to B1-B3, at the same update-to-data ratio as ours;
run with the sb3 venv's python (one seed, CPU, one torch thread); prints one JSON line like
shared/peers/sb3_bench.py.

Usage: /tmp/pjl-peers/sb3/bin/python benchmarks/sb3_peer.py {ppo,sac,dqn} ENV STEPS

Why this exists: shared/peers/sb3_bench.py runs DQN with sb3's default ``train_freq=4``, one
gradient step per 4 env steps, while B3 takes one per env step; a throughput ratio between the
two would compare different amounts of learning. Here DQN trains every step (B3's buffer, lr and
64x64 network), PPO runs B1's 16 envs x 128 steps, 4 epochs of 4 minibatches, 64x64 tanh (sb3's
default MLP), SAC runs B2's batch, buffer and warm-up with sb3's default 256x256 networks.
"""

import json
import sys
import time

import gymnasium as gym
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

algo, env_id, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(1)
if algo == "ppo":
    model = PPO(
        "MlpPolicy",
        make_vec_env(env_id, n_envs=16, seed=0),
        n_steps=128,
        batch_size=512,
        n_epochs=4,
        learning_rate=2.5e-4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        seed=0,
        device="cpu",
    )
elif algo == "sac":
    model = SAC(
        "MlpPolicy",
        gym.make(env_id),
        batch_size=256,
        buffer_size=100_000,
        learning_starts=1_000,
        learning_rate=3e-4,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        seed=0,
        device="cpu",
    )
elif algo == "dqn":
    model = DQN(
        "MlpPolicy",
        gym.make(env_id),
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1_000,
        learning_rate=2.5e-4,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        seed=0,
        device="cpu",
    )
else:
    sys.exit(f"unknown algorithm {algo!r}: choose ppo, sac or dqn")
t0 = time.perf_counter()
model.learn(total_timesteps=steps)
run_s = time.perf_counter() - t0
mean, _ = evaluate_policy(model, gym.make(env_id), n_eval_episodes=10)
print(
    json.dumps(
        dict(
            lib="sb3",
            algo=algo,
            env=env_id,
            steps=steps,
            seeds=1,
            train_freq=getattr(model, "train_freq", None) and model.train_freq.frequency,
            run_s=round(run_s, 2),
            sps=round(steps / run_s),
            final_return_mean=round(float(mean), 1),
        )
    )
)
