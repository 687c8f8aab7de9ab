"""One stable-baselines3 seed of a reference cell; run by ``benchmarks/reference.py --sb3`` with the
stable-baselines3 environment's python (CPU, one torch thread). Prints one JSON line.

Usage: /tmp/pjl-peers/sb3/bin/python benchmarks/sb3_reference.py '{"algo": "sac", "env": "Pendulum-v1",
    "steps": 20000, "seed": 0, "kwargs": {"learning_rate": 0.001}, "eval_episodes": 32, "points": 200}'

``kwargs`` are the RL Zoo's hyperparameters for the task, passed to the algorithm's constructor,
except those the Zoo gives outside it: ``n_envs`` (vectorized envs), ``normalize`` (VecNormalize of
observations and rewards; evaluation uses the training statistics), ``action_noise`` (std of
Gaussian exploration noise, TD3/DDPG) and the policy's ``net_arch``, ``log_std_init`` and
``ortho_init``. ``"lin_X"`` is a schedule falling linearly from X to 0; a list ``train_freq`` is
the tuple ``(n, "step" | "episode")``. The training curve is
the mean return of the episodes that ended in each of ``points`` equal spans of the budget (null
where none ended), so ``purejaxlib.stats.final_return`` scores it over the same last 10% of env
steps as ours; ``eval`` is the mean of ``eval_episodes`` deterministic episodes of the final policy.
"""

import itertools
import json
import sys
import time

import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecNormalize

ALGOS = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC, "td3": TD3, "ddpg": DDPG}


def linear(text: str):
    """``"lin_X"`` -> SB3's schedule of the remaining progress (1 -> 0): ``X * progress``."""
    start = float(text[len("lin_") :])
    return lambda progress: progress * start


class Episodes(BaseCallback):
    """Collects (env steps so far, return) of every finished training episode."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "episode" in info:
                self.ends.append((self.num_timesteps, float(info["episode"]["r"])))
        return True


def binned(ends: list[tuple[int, float]], steps: int, points: int) -> tuple[list, list]:
    edges = np.linspace(0, steps, points + 1)
    at = np.array([s for s, _ in ends], np.float64)
    ret = np.array([r for _, r in ends], np.float64)
    curve = []
    for low, high in itertools.pairwise(edges):
        inside = (at > low) & (at <= high)
        curve.append(round(float(ret[inside].mean()), 2) if inside.any() else None)
    return [int(e) for e in edges[1:]], curve


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    kwargs = {k: linear(v) if isinstance(v, str) and v.startswith("lin_") else v for k, v in spec["kwargs"].items()}
    n_envs = kwargs.pop("n_envs", 1)
    normalize = kwargs.pop("normalize", False)
    noise = kwargs.pop("action_noise", None)
    policy_kwargs = {k: kwargs.pop(k) for k in ("net_arch", "log_std_init", "ortho_init") if k in kwargs}
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    if isinstance(kwargs.get("train_freq"), list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    if spec["algo"] == "tqc":
        from sb3_contrib import TQC

        cls = TQC
    else:
        cls = ALGOS[spec["algo"]]
    env = make_vec_env(spec["env"], n_envs=n_envs, seed=spec["seed"])
    if normalize:
        env = VecNormalize(env, gamma=kwargs.get("gamma", 0.99))
    if noise is not None:
        size = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(size), noise * np.ones(size))
    model = cls("MlpPolicy", env, seed=spec["seed"], device="cpu", verbose=0, **kwargs)
    callback = Episodes()
    start = time.perf_counter()
    model.learn(total_timesteps=spec["steps"], callback=callback)
    run_s = time.perf_counter() - start
    eval_env = make_vec_env(spec["env"], n_envs=1, seed=10_000 + spec["seed"])
    if normalize:
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        eval_env.obs_rms = env.obs_rms
    returns, _ = evaluate_policy(
        model, eval_env, n_eval_episodes=spec["eval_episodes"], deterministic=True, return_episode_rewards=True
    )
    steps, curve = binned(callback.ends, spec["steps"], spec["points"])
    finite = [c for c in curve if c is not None]
    tail = finite[-max(1, int(np.ceil(0.1 * len(finite)))) :]
    print(
        json.dumps(
            dict(
                lib="sb3",
                version=stable_baselines3.__version__,
                algo=spec["algo"],
                env=spec["env"],
                seed=spec["seed"],
                steps=spec["steps"],
                score=float(np.mean(tail)),
                eval=float(np.mean(returns)),
                curve_steps=steps,
                curve=curve,
                run_s=round(run_s, 1),
            )
        )
    )


if __name__ == "__main__":
    main()
