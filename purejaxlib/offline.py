"""Offline datasets: a pytree of logged transitions, checked, saved, sampled and collected.

``Dataset`` holds ``[N, ...]`` arrays in time order within each episode (``episode`` ids), with
termination and truncation apart and the true successor ``next_obs`` of every step. The last
step of every episode in the file is terminated or truncated (a collection cut short marks its
last step truncated), so n-step returns never run across episodes. Continuous actions are in the
env's own units. ``info`` (static) names the env and level and carries the reference returns of
normalized scores: ``100 * (R - random_return) / (expert_return - random_return)``.

Any replay learner (DQN, TD3, SAC, IQL, BC) learns offline with ``dataset=<path>`` in its
config: the dataset becomes its replay buffer (:func:`as_buffer`) and the run takes gradient
steps only. On disk: one ``.npz`` (no pickle) with a JSON header, format :data:`FORMAT` version
:data:`VERSION` (README, "Offline RL").
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxlib import distributions, replay
from purejaxlib import envs as envs_lib
from purejaxlib.rollout import rollout

FORMAT = "purejaxlib.dataset"
VERSION = 1
ARRAYS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "episode", "log_prob")


class DatasetError(ValueError):
    """A dataset that cannot be used: the message names the field and the first bad index."""


class Dataset(struct.PyTreeNode):
    """Logged transitions, every array ``[N, ...]``; ``info`` is static metadata."""

    obs: Any
    """Observations ``[N, *obs_shape]`` float32."""
    action: Any
    """Actions: int32 ``[N]`` (discrete) or float32 ``[N, *action_shape]`` in the env's bounds."""
    reward: Any
    """Rewards ``[N]`` float32."""
    next_obs: Any
    """True successors ``[N, *obs_shape]`` (before any auto-reset)."""
    terminated: Any
    """``[N]`` bool: the episode ended here for real (no bootstrap)."""
    truncated: Any
    """``[N]`` bool: the episode was cut here (time limit or end of collection; bootstrap)."""
    episode: Any
    """``[N]`` int32 episode ids, constant within an episode."""
    log_prob: Any = None
    """Behaviour policy's log-probability of each action ``[N]`` float32, where known (else None)."""
    info: dict[str, Any] = struct.field(pytree_node=False, default_factory=dict)
    """``env``, ``level``, ``random_return``, ``expert_return``, ``source``... (JSON-able)."""

    def __len__(self) -> int:
        return int(np.shape(self.reward)[0])

    @property
    def num_episodes(self) -> int:
        return len(np.unique(np.asarray(self.episode)))


# --- checks ------------------------------------------------------------------------------------


def bounds(env: str) -> tuple[np.ndarray, np.ndarray]:
    """The continuous action bounds ``(low, high)`` of ``env``."""
    spec = envs_lib.spec(env)
    if spec.action_low is None or spec.action_high is None:
        raise ValueError(f"{env} has discrete actions: no bounds")
    return spec.action_low, spec.action_high


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))[0])


