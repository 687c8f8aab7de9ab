"""d3rlpy side-by-side peer for the offline RL table: one learner on one purejaxlib dataset.

Run with the d3rlpy venv's python (``benchmarks/setup_d3rlpy.sh`` builds it)::

    $PEERS_DIR/d3rlpy/bin/python benchmarks/d3rlpy_peer.py '{"algo": "iql", "dataset": "/tmp/data/pendulum/medium.npz",
        "steps": 20000, "seed": 0, "hidden": [256, 256], "batch_size": 256, "eval_episodes": 32}'

Prints one JSON line on stdout (everything d3rlpy itself prints goes to stderr).

Data: the ``.npz`` is read without pickle and handed to d3rlpy's ``MDPDataset`` (terminals =
``terminated``, timeouts = ``truncated``). d3rlpy takes a transition's next observation from the
next row of its episode and, for an episode that ends by timeout, drops the last step (it has no
next row). So that d3rlpy trains on exactly the dataset's transitions, this script builds the
same episodes (d3rlpy's ``EpisodeGenerator``, as ``MDPDataset`` does) into a ``ReplayBuffer``
whose episodes count their last step too and whose transition picker reads ``next_obs`` from the
file (``"exact_transitions": false`` uses the plain ``MDPDataset`` instead).

Continuous actions: d3rlpy's policies act in [-1, 1] (tanh); a ``MinMaxActionScaler`` with the
env's action bounds maps the data's actions into [-1, 1] for training and ``predict`` maps back.

Timing: build the learner, then a hand-written loop equal to ``fit``'s inner loop without its
logger (``sample_transition_batch`` + ``update``, batch sampling included); the rate is timed
over steps ``warmup .. steps`` (warm-up 500 steps, or none when ``steps <= warmup``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

DEFAULTS: dict[str, Any] = {
    "algo": "iql",
    "dataset": "",
    "steps": 20_000,
    "seed": 0,
    "hidden": [256, 256],
    "batch_size": 256,
    "eval_episodes": 32,
    "threads": 1,
    "warmup": 500,
    "lr": 3e-4,
    "gamma": 0.99,
    "exact_transitions": True,
    "bc_policy": "deterministic",  # d3rlpy BC: "deterministic" (MSE) or "stochastic" (Gaussian NLL)
    "target_update_interval": 1000,  # DiscreteCQL (CartPole) only; d3rlpy's default is 8000
    "normalize_obs": False,  # StandardObservationScaler with the file's mean and std (eps 1e-3, as ours)
    "iql_temperature": 3.0,  # IQL's weight_temp
    "td3bc_alpha": 2.5,  # TD3+BC's alpha
    "cql_weight": 5.0,  # continuous CQL's conservative_weight (fixed)
}


def load_dataset(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["__header__"]))
        if header.get("format") != "purejaxlib.dataset":
            raise ValueError(f"{path}: not a purejaxlib dataset (format {header.get('format')!r})")
        arrays = {k: data[k] for k in data.files if k != "__header__"}
    return header, arrays


def make_mdp_dataset(arrays: dict[str, Any], discrete: bool, action_size: int, exact: bool) -> Any:
    import dataclasses

    import numpy as np
    from d3rlpy.constants import ActionSpace
    from d3rlpy.dataset import Episode, EpisodeGenerator, InfiniteBuffer, MDPDataset, ReplayBuffer, Transition

    obs = np.asarray(arrays["obs"], np.float32)
    next_obs = np.asarray(arrays["next_obs"], np.float32)
    action = np.asarray(arrays["action"], np.int32 if discrete else np.float32)
    if discrete:
        action = action.reshape(-1, 1)
    reward = np.asarray(arrays["reward"], np.float32)
    terminals = np.asarray(arrays["terminated"], bool).astype(np.float32)
    timeouts = (np.asarray(arrays["truncated"], bool) & ~np.asarray(arrays["terminated"], bool)).astype(np.float32)
    action_space = ActionSpace.DISCRETE if discrete else ActionSpace.CONTINUOUS
    if not exact:  # d3rlpy's own: next obs from the next row, timed-out episodes' last step dropped
        return MDPDataset(obs, action, reward, terminals, timeouts, action_space=action_space, action_size=action_size)

    @dataclasses.dataclass(frozen=True)
    class FileEpisode(Episode):
        """An episode whose every step is a transition (its last one too, when it timed out)."""

        start: int = 0

        @property
        def transition_count(self) -> int:
            return self.size()

    class FileTransitionPicker:
        """d3rlpy's BasicTransitionPicker, but the next observation is the file's ``next_obs``."""

        def __call__(self, episode: Any, index: int) -> Any:
            i = episode.start + index
            last = index == episode.size() - 1
            is_terminal = bool(episode.terminated and last)
            return Transition(
                observation=obs[i],
                action=episode.actions[index],
                reward=episode.rewards[index],
                next_observation=np.zeros_like(obs[i]) if is_terminal else next_obs[i],
                next_action=np.zeros_like(episode.actions[index]) if last else episode.actions[index + 1],
                terminal=float(is_terminal),
                interval=1,
                rewards_to_go=episode.rewards[index:],
            )

    # the same split MDPDataset makes (EpisodeGenerator: an episode ends at a terminal or a timeout)
    episodes, offset = [], 0
    for ep in EpisodeGenerator(obs, action, reward, terminals, timeouts)():
        episodes.append(FileEpisode(ep.observations, ep.actions, ep.rewards, ep.terminated, start=offset))
        offset += ep.size()
    if offset != len(obs):
        raise ValueError(f"d3rlpy split the data into {offset} rows, the file has {len(obs)}")
    dataset = ReplayBuffer(
        InfiniteBuffer(),
        episodes=episodes,
        transition_picker=FileTransitionPicker(),
        action_space=action_space,
        action_size=action_size,
    )
    if dataset.transition_count != len(obs):
        raise ValueError(f"buffer holds {dataset.transition_count} transitions, the file {len(obs)}")
    return dataset


def make_algo(args: dict[str, Any], discrete: bool, low: Any, high: Any, obs: Any = None) -> Any:
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.preprocessing import MinMaxActionScaler, StandardObservationScaler

    observed: dict[str, Any] = {}
    if args["normalize_obs"]:
        flat = obs.reshape(len(obs), -1)
        observed["observation_scaler"] = StandardObservationScaler(mean=flat.mean(0), std=flat.std(0))

    enc = VectorEncoderFactory(hidden_units=list(args["hidden"]))
    lr, gamma, bs = float(args["lr"]), float(args["gamma"]), int(args["batch_size"])
    algo = args["algo"]
    if discrete:
        if algo == "bc":
            return d3rlpy.algos.DiscreteBCConfig(learning_rate=lr, batch_size=bs, encoder_factory=enc)
        if algo == "cql":
            return d3rlpy.algos.DiscreteCQLConfig(
                learning_rate=lr,
                batch_size=bs,
                gamma=gamma,
                encoder_factory=enc,
                alpha=1.0,
                target_update_interval=int(args["target_update_interval"]),
            )
        raise ValueError(f"d3rlpy has no discrete-action {algo}")
    scaler = MinMaxActionScaler(minimum=low, maximum=high)
    actor_critic = dict(
        actor_learning_rate=lr,
        critic_learning_rate=lr,
        actor_encoder_factory=enc,
        critic_encoder_factory=enc,
        batch_size=bs,
        gamma=gamma,
        action_scaler=scaler,
        **observed,
    )
    if algo == "iql":
        return d3rlpy.algos.IQLConfig(
            **actor_critic,
            value_encoder_factory=enc,
            expectile=0.7,
            weight_temp=float(args["iql_temperature"]),
            max_weight=100.0,
        )
    if algo == "td3bc":
        return d3rlpy.algos.TD3PlusBCConfig(**actor_critic, alpha=float(args["td3bc_alpha"]))
    if algo == "cql":
        return d3rlpy.algos.CQLConfig(
            **actor_critic,
            temp_learning_rate=lr,
            n_action_samples=10,
            conservative_weight=float(args["cql_weight"]),
            alpha_learning_rate=0.0,
            initial_alpha=1.0,  # fixed weight: 1.0 * conservative_weight
        )
    if algo == "bc":
        return d3rlpy.algos.BCConfig(
            learning_rate=lr,
            batch_size=bs,
            encoder_factory=enc,
            policy_type=args["bc_policy"],
            action_scaler=scaler,
            **observed,
        )
    raise ValueError(f"unknown algo {algo!r}")


def evaluate(algo: Any, env_id: str, max_steps: int, episodes: int, seed: int, discrete: bool) -> list[float]:
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id, max_episode_steps=max_steps)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 100_003 + ep)
        total, done = 0.0, False
        while not done:
            action = algo.predict(np.asarray(obs, np.float32)[None])[0]
            obs, reward, terminated, truncated, _ = env.step(int(action) if discrete else np.asarray(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def main(argv: list[str]) -> dict[str, Any]:
    args = dict(DEFAULTS, **(json.loads(argv[1]) if len(argv) > 1 else {}))
    wall0 = time.perf_counter()
    import d3rlpy
    import gymnasium as gym
    import numpy as np
    import torch

    torch.set_num_threads(int(args["threads"]))
    seed = int(args["seed"])
    d3rlpy.seed(seed)  # seeds random, numpy's global generator and torch (d3rlpy samples batches with them)

    header, arrays = load_dataset(args["dataset"])
    info = header["info"]
    env_id = info["env"]
    space = gym.make(env_id).action_space
    discrete = isinstance(space, gym.spaces.Discrete)
    action_size = int(space.n) if discrete else int(np.prod(space.shape))
    low = None if discrete else np.asarray(space.low, np.float32)
    high = None if discrete else np.asarray(space.high, np.float32)

    dataset = make_mdp_dataset(arrays, discrete, action_size, bool(args["exact_transitions"]))
    algo = make_algo(args, discrete, low, high, arrays["obs"]).create(device="cpu:0")
    algo.build_with_dataset(dataset)

    steps, warmup = int(args["steps"]), int(args["warmup"])
    warmup = warmup if steps > warmup else 0
    bs = int(args["batch_size"])
    t_train0 = time.perf_counter()
    t_timed0 = t_train0
    for step in range(steps):
        if step == warmup:
            t_timed0 = time.perf_counter()
        algo.update(dataset.sample_transition_batch(bs))
    t_train1 = time.perf_counter()

    returns = evaluate(algo, env_id, int(info["max_steps"]), int(args["eval_episodes"]), seed, discrete)
    mean = float(np.mean(returns))
    rand, expert = float(info["random_return"]), float(info["expert_return"])

    return {
        "library": "d3rlpy",
        "versions": {
            "d3rlpy": d3rlpy.__version__,
            "torch": torch.__version__,
            "gymnasium": gym.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "algo": args["algo"],
        "d3rlpy_class": type(algo).__name__,
        "env": env_id,
        "dataset": args["dataset"],
        "level": info.get("level"),
        "transitions": int(dataset.transition_count),
        "seed": seed,
        "steps": steps,
        "hidden": list(args["hidden"]),
        "batch_size": bs,
        "threads": int(args["threads"]),
        "warmup_steps": warmup,
        "steps_per_sec": (steps - warmup) / (t_train1 - t_timed0) if steps > warmup else None,
        "train_s": t_train1 - t_train0,
        "wall_s": time.perf_counter() - wall0,
        "eval_episodes": len(returns),
        "mean_return": mean,
        "std_return": float(np.std(returns)),
        "random_return": rand,
        "expert_return": expert,
        "normalized": 100.0 * (mean - rand) / (expert - rand),
        "action_scaling": None if discrete else f"MinMaxActionScaler({low.tolist()}, {high.tolist()})",
        "options": {
            k: args[k] for k in ("lr", "gamma", "normalize_obs", "iql_temperature", "td3bc_alpha", "cql_weight")
        },
    }


if __name__ == "__main__":
    # d3rlpy (structlog) and the old gym print on stdout: send fd 1 to stderr, keep the real one for the result
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    result = main(sys.argv)
    out.write(json.dumps(result) + "\n")
    out.flush()
