"""Time to threshold for stable-baselines3 with its default hyperparameters (one seed, CPU, one
torch thread); run with the sb3 venv's python; prints one JSON line.

Usage: /tmp/pjl-peers/sb3/bin/python benchmarks/sb3_threshold.py {dqn,sac,ppo} ENV THRESHOLD MAX_STEPS

The return tracked is the mean of the last 4 finished training episodes (purejaxlib's figure is
the mean over 4 seeds of each seed's latest episode); the clock starts before the model is built.
"""

import json
import sys
import time
from collections import deque

import gymnasium as gym
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor

algo, env_id, threshold, max_steps = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)


class StopAtThreshold(BaseCallback):
    def __init__(self):
        super().__init__()
        self.recent = deque(maxlen=4)
        self.crossed = None

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "episode" in info:
                self.recent.append(info["episode"]["r"])
                if len(self.recent) == self.recent.maxlen and sum(self.recent) / len(self.recent) >= threshold:
                    self.crossed = (time.perf_counter(), self.num_timesteps)
                    return False
        return True


t0 = time.perf_counter()
cls = {"dqn": DQN, "sac": SAC, "ppo": PPO}[algo]
model = cls("MlpPolicy", Monitor(gym.make(env_id)), seed=0, device="cpu")
callback = StopAtThreshold()
model.learn(total_timesteps=max_steps, callback=callback)
wall = time.perf_counter() - t0
crossed = callback.crossed
print(
    json.dumps(
        dict(
            lib="sb3",
            algo=algo,
            env=env_id,
            threshold=threshold,
            seeds=1,
            max_steps=max_steps,
            config="defaults",
            time_to_threshold_s=None if crossed is None else round(crossed[0] - t0, 2),
            steps_to_threshold=None if crossed is None else crossed[1],
            wall_s=round(wall, 2),
            last_returns=[round(float(r), 1) for r in callback.recent],
        )
    )
)