def validate(dataset: Dataset, env: str | None = None) -> None:
    """Refuses a dataset that cannot be learned from, naming the field and the first bad index.

    Checks lengths, dtypes, NaN/inf, episode structure (ids contiguous, each episode's last step
    terminated or truncated), and with ``env`` the observation shape and the action space.
    """
    arrays = {name: getattr(dataset, name) for name in ARRAYS if getattr(dataset, name) is not None}
    missing = [name for name in ARRAYS[:-1] if name not in arrays]
    if missing:
        raise DatasetError(f"dataset has no {', '.join(missing)}")
    arrays = {name: np.asarray(x) for name, x in arrays.items()}
    n = len(arrays["reward"])
    if n == 0:
        raise DatasetError("dataset is empty")
    for name, x in arrays.items():
        if x.ndim == 0 or len(x) != n:
            raise DatasetError(f"{name} has {len(x) if x.ndim else 'no'} rows, but reward has {n}")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise DatasetError(f"{name}[{_first_bad(~np.isfinite(x))}] is not finite (NaN or inf)")
    if arrays["obs"].shape != arrays["next_obs"].shape:
        raise DatasetError(f"next_obs is {arrays['next_obs'].shape[1:]} per step, obs {arrays['obs'].shape[1:]}")
    for name in ("reward", "terminated", "truncated", "episode", "log_prob"):
        if name in arrays and arrays[name].ndim != 1:
            raise DatasetError(f"{name} must be [N], got shape {arrays[name].shape}")
    episode = arrays["episode"]
    ended = arrays["terminated"].astype(bool) | arrays["truncated"].astype(bool)
    changes = np.flatnonzero(episode[1:] != episode[:-1])
    if len(changes) and not ended[changes].all():
        i = int(changes[~ended[changes]][0])
        raise DatasetError(
            f"episode[{i + 1}] starts a new episode ({episode[i + 1]}) but step {i} of episode {episode[i]} "
            "is neither terminated nor truncated"
        )
    if not ended[-1]:
        raise DatasetError(f"the last step ({n - 1}) is neither terminated nor truncated; mark a cut episode truncated")
    starts = np.concatenate([[0], changes + 1])
    if len(np.unique(episode[starts])) != len(starts):
        _, first = np.unique(episode[starts], return_index=True)
        again = int(starts[np.setdiff1d(np.arange(len(starts)), first)[0]])
        raise DatasetError(f"episode[{again}]: episode {episode[again]} appears twice; its steps must be contiguous")
    if env is not None:
        check_spaces(dataset, env)


def check_spaces(dataset: Dataset, env: str) -> None:
    """The dataset's observation shape and actions must fit ``env``'s spaces."""
    spec = envs_lib.spec(env)
    origin = f" (dataset env: {dataset.info.get('env', 'not recorded')})"
    obs = np.asarray(dataset.obs)
    if tuple(obs.shape[1:]) != tuple(spec.obs_shape):
        raise DatasetError(
            f"obs are {tuple(obs.shape[1:])} per step, but {env} observes {tuple(spec.obs_shape)}{origin}"
        )
    action = np.asarray(dataset.action)
    if spec.discrete:
        if action.ndim != 1 or action.dtype.kind not in "iu":
            raise DatasetError(
                f"action must be int [N] for {env}'s {spec.num_actions} discrete actions, "
                f"got {action.dtype} {action.shape}{origin}"
            )
        bad = (action < 0) | (action >= spec.num_actions)
        if bad.any():
            i = _first_bad(bad)
            raise DatasetError(
                f"action[{i}] = {action[i]} is outside {env}'s actions 0..{spec.num_actions - 1}{origin}"
            )
        return
    if tuple(action.shape[1:]) != tuple(spec.action_shape):
        raise DatasetError(
            f"actions are {tuple(action.shape[1:])} per step, but {env} takes {spec.action_shape}{origin}"
        )
    low, high = bounds(env)
    tol = 1e-5 * np.maximum(1.0, np.abs(high - low))
    bad = (action < low - tol) | (action > high + tol)
    if bad.any():
        i = _first_bad(bad)
        raise DatasetError(
            f"action[{i}] = {action[i].tolist()} is outside {env}'s action space "
            f"[{low.tolist()}, {high.tolist()}]{origin}"
        )


# --- files -------------------------------------------------------------------------------------


def save(dataset: Dataset, path: str | Path) -> Path:
    """Writes ``dataset`` to ``path`` (``.npz``; written to a temporary name, then renamed)."""
    validate(dataset)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(getattr(dataset, name)) for name in ARRAYS if getattr(dataset, name) is not None}
    header = {"format": FORMAT, "version": VERSION, "arrays": sorted(arrays), "info": dataset.info}
    tmp = path.with_name(path.name + ".tmp.npz")
    payload: dict[str, Any] = {"__header__": np.asarray(json.dumps(header)), **arrays}
    np.savez(tmp, **payload)
    os.replace(tmp, path)
    return path


def load(path: str | Path, env: str | None = None) -> Dataset:
    """Reads a dataset written by :func:`save` (never unpickles) and validates it (and its spaces
    against ``env`` when given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no dataset at {path.resolve()}; make one with experiments/make_dataset.py "
            "(README, 'Offline RL') or read yours with purejaxlib.offline.read_d4rl / read_minari"
        )
    with np.load(path, allow_pickle=False) as data:
        if "__header__" not in data:
            raise DatasetError(f"{path} is not a purejaxlib dataset (no header); see purejaxlib.offline.save")
        header = json.loads(str(data["__header__"]))
        if header.get("format") != FORMAT:
            raise DatasetError(f"{path} has format {header.get('format')!r}, not {FORMAT!r}")
        if header.get("version", 0) > VERSION:
            raise DatasetError(
                f"{path} is dataset version {header['version']}, newer than this purejaxlib reads ({VERSION})"
            )
        arrays = {name: data[name] for name in header["arrays"]}
    dataset = Dataset(**arrays, info=header.get("info", {}))
    validate(dataset, env)
    return dataset


_CACHE: dict[tuple[str, int, int, str], Dataset] = {}


def cached(path: str | Path, env: str) -> Dataset:
    """:func:`load`, remembered while the file is unchanged (same size and modification time)."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        return load(path, env)  # raises, saying where it looked
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size, env)
    if key not in _CACHE:
        _CACHE.clear()  # one dataset at a time: they can be large
        _CACHE[key] = load(resolved, env)
    return _CACHE[key]


# --- use ---------------------------------------------------------------------------------------


def has_next(dataset: Dataset) -> np.ndarray:
    """bool ``[N]``: row ``i + 1`` continues row ``i``'s episode, so its action is the one taken at
    ``next_obs[i]`` (false where the episode ends, or its next row is not in the data)."""
    episode = np.asarray(dataset.episode)
    ended = np.asarray(dataset.terminated, bool) | np.asarray(dataset.truncated, bool)
    same = np.zeros(len(episode), bool)
    same[:-1] = episode[1:] == episode[:-1]
    return same & ~ended


def next_actions(dataset: Dataset, action: jax.Array) -> jax.Array:
    """The logged action at each row's ``next_obs``: ``action [N, ...]`` shifted by one row, NaN
    (float actions) or -1 (integer actions) where :func:`has_next` is false."""
    following = jnp.concatenate([action[1:], action[-1:]], axis=0)
    missing = jnp.asarray(jnp.nan if jnp.issubdtype(action.dtype, jnp.floating) else -1, action.dtype)
    mask = jnp.asarray(has_next(dataset)).reshape((-1,) + (1,) * (action.ndim - 1))
    return jnp.where(mask, following, missing)


def as_buffer(dataset: Dataset, env: str) -> replay.Buffer:
    """The dataset as a full replay buffer (one env column, ``N`` rows in file order), with
    continuous actions scaled to [-1, 1] as the learners store them, and each row's next logged
    action (:func:`next_actions`), which batches carry as ``next_action``."""
    spec = envs_lib.spec(env)
    action = jnp.asarray(dataset.action)
    if not spec.discrete:
        action = distributions.from_bounds(action.astype(jnp.float32), *bounds(env))
    else:
        action = action.astype(jnp.int32)
    flat = lambda x: spec.flatten(jnp.asarray(x))
    column = lambda x: x[:, None]
    data = replay.Stored(
        column(flat(dataset.obs)),
        column(action),
        column(jnp.asarray(dataset.reward, jnp.float32)),
        column(jnp.asarray(dataset.terminated, bool)),
        column(jnp.asarray(dataset.truncated, bool)),
        column(flat(dataset.next_obs)),
        column(next_actions(dataset, action)),
    )
    n = len(dataset)
    return replay.Buffer(data, jnp.int32(0), jnp.int32(n))


def sample(
    dataset: Dataset, env: str, key: jax.Array, batch_size: int, gamma: float = 0.99, n_step: int = 1
) -> replay.Batch:
    """``batch_size`` transitions drawn uniformly, with n-step returns (:func:`purejaxlib.replay.sample`)."""
    return replay.sample(as_buffer(dataset, env), key, batch_size, jnp.float32(gamma), n_step)


def episode_bounds(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) index of every episode, in file order."""
    episode = np.asarray(dataset.episode)
    cuts = np.flatnonzero(episode[1:] != episode[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    return starts, np.concatenate([cuts, [len(episode)]])


def episode_returns(dataset: Dataset, complete: bool = True) -> np.ndarray:
    """Undiscounted return of every episode (only those that ended within the data when
    ``complete``: terminated, or truncated by the env's time limit rather than a cut)."""
    starts, ends = episode_bounds(dataset)
    sums = np.add.reduceat(np.asarray(dataset.reward, np.float64), starts)
    if not complete:
        return sums
    limit = dataset.info.get("max_steps")
    done = np.asarray(dataset.terminated)[ends - 1]
    if limit:
        done = done | ((ends - starts) >= limit)
    return sums[done]


def statistics(dataset: Dataset) -> dict[str, Any]:
    """Sizes, observation mean/std per feature, reward and episode-return summaries."""
    obs = np.asarray(dataset.obs, np.float64).reshape(len(dataset), -1)
    reward = np.asarray(dataset.reward, np.float64)
    returns = episode_returns(dataset)
    return {
        "transitions": len(dataset),
        "episodes": dataset.num_episodes,
        "complete_episodes": len(returns),
        "obs_mean": obs.mean(0).tolist(),
        "obs_std": obs.std(0).tolist(),
        "reward_mean": float(reward.mean()),
        "reward_std": float(reward.std()),
        "reward_min": float(reward.min()),
        "reward_max": float(reward.max()),
        "return_mean": float(returns.mean()) if len(returns) else float("nan"),
        "return_min": float(returns.min()) if len(returns) else float("nan"),
        "return_max": float(returns.max()) if len(returns) else float("nan"),
        "terminated": int(np.asarray(dataset.terminated).sum()),
        "truncated": int(np.asarray(dataset.truncated).sum()),
    }


def select(dataset: Dataset, index: np.ndarray) -> Dataset:
    """The rows ``index`` (host arrays); the caller keeps episodes whole."""
    pick = lambda x: None if x is None else np.asarray(x)[index]
    return dataset.replace(**{name: pick(getattr(dataset, name)) for name in ARRAYS})


def split(dataset: Dataset, validation: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Whole episodes drawn at random (numpy ``seed``) into (train, validation), about
    ``validation`` of the episodes in the second."""
    if not 0.0 < validation < 1.0:
        raise ValueError(f"validation must be a fraction in (0, 1), got {validation}")
    starts, ends = episode_bounds(dataset)
    if len(starts) < 2:
        raise DatasetError("split needs at least 2 episodes; the dataset has 1")
    rng = np.random.default_rng(seed)
    count = min(max(1, round(validation * len(starts))), len(starts) - 1)
    held = np.zeros(len(starts), bool)
    held[rng.choice(len(starts), count, replace=False)] = True
    rows = lambda mask: np.concatenate([np.arange(s, e) for s, e, m in zip(starts, ends, mask) if m])
    return select(dataset, rows(~held)), select(dataset, rows(held))


def concatenate(*datasets: Dataset, info: dict[str, Any] | None = None) -> Dataset:
    """One dataset holding every episode of each (episode ids renumbered apart); ``log_prob``
    is kept only where every part has it; ``info`` defaults to the first's."""
    if not datasets:
        raise ValueError("concatenate needs at least one dataset")
    parts, offset = [], 0
    for d in datasets:
        episode = np.asarray(d.episode)
        _, renumbered = np.unique(episode, return_inverse=True)
        parts.append(renumbered.astype(np.int32) + offset)
        offset += int(renumbered.max()) + 1
    joined = {
        name: np.concatenate([np.asarray(getattr(d, name)) for d in datasets])
        for name in ARRAYS[:-2]
        if name != "episode"
    }
    log_prob = (
        np.concatenate([np.asarray(d.log_prob) for d in datasets])
        if all(d.log_prob is not None for d in datasets)
        else None
    )
    return Dataset(**joined, episode=np.concatenate(parts), log_prob=log_prob, info=info or dict(datasets[0].info))


def normalized_score(returns: Any, info: dict[str, Any]) -> np.ndarray:
    """``100 * (R - random_return) / (expert_return - random_return)`` (D4RL's normalized score)."""
    low, high = info.get("random_return"), info.get("expert_return")
    if low is None or high is None:
        raise DatasetError("this dataset records no random_return/expert_return; set them in its info")
    if high == low:
        raise DatasetError(f"random_return and expert_return are equal ({low}); no scale to normalize by")
    return 100.0 * (np.asarray(returns, np.float64) - low) / (high - low)


# --- collection --------------------------------------------------------------------------------


def from_steps(
    obs: Any,
    action: Any,
    reward: Any,
    next_obs: Any,
    terminated: Any,
    truncated: Any,
    log_prob: Any = None,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """A dataset from time-major arrays ``[T, num_envs, ...]`` (a rollout or a replay buffer in
    time order): each env's steps in order, episodes numbered, and the last step of every env
    marked truncated if its episode was still running (a cut, bootstrapped)."""
    host: Callable[[Any], Any] = lambda x: None if x is None else np.asarray(x)
    obs, action, reward, next_obs = host(obs), host(action), host(reward), host(next_obs)
    terminated, truncated, log_prob = host(terminated).astype(bool), host(truncated).astype(bool), host(log_prob)
    truncated = truncated.copy()
    truncated[-1] |= ~terminated[-1]
    ended = terminated | truncated
    env_major: Callable[[np.ndarray], np.ndarray] = lambda x: np.swapaxes(x, 0, 1).reshape((-1,) + x.shape[2:])
    flat_ended = env_major(ended)
    episode = np.concatenate([[0], np.cumsum(flat_ended[:-1])]).astype(np.int32)
    return Dataset(
        env_major(obs).astype(np.float32),
        env_major(action),
        env_major(reward).astype(np.float32),
        env_major(next_obs).astype(np.float32),
        env_major(terminated),
        env_major(truncated),
        episode,
        None if log_prob is None else env_major(log_prob).astype(np.float32),
        info or {},
    )


def from_replay(buffer: replay.Buffer, env: str, info: dict[str, Any] | None = None) -> Dataset:
    """The filled part of a replay buffer (leaves ``[rows, num_envs, ...]``, one run's) as a
    dataset, oldest first; stored [-1, 1] actions are mapped back to the env's bounds. This is
    how a medium-replay dataset is made from the run that trained the medium policy."""
    data = jax.tree.map(np.asarray, buffer.data)
    size, pos = int(buffer.size), int(buffer.pos)
    rows = (np.arange(size) + (pos - size)) % data.reward.shape[0]
    steps = jax.tree.map(lambda x: x[rows], data)
    spec = envs_lib.spec(env)
    action = steps.action
    if not spec.discrete:
        action = np.asarray(distributions.to_bounds(jnp.asarray(action), *bounds(env)))
    shape = lambda x: x.reshape(x.shape[:2] + tuple(spec.obs_shape))
    return from_steps(
        shape(steps.obs), action, steps.reward, shape(steps.next_obs), steps.terminated, steps.truncated, info=info
    )


Behaviour = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
"""``(obs [N, *obs_shape], key) -> (env action [N, ...], log-probability [N] or NaN)``."""


def behaviour(
    env: str,
    act: Callable[[jax.Array, jax.Array], jax.Array] | None,
    *,
    epsilon: float = 0.0,
    noise: float = 0.0,
) -> Behaviour:
    """A collecting policy from a deterministic ``act(obs, key) -> env action`` (None: uniform).

    Discrete: with probability ``epsilon`` a uniform action instead, so the log-probability is
    known exactly. Continuous: Gaussian noise of std ``noise`` (fraction of the half-range) added
    and clipped to the bounds; log-probabilities are then unknown (NaN), as are those of ``act``
    itself when it is random.
    """
    spec = envs_lib.spec(env)
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")

    def policy(obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        n = obs.shape[0]
        act_key, mix_key, pick_key = jax.random.split(key, 3)
        if spec.discrete:
            uniform = jax.random.randint(pick_key, (n,), 0, spec.num_actions, dtype=jnp.int32)
            if act is None:
                return uniform, jnp.full((n,), -np.log(spec.num_actions), jnp.float32)
            greedy = act(obs, act_key).astype(jnp.int32)
            explore = jax.random.uniform(mix_key, (n,)) < epsilon
            action = jnp.where(explore, uniform, greedy)
            prob = (1.0 - epsilon) * (action == greedy) + epsilon / spec.num_actions
            return action, jnp.log(prob).astype(jnp.float32)
        low_np, high_np = bounds(env)
        low, high = jnp.asarray(low_np), jnp.asarray(high_np)
        shape = (n,) + tuple(spec.action_shape)
        if act is None:
            action = jax.random.uniform(pick_key, shape, minval=low, maxval=high)
            return action, jnp.full((n,), -float(np.log(high_np - low_np).sum()), jnp.float32)
        action = act(obs, act_key)
        action = jnp.clip(action + noise * (high - low) / 2 * jax.random.normal(mix_key, shape), low, high)
        return action, jnp.full((n,), jnp.nan if noise > 0 else 0.0, jnp.float32)

    return policy


def collect(
    env: str,
    policy: Behaviour,
    key: jax.Array,
    steps: int,
    num_envs: int = 8,
    *,
    env_params: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """``steps`` transitions (``steps // num_envs`` per env) of ``policy`` (see :func:`behaviour`)
    in ``num_envs`` envs, run as one jitted program; log-probabilities kept where all are known."""
    if steps < num_envs:
        raise ValueError(f"steps ({steps}) must be at least num_envs ({num_envs})")
    base, params = envs_lib.make(env, **(env_params or {}))
    vec = envs_lib.VecEnv(envs_lib.EpisodeStatistics(base), num_envs)

    @jax.jit
    def run(key: jax.Array):
        reset_key, run_key = jax.random.split(key)
        obs, state = vec.reset(reset_key, params)

        def policy_fn(obs, act_key):
            action, log_prob = policy(obs, act_key)
            return action, action, log_prob

        _, _, traj = rollout(vec, params, policy_fn, state, obs, run_key, steps // num_envs)
        return traj

    traj = run(key)
    log_prob = np.asarray(traj.extras)
    max_steps = getattr(params, "max_steps_in_episode", None)
    meta = {"env": env, "max_steps": int(max_steps) if max_steps is not None else None, **(info or {})}
    return from_steps(
        traj.obs,
        traj.action,
        traj.reward,
        traj.final_obs,
        traj.terminated,
        traj.truncated,
        None if np.isnan(log_prob).any() else log_prob,
        meta,
    )


def with_info(dataset: Dataset, **info: Any) -> Dataset:
    """The same data with ``info`` entries added or replaced."""
    return dataclasses.replace(dataset, info={**dataset.info, **info})


# --- levels ------------------------------------------------------------------------------------

LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")


def make_levels(
    module: Any,
    config: Any,
    key: jax.Array,
    *,
    steps: int,
    chunks: int = 100,
    num_envs: int = 8,
    epsilon: float = 0.1,
    noise: float = 0.1,
    eval_episodes: int = 64,
    medium_fraction: float = 1.0 / 3.0,
) -> dict[str, Dataset]:
    """Trains ``module`` (a replay learner: its buffer becomes medium-replay) on ``config`` and
    collects the usual levels, ``steps`` transitions each (medium-replay: what the buffer held):

    - random: uniform actions; expert: the final policy; medium: of ``chunks`` snapshots, the
      one whose deterministic return is nearest ``medium_fraction`` of the way from random to
      expert; medium-replay: the replay buffer when that snapshot was taken; medium-expert: the
      union of medium and expert. Policies collect with :func:`behaviour` (``epsilon`` /
      ``noise``). Every dataset's info holds ``random_return`` and ``expert_return`` (mean
      returns of the random policy's and of the expert's deterministic episodes).
    """
    from purejaxlib import evaluation, training

    if not hasattr(module, "ALGORITHM"):
        raise TypeError(f"{module.__name__} is not a replay learner; train medium/expert with dqn, sac, td3 or iql")
    env = config.env
    train_key, random_key, medium_key, expert_key, eval_key = jax.random.split(key, 5)
    per_chunk = max(1, config.num_updates // chunks)

    @jax.jit
    def advance(state: Any, start: jax.Array) -> Any:
        return training.scan_updates(module.step, config, state, start, per_chunk)[0]

    @jax.jit
    def score(state: Any, key: jax.Array) -> jax.Array:
        return evaluation.evaluate(config, state, key, eval_episodes, deterministic=True).returns.mean()

    state = jax.jit(module.init)(config, train_key)
    snapshots = []
    for chunk in range(config.num_updates // per_chunk):
        state = advance(state, jnp.int32(chunk * per_chunk))
        snapshots.append((jax.device_get(state), float(score(state, jax.random.fold_in(eval_key, chunk)))))
    meta = {"env": env, "trained_with": module.__name__.rsplit(".", 1)[-1], "config": config.to_dict()}
    random = collect(env, behaviour(env, None), random_key, steps, num_envs, info={**meta, "level": "random"})
    random_return = float(episode_returns(random).mean())
    expert_state, expert_return = snapshots[-1]
    goal = random_return + medium_fraction * (expert_return - random_return)
    medium_index = int(np.argmin([abs(r - goal) for _, r in snapshots]))
    medium_state, medium_return = snapshots[medium_index]
    refs = {"random_return": random_return, "expert_return": expert_return}
    act = lambda s: module.policy(config, s, deterministic=True)
    how = {"epsilon": epsilon} if config.spec.discrete else {"noise": noise}
    medium = collect(
        env,
        behaviour(env, act(medium_state), **how),
        medium_key,
        steps,
        num_envs,
        info={
            **meta,
            **refs,
            **how,
            "level": "medium",
            "policy_return": medium_return,
            "policy_env_steps": (medium_index + 1) * per_chunk * config.steps_per_update,
        },
    )
    expert = collect(
        env,
        behaviour(env, act(expert_state), **how),
        expert_key,
        steps,
        num_envs,
        info={**meta, **refs, **how, "level": "expert", "policy_return": expert_return},
    )
    replay_data = from_replay(medium_state.buffer, env, info={**meta, **refs, "level": "medium-replay"})
    replay_data = with_info(replay_data, max_steps=medium.info.get("max_steps"))
    return {
        "random": with_info(random, **refs),
        "medium": medium,
        "medium-replay": replay_data,
        "expert": expert,
        "medium-expert": concatenate(medium, expert, info={**medium.info, "level": "medium-expert"}),
    }


# --- readers (optional extra: pip install 'purejaxlib[offline]') --------------------------------


def _episodes_to_dataset(episodes: list[dict[str, np.ndarray]], info: dict[str, Any]) -> Dataset:
    """Episodes of ``observations [T+1]``, ``actions``, ``rewards``, ``terminations``,
    ``truncations`` (each ``[T]``) as one dataset."""
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated", "episode")
    }
    for e, ep in enumerate(episodes):
        obs = np.asarray(ep["observations"], np.float32)
        t = len(ep["rewards"])
        terminated = np.asarray(ep["terminations"], bool).copy()
        truncated = np.asarray(ep["truncations"], bool).copy()
        truncated[-1] |= ~terminated[-1]  # an episode recorded without an end was cut
        parts["obs"].append(obs[:t])
        parts["next_obs"].append(obs[1 : t + 1])
        parts["action"].append(np.asarray(ep["actions"]))
        parts["reward"].append(np.asarray(ep["rewards"], np.float32))
        parts["terminated"].append(terminated)
        parts["truncated"].append(truncated)
        parts["episode"].append(np.full(t, e, np.int32))
    if not episodes:
        raise DatasetError("the dataset holds no episodes")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    if arrays["action"].dtype.kind in "iu":
        arrays["action"] = arrays["action"].astype(np.int32)
    else:
        arrays["action"] = arrays["action"].astype(np.float32)
    return Dataset(**arrays, info=info)


def read_minari(dataset_id: str, env: str, *, root: str | Path | None = None) -> Dataset:
    """A Minari dataset already on local disk (never downloaded), checked against ``env``'s spaces.

    ``root``: Minari's datasets directory (default: ``MINARI_DATASETS_PATH``, else ``~/.minari/datasets``).
    Flat Box observations and Discrete or Box actions.
    """
    try:
        import minari
    except ImportError as err:
        raise ImportError("reading Minari datasets needs minari: pip install 'purejaxlib[offline]'") from err
    if root is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(root)
    where = Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))
    local = {str(name) for name in minari.list_local_datasets()}
    if dataset_id not in local:
        raise FileNotFoundError(
            f"no Minari dataset {dataset_id!r} under {where.resolve()} (local: {sorted(local) or 'none'}); "
            f"download it yourself with `minari download {dataset_id}` (purejaxlib never downloads), "
            "or pass root= the directory that holds it"
        )
    data = minari.load_dataset(dataset_id)
    episodes = [
        {
            "observations": ep.observations,
            "actions": ep.actions,
            "rewards": ep.rewards,
            "terminations": ep.terminations,
            "truncations": ep.truncations,
        }
        for ep in data.iterate_episodes()
    ]
    spec = envs_lib.spec(env)
    params = envs_lib.make(env)[1]
    max_steps = getattr(params, "max_steps_in_episode", None)
    info = {"env": env, "source": f"minari:{dataset_id}", "max_steps": int(max_steps) if max_steps else None}
    dataset = _episodes_to_dataset(episodes, info)
    if spec.discrete and dataset.action.ndim > 1:
        dataset = dataset.replace(action=dataset.action.reshape(len(dataset)))
    validate(dataset, env)
    return dataset


def read_d4rl(path: str | Path, env: str) -> Dataset:
    """A D4RL-style HDF5 file (``observations``, ``actions``, ``rewards``, ``terminals``,
    ``timeouts``; ``next_observations`` where present), checked against ``env``'s spaces.

    Without ``next_observations`` the successor of a step is the next row of its episode; a step
    that ends by timeout then has no recorded successor and is dropped, its predecessor becoming
    the episode's (truncated) last step.
    """
    try:
        import h5py
    except ImportError as err:
        raise ImportError("reading D4RL files needs h5py: pip install 'purejaxlib[offline]'") from err
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no D4RL file at {path.resolve()}; purejaxlib never downloads: fetch the .hdf5 yourself and pass its path"
        )
    with h5py.File(path, "r") as f:
        missing = [k for k in ("observations", "actions", "rewards", "terminals", "timeouts") if k not in f]
        if missing:
            raise DatasetError(f"{path} has no {', '.join(missing)} (keys: {sorted(f.keys())})")
        obs = np.asarray(f["observations"], np.float32)
        action = np.asarray(f["actions"])
        reward = np.asarray(f["rewards"], np.float32).reshape(-1)
        terminal = np.asarray(f["terminals"], bool).reshape(-1)
        timeout = np.asarray(f["timeouts"], bool).reshape(-1)
        next_obs = np.asarray(f["next_observations"], np.float32) if "next_observations" in f else None
    n = len(reward)
    for name, x in (("observations", obs), ("actions", action), ("terminals", terminal), ("timeouts", timeout)):
        if len(x) != n:
            raise DatasetError(f"{name} has {len(x)} rows, but rewards has {n}")
    timeout = timeout & ~terminal
    if next_obs is None:
        keep = ~timeout
        keep[-1] &= bool(terminal[-1])  # the file's last step has no successor unless it terminated
        successor = np.concatenate([obs[1:], obs[-1:]])
        truncated = np.zeros(n, bool)
        # a dropped step's predecessor (same episode) becomes the episode's truncated end
        dropped = np.flatnonzero(~keep)
        previous = dropped - 1
        ok = (previous >= 0) & ~terminal[np.maximum(previous, 0)] & keep[np.maximum(previous, 0)]
        truncated[previous[ok]] = True
        idx = np.flatnonzero(keep)
        obs, action, reward, terminal, truncated, next_obs = (
            obs[idx],
            action[idx],
            reward[idx],
            terminal[idx],
            truncated[idx],
            successor[idx],
        )
    else:
        truncated = timeout.copy()
        truncated[-1] |= ~terminal[-1]
    ended = terminal | truncated
    episode = np.concatenate([[0], np.cumsum(ended[:-1])]).astype(np.int32)
    spec = envs_lib.spec(env)
    action = action.reshape(len(reward)).astype(np.int32) if spec.discrete else action.astype(np.float32)
    params = envs_lib.make(env)[1]
    max_steps = getattr(params, "max_steps_in_episode", None)
    info = {"env": env, "source": f"d4rl:{path.name}", "max_steps": int(max_steps) if max_steps else None}
    dataset = Dataset(obs, action, reward, next_obs, terminal, truncated, episode, None, info)
    validate(dataset, env)
    return dataset
